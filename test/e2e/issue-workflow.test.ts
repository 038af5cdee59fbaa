import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { dockerClient } from '../../infra/docker.ts';
import { approve, issueStatus } from '../../lib/issue-client.ts';
import { containerName, volumeName } from '../../lib/sandbox/names.ts';
import { approveLandingSignal, rejectLandingSignal } from '../../workflows/definitions.ts';
import { World, historyText } from '../helpers/world.ts';

const docker = dockerClient();
const gone = async (workflowId: string) => {
  const container = await docker.getContainer(containerName(workflowId)).inspect().then(() => false, () => true);
  const volume = await docker.getVolume(volumeName(workflowId)).inspect().then(() => false, () => true);
  return container && volume;
};

const SHOUT = [
  { tool_calls: [{ name: 'read_file', arguments: { path: 'src/index.js' } }] },
  {
    tool_calls: [
      { name: 'write_file', arguments: { path: 'src/shout.js', content: "export function shout(text) {\n  return `${text.toUpperCase()}!`;\n}\n" } },
      { name: 'write_file', arguments: { path: 'test/shout.test.js', content: "import test from 'node:test';\nimport assert from 'node:assert/strict';\nimport { shout } from '../src/shout.js';\n\ntest('shout', () => assert.equal(shout('hi'), 'HI!'));\n" } },
    ],
  },
  { tool_calls: [{ name: 'run_shell', arguments: { command: 'npm test' } }] },
  { tool_calls: [{ name: 'finish', arguments: { summary: 'Added shout() with a test; npm test passes.' } }] },
];

describe('the issue workflow on the real Temporal server, Docker engine and git', () => {
  const SECRET = 'sk-cadenza-test-0123456789-DO-NOT-LEAK';
  let world: World;

  beforeAll(async () => {
    // The worker holds a model key (pointed at the scripted model's wire protocol) and the contract
    // refers to a secret by $VAR: neither value may reach workflow history.
    world = await World.create({ modelKey: SECRET, env: { CADENZA_TEST_SECRET: SECRET }, extraContract: 'model: { api_key: $CADENZA_TEST_SECRET }' });
  });
  afterAll(async () => world?.close());

  it('goes from Todo to a landed commit only after approveLanding, with tracker comments, and removes the sandbox', async () => {
    const id = world.id('shout');
    await world.addIssue({ identifier: id, title: 'Add shout' }, SHOUT);
    const before = await world.remoteLog();
    await world.worker.runUntil(async () => {
      const handle = await world.start(id);
      const waiting = await world.waitForPhase(handle, 'AwaitingApproval');
      expect(waiting.proof).toHaveLength(1);
      expect(waiting.proof[0]!.passed).toBe(true);
      expect(waiting.proof[0]!.changedFiles.sort()).toEqual(['src/shout.js', 'test/shout.test.js']);
      expect((await world.tracker.fetchIssuesByIds([id]))[0]!.state).toBe('Human Review');
      // Nothing lands while the run waits for a person.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(await world.remoteLog()).toBe(before);

      // A second start while it runs is a no-op: same run.
      const again = await world.start(id);
      expect((await again.describe()).runId).toBe((await handle.describe()).runId);

      await approve(handle, 'alice', 'ship it');
      const result = await handle.result();
      expect(result.phase).toBe('Done');
      expect(result.landedCommit).toMatch(/^[0-9a-f]{40}$/);

      const log = await world.remoteLog();
      expect(log.split('\n')[0]).toBe(`${result.landedCommit} Land ${id}: Add shout`);
      expect(log).toContain('Approved-by: alice');
      expect(await world.tracker.fetchIssuesByIds([id]).then(([issue]) => issue!.state)).toBe('Done');
      const comments = (await world.tracker.listComments(id)).map((c) => c.body);
      expect(comments[0]).toContain(`Cadenza started working on ${id}`);
      expect(comments.some((body) => body.includes('Cadenza proof for round 1: passed'))).toBe(true);
      expect(comments.at(-1)).toContain(`Landed ${id} as commit \`${result.landedCommit}\``);
      expect(await gone(handle.workflowId)).toBe(true);

      const history = await handle.fetchHistory();
      expect(historyText(history)).not.toContain(SECRET);
      expect(historyText(history)).toContain('CADENZA_TEST_SECRET'); // the reference is there, the value is not
    });
  });
});
