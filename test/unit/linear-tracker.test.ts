import { LinearClient } from '@linear/sdk';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { TrackerConfig } from '../../lib/contract/types.ts';
import { LINEAR_OPERATIONS, LinearTracker, linearTrackerFromConfig } from '../../lib/tracker/linear.ts';
import { TrackerError } from '../../lib/tracker/types.ts';
import { startFakeLinear, type FakeLinear } from '../fakes/linear-server.ts';

const API_KEY = 'lin_api_TESTKEY_0123456789abcdef';
const PROJECT = 'cadenza-demo-4f2a';

let fake: FakeLinear;

beforeEach(async () => {
  fake = await startFakeLinear({ apiKey: API_KEY, projectSlug: PROJECT });
});

afterEach(async () => {
  await fake.close();
});

function tracker(options: Partial<ConstructorParameters<typeof LinearTracker>[0]> = {}): LinearTracker {
  return new LinearTracker({ apiKey: API_KEY, endpoint: fake.url, projectSlug: PROJECT, ...options });
}

function count(operation: string): number {
  return fake.requests.filter((name) => name === operation).length;
}

async function trackerError(promise: Promise<unknown>): Promise<TrackerError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TrackerError);
  return error as TrackerError;
}

function baseConfig(overrides: Partial<TrackerConfig> = {}): TrackerConfig {
  return {
    kind: 'linear',
    path: null,
    endpoint: fake.url,
    apiKey: { env: 'LINEAR_API_KEY' },
    projectSlug: PROJECT,
    repository: null,
    assignee: null,
    requiredLabels: [],
    activeStates: ['Todo', 'In Progress'],
    terminalStates: ['Done', 'Canceled'],
    inProgressState: 'In Progress',
    reviewState: 'Human Review',
    doneState: 'Done',
    ...overrides,
  };
}

