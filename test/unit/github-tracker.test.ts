import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { TrackerConfig } from '../../lib/contract/types.ts';
import { GitHubTracker, githubTrackerFromConfig, nextLink } from '../../lib/tracker/github.ts';
import { TrackerError } from '../../lib/tracker/types.ts';
import { ApplicationFailure } from '@temporalio/common';
import { asTrackerFailure } from '../../activities/tracker.ts';
import { startFakeGitHub, type FakeGitHub } from '../fakes/github-server.ts';

const TOKEN = 'ghp_fakeTokenValue1234567890';
const REPO = 'acme/cadenza';
const TERMINAL = ['Closed', 'Cancelled', 'Canceled', 'Duplicate', 'Done'];

let gh: FakeGitHub;
let tracker: GitHubTracker;

function makeTracker(overrides: Partial<ConstructorParameters<typeof GitHubTracker>[0]> = {}): GitHubTracker {
  return new GitHubTracker({ token: TOKEN, repository: REPO, endpoint: gh.url, terminalStates: TERMINAL, doneState: 'Done', ...overrides });
}

beforeEach(async () => {
  gh = await startFakeGitHub({ token: TOKEN, repository: REPO });
  tracker = makeTracker();
});

afterEach(async () => {
  await gh.close();
});

async function caught(promise: Promise<unknown>): Promise<TrackerError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TrackerError);
  return error as TrackerError;
}

function pathsOf(method: string, prefix: string): string[] {
  return gh.requests.filter((r) => r.method === method && r.path.split('?')[0]?.endsWith(prefix)).map((r) => r.path);
}

