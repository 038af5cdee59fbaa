/**
 * The Linear tracker (Symphony's default): issues of one Linear project, mapped to Cadenza's issues
 * and comments. It sends the named documents of queries.ts through LinearApi (client.ts: the
 * official SDK's GraphQL client and its errors mapped to TrackerError codes).
 */
import { ContractError } from '../../contract/errors.ts';
import { resolveSecret } from '../../contract/secrets.ts';
import type { SecretRef, TrackerConfig } from '../../contract/types.ts';
import { TrackerError, type BlockerRef, type Issue, type TrackerAdapter, type TrackerComment } from '../types.ts';
import { LinearApi, field, type Connection, type Variables } from './client.ts';
import {
  ADD_COMMENT_MUTATION,
  COMMENTS_QUERY,
  ISSUES_BY_IDS_QUERY,
  ISSUES_BY_STATES_QUERY,
  ISSUE_TEAM_STATES_QUERY,
  LINEAR_OPERATIONS,
  PROJECT_QUERY,
  SET_STATE_MUTATION,
  UPDATE_COMMENT_MUTATION,
} from './queries.ts';

export const DEFAULT_LINEAR_API_KEY_ENV = 'LINEAR_API_KEY';

export interface LinearTrackerOptions {
  /** A personal API key (sent raw in `Authorization`, as Linear expects). Never logged. */
  apiKey: string;
  /** The GraphQL endpoint (the SDK's apiUrl); default https://api.linear.app/graphql. */
  endpoint?: string;
  /** The project's `slugId` (the short id in its URL). */
  projectSlug: string;
  /**
   * Only issues assigned to this user are fetched by state: `me` (the key's user), an email, a
   * user id (UUID) or a display/full name (case-insensitive). null or empty: no assignee filter.
   */
  assignee?: string | null;
  /** Issues and comments per request, 1..250; default 50. */
  pageSize?: number;
  /** Per-request timeout; default 30 s. */
  requestTimeoutMs?: number;
}

interface NameNode {
  name?: string | null;
}

interface IssueNode {
  id?: string | null;
  identifier?: string | null;
  title?: string | null;
  description?: string | null;
  priority?: number | null;
  branchName?: string | null;
  url?: string | null;
  createdAt?: string | null;
  updatedAt?: string | null;
  state?: NameNode | null;
  labels?: Connection<NameNode> | null;
  inverseRelations?: Connection<{
    type?: string | null;
    issue?: { id?: string | null; identifier?: string | null; state?: NameNode | null } | null;
  }> | null;
}

interface CommentNode {
  id?: string | null;
  body?: string | null;
  createdAt?: string | null;
  user?: NameNode | null;
}

interface WorkflowStateNode {
  id?: string | null;
  name?: string | null;
}

export class LinearTracker implements TrackerAdapter {
  readonly kind = 'linear';
  readonly endpoint: string;
  readonly projectSlug: string;
  readonly assignee: string | null;
  readonly pageSize: number;
  // ECMAScript-private, as the API client holds the key.
  readonly #api: LinearApi;
  /** Set once the project lookup has succeeded; a failed lookup is retried on the next fetch. */
  #projectCheck: Promise<void> | null = null;

