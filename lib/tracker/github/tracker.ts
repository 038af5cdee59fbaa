/**
 * The GitHub Issues tracker: Cadenza's issues and comments mapped onto GitHub's, over GitHubClient.
 *
 * GitHub issues are only open or closed, so Cadenza keeps the workflow state of an open issue in
 * a label `state:<Name>` (e.g. `state:In Progress`); an open issue without one is `Todo`. A closed
 * issue's state comes from its close reason: completed (or none) = the done state, not_planned =
 * Cancelled, duplicate = Duplicate. Priority is a label `priority:1`..`priority:4`. Blockers come
 * from GitHub's issue dependencies ("blocked by").
 *
 * Issue ids are issue numbers as strings ("42"); identifiers are `<repo name>-<number>`
 * ("cadenza-42"), safe for file names and workflow ids. Pull requests are not a tracker's business:
 * see lib/codehost.
 */
import type { TrackerConfig } from '../../contract/types.ts';
import { TrackerError, type BlockerRef, type Issue, type TrackerAdapter, type TrackerComment } from '../types.ts';
import { GitHubClient, githubToken, isObject } from './client.ts';

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

export class GitHubTracker implements TrackerAdapter {
  readonly kind = 'github';
  private readonly client: GitHubClient;
  private readonly doneState: string;
  private readonly terminal: Set<string>;
  private readonly cancelledName: string;
  private readonly duplicateName: string;

  constructor(options: GitHubTrackerOptions) {
    this.client = new GitHubClient(options, () => {
      if (typeof options.doneState !== 'string' || options.doneState.trim() === '') {
        throw new TrackerError('tracker_invalid_data', 'GitHub tracker needs a non-empty done state');
      }
    });
    this.doneState = options.doneState.trim();
    this.terminal = new Set([...options.terminalStates, this.doneState].map(normalizeState));
    this.cancelledName = options.terminalStates.find((s) => ['cancelled', 'canceled'].includes(normalizeState(s)))?.trim() ?? 'Cancelled';
    this.duplicateName = options.terminalStates.find((s) => normalizeState(s) === 'duplicate')?.trim() ?? 'Duplicate';
  }

  get repository(): string {
    return this.client.repository;
  }

  get endpoint(): string {
    return this.client.endpoint;
  }

