/**
 * The GitHub Issues tracker, over the REST API (v3, version 2022-11-28) with Node's fetch.
 *
 * GitHub issues are only open or closed, so Cadenza keeps the workflow state of an open issue in
 * a label `state:<Name>` (e.g. `state:In Progress`); an open issue without one is `Todo`. A closed
 * issue's state comes from its close reason: completed (or none) = the done state, not_planned =
 * Cancelled, duplicate = Duplicate. Priority is a label `priority:1`..`priority:4`. Blockers come
 * from GitHub's issue dependencies ("blocked by").
 *
 * Issue ids are issue numbers as strings ("42"); identifiers are `<repo name>-<number>`
 * ("cadenza-42"), safe for file names and workflow ids. The token is sent only to the configured
 * endpoint's origin and never appears in an error message.
 *
 * Pull requests are opened from a branch of the same repository; an open one for the same head and
 * base is reused (looked up first, and again when GitHub answers that it already exists), so a
 * retried landing opens exactly one.
 */
import { ContractError } from '../contract/errors.ts';
import { resolveSecret } from '../contract/secrets.ts';
import type { TrackerConfig } from '../contract/types.ts';
import {
  TrackerError,
  type BlockerRef,
  type Issue,
  type PullRequest,
  type PullRequestRequest,
  type TrackerAdapter,
  type TrackerComment,
} from './types.ts';

export const DEFAULT_GITHUB_ENDPOINT = 'https://api.github.com';
const API_VERSION = '2022-11-28';
const DEFAULT_PAGE_SIZE = 100;
const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_PAGES = 10_000;
const REPOSITORY_PATTERN = /^([A-Za-z0-9_.-]+)\/([A-Za-z0-9_.-]+)$/;
const STATE_LABEL = /^state:\s*(.*?)\s*$/i;
const PRIORITY_LABEL = /^priority:\s*(.*?)\s*$/i;

export interface GitHubTrackerOptions {
  token: string;
  /** `owner/name`. */
  repository: string;
  /** REST API root; default https://api.github.com (GitHub Enterprise Server: https://HOST/api/v3). */
  endpoint?: string;
  /** States that close the issue when set (the done state always does). */
  terminalStates: string[];
  /** The state of an issue closed as completed. */
  doneState: string;
  /** Items per list request, 1..100; default 100. */
  pageSize?: number;
  /** Per-request timeout; default 30000. */
  timeoutMs?: number;
}

/** The parts of GitHub's issue JSON this adapter reads. */
interface RawIssue {
  number: number;
  title?: unknown;
  body?: unknown;
  state?: unknown;
  state_reason?: unknown;
  labels?: unknown;
  html_url?: unknown;
  repository_url?: unknown;
  created_at?: unknown;
  updated_at?: unknown;
  pull_request?: unknown;
  issue_dependencies_summary?: unknown;
}

interface Reply {
  status: number;
  headers: Headers;
  data: unknown;
}

/** What to do with a 404: `null` = return null; a function = build the error (may run more requests). */
type On404 = null | (() => Promise<TrackerError>);

interface SendOptions {
  body?: unknown;
  accept?: readonly number[];
}

export class GitHubTracker implements TrackerAdapter {
  readonly kind = 'github';
  readonly repository: string;
  readonly endpoint: string;
  private readonly owner: string;
  private readonly name: string;
  private readonly token: string;
  private readonly origin: string;
  private readonly pageSize: number;
  private readonly timeoutMs: number;
  private readonly doneState: string;
  private readonly terminal: Set<string>;
  private readonly cancelledName: string;
  private readonly duplicateName: string;

