/**
 * The GitHub code host (pull requests) against a local server speaking GitHub's REST API, on the same
 * transport client as the GitHub tracker; and the factory that picks the host from the contract.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { codeHostConfig, createCodeHostFactory, GitHubCodeHost, type PullRequestRequest } from '../../lib/codehost/index.ts';
import type { LandingConfig, TrackerConfig } from '../../lib/contract/types.ts';
import { GitHubTracker, nextLink } from '../../lib/tracker/github.ts';
import { TrackerError } from '../../lib/tracker/types.ts';
import { startFakeGitHub, type FakeGitHub } from '../fakes/github-server.ts';

const TOKEN = 'ghp_fakeTokenValue1234567890';
const REPO = 'acme/cadenza';

let gh: FakeGitHub;
let host: GitHubCodeHost;

function makeHost(overrides: Partial<ConstructorParameters<typeof GitHubCodeHost>[0]> = {}): GitHubCodeHost {
  return new GitHubCodeHost({ token: TOKEN, repository: REPO, endpoint: gh.url, ...overrides });
}

function makeTracker(): GitHubTracker {
  return new GitHubTracker({ token: TOKEN, repository: REPO, endpoint: gh.url, terminalStates: ['Done'], doneState: 'Done' });
}

beforeEach(async () => {
  gh = await startFakeGitHub({ token: TOKEN, repository: REPO });
  host = makeHost();
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

describe('GitHubCodeHost.openPullRequest', () => {
  const request = (overrides: Partial<PullRequestRequest> = {}): PullRequestRequest => ({
    head: 'cadenza/cadenza-7',
    base: 'main',
    title: 'Add a health endpoint',
    body: 'Closes #7',
    ...overrides,
  });
  const PULLS = '/repos/acme/cadenza/pulls';

  it('opens a pull request, then reuses the open one for the same head and base', async () => {
    const opened = await host.openPullRequest(request());
    expect(opened).toEqual({ number: opened.number, url: `https://github.com/acme/cadenza/pull/${opened.number}`, created: true });
    expect(gh.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      `GET ${PULLS}?state=open&head=acme%3Acadenza%2Fcadenza-7&base=main&per_page=100`,
      `POST ${PULLS}`,
    ]);
    expect(gh.pullRequests()).toEqual([
      expect.objectContaining({ number: opened.number, title: 'Add a health endpoint', body: 'Closes #7', head: 'cadenza/cadenza-7', base: 'main', state: 'open', draft: false }),
    ]);

    const again = await host.openPullRequest(request({ title: 'another title' }));
    expect(again).toEqual({ ...opened, created: false });
    expect(gh.pullRequests()).toHaveLength(1);
    expect(gh.requests.at(-1)?.method).toBe('GET');
  });

  it('shares numbering with issues, and the issue list (which skips it) shows it as a pull request', async () => {
    const issue = gh.addIssue({ title: 'an issue' });
    const opened = await host.openPullRequest(request());
    expect(opened.number).toBe(issue + 1);
    expect(gh.issue(opened.number).isPullRequest).toBe(true);
    expect((await makeTracker().fetchIssuesByStates(['Todo'])).map((i) => i.id)).toEqual([String(issue)]);
    const response = await fetch(`${gh.url}/repos/acme/cadenza/issues?state=all`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    const listed = (await response.json()) as Record<string, unknown>[];
    expect(listed.find((i) => i.number === opened.number)?.pull_request).toMatchObject({ html_url: opened.url });
  });

  it('a closed pull request or one for another base does not count', async () => {
    gh.addPullRequest({ title: 'old', head: 'cadenza/cadenza-7', state: 'closed' });
    gh.addPullRequest({ title: 'other base', head: 'cadenza/cadenza-7', base: 'release' });
    gh.addPullRequest({ title: 'other head', head: 'cadenza/cadenza-8' });
    const opened = await host.openPullRequest(request());
    expect(opened.created).toBe(true);
    expect(gh.pullRequests().filter((p) => p.state === 'open' && p.head === 'cadenza/cadenza-7' && p.base === 'main')).toEqual([
      expect.objectContaining({ number: opened.number }),
    ]);
  });

  it('returns the pull request another opener created between the lookup and the create', async () => {
    let theirs = 0;
    gh.beforeNext('POST', PULLS, () => {
      theirs = gh.addPullRequest({ title: 'theirs', head: 'cadenza/cadenza-7', base: 'main' });
    });
    const opened = await host.openPullRequest(request());
    expect(opened).toEqual({ number: theirs, url: `https://github.com/acme/cadenza/pull/${theirs}`, created: false });
    expect(gh.requests.map((r) => r.method)).toEqual(['GET', 'POST', 'GET']);
    expect(gh.pullRequests().map((p) => p.title)).toEqual(['theirs']);
  });

  it('refuses bad input without sending anything', async () => {
    const cases: [Partial<PullRequestRequest>, string][] = [
      [{ head: '' }, 'head branch is empty'],
      [{ head: 'acme:feature' }, 'head branch "acme:feature" contains ":"'],
      [{ base: '  ' }, 'base branch is empty'],
      [{ base: 'acme:main' }, 'base branch "acme:main" contains ":"'],
      [{ head: 'my branch' }, 'head branch "my branch" contains whitespace'],
      [{ head: 'main' }, 'head and base are the same branch "main"'],
      [{ title: ' ' }, 'title is empty'],
    ];
    for (const [overrides, text] of cases) {
      const error = await caught(host.openPullRequest(request(overrides)));
      expect(error.code).toBe('tracker_invalid_data');
      expect(error.message).toContain(text);
    }
    expect(gh.requests).toHaveLength(0);
  });

  it('another 422 (unknown branch) => tracker_invalid_data naming repository, head, base and GitHub\'s error', async () => {
    gh.setBranches(['main']);
    const error = await caught(host.openPullRequest(request()));
    expect(error.code).toBe('tracker_invalid_data');
    expect(error.message).toContain('from cadenza/cadenza-7 into main in GitHub repository acme/cadenza');
    expect(error.message).toContain('422 Validation Failed: PullRequest head invalid');
    expect(error.message).toContain('check that branch "cadenza/cadenza-7" exists');
    expect(gh.pullRequests()).toHaveLength(0);

    gh.setBranches(['main', 'cadenza/cadenza-7']);
    expect((await host.openPullRequest(request())).created).toBe(true);
  });

  it('bad token => tracker_auth_failed without the token', async () => {
    const secret = 'ghp_wrongTokenDoNotLeak999';
    host = makeHost({ token: secret });
    const error = await caught(host.openPullRequest(request()));
    expect(error.code).toBe('tracker_auth_failed');
    expect(error.message).toContain('Bad credentials');
    expect(error.message).not.toContain(secret);
    expect(error.stack ?? '').not.toContain(secret);
  });

  it('unknown repository => tracker_not_found', async () => {
    host = makeHost({ repository: 'acme/nope' });
    const error = await caught(host.openPullRequest(request()));
    expect(error.code).toBe('tracker_not_found');
    expect(error.message).toBe('GitHub repository acme/nope does not exist or the token cannot see it');
  });

  it('a failed create is retried into exactly one pull request', async () => {
    gh.failNext(1, 'http500', 1);
    expect((await caught(host.openPullRequest(request()))).code).toBe('tracker_unavailable');
    gh.failNext(1, 'secondaryRateLimit');
    expect((await caught(host.openPullRequest(request()))).code).toBe('tracker_rate_limited');
    expect((await host.openPullRequest(request())).created).toBe(true);
    expect((await host.openPullRequest(request())).created).toBe(false);
    expect(gh.pullRequests()).toHaveLength(1);
  });
});

describe('fake GitHub pulls endpoints', () => {
  async function api(method: string, path: string, body?: unknown): Promise<{ status: number; link: string | null; data: unknown }> {
    const response = await fetch(`${gh.url}${path}`, {
      method,
      headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.status, link: response.headers.get('link'), data: await response.json() };
  }

  it('creates like GitHub and answers its 422s', async () => {
    const created = await api('POST', '/repos/acme/cadenza/pulls', { title: 'T', head: 'acme:feature', base: 'main', body: 'B', draft: true });
    expect(created.status).toBe(201);
    expect(created.data).toMatchObject({
      number: 1,
      state: 'open',
      title: 'T',
      body: 'B',
      html_url: 'https://github.com/acme/cadenza/pull/1',
      url: `${gh.url}/repos/acme/cadenza/pulls/1`,
      head: { ref: 'feature', label: 'acme:feature' },
      base: { ref: 'main', label: 'acme:main' },
      user: { login: 'cadenza-bot' },
      merged: false,
      draft: true,
    });
    const duplicate = await api('POST', '/repos/acme/cadenza/pulls', { title: 'T', head: 'feature', base: 'main' });
    expect(duplicate).toMatchObject({
      status: 422,
      data: {
        message: 'Validation Failed',
        errors: [{ resource: 'PullRequest', code: 'custom', message: 'A pull request already exists for acme:feature.' }],
        status: '422',
      },
    });
    const missing = await api('POST', '/repos/acme/cadenza/pulls', { head: '', base: 'main' });
    expect((missing.data as { errors: unknown }).errors).toEqual([
      { resource: 'PullRequest', code: 'missing_field', field: 'title' },
      { resource: 'PullRequest', field: 'head', code: 'invalid' },
    ]);
    expect((await api('POST', '/repos/acme/cadenza/pulls', { title: 'T', head: 'main', base: 'main' })).data).toMatchObject({
      errors: [{ code: 'custom', message: 'No commits between main and main' }],
    });
    expect(gh.pullRequests()).toHaveLength(1);
  });

  it('lists by state, head (owner:branch; ignored without the owner) and base, paged', async () => {
    for (let i = 0; i < 5; i++) gh.addPullRequest({ title: `p${i}`, head: `b${i}` });
    gh.addPullRequest({ title: 'closed', head: 'b0', state: 'closed' });
    gh.addIssue({ title: 'not a pull request' });
    const numbers = (data: unknown) => (data as { number: number }[]).map((p) => p.number);

    expect(numbers((await api('GET', '/repos/acme/cadenza/pulls')).data)).toEqual([5, 4, 3, 2, 1]);
    expect(numbers((await api('GET', '/repos/acme/cadenza/pulls?state=all&head=acme:b0')).data)).toEqual([6, 1]);
    expect(numbers((await api('GET', '/repos/acme/cadenza/pulls?head=b0')).data)).toHaveLength(5);
    expect(numbers((await api('GET', '/repos/acme/cadenza/pulls?head=other:b0')).data)).toEqual([]);
    expect(numbers((await api('GET', '/repos/acme/cadenza/pulls?base=release')).data)).toEqual([]);
    const first = await api('GET', '/repos/acme/cadenza/pulls?per_page=2');
    expect(numbers(first.data)).toEqual([5, 4]);
    const next = nextLink(first.link);
    expect(next).toMatch(/\/repositories\/\d+\/pulls\?.*page=2/);
    expect(numbers((await api('GET', new URL(next as string).pathname + new URL(next as string).search)).data)).toEqual([3, 2]);
  });
});

describe('GitHubCodeHost: the issue a pull request names', () => {
  const tracker = (kind: string, repository: string | null = null) => ({ kind, repository });
  it('closes an issue of its own repository by number; names any other', () => {
    expect(host.issueLine({ tracker: tracker('github', 'ACME/Cadenza'), id: '7', identifier: 'cadenza-7' })).toBe('Closes #7');
    expect(host.issueLine({ tracker: tracker('github', 'acme/other'), id: '7', identifier: 'other-7' })).toBe('Issue: other-7 (github)');
    expect(host.issueLine({ tracker: tracker('linear'), id: 'a1b2', identifier: 'CAD-7' })).toBe('Issue: CAD-7 (linear)');
    expect(host.issueLine({ tracker: tracker('github', REPO), identifier: 'cadenza-7' })).toBe('Issue: cadenza-7 (github)');
  });
});

describe('codeHostConfig and createCodeHostFactory', () => {
  const tracker: TrackerConfig = {
    kind: 'github', path: null, endpoint: null, apiKey: { env: 'CADENZA_GH' }, projectSlug: null, repository: REPO, assignee: null,
    requiredLabels: [], activeStates: ['Todo'], terminalStates: ['Done'], inProgressState: 'In Progress', reviewState: 'Human Review', doneState: 'Done',
  };
  const landing: LandingConfig = { strategy: 'pull_request', targetBranch: 'main', requireApproval: true, approvalTimeoutMs: 1000 };
  const local: TrackerConfig = { ...tracker, kind: 'local', path: '/issues', repository: null, apiKey: null };

  it('takes landing.github, else (contracts from before it) the GitHub tracker\'s repository, else none', () => {
    const github = { repository: 'acme/web', endpoint: 'https://ghe.example/api/v3', apiKey: { env: 'GH_PR' } };
    expect(codeHostConfig({ tracker: local, landing: { ...landing, github } })).toEqual({ kind: 'github', ...github });
    expect(codeHostConfig({ tracker, landing })).toEqual({ kind: 'github', repository: REPO, endpoint: null, apiKey: { env: 'CADENZA_GH' } });
    expect(codeHostConfig({ tracker: local, landing })).toBeNull();
  });

  it('builds one host per configuration, with the token from its variable or GITHUB_TOKEN', async () => {
    const hosts = createCodeHostFactory({ env: { CADENZA_GH: TOKEN } });
    const config = { kind: 'github' as const, repository: REPO, endpoint: gh.url, apiKey: { env: 'CADENZA_GH' } };
    const first = hosts(config);
    expect(hosts({ ...config })).toBe(first);
    expect(first.repository).toBe(REPO);
    expect((await first.openPullRequest({ head: 'cadenza/x', base: 'main', title: 'x', body: '' })).created).toBe(true);
    const fallback = createCodeHostFactory({ env: { GITHUB_TOKEN: TOKEN } })(config);
    expect((await fallback.findOpenPullRequest('cadenza/x', 'main'))?.number).toBe(1);

    let error: unknown;
    try {
      createCodeHostFactory({ env: {} })(config);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TrackerError);
    expect((error as TrackerError).code).toBe('tracker_auth_failed');
    expect((error as TrackerError).message).toBe('GitHub pull request host needs an API token: neither CADENZA_GH nor GITHUB_TOKEN is set (or it is empty)');
  });
});
