/**
 * The approver's and operator's seat, on the real server, engine and git: the proof where the
 * decision is made (the run's current details, read as the UI reads them), a described approval
 * wait, decisions refused with typed non-retryable errors, errors that clear once the run moves on,
 * a workpad that ends where the run ends, and bounds on rounds and on what history keeps.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ApplicationFailure, WorkflowUpdateFailedError } from '@temporalio/client';
import { approve, issueStatus, reject } from '../../client/issues.ts';
import { approveLandingSignal, approveLandingUpdate, HISTORY_CAPS, trackerUpdateSignal, WORKPAD_MARKER } from '../../workflows/definitions.ts';
import { openBrowser, openWorkflowPage, renderedText, screenshot } from '../helpers/browser.ts';
import { World } from '../helpers/world.ts';
import { finish, SHOUT, write } from '../fixtures/scripts.ts';

describe("the approver's seat", () => {
  let world: World;

  beforeAll(async () => {
    // max_turnz: a misspelt key is kept, and named wherever a person looks (up, start, the poll's result).
    world = await World.create({ extraContract: 'agent: { max_turns: 12, max_rounds: 2, max_turnz: 3 }' });
  });
  afterAll(async () => world?.close());

  it('shows the proof and copy-pasteable decisions in the UI details, refuses a wrong commit as non-retryable, clears a stale error and ends the workpad at Done', async () => {
    const id = world.id('seat');
    await world.addIssue({ identifier: id, title: 'Add shout' }, SHOUT);
    await world.run(async () => {
      const handle = await world.start(id);
      const waiting = await world.waitForPhase(handle, 'AwaitingApproval');
      const head = waiting.headCommit!;
      expect(head).toMatch(/^[0-9a-f]{40}$/);

      // What the UI shows as the run's current details (the same query the UI makes).
      const { currentDetails: details } = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
      expect(details).toContain(`Head commit: \`${head}\` (round 1)`);
      expect(details).toMatch(/\| pass \| `tests` \| required \| exit 0 \| \d+\.\d s \| \d+ tests, 0 failed \|/);
      expect(details).toMatch(/```\nadded +src\/shout\.js\nadded +test\/shout\.test\.js\n```/);
      expect(details).toMatch(/\*\*Changed files\*\* \(2: 2 files changed, \d+ insertions\(\+\)\)/);
      expect(details).toMatch(/Tokens: \d+ \(\d+ in, \d+ out\) on scripted/);
      // The decision commands are in code blocks, exactly as a person pastes them.
      const signalLine = `temporal workflow signal --namespace default --workflow-id ${handle.workflowId} --name approveLanding --input '{"by":"YOUR-NAME","commit":"${head}"}'`;
      expect(details).toContain(`\`\`\`\n{"by":"YOUR-NAME","commit":"${head}"}\nnpx cadenza approve ${id} --by YOUR-NAME --commit ${head.slice(0, 12)}\n${signalLine}\n\`\`\``);
      expect(details).toContain(`npx cadenza reject ${id} --by YOUR-NAME --feedback "what to change"`);

      // The same details in the Web UI, rendered as a person sees them: the JSON to paste keeps its
      // straight quotes and nothing in angle brackets is swallowed. The screenshot is kept.
      const browser = await openBrowser();
      try {
        const page = await openWorkflowPage(browser, inject('temporalUiUrl'), handle.workflowId, 'Head commit:', 'User Metadata');
        const shown = await renderedText(page);
        expect(shown).toContain(`{"by":"YOUR-NAME","commit":"${head}"}`);
        expect(shown).toContain(signalLine);
        expect(shown).not.toMatch(/[“”]/);
        expect(shown).toMatch(/pass\s+tests\s+required\s+exit 0/);
        await screenshot(page, 'approval-details');
      } finally {
        await browser.close();
      }

      // The approval wait is a timer with a summary in the timeline, not a bare duration.
      const history = await handle.fetchHistory();
      const timer = history.events!.find((event) => event.timerStartedEventAttributes);
      const summary = timer?.userMetadata?.summary?.data;
      expect(summary && JSON.parse(Buffer.from(summary).toString('utf8'))).toBe(`waiting for approval of ${head.slice(0, 12)}, up to 7 d`);

      // An update naming another commit is refused with a typed, non-retryable failure.
      const refused = await handle.executeUpdate(approveLandingUpdate, { args: [{ by: 'mallory', commit: 'deadbeefdeadbeef' }] }).catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(WorkflowUpdateFailedError);
      const cause = (refused as WorkflowUpdateFailedError).cause;
      expect(cause).toBeInstanceOf(ApplicationFailure);
      expect((cause as ApplicationFailure).type).toBe('WrongCommit');
      expect((cause as ApplicationFailure).nonRetryable).toBe(true);

      // A malformed signal is recorded in lastError ...
      await handle.signal(approveLandingSignal, {} as never);
      await world.waitUntil(async () => (await issueStatus(handle)).lastError !== null, 'the bad signal is recorded', 10_000);
      expect((await issueStatus(handle)).lastError).toContain('needs "by"');

      await approve(handle, 'alice', 'ship it');
      const result = await handle.result();
      expect(result.phase).toBe('Done');
      // ... and cleared once the run moved on.
      const done = await issueStatus(handle);
      expect(done.lastError).toBeNull();
      const workpad = (await world.tracker.listComments(id)).find((comment) => comment.body.startsWith(WORKPAD_MARKER))!.body;
      expect(workpad).toContain('**Phase:** Done');
      expect(workpad).not.toContain('**Phase:** Landing');
      const { currentDetails: final } = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
      expect(final).toContain(`Landed as \`${result.landedCommit}\` on \`main\`, approved by alice`);
      await world.recordHistory(handle, 'seat-approved-after-refusals');
    });
  });

  it('bounds rounds whatever starts them, and keeps only the latest comments, capped, in history', async () => {
    const id = world.id('bounded');
    const marks = (n: number) => [
      write('src/shout.js', `export function shout(text) {\n  return \`\${text.toUpperCase()}${'!'.repeat(n)}\`;\n}\n`),
      write('test/shout.test.js', `import test from 'node:test';\nimport assert from 'node:assert/strict';\nimport { shout } from '../src/shout.js';\n\ntest('shout', () => assert.equal(shout('hi'), 'HI${'!'.repeat(n)}'));\n`),
      finish(`${n} exclamation marks now.`),
    ];
    await world.addIssue({ identifier: id, title: 'Add shout' }, [...SHOUT, ...marks(2), ...marks(3)]);
    const before = await world.remoteLog();
    await world.run(async () => {
      const handle = await world.start(id);
      await world.waitForPhase(handle, 'AwaitingApproval');

      // Thirty long comments arrive at once: the status keeps the latest twenty, each cut.
      const comments = Array.from({ length: 30 }, (_, i) => ({ id: `c${i}`, author: 'carol', body: `comment ${i} ${'x'.repeat(10_000)}` }));
      await handle.signal(trackerUpdateSignal, { state: 'Human Review', comments });
      await world.waitUntil(async () => (await issueStatus(handle)).commentCount === 30, 'the comments are delivered', 10_000);
      const withComments = await issueStatus(handle);
      expect(withComments.comments.map((c) => c.id)).toEqual(comments.slice(-HISTORY_CAPS.comments).map((c) => c.id));
      expect(Math.max(...withComments.comments.map((c) => c.body.length))).toBeLessThan(HISTORY_CAPS.commentChars + 100);
      // The same comments again change nothing.
      await handle.signal(trackerUpdateSignal, { state: 'Human Review', comments: comments.slice(-5) });
      expect((await issueStatus(handle)).commentCount).toBe(30);

      // Two rejections: the second round was the last one agent.max_rounds allows.
      await reject(handle, 'bob', 'Two exclamation marks, please.');
      await world.waitUntil(async () => {
        const now = await issueStatus(handle);
        return now.round === 2 && now.phase === 'AwaitingApproval';
      }, 'round 2 awaits approval');
      await reject(handle, 'bob', 'Three, actually.');
      const failure = await handle.result().catch((error: unknown) => error as Error);
      expect(failure).toBeInstanceOf(Error);
      const status = await issueStatus(handle);
      expect(status.phase).toBe('Failed');
      expect(status.round).toBe(2);
      expect(status.lastError).toContain('the run used all 2 rounds (agent.max_rounds) without landing; round 2 ended with: landing rejected by bob');
      expect(await world.remoteLog()).toBe(before);
      await world.recordHistory(handle, 'seat-rounds-exhausted');
    });
  });

  it('cadenza schedule lists, pauses with a reason, resumes and deletes the poll schedule; polls and start name unknown contract keys', async () => {
    const scheduleId = await world.schedulePolls();
    const misspelt = 'agent.max_turnz is not a key Cadenza reads here; it is kept and ignored. Did you mean agent.max_turns?';
    await world.run(() => world.waitUntil(async () => (await world.pollResults()).length > 0, 'the first poll', 60_000));
    expect((await world.pollResults())[0]!.contractWarnings).toEqual([`${world.workflowFile}: ${misspelt}`]);

    const listed = await world.cli(['schedule', 'list']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`${scheduleId}\\s+active\\s+every \\d+ ms`));
    expect(listed.stdout).toContain(world.workflowFile);

    const paused = await world.cli(['schedule', 'pause', '--reason', 'tracker maintenance']);
    expect(paused.code, paused.stderr).toBe(0);
    expect(paused.stdout).toContain(`${scheduleId} paused: no new runs start from ${world.workflowFile}; open runs go on.`);
    const described = await world.client.schedule.getHandle(scheduleId).describe();
    expect(described.state.paused).toBe(true);
    // The note says why and what the schedule polls: pausing does not lose what it is for.
    expect(described.state.note).toBe(`Paused with cadenza schedule pause: tracker maintenance (polls ${world.workflowFile})`);
    expect((await world.cli(['schedule', 'list'])).stdout).toMatch(new RegExp(`${scheduleId}\\s+paused\\s+.*Paused with cadenza schedule pause: tracker maint`));

    const resumed = await world.cli(['schedule', 'resume']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect((await world.client.schedule.getHandle(scheduleId).describe()).state.paused).toBe(false);

    const deleted = await world.cli(['schedule', 'delete']);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect((await world.cli(['schedule', 'list'])).stdout).not.toContain(scheduleId);
    const gone = await world.cli(['schedule', 'pause']);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain(`no schedule ${scheduleId} (the poll schedule of ${world.workflowFile})`);
    const wrong = await world.cli(['schedule', 'stop']);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain('schedule: unknown action "stop"; choose one of list, pause, resume, delete');

    // `cadenza start` names the key before anything else.
    const started = await world.cli(['start', world.id('nope')]);
    expect(started.stderr).toContain(`warning: ${world.workflowFile}: ${misspelt}`);
  });
});
