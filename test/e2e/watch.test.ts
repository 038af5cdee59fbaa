/**
 * The post-merge watch end to end on the real Temporal server, Docker engine and git with the scripted
 * model: a landed change that breaks a check the proof does not run is found by the watch, its revert
 * is approved with the same signal as a landing and lands on the target, and the issue is reopened
 * with the evidence; a check that was failing before the landing reverts nothing; a watch on a
 * schedule runs again on durable timers until its window ends.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { approve, statusOf } from '../../client/issues.ts';
import { WORKPAD_MARKER, statusQuery, type IssueStatus } from '../../workflows/definitions.ts';
import { startFakeGitHub, type FakeGitHub } from '../fakes/github-server.ts';
import { World, sh } from '../helpers/world.ts';
import { SHOUT, finish, write } from '../fixtures/scripts.ts';

/** A check the proof does not run: no TODO markers may reach the target's sources. */
const NO_TODO = '{ name: no-todo, run: "! grep -rn TODO src", timeout_ms: 60000 }';
const SHOUT_WITH_TODO = "export function shout(text) {\n  // TODO: empty text\n  return `${text.toUpperCase()}!`;\n}\n";

/** Starts the issue, approves its landing, and waits until the watch's revert awaits approval. */
async function landAndAwaitRevert(world: World, id: string): Promise<{ handle: Awaited<ReturnType<World['start']>>; waiting: IssueStatus }> {
  const handle = await world.start(id);
  await world.waitForPhase(handle, 'AwaitingApproval');
  await approve(handle, 'alice');
  let waiting!: IssueStatus;
  await world.waitUntil(async () => {
    waiting = await handle.query(statusQuery);
    return waiting.phase === 'AwaitingApproval' && waiting.watch?.revert?.outcome === 'awaiting_approval';
  }, 'the revert awaits approval', 180_000);
  return { handle, waiting };
}