describe('LinearTracker: fetching', () => {
  it('fetches every issue in the given states across several pages', async () => {
    const start = Date.parse('2025-01-01T00:00:00Z');
    for (let n = 1; n <= 120; n += 1) {
      fake.addIssue({ identifier: `CAD-${n}`, title: `Issue ${n}`, state: n % 2 ? 'Todo' : 'In Progress', createdAt: new Date(start + n * 1000) });
    }
    fake.addIssue({ identifier: 'CAD-500', title: 'Finished', state: 'Done' });
    fake.addIssue({ identifier: 'OTH-1', title: 'Other project', state: 'Todo', projectSlug: 'other-project' });

    const linear = tracker({ pageSize: 50 });
    const issues = await linear.fetchIssuesByStates(['Todo', 'In Progress']);
    expect(issues).toHaveLength(120);
    expect(issues.map((issue) => issue.identifier)).toEqual(Array.from({ length: 120 }, (_, i) => `CAD-${i + 1}`));
    expect(count(LINEAR_OPERATIONS.issuesByStates)).toBe(3);
    expect(count(LINEAR_OPERATIONS.project)).toBe(1);

    const done = await linear.fetchIssuesByStates(['Done']);
    expect(done.map((issue) => issue.identifier)).toEqual(['CAD-500']);
    // The project lookup is cached after it succeeds.
    expect(count(LINEAR_OPERATIONS.project)).toBe(1);
    expect(await linear.fetchIssuesByStates([])).toEqual([]);
  });

  it('fetches by ids, paginated, in the order asked, skipping unknown ids', async () => {
    const ids = ['CAD-1', 'CAD-2', 'CAD-3', 'CAD-4', 'CAD-5'].map((identifier) =>
      fake.addIssue({ identifier, title: identifier, state: 'Todo' }),
    );
    const linear = tracker({ pageSize: 2 });
    const wanted = [ids[4], ids[0], '00000000-0000-4000-8000-000000000000', ids[2], ids[0]] as string[];
    const issues = await linear.fetchIssuesByIds(wanted);
    expect(issues.map((issue) => issue.identifier)).toEqual(['CAD-5', 'CAD-1', 'CAD-3']);
    expect(count(LINEAR_OPERATIONS.issuesByIds)).toBe(2);
    expect(await linear.fetchIssuesByIds([])).toEqual([]);
  });

  it('normalizes issues to the Symphony shape', async () => {
    fake.addIssue({ identifier: 'CAD-2', title: 'Blocker', state: 'In Progress', priority: 1 });
    fake.addIssue({ identifier: 'CAD-3', title: 'Related only', state: 'Todo' });
    const id = fake.addIssue({
      identifier: 'CAD-1',
      title: 'Add a health endpoint',
      description: 'Expose `GET /health`.',
      state: 'Todo',
      priority: 3,
      labels: ['Backend', 'API'],
      blockedBy: ['CAD-2'],
      createdAt: '2025-01-02T03:04:05Z',
    });
    fake.addIssue({ identifier: 'CAD-4', title: 'No priority', state: 'Todo' });

    const issues = await tracker().fetchIssuesByStates(['Todo']);
    const issue = issues.find((candidate) => candidate.identifier === 'CAD-1');
    expect(issue).toEqual({
      id,
      identifier: 'CAD-1',
      title: 'Add a health endpoint',
      description: 'Expose `GET /health`.',
      priority: 3,
      state: 'Todo',
      branch_name: expect.stringContaining('cad-1-add-a-health-endpoint'),
      url: expect.stringContaining('/issue/CAD-1/'),
      labels: ['backend', 'api'],
      blocked_by: [{ id: expect.any(String), identifier: 'CAD-2', state: 'In Progress' }],
      created_at: '2025-01-02T03:04:05.000Z',
      updated_at: '2025-01-02T03:04:05.000Z',
    });
    const none = issues.find((candidate) => candidate.identifier === 'CAD-4');
    expect(none?.priority).toBeNull();
    expect(none?.description).toBeNull();
    expect(none?.blocked_by).toEqual([]);
    expect(none?.labels).toEqual([]);

    // The blocker's state is read live.
    fake.setState('CAD-2', 'Done');
    const [again] = await tracker().fetchIssuesByIds([id]);
    expect(again?.blocked_by).toEqual([{ id: fake.issue('CAD-2').id, identifier: 'CAD-2', state: 'Done' }]);
  });

  it('filters by assignee when one is configured', async () => {
    fake.addIssue({ identifier: 'CAD-1', title: 'Mine', state: 'Todo', assignee: 'me' });
    fake.addIssue({ identifier: 'CAD-2', title: "Alice's", state: 'Todo', assignee: 'Alice Smith' });
    fake.addIssue({ identifier: 'CAD-3', title: 'Nobody', state: 'Todo' });

    const mine = await tracker({ assignee: 'me' }).fetchIssuesByStates(['Todo']);
    expect(mine.map((issue) => issue.identifier)).toEqual(['CAD-1']);
    const alice = await tracker({ assignee: 'alice smith' }).fetchIssuesByStates(['Todo']);
    expect(alice.map((issue) => issue.identifier)).toEqual(['CAD-2']);
    const byEmail = await tracker({ assignee: 'alice.smith@example.com' }).fetchIssuesByStates(['Todo']);
    expect(byEmail.map((issue) => issue.identifier)).toEqual(['CAD-2']);
    const everyone = await tracker({ assignee: null }).fetchIssuesByStates(['Todo']);
    expect(everyone).toHaveLength(3);
  });

  it('reports a project that does not exist', async () => {
    fake.addIssue({ identifier: 'CAD-1', title: 'x', state: 'Todo' });
    const error = await trackerError(tracker({ projectSlug: 'no-such-project' }).fetchIssuesByStates(['Todo']));
    expect(error.code).toBe('tracker_not_found');
    expect(error.message).toBe('Linear project no-such-project does not exist or is not visible to this API key');
    expect(count(LINEAR_OPERATIONS.issuesByStates)).toBe(0);
  });
});

describe('LinearTracker: writing', () => {
  it('moves an issue to a state of its team, by name, case-insensitively', async () => {
    const id = fake.addIssue({ identifier: 'CAD-1', title: 'x', state: 'Todo' });
    const linear = tracker();
    await linear.setState(id, 'in progress');
    expect(fake.issue('CAD-1').state).toBe('In Progress');
    await linear.setState(id, 'Human Review');
    expect(fake.issue('CAD-1').state).toBe('Human Review');
    expect(count(LINEAR_OPERATIONS.setState)).toBe(2);
    // Already there: no mutation.
    await linear.setState(id, 'Human Review');
    expect(count(LINEAR_OPERATIONS.setState)).toBe(2);
  });

  it('rejects a state the team does not have, naming the allowed ones', async () => {
    const id = fake.addIssue({ identifier: 'CAD-1', title: 'x', state: 'Todo' });
    const error = await trackerError(tracker().setState(id, 'Shipped'));
    expect(error.code).toBe('tracker_invalid_data');
    expect(error.message).toContain('"Shipped"');
    expect(error.message).toContain('Todo, In Progress, Human Review, Done, Canceled');
    expect(fake.issue('CAD-1').state).toBe('Todo');
    expect(count(LINEAR_OPERATIONS.setState)).toBe(0);
  });

  it('reports an unknown issue as not found', async () => {
    const error = await trackerError(tracker().setState('00000000-0000-4000-8000-000000000000', 'Done'));
    expect(error.code).toBe('tracker_not_found');
    expect((await trackerError(tracker().listComments('CAD-404'))).code).toBe('tracker_not_found');
  });

  it('adds, updates and lists comments, oldest first', async () => {
    const id = fake.addIssue({ identifier: 'CAD-1', title: 'x', state: 'Todo' });
    fake.addComment('CAD-1', 'A human said this first', 'Alice Smith');
    fake.addComment('CAD-1', 'An integration wrote this', null);
    const linear = tracker({ pageSize: 2 });

    const workpad = await linear.addComment(id, '## Workpad\n- [ ] plan');
    expect(workpad).toEqual({ id: expect.any(String), author: fake.viewerName, body: '## Workpad\n- [ ] plan', created_at: expect.any(String) });
    await linear.addComment(id, 'second');
    await linear.addComment(id, 'third');
    await linear.updateComment(id, workpad.id, '## Workpad\n- [x] plan');
    expect(fake.issue('CAD-1').comments.find((comment) => comment.id === workpad.id)?.body).toBe('## Workpad\n- [x] plan');

    const comments = await linear.listComments(id);
    expect(comments.map((comment) => [comment.author, comment.body])).toEqual([
      ['Alice Smith', 'A human said this first'],
      ['unknown', 'An integration wrote this'],
      [fake.viewerName, '## Workpad\n- [x] plan'],
      [fake.viewerName, 'second'],
      [fake.viewerName, 'third'],
    ]);
    expect(comments[2]?.id).toBe(workpad.id);
    // 5 comments, 2 per page.
    expect(count(LINEAR_OPERATIONS.comments)).toBe(3);

    const error = await trackerError(linear.updateComment(id, '00000000-0000-4000-8000-000000000000', 'x'));
    expect(error.code).toBe('tracker_not_found');
  });
});