describe('fetchIssuesByStates', () => {
  it('follows Link rel="next" across pages and skips pull requests', async () => {
    for (let i = 0; i < 230; i++) gh.addIssue({ title: `issue ${i}` });
    gh.addIssue({ title: 'a pull request', isPullRequest: true });
    tracker = makeTracker({ pageSize: 100 });

    const issues = await tracker.fetchIssuesByStates(['Todo']);

    expect(issues).toHaveLength(230);
    expect(issues.some((i) => i.title === 'a pull request')).toBe(false);
    const lists = gh.requests.filter((r) => r.method === 'GET' && /\/issues\?/.test(r.path) && !/comments|blocked_by/.test(r.path));
    expect(lists).toHaveLength(3);
    expect(lists[0]?.path).toBe('/repos/acme/cadenza/issues?state=open&per_page=100');
    // Later pages are whatever GitHub's Link header said (the /repositories/{id} form), not computed.
    expect(lists[1]?.path).toMatch(/^\/repositories\/\d+\/issues\?.*page=2/);
    expect(lists[2]?.path).toMatch(/^\/repositories\/\d+\/issues\?.*page=3/);
    // No blockers anywhere: the dependency summary spares the blocked_by requests.
    expect(pathsOf('GET', '/dependencies/blocked_by')).toHaveLength(0);
  });

  it('asks for closed issues only when a terminal state is wanted', async () => {
    gh.addIssue({ title: 'open' });
    gh.addIssue({ title: 'done', state: 'closed' });
    expect((await tracker.fetchIssuesByStates(['todo', 'In Progress'])).map((i) => i.title)).toEqual(['open']);
    expect(gh.requests.at(-1)?.path).toContain('state=open');
    expect((await tracker.fetchIssuesByStates(['DONE'])).map((i) => i.title)).toEqual(['done']);
    expect(gh.requests.at(-1)?.path).toContain('state=all');
    expect(await tracker.fetchIssuesByStates([])).toEqual([]);
  });

  it('maps labels and close reasons to states', async () => {
    const todo = gh.addIssue({ title: 'todo' });
    const progress = gh.addIssue({ title: 'progress', labels: ['state:In Progress'] });
    const review = gh.addIssue({ title: 'review', labels: ['bug', 'STATE: Human Review'] });
    const done = gh.addIssue({ title: 'done', state: 'closed', stateReason: 'completed' });
    const legacy = gh.addIssue({ title: 'closed without reason', state: 'closed', stateReason: null });
    const cancelled = gh.addIssue({ title: 'cancelled', state: 'closed', stateReason: 'not_planned' });
    const duplicate = gh.addIssue({ title: 'duplicate', state: 'closed', stateReason: 'duplicate', labels: ['state:In Progress'] });

    const all = await tracker.fetchIssuesByStates(['Todo', 'In Progress', 'Human Review', 'Done', 'Cancelled', 'Duplicate']);
    const stateOf = new Map(all.map((i) => [Number(i.id), i.state]));
    expect(Object.fromEntries(stateOf)).toEqual({
      [todo]: 'Todo',
      [progress]: 'In Progress',
      [review]: 'Human Review',
      [done]: 'Done',
      [legacy]: 'Done',
      [cancelled]: 'Cancelled',
      [duplicate]: 'Duplicate',
    });

    const active = await tracker.fetchIssuesByStates(['in progress', 'human review']);
    expect(active.map((i) => i.title).sort()).toEqual(['progress', 'review']);

    // The done state and the cancelled spelling follow the configuration.
    tracker = makeTracker({ doneState: 'Closed', terminalStates: ['Closed', 'Canceled'] });
    const closed = await tracker.fetchIssuesByIds([String(done), String(cancelled)]);
    expect(closed.map((i) => i.state)).toEqual(['Closed', 'Canceled']);
  });

  it('normalizes an issue: identifier, priority, labels, dates, url', async () => {
    const n = gh.addIssue({
      title: 'Add a health endpoint',
      body: 'Expose `GET /health`.',
      labels: ['Backend', 'priority:2', 'state:In Progress', 'API', 'Priority: 1', 'priority:high'],
      createdAt: '2025-02-03T04:05:06Z',
    });
    const bare = gh.addIssue({ title: 'bare', body: '' });

    const [issue] = await tracker.fetchIssuesByStates(['In Progress']);
    expect(issue).toEqual({
      id: String(n),
      identifier: `cadenza-${n}`,
      title: 'Add a health endpoint',
      description: 'Expose `GET /health`.',
      priority: 1,
      state: 'In Progress',
      branch_name: null,
      url: `https://github.com/acme/cadenza/issues/${n}`,
      labels: ['backend', 'api'],
      blocked_by: [],
      created_at: '2025-02-03T04:05:06.000Z',
      updated_at: '2025-02-03T04:05:06.000Z',
    });
    const [other] = await tracker.fetchIssuesByIds([String(bare)]);
    expect(other?.priority).toBeNull();
    expect(other?.description).toBeNull();
    expect(other?.labels).toEqual([]);
  });

  it('reads blockers from the issue dependencies API, with their states', async () => {
    const a = gh.addIssue({ title: 'blocker open', labels: ['state:In Progress'] });
    const b = gh.addIssue({ title: 'blocker done', state: 'closed' });
    const c = gh.addIssue({ title: 'blocked', blockedBy: [a, b] });

    const [issue] = await tracker.fetchIssuesByIds([String(c)]);
    expect(issue?.blocked_by).toEqual([
      { id: String(a), identifier: `cadenza-${a}`, state: 'In Progress' },
      { id: String(b), identifier: `cadenza-${b}`, state: 'Done' },
    ]);
    expect(pathsOf('GET', `/issues/${c}/dependencies/blocked_by`)).toHaveLength(1);
    // Issues without blockers cost no extra request.
    await tracker.fetchIssuesByIds([String(a)]);
    expect(pathsOf('GET', `/issues/${a}/dependencies/blocked_by`)).toHaveLength(0);
  });

  it('pages through many blockers', async () => {
    const blockers = Array.from({ length: 5 }, (_, i) => gh.addIssue({ title: `b${i}` }));
    const n = gh.addIssue({ title: 'blocked', blockedBy: blockers });
    tracker = makeTracker({ pageSize: 2 });
    const [issue] = await tracker.fetchIssuesByIds([String(n)]);
    expect(issue?.blocked_by.map((b) => b.id)).toEqual(blockers.map(String));
    expect(pathsOf('GET', '/dependencies/blocked_by')).toHaveLength(3);
  });
});

describe('fetchIssuesByIds', () => {
  it('returns the issues found in order; missing ones and pull requests are absent', async () => {
    const one = gh.addIssue({ title: 'one' });
    const pr = gh.addIssue({ title: 'pr', isPullRequest: true });
    const two = gh.addIssue({ title: 'two', state: 'closed', stateReason: 'not_planned' });

    const issues = await tracker.fetchIssuesByIds([String(two), '999', String(one), String(pr), `#${one}`, `cadenza-${two}`]);
    expect(issues.map((i) => [i.id, i.state])).toEqual([
      [String(two), 'Cancelled'],
      [String(one), 'Todo'],
    ]);
    expect(await tracker.fetchIssuesByIds([])).toEqual([]);
    const error = await caught(tracker.fetchIssuesByIds(['../etc']));
    expect(error.code).toBe('tracker_invalid_data');
  });
});