describe('the post-merge watch on the real server, engine and git', () => {
  let world: World;
  beforeAll(async () => {
    world = await World.create({ extraContract: `watch:\n  commands:\n    - ${NO_TODO}\n  revert: commit` });
  });
  afterAll(async () => world?.close());

  const comments = async (id: string) => world.tracker.listComments(id);
  const workpad = async (id: string) => (await comments(id)).find((comment) => comment.body.startsWith(WORKPAD_MARKER))?.body ?? '';

  it('a landing that breaks a check only the watch runs is reverted once approved, and the issue is reopened with the evidence', async () => {
    const id = world.id('todo');
    await world.addIssue({ identifier: id, title: 'Add shout' }, [
      ...SHOUT.slice(0, 1),
      write('src/shout.js', SHOUT_WITH_TODO),
      write('test/shout.test.js', "import test from 'node:test';\nimport assert from 'node:assert/strict';\nimport { shout } from '../src/shout.js';\n\ntest('shout', () => assert.equal(shout('hi'), 'HI!'));\n"),
      finish('Added shout() with a test.'),
    ]);
    await world.run(async () => {
      const { handle, waiting } = await landAndAwaitRevert(world, id);
      // The landing stands on main; the watch found what the proof never ran, and a revert waits for a person.
      const landed = waiting.landedCommit!;
      const before = await sh(world.remote, `git rev-parse ${landed}^1`);
      expect(await sh(world.remote, 'git rev-parse main')).toBe(landed);
      expect(waiting.watch).toMatchObject({
        commit: landed, parent: before, verdict: 'regression', runs: 1,
        checks: [{ name: 'no-todo', passed: false, commit: landed }],
        parentChecks: [{ name: 'no-todo', passed: true, commit: before }],
        revert: { outcome: 'awaiting_approval', onto: landed, checks: [] },
      });
      expect(waiting.watch!.checks[0]!.excerpt).toContain('src/shout.js:2:  // TODO: empty text');
      const revert = waiting.watch!.revert!.commit!;
      expect(waiting.headCommit).toBe(revert);
      // Nothing is reverted before the approval.
      expect(await sh(world.remote, 'git rev-parse main')).toBe(landed);

      // The issue is reopened with the evidence; the workpad says so; the approver's details show the checks.
      const [issue] = await world.tracker.fetchIssuesByIds([id]);
      expect(issue!.state).toBe('Todo');
      const evidence = (await comments(id)).find((comment) => comment.body.includes('post-merge watch found a regression'))!;
      expect(evidence.body).toContain(`\`no-todo\` fails on \`${landed}\``);
      expect(evidence.body).toContain(`passes on its first parent \`${before}\``);
      expect(evidence.body).toContain('src/shout.js:2:  // TODO: empty text');
      expect(evidence.body).toContain(`Cadenza prepared a revert, \`${revert.slice(0, 12)}\` on \`main\``);
      expect(await workpad(id)).toContain(`Watch: \`no-todo\` failed on \`${landed.slice(0, 12)}\` and passed on its first parent: a regression.`);
      const { currentDetails } = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
      expect(currentDetails).toContain('### A regression after landing: approve its revert');
      expect(currentDetails).toContain(`| **FAIL** | \`no-todo\` | landed \`${landed.slice(0, 12)}\``);
      expect(currentDetails).toContain(`npx cadenza approve ${id} --by YOUR-NAME --commit ${revert.slice(0, 12)}`);
      const cli = await world.cli(['status', id]);
      expect(cli.code, cli.stderr).toBe(0);
      expect(cli.stdout).toContain(`watch       ${landed}: REGRESSION, 1 pass`);
      expect(cli.stdout).toContain(`revert      ${revert}: awaiting approval`);

      // Approved with the same signal as a landing, naming the revert it approves.
      await approve(handle, 'bob', 'revert it', revert.slice(0, 12));
      const result = await handle.result();
      expect(result).toMatchObject({ phase: 'Reverted', landedCommit: landed, revertCommit: revert });
      expect(await sh(world.remote, 'git rev-parse main')).toBe(revert);
      expect(await sh(world.remote, 'git rev-parse main^{tree}')).toBe(await sh(world.remote, `git rev-parse ${before}^{tree}`));
      expect(await sh(world.remote, 'git log -1 --format=%B main')).toContain(`Cadenza-Reverts: ${landed}`);
      expect(await workpad(id)).toContain(`Reverted \`${landed.slice(0, 12)}\` on \`main\` as \`${revert}\`, approved by bob.`);
      expect(await workpad(id)).toContain('**Phase:** Reverted');
      await world.recordHistory(handle, 'watch-regression-reverted');

      // The poller starts the reopened issue again, and the new run's first round is told why.
      await world.schedulePolls();
      const next = world.handle(id);
      await world.waitUntil(async () => (await statusOf(next)) === 'RUNNING', 'the poller started a new run of the reopened issue', 60_000);
      await world.waitUntil(async () => world.modelRequests.some((request) => request.identifier === id && request.lastUserMessage?.includes('post-merge watch found a regression')), "the new run's first round carries the evidence", 120_000);
      const again = await next.query(statusQuery);
      expect(again.round).toBe(1);
      expect(again.comments.map((comment) => comment.body)).toContainEqual(expect.stringContaining(`\`no-todo\` fails on \`${landed}\``));
      await next.cancel();
    });
  });

  it('a watch check that failed before the landing too reverts nothing', async () => {
    const id = world.id('before');
    // Someone else already broke the check on main.
    await world.pushToMain('src/notes.js', '// TODO: write notes\n');
    await world.addIssue({ identifier: id, title: 'Add shout' }, SHOUT);
    await world.run(async () => {
      const handle = await world.start(id);
      await world.waitForPhase(handle, 'AwaitingApproval');
      await approve(handle, 'alice');
      const result = await handle.result();
      expect(result.phase).toBe('Done');
      const status = await handle.query(statusQuery);
      expect(status.watch).toMatchObject({ verdict: 'failing_before', checks: [{ passed: false }], parentChecks: [{ passed: false }] });
      expect(status.watch!.revert).toBeUndefined();
      expect(await sh(world.remote, 'git rev-parse main')).toBe(result.landedCommit);
      expect(await workpad(id)).toContain('the target was failing before this landing, so nothing is reverted');
      const [issue] = await world.tracker.fetchIssuesByIds([id]);
      expect(issue!.state).toBe('Done');
    });
  });
});

