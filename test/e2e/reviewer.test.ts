/**
 * The reviewer and the progress note, end to end on the real Temporal server, Docker engine and git
 * with the scripted model: a required reviewer sends a round back with a line comment, the agent's
 * next round gets it and makes the change, the reviewer approves and the approver reads both verdicts
 * in the proof before it lands; a run's later rounds start with the progress note of the earlier
 * ones, which the status shows and `cadenza status` prints.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { approve, reject } from '../../client/issues.ts';
import { statusQuery } from '../../workflows/definitions.ts';
import type { ScriptTurn } from '../../lib/scripted-model/index.ts';
import { World, sh } from '../helpers/world.ts';
import { SHOUT, finish, write } from '../fixtures/scripts.ts';

const SHOUT_EMPTY = "export function shout(text) {\n  return text ? `${text.toUpperCase()}!` : '';\n}\n";
const SHOUT_TESTS = "import test from 'node:test';\nimport assert from 'node:assert/strict';\nimport { shout } from '../src/shout.js';\n\ntest('shout', () => assert.equal(shout('hi'), 'HI!'));\ntest('shout of nothing', () => assert.equal(shout(''), ''));\n";
const REQUESTED = "Return '' for empty text instead of '!'.";
const PRAISED = 'Good: the empty case has its own test.';
const reviewerTurn = (verdict: string, summary: string, comments: Array<{ file: string; line: number; text: string }>): ScriptTurn =>
  ({ tool_calls: [{ name: 'submit_review', arguments: { verdict, summary, comments } }] });
const doubleTest = "import test from 'node:test';\nimport assert from 'node:assert/strict';\nimport { double } from '../src/double.js';\n\ntest('double', () => assert.equal(double(21), 42));\n";

describe('the reviewer and the progress note on the real server, engine and git', () => {
  let world: World;
  beforeAll(async () => {
    world = await World.create({ extraContract: 'review: { required: true, max_turns: 4, budget_tokens: 200000, prompt: "Empty input matters." }' });
  });
  afterAll(async () => world?.close());

  /** The issue's script with the reviewer's turns beside the coding agent's (as the scripted model reads it). */
  const scriptWithReviewer = (id: string, turns: ScriptTurn[], reviewer: ScriptTurn[]) =>
    writeFileSync(path.join(world.scripts, `${id}.json`), JSON.stringify({ turns, reviewer: { turns: reviewer } }, null, 2));

  it('a required reviewer requests a change with a line comment; the next round makes it; the approver reads both verdicts; it lands', async () => {
    const id = world.id('reviewed');
    const agent: ScriptTurn[] = [
      ...SHOUT,
      // Round 2 starts with the reviewer's comment.
      { tool_calls: [{ name: 'read_file', arguments: { path: 'src/shout.js' } }] },
      { tool_calls: [write('src/shout.js', SHOUT_EMPTY).tool_calls![0]!, write('test/shout.test.js', SHOUT_TESTS).tool_calls![0]!] },
      finish("shout('') is now ''; a test covers it."),
    ];
    await world.addIssue({ identifier: id, title: 'Add shout' }, agent);
    scriptWithReviewer(id, agent, [
      { tool_calls: [{ name: 'read_file', arguments: { path: 'src/shout.js' } }] },
      reviewerTurn('request_changes', "shout('') returns '!': empty text should stay empty.", [{ file: 'src/shout.js', line: 2, text: REQUESTED }]),
      // The next review continues the same conversation.
      reviewerTurn('approve', 'Empty text is handled and tested.', [{ file: 'test/shout.test.js', line: 6, text: PRAISED }]),
    ]);
    const before = await world.remoteLog();
    await world.run(async () => {
      const handle = await world.start(id);
      const waiting = await world.waitForPhase(handle, 'AwaitingApproval');

      // Round 1 passed its checks but went back: the reviewer is required and asked for a change.
      expect(waiting.round).toBe(2);
      expect(waiting.proof.map((proof) => [proof.passed, proof.review?.verdict])).toEqual([[true, 'request_changes'], [true, 'approve']]);
      expect(waiting.proof[0]!.review).toMatchObject({ required: true, comments: [{ file: 'src/shout.js', line: 2, text: REQUESTED }], model: expect.stringContaining('scripted') });
      expect(waiting.proof[1]!.review).toMatchObject({ summary: 'Empty text is handled and tested.', comments: [{ file: 'test/shout.test.js', line: 6, text: PRAISED }] });
      expect(waiting.reviewTokens!.total).toBeGreaterThan(0);
      expect(waiting.headCommit).toBe(waiting.proof[1]!.headCommit);

      // The agent's second round was given the reviewer's summary and line comment.
      const agentRequests = world.modelRequests.filter((request) => request.identifier === id && !request.session);
      const round2 = agentRequests.find((request) => request.lastUserMessage?.includes("Cadenza's reviewer requested changes to round 1"));
      expect(round2?.lastUserMessage).toContain(`- src/shout.js:2: ${REQUESTED}`);
      // The reviewer ran apart from the agent, on its own turns, continuing its conversation in round 2.
      const reviews = world.modelRequests.filter((request) => request.identifier === id && request.session === 'reviewer');
      expect(reviews.map((request) => request.turn)).toEqual([0, 1, 2]);
      expect(reviews[0]!.lastUserMessage).toContain('Review round 1 of');
      expect(reviews[0]!.lastUserMessage).toContain('+++ b/src/shout.js');
      expect(reviews[2]!.lastUserMessage).toContain('The coding agent worked another round. Review round 2');

      // What the approver reads: the UI's current details, the walkthrough and the workpad.
      const { currentDetails: details } = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
      expect(details).toContain('### Reviewer: approved (required)\nEmpty text is handled and tested.');
      expect(details).toContain(`- \`test/shout.test.js:6\` ${PRAISED}`);
      const walkthrough = await world.wired.deps.artifacts.getText(waiting.proof[1]!.walkthrough.ref);
      expect(walkthrough).toContain('## Review: approved (required)');
      expect(walkthrough).toContain(`- \`test/shout.test.js:6\`: ${PRAISED}`);
      expect(walkthrough.indexOf('## Review')).toBeLessThan(walkthrough.indexOf('## What the agent says it did'));
      const first = await world.wired.deps.artifacts.getText(waiting.proof[0]!.walkthrough.ref);
      expect(first).toContain(`## Review: changes requested (required)`);
      expect(first).toContain(`- \`src/shout.js:2\`: ${REQUESTED}`);
      await world.waitUntil(async () => (await world.tracker.listComments(id)).some((c) => c.body.includes('**Reviewer: approved** (required)')), 'the workpad shows the verdict', 10_000);
      const workpad = (await world.tracker.listComments(id)).find((c) => c.body.includes('Cadenza workpad'))!.body;
      expect(workpad).toContain(`- \`test/shout.test.js:6\`: ${PRAISED}`);
      expect(workpad).toContain('Cadenza proof for round 1: passed; the reviewer requested changes (1 line comment): round 2 starts with the comments');
      expect(workpad).toContain('Cadenza proof for round 2: passed; the reviewer approved (1 line comment)');
      expect(await world.remoteLog()).toBe(before);

      await approve(handle, 'alice', 'reviewed twice');
      const result = await handle.result();
      expect(result.phase).toBe('Done');
      expect(await sh(world.remote, `git show ${result.landedCommit}:src/shout.js`)).toBe(SHOUT_EMPTY.trim());
      await world.recordHistory(handle, 'review-changes-requested-then-landed');
    });
  });

  it("later rounds start with the progress note of the earlier ones (round 3 gets round 1's failure); the status shows it and `cadenza status` prints it", async () => {
    const id = world.id('noted');
    await world.addIssue({ identifier: id, title: 'Add double' }, [
      { tool_calls: [write('src/double.js', 'export const double = (n) => n * 3;\n').tool_calls![0]!, write('test/double.test.js', doubleTest).tool_calls![0]!] },
      finish('Added double() as n * 3.'),
      write('src/double.js', 'export const double = (n) => n * 4;\n'),
      finish('Changed double() to n * 4.'),
      write('src/double.js', 'export const double = (n) => n * 2;\n'),
      finish('double() is n * 2 now.'),
      // After the rejection.
      write('src/double.js', 'export const double = (value) => value * 2;\n'),
      finish('Renamed the parameter to value.'),
    ]);
    await world.run(async () => {
      const handle = await world.start(id);
      const waiting = await world.waitForPhase(handle, 'AwaitingApproval');
      expect(waiting.round).toBe(3);
      expect(waiting.proof.map((proof) => proof.passed)).toEqual([false, false, true]);

      const prompts = world.modelRequests.filter((request) => request.identifier === id && !request.session).map((request) => request.lastUserMessage ?? '');
      // Round 2 starts with the note of round 1: what was tried and what the check said.
      const round2 = prompts.find((text) => text.includes('## Round 1: the proof failed (tests exited 1)'))!;
      expect(round2.startsWith("Cadenza's progress note for this issue follows")).toBe(true);
      expect(round2).toContain('- Tried: Added double() as n * 3.');
      expect(round2).toMatch(/63 !== 42/);
      // Round 3's feedback is about round 2 only; the note still carries round 1's mistake.
      const round3 = prompts.find((text) => text.includes('## Round 2: the proof failed (tests exited 1)'))!;
      expect(round3).toContain('## Round 1: the proof failed (tests exited 1)');
      expect(round3).toContain('- Tried: Added double() as n * 3.');
      expect(round3.match(/63 !== 42/g)?.length).toBe(1);
      expect(round3).toMatch(/84 !== 42/);

      // The status carries the note's reference and an excerpt; the CLI prints the note.
      expect(waiting.progress).toMatchObject({ ref: expect.stringMatching(/^sha256:[0-9a-f]{64}$/), round: 2 });
      expect(waiting.progress!.excerpt).toMatch(/^Round 2: the proof failed \(tests exited 1\)\. Tried: Changed double\(\) to n \* 4\./);
      const note = await world.wired.deps.artifacts.getText(waiting.progress!.ref);
      const cli = await world.cli(['status', id]);
      expect(cli.code, cli.stderr).toBe(0);
      expect(cli.stdout).toContain(`progress    note ${waiting.progress!.ref}, as of round 2: Round 2: the proof failed`);
      expect(cli.stdout).toContain(note.trimEnd().split('\n').map((line) => `    | ${line}`).join('\n'));
      expect(cli.stdout).toContain('review: approved (required)');

      // What a person asked goes into the note too: round 4 starts with the rejection of round 3.
      await reject(handle, 'bob', 'Name the parameter value, not n.');
      await world.waitUntil(async () => {
        const now = await handle.query(statusQuery);
        return now.round === 4 && now.phase === 'AwaitingApproval';
      }, 'round 4 waits for approval', 180_000);
      const again = await handle.query(statusQuery);
      const round4 = world.modelRequests.filter((request) => request.identifier === id && !request.session).map((request) => request.lastUserMessage ?? '').find((text) => text.includes('## Round 3: landing rejected by bob'))!;
      expect(round4).toContain('- bob rejected landing: "Name the parameter value, not n."');
      expect(round4).toContain('## Round 1: the proof failed (tests exited 1)');
      expect(again.progress!.round).toBe(3);

      await approve(handle, 'alice');
      const result = await handle.result();
      expect(result.phase).toBe('Done');
      const final = await handle.query(statusQuery);
      expect(final.progress).toMatchObject({ round: 4 });
      expect(final.progress!.excerpt).toMatch(/^Round 4: landed as [0-9a-f]{12}, approved by alice\. Tried: Renamed the parameter to value\./);
      await world.recordHistory(handle, 'progress-note-rounds-then-landed');
    });
  });
});
