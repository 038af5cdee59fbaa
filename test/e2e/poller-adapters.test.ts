/**
 * The scheduled poller against Linear and GitHub: the real adapters (the Linear SDK, GitHub's REST
 * API) talk to local servers speaking each service's wire protocol, everything else is real.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { dockerClient } from '../../infra/docker.ts';
import { issueStatus } from '../../client/issues.ts';
import { sandboxExists } from '../../lib/sandbox/container.ts';
import { startFakeGitHub, type FakeGitHub } from '../fakes/github-server.ts';
import { startFakeLinear, type FakeLinear } from '../fakes/linear-server.ts';
import { World, historyText, runKeyOf } from '../helpers/world.ts';

const script = (file: string, slow = false) => ({
  turns: [
    ...(slow ? [{ delay_ms: 3000, tool_calls: [{ name: 'run_shell', arguments: { command: 'true' } }] }] : []),
    { tool_calls: [{ name: 'write_file', arguments: { path: file, content: `export const name = '${file}';\n` } }] },
    { tool_calls: [{ name: 'finish', arguments: { summary: `Added ${file}.` } }] },
  ],
});

interface Adapter {
  name: string;
  contract: (prefix: string, url: string) => string;
  env: Record<string, string>;
  start(prefix: string): Promise<{ url: string; close(): Promise<void> }>;
  /** Adds issues a (priority 1), b (priority 2, blocked by a), c (priority 3), d (slow); returns identifiers. */
  seed(world: World): Promise<{ a: string; b: string; c: string; d: string }>;
  close(identifier: string): Promise<void>;
  /** The next `count` requests answer 500 or a rate limit. */
  fail(count: number, kind: 'http500' | 'ratelimited'): void;
  stateOf(identifier: string): string;
  comments(identifier: string): string[];
}

let linear: FakeLinear | undefined;
let github: FakeGitHub | undefined;
const numbers = new Map<string, number>();

const adapters: Adapter[] = [
  {
    name: 'Linear',
    env: { CADENZA_TEST_LINEAR_KEY: 'lin_api_test_key' },
    contract: (_prefix, url) => `tracker: { kind: linear, endpoint: "${url}", api_key: $CADENZA_TEST_LINEAR_KEY, project_slug: cadenza-demo, terminal_states: [Done, Canceled] }`,
    start: async () => (linear = await startFakeLinear({ apiKey: 'lin_api_test_key', projectSlug: 'cadenza-demo' })),
    seed: async (world) => {
      const [a, b, c, d] = ['1', '2', '3', '4'].map((n) => world.id(n)) as [string, string, string, string];
      linear!.addIssue({ identifier: c, title: 'Third', state: 'Todo', priority: 3, createdAt: '2026-01-01T00:00:00Z' });
      linear!.addIssue({ identifier: b, title: 'Second, blocked by First', state: 'Todo', priority: 2, blockedBy: [a] });
      linear!.addIssue({ identifier: a, title: 'First', state: 'Todo', priority: 1 });
      return { a, b, c, d };
    },
    close: async (identifier) => linear!.setState(identifier, 'Canceled'),
    fail: (count, kind) => linear!.failNext(count, kind),
    stateOf: (identifier) => linear!.issue(identifier).state,
    comments: (identifier) => linear!.issue(identifier).comments.map((comment) => comment.body),
  },
  {
    name: 'GitHub',
    env: { CADENZA_TEST_GITHUB_TOKEN: 'ghp_test_token' },
    contract: (prefix, url) => `tracker: { kind: github, endpoint: "${url}", api_key: $CADENZA_TEST_GITHUB_TOKEN, repository: acme/${prefix.toLowerCase()} }`,
    start: async (prefix) => (github = await startFakeGitHub({ token: 'ghp_test_token', repository: `acme/${prefix.toLowerCase()}` })),
    seed: async (world) => {
      const name = world.prefix.toLowerCase();
      const c = github!.addIssue({ title: 'Third', labels: ['priority:3'], createdAt: '2026-01-01T00:00:00Z' });
      const a = github!.addIssue({ title: 'First', labels: ['priority:1'] });
      const b = github!.addIssue({ title: 'Second, blocked by First', labels: ['priority:2'], blockedBy: [a] });
      const ids = { a: `${name}-${a}`, b: `${name}-${b}`, c: `${name}-${c}`, d: `${name}-4` };
      for (const [id, number] of [[ids.a, a], [ids.b, b], [ids.c, c]] as const) numbers.set(id, number);
      return ids;
    },
    close: async (identifier) => github!.close(numbers.get(identifier)!, 'not_planned'),
    fail: (count, kind) => github!.failNext(count, kind),
    stateOf: (identifier) => {
      const issue = github!.issue(numbers.get(identifier)!);
      return issue.state === 'closed' ? 'Done' : (issue.labels.find((label) => label.startsWith('state:'))?.slice(6) ?? 'Todo');
    },
    comments: (identifier) => github!.issue(numbers.get(identifier)!).comments.map((comment) => comment.body),
  },
];

