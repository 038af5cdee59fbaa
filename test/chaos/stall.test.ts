/**
 * Chaos: things that stop answering instead of failing. A model request that never gets an answer is
 * given up after the stall window (`agent.stall_timeout_ms`, the model request timeout) and asked
 * again; a proof command that hangs is killed at its `timeout_ms` and the evidence is kept.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { issueStatus } from '../../client/issues.ts';
import { WORKPAD_MARKER, type Timing } from '../../workflows/definitions.ts';
import { startStallingProxy, type StallingProxy } from '../fakes/stalling-proxy.ts';
import { retriedSessionAttempts } from '../helpers/chaos.ts';
import { World } from '../helpers/world.ts';
import { SHOUT } from '../fixtures/scripts.ts';

const STALL_MS = 3000;
/**
 * The session heartbeats after every turn and, while a turn runs, every third of its heartbeat timeout
 * (at most every 5 s; activities/agent.ts), so a session waiting on the model stays alive. With 8 s,
 * what ends the stalled request here is the request timeout = the stall window, not the heartbeat.
 */
const TIMING: Timing = { retryInitialIntervalMs: 300, heartbeatTimeoutMs: 8000, activityStartToCloseMs: 120_000 };

const worlds: World[] = [];
const proxies: StallingProxy[] = [];

afterEach(async () => {
  await Promise.all(worlds.splice(0).map((world) => world.close()));
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
});

describe('chaos: stalls', () => {
  it('a model that stops answering: each request is given up after the stall window, the session is retried, resumes at its checkpoint and goes on', async () => {
    let proxy: StallingProxy | undefined;
    // The openai client tries a request three times (maxRetries 2), so three unanswered requests of
    // turn 1 fail the session's first attempt; the retried attempt asks turn 1 a fourth time and is answered.
    const world = await World.create({
      modelKey: 'sk-stall',
      extraContract: `agent: { max_turns: 12, stall_timeout_ms: ${STALL_MS} }`,
      wrapModelUrl: async (url) => {
        proxy = await startStallingProxy(url, { turn: 1, stallCount: 3 });
        proxies.push(proxy);
        return proxy.url;
      },
    });
    worlds.push(world);
    const id = world.id('stall');
    await world.addIssue({ identifier: id, title: 'Add shout' }, SHOUT);
    await world.run(async () => {
      const handle = await world.start(id, TIMING);
      const waiting = await world.waitForPhase(handle, 'AwaitingApproval', 240_000);

      // Turn 1 was asked four times: three stalled, the fourth (by the retried attempt) answered.
      const requests = world.modelRequests.map((request) => ({ turn: request.turn, at: Date.parse(request.at) }));
      expect(requests.map((request) => request.turn)).toEqual([0, 1, 1, 1, 1, 2, 3]);
      expect(proxy!.stalled).toHaveLength(3);
      for (const stalled of proxy!.stalled) {
        // Given up on at the stall window, not before and not much later.
        expect(stalled.abandonedAt).not.toBeNull();
        expect(stalled.abandonedAt! - stalled.at).toBeGreaterThanOrEqual(STALL_MS - 50);
        expect(stalled.abandonedAt! - stalled.at).toBeLessThan(STALL_MS + 2000);
      }
      const turn1 = requests.filter((request) => request.turn === 1).map((request) => request.at);
      for (let i = 1; i < turn1.length; i++) expect(turn1[i]! - turn1[i - 1]!).toBeGreaterThanOrEqual(STALL_MS - 50);

      // The stall failed the first attempt; the second resumed at the checkpoint (turn 0 not asked again).
      expect(waiting.attempt).toBe(2);
      expect(waiting.turns).toBe(SHOUT.length);
      const retried = await retriedSessionAttempts(handle);
      expect(retried).toHaveLength(1);
      expect(retried[0]).toMatchObject({ attempt: 2, lastFailure: expect.stringMatching(/Request timed out/) });
      expect(world.transcriptOf(handle.workflowId, 1).filter((message) => message.role === 'assistant')).toHaveLength(SHOUT.length);
      expect(waiting.proof[0]!.passed).toBe(true);
    });
  }, 300_000);

  it('a proof command that hangs is killed at its timeout; the check fails as timed out and its output is kept', async () => {
    const world = await World.create({
      extraContract: ['proof:', '  commands:', '    - { name: tests, run: "echo started the slow check && sleep 600", timeout_ms: 3000 }', '  max_rounds: 1'].join('\n'),
    });
    worlds.push(world);
    const id = world.id('hang');
    await world.addIssue({ identifier: id, title: 'Add shout' }, SHOUT.filter((turn) => turn.tool_calls?.[0]?.name !== 'run_shell'));
    await world.run(async () => {
      const started = Date.now();
      const handle = await world.start(id, TIMING);
      await expect(handle.result()).rejects.toMatchObject({ cause: { type: 'ProofFailed' } });
      expect(Date.now() - started).toBeLessThan(90_000);

      const status = await issueStatus(handle);
      expect(status.phase).toBe('Failed');
      expect(status.lastError).toMatch(/proof failed in 1 rounds/);
      expect(status.proof).toHaveLength(1);
      const [check] = status.proof[0]!.checks;
      expect(check).toMatchObject({ name: 'tests', passed: false, timedOut: true });
      expect(check!.durationMs).toBeGreaterThanOrEqual(3000);
      expect(check!.durationMs).toBeLessThan(15_000);

      // The evidence: the stored output says what ran, that it timed out, and keeps what it printed.
      const output = await world.wired.deps.artifacts.getText(check!.output.ref);
      expect(output).toContain('$ echo started the slow check && sleep 600');
      expect(output).toContain('(timed out after 3000 ms)');
      expect(output).toContain('started the slow check');
      expect(output).toMatch(/command timed out after 3000 ms and was killed/);
      expect(check!.excerpt).toContain('started the slow check');
      const walkthrough = await world.wired.deps.artifacts.getText(status.proof[0]!.walkthrough.ref);
      expect(walkthrough).toMatch(/FAIL `tests`: exit -?\d+, timed out/);
      const workpad = (await world.tracker.listComments(id)).find((comment) => comment.body.startsWith(WORKPAD_MARKER));
      expect(workpad?.body).toContain('Cadenza proof for round 1: FAILED');
    });
  }, 300_000);
});