  constructor(options: LinearTrackerOptions) {
    this.#api = new LinearApi(options, () => {
      if (typeof options.projectSlug !== 'string' || options.projectSlug.trim() === '') {
        throw new TrackerError('tracker_invalid_data', 'Linear tracker needs a project slug (tracker.project_slug)');
      }
    });
    this.endpoint = this.#api.endpoint;
    this.pageSize = this.#api.pageSize;
    this.projectSlug = options.projectSlug.trim();
    this.assignee = options.assignee?.trim() ? options.assignee.trim() : null;
  }

  async fetchIssuesByStates(states: string[]): Promise<Issue[]> {
    const names = uniqueStrings(states.map((state) => state.trim()).filter((state) => state !== ''));
    if (names.length === 0) return [];
    await this.ensureProject();
    const filter: Variables = {
      project: { slugId: { eq: this.projectSlug } },
      state: { name: { in: names } },
    };
    if (this.assignee) filter.assignee = assigneeFilter(this.assignee);
    const nodes = await this.#api.paginate<IssueNode>(LINEAR_OPERATIONS.issuesByStates, ISSUES_BY_STATES_QUERY, { filter }, (data) =>
      field<Connection<IssueNode>>(data, 'issues'),
    );
    return dedupeById(nodes.map(normalizeIssue));
  }

  /** Only the issues found, in the order of `ids` (Linear issue ids, as in Issue.id). */
  async fetchIssuesByIds(ids: string[]): Promise<Issue[]> {
    const wanted = uniqueStrings(ids.map((id) => id.trim()).filter((id) => id !== ''));
    if (wanted.length === 0) return [];
    const nodes = await this.#api.paginate<IssueNode>(LINEAR_OPERATIONS.issuesByIds, ISSUES_BY_IDS_QUERY, { ids: wanted }, (data) =>
      field<Connection<IssueNode>>(data, 'issues'),
    );
    const byId = new Map<string, Issue>();
    for (const issue of nodes.map(normalizeIssue)) if (!byId.has(issue.id)) byId.set(issue.id, issue);
    return wanted.flatMap((id) => byId.get(id) ?? []);
  }

  async setState(issueId: string, state: string): Promise<void> {
    if (typeof state !== 'string' || state.trim() === '') {
      throw new TrackerError('tracker_invalid_data', `cannot set Linear issue ${issueId} to an empty state`);
    }
    const data = await this.#api.request(LINEAR_OPERATIONS.issueTeamStates, ISSUE_TEAM_STATES_QUERY, { id: issueId }, `issue ${issueId}`);
    const issue = field<{
      id?: string;
      identifier?: string;
      state?: WorkflowStateNode | null;
      team?: { key?: string | null; states?: Connection<WorkflowStateNode> | null } | null;
    }>(data, 'issue');
    if (!issue?.id) throw new TrackerError('tracker_not_found', `Linear issue ${issueId} not found`);
    const states = (issue.team?.states?.nodes ?? []).filter(
      (node): node is { id: string; name: string } => typeof node?.id === 'string' && typeof node.name === 'string',
    );
    const wanted = state.trim().toLowerCase();
    const target = states.find((node) => node.name.trim().toLowerCase() === wanted);
    if (!target) {
      const team = issue.team?.key ? `team ${issue.team.key}` : 'the issue\'s team';
      const allowed = states.map((node) => node.name).join(', ') || '(none)';
      throw new TrackerError(
        'tracker_invalid_data',
        `Linear ${team} has no workflow state ${JSON.stringify(state)} (issue ${issue.identifier ?? issueId}); allowed states: ${allowed}`,
      );
    }
    if (issue.state?.id === target.id) return;
    const result = await this.#api.request(LINEAR_OPERATIONS.setState, SET_STATE_MUTATION, { id: issue.id, stateId: target.id }, `issue ${issueId}`);
    const payload = field<{ success?: boolean | null }>(result, 'issueUpdate');
    if (payload?.success !== true) {
      throw new TrackerError('tracker_unavailable', `Linear did not move issue ${issue.identifier ?? issueId} to ${target.name} (success: false)`);
    }
  }

  async addComment(issueId: string, body: string): Promise<TrackerComment> {
    const data = await this.#api.request(LINEAR_OPERATIONS.addComment, ADD_COMMENT_MUTATION, { issueId, body }, `issue ${issueId}`);
    const payload = field<{ success?: boolean | null; comment?: CommentNode | null }>(data, 'commentCreate');
    if (payload?.success !== true || !payload.comment) {
      throw new TrackerError('tracker_unavailable', `Linear did not create the comment on issue ${issueId} (success: false)`);
    }
    return normalizeComment(payload.comment);
  }

  /** Linear addresses comments by id alone; `issueId` only names the issue in errors. */
  async updateComment(issueId: string, commentId: string, body: string): Promise<void> {
    const data = await this.#api.request(
      LINEAR_OPERATIONS.updateComment,
      UPDATE_COMMENT_MUTATION,
      { id: commentId, body },
      `comment ${commentId} on issue ${issueId}`,
    );
    const payload = field<{ success?: boolean | null }>(data, 'commentUpdate');
    if (payload?.success !== true) {
      throw new TrackerError('tracker_unavailable', `Linear did not update comment ${commentId} on issue ${issueId} (success: false)`);
    }
  }

  /** Oldest first. */
  async listComments(issueId: string): Promise<TrackerComment[]> {
    const nodes = await this.#api.paginate<CommentNode>(
      LINEAR_OPERATIONS.comments,
      COMMENTS_QUERY,
      { id: issueId },
      (data) => {
        const issue = field<{ comments?: Connection<CommentNode> | null }>(data, 'issue');
        if (!issue) throw new TrackerError('tracker_not_found', `Linear issue ${issueId} not found`);
        return issue.comments ?? null;
      },
      `issue ${issueId}`,
    );
    const comments = nodes.map(normalizeComment);
    // Stable sort: equal timestamps keep Linear's order.
    return comments
      .map((comment, index) => ({ comment, index, time: Date.parse(comment.created_at) }))
      .sort((a, b) => a.time - b.time || a.index - b.index)
      .map(({ comment }) => comment);
  }

  /** One `projects(filter: {slugId})` lookup; cached once it succeeds. */
  private ensureProject(): Promise<void> {
    if (!this.#projectCheck) {
      this.#projectCheck = this.lookupProject();
      this.#projectCheck.catch(() => {
        this.#projectCheck = null;
      });
    }
    return this.#projectCheck;
  }

  private async lookupProject(): Promise<void> {
    const data = await this.#api.request(LINEAR_OPERATIONS.project, PROJECT_QUERY, { slug: this.projectSlug });
    const projects = field<Connection<{ id?: string | null; slugId?: string | null }>>(data, 'projects');
    const found = (projects?.nodes ?? []).some((node) => typeof node?.id === 'string' && node.slugId === this.projectSlug);
    if (!found) {
      throw new TrackerError(
        'tracker_not_found',
        `Linear project ${this.projectSlug} does not exist or is not visible to this API key`,
      );
    }
  }
}

