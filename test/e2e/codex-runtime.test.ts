/**
 * The Codex runtime end to end: Symphony's `codex.command` selects it, the real `codex app-server`
 * (pinned, from the npm registry) runs inside the sandbox with no network, driven by the scripted
 * model over OpenAI's Responses API through the egress relay; the worker adds the key. The change
 * is proven by Cadenza's checks and lands after approval, like any other run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CODEX_VERSION } from '../../infra/agents.ts';
import { approve, issueStatus, reject } from '../../client/issues.ts';
import { EMPTY_TEXT_COMMAND, SHOUT_FILES_COMMAND } from '../fixtures/scripts.ts';
import { startStallingProxy, type StallingProxy } from '../fakes/stalling-proxy.ts';
import { changesUnderAgentClisDir, sandboxContainerOf } from '../helpers/agent-clis.ts';
import { onWorkspaceVolume, sessionTranscripts, waitForRound } from '../helpers/agent-sessions.ts';
import { World, historyText } from '../helpers/world.ts';
import type { ScriptTurn } from '../../lib/scripted-model/index.ts';

const SECRET = 'sk-codex-runtime-test-0123456789-DO-NOT-LEAK';
const exec = (cmd: string): ScriptTurn => ({ tool_calls: [{ name: 'exec_command', arguments: { cmd, tty: false, yield_time_ms: 20_000 } }] });

const SHOUT_BY_CODEX: ScriptTurn[] = [
  exec(SHOUT_FILES_COMMAND),
  exec('npm test 2>&1 | tail -5'),
  { say: 'Added shout() with a test; npm test passes.' },
];
/** Round 2 after a reviewer's rejection: the scripted model answers it at turn 3 when the conversation of round 1 is in the request. */
const EMPTY_TEXT_BY_CODEX: ScriptTurn[] = [
  exec(EMPTY_TEXT_COMMAND),
  exec('npm test 2>&1 | tail -5'),
  { say: "shout('') is empty now; npm test passes." },
];
const REJECTION = "shout('') should be empty, not \"!\"";

