/**
 * The Claude Code runtime end to end: the real `claude` binary (pinned, from the npm registry) in its
 * streaming JSON mode inside the sandbox with no network, driven by the scripted model over
 * Anthropic's Messages API through the egress relay; the worker adds the key. Cadenza proves the
 * change and it lands after approval.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLAUDE_CODE_VERSION } from '../../infra/agents.ts';
import { approve, issueStatus, reject } from '../../client/issues.ts';
import type { ScriptTurn } from '../../lib/scripted-model/index.ts';
import { EMPTY_TEXT_COMMAND, SHOUT_FILES_COMMAND } from '../fixtures/scripts.ts';
import { startStallingProxy, type StallingProxy } from '../fakes/stalling-proxy.ts';
import { changesUnderAgentClisDir, sandboxContainerOf } from '../helpers/agent-clis.ts';
import { onWorkspaceVolume, sessionTranscripts, waitForRound } from '../helpers/agent-sessions.ts';
import { World, historyText } from '../helpers/world.ts';

const SECRET = 'sk-ant-claude-runtime-test-0123456789-DO-NOT-LEAK';
const bash = (command: string): ScriptTurn => ({ tool_calls: [{ name: 'Bash', arguments: { command } }] });

const SHOUT_BY_CLAUDE: ScriptTurn[] = [
  bash(SHOUT_FILES_COMMAND),
  bash('npm test 2>&1 | tail -5'),
  { say: 'Added shout() with a test; npm test passes.' },
];
/** Round 2 after a reviewer's rejection: the scripted model answers it at turn 3 when the conversation of round 1 is in the request. */
const EMPTY_TEXT_BY_CLAUDE: ScriptTurn[] = [
  bash(EMPTY_TEXT_COMMAND),
  bash('npm test 2>&1 | tail -5'),
  { say: "shout('') is empty now; npm test passes." },
];
const REJECTION = "shout('') should be empty, not \"!\"";