  async fetchIssuesByStates(states: string[]): Promise<Issue[]> {
    const wanted = new Set(states.map(normalizeState).filter((s) => s !== ''));
    if (wanted.size === 0) return [];
    const closedNames = [this.doneState, this.cancelledName, this.duplicateName].map(normalizeState);
    const needClosed = [...wanted].some((s) => this.terminal.has(s) || closedNames.includes(s));
    const params = new URLSearchParams({ state: needClosed ? 'all' : 'open', per_page: String(this.client.pageSize) });
    const raws = await this.client.paginate(
      this.client.repoUrl(`/issues?${params}`),
      `listing issues of ${this.repository}`,
      () => Promise.resolve(this.client.repositoryNotFound()),
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
      const reply = await this.client.send('GET', this.client.repoUrl(`/issues/${number}`), `reading issue ${this.client.ref(number)}`, {
        on404: null,
        on410: null,
      });
      if (reply === null) {
        await this.client.assertRepositoryVisible();
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
      throw new TrackerError('tracker_invalid_data', `cannot set GitHub issue ${this.client.ref(number)} to an empty state`);
    }
    const target = state.trim();
    const raw = await this.requireIssue(number);
    const stateLabels = labelNames(raw.labels).filter((label) => STATE_LABEL.test(label));
    const what = `updating issue ${this.client.ref(number)}`;
    const issueUrl = this.client.repoUrl(`/issues/${number}`);

    if (this.terminal.has(normalizeState(target))) {
      const reason = closeReason(target);
      if (raw.state !== 'closed' || raw.state_reason !== reason) {
        await this.client.send('PATCH', issueUrl, what, {
          body: { state: 'closed', state_reason: reason },
          on404: () => this.issueNotFound(number),
        });
      }
      // The close reason now carries the state; a leftover label would resurface on reopening.
      for (const label of stateLabels) await this.removeLabel(number, label);
      return;
    }

    if (raw.state === 'closed') {
      await this.client.send('PATCH', issueUrl, what, {
        body: { state: 'open' },
        on404: () => this.issueNotFound(number),
      });
    }
    const wantedLabel = `state:${target}`;
    const isWanted = (label: string) => normalizeState(STATE_LABEL.exec(label)?.[1] ?? '') === normalizeState(target);
    // Add before removing: a failure in between leaves two labels, never none (none reads as Todo).
    if (!stateLabels.some(isWanted)) {
      await this.client.send('POST', `${issueUrl}/labels`, what, {
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
    const reply = await this.client.send('POST', this.client.repoUrl(`/issues/${number}/comments`), `commenting on issue ${this.client.ref(number)}`, {
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
    await this.client.send('PATCH', this.client.repoUrl(`/issues/comments/${id}`), `updating comment ${id} on issue ${this.client.ref(number)}`, {
      body: { body },
      on404: async () => {
        await this.client.assertRepositoryVisible();
        return new TrackerError('tracker_not_found', `comment ${id} not found in GitHub repository ${this.repository} (issue ${this.client.ref(number)})`);
      },
    });
  }

  async listComments(issueId: string): Promise<TrackerComment[]> {
    const number = this.issueNumber(issueId);
    const params = new URLSearchParams({ per_page: String(this.client.pageSize) });
    const items = await this.client.paginate(
      this.client.repoUrl(`/issues/${number}/comments?${params}`),
      `listing comments of issue ${this.client.ref(number)}`,
      () => this.issueNotFound(number),
    );
    return items.map((item) => toComment(item, this.repository));
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
      identifier: `${this.client.name}-${raw.number}`,
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
    const params = new URLSearchParams({ per_page: String(this.client.pageSize) });
    const items = await this.client.paginate(
      this.client.repoUrl(`/issues/${raw.number}/dependencies/blocked_by?${params}`),
      `listing blockers of issue ${this.client.ref(raw.number)}`,
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
        identifier: `${same ? this.client.name : name}-${blocker.number}`,
        state: this.stateOf(blocker),
      });
    }
    return blockers;
  }

  /** "42", "#42" or "<name>-42" (as issued by this adapter). */
  private issueNumber(id: string): number {
    const text = String(id).trim();
    const prefix = `${this.client.name.toLowerCase()}-`;
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

  private async issueNotFound(number: number): Promise<TrackerError> {
    await this.client.assertRepositoryVisible();
    return new TrackerError('tracker_not_found', `GitHub issue ${this.client.ref(number)} not found`);
  }

  private async requireIssue(number: number): Promise<RawIssue> {
    const reply = await this.client.send('GET', this.client.repoUrl(`/issues/${number}`), `reading issue ${this.client.ref(number)}`, {
      on404: () => this.issueNotFound(number),
    });
    const raw = asRawIssue(reply.data, this.repository);
    if (raw.pull_request !== undefined && raw.pull_request !== null) {
      throw new TrackerError('tracker_not_found', `${this.client.ref(number)} is a pull request, not an issue`);
    }
    return raw;
  }

  private async removeLabel(number: number, label: string): Promise<void> {
    // 404 = the label is already gone.
    await this.client.send(
      'DELETE',
      this.client.repoUrl(`/issues/${number}/labels/${encodeURIComponent(label)}`),
      `removing label ${JSON.stringify(label)} from issue ${this.client.ref(number)}`,
      { on404: null },
    );
  }
}

/**
 * The adapter a contract names: token from `tracker.api_key` (a `$VAR`), falling back to GITHUB_TOKEN.
 */
export function githubTrackerFromConfig(config: TrackerConfig, env: NodeJS.ProcessEnv = process.env): GitHubTracker {
  if (!config.repository) {
    throw new TrackerError('tracker_invalid_data', 'tracker.repository ("owner/name") is required when tracker.kind is "github"');
  }
  return new GitHubTracker({
    token: githubToken(config.apiKey, env),
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