describe('setState', () => {
  it('moves an open issue to In Progress by swapping the state label', async () => {
    const n = gh.addIssue({ title: 'work', labels: ['bug', 'state:Todo'] });
    await tracker.setState(String(n), 'In Progress');
    expect(gh.issue(n).labels).toEqual(['bug', 'state:In Progress']);
    expect(gh.issue(n).state).toBe('open');
    expect(pathsOf('POST', `/issues/${n}/labels`)).toHaveLength(1);
    expect(pathsOf('DELETE', `/issues/${n}/labels/state%3ATodo`)).toHaveLength(1);
    expect((await tracker.fetchIssuesByIds([String(n)]))[0]?.state).toBe('In Progress');

    // Setting the same state again changes nothing.
    const before = gh.requests.length;
    await tracker.setState(String(n), 'in progress');
    expect(gh.requests.slice(before).map((r) => r.method)).toEqual(['GET']);

    await tracker.setState(String(n), 'Human Review');
    expect(gh.issue(n).labels).toEqual(['bug', 'state:Human Review']);
  });

  it('closes with the matching reason for terminal states and drops the state label', async () => {
    const done = gh.addIssue({ title: 'done', labels: ['state:In Progress', 'keep'] });
    const cancelled = gh.addIssue({ title: 'cancelled' });
    const canceled = gh.addIssue({ title: 'canceled' });
    const duplicate = gh.addIssue({ title: 'duplicate' });

    await tracker.setState(String(done), 'Done');
    await tracker.setState(String(cancelled), 'Cancelled');
    await tracker.setState(String(canceled), 'Canceled');
    await tracker.setState(`#${duplicate}`, 'Duplicate');

    expect(gh.issue(done)).toMatchObject({ state: 'closed', stateReason: 'completed', labels: ['keep'] });
    expect(gh.issue(cancelled)).toMatchObject({ state: 'closed', stateReason: 'not_planned' });
    expect(gh.issue(canceled)).toMatchObject({ state: 'closed', stateReason: 'not_planned' });
    expect(gh.issue(duplicate)).toMatchObject({ state: 'closed', stateReason: 'duplicate' });
    const states = await tracker.fetchIssuesByIds([done, cancelled, canceled, duplicate].map(String));
    expect(states.map((i) => i.state)).toEqual(['Done', 'Cancelled', 'Cancelled', 'Duplicate']);
    const patches = gh.requests.filter((r) => r.method === 'PATCH');
    expect(patches).toHaveLength(4);
  });

  it('reopens a closed issue for a non-terminal state', async () => {
    const n = gh.addIssue({ title: 'again', state: 'closed' });
    await tracker.setState(String(n), 'Rework');
    expect(gh.issue(n)).toMatchObject({ state: 'open', stateReason: 'reopened', labels: ['state:Rework'] });
    expect((await tracker.fetchIssuesByIds([String(n)]))[0]?.state).toBe('Rework');
  });

  it('reports a missing issue and refuses an empty state', async () => {
    const missing = await caught(tracker.setState('404', 'Done'));
    expect(missing.code).toBe('tracker_not_found');
    expect(missing.message).toContain('acme/cadenza#404');
    const n = gh.addIssue({ title: 'x' });
    expect((await caught(tracker.setState(String(n), ' '))).code).toBe('tracker_invalid_data');
  });
});

describe('comments', () => {
  it('adds, updates and lists comments across pages', async () => {
    const n = gh.addIssue({ title: 'talk' });
    for (let i = 0; i < 5; i++) gh.addComment(n, `human ${i}`, 'alice');
    tracker = makeTracker({ pageSize: 2 });

    const added = await tracker.addComment(String(n), '## Workpad\n- [ ] plan');
    expect(added).toMatchObject({ author: 'cadenza-bot', body: '## Workpad\n- [ ] plan' });
    expect(added.id).toMatch(/^\d+$/);
    expect(added.created_at).toMatch(/^\d{4}-\d\d-\d\dT/);

    await tracker.updateComment(String(n), added.id, '## Workpad\n- [x] plan');
    expect(gh.issue(n).comments.at(-1)?.body).toBe('## Workpad\n- [x] plan');
    expect(pathsOf('PATCH', `/issues/comments/${added.id}`)).toHaveLength(1);

    const before = gh.requests.length;
    const comments = await tracker.listComments(String(n));
    expect(comments.map((c) => [c.author, c.body])).toEqual([
      ['alice', 'human 0'],
      ['alice', 'human 1'],
      ['alice', 'human 2'],
      ['alice', 'human 3'],
      ['alice', 'human 4'],
      ['cadenza-bot', '## Workpad\n- [x] plan'],
    ]);
    expect(gh.requests.length - before).toBe(3);
  });

  it('reports missing issues and comments', async () => {
    const n = gh.addIssue({ title: 'talk' });
    expect((await caught(tracker.addComment('77', 'hi'))).code).toBe('tracker_not_found');
    expect((await caught(tracker.listComments('77'))).code).toBe('tracker_not_found');
    expect((await caught(tracker.updateComment(String(n), '123', 'x'))).code).toBe('tracker_not_found');
    expect((await caught(tracker.updateComment(String(n), 'c-1', 'x'))).code).toBe('tracker_invalid_data');
  });
});

