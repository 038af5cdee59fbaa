/**
 * The Claude Code runtime end to end: the real `claude` binary (pinned, from the npm registry) in its
 * streaming JSON mode inside the sandbox with no network, driven by the scripted model over
 * Anthropic's Messages API through the egress relay; the worker adds the key. Cadenza proves the
 * change and it lands after approval.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLAUDE_CODE_VERSION } from '../../infra/agents.ts';
import { approve, issueStatus } from '../../client/issues.ts';
import type { ScriptTurn } from '../../lib/scripted-model/index.ts';
import { SHOUT_FILES_COMMAND } from '../fixtures/scripts.ts';
import { startStallingProxy, type StallingProxy } from '../fakes/stalling-proxy.ts';
import { changesUnderAgentClisDir, sandboxContainerOf } from '../helpers/agent-clis.ts';
import { World, historyText } from '../helpers/world.ts';

const SECRET = 'sk-ant-claude-runtime-test-0123456789-DO-NOT-LEAK';
const bash = (command: string): ScriptTurn => ({ tool_calls: [{ name: 'Bash', arguments: { command } }] });

const SHOUT_BY_CLAUDE: ScriptTurn[] = [
  bash(SHOUT_FILES_COMMAND),
  bash('npm test 2>&1 | tail -5'),
  { say: 'Added shout() with a test; npm test passes.' },
];

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
