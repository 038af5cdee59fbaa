/**
 * Impact notices, end to end on the real server, engine and git with the scripted model: four runs of
 * one project wait for approval; the first lands. The run that changed the same file is told (status,
 * workpad, the approver's details), is sent back by its approver, and its next round's prompt names the
 * landed change and the file; the agent merges the new main cleanly and it lands with both changes. The
 * run whose new module imports from the changed file is told through that link; the run on other files
 * is not told at all, and a malformed notice sent to it by hand is recorded, not fatal.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { approve, issueStatus, reject } from '../../client/issues.ts';
import { projectRoot } from '../../infra/paths.ts';
import { impactNoticeSignal, WORKPAD_MARKER, type IssueStatus } from '../../workflows/definitions.ts';
import { finish, shell, write } from '../fixtures/scripts.ts';
import { World, historyText, sh } from '../helpers/world.ts';

const index = readFileSync(path.join(projectRoot, 'demo/repo/src/index.js'), 'utf8');
const header = index.indexOf('/**');
/** The first change: reverse() appended at the end of src/index.js, with its test. */
const reverse = [
  write('src/index.js', `${index}\n/**\n * The characters of \`text\` in reverse order.\n * @param {string} text\n * @returns {string}\n */\nexport function reverse(text) {\n  return [...text].reverse().join('');\n}\n`),
  write('test/reverse.test.js', "import { test } from 'node:test';\nimport assert from 'node:assert/strict';\nimport { reverse } from '../src/index.js';\n\ntest('reverse', () => assert.equal(reverse('abc'), 'cba'));\n"),
];
/** The second: kebabCase() inserted near the top of the same file, far from the first change. */
const kebab = [
  write('src/index.js', `${index.slice(0, header)}/**\n * kebab-case: lower-case words joined by dashes.\n * @param {string} text\n * @returns {string}\n */\nexport function kebabCase(text) {\n  return text.trim().toLowerCase().split(/\\s+/).join('-');\n}\n\n${index.slice(header)}`),
  write('test/kebab.test.js', "import { test } from 'node:test';\nimport assert from 'node:assert/strict';\nimport { kebabCase } from '../src/index.js';\n\ntest('kebabCase', () => assert.equal(kebabCase(' Hello Big World '), 'hello-big-world'));\n"),
];

