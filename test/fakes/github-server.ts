/**
 * A fake GitHub REST API (v3) for tests, on 127.0.0.1 only. It speaks GitHub's wire format for
 * exactly the endpoints Cadenza's GitHub tracker uses, and nothing else (anything else is 404):
 *
 *   GET    /repos/{owner}/{repo}
 *   GET    /repos/{owner}/{repo}/issues                      (state, sort, direction, per_page, page)
 *   GET    /repos/{owner}/{repo}/issues/{n}
 *   PATCH  /repos/{owner}/{repo}/issues/{n}                  (state, state_reason, title, body)
 *   POST   /repos/{owner}/{repo}/issues/{n}/labels           ({labels: [...]} or [...])
 *   DELETE /repos/{owner}/{repo}/issues/{n}/labels/{name}
 *   GET    /repos/{owner}/{repo}/issues/{n}/comments         (per_page, page)
 *   POST   /repos/{owner}/{repo}/issues/{n}/comments
 *   PATCH  /repos/{owner}/{repo}/issues/comments/{id}
 *   GET    /repos/{owner}/{repo}/issues/{n}/dependencies/blocked_by   (per_page, page)
 *
 * Like GitHub: PRs are issues with a `pull_request` key and share the numbering; lists are paged
 * (per_page default 30, max 100) with `Link` headers whose URLs use `/repositories/{id}/…` (so a
 * client must follow them, not build page URLs); every response carries x-ratelimit-* headers;
 * a bad or missing token is 401 "Bad credentials"; an unknown repository or issue is 404 "Not Found";
 * repository names match case-insensitively; timestamps are second-precision `…Z`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type StateReason = 'completed' | 'not_planned' | 'duplicate' | 'reopened';
export type FailureKind = 'http500' | 'ratelimited' | 'secondaryRateLimit';

export interface FakeIssueInput {
  title: string;
  body?: string | null;
  state?: 'open' | 'closed';
  /** For a closed issue; default completed. */
  stateReason?: StateReason | null;
  labels?: string[];
  /** Numbers of issues (in this repository) that block this one. */
  blockedBy?: number[];
  isPullRequest?: boolean;
  createdAt?: string | Date;
  /** Author login; default "octocat". */
  author?: string;
}

export interface FakeComment {
  id: number;
  body: string;
  login: string;
  createdAt: string;
  updatedAt: string;
}

/** A snapshot of one issue, for assertions. */
export interface FakeIssueSnapshot {
  number: number;
  title: string;
  body: string | null;
  state: 'open' | 'closed';
  stateReason: StateReason | null;
  labels: string[];
  blockedBy: number[];
  isPullRequest: boolean;
  comments: FakeComment[];
  createdAt: string;
  updatedAt: string;
  closedAt: string | null;
}

export interface FakeRequest {
  method: string;
  /** Path and query string as sent, e.g. `/repos/o/r/issues?state=open&per_page=100`. */
  path: string;
}

export interface FakeGitHub {
  /** Base URL, e.g. http://127.0.0.1:41234 (use as the tracker endpoint). */
  readonly url: string;
  readonly repository: string;
  /** Every request received, in order. */
  readonly requests: FakeRequest[];
  addIssue(input: FakeIssueInput): number;
  setLabels(number: number, labels: string[]): void;
  /** Closes issue `number` with a reason (default completed). */
  close(number: number, reason?: StateReason): void;
  /** Stops the server. */
  close(): Promise<void>;
  /** Returns the new comment's id. */
  addComment(number: number, body: string, login?: string): number;
  issue(number: number): FakeIssueSnapshot;
  /** The next `count` authenticated requests fail with `kind` (after letting `after` more through). */
  failNext(count: number, kind: FailureKind, after?: number): void;
}

export interface FakeGitHubOptions {
  token: string;
  /** `owner/name`. */
  repository: string;
  port?: number;
}