  constructor(options: GitHubTrackerOptions) {
    const match = REPOSITORY_PATTERN.exec(options.repository ?? '');
    if (!match) {
      throw new TrackerError('tracker_invalid_data', `GitHub repository must be "owner/name", got ${JSON.stringify(options.repository)}`);
    }
    if (typeof options.token !== 'string' || options.token.trim() === '') {
      throw new TrackerError('tracker_auth_failed', 'GitHub tracker needs a non-empty API token');
    }
    if (typeof options.doneState !== 'string' || options.doneState.trim() === '') {
      throw new TrackerError('tracker_invalid_data', 'GitHub tracker needs a non-empty done state');
    }
    const endpoint = (options.endpoint ?? DEFAULT_GITHUB_ENDPOINT).replace(/\/+$/, '');
    let origin: string;
    try {
      const url = new URL(endpoint);
      if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('not http(s)');
      origin = url.origin;
    } catch {
      throw new TrackerError('tracker_invalid_data', `GitHub endpoint must be an http(s) URL, got ${JSON.stringify(options.endpoint)}`);
    }
    const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 100) {
      throw new TrackerError('tracker_invalid_data', `GitHub page size must be an integer 1..100, got ${pageSize}`);
    }
    this.owner = match[1] as string;
    this.name = match[2] as string;
    this.repository = `${this.owner}/${this.name}`;
    this.endpoint = endpoint;
    this.origin = origin;
    this.token = options.token;
    this.pageSize = pageSize;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.doneState = options.doneState.trim();
    this.terminal = new Set([...options.terminalStates, this.doneState].map(normalizeState));
    this.cancelledName = options.terminalStates.find((s) => ['cancelled', 'canceled'].includes(normalizeState(s)))?.trim() ?? 'Cancelled';
    this.duplicateName = options.terminalStates.find((s) => normalizeState(s) === 'duplicate')?.trim() ?? 'Duplicate';
  }

  async fetchIssuesByStates(states: string[]): Promise<Issue[]> {
    const wanted = new Set(states.map(normalizeState).filter((s) => s !== ''));
    if (wanted.size === 0) return [];
    const closedNames = [this.doneState, this.cancelledName, this.duplicateName].map(normalizeState);
    const needClosed = [...wanted].some((s) => this.terminal.has(s) || closedNames.includes(s));
    const params = new URLSearchParams({ state: needClosed ? 'all' : 'open', per_page: String(this.pageSize) });
    const raws = await this.paginate(
      `${this.repoUrl()}/issues?${params}`,
      `listing issues of ${this.repository}`,
      () => Promise.resolve(this.repositoryNotFound()),
    );
    const issues: Issue[] = [];
    for (const item of raws) {
      const raw = asRawIssue(item, this.repository);
      if (raw.pull_request !== undefined && raw.pull_request !== null) continue;
      if (!wanted.has(normalizeState(this.stateOf(raw)))) continue;
      issues.push(await this.toIssue(raw));
    }
    return issues;
  }

  /** Issue numbers as strings (`#42` and `<name>-42` are accepted too); missing ones are absent. */
  async fetchIssuesByIds(ids: string[]): Promise<Issue[]> {
    const numbers = new Set<number>();
    for (const id of ids) numbers.add(this.issueNumber(id));
    const issues: Issue[] = [];
    for (const number of numbers) {
      const reply = await this.send('GET', `${this.repoUrl()}/issues/${number}`, `reading issue ${this.ref(number)}`, {
        on404: null,
        on410: null,
      });
      if (reply === null) {
        await this.assertRepositoryVisible();
        continue;
      }
      const raw = asRawIssue(reply.data, this.repository);
      if (raw.pull_request !== undefined && raw.pull_request !== null) continue;
      issues.push(await this.toIssue(raw));
    }
    return issues;
  }

  async setState(issueId: string, state: string): Promise<void> {
    const number = this.issueNumber(issueId);
    if (typeof state !== 'string' || state.trim() === '') {
      throw new TrackerError('tracker_invalid_data', `cannot set GitHub issue ${this.ref(number)} to an empty state`);
    }
    const target = state.trim();
    const raw = await this.requireIssue(number);
    const stateLabels = labelNames(raw.labels).filter((label) => STATE_LABEL.test(label));
    const what = `updating issue ${this.ref(number)}`;

    if (this.terminal.has(normalizeState(target))) {
      const reason = closeReason(target);
      if (raw.state !== 'closed' || raw.state_reason !== reason) {
        await this.send('PATCH', `${this.repoUrl()}/issues/${number}`, what, {
          body: { state: 'closed', state_reason: reason },
          on404: () => this.issueNotFound(number),
        });
      }
      // The close reason now carries the state; a leftover label would resurface on reopening.
      for (const label of stateLabels) await this.removeLabel(number, label);
      return;
    }

    if (raw.state === 'closed') {
      await this.send('PATCH', `${this.repoUrl()}/issues/${number}`, what, {
        body: { state: 'open' },
        on404: () => this.issueNotFound(number),
      });
    }
    const wantedLabel = `state:${target}`;
    const isWanted = (label: string) => normalizeState(STATE_LABEL.exec(label)?.[1] ?? '') === normalizeState(target);
    // Add before removing: a failure in between leaves two labels, never none (none reads as Todo).
    if (!stateLabels.some(isWanted)) {
      await this.send('POST', `${this.repoUrl()}/issues/${number}/labels`, what, {
        body: { labels: [wantedLabel] },
        on404: () => this.issueNotFound(number),
      });
    }
    for (const label of stateLabels) {
      if (!isWanted(label)) await this.removeLabel(number, label);
    }
  }

  async addComment(issueId: string, body: string): Promise<TrackerComment> {
    const number = this.issueNumber(issueId);
    const reply = await this.send('POST', `${this.repoUrl()}/issues/${number}/comments`, `commenting on issue ${this.ref(number)}`, {
      body: { body },
      on404: () => this.issueNotFound(number),
    });
    return toComment(reply.data, this.repository);
  }

  async updateComment(issueId: string, commentId: string, body: string): Promise<void> {
    const number = this.issueNumber(issueId);
    if (!/^\d+$/.test(String(commentId).trim())) {
      throw new TrackerError('tracker_invalid_data', `GitHub comment ids are numbers, got ${JSON.stringify(commentId)}`);
    }
    const id = String(commentId).trim();
    await this.send('PATCH', `${this.repoUrl()}/issues/comments/${id}`, `updating comment ${id} on issue ${this.ref(number)}`, {
      body: { body },
      on404: async () => {
        await this.assertRepositoryVisible();
        return new TrackerError('tracker_not_found', `comment ${id} not found in GitHub repository ${this.repository} (issue ${this.ref(number)})`);
      },
    });
  }

  async listComments(issueId: string): Promise<TrackerComment[]> {
    const number = this.issueNumber(issueId);
    const params = new URLSearchParams({ per_page: String(this.pageSize) });
    const items = await this.paginate(
      `${this.repoUrl()}/issues/${number}/comments?${params}`,
      `listing comments of issue ${this.ref(number)}`,
      () => this.issueNotFound(number),
    );
    return items.map((item) => toComment(item, this.repository));
  }

  /**
   * Opens a pull request from `head` into `base` (branches of this repository), or returns the open
   * one that already exists for them (`created: false`), also when another opener wins a race.
   */
  async openPullRequest(request: PullRequestRequest): Promise<PullRequest> {
    const { head, base, title, body } = this.pullRequestInput(request);
    const existing = await this.findOpenPullRequest(head, base);
    if (existing !== null) return existing;

    const branches = `from ${head} into ${base} in GitHub repository ${this.repository}`;
    const what = `opening a pull request ${branches}`;
    const reply = await this.send('POST', `${this.repoUrl()}/pulls`, what, {
      body: { title, head, base, body },
      on404: async () => {
        await this.assertRepositoryVisible();
        return new TrackerError(
          'tracker_auth_failed',
          `GitHub answered 404 while ${what} although the repository is visible; the token likely lacks permission to open pull requests (Pull requests: write)`,
        );
      },
      accept: [422],
    });
    if (reply.status !== 422) return toPullRequest(reply.data, this.repository, true);

    const message = isObject(reply.data) && typeof reply.data.message === 'string' ? reply.data.message : 'Unprocessable Entity';
    const details = validationDetails(reply.data);
    if (alreadyExists(reply.data)) {
      // Someone else opened it between the lookup and the create.
      const raced = await this.findOpenPullRequest(head, base);
      if (raced !== null) return raced;
      throw new TrackerError(
        'tracker_invalid_data',
        this.redact(`GitHub says a pull request ${branches} already exists (422 ${message}${details}) but lists no open one for that head and base`),
      );
    }
    const fields = validationFields(reply.data);
    const hint = [
      fields.includes('head') ? `; check that branch ${JSON.stringify(head)} exists in ${this.repository} (was it pushed?)` : '',
      fields.includes('base') ? `; check that base branch ${JSON.stringify(base)} exists in ${this.repository}` : '',
    ].join('');
    throw new TrackerError('tracker_invalid_data', this.redact(`GitHub refused to open a pull request ${branches} (422 ${message}${details})${hint}`));
  }

  // --- mapping -------------------------------------------------------------------------------

  private stateOf(raw: RawIssue): string {
    if (raw.state === 'closed') {
      if (raw.state_reason === 'not_planned') return this.cancelledName;
      if (raw.state_reason === 'duplicate') return this.duplicateName;
      return this.doneState;
    }
    for (const label of labelNames(raw.labels)) {
      const value = STATE_LABEL.exec(label)?.[1];
      if (value) return value;
    }
    return 'Todo';
  }

  private async toIssue(raw: RawIssue): Promise<Issue> {
    const labels = labelNames(raw.labels);
    let priority: number | null = null;
    for (const label of labels) {
      const value = PRIORITY_LABEL.exec(label)?.[1];
      if (value && /^[1-4]$/.test(value)) priority = Math.min(priority ?? 4, Number(value));
    }
    const body = typeof raw.body === 'string' && raw.body.trim() !== '' ? raw.body : null;
    const now = new Date().toISOString();
    const createdAt = toIso(raw.created_at) ?? now;
    return {
      id: String(raw.number),
      identifier: `${this.name}-${raw.number}`,
      title: typeof raw.title === 'string' ? raw.title : '',
      description: body,
      priority,
      state: this.stateOf(raw),
      branch_name: null,
      url: typeof raw.html_url === 'string' ? raw.html_url : null,
      labels: [
        ...new Set(labels.filter((l) => !STATE_LABEL.test(l) && !PRIORITY_LABEL.test(l)).map((l) => l.toLowerCase())),
      ],
      blocked_by: await this.blockersOf(raw),
      created_at: createdAt,
      updated_at: toIso(raw.updated_at) ?? createdAt,
    };
  }

  /** GitHub's issue dependencies; skipped when the issue's summary says there are none. */
  private async blockersOf(raw: RawIssue): Promise<BlockerRef[]> {
    const summary = raw.issue_dependencies_summary;
    if (isObject(summary) && summary.total_blocked_by === 0) return [];
    const params = new URLSearchParams({ per_page: String(this.pageSize) });
    const items = await this.paginate(
      `${this.repoUrl()}/issues/${raw.number}/dependencies/blocked_by?${params}`,
      `listing blockers of issue ${this.ref(raw.number)}`,
      null, // dependencies not available here (older GitHub Enterprise Server): no blockers
    );
    const blockers: BlockerRef[] = [];
    for (const item of items) {
      const blocker = asRawIssue(item, this.repository);
      const repo = repositoryOf(blocker.repository_url) ?? this.repository;
      const same = repo.toLowerCase() === this.repository.toLowerCase();
      const name = repo.slice(repo.indexOf('/') + 1);
      blockers.push({
        id: same ? String(blocker.number) : `${repo}#${blocker.number}`,
        identifier: `${same ? this.name : name}-${blocker.number}`,
        state: this.stateOf(blocker),
      });
    }
    return blockers;
  }

  /** "42", "#42" or "<name>-42" (as issued by this adapter). */
  private issueNumber(id: string): number {
    const text = String(id).trim();
    const prefix = `${this.name.toLowerCase()}-`;
    let digits = text.startsWith('#') ? text.slice(1) : text;
    if (digits.toLowerCase().startsWith(prefix)) digits = digits.slice(prefix.length);
    if (!/^\d+$/.test(digits) || Number(digits) < 1 || !Number.isSafeInteger(Number(digits))) {
      throw new TrackerError(
        'tracker_invalid_data',
        `invalid GitHub issue id ${JSON.stringify(id)}: expected an issue number of ${this.repository} such as "42"`,
      );
    }
    return Number(digits);
  }

  /** Checks a pull request request before anything is sent. */
  private pullRequestInput(request: PullRequestRequest): { head: string; base: string; title: string; body: string } {
    const refuse = (why: string) =>
      new TrackerError('tracker_invalid_data', this.redact(`cannot open a pull request in GitHub repository ${this.repository}: ${why}`));
    if (!isObject(request)) throw refuse('no request given');
    const branch = (field: 'head' | 'base', value: unknown): string => {
      if (typeof value !== 'string' || value.trim() === '') throw refuse(`${field} branch is empty`);
      if (value.includes(':')) {
        throw refuse(`${field} branch ${JSON.stringify(value)} contains ":"; give the branch name alone (the repository owner is added)`);
      }
      if (/\s/.test(value)) throw refuse(`${field} branch ${JSON.stringify(value)} contains whitespace, which no branch name has`);
      return value;
    };
    const head = branch('head', request.head);
    const base = branch('base', request.base);
    if (head === base) throw refuse(`head and base are the same branch ${JSON.stringify(head)}`);
    if (typeof request.title !== 'string' || request.title.trim() === '') throw refuse('title is empty');
    if (typeof request.body !== 'string') throw refuse('body must be a string');
    return { head, base, title: request.title, body: request.body };
  }

  /** The open pull request from `head` (of this repository's owner) into `base`, or null. */
  private async findOpenPullRequest(head: string, base: string): Promise<PullRequest | null> {
    const params = new URLSearchParams({ state: 'open', head: `${this.owner}:${head}`, base, per_page: String(this.pageSize) });
    const items = await this.paginate(
      `${this.repoUrl()}/pulls?${params}`,
      `looking for an open pull request from ${head} into ${base} in ${this.repository}`,
      () => Promise.resolve(this.repositoryNotFound()),
    );
    const label = `${this.owner}:${head}`.toLowerCase();
    for (const item of items) {
      if (!isObject(item)) throw new TrackerError('tracker_invalid_data', `GitHub returned something that is not a pull request for ${this.repository}`);
      // GitHub ignores a head filter it cannot parse; check rather than trust it.
      const itemHead = isObject(item.head) ? item.head : {};
      const itemBase = isObject(item.base) ? item.base : {};
      if (itemHead.ref !== head || itemBase.ref !== base) continue;
      if (typeof itemHead.label === 'string' && itemHead.label.toLowerCase() !== label) continue;
      if (item.state !== undefined && item.state !== 'open') continue;
      return toPullRequest(item, this.repository, false);
    }
    return null;
  }

  // --- requests ------------------------------------------------------------------------------

  private repoUrl(): string {
    return `${this.endpoint}/repos/${encodeURIComponent(this.owner)}/${encodeURIComponent(this.name)}`;
  }

  private ref(number: number): string {
    return `${this.repository}#${number}`;
  }

  private repositoryNotFound(): TrackerError {
    return new TrackerError('tracker_not_found', `GitHub repository ${this.repository} does not exist or the token cannot see it`);
  }

  /** Throws tracker_not_found for the repository when it is the repository that is missing. */
  private async assertRepositoryVisible(): Promise<void> {
    await this.send('GET', this.repoUrl(), `reading repository ${this.repository}`, {
      on404: () => Promise.resolve(this.repositoryNotFound()),
    });
  }

  private async issueNotFound(number: number): Promise<TrackerError> {
    await this.assertRepositoryVisible();
    return new TrackerError('tracker_not_found', `GitHub issue ${this.ref(number)} not found`);
  }

  private async requireIssue(number: number): Promise<RawIssue> {
    const reply = await this.send('GET', `${this.repoUrl()}/issues/${number}`, `reading issue ${this.ref(number)}`, {
      on404: () => this.issueNotFound(number),
    });
    const raw = asRawIssue(reply.data, this.repository);
    if (raw.pull_request !== undefined && raw.pull_request !== null) {
      throw new TrackerError('tracker_not_found', `${this.ref(number)} is a pull request, not an issue`);
    }
    return raw;
  }

  private async removeLabel(number: number, label: string): Promise<void> {
    // 404 = the label is already gone.
    await this.send(
      'DELETE',
      `${this.repoUrl()}/issues/${number}/labels/${encodeURIComponent(label)}`,
      `removing label ${JSON.stringify(label)} from issue ${this.ref(number)}`,
      { on404: null },
    );
  }

  /** All items of a list, following `Link: <…>; rel="next"` until there is none. null on404 = []. */
  private async paginate(firstUrl: string, what: string, on404: On404): Promise<unknown[]> {
    const items: unknown[] = [];
    const seen = new Set<string>();
    let url: string | null = firstUrl;
    while (url !== null) {
      if (seen.has(url) || seen.size >= MAX_PAGES) {
        throw new TrackerError('tracker_invalid_data', `GitHub pagination loops while ${what} (page ${seen.size + 1})`);
      }
      seen.add(url);
      const reply = await this.send('GET', url, what, { on404, on410: on404 === null ? null : undefined });
      if (reply === null) return [];
      if (!Array.isArray(reply.data)) {
        throw new TrackerError('tracker_invalid_data', `GitHub returned a non-list while ${what}`);
      }
      items.push(...reply.data);
      url = nextLink(reply.headers.get('link'));
      if (url !== null && !this.sameOrigin(url)) {
        throw new TrackerError('tracker_invalid_data', `GitHub pagination points away from ${this.origin} while ${what}; not following it`);
      }
    }
    return items;
  }

  private sameOrigin(url: string): boolean {
    try {
      return new URL(url).origin === this.origin;
    } catch {
      return false;
    }
  }

  /** `accept`: error statuses returned as a reply (for the caller to read GitHub's body) instead of thrown. */
  private send(method: string, url: string, what: string, opts: SendOptions & { on404: null; on410?: null }): Promise<Reply | null>;
  private send(method: string, url: string, what: string, opts: SendOptions & { on404: () => Promise<TrackerError>; on410?: undefined }): Promise<Reply>;
  private send(method: string, url: string, what: string, opts: SendOptions & { on404: On404; on410?: null }): Promise<Reply | null>;
  private async send(method: string, url: string, what: string, opts: SendOptions & { on404: On404; on410?: null }): Promise<Reply | null> {
    const headers: Record<string, string> = {
      Authorization: `Bearer ${this.token}`,
      Accept: 'application/vnd.github+json',
      'X-GitHub-Api-Version': API_VERSION,
      'User-Agent': 'cadenza',
    };
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        signal: AbortSignal.timeout(this.timeoutMs),
        redirect: 'follow',
      });
      text = await response.text();
    } catch (error) {
      const reason = isTimeout(error) ? `no answer within ${this.timeoutMs} ms` : describeNetworkError(error);
      throw new TrackerError('tracker_unavailable', this.redact(`cannot reach GitHub at ${this.endpoint} while ${what}: ${reason}`));
    }
    let data: unknown = null;
    if (text.trim() !== '') {
      try {
        data = JSON.parse(text);
      } catch {
        if (response.ok) {
          throw new TrackerError('tracker_unavailable', `GitHub answered ${response.status} with a body that is not JSON while ${what}`);
        }
      }
    }
    if (response.ok || opts.accept?.includes(response.status)) return { status: response.status, headers: response.headers, data };
    if (response.status === 404 || (response.status === 410 && opts.on410 === null)) {
      if (opts.on404 === null) return null;
      throw await opts.on404();
    }
    throw this.httpError(response, data, what);
  }

  private httpError(response: Response, data: unknown, what: string): TrackerError {
    const status = response.status;
    const message = isObject(data) && typeof data.message === 'string' ? data.message : response.statusText;
    const headers = response.headers;
    const remaining = headers.get('x-ratelimit-remaining');
    const retryAfter = headers.get('retry-after');
    const says = (code: TrackerError['code'], text: string) => new TrackerError(code, this.redact(text));

    if (status === 401) {
      return says('tracker_auth_failed', `GitHub rejected the API token while ${what} (401 ${message}); check the token and that it has not expired`);
    }
    if (
      status === 429 ||
      (status === 403 && (remaining === '0' || retryAfter !== null || /rate limit/i.test(message)))
    ) {
      const kind = remaining === '0' ? 'rate limit' : 'secondary rate limit';
      return new TrackerError('tracker_rate_limited', this.redact(`GitHub API ${kind} exceeded while ${what}; ${resetHint(headers)}`), waitMs(headers));
    }
    if (status === 403) {
      return says('tracker_auth_failed', `GitHub refused access while ${what} (403 ${message}); the token lacks permission for ${this.repository}`);
    }
    if (status === 404 || status === 410) {
      return says('tracker_not_found', `GitHub answered ${status} ${message} while ${what}`);
    }
    if (status === 422 || (status >= 400 && status < 500)) {
      return says('tracker_invalid_data', `GitHub rejected the request while ${what} (${status} ${message}${validationDetails(data)})`);
    }
    return says('tracker_unavailable', `GitHub answered ${status} ${message} while ${what}; try again later`);
  }

  private redact(text: string): string {
    return this.token.length >= 4 ? text.split(this.token).join('[redacted]') : text;
  }
}