describe('impact notices', () => {
  let world: World;
  beforeAll(async () => {
    world = await World.create();
  });
  afterAll(async () => world?.close());

  it('tells the open runs whose work a landing touches, and the told run brings its branch up to date and lands', async () => {
    const [first, same, other, user] = ['first', 'same', 'other', 'user'].map((name) => world.id(name)) as [string, string, string, string];
    await world.addIssue({ identifier: first, title: 'Add reverse' }, [...reverse, shell('npm test'), finish('Added reverse() with a test.')]);
    await world.addIssue({ identifier: same, title: 'Add kebabCase' }, [
      ...kebab, shell('npm test'), finish('Added kebabCase() with a test.'),
      // Round 2, after the notice: bring the branch up to date with main as it is now.
      shell('git -c user.name=Agent -c user.email=agent@example.invalid merge --no-edit origin/main && npm test'),
      finish('Merged the new main (reverse) into the branch; npm test passes.'),
    ]);
    await world.addIssue({ identifier: other, title: 'Write usage notes' }, [write('docs/usage.md', '# Usage\n\nImport what you need from textkit.\n'), finish('Wrote docs/usage.md.')]);
    await world.addIssue({ identifier: user, title: 'Add loud' }, [
      write('src/loud.js', "import { capitalize } from './index.js';\n\nexport const loud = (text) => `${capitalize(text)}!`;\n"),
      write('test/loud.test.js', "import { test } from 'node:test';\nimport assert from 'node:assert/strict';\nimport { loud } from '../src/loud.js';\n\ntest('loud', () => assert.equal(loud('hey'), 'Hey!'));\n"),
      shell('npm test'),
      finish('Added loud() on top of capitalize().'),
    ]);
    const workpad = async (id: string) => (await world.tracker.listComments(id)).find((comment) => comment.body.startsWith(WORKPAD_MARKER))?.body ?? '';

    await world.run(async () => {
      const handles = await Promise.all([first, same, other, user].map((id) => world.start(id)));
      const [firstRun, sameRun, otherRun, userRun] = handles as [typeof handles[0], typeof handles[0], typeof handles[0], typeof handles[0]];
      // Every run has proven work (a snapshot on the host) before the first one lands.
      for (const handle of handles) await world.waitForPhase(handle, 'AwaitingApproval', 300_000);

      await approve(firstRun, 'alice');
      const landed = await firstRun.result();
      expect(landed.phase).toBe('Done');
      const commit = landed.landedCommit!;
      expect(await workpad(first)).toMatch(new RegExp(`Told 2 open run\\(s\\) that this landing on \`main\` touches their work: .*${same} \\(src/index\\.js\\)`));
      expect(await workpad(first)).toContain(`${user} (1 module link(s))`);
      expect(await workpad(first)).not.toContain(other);

      // The run on the same file is told: its status, its workpad, and what the approver reads.
      let told: IssueStatus | undefined;
      await world.waitUntil(async () => Boolean((told = await issueStatus(sameRun)).impact?.length), 'the run on the same file has the notice', 30_000);
      expect(told!.impact).toEqual([expect.objectContaining({ issue: first, workflowId: firstRun.workflowId, commit, targetBranch: 'main', files: ['src/index.js'], receivedInRound: 1 })]);
      expect(told!.impact![0]!.toldInRound).toBeUndefined();
      expect(told!.impactCount).toBe(1);
      expect(told!.phase).toBe('AwaitingApproval');
      await world.waitUntil(async () => (await workpad(same)).includes(`Impact notice: ${first} landed as \`${commit.slice(0, 12)}\` on \`main\``), "the notice is on the told run's workpad", 30_000);
      expect(await workpad(same)).toContain('files this run changed too: src/index.js');
      const { currentDetails } = await sameRun.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
      expect(currentDetails).toMatch(new RegExp(`### main moved under this work\\n- ${first} landed as \`${commit.slice(0, 12)}\`: files this run changed too: src/index\\.js`));

      // The run whose new module imports from the changed file is told through that link.
      let linked: IssueStatus | undefined;
      await world.waitUntil(async () => Boolean((linked = await issueStatus(userRun)).impact?.length), 'the run importing from the changed file has the notice', 30_000);
      expect(linked!.impact![0]).toMatchObject({ commit, files: [], symbols: [{ file: 'src/loud.js', from: 'src/index.js', names: ['capitalize'], changedBy: 'landed' }] });

      // The run on other files is not told; a malformed notice sent by hand is recorded, and the run waits on.
      expect(historyText((await otherRun.fetchHistory()).events)).not.toContain('impactNotice');
      expect((await issueStatus(otherRun)).impact).toBeUndefined();
      await otherRun.signal(impactNoticeSignal, { issue: 7, files: 'all' } as never);
      await world.waitUntil(async () => Boolean((await issueStatus(otherRun)).lastError?.startsWith('impactNotice expects')), 'the malformed notice is recorded', 30_000);
      expect((await issueStatus(otherRun)).phase).toBe('AwaitingApproval');
      expect((await issueStatus(otherRun)).impact).toBeUndefined();

      // The approver sends the told run back; its next round's prompt names the landed change and the file.
      await reject(sameRun, 'bob', 'main moved under this: bring the branch up to date.');
      let second: IssueStatus | undefined;
      await world.waitUntil(async () => {
        second = await issueStatus(sameRun);
        if (['Done', 'Failed', 'Cancelled'].includes(second.phase)) throw new Error(`the told run ended in ${second.phase}: ${second.lastError}`);
        return second.round === 2 && second.phase === 'AwaitingApproval';
      }, 'round 2 of the told run waits for approval', 300_000);
      expect(second!.impact![0]!.toldInRound).toBe(2);
      const prompt = world.modelRequests.find((request) => request.identifier === same && request.lastUserMessage?.includes('landed on main'))?.lastUserMessage;
      expect(prompt).toContain(`${first} ("Add reverse"), commit ${commit.slice(0, 12)}: files you changed too: src/index.js`);
      expect(prompt).toContain('git merge origin/main');
      expect(prompt).toContain('bring the branch up to date');

      // It merged main cleanly (no conflict round) and lands with both changes.
      await approve(sameRun, 'bob');
      const result = await sameRun.result();
      expect(result.phase).toBe('Done');
      expect(result.rounds).toBe(2);
      const main = await sh(world.remote, 'git show main:src/index.js');
      expect(main).toContain('export function kebabCase');
      expect(main).toContain('export function reverse');
      expect(await workpad(same)).not.toContain('Landing stopped');
      await world.recordHistory(firstRun, 'impact-landed-and-told');
      await world.recordHistory(sameRun, 'impact-told-merged-and-landed');
    });
  }, 600_000);
});
