/**
 * Chaos: an operator resets a run with `temporal workflow reset` (the CLI binary the tests use): to the
 * start of its second round, and to its first workflow task after the sandbox was removed by hand.
 */
import { afterEach, describe, expect, inject, it } from 'vitest';
import type { WorkflowHandle } from '@temporalio/client';
import { dockerClient } from '../../infra/docker.ts';
import { run } from '../../infra/process.ts';
import { approve } from '../../client/issues.ts';
import { removeSandbox, sandboxExists } from '../../lib/sandbox/container.ts';
import type { ScriptTurn } from '../../lib/scripted-model/index.ts';
import type { Timing } from '../../workflows/definitions.ts';
import { expectLandedExactlyOnce, volumeExists } from '../helpers/chaos.ts';
import { World, runKeyOf } from '../helpers/world.ts';

const docker = dockerClient();
const TIMING: Timing = { retryInitialIntervalMs: 300, heartbeatTimeoutMs: 10_000, activityStartToCloseMs: 120_000 };

const TEST_FILE = "import test from 'node:test';\nimport assert from 'node:assert/strict';\nimport { shout } from '../src/shout.js';\n\ntest('shout', () => assert.equal(shout('hi'), 'HI!'));\n";
/** Round 1 (turns 0-2) writes a shout() that fails its test; round 2 (turns 3-4) fixes it. */
const SCRIPT: ScriptTurn[] = [
  { tool_calls: [{ name: 'read_file', arguments: { path: 'src/index.js' } }] },
  {
    tool_calls: [
      { name: 'write_file', arguments: { path: 'src/shout.js', content: 'export function shout(text) {\n  return text;\n}\n' } },
      { name: 'write_file', arguments: { path: 'test/shout.test.js', content: TEST_FILE } },
    ],
  },
  { tool_calls: [{ name: 'finish', arguments: { summary: 'Added shout().' } }] },
  { tool_calls: [{ name: 'write_file', arguments: { path: 'src/shout.js', content: "export function shout(text) {\n  return `${text.toUpperCase()}!`;\n}\n" } }] },
  { tool_calls: [{ name: 'finish', arguments: { summary: 'Fixed shout() to upper-case and add "!".' } }] },
];

const worlds: World[] = [];
afterEach(async () => {
  await Promise.all(worlds.splice(0).map((world) => world.close()));
});

/**
 * The WorkflowTaskCompleted event right before round 2 began: before its provisionSandbox (each round
 * first makes sure the sandbox exists and stands at the previous round's head; round 1's is the run's).
 */
async function startOfRound2(handle: WorkflowHandle): Promise<number> {
  const events = (await handle.fetchHistory()).events ?? [];
  const provisions = events.filter((event) => event.activityTaskScheduledEventAttributes?.activityType?.name === 'provisionSandbox');
  expect(provisions).toHaveLength(2); // round 1 (the run's start), round 2
  const scheduledAt = events.indexOf(provisions[1]!);
  const completed = events.slice(0, scheduledAt).reverse().find((event) => event.workflowTaskCompletedEventAttributes);
  return Number(completed!.eventId);
}

/** The result of the run's (last) provisionSandbox, decoded from its history. */
async function provisioned(handle: WorkflowHandle): Promise<{ reattached: boolean; restored: boolean }> {
  const events = (await handle.fetchHistory()).events ?? [];
  const scheduled = events.find((event) => event.activityTaskScheduledEventAttributes?.activityType?.name === 'provisionSandbox');
  const completed = events.find((event) => String(event.activityTaskCompletedEventAttributes?.scheduledEventId) === String(scheduled?.eventId));
  const payload = completed?.activityTaskCompletedEventAttributes?.result?.payloads?.[0]?.data;
  if (!payload) throw new Error('no completed provisionSandbox in the history');
  return JSON.parse(Buffer.from(payload).toString('utf8')) as { reattached: boolean; restored: boolean };
}

/** After landing, the remote holds the work commits: `commit`'s parent must be `parent`. */
async function expectParent(world: World, handle: WorkflowHandle, commit: string, parent: string) {
  void handle;
  const snapshotParent = await run('git', ['--git-dir', world.remote, 'rev-parse', `${commit}^`]).catch(() => undefined);
  // The commit reaches the remote only when it lands; before that it lives in the host mirror.
  const mirrorParents = await run('sh', ['-c', `for m in ${world.state}/mirrors/*.git; do git --git-dir "$m" rev-parse "${commit}^" 2>/dev/null; done`]);
  const parents = [snapshotParent?.code === 0 ? snapshotParent.stdout.trim() : '', ...mirrorParents.stdout.trim().split('\n')].filter(Boolean);
  expect(parents).toContain(parent);
}

async function resetRun(world: World, handle: WorkflowHandle, to: string[]): Promise<WorkflowHandle> {
  const before = (await handle.describe()).runId;
  const reset = await run(inject('temporalCli'), ['workflow', 'reset', '--workflow-id', handle.workflowId, ...to, '--reason', 'test', '--address', world.temporalAddress]);
  expect(reset.code, reset.stderr).toBe(0);
  const latest = world.client.workflow.getHandle(handle.workflowId);
  expect((await latest.describe()).runId).not.toBe(before);
  return latest;
}