describe('errors', () => {
  it('unknown repository => tracker_not_found', async () => {
    tracker = makeTracker({ repository: 'acme/nope' });
    const listing = await caught(tracker.fetchIssuesByStates(['Todo']));
    expect(listing.code).toBe('tracker_not_found');
    expect(listing.message).toBe('GitHub repository acme/nope does not exist or the token cannot see it');
    // By id: the 404 on the issue is traced back to the repository.
    const byId = await caught(tracker.fetchIssuesByIds(['1']));
    expect(byId.code).toBe('tracker_not_found');
    expect(byId.message).toContain('acme/nope does not exist');
    expect((await caught(tracker.setState('1', 'Done'))).message).toContain('acme/nope does not exist');
  });

  it('bad token => tracker_auth_failed without the token', async () => {
    const secret = 'ghp_wrongTokenDoNotLeak999';
    tracker = makeTracker({ token: secret });
    for (const attempt of [tracker.fetchIssuesByStates(['Todo']), tracker.setState('1', 'Done'), tracker.addComment('1', 'x')]) {
      const error = await caught(attempt);
      expect(error.code).toBe('tracker_auth_failed');
      expect(error.message).toContain('Bad credentials');
      expect(error.message).not.toContain(secret);
      expect(error.stack ?? '').not.toContain(secret);
    }
  });

  it('422 => tracker_invalid_data with GitHub\'s message', async () => {
    const n = gh.addIssue({ title: 'x' });
    const error = await caught(tracker.addComment(String(n), ''));
    expect(error.code).toBe('tracker_invalid_data');
    expect(error.message).toContain('422 Validation Failed: body is required');
  });

  it('500 => tracker_unavailable, then recovers', async () => {
    gh.addIssue({ title: 'x' });
    gh.failNext(1, 'http500');
    const error = await caught(tracker.fetchIssuesByStates(['Todo']));
    expect(error.code).toBe('tracker_unavailable');
    expect(error.message).toContain('500');
    expect(await tracker.fetchIssuesByStates(['Todo'])).toHaveLength(1);
  });

  it('unreachable GitHub => tracker_unavailable', async () => {
    const url = gh.url;
    await gh.close();
    tracker = new GitHubTracker({ token: TOKEN, repository: REPO, endpoint: url, terminalStates: TERMINAL, doneState: 'Done' });
    const error = await caught(tracker.fetchIssuesByStates(['Todo']));
    expect(error.code).toBe('tracker_unavailable');
    expect(error.message).not.toContain(TOKEN);
    gh = await startFakeGitHub({ token: TOKEN, repository: REPO }); // for afterEach
  });

  it('primary rate limit (403, remaining 0) => tracker_rate_limited with the reset time, then recovers', async () => {
    gh.addIssue({ title: 'x' });
    gh.failNext(1, 'ratelimited');
    const error = await caught(tracker.fetchIssuesByStates(['Todo']));
    expect(error.code).toBe('tracker_rate_limited');
    expect(error.message).toMatch(/resets at \d{4}-\d\d-\d\dT[\d:.]+Z \(in \d+ s\)/);
    expect(error.retryAfterMs).toBeGreaterThan(0);
    expect(await tracker.fetchIssuesByStates(['Todo'])).toHaveLength(1);
  });

  it('secondary rate limit (429, retry-after) => tracker_rate_limited, then recovers', async () => {
    const n = gh.addIssue({ title: 'x' });
    gh.failNext(1, 'secondaryRateLimit');
    const error = await caught(tracker.addComment(String(n), 'hello'));
    expect(error.code).toBe('tracker_rate_limited');
    expect(error.message).toContain('secondary rate limit');
    expect(error.message).toContain('retry after 60 s');
    // How long to wait travels with the error, and a tracker activity's retry waits that long.
    expect(error.retryAfterMs).toBe(60_000);
    const failure = asTrackerFailure(error) as ApplicationFailure;
    expect(failure).toMatchObject({ type: 'tracker_rate_limited', nonRetryable: false, nextRetryDelay: 60_000 });
    await tracker.addComment(String(n), 'hello');
    expect(gh.issue(n).comments).toHaveLength(1);
  });

  it('a failure in the middle of pagination fails the whole listing', async () => {
    for (let i = 0; i < 5; i++) gh.addIssue({ title: `i${i}` });
    tracker = makeTracker({ pageSize: 2 });
    gh.failNext(1, 'http500', 1);
    expect((await caught(tracker.fetchIssuesByStates(['Todo']))).code).toBe('tracker_unavailable');
    expect(gh.requests).toHaveLength(2);
    expect(await tracker.fetchIssuesByStates(['Todo'])).toHaveLength(5);
  });
});

