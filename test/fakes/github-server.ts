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
 *   GET    /repos/{owner}/{repo}/pulls                       (state, head, base, sort, direction, per_page, page)
 *   POST   /repos/{owner}/{repo}/pulls                       ({title, head, base, body?, draft?})
 *
 * Like GitHub: PRs are issues with a `pull_request` key and share the numbering; lists are paged
 * (per_page default 30, max 100) with `Link` headers whose URLs use `/repositories/{id}/…` (so a
 * client must follow them, not build page URLs); every response carries x-ratelimit-* headers;
 * a bad or missing token is 401 "Bad credentials"; an unknown repository or issue is 404 "Not Found";
 * repository names match case-insensitively; timestamps are second-precision `…Z`.
 *
 * Pull requests, as on GitHub: the list's `head` filter is `owner:branch` (a value without the
 * `owner:` is ignored, so every pull request matches it, as GitHub does); creating one answers 201
 * with the full pull request, and 422 "Validation Failed" with GitHub's `errors` when the title is
 * missing (`missing_field`), head or base is missing or unknown (`invalid`), head equals base
 * ("No commits between …") or an open pull request for the same head and base exists ("A pull
 * request already exists for owner:branch."). The fake has no git, so any branch name exists unless
 * `setBranches` declares the branches; heads from other owners (forks) are `invalid`; creating from
 * an issue (`issue` instead of `title`) is not supported. A created pull request is also an issue
 * (with a `pull_request` key) in the issues endpoints.
 */
import { createHash } from 'node:crypto';
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
  /** A pull request from branch `pr-{n}` into `main` (use `addPullRequest` to choose them). */
  isPullRequest?: boolean;
  createdAt?: string | Date;
  /** Author login; default "octocat". */
  author?: string;
}

export interface FakePullRequestInput {
  title: string;
  /** Branch name in this repository (no `owner:`). */
  head: string;
  /** Default "main". */
  base?: string;
  body?: string | null;
  state?: 'open' | 'closed';
  draft?: boolean;
  createdAt?: string | Date;
  /** Author login; default "octocat". */
  author?: string;
}

/** A snapshot of one pull request, for assertions. */
export interface FakePullRequestSnapshot {
  number: number;
  title: string;
  body: string | null;
  /** Branch names (no `owner:`). */
  head: string;
  base: string;
  state: 'open' | 'closed';
  draft: boolean;
  author: string;
  createdAt: string;
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
  /** Adds a pull request (numbered with the issues, as on GitHub); returns its number. */
  addPullRequest(input: FakePullRequestInput): number;
  /** Every pull request, by number. */
  pullRequests(): FakePullRequestSnapshot[];
  /**
   * Declares the repository's branches: creating a pull request whose head or base is not among them
   * then answers 422 `invalid` for that field, as GitHub does for a branch that does not exist.
   * `null` (the default) accepts any branch name: the fake has no git.
   */
  setBranches(names: string[] | null): void;
  /** The next `count` authenticated requests fail with `kind` (after letting `after` more through). */
  failNext(count: number, kind: FailureKind, after?: number): void;
  /**
   * Runs `action` once, just before the fake handles the next authenticated request with `method`
   * whose path (without the query) matches `path`; for injecting races (e.g. a pull request that
   * appears between a client's lookup and its create).
   */
  beforeNext(method: string, path: string | RegExp, action: () => void): void;
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
  /** Set for every pull request. */
  pull: StoredPull | null;
  author: string;
  createdAt: string;
  updatedAt: string;
  closedAt: string | null;
  comments: FakeComment[];
}

interface StoredPull {
  /** The pull request's own id (GitHub's differs from its issue id). */
  id: number;
  head: string;
  base: string;
  draft: boolean;
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
  const hooks: { method: string; path: string | RegExp; action: () => void }[] = [];
  let branches: Set<string> | null = null;
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
      json.draft = issue.pull?.draft ?? false;
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

  const shaOf = (ref: string) => createHash('sha1').update(`${owner}/${name}:${ref}`).digest('hex');

  function branchJson(ref: string): Record<string, unknown> {
    return { label: `${owner}:${ref}`, ref, sha: shaOf(ref), user: userJson(owner), repo: repoJson() };
  }