/** A world with the two-round issue, run to AwaitingApproval in round 2. */
async function twoRounds(world: World, name: string) {
  const id = world.id(name);
  const title = 'Add shout';
  await world.addIssue({ identifier: id, title }, SCRIPT);
  const handle = await world.start(id, TIMING);
  const waiting = await world.waitForPhase(handle, 'AwaitingApproval');
  expect(waiting.round).toBe(2);
  expect(waiting.proof.map((proof) => proof.passed)).toEqual([false, true]);
  expect(world.modelRequests.map((request) => request.turn)).toEqual([0, 1, 2, 3, 4]);
  return { id, title, handle, waiting };
}

describe('chaos: temporal workflow reset', () => {
  it('to the start of round 2 (sandbox still there): the new run repeats round 2 afresh, waits for approval and lands once', async () => {
    const world = await World.create();
    worlds.push(world);
    await world.run(async () => {
      const { id, title, handle, waiting } = await twoRounds(world, 'round2');
      const eventId = await startOfRound2(handle);
      const latest = await resetRun(world, handle, ['--event-id', String(eventId)]);
      console.info(`[chaos] ${handle.workflowId}: reset to event ${eventId} (the WorkflowTaskCompleted before round 2's runAgentSession was scheduled)`);

      const again = await world.waitForPhase(latest, 'AwaitingApproval', 120_000);
      expect(again.round).toBe(2);
      // Round 2's session ran again from the start of the round (checkpoints are per run), on round 1's transcript.
      expect(world.modelRequests.map((request) => request.turn)).toEqual([0, 1, 2, 3, 4, 3, 4]);
      expect(world.modelRequests.at(-2)!.lastUserMessage).toMatch(/Check `tests` exited with 1/);
      expect(again.attempt).toBe(1);
      // Round 1's proof comes from the replayed history; round 2's was made again.
      expect(again.proof.map((proof) => proof.passed)).toEqual([false, true]);
      expect(again.proof[1]!.changedFiles.sort()).toEqual(['src/shout.js', 'test/shout.test.js']);
      expect(await provisioned(latest)).toMatchObject({ reattached: false, restored: false });
      // The workspace was rewound to round 1's head: round 2's new commit sits on it, not on the old round 2.
      expect(again.proof[1]!.headCommit).not.toBe(waiting.proof[1]!.headCommit);
      await expectParent(world, latest, again.proof[1]!.headCommit, waiting.proof[0]!.headCommit);

      await approve(latest, 'alice');
      const result = await expectLandedExactlyOnce(world, latest, id, title);
      expect(result.rounds).toBe(2);
    });
  }, 300_000);

  it('to the start of round 2 after the sandbox was removed: round 2 rebuilds it at round 1\'s head and the run lands once', async () => {
    const world = await World.create();
    worlds.push(world);
    await world.run(async () => {
      const { id, title, handle, waiting } = await twoRounds(world, 'gone');
      await removeSandbox(docker, runKeyOf(handle.workflowId));
      expect(await sandboxExists(docker, runKeyOf(handle.workflowId))).toBe(false);
      const latest = await resetRun(world, handle, ['--event-id', String(await startOfRound2(handle))]);
      const again = await world.waitForPhase(latest, 'AwaitingApproval', 180_000);
      expect(again.round).toBe(2);
      expect(world.modelRequests.map((request) => request.turn)).toEqual([0, 1, 2, 3, 4, 3, 4]);
      expect(again.proof.map((proof) => proof.passed)).toEqual([false, true]);
      await expectParent(world, latest, again.proof[1]!.headCommit, waiting.proof[0]!.headCommit);
      await approve(latest, 'alice');
      await expectLandedExactlyOnce(world, latest, id, title);
    });
  }, 300_000);

  it('to the first workflow task after the sandbox was removed by hand: the whole run starts over from the base as it is now, in a new sandbox; the run lands once', async () => {
    const world = await World.create();
    worlds.push(world);
    await world.run(async () => {
      const { id, title, handle } = await twoRounds(world, 'first');
      await removeSandbox(docker, runKeyOf(handle.workflowId));
      expect(await sandboxExists(docker, runKeyOf(handle.workflowId))).toBe(false);
      expect(await volumeExists(handle.workflowId)).toBe(false);

      const latest = await resetRun(world, handle, ['--type', 'FirstWorkflowTask']);
      await world.waitUntil(() => sandboxExists(docker, runKeyOf(handle.workflowId)), 'the sandbox is created again', 60_000);
      const again = await world.waitForPhase(latest, 'AwaitingApproval', 180_000);
      // A new container and volume; round 1 starts from the base, not from the earlier work's snapshot.
      expect(await provisioned(latest)).toMatchObject({ reattached: false, restored: false });
      // Both rounds ran again in the new run (its checkpoints are its own).
      expect(world.modelRequests.map((request) => request.turn)).toEqual([0, 1, 2, 3, 4, 0, 1, 2, 3, 4]);
      expect(again.proof.map((proof) => proof.passed)).toEqual([false, true]);

      await approve(latest, 'alice');
      await expectLandedExactlyOnce(world, latest, id, title);
    });
  }, 300_000);
});
