import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { dockerClient } from '../../infra/docker.ts';
import { run } from '../../infra/process.ts';
import { approve, issueStatus } from '../../client/issues.ts';
import { sandboxExists } from '../../lib/sandbox/container.ts';
import { World, runKeyOf } from '../helpers/world.ts';

const quickChange = (file: string) => [
  { tool_calls: [{ name: 'write_file', arguments: { path: file, content: `export const name = '${file}';\n` } }] },
  { tool_calls: [{ name: 'finish', arguments: { summary: `Added ${file}.` } }] },
];

describe('the scheduled poller on the local tracker', () => {
  let world: World;
  beforeAll(async () => {
    world = await World.create({ extraContract: 'polling: { interval_ms: 1000 }\nagent: { max_concurrent_agents: 2, max_turns: 12 }' });
  });
  afterAll(async () => world?.close());

  it('starts ready issues once each in priority order, within the concurrency limit, and holds blocked ones until their blocker is done', async () => {
    const [high, mid, low, none] = ['high', 'mid', 'low', 'none'].map((name) => world.id(name)) as [string, string, string, string];
    await world.addIssue({ identifier: mid, title: 'Mid', priority: 2 }, quickChange('src/mid.js'));
    await world.addIssue({ identifier: high, title: 'High', priority: 1 }, quickChange('src/high.js'));
    await world.addIssue({ identifier: low, title: 'Low, blocked by High', priority: 3, blocked_by: [high] }, quickChange('src/low.js'));
    await world.addIssue({ identifier: none, title: 'No priority' }, quickChange('src/none.js'));

    await world.run(async () => {
     try {
      await world.schedulePolls();
      let mostAtOnce = 0;
      const sample = async () => {
        const running = await world.runningIssues();
        mostAtOnce = Math.max(mostAtOnce, running.length);
        return running;
      };
      await world.waitUntil(async () => (await world.pollResults()).some((poll) => poll.started.length > 0), 'a poll starts work');
      expect(await sample()).toEqual([high, mid].sort());
      const first = (await world.pollResults()).find((poll) => poll.started.length > 0)!;
      expect(first.started).toEqual([high, mid]);
      expect(first.waiting).toEqual(expect.arrayContaining([
        { identifier: low, reason: expect.stringContaining(`blocked by ${high} (Todo)`) },
        { identifier: none, reason: expect.stringContaining('agent slots are busy') },
      ]));

      // Both hold their slots while they wait for approval; polls keep running and start nothing.
      await world.waitForPhase(world.handle(high), 'AwaitingApproval');
      await world.waitForPhase(world.handle(mid), 'AwaitingApproval');
      const pollsBefore = (await world.pollResults()).length;
      await world.waitUntil(async () => (await world.pollResults()).length >= pollsBefore + 2, 'two more polls');
      expect(await sample()).toEqual([high, mid].sort());

      // Landing High frees a slot and unblocks Low, which goes before the unprioritised issue.
      await approve(world.handle(high), 'alice');
      await world.handle(high).result();
      await world.waitUntil(async () => (await sample()).includes(low), 'the unblocked issue starts');
      expect(await sample()).toEqual([low, mid].sort());
      await approve(world.handle(mid), 'alice');
      await world.handle(mid).result();
      await world.waitUntil(async () => (await sample()).includes(none), 'the last issue starts');
      // From start and close times (visibility samples can lag behind).
      expect(mostAtOnce).toBeGreaterThanOrEqual(2);
      expect(await world.mostAtOnce([high, mid, low, none])).toBe(2);

      // Exactly one run per issue: every workflow id was started once.
      for (const id of [high, mid, low, none]) {
        const runs = [];
        for await (const run of world.client.workflow.list({ query: `WorkflowId = '${world.handle(id).workflowId}'` })) runs.push(run);
        expect(runs).toHaveLength(1);
      }
     } finally {
      for (const id of [high, mid, low, none]) await world.handle(id).cancel().catch(() => undefined);
     }
    });
  });

  it('delivers a comment added during AwaitingApproval, pauses and resumes with the tracker, and cancels when the issue closes', async () => {
    const id = world.id('reconcile');
    await world.addIssue({ identifier: id, title: 'Reconcile me', priority: 1 }, [
      { delay_ms: 2500, tool_calls: [{ name: 'run_shell', arguments: { command: 'true' } }] },
      { delay_ms: 2500, tool_calls: [{ name: 'run_shell', arguments: { command: 'true' } }] },
      ...quickChange('src/reconcile.js'),
    ]);
    await world.run(async () => {
      await world.schedulePolls();
      const handle = world.handle(id);
      await world.waitForPhase(handle, 'Working');

      // Moved out of the active states: the agent stops, the sandbox and work stay.
      await world.tracker.setState(id, 'Backlog');
      await world.waitUntil(async () => (await issueStatus(handle)).paused, 'the run pauses');
      expect(await sandboxExists(dockerClient(), runKeyOf(handle.workflowId))).toBe(true);
      await world.tracker.setState(id, 'In Progress');
      const waiting = await world.waitForPhase(handle, 'AwaitingApproval');
      expect(waiting.paused).toBe(false);

      // A human comment on the waiting issue reaches the workflow.
      await world.tracker.addComment(id, 'Could you also export a default?', 'dana');
      await world.waitUntil(async () => (await issueStatus(handle)).comments.some((c) => c.body === 'Could you also export a default?'), 'the comment arrives');
      expect((await issueStatus(handle)).comments.at(-1)).toMatchObject({ author: 'dana' });

      // Closing the issue in the tracker cancels the run and removes its sandbox within a poll.
      await world.tracker.setState(id, 'Closed');
      await expect(handle.result()).rejects.toThrow();
      expect((await handle.describe()).status.name).toBe('CANCELLED');
      await world.waitUntil(async () => !(await sandboxExists(dockerClient(), runKeyOf(handle.workflowId))), 'the sandbox is removed');
      const workpad = (await world.tracker.listComments(id)).find((c) => c.author === 'cadenza')!;
      expect(workpad.body).toContain('Paused: the issue moved to Backlog');
      expect(workpad.body).toContain('was cancelled');
    });
  });

  it('shows up in `temporal schedule list`, can be paused and triggered from the CLI, and reloads WORKFLOW.md', async () => {
    const cli = inject('temporalCli');
    const address = inject('temporalAddress');
    const temporal = async (...args: string[]) => {
      const result = await run(cli, [...args, '--address', address]);
      expect(result.code, result.stderr).toBe(0);
      return result.stdout;
    };
    await world.run(async () => {
      const scheduleId = await world.schedulePolls();
      expect(await temporal('schedule', 'list')).toContain(scheduleId);
      await temporal('schedule', 'toggle', '--schedule-id', scheduleId, '--pause', '--reason', 'maintenance');
      expect(await temporal('schedule', 'describe', '--schedule-id', scheduleId, '--output', 'json')).toMatch(/"paused":\s*true/);

      // A bad edit keeps the last good contract and says why; the next good edit is used.
      await world.waitUntil(async () => (await world.pollResults()).some((poll) => poll.contractWarning === null), 'a poll with the good contract');
      const good = readFileSync(world.workflowFile, 'utf8');
      writeFileSync(world.workflowFile, good.replace('agent: { max_concurrent_agents: 2, max_turns: 12 }', 'agent: { max_concurrent_agents: "lots" }'));
      await temporal('schedule', 'trigger', '--schedule-id', scheduleId, '--overlap-policy', 'AllowAll');
      await world.waitUntil(async () => Boolean((await world.pollResults()).at(-1)?.contractWarning), 'a poll reports the bad edit');
      const triggered = (await world.pollResults()).at(-1)!;
      expect(triggered.contractWarning).toContain('invalid_config');
      expect(triggered.contractWarning).toContain('agent.max_concurrent_agents');
      expect(triggered.contractWarning).toContain('the last good contract stays in use');
      writeFileSync(world.workflowFile, good);
      await temporal('schedule', 'trigger', '--schedule-id', scheduleId, '--overlap-policy', 'AllowAll');
      await world.waitUntil(async () => (await world.pollResults()).at(-1)?.contractWarning === null, 'a poll uses the fixed contract');
      await temporal('schedule', 'toggle', '--schedule-id', scheduleId, '--unpause', '--reason', 'done');
    });
  });
});