  /** A pull request as the list returns it; `full` adds what a single one (and a create) carries. */
  function pullJson(issue: StoredIssue, full: boolean): Record<string, unknown> {
    const pull = issue.pull as StoredPull;
    const url = `${repoApi()}/pulls/${issue.number}`;
    const issueUrl = `${repoApi()}/issues/${issue.number}`;
    const html = `${htmlRepo}/pull/${issue.number}`;
    const json: Record<string, unknown> = {
      url,
      id: pull.id,
      node_id: `PR_${pull.id}`,
      html_url: html,
      diff_url: `${html}.diff`,
      patch_url: `${html}.patch`,
      issue_url: issueUrl,
      number: issue.number,
      state: issue.state,
      locked: false,
      title: issue.title,
      user: userJson(issue.author),
      body: issue.body,
      labels: issue.labels.map(labelJson),
      milestone: null,
      active_lock_reason: null,
      created_at: issue.createdAt,
      updated_at: issue.updatedAt,
      closed_at: issue.closedAt,
      merged_at: null,
      merge_commit_sha: null,
      assignee: null,
      assignees: [],
      requested_reviewers: [],
      requested_teams: [],
      commits_url: `${url}/commits`,
      review_comments_url: `${url}/comments`,
      review_comment_url: `${repoApi()}/pulls/comments{/number}`,
      comments_url: `${issueUrl}/comments`,
      statuses_url: `${repoApi()}/statuses/${shaOf(pull.head)}`,
      head: branchJson(pull.head),
      base: branchJson(pull.base),
      _links: {
        self: { href: url },
        html: { href: html },
        issue: { href: issueUrl },
        comments: { href: `${issueUrl}/comments` },
      },
      author_association: 'OWNER',
      auto_merge: null,
      draft: pull.draft,
    };
    if (full) {
      Object.assign(json, {
        merged: false,
        mergeable: null,
        rebaseable: null,
        mergeable_state: 'unknown',
        merged_by: null,
        comments: issue.comments.length,
        review_comments: 0,
        maintainer_can_modify: false,
        commits: 1,
        additions: 0,
        deletions: 0,
        changed_files: 0,
      });
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

  const pullValidation = (errors: Record<string, unknown>[]) =>
    new HttpError(422, {
      message: 'Validation Failed',
      errors,
      documentation_url: 'https://docs.github.com/rest/pulls/pulls#create-a-pull-request',
      status: '422',
    });

  function openPullFor(head: string, base: string): StoredIssue | undefined {
    return [...issues.values()].find((i) => i.state === 'open' && i.pull?.head === head && i.pull.base === base);
  }

  function storeIssue(input: FakeIssueInput, pull: Omit<StoredPull, 'id'> | null, createdAt?: string): StoredIssue {
    const number = nextNumber++;
    const created = createdAt ?? stamp(input.createdAt ?? new Date(Date.UTC(2025, 0, 1) + number * 60_000));
    const state = input.state ?? 'open';
    const isPullRequest = pull !== null || (input.isPullRequest ?? false);
    const issue: StoredIssue = {
      id: 900_000_000 + number,
      number,
      title: input.title,
      body: input.body ?? null,
      state,
      stateReason: state === 'closed' ? (input.stateReason === undefined ? 'completed' : input.stateReason) : null,
      labels: [...(input.labels ?? [])],
      blockedBy: [...(input.blockedBy ?? [])],
      isPullRequest,
      pull: isPullRequest ? { id: 800_000_000 + number, ...(pull ?? { head: `pr-${number}`, base: 'main', draft: false }) } : null,
      author: input.author ?? 'octocat',
      createdAt: created,
      updatedAt: created,
      closedAt: state === 'closed' ? created : null,
      comments: [],
    };
    issues.set(number, issue);
    return issue;
  }

  async function routePulls(req: IncomingMessage, url: URL): Promise<Answer> {
    const method = req.method ?? 'GET';
    if (method === 'GET') {
      const state = url.searchParams.get('state') ?? 'open';
      if (!['open', 'closed', 'all'].includes(state)) throw invalid(`state must be open, closed or all`, 'state');
      // `owner:branch`; without the owner GitHub ignores the filter.
      const headFilter = url.searchParams.get('head');
      let head: { owner: string; ref: string } | null = null;
      if (headFilter !== null && headFilter.includes(':')) {
        const at = headFilter.indexOf(':');
        head = { owner: headFilter.slice(0, at), ref: headFilter.slice(at + 1) };
      }
      const base = url.searchParams.get('base');
      const sort = url.searchParams.get('sort') ?? 'created';
      const direction = url.searchParams.get('direction') ?? (sort === 'created' ? 'desc' : 'asc');
      const key = (i: StoredIssue) => (sort === 'updated' ? i.updatedAt : i.createdAt);
      const list = [...issues.values()]
        .filter((i) => i.pull !== null)
        .filter((i) => state === 'all' || i.state === state)
        .filter((i) => head === null || (head.owner.toLowerCase() === owner.toLowerCase() && i.pull?.head === head.ref))
        .filter((i) => base === null || base === '' || i.pull?.base === base)
        .sort((x, y) => (key(x) === key(y) ? x.number - y.number : key(x) < key(y) ? -1 : 1));
      if (direction !== 'asc') list.reverse();
      const { page, link } = paged(list, url, '/pulls');
      return { status: 200, body: page.map((i) => pullJson(i, false)), link };
    }
    if (method !== 'POST') throw notFound();

    const raw = await readJson(req);
    const input = typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? (raw as Record<string, unknown>) : {};
    const errors: Record<string, unknown>[] = [];
    if (typeof input.title !== 'string' || input.title === '') errors.push({ resource: 'PullRequest', code: 'missing_field', field: 'title' });
    // head: `branch` or `owner:branch`; the fake has no forks, so another owner's head is invalid.
    let head = typeof input.head === 'string' ? input.head : '';
    if (head.includes(':')) {
      const at = head.indexOf(':');
      head = head.slice(0, at).toLowerCase() === owner.toLowerCase() ? head.slice(at + 1) : '';
    }
    const base = typeof input.base === 'string' ? input.base : '';
    if (base === '' || (branches !== null && !branches.has(base))) errors.push({ resource: 'PullRequest', field: 'base', code: 'invalid' });
    if (head === '' || (branches !== null && !branches.has(head))) errors.push({ resource: 'PullRequest', field: 'head', code: 'invalid' });
    if (errors.length > 0) throw pullValidation(errors);
    if (head === base) {
      throw pullValidation([{ resource: 'PullRequest', code: 'custom', message: `No commits between ${base} and ${head}` }]);
    }
    if (openPullFor(head, base)) {
      throw pullValidation([{ resource: 'PullRequest', code: 'custom', message: `A pull request already exists for ${owner}:${head}.` }]);
    }
    const issue = storeIssue(
      {
        title: input.title as string,
        body: typeof input.body === 'string' ? input.body : null,
        author: 'cadenza-bot',
      },
      { head, base, draft: input.draft === true },
      stamp(),
    );
    return { status: 201, body: pullJson(issue, true) };
  }

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
    if (a === 'pulls' && rest.length === 1) return routePulls(req, url);
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
    const pathname = url.pathname;
    const hook = hooks.findIndex(
      (h) => h.method === (req.method ?? 'GET') && (typeof h.path === 'string' ? h.path === pathname : h.path.test(pathname)),
    );
    if (hook >= 0) hooks.splice(hook, 1)[0]?.action();
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
      return storeIssue(input, null).number;
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
    addPullRequest(input) {
      const base = input.base ?? 'main';
      if ((input.state ?? 'open') === 'open' && openPullFor(input.head, base)) {
        throw new Error(`fake GitHub: an open pull request from ${input.head} into ${base} exists already`);
      }
      const { head, draft, ...rest } = input;
      return storeIssue(rest, { head, base, draft: draft ?? false }).number;
    },
    pullRequests() {
      return [...issues.values()]
        .filter((i) => i.pull !== null)
        .sort((x, y) => x.number - y.number)
        .map((i) => ({
          number: i.number,
          title: i.title,
          body: i.body,
          head: i.pull?.head ?? '',
          base: i.pull?.base ?? '',
          state: i.state,
          draft: i.pull?.draft ?? false,
          author: i.author,
          createdAt: i.createdAt,
        }));
    },
    setBranches(names) {
      branches = names === null ? null : new Set(names);
    },
    failNext(count, kind, after = 0) {
      for (let i = 0; i < after; i++) failures.push(null);
      for (let i = 0; i < count; i++) failures.push(kind);
    },
    beforeNext(method, path, action) {
      hooks.push({ method: method.toUpperCase(), path, action });
    },
  };
}