/**
 * The adapter a contract names. The key comes from `tracker.api_key` (a `$VAR` reference) or,
 * when none is configured, from LINEAR_API_KEY; a missing key fails with tracker_auth_failed
 * naming the variable, never a value.
 */
export function linearTrackerFromConfig(config: TrackerConfig, env: NodeJS.ProcessEnv = process.env): LinearTracker {
  if (config.kind !== 'linear') {
    throw new TrackerError('tracker_invalid_data', `tracker.kind is ${JSON.stringify(config.kind)}, not "linear"`);
  }
  if (!config.projectSlug) {
    throw new TrackerError('tracker_invalid_data', 'tracker.project_slug is required when tracker.kind is "linear"');
  }
  const ref: SecretRef = config.apiKey ?? { env: DEFAULT_LINEAR_API_KEY_ENV };
  let apiKey: string;
  try {
    apiKey = resolveSecret(ref, env);
  } catch (error) {
    if (error instanceof ContractError) {
      throw new TrackerError(
        'tracker_auth_failed',
        `no Linear API key: environment variable ${ref.env} is not set or is empty (set it to a Linear personal API key)`,
      );
    }
    throw error;
  }
  return new LinearTracker({
    apiKey,
    endpoint: config.endpoint ?? undefined,
    projectSlug: config.projectSlug,
    assignee: config.assignee,
  });
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function assigneeFilter(assignee: string): Variables {
  if (assignee.toLowerCase() === 'me') return { isMe: { eq: true } };
  if (UUID.test(assignee)) return { id: { eq: assignee } };
  if (assignee.includes('@')) return { email: { eqIgnoreCase: assignee } };
  return { or: [{ displayName: { eqIgnoreCase: assignee } }, { name: { eqIgnoreCase: assignee } }] };
}

function normalizeIssue(node: IssueNode): Issue {
  const missing: string[] = (['id', 'identifier', 'title'] as const).filter((key) => typeof node[key] !== 'string' || node[key] === '');
  if (typeof node.state?.name !== 'string') missing.push('state.name');
  if (missing.length > 0) {
    throw new TrackerError(
      'tracker_invalid_data',
      `Linear returned issue ${node.identifier ?? node.id ?? '(unknown)'} without ${missing.join(', ')}`,
    );
  }
  const blockedBy: BlockerRef[] = [];
  for (const relation of node.inverseRelations?.nodes ?? []) {
    const blocker = relation?.issue;
    if (!relation || relation.type?.trim().toLowerCase() !== 'blocks' || !blocker?.id) continue;
    if (blockedBy.some((ref) => ref.id === blocker.id)) continue;
    blockedBy.push({ id: blocker.id, identifier: blocker.identifier ?? blocker.id, state: blocker.state?.name ?? 'Unknown' });
  }
  const priority = node.priority;
  const description = typeof node.description === 'string' && node.description.trim() !== '' ? node.description : null;
  return {
    id: node.id as string,
    identifier: node.identifier as string,
    title: node.title as string,
    description,
    priority: typeof priority === 'number' && Number.isInteger(priority) && priority >= 1 && priority <= 4 ? priority : null,
    state: (node.state as { name: string }).name,
    branch_name: nonEmpty(node.branchName),
    url: nonEmpty(node.url),
    labels: uniqueStrings(
      (node.labels?.nodes ?? []).flatMap((label) => (typeof label?.name === 'string' ? [label.name.toLowerCase()] : [])),
    ),
    blocked_by: blockedBy,
    created_at: isoTimestamp(node.createdAt, 'createdAt', node.identifier as string),
    updated_at: isoTimestamp(node.updatedAt, 'updatedAt', node.identifier as string),
  };
}

function normalizeComment(node: CommentNode): TrackerComment {
  if (typeof node.id !== 'string' || node.id === '') {
    throw new TrackerError('tracker_invalid_data', 'Linear returned a comment without an id');
  }
  return {
    id: node.id,
    author: nonEmpty(node.user?.name) ?? 'unknown',
    body: typeof node.body === 'string' ? node.body : '',
    created_at: isoTimestamp(node.createdAt, 'createdAt', `comment ${node.id}`),
  };
}

function isoTimestamp(value: string | null | undefined, key: string, owner: string): string {
  const time = typeof value === 'string' ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(time)) {
    throw new TrackerError('tracker_invalid_data', `Linear returned ${owner} with an invalid ${key} ${JSON.stringify(value ?? null)}`);
  }
  return new Date(time).toISOString();
}

function nonEmpty(value: string | null | undefined): string | null {
  return typeof value === 'string' && value.trim() !== '' ? value : null;
}

function uniqueStrings(values: string[]): string[] {
  return [...new Set(values)];
}

function dedupeById(issues: Issue[]): Issue[] {
  const seen = new Set<string>();
  return issues.filter((issue) => !seen.has(issue.id) && (seen.add(issue.id), true));
}