describe.each(adapters)('the scheduled poller against $name', (adapter) => {
  let world: World;
  let server: { close(): Promise<void> } | undefined;
  afterAll(async () => {
    await world?.close();
    await server?.close();
  });

  it('starts each ready issue once, in order, within the limit; a blocked issue waits for its blocker; closing an issue cancels its run', async () => {
    const prefix = `T${Date.now().toString(36).toUpperCase()}`;
    let url = '';
    world = await World.create({
      env: adapter.env,
      contractFor: async (worldPrefix) => {
        server = await adapter.start(worldPrefix);
        url = (server as unknown as { url: string }).url;
        return [adapter.contract(worldPrefix, url), 'polling: { interval_ms: 1000 }', 'agent: { max_concurrent_agents: 1, max_turns: 12 }', 'landing: { require_approval: false }'].join('\n');
      },
    });
    void prefix;
    const ids = await adapter.seed(world);
    for (const [key, id] of Object.entries(ids)) writeFileSync(path.join(world.scripts, `${id}.json`), JSON.stringify(script(`src/${key}.js`, key === 'd')));

    await world.run(async () => {
      await world.schedulePolls();
      await world.waitUntil(async () => {
        const closed = await Promise.all([ids.a, ids.b, ids.c].map((id) => world.handle(id).describe().then((d) => d.status.name === 'COMPLETED', () => false)));
        return closed.every(Boolean);
      }, 'all three issues ran', 180_000);
      const starts = await Promise.all([ids.a, ids.b, ids.c].map(async (id) => ({ id, at: (await world.handle(id).describe()).startTime.getTime() })));
      expect(starts.sort((x, y) => x.at - y.at).map((start) => start.id)).toEqual([ids.a, ids.b, ids.c]);
      expect(await world.mostAtOnce([ids.a, ids.b, ids.c])).toBe(1);
      for (const id of [ids.a, ids.b, ids.c]) {
        const result = await world.handle(id).result();
        expect(result.phase).toBe('Done');
        expect(adapter.stateOf(id)).toBe('Done');
        // One workpad comment, kept up to date, not a comment per event.
        const comments = adapter.comments(id);
        expect(comments).toHaveLength(1);
        expect(comments[0]).toContain(`Landed ${id} as commit`);
      }
      // The tracker credential stays in the worker's environment: not in an issue run's or a poll's history.
      const secret = Object.values(adapter.env)[0]!;
      expect(historyText(await world.handle(ids.a).fetchHistory())).not.toContain(secret);
      // A completed poll: one still running may not have loaded the contract yet.
      let pollChecked = false;
      for await (const poll of world.client.workflow.list({ query: `WorkflowType = 'pollerWorkflow' AND TaskQueue = '${world.taskQueue}' AND ExecutionStatus = 'Completed'` })) {
        const history = historyText(await world.client.workflow.getHandle(poll.workflowId, poll.runId).fetchHistory());
        expect(history).toContain(Object.keys(adapter.env)[0]!); // the $VAR reference travels, its value does not
        expect(history).not.toContain(secret);
        pollChecked = true;
        break;
      }
      expect(pollChecked).toBe(true);
      // B's run started only after A had landed.
      const aClosed = (await world.handle(ids.a).describe()).closeTime!.getTime();
      expect((await world.handle(ids.b).describe()).startTime.getTime()).toBeGreaterThanOrEqual(aClosed);

      // Closing an issue mid-run cancels its workflow and removes its sandbox within a poll.
      if (adapter.name === 'Linear') linear!.addIssue({ identifier: ids.d, title: 'Fourth', state: 'Todo', priority: 1 });
      else numbers.set(ids.d, github!.addIssue({ title: 'Fourth', labels: ['priority:1'] }));
      const handle = world.handle(ids.d);
      await world.waitUntil(async () => (await issueStatus(handle).catch(() => undefined))?.phase === 'Working', 'the fourth issue works');

      // The tracker answers 500, then rate-limits: polls say so, the running run is left alone, nothing
      // is started twice.
      for (const [kind, said] of [['http500', /tracker_unavailable/], ['ratelimited', /tracker_rate_limited/]] as const) {
        const before = (await world.pollResults()).length;
        adapter.fail(1, kind);
        await world.waitUntil(async () => (await world.pollResults()).slice(before).some((poll) => poll.errors.some((e) => said.test(e))), `a poll reports the ${kind} answer`);
        expect((await handle.describe()).status.name).toBe('RUNNING');
      }
      const runsOfD = [];
      for await (const run of world.client.workflow.list({ query: `WorkflowId = '${handle.workflowId}'` })) runsOfD.push(run);
      expect(runsOfD).toHaveLength(1);
      await adapter.close(ids.d);
      await expect(handle.result()).rejects.toThrow();
      expect((await handle.describe()).status.name).toBe('CANCELLED');
      await world.waitUntil(async () => !(await sandboxExists(dockerClient(), runKeyOf(handle.workflowId))), 'the sandbox is removed', 30_000);
    });
  });
});