describe('LinearTracker: failures', () => {
  it('maps a wrong key to tracker_auth_failed without revealing any key', async () => {
    const wrongKey = 'lin_api_WRONG_fedcba9876543210';
    const error = await trackerError(tracker({ apiKey: wrongKey }).fetchIssuesByIds(['00000000-0000-4000-8000-000000000000']));
    expect(error.code).toBe('tracker_auth_failed');
    expect(error.message).not.toContain(wrongKey);
    expect(error.message).not.toContain(API_KEY);
    expect(error.message).toMatch(/authenticat/i);
  });

  it('maps HTTP 500 to tracker_unavailable and recovers', async () => {
    fake.addIssue({ identifier: 'CAD-1', title: 'x', state: 'Todo' });
    const linear = tracker();
    fake.failNext(1, 'http500');
    const error = await trackerError(linear.fetchIssuesByStates(['Todo']));
    expect(error.code).toBe('tracker_unavailable');
    expect(error.message).toContain('500');
    expect(await linear.fetchIssuesByStates(['Todo'])).toHaveLength(1);
  });

  it('maps rate limiting to tracker_rate_limited with the reset time', async () => {
    const id = fake.addIssue({ identifier: 'CAD-1', title: 'x', state: 'Todo' });
    const linear = tracker();
    fake.failNext(1, 'ratelimited');
    const error = await trackerError(linear.fetchIssuesByIds([id]));
    expect(error.code).toBe('tracker_rate_limited');
    expect(error.message).toContain('retry after 60 s');
    expect(error.retryAfterMs).toBe(60_000);
    expect(error.message).toMatch(/resets at \d{4}-\d\d-\d\dT/);
    expect(error.message).not.toContain(API_KEY);
    expect(await linear.fetchIssuesByIds([id])).toHaveLength(1);
  });

  it('maps other GraphQL errors to tracker_unavailable with their message', async () => {
    const id = fake.addIssue({ identifier: 'CAD-1', title: 'x', state: 'Todo' });
    fake.failNext(1, 'graphqlError');
    const error = await trackerError(tracker().addComment(id, 'hello'));
    expect(error.code).toBe('tracker_unavailable');
    expect(error.message).toContain('Injected failure from the fake Linear server');
    expect(fake.issue('CAD-1').comments).toEqual([]);
  });

  it('keeps failing while failures are queued, then recovers', async () => {
    const id = fake.addIssue({ identifier: 'CAD-1', title: 'x', state: 'Todo' });
    const linear = tracker();
    fake.failNext(2, 'http500');
    fake.failNext(1, 'ratelimited');
    expect((await trackerError(linear.setState(id, 'Done'))).code).toBe('tracker_unavailable');
    expect((await trackerError(linear.setState(id, 'Done'))).code).toBe('tracker_unavailable');
    expect((await trackerError(linear.setState(id, 'Done'))).code).toBe('tracker_rate_limited');
    await linear.setState(id, 'Done');
    expect(fake.issue('CAD-1').state).toBe('Done');
  });

  it('retries the project lookup after a failed one', async () => {
    fake.addIssue({ identifier: 'CAD-1', title: 'x', state: 'Todo' });
    const linear = tracker();
    fake.failNext(1, 'http500');
    expect((await trackerError(linear.fetchIssuesByStates(['Todo']))).code).toBe('tracker_unavailable');
    expect(await linear.fetchIssuesByStates(['Todo'])).toHaveLength(1);
    expect(count(LINEAR_OPERATIONS.project)).toBe(2);
  });

  it('maps an unreachable server to tracker_unavailable', async () => {
    const linear = tracker();
    await fake.close();
    const error = await trackerError(linear.fetchIssuesByIds(['00000000-0000-4000-8000-000000000000']));
    expect(error.code).toBe('tracker_unavailable');
    expect(error.message).not.toContain(API_KEY);
    fake = await startFakeLinear({ apiKey: API_KEY, projectSlug: PROJECT }); // for afterEach
  });

  it('refuses a plain-http endpoint that is not local', () => {
    expect(() => tracker({ endpoint: 'http://linear.example.com/graphql' })).toThrow(TrackerError);
  });
});