describe('agent runtime: Codex app-server in the sandbox', () => {
  let world: World;
  beforeAll(async () => {
    world = await World.create({ modelKey: SECRET, extraContract: 'codex: { command: codex app-server, read_timeout_ms: 60000 }\nagent: { max_turns: 2 }' });
  });
  afterAll(async () => world?.close());

  it('makes the change with the real codex binary, the proof passes, it lands after approval; the key stays with the worker', async () => {
    const id = world.id('codex');
    await world.addIssue({ identifier: id, title: 'Add shout' }, SHOUT_BY_CODEX);
    await world.run(async () => {
      const handle = await world.start(id);
      const waiting = await world.waitForPhase(handle, 'AwaitingApproval', 300_000);
      expect(waiting.model).toContain(`codex ${CODEX_VERSION}`);
      // The default image carries codex: none was copied into the sandbox.
      expect(await changesUnderAgentClisDir(world.docker, await sandboxContainerOf(world.docker, handle.workflowId))).toEqual([]);
      expect(waiting.proof[0]!.passed).toBe(true);
      expect(waiting.proof[0]!.changedFiles.sort()).toEqual(['src/shout.js', 'test/shout.test.js']);
      expect(waiting.tokens.total).toBeGreaterThan(0);
      // Codex spoke the Responses API to the scripted model, through the relay, one request per model turn.
      const requests = world.modelRequests.filter((request) => request.identifier === id);
      expect(requests.map((request) => [request.wire, request.turn])).toEqual([['responses', 0], ['responses', 1], ['responses', 2]]);
      // The test run's output came back to the model as the exec_command result.
      expect(requests[2]!.lastUserMessage).toMatch(/# fail 0/);

      await approve(handle, 'alice');
      const result = await handle.result();
      expect(result.phase).toBe('Done');
      expect(await world.remoteLog()).toContain(`Land ${id}: Add shout`);
      const status = await issueStatus(handle);
      expect(status.turns).toBe(3);
      expect(historyText(await handle.fetchHistory())).not.toContain(SECRET);
    });
  });

  // Runs that never land: the base stays without shout(), so round 1 always has a change to make.
  describe('later rounds', () => {
    let rounds: World;
    beforeAll(async () => {
      rounds = await World.create({ modelKey: SECRET, extraContract: 'codex: { command: codex app-server, read_timeout_ms: 60000 }\nagent: { max_turns: 2 }' });
    });
    afterAll(async () => rounds?.close());

    it('a later round continues the previous round\'s thread with the feedback as its next turn; tokens are split into input and output', async () => {
      const id = rounds.id('rounds');
      await rounds.addIssue({ identifier: id, title: 'Add shout' }, [...SHOUT_BY_CODEX, ...EMPTY_TEXT_BY_CODEX]);
      await rounds.run(async () => {
        const handle = await rounds.start(id);
        const first = await rounds.waitForPhase(handle, 'AwaitingApproval', 300_000);
        await reject(handle, 'bob', REJECTION);
        const second = await waitForRound(rounds, handle, 2);
        expect(second.proof.at(-1)!.passed).toBe(true);
        // One conversation: round 2's first request carries round 1's three answers, then the feedback.
        const requests = rounds.modelRequests.filter((request) => request.identifier === id);
        expect(requests.map((request) => request.turn)).toEqual([0, 1, 2, 3, 4, 5]);
        expect(requests[3]!.messages).toBeGreaterThan(requests[2]!.messages);
        expect(requests[3]!.lastUserMessage).toContain(REJECTION);
        expect(requests[3]!.lastUserMessage).toContain('A reviewer (bob) rejected landing');
        // The same codex thread, taken up where round 1 ended; the transcript says so.
        const [round1, round2] = await sessionTranscripts(handle, rounds.wired.deps.artifacts);
        expect(round1!.continuation).toEqual({ how: 'new', id: expect.any(String) });
        expect(round2!.continuation).toEqual({ how: 'continued', id: round1!.continuation!.id, fromRound: 1 });

        // Tokens as the Responses API reported them, input and output apart; the budget counts their sum.
        for (const status of [first, second]) {
          expect(status.tokens.input).toBeGreaterThan(0);
          expect(status.tokens.output).toBeGreaterThan(0);
          expect(status.tokens.input + status.tokens.output).toBe(status.tokens.total);
        }
        const exchanges = [...round1!.exchanges, ...round2!.exchanges];
        expect(second.tokens.input).toBe(exchanges.reduce((sum, exchange) => sum + exchange.inputTokens, 0));
        expect(second.tokens.output).toBe(exchanges.reduce((sum, exchange) => sum + exchange.outputTokens, 0));
        // Round 2's input is round 1's conversation and more: it costs more input than round 1 did.
        expect(second.tokens.input - first.tokens.input).toBeGreaterThan(first.tokens.input);
        await handle.cancel();
      });
    });

    it('a later round whose previous thread is gone starts a new thread primed with the previous round\'s transcript', async () => {
      const id = rounds.id('primed');
      await rounds.addIssue({ identifier: id, title: 'Add shout' }, [...SHOUT_BY_CODEX, ...EMPTY_TEXT_BY_CODEX]);
      await rounds.run(async () => {
        const handle = await rounds.start(id);
        await rounds.waitForPhase(handle, 'AwaitingApproval', 300_000);
        // codex's state on the workspace volume is lost, as with a volume rebuilt from the work's snapshot.
        await onWorkspaceVolume(rounds, handle, 'rm -rf /workspace/.cadenza-codex');
        await reject(handle, 'bob', REJECTION);
        const second = await waitForRound(rounds, handle, 2);
        expect(second.proof.at(-1)!.passed).toBe(true);
        // The new thread holds round 1's conversation from the transcript: the model sees its three answers before the feedback.
        const requests = rounds.modelRequests.filter((request) => request.identifier === id);
        expect(requests.map((request) => request.turn)).toEqual([0, 1, 2, 3, 4, 5]);
        expect(requests[3]!.lastUserMessage).toContain(REJECTION);
        const [round1, round2] = await sessionTranscripts(handle, rounds.wired.deps.artifacts);
        const round2Input = JSON.parse(round2!.exchanges[0]!.request).input as Array<{ type: string; role?: string; content?: Array<{ text?: string }> }>;
        const texts = round2Input.flatMap((item) => item.content?.map((part) => part.text ?? '') ?? []).join('\n');
        expect(texts).toContain(`Issue identifier: ${id}`);
        expect(texts).toContain('Added shout() with a test; npm test passes.');
        expect(round2Input.filter((item) => item.type === 'function_call')).toHaveLength(2);
        // A new thread, primed from round 1's transcript; the transcript says so.
        expect(round2!.continuation).toEqual({
          how: 'primed', id: expect.any(String), fromRound: 1, transcript: round1!.ref, primedWith: 'items',
          why: expect.stringMatching(`codex could not resume thread ${round1!.continuation!.id}: no rollout found`),
        });
        expect(round2!.continuation!.id).not.toBe(round1!.continuation!.id);
        await handle.cancel();
      });
    });
  });

  it('stops the agent mid-session once model.budget_tokens is spent, with the reason', async () => {
    const tight = await World.create({ modelKey: SECRET, extraContract: 'codex: { command: codex app-server }\nmodel: { budget_tokens: 100 }' });
    try {
      const id = tight.id('budget');
      await tight.addIssue({ identifier: id, title: 'Add shout' }, SHOUT_BY_CODEX);
      await tight.run(async () => {
        const handle = await tight.start(id);
        await tight.waitForPhase(handle, "Failed", 120_000);
        await expect(handle.result()).rejects.toThrow();
        const status = await issueStatus(handle);
        expect(status.phase).toBe('Failed');
        expect(status.lastError).toMatch(/token budget exhausted: model.budget_tokens \(100\) is spent: \d+ tokens used for .*; the agent was stopped mid-session/);
        // One model request got through; the next was refused by the worker, not sent on.
        expect(tight.modelRequests.filter((request) => request.identifier === id)).toHaveLength(1);
      });
    } finally {
      await tight.close();
    }
  });

  it('detects a stall from the event stream and retries the session, which resumes the thread and finishes', async () => {
    let proxy: StallingProxy | undefined;
    const stalling = await World.create({
      modelKey: SECRET,
      // The second model request of the first attempt gets no answer; the retry's is answered.
      wrapModelUrl: async (url) => (proxy = await startStallingProxy(url, { turn: 1, stallCount: 1 })).url,
      extraContract: 'codex: { command: codex app-server }\nagent: { max_turns: 2, stall_timeout_ms: 3000 }',
    });
    try {
      const id = stalling.id('stall');
      await stalling.addIssue({ identifier: id, title: 'Add shout' }, SHOUT_BY_CODEX);
      await stalling.run(async () => {
        const handle = await stalling.start(id);
        const waiting = await stalling.waitForPhase(handle, 'AwaitingApproval', 300_000);
        expect(proxy!.stalled).toHaveLength(1);
        expect(waiting.attempt).toBe(2);
        // The retry resumed codex's thread: its next request carried the first attempt's turn, so
        // the model was asked turn 1 again, not the whole session from the start.
        expect(stalling.modelRequests.filter((request) => request.identifier === id).map((request) => request.turn)).toEqual([0, 1, 1, 2]);
        expect(waiting.proof[0]!.passed).toBe(true);
        const history = historyText(await handle.fetchHistory());
        expect(history).toContain('codex sent nothing for 3000 ms (agent.stall_timeout_ms)');
        await handle.cancel();
      });
    } finally {
      await stalling.close();
      await proxy?.close();
    }
  });
});