describe('a watch on a schedule', () => {
  let world: World;
  beforeAll(async () => {
    world = await World.create({ extraContract: `agent: { max_turns: 12, max_concurrent_agents: 1 }\nwatch:\n  commands:\n    - ${NO_TODO}\n  every_ms: 1000\n  window_ms: 20000` });
  });
  afterAll(async () => world?.close());

  it('runs the checks again on durable timers until its window ends, then the run is Done; a watching run holds no agent slot', async () => {
    const id = world.id('sched');
    const next = world.id('next');
    await world.addIssue({ identifier: id, title: 'Add shout' }, SHOUT);
    await world.run(async () => {
      const handle = await world.start(id);
      const { sandbox } = await world.waitForPhase(handle, 'AwaitingApproval');
      await approve(handle, 'alice');
      // The sandbox is gone while the watch goes on: the host's room is free.
      await world.waitUntil(async () => {
        const now = await handle.query(statusQuery);
        return now.phase === 'Watching' && (now.watch?.runs ?? 0) >= 1;
      }, 'the first watch pass', 120_000);
      expect((await handle.query(statusQuery)).sandbox).toBeNull();
      await expect(world.docker.getContainer(sandbox!).inspect()).rejects.toMatchObject({ statusCode: 404 });

      // With max_concurrent_agents 1, the poller starts the next issue while this run only watches.
      await world.addIssue({ identifier: next, title: 'Add shout again' }, SHOUT);
      await world.schedulePolls();
      await world.waitUntil(async () => (await statusOf(world.handle(next))) === 'RUNNING', 'the poller started the next issue', 60_000);
      expect((await handle.query(statusQuery)).phase).toBe('Watching');
      const result = await handle.result();
      expect(result.phase).toBe('Done');
      const status = await handle.query(statusQuery);
      expect(status.watch!.verdict).toBe('passed');
      expect(status.watch!.runs).toBeGreaterThanOrEqual(2);
      const pad = (await world.tracker.listComments(id)).find((comment) => comment.body.startsWith(WORKPAD_MARKER))!.body;
      expect(pad).toContain(`Watching \`${result.landedCommit!.slice(0, 12)}\` on \`main\`: \`no-todo\`, every 1 s for 20 s.`);
      expect(pad).toContain(`Watch passed: \`no-todo\` passed on \`${result.landedCommit!.slice(0, 12)}\` ${status.watch!.runs} times; the watch is over.`);
      // The durable timers are in the history, one between passes.
      const timers = (await handle.fetchHistory()).events!.filter((event) => Number(event.timerStartedEventAttributes?.startToFireTimeout?.seconds) === 1);
      expect(timers.length).toBe(status.watch!.runs - 1);
    });
  });
});

describe('a revert by pull request', () => {
  const TOKEN = 'ghp_watch_revert_token';
  let github: FakeGitHub;
  let world: World;
  beforeAll(async () => {
    const repository = `acme/watch${Date.now().toString(36)}`;
    github = await startFakeGitHub({ token: TOKEN, repository });
    world = await World.create({
      env: { CADENZA_TEST_GITHUB_TOKEN: TOKEN },
      extraContract: [
        `landing: { strategy: merge, github: { repository: ${repository}, endpoint: "${github.url}", api_key: $CADENZA_TEST_GITHUB_TOKEN } }`,
        `watch:\n  commands:\n    - ${NO_TODO}\n  revert: pull_request`,
      ].join('\n'),
    });
  });
  afterAll(async () => {
    await world?.close();
    await github?.close();
  });

  it('opens the approved revert as a pull request from its own branch and leaves the target as it is', async () => {
    const id = world.id('prrev');
    await world.addIssue({ identifier: id, title: 'Add shout' }, [
      write('src/shout.js', SHOUT_WITH_TODO),
      finish('Added shout().'),
    ]);
    await world.run(async () => {
      const { handle, waiting } = await landAndAwaitRevert(world, id);
      const revert = waiting.watch!.revert!.commit!;
      expect(github.pullRequests()).toEqual([]);
      await approve(handle, 'bob', undefined, revert);
      const result = await handle.result();
      expect(result).toMatchObject({ phase: 'Done', landedCommit: waiting.landedCommit, revertCommit: revert });
      // The target keeps the landing; the revert waits in a pull request for people to merge.
      expect(await sh(world.remote, 'git rev-parse main')).toBe(waiting.landedCommit);
      expect(await sh(world.remote, `git rev-parse refs/heads/cadenza/revert-${id}`)).toBe(revert);
      const [pullRequest] = github.pullRequests();
      expect(pullRequest).toMatchObject({ head: `cadenza/revert-${id}`, base: 'main', title: `Revert ${id}: Add shout` });
      expect(pullRequest!.body).toContain(`Cadenza-Reverts: ${waiting.landedCommit}`);
      const status = await handle.query(statusQuery);
      expect(status.watch!.revert).toMatchObject({ outcome: 'pull_request', by: 'bob', pullRequest: { number: pullRequest!.number, branch: `cadenza/revert-${id}` } });
    });
  });
});