describe('linearTrackerFromConfig', () => {
  it('reads the key from the configured variable or LINEAR_API_KEY', async () => {
    const id = fake.addIssue({ identifier: 'CAD-1', title: 'x', state: 'Todo' });
    const fromDefault = linearTrackerFromConfig(baseConfig({ apiKey: null }), { LINEAR_API_KEY: API_KEY });
    expect(fromDefault.kind).toBe('linear');
    expect(fromDefault.endpoint).toBe(fake.url);
    expect(await fromDefault.fetchIssuesByIds([id])).toHaveLength(1);
    const fromCustom = linearTrackerFromConfig(baseConfig({ apiKey: { env: 'MY_LINEAR_KEY' } }), { MY_LINEAR_KEY: API_KEY });
    expect(await fromCustom.fetchIssuesByStates(['Todo'])).toHaveLength(1);
  });

  it('fails with tracker_auth_failed naming the variable when the key is missing', () => {
    let error: unknown;
    try {
      linearTrackerFromConfig(baseConfig({ apiKey: null }), { OTHER: API_KEY });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TrackerError);
    expect((error as TrackerError).code).toBe('tracker_auth_failed');
    expect((error as TrackerError).message).toContain('LINEAR_API_KEY');
    expect((error as TrackerError).message).not.toContain(API_KEY);
    expect(() => linearTrackerFromConfig(baseConfig({ apiKey: { env: 'MY_LINEAR_KEY' } }), { MY_LINEAR_KEY: '' })).toThrow(/MY_LINEAR_KEY/);
  });

  it('defaults the endpoint to Linear', () => {
    const linear = linearTrackerFromConfig(baseConfig({ endpoint: null }), { LINEAR_API_KEY: API_KEY });
    expect(linear.endpoint).toBe('https://api.linear.app/graphql');
  });
});

describe('fake Linear server', () => {
  it('validates documents against its schema, like the real API', async () => {
    const client = new LinearClient({ apiKey: API_KEY, apiUrl: fake.url });
    const error = await client.client.rawRequest('query Bad { issues(first: 1) { nodes { id notAField } } }').then(
      () => undefined,
      (e: unknown) => e as Error & { status?: number },
    );
    expect(error?.message).toContain('Cannot query field "notAField" on type "Issue"');
    expect(error?.status).toBe(400);
  });

  it('pages with opaque cursors and rejects oversized pages', async () => {
    for (let n = 1; n <= 3; n += 1) fake.addIssue({ identifier: `CAD-${n}`, title: `${n}`, state: 'Todo' });
    const client = new LinearClient({ apiKey: API_KEY, apiUrl: fake.url });
    const query = 'query Page($after: String) { issues(first: 2, after: $after) { nodes { identifier } pageInfo { hasNextPage endCursor } } }';
    type Page = { issues: { nodes: { identifier: string }[]; pageInfo: { hasNextPage: boolean; endCursor: string } } };
    const first = (await client.client.rawRequest<Page, Record<string, unknown>>(query, {})).data as Page;
    expect(first.issues.nodes.map((node) => node.identifier)).toEqual(['CAD-1', 'CAD-2']);
    expect(first.issues.pageInfo.hasNextPage).toBe(true);
    expect(first.issues.pageInfo.endCursor).not.toContain('CAD');
    const second = (await client.client.rawRequest<Page, Record<string, unknown>>(query, { after: first.issues.pageInfo.endCursor })).data as Page;
    expect(second.issues.nodes.map((node) => node.identifier)).toEqual(['CAD-3']);
    expect(second.issues.pageInfo.hasNextPage).toBe(false);
    await expect(client.client.rawRequest('query Huge { issues(first: 251) { nodes { id } } }')).rejects.toThrow(/250/);
  });
});