interface StoredIssue {
  id: number;
  number: number;
  title: string;
  body: string | null;
  state: 'open' | 'closed';
  stateReason: StateReason | null;
  labels: string[];
  blockedBy: number[];
  isPullRequest: boolean;
  author: string;
  createdAt: string;
  updatedAt: string;
  closedAt: string | null;
  comments: FakeComment[];
}

const DOCS = 'https://docs.github.com/rest';
const RATE_LIMIT = 5000;
const REPO_ID = 700_000_001;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
    readonly headers: Record<string, string> = {},
  ) {
    super(String(body.message));
  }
}

export async function startFakeGitHub(options: FakeGitHubOptions): Promise<FakeGitHub> {
  const [owner, name] = options.repository.split('/') as [string, string];
  if (!owner || !name) throw new Error(`repository must be "owner/name", got ${options.repository}`);
  const issues = new Map<number, StoredIssue>();
  const labelColors = new Map<string, number>();
  const requests: FakeRequest[] = [];
  /** Queued outcomes of the next authenticated requests; null lets one through. */
  const failures: (FailureKind | null)[] = [];
  let nextNumber = 1;
  let nextCommentId = 1_000_001;
  let nextLabelId = 5_000_001;
  let remaining = RATE_LIMIT;
  // GitHub's core limit is a fixed hourly window: remaining counts down until `reset`, then refills.
  let windowReset = Math.floor(Date.now() / 1000) + 3600;
  const resetAt = () => {
    const now = Math.floor(Date.now() / 1000);
    if (now >= windowReset) {
      windowReset = now + 3600;
      remaining = RATE_LIMIT;
    }
    return windowReset;
  };
  let baseUrl = '';

  const stamp = (date: Date | string = new Date()) => new Date(date).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const repoApi = () => `${baseUrl}/repos/${owner}/${name}`;
  const htmlRepo = `https://github.com/${owner}/${name}`;

  function labelJson(label: string) {
    let id = labelColors.get(label.toLowerCase());
    if (id === undefined) {
      id = nextLabelId++;
      labelColors.set(label.toLowerCase(), id);
    }
    return {
      id,
      node_id: `LA_${id}`,
      url: `${repoApi()}/labels/${encodeURIComponent(label)}`,
      name: label,
      color: 'ededed',
      default: false,
      description: null,
    };
  }

  function userJson(login: string) {
    return {
      login,
      id: 1000 + login.length,
      node_id: `U_${login}`,
      avatar_url: `https://avatars.githubusercontent.com/u/${1000 + login.length}?v=4`,
      url: `${baseUrl}/users/${login}`,
      html_url: `https://github.com/${login}`,
      type: 'User',
      site_admin: false,
    };
  }

  function issueJson(issue: StoredIssue): Record<string, unknown> {
    const url = `${repoApi()}/issues/${issue.number}`;
    const blockers = issue.blockedBy.map((n) => issues.get(n)).filter((b): b is StoredIssue => b !== undefined);
    const blocking = [...issues.values()].filter((other) => other.blockedBy.includes(issue.number));
    const json: Record<string, unknown> = {
      url,
      repository_url: repoApi(),
      labels_url: `${url}/labels{/name}`,
      comments_url: `${url}/comments`,
      events_url: `${url}/events`,
      html_url: `${htmlRepo}/${issue.isPullRequest ? 'pull' : 'issues'}/${issue.number}`,
      id: issue.id,
      node_id: `I_${issue.id}`,
      number: issue.number,
      title: issue.title,
      user: userJson(issue.author),
      labels: issue.labels.map(labelJson),
      state: issue.state,
      locked: false,
      assignee: null,
      assignees: [],
      milestone: null,
      comments: issue.comments.length,
      created_at: issue.createdAt,
      updated_at: issue.updatedAt,
      closed_at: issue.closedAt,
      author_association: 'OWNER',
      type: null,
      active_lock_reason: null,
      sub_issues_summary: { total: 0, completed: 0, percent_completed: 0 },
      issue_dependencies_summary: {
        blocked_by: blockers.filter((b) => b.state === 'open').length,
        total_blocked_by: blockers.length,
        blocking: blocking.filter((b) => b.state === 'open').length,
        total_blocking: blocking.length,
      },
      body: issue.body,
      closed_by: issue.state === 'closed' ? userJson('octocat') : null,
      timeline_url: `${url}/timeline`,
      performed_via_github_app: null,
      state_reason: issue.stateReason,
    };
    if (issue.isPullRequest) {
      json.draft = false;
      json.pull_request = {
        url: `${repoApi()}/pulls/${issue.number}`,
        html_url: `${htmlRepo}/pull/${issue.number}`,
        diff_url: `${htmlRepo}/pull/${issue.number}.diff`,
        patch_url: `${htmlRepo}/pull/${issue.number}.patch`,
        merged_at: null,
      };
    }
    return json;
  }

  function commentJson(issue: StoredIssue, comment: FakeComment): Record<string, unknown> {
    return {
      url: `${repoApi()}/issues/comments/${comment.id}`,
      html_url: `${htmlRepo}/issues/${issue.number}#issuecomment-${comment.id}`,
      issue_url: `${repoApi()}/issues/${issue.number}`,
      id: comment.id,
      node_id: `IC_${comment.id}`,
      user: userJson(comment.login),
      created_at: comment.createdAt,
      updated_at: comment.updatedAt,
      author_association: 'OWNER',
      body: comment.body,
      performed_via_github_app: null,
    };
  }

  function repoJson(): Record<string, unknown> {
    return {
      id: REPO_ID,
      node_id: `R_${REPO_ID}`,
      name,
      full_name: `${owner}/${name}`,
      private: true,
      owner: userJson(owner),
      html_url: htmlRepo,
      url: repoApi(),
      issues_url: `${repoApi()}/issues{/number}`,
      has_issues: true,
      open_issues_count: [...issues.values()].filter((i) => i.state === 'open').length,
      default_branch: 'main',
    };
  }

  const notFound = () => new HttpError(404, { message: 'Not Found', documentation_url: DOCS, status: '404' });

  function requireIssue(number: number): StoredIssue {
    const issue = issues.get(number);
    if (!issue) throw notFound();
    return issue;
  }

  function touch(issue: StoredIssue): void {
    issue.updatedAt = stamp();
  }

  function findComment(id: number): { issue: StoredIssue; comment: FakeComment } | null {
    for (const issue of issues.values()) {
      const comment = issue.comments.find((c) => c.id === id);
      if (comment) return { issue, comment };
    }
    return null;
  }

  /** One page of `items` plus GitHub's Link header (URLs in `/repositories/{id}/…` form). */
  function paged<T>(items: T[], url: URL, listPath: string): { page: T[]; link: string | null } {
    const perPageRaw = Number(url.searchParams.get('per_page') ?? 30);
    const perPage = Number.isInteger(perPageRaw) && perPageRaw > 0 ? Math.min(perPageRaw, 100) : 30;
    const pageRaw = Number(url.searchParams.get('page') ?? 1);
    const page = Number.isInteger(pageRaw) && pageRaw > 0 ? pageRaw : 1;
    const last = Math.max(1, Math.ceil(items.length / perPage));
    const linkTo = (p: number) => {
      const params = new URLSearchParams(url.searchParams);
      params.set('page', String(p));
      return `<${baseUrl}/repositories/${REPO_ID}${listPath}?${params}>`;
    };
    const parts: string[] = [];
    if (page > 1) parts.push(`${linkTo(Math.min(page - 1, last))}; rel="prev"`);
    if (page < last) parts.push(`${linkTo(page + 1)}; rel="next"`, `${linkTo(last)}; rel="last"`);
    if (page > 1) parts.push(`${linkTo(1)}; rel="first"`);
    return { page: items.slice((page - 1) * perPage, page * perPage), link: parts.length > 0 ? parts.join(', ') : null };
  }

  async function readJson(req: IncomingMessage): Promise<unknown> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    if (text.trim() === '') return {};
    try {
      return JSON.parse(text);
    } catch {
      throw new HttpError(400, { message: 'Problems parsing JSON', documentation_url: DOCS, status: '400' });
    }
  }

  const invalid = (message: string, field: string, code = 'invalid') =>
    new HttpError(422, {
      message: 'Validation Failed',
      errors: [{ resource: 'Issue', code, field, message }],
      documentation_url: DOCS,
      status: '422',
    });

  interface Answer {
    status: number;
    body: unknown;
    link?: string | null;
  }

  async function route(req: IncomingMessage, url: URL): Promise<Answer> {
    const method = req.method ?? 'GET';
    const segments = url.pathname.split('/').filter((s) => s !== '').map(decodeURIComponent);
    // /repos/{owner}/{repo}/… or /repositories/{id}/… (the form GitHub's Link headers use)
    let rest: string[];
    if (segments[0] === 'repos' && segments.length >= 3) {
      if (segments[1]?.toLowerCase() !== owner.toLowerCase() || segments[2]?.toLowerCase() !== name.toLowerCase()) throw notFound();
      rest = segments.slice(3);
    } else if (segments[0] === 'repositories' && segments.length >= 2) {
      if (segments[1] !== String(REPO_ID)) throw notFound();
      rest = segments.slice(2);
    } else {
      throw notFound();
    }
    const [a, b, c, d, e] = rest;
    const issueNumber = (text: string | undefined) => {
      if (text === undefined || !/^\d+$/.test(text)) throw notFound();
      return Number(text);
    };

    if (rest.length === 0 && method === 'GET') return { status: 200, body: repoJson() };
    if (a !== 'issues') throw notFound();

    // GET /issues
    if (rest.length === 1 && method === 'GET') {
      const state = url.searchParams.get('state') ?? 'open';
      if (!['open', 'closed', 'all'].includes(state)) throw invalid(`state must be open, closed or all`, 'state');
      const sort = url.searchParams.get('sort') ?? 'created';
      const direction = url.searchParams.get('direction') ?? 'desc';
      const key = (i: StoredIssue) => (sort === 'updated' ? i.updatedAt : sort === 'comments' ? String(i.comments.length).padStart(9, '0') : i.createdAt);
      const list = [...issues.values()]
        .filter((i) => state === 'all' || i.state === state)
        .sort((x, y) => (key(x) === key(y) ? x.number - y.number : key(x) < key(y) ? -1 : 1));
      if (direction !== 'asc') list.reverse();
      const { page, link } = paged(list, url, '/issues');
      return { status: 200, body: page.map(issueJson), link };
    }

    // /issues/comments/{id}
    if (b === 'comments' && rest.length === 3 && method === 'PATCH') {
      const found = findComment(issueNumber(c));
      if (!found) throw notFound();
      const input = await readJson(req);
      const body = (input as { body?: unknown }).body;
      if (typeof body !== 'string') throw invalid('body is required', 'body', 'missing_field');
      found.comment.body = body;
      found.comment.updatedAt = stamp();
      return { status: 200, body: commentJson(found.issue, found.comment) };
    }

    const issue = requireIssue(issueNumber(b));
    if (rest.length === 2 && method === 'GET') return { status: 200, body: issueJson(issue) };

    if (rest.length === 2 && method === 'PATCH') {
      const input = (await readJson(req)) as Record<string, unknown>;
      if (input.state !== undefined && input.state !== 'open' && input.state !== 'closed') {
        throw invalid(`state is not included in the list`, 'state');
      }
      const reasons = ['completed', 'not_planned', 'duplicate', 'reopened', null];
      if (input.state_reason !== undefined && !reasons.includes(input.state_reason as string | null)) {
        throw invalid(`state_reason is not included in the list`, 'state_reason');
      }
      if (typeof input.title === 'string') issue.title = input.title;
      if (typeof input.body === 'string' || input.body === null) issue.body = input.body;
      if (input.state === 'closed') {
        if (issue.state !== 'closed') issue.closedAt = stamp();
        issue.state = 'closed';
        issue.stateReason = (input.state_reason as StateReason | null | undefined) ?? 'completed';
      } else if (input.state === 'open') {
        if (issue.state === 'closed') issue.stateReason = 'reopened';
        issue.state = 'open';
        issue.closedAt = null;
      } else if (input.state_reason !== undefined && issue.state === 'closed') {
        issue.stateReason = input.state_reason as StateReason | null;
      }
      touch(issue);
      return { status: 200, body: issueJson(issue) };
    }

    if (c === 'labels' && rest.length === 3 && method === 'POST') {
      const input = await readJson(req);
      const labels = Array.isArray(input) ? input : (input as { labels?: unknown }).labels;
      if (!Array.isArray(labels) || labels.some((l) => typeof l !== 'string' || l.trim() === '')) {
        throw invalid('labels must be a list of names', 'labels');
      }
      for (const label of labels as string[]) {
        if (!issue.labels.some((l) => l.toLowerCase() === label.toLowerCase())) issue.labels.push(label);
      }
      touch(issue);
      return { status: 200, body: issue.labels.map(labelJson) };
    }

    if (c === 'labels' && rest.length === 4 && method === 'DELETE') {
      const index = issue.labels.findIndex((l) => l.toLowerCase() === (d ?? '').toLowerCase());
      if (index < 0) throw new HttpError(404, { message: 'Label does not exist', documentation_url: DOCS, status: '404' });
      issue.labels.splice(index, 1);
      touch(issue);
      return { status: 200, body: issue.labels.map(labelJson) };
    }

    if (c === 'comments' && rest.length === 3 && method === 'GET') {
      const { page, link } = paged(issue.comments, url, `/issues/${issue.number}/comments`);
      return { status: 200, body: page.map((comment) => commentJson(issue, comment)), link };
    }

    if (c === 'comments' && rest.length === 3 && method === 'POST') {
      const input = await readJson(req);
      const body = (input as { body?: unknown }).body;
      if (typeof body !== 'string' || body === '') throw invalid('body is required', 'body', 'missing_field');
      const comment = pushComment(issue, body, 'cadenza-bot');
      return { status: 201, body: commentJson(issue, comment) };
    }

    if (c === 'dependencies' && d === 'blocked_by' && e === undefined && method === 'GET') {
      const blockers = issue.blockedBy.map((n) => issues.get(n)).filter((x): x is StoredIssue => x !== undefined);
      const { page, link } = paged(blockers, url, `/issues/${issue.number}/dependencies/blocked_by`);
      return { status: 200, body: page.map(issueJson), link };
    }

    throw notFound();
  }

  function pushComment(issue: StoredIssue, body: string, login: string): FakeComment {
    const now = stamp();
    const comment: FakeComment = { id: nextCommentId++, body, login, createdAt: now, updatedAt: now };
    issue.comments.push(comment);
    touch(issue);
    return comment;
  }

  function send(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
    const text = JSON.stringify(body);
    const reset = resetAt();
    const used = RATE_LIMIT - remaining;
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'x-github-api-version-selected': '2022-11-28',
      'x-github-media-type': 'github.v3; format=json',
      'x-github-request-id': `FAKE:${requests.length}`,
      'x-ratelimit-limit': String(RATE_LIMIT),
      'x-ratelimit-remaining': String(remaining),
      'x-ratelimit-reset': String(reset),
      'x-ratelimit-used': String(used),
      'x-ratelimit-resource': 'core',
      ...extra,
      'content-length': String(Buffer.byteLength(text)),
    });
    res.end(text);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = req.url ?? '/';
    requests.push({ method: req.method ?? 'GET', path });
    const url = new URL(path, baseUrl);
    const auth = req.headers.authorization ?? '';
    if (auth !== `Bearer ${options.token}` && auth !== `token ${options.token}`) {
      send(res, 401, { message: 'Bad credentials', documentation_url: DOCS, status: '401' });
      return;
    }
    const failure = failures.shift();
    if (failure === 'ratelimited') {
      send(
        res,
        403,
        {
          message: 'API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include the request ID FAKE.',
          documentation_url: 'https://docs.github.com/rest/overview/rate-limits-for-the-rest-api',
          status: '403',
        },
        { 'x-ratelimit-remaining': '0', 'x-ratelimit-used': String(RATE_LIMIT) },
      );
      return;
    }
    if (failure === 'secondaryRateLimit') {
      send(
        res,
        429,
        {
          message: 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.',
          documentation_url: 'https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits',
          status: '429',
        },
        { 'retry-after': '60' },
      );
      return;
    }
    if (failure === 'http500') {
      send(res, 500, { message: 'Server Error', status: '500' });
      return;
    }
    remaining = Math.max(0, remaining - 1);
    try {
      const answer = await route(req, url);
      send(res, answer.status, answer.body, answer.link ? { link: answer.link } : {});
    } catch (error) {
      if (error instanceof HttpError) send(res, error.status, error.body, error.headers);
      else send(res, 500, { message: String(error), status: '500' });
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) send(res, 500, { message: String(error), status: '500' });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  baseUrl = `http://127.0.0.1:${address.port}`;

  function snapshot(issue: StoredIssue): FakeIssueSnapshot {
    return {
      number: issue.number,
      title: issue.title,
      body: issue.body,
      state: issue.state,
      stateReason: issue.stateReason,
      labels: [...issue.labels],
      blockedBy: [...issue.blockedBy],
      isPullRequest: issue.isPullRequest,
      comments: issue.comments.map((c) => ({ ...c })),
      createdAt: issue.createdAt,
      updatedAt: issue.updatedAt,
      closedAt: issue.closedAt,
    };
  }

  function mustExist(number: number): StoredIssue {
    const issue = issues.get(number);
    if (!issue) throw new Error(`fake GitHub: no issue #${number}`);
    return issue;
  }

  function close(): Promise<void>;
  function close(number: number, reason?: StateReason): void;
  function close(number?: number, reason: StateReason = 'completed'): Promise<void> | void {
    if (number === undefined) {
      return new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
    }
    const issue = mustExist(number);
    issue.state = 'closed';
    issue.stateReason = reason;
    issue.closedAt = stamp();
    touch(issue);
  }

  return {
    url: baseUrl,
    repository: options.repository,
    requests,
    addIssue(input) {
      const number = nextNumber++;
      const createdAt = stamp(input.createdAt ?? new Date(Date.UTC(2025, 0, 1) + number * 60_000));
      const state = input.state ?? 'open';
      issues.set(number, {
        id: 900_000_000 + number,
        number,
        title: input.title,
        body: input.body ?? null,
        state,
        stateReason: state === 'closed' ? (input.stateReason === undefined ? 'completed' : input.stateReason) : null,
        labels: [...(input.labels ?? [])],
        blockedBy: [...(input.blockedBy ?? [])],
        isPullRequest: input.isPullRequest ?? false,
        author: input.author ?? 'octocat',
        createdAt,
        updatedAt: createdAt,
        closedAt: state === 'closed' ? createdAt : null,
        comments: [],
      });
      return number;
    },
    setLabels(number, labels) {
      const issue = mustExist(number);
      issue.labels = [...labels];
      touch(issue);
    },
    close,
    addComment(number, body, login = 'octocat') {
      return pushComment(mustExist(number), body, login).id;
    },
    issue(number) {
      return snapshot(mustExist(number));
    },
    failNext(count, kind, after = 0) {
      for (let i = 0; i < after; i++) failures.push(null);
      for (let i = 0; i < count; i++) failures.push(kind);
    },
  };
}