describe('agent runtime: Claude Code in the sandbox', () => {
  let world: World;
  beforeAll(async () => {
    // The scripted model answers the Messages API too; the worker's Anthropic key is the secret here.
    world = await World.create({ env: { ANTHROPIC_API_KEY: SECRET }, extraContract: 'agent: { runtime: claude-code, max_turns: 10 }\nmodel: { name: claude-sonnet-4-5 }' });
  });
  afterAll(async () => world?.close());

  it('makes the change with the real claude binary, the proof passes, it lands after approval; the key stays with the worker', async () => {
    const id = world.id('claude');
    await world.addIssue({ identifier: id, title: 'Add shout' }, SHOUT_BY_CLAUDE);
    await world.run(async () => {
      const handle = await world.start(id);
      const waiting = await world.waitForPhase(handle, 'AwaitingApproval', 300_000);
      expect(waiting.model).toContain(`claude-code ${CLAUDE_CODE_VERSION}`);
      // The default image carries claude: none was copied into the sandbox.
      expect(await changesUnderAgentClisDir(world.docker, await sandboxContainerOf(world.docker, handle.workflowId))).toEqual([]);
      expect(waiting.proof[0]!.passed).toBe(true);
      expect(waiting.proof[0]!.changedFiles.sort()).toEqual(['src/shout.js', 'test/shout.test.js']);
      expect(waiting.tokens.total).toBeGreaterThan(0);
      const requests = world.modelRequests.filter((request) => request.identifier === id);
      expect(requests.map((request) => [request.wire, request.turn])).toEqual([['messages', 0], ['messages', 1], ['messages', 2]]);
      expect(requests[2]!.lastUserMessage).toMatch(/# fail 0/);

      await approve(handle, 'alice');
      const result = await handle.result();
      expect(result.phase).toBe('Done');
      expect(await world.remoteLog()).toContain(`Land ${id}: Add shout`);
      expect((await issueStatus(handle)).turns).toBe(3);
      expect(historyText(await handle.fetchHistory())).not.toContain(SECRET);
    });
  });

  // Runs that never land: the base stays without shout(), so round 1 always has a change to make.
  describe('later rounds', () => {
    let rounds: World;
    beforeAll(async () => {
      rounds = await World.create({ env: { ANTHROPIC_API_KEY: SECRET }, extraContract: 'agent: { runtime: claude-code, max_turns: 10 }\nmodel: { name: claude-sonnet-4-5 }' });
    });
    afterAll(async () => rounds?.close());

    it('a later round continues the previous round\'s session with the feedback as its next message; tokens are split into input and output', async () => {
      const id = rounds.id('rounds');
      await rounds.addIssue({ identifier: id, title: 'Add shout' }, [...SHOUT_BY_CLAUDE, ...EMPTY_TEXT_BY_CLAUDE]);
      await rounds.run(async () => {
        const handle = await rounds.start(id);
        const first = await rounds.waitForPhase(handle, 'AwaitingApproval', 300_000);
        await reject(handle, 'bob', REJECTION);
        const second = await waitForRound(rounds, handle, 2);
        expect(second.proof.at(-1)!.passed).toBe(true);
        // One conversation: round 2's first request carries round 1's messages (three answers), then the feedback.
        const requests = rounds.modelRequests.filter((request) => request.identifier === id);
        expect(requests.map((request) => request.turn)).toEqual([0, 1, 2, 3, 4, 5]);
        expect(requests[3]!.messages).toBe(requests[2]!.messages + 2);
        expect(requests[3]!.lastUserMessage).toContain(REJECTION);
        expect(requests[3]!.lastUserMessage).toContain('A reviewer (bob) rejected landing');
        // The same claude session, resumed where round 1 ended; the transcript says so.
        const [round1, round2] = await sessionTranscripts(handle, rounds.wired.deps.artifacts);
        expect(round1!.continuation).toEqual({ how: 'new', id: expect.any(String) });
        expect(round2!.continuation).toEqual({ how: 'continued', id: round1!.continuation!.id, fromRound: 1 });

        // Tokens as the Messages API reported them (input with message_start, output with message_delta); the budget counts their sum.
        for (const status of [first, second]) {
          expect(status.tokens.input).toBeGreaterThan(0);
          expect(status.tokens.output).toBeGreaterThan(0);
          expect(status.tokens.input + status.tokens.output).toBe(status.tokens.total);
        }
        const exchanges = [...round1!.exchanges, ...round2!.exchanges];
        expect(second.tokens.input).toBe(exchanges.reduce((sum, exchange) => sum + exchange.inputTokens, 0));
        expect(second.tokens.output).toBe(exchanges.reduce((sum, exchange) => sum + exchange.outputTokens, 0));
        // message_start says output_tokens 1; the count is message_delta's.
        expect(exchanges.every((exchange) => exchange.outputTokens > 1)).toBe(true);
        expect(second.tokens.input - first.tokens.input).toBeGreaterThan(first.tokens.input);
        await handle.cancel();
      });
    });

    it.each([
      {
        state: 'is gone', name: 'gone',
        // claude's sessions on the workspace volume are lost, as with a volume rebuilt from the work's snapshot.
        spoil: 'rm -rf /workspace/.cadenza-claude',
        why: (session: string) => `its session ${session} is gone from /workspace/.cadenza-claude`,
      },
      {
        state: 'cannot be read', name: 'unreadable',
        // The session file is there but claude cannot load it: its resume fails, and the same attempt starts a new session.
        spoil: 'for f in /workspace/.cadenza-claude/.claude/projects/*/*.jsonl; do echo "not a session" > "$f"; done',
        why: (session: string) => `claude could not resume session ${session}: No conversation found with session ID: ${session}`,
      },
    ])('a later round whose previous session $state starts a new session primed with the previous round\'s transcript', async ({ name, spoil, why }) => {
      const id = rounds.id(name);
      // Primed as text, the new session's first request has no answers in it yet: the script's turn 0
      // again, so its command looks at the workspace.
      await rounds.addIssue({ identifier: id, title: 'Add shout' }, [
        bash(`if [ -f src/shout.js ]; then\n${EMPTY_TEXT_COMMAND}\nelse\n${SHOUT_FILES_COMMAND}\nfi`),
        ...SHOUT_BY_CLAUDE.slice(1),
      ]);
      await rounds.run(async () => {
        const handle = await rounds.start(id);
        await rounds.waitForPhase(handle, 'AwaitingApproval', 300_000);
        await onWorkspaceVolume(rounds, handle, spoil);
        await reject(handle, 'bob', REJECTION);
        const second = await waitForRound(rounds, handle, 2);
        expect(second.proof.at(-1)!.passed).toBe(true);
        expect(second.attempt).toBe(1);
        // The new session's first message carries round 1's conversation from the transcript, then the round's prompt and feedback.
        const requests = rounds.modelRequests.filter((request) => request.identifier === id);
        expect(requests.map((request) => request.turn)).toEqual([0, 1, 2, 0, 1, 2]);
        const primed = requests[3]!.lastUserMessage!;
        expect(primed).toContain('<earlier-conversation>');
        expect(primed).toContain(`[user]\nIssue identifier: ${id}`);
        expect(primed).toContain('[assistant called Bash]');
        expect(primed).toContain('# fail 0');
        expect(primed).toContain('[assistant]\nAdded shout() with a test; npm test passes.');
        expect(primed.indexOf(REJECTION)).toBeGreaterThan(primed.indexOf('</earlier-conversation>'));
        // A new session, primed from round 1's transcript; the transcript says so.
        const [round1, round2] = await sessionTranscripts(handle, rounds.wired.deps.artifacts);
        expect(round2!.continuation).toEqual({
          how: 'primed', id: expect.any(String), fromRound: 1, transcript: round1!.ref, primedWith: 'text', why: why(round1!.continuation!.id),
        });
        expect(round2!.continuation!.id).not.toBe(round1!.continuation!.id);
        await handle.cancel();
      });
    });
  });

  it('detects a stall from the event stream and retries the session, which resumes it and finishes', async () => {
    let proxy: StallingProxy | undefined;
    const stalling = await World.create({
      modelKey: 'sk-openai-unused',
      anthropicKey: SECRET,
      // The model endpoint is the stalling proxy in front of the scripted model: the second request of the first attempt gets no answer.
      wrapModelUrl: async (url) => (proxy = await startStallingProxy(url, { turn: 1, stallCount: 1 })).url,
      extraContract: 'agent: { runtime: claude-code, max_turns: 10, stall_timeout_ms: 3000 }\nmodel: { name: claude-sonnet-4-5 }',
    });
    try {
      const id = stalling.id('stall');
      await stalling.addIssue({ identifier: id, title: 'Add shout' }, SHOUT_BY_CLAUDE);
      await stalling.run(async () => {
        const handle = await stalling.start(id);
        const waiting = await stalling.waitForPhase(handle, 'AwaitingApproval', 300_000);
        expect(proxy!.stalled).toHaveLength(1);
        expect(waiting.attempt).toBe(2);
        expect(waiting.proof[0]!.passed).toBe(true);
        // The retry resumed claude's session instead of starting over: no second first turn. (Claude
        // records the interrupted turn in the session, so the resumed request counts as the third.)
        expect(stalling.modelRequests.filter((request) => request.identifier === id).map((request) => request.turn)).toEqual([0, 1, 2]);
        await handle.cancel();
      });
    } finally {
      await stalling.close();
      await proxy?.close();
    }
  });
});
