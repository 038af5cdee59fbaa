/**
 * The post-merge watch's contract section and the revert built in Cadenza's mirror, on a local git
 * repository (the end-to-end runs are in test/e2e/watch.test.ts).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseContract } from '../../lib/contract/index.ts';
import { RepoMirror } from '../../lib/git.ts';
import { run } from '../../infra/process.ts';
import { catchContractError } from '../helpers/contract-error.ts';

async function sh(cwd: string, command: string): Promise<string> {
  const result = await run('sh', ['-c', command], { cwd });
  if (result.code !== 0) throw new Error(`${command} failed: ${result.stderr}`);
  return result.stdout.trim();
}

const contract = (yaml: string, env: NodeJS.ProcessEnv = {}) =>
  parseContract(`---\nrepo: { url: ./repo }\nproof: { commands: [{ name: tests, run: npm test }] }\n${yaml}\n---\nWork.`, '/proj/WORKFLOW.md', env);

const contractError = (yaml: string, env: NodeJS.ProcessEnv = {}) => catchContractError(() => contract(yaml, env));

describe('watch: in WORKFLOW.md', () => {
  it('is absent without a watch: section; with commands it runs them once and reverts by commit into the first active state', () => {
    expect(contract('').config.watch).toBeUndefined();
    expect(contract('watch: { commands: [{ name: e2e, run: npm run e2e }] }').config.watch).toEqual({
      commands: [{ name: 'e2e', run: 'npm run e2e', timeoutMs: 600_000, required: true }], everyMs: null, windowMs: 0, revert: 'commit', reopenState: 'Todo',
    });
  });

  it('reads a schedule, the revert policy and the state to reopen into', () => {
    const { watch, landing } = contract('tracker: { kind: local, path: ./issues, active_states: [Ready, Doing] }\nwatch: { commands: [{ name: e2e, run: x, timeout_ms: 5000 }], every_ms: 3600000, window_ms: 86400000, revert: pull_request, reopen_state: Doing }\nlanding: { github: { repository: acme/app } }', { GITHUB_TOKEN: 'x' }).config;
    expect(watch).toMatchObject({ everyMs: 3_600_000, windowMs: 86_400_000, revert: 'pull_request', reopenState: 'Doing' });
    // The revert's pull request goes where landing.github says.
    expect(landing.github).toMatchObject({ repository: 'acme/app', apiKey: { env: 'GITHUB_TOKEN' } });
  });

  it('refuses what it cannot do, naming the key and what is allowed', () => {
    expect(contractError('watch: { commands: [] }').message).toContain('watch.commands: a watch needs at least one command to run on the landed commit');
    expect(contractError('watch: { commands: [{ name: a, run: x }], window_ms: 60000 }').message).toContain('watch.window_ms is set but watch.every_ms is not');
    expect(contractError('watch: { commands: [{ name: a, run: x }], every_ms: 60000, window_ms: 1000 }').message).toBe('watch.window_ms: expected how long to keep watching after landing, at least watch.every_ms (60000), got 1000');
    expect(contractError('watch: { commands: [{ name: a, run: x }], every_ms: 10 }').message).toBe('watch.every_ms: expected an integer >= 1000, got 10');
    expect(contractError('watch: { commands: [{ name: a, run: x }], revert: force }').message).toBe('watch.revert: expected one of "commit", "pull_request", got "force"');
    expect(contractError('watch: { commands: [{ name: a, run: x }], reopen_state: Done }').message).toBe('watch.reopen_state: expected one of tracker.active_states (Todo, In Progress), so the reopened issue is worked on again, got "Done"');
    expect(contractError('watch: { commands: [{ name: a, run: x }, { name: a, run: y }] }').message).toBe('watch.commands[1].name: expected a name not used by another watch command, got "a"');
    expect(contractError('landing: { strategy: pull_request, github: { repository: a/b } }\nwatch: { commands: [{ name: a, run: x }] }', { GITHUB_TOKEN: 'x' }).message).toContain('watch: runs on the commit a merge landing pushed to the target; with landing.strategy pull_request');
  });

  it('warns about keys it does not read (a watch command is always required)', () => {
    expect(contract('watch: { commands: [{ name: a, run: x, required: false }] }').warnings).toContain('/proj/WORKFLOW.md: watch.commands[0].required is not a key Cadenza reads here; it is kept and ignored');
  });
});

describe('the revert of a landing, built in the mirror', () => {
  let root: string;
  let work: string;
  let mirror: RepoMirror;
  const commit = (message: string) => sh(work, `git add -A && git -c user.name=T -c user.email=t@example.invalid commit -qm "${message}" && git rev-parse HEAD`);
  beforeAll(async () => {
    root = mkdtempSync(path.join(tmpdir(), 'cadenza-revert-'));
    work = path.join(root, 'work');
    mkdirSync(path.join(work, 'src'), { recursive: true });
    writeFileSync(path.join(work, 'src', 'a.js'), 'a\n');
    writeFileSync(path.join(work, 'src', 'b.js'), 'b\n');
    await sh(work, 'git init -q -b main');
    await commit('base');
    mirror = new RepoMirror(path.join(root, 'mirrors'), work);
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("undoes a merge landing against its first parent, on the tip it landed on or on a tip that moved since; conflicts are named", async () => {
    const before = await sh(work, 'git rev-parse HEAD');
    await sh(work, 'git checkout -q -b feature');
    writeFileSync(path.join(work, 'src', 'a.js'), 'a, changed by the landing\n');
    await commit('the work');
    await sh(work, 'git checkout -q main && git -c user.name=T -c user.email=t@example.invalid merge -q --no-ff feature -m landing');
    const landed = await sh(work, 'git rev-parse HEAD');
    await mirror.refresh();

    expect(await mirror.firstParent(landed)).toBe(before);
    const onLanded = await mirror.revertTree(landed, landed);
    expect(onLanded).toEqual({ tree: await mirror.treeOf(before), conflicts: [] });

    // Someone landed b.js since: the revert undoes a.js and keeps their change.
    writeFileSync(path.join(work, 'src', 'b.js'), 'b, changed later\n');
    const later = await commit('later');
    await mirror.refresh();
    const moved = await mirror.revertTree(landed, later);
    expect(moved.conflicts).toEqual([]);
    const revert = await mirror.commitTree(moved.tree, [later], 'revert');
    expect(await mirror.show(revert, 'src/a.js')).toBe('a\n');
    expect(await mirror.show(revert, 'src/b.js')).toBe('b, changed later\n');

    // A later change on the landing's own lines cannot be undone without a person.
    writeFileSync(path.join(work, 'src', 'a.js'), 'a, changed by the landing, then again\n');
    const onTop = await commit('on top');
    await mirror.refresh();
    expect((await mirror.revertTree(landed, onTop)).conflicts).toEqual(['src/a.js']);
  });
});