/**
 * The adapter a contract names: token from `tracker.api_key` (a `$VAR`), falling back to GITHUB_TOKEN.
 */
export function githubTrackerFromConfig(config: TrackerConfig, env: NodeJS.ProcessEnv = process.env): GitHubTracker {
  if (!config.repository) {
    throw new TrackerError('tracker_invalid_data', 'tracker.repository ("owner/name") is required when tracker.kind is "github"');
  }
  let token: string | undefined;
  const tried: string[] = [];
  if (config.apiKey) {
    tried.push(config.apiKey.env);
    try {
      token = resolveSecret(config.apiKey, env);
    } catch (error) {
      if (!(error instanceof ContractError)) throw error;
    }
  }
  if (token === undefined && !tried.includes('GITHUB_TOKEN')) {
    tried.push('GITHUB_TOKEN');
    const value = env.GITHUB_TOKEN;
    if (value !== undefined && value !== '') token = value;
  }
  if (token === undefined) {
    const which = tried.length > 1 ? `neither ${tried.join(' nor ')} is set` : `environment variable ${tried[0]} is not set`;
    throw new TrackerError('tracker_auth_failed', `GitHub tracker needs an API token: ${which} (or it is empty)`);
  }
  return new GitHubTracker({
    token,
    repository: config.repository,
    endpoint: config.endpoint ?? undefined,
    terminalStates: config.terminalStates,
    doneState: config.doneState,
  });
}