describe('githubTrackerFromConfig', () => {
  const config: TrackerConfig = {
    kind: 'github',
    path: null,
    endpoint: null,
    apiKey: { env: 'CADENZA_GH' },
    projectSlug: null,
    repository: REPO,
    assignee: null,
    requiredLabels: [],
    activeStates: ['Todo', 'In Progress'],
    terminalStates: TERMINAL,
    inProgressState: 'In Progress',
    reviewState: 'Human Review',
    doneState: 'Done',
  };

  it('reads the token from api_key, falling back to GITHUB_TOKEN', async () => {
    gh.addIssue({ title: 'x' });
    const viaKey = githubTrackerFromConfig({ ...config, endpoint: gh.url }, { CADENZA_GH: TOKEN });
    expect(viaKey.kind).toBe('github');
    expect(await viaKey.fetchIssuesByStates(['Todo'])).toHaveLength(1);
    const viaFallback = githubTrackerFromConfig({ ...config, endpoint: gh.url, apiKey: null }, { GITHUB_TOKEN: TOKEN });
    expect(await viaFallback.fetchIssuesByStates(['Todo'])).toHaveLength(1);
    const fallbackWhenUnset = githubTrackerFromConfig({ ...config, endpoint: gh.url }, { GITHUB_TOKEN: TOKEN });
    expect(await fallbackWhenUnset.fetchIssuesByStates(['Todo'])).toHaveLength(1);
    expect(githubTrackerFromConfig(config, { CADENZA_GH: TOKEN }).endpoint).toBe('https://api.github.com');
  });

  it('missing token => tracker_auth_failed naming the variable', () => {
    let error: unknown;
    try {
      githubTrackerFromConfig(config, { CADENZA_GH: '' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TrackerError);
    expect((error as TrackerError).code).toBe('tracker_auth_failed');
    expect((error as TrackerError).message).toContain('CADENZA_GH');
    expect((error as TrackerError).message).toContain('GITHUB_TOKEN');
  });
});

describe('nextLink', () => {
  it('picks rel="next" from a Link header', () => {
    expect(nextLink(null)).toBeNull();
    expect(nextLink('<https://api.github.com/repositories/1/issues?page=3>; rel="last"')).toBeNull();
    expect(
      nextLink('<https://x/r?page=1>; rel="prev", <https://x/r?page=3&a=b,c>; rel="next", <https://x/r?page=9>; rel="last"'),
    ).toBe('https://x/r?page=3&a=b,c');
  });
});

describe('tracker errors as Temporal failures', () => {
  it('what no retry can fix fails at once; an outage is retried with backoff', () => {
    expect(asTrackerFailure(new TrackerError('tracker_auth_failed', 'GitHub rejected the API token'))).toMatchObject({ type: 'tracker_auth_failed', nonRetryable: true });
    expect(asTrackerFailure(new TrackerError('tracker_not_found', 'no such issue'))).toMatchObject({ type: 'tracker_not_found', nonRetryable: true });
    const outage = asTrackerFailure(new TrackerError('tracker_unavailable', 'GitHub answered 502')) as ApplicationFailure;
    expect(outage).toMatchObject({ type: 'tracker_unavailable', nonRetryable: false });
    expect(outage.nextRetryDelay).toBeUndefined();
  });
});