// --- helpers ---------------------------------------------------------------------------------

function normalizeState(state: string): string {
  return String(state).trim().toLowerCase();
}

function closeReason(state: string): 'completed' | 'not_planned' | 'duplicate' {
  const s = normalizeState(state);
  if (s === 'cancelled' || s === 'canceled') return 'not_planned';
  if (s === 'duplicate') return 'duplicate';
  return 'completed';
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function asRawIssue(value: unknown, repository: string): RawIssue {
  if (!isObject(value) || typeof value.number !== 'number' || !Number.isInteger(value.number)) {
    throw new TrackerError('tracker_invalid_data', `GitHub returned something that is not an issue for ${repository}`);
  }
  return value as unknown as RawIssue;
}

/** GitHub sends labels as objects with a name (sometimes as plain strings). */
function labelNames(labels: unknown): string[] {
  if (!Array.isArray(labels)) return [];
  const names: string[] = [];
  for (const label of labels) {
    const name = typeof label === 'string' ? label : isObject(label) && typeof label.name === 'string' ? label.name : null;
    if (name !== null && name.trim() !== '') names.push(name.trim());
  }
  return names;
}

function toComment(value: unknown, repository: string): TrackerComment {
  if (!isObject(value) || (typeof value.id !== 'number' && typeof value.id !== 'string')) {
    throw new TrackerError('tracker_invalid_data', `GitHub returned something that is not a comment for ${repository}`);
  }
  const user = isObject(value.user) && typeof value.user.login === 'string' ? value.user.login : 'unknown';
  return {
    id: String(value.id),
    author: user,
    body: typeof value.body === 'string' ? value.body : '',
    created_at: toIso(value.created_at) ?? new Date().toISOString(),
  };
}

/** `owner/name` from `https://api.github.com/repos/owner/name`. */
function repositoryOf(url: unknown): string | null {
  if (typeof url !== 'string') return null;
  const match = /\/repos\/([^/]+)\/([^/?#]+)\/?$/.exec(url);
  return match ? `${decodeURIComponent(match[1] as string)}/${decodeURIComponent(match[2] as string)}` : null;
}

function toIso(value: unknown): string | null {
  if (typeof value !== 'string' || value.trim() === '') return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

/** The `rel="next"` target of a Link header, or null. */
export function nextLink(header: string | null): string | null {
  if (!header) return null;
  for (const part of header.split(/,(?=\s*<)/)) {
    const match = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (!match) continue;
    const rels = /\brel\s*=\s*"?([^";]*)"?/i.exec(match[2] as string)?.[1]?.split(/\s+/) ?? [];
    if (rels.includes('next')) return match[1] as string;
  }
  return null;
}

/** How long GitHub asked us to wait: Retry-After (seconds or a date), else the rate limit's reset time. */
function waitMs(headers: Headers): number | undefined {
  const retryAfter = headers.get('retry-after')?.trim();
  if (retryAfter) {
    const seconds = Number(retryAfter);
    if (Number.isFinite(seconds) && seconds >= 0) return Math.ceil(seconds * 1000);
    const date = new Date(retryAfter).getTime();
    if (!Number.isNaN(date)) return Math.max(0, date - Date.now());
  }
  const reset = Number(headers.get('x-ratelimit-reset'));
  if (headers.get('x-ratelimit-reset') !== null && Number.isFinite(reset) && reset > 0) return Math.max(0, reset * 1000 - Date.now());
  return undefined;
}

function resetHint(headers: Headers): string {
  const retryAfter = headers.get('retry-after');
  if (retryAfter !== null && retryAfter.trim() !== '') {
    const seconds = Number(retryAfter);
    if (Number.isFinite(seconds) && seconds >= 0) {
      return `retry after ${Math.ceil(seconds)} s (at ${new Date(Date.now() + seconds * 1000).toISOString()})`;
    }
    const date = new Date(retryAfter);
    if (!Number.isNaN(date.getTime())) return `retry after ${date.toISOString()}`;
  }
  const reset = Number(headers.get('x-ratelimit-reset'));
  if (headers.get('x-ratelimit-reset') !== null && Number.isFinite(reset) && reset > 0) {
    const wait = Math.max(0, Math.ceil(reset - Date.now() / 1000));
    return `the limit resets at ${new Date(reset * 1000).toISOString()} (in ${wait} s)`;
  }
  return 'retry in a minute or more (GitHub did not say when the limit resets)';
}

function validationDetails(data: unknown): string {
  if (!isObject(data) || !Array.isArray(data.errors)) return '';
  const parts = data.errors
    .map((e: unknown) => {
      if (typeof e === 'string') return e;
      if (!isObject(e)) return null;
      if (typeof e.message === 'string') return e.message;
      return [e.resource, e.field, e.code].filter((x) => typeof x === 'string').join(' ');
    })
    .filter((p): p is string => !!p);
  return parts.length > 0 ? `: ${parts.join('; ')}` : '';
}

/** The fields GitHub's validation errors name (`head`, `base`, …). */
function validationFields(data: unknown): string[] {
  if (!isObject(data) || !Array.isArray(data.errors)) return [];
  return data.errors.flatMap((e: unknown) => (isObject(e) && typeof e.field === 'string' ? [e.field] : []));
}

/** GitHub's 422 for a pull request whose head and base already have an open one. */
function alreadyExists(data: unknown): boolean {
  if (!isObject(data) || !Array.isArray(data.errors)) return false;
  return data.errors.some(
    (e: unknown) =>
      (typeof e === 'string' && /pull request already exists/i.test(e)) ||
      (isObject(e) && typeof e.message === 'string' && /pull request already exists/i.test(e.message)),
  );
}

function toPullRequest(value: unknown, repository: string, created: boolean): PullRequest {
  if (!isObject(value) || typeof value.number !== 'number' || !Number.isInteger(value.number) || typeof value.html_url !== 'string') {
    throw new TrackerError('tracker_invalid_data', `GitHub returned something that is not a pull request for ${repository}`);
  }
  return { number: value.number, url: value.html_url, created };
}

function isTimeout(error: unknown): boolean {
  return error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError');
}

function describeNetworkError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = (error as Error & { cause?: unknown }).cause;
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return `${error.message} (${code ? `${code}: ` : ''}${cause.message})`;
  }
  return error.message;
}
