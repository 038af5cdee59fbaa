/**
 * The Linear tracker (Symphony's default): issues of one Linear project, read and written through
 * Linear's GraphQL API. Requests go through the official SDK's own GraphQL client
 * (`LinearClient#client.rawRequest`) with hand-written, named documents, as Symphony sends its own
 * queries: the SDK supplies the auth header and turns HTTP and GraphQL failures into its typed
 * errors, which are mapped here to TrackerError codes. No message ever contains the API key.
 */
import {
  AuthenticationLinearError,
  ForbiddenLinearError,
  InternalLinearError,
  LinearClient,
  LinearError,
  NetworkLinearError,
  RatelimitedLinearError,
} from '@linear/sdk';
import { ContractError } from '../contract/errors.ts';
import { resolveSecret } from '../contract/secrets.ts';
import type { SecretRef, TrackerConfig } from '../contract/types.ts';
import { TrackerError, type BlockerRef, type Issue, type TrackerAdapter, type TrackerComment } from './types.ts';

export const DEFAULT_LINEAR_ENDPOINT = 'https://api.linear.app/graphql';
export const DEFAULT_LINEAR_API_KEY_ENV = 'LINEAR_API_KEY';
const DEFAULT_PAGE_SIZE = 50;
/** Linear's largest page. */
const MAX_PAGE_SIZE = 250;
/** Labels and relations per issue, as Symphony asks for them. */
const NESTED_PAGE_SIZE = 50;
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
const MAX_DETAIL_CHARS = 500;

/** The operation names this adapter sends (visible in Linear's logs and in the fake server's). */
export const LINEAR_OPERATIONS = {
  project: 'CadenzaLinearProject',
  issuesByStates: 'CadenzaLinearIssuesByStates',
  issuesByIds: 'CadenzaLinearIssuesByIds',
  issueTeamStates: 'CadenzaLinearIssueTeamStates',
  setState: 'CadenzaLinearSetState',
  addComment: 'CadenzaLinearAddComment',
  updateComment: 'CadenzaLinearUpdateComment',
  comments: 'CadenzaLinearComments',
} as const;

const ISSUE_FIELDS = `
fragment CadenzaLinearIssueFields on Issue {
  id
  identifier
  title
  description
  priority
  branchName
  url
  createdAt
  updatedAt
  state { name }
  labels(first: ${NESTED_PAGE_SIZE}) { nodes { name } }
  inverseRelations(first: ${NESTED_PAGE_SIZE}) {
    nodes {
      type
      issue { id identifier state { name } }
    }
  }
}`;

const PROJECT_QUERY = `
query ${LINEAR_OPERATIONS.project}($slug: String!) {
  projects(filter: { slugId: { eq: $slug } }, first: 1) {
    nodes { id name slugId }
  }
}`;

const ISSUES_BY_STATES_QUERY = `
query ${LINEAR_OPERATIONS.issuesByStates}($filter: IssueFilter!, $first: Int!, $after: String) {
  issues(filter: $filter, first: $first, after: $after) {
    nodes { ...CadenzaLinearIssueFields }
    pageInfo { hasNextPage endCursor }
  }
}
${ISSUE_FIELDS}`;

const ISSUES_BY_IDS_QUERY = `
query ${LINEAR_OPERATIONS.issuesByIds}($ids: [ID!]!, $first: Int!, $after: String) {
  issues(filter: { id: { in: $ids } }, first: $first, after: $after) {
    nodes { ...CadenzaLinearIssueFields }
    pageInfo { hasNextPage endCursor }
  }
}
${ISSUE_FIELDS}`;

const ISSUE_TEAM_STATES_QUERY = `
query ${LINEAR_OPERATIONS.issueTeamStates}($id: String!) {
  issue(id: $id) {
    id
    identifier
    state { id name }
    team {
      id
      key
      states(first: ${MAX_PAGE_SIZE}) { nodes { id name } }
    }
  }
}`;

const SET_STATE_MUTATION = `
mutation ${LINEAR_OPERATIONS.setState}($id: String!, $stateId: String!) {
  issueUpdate(id: $id, input: { stateId: $stateId }) {
    success
    issue { id state { name } }
  }
}`;

const COMMENT_FIELDS = 'id body createdAt user { name }';

const ADD_COMMENT_MUTATION = `
mutation ${LINEAR_OPERATIONS.addComment}($issueId: String!, $body: String!) {
  commentCreate(input: { issueId: $issueId, body: $body }) {
    success
    comment { ${COMMENT_FIELDS} }
  }
}`;

const UPDATE_COMMENT_MUTATION = `
mutation ${LINEAR_OPERATIONS.updateComment}($id: String!, $body: String!) {
  commentUpdate(id: $id, input: { body: $body }) {
    success
    comment { id }
  }
}`;

const COMMENTS_QUERY = `
query ${LINEAR_OPERATIONS.comments}($id: String!, $first: Int!, $after: String) {
  issue(id: $id) {
    id
    comments(first: $first, after: $after, orderBy: createdAt) {
      nodes { ${COMMENT_FIELDS} }
      pageInfo { hasNextPage endCursor }
    }
  }
}`;

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

interface PageInfo {
  hasNextPage?: boolean | null;
  endCursor?: string | null;
}

interface Connection<T> {
  nodes?: (T | null)[] | null;
  pageInfo?: PageInfo | null;
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

type Variables = Record<string, unknown>;

export class LinearTracker implements TrackerAdapter {
  readonly kind = 'linear';
  readonly endpoint: string;
  readonly projectSlug: string;
  readonly assignee: string | null;
  readonly pageSize: number;
  // ECMAScript-private: never shown by util.inspect or JSON.stringify (the client holds the key).
  readonly #client: LinearClient;
  readonly #apiKey: string;
  readonly #timeoutMs: number;
  /** Set once the project lookup has succeeded; a failed lookup is retried on the next fetch. */
  #projectCheck: Promise<void> | null = null;

  constructor(options: LinearTrackerOptions) {
    if (typeof options.apiKey !== 'string' || options.apiKey.trim() === '') {
      throw new TrackerError('tracker_auth_failed', 'Linear API key is missing or empty');
    }
    if (typeof options.projectSlug !== 'string' || options.projectSlug.trim() === '') {
      throw new TrackerError('tracker_invalid_data', 'Linear tracker needs a project slug (tracker.project_slug)');
    }
    const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE_SIZE) {
      throw new TrackerError('tracker_invalid_data', `Linear page size must be an integer 1..${MAX_PAGE_SIZE}, got ${pageSize}`);
    }
    const timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw new TrackerError('tracker_invalid_data', `Linear request timeout must be a positive number of ms, got ${timeoutMs}`);
    }
    this.#apiKey = options.apiKey;
    this.endpoint = options.endpoint ?? DEFAULT_LINEAR_ENDPOINT;
    this.projectSlug = options.projectSlug.trim();
    this.assignee = options.assignee?.trim() ? options.assignee.trim() : null;
    this.pageSize = pageSize;
    this.#timeoutMs = timeoutMs;
    try {
      this.#client = new LinearClient({ apiKey: options.apiKey, apiUrl: this.endpoint });
    } catch (error) {
      throw new TrackerError(
        'tracker_invalid_data',
        `invalid Linear endpoint ${JSON.stringify(this.endpoint)}: ${this.redact(errorMessage(error))}`,
      );
    }
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
    const nodes = await this.paginate<IssueNode>(LINEAR_OPERATIONS.issuesByStates, ISSUES_BY_STATES_QUERY, { filter }, (data) =>
      field<Connection<IssueNode>>(data, 'issues'),
    );
    return dedupeById(nodes.map(normalizeIssue));
  }

  /** Only the issues found, in the order of `ids` (Linear issue ids, as in Issue.id). */
  async fetchIssuesByIds(ids: string[]): Promise<Issue[]> {
    const wanted = uniqueStrings(ids.map((id) => id.trim()).filter((id) => id !== ''));
    if (wanted.length === 0) return [];
    const nodes = await this.paginate<IssueNode>(LINEAR_OPERATIONS.issuesByIds, ISSUES_BY_IDS_QUERY, { ids: wanted }, (data) =>
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
    const data = await this.request(LINEAR_OPERATIONS.issueTeamStates, ISSUE_TEAM_STATES_QUERY, { id: issueId }, `issue ${issueId}`);
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
    const result = await this.request(LINEAR_OPERATIONS.setState, SET_STATE_MUTATION, { id: issue.id, stateId: target.id }, `issue ${issueId}`);
    const payload = field<{ success?: boolean | null }>(result, 'issueUpdate');
    if (payload?.success !== true) {
      throw new TrackerError('tracker_unavailable', `Linear did not move issue ${issue.identifier ?? issueId} to ${target.name} (success: false)`);
    }
  }

  async addComment(issueId: string, body: string): Promise<TrackerComment> {
    const data = await this.request(LINEAR_OPERATIONS.addComment, ADD_COMMENT_MUTATION, { issueId, body }, `issue ${issueId}`);
    const payload = field<{ success?: boolean | null; comment?: CommentNode | null }>(data, 'commentCreate');
    if (payload?.success !== true || !payload.comment) {
      throw new TrackerError('tracker_unavailable', `Linear did not create the comment on issue ${issueId} (success: false)`);
    }
    return normalizeComment(payload.comment);
  }

  /** Linear addresses comments by id alone; `issueId` only names the issue in errors. */
  async updateComment(issueId: string, commentId: string, body: string): Promise<void> {
    const data = await this.request(
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
    const nodes = await this.paginate<CommentNode>(
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
    const data = await this.request(LINEAR_OPERATIONS.project, PROJECT_QUERY, { slug: this.projectSlug });
    const projects = field<Connection<{ id?: string | null; slugId?: string | null }>>(data, 'projects');
    const found = (projects?.nodes ?? []).some((node) => typeof node?.id === 'string' && node.slugId === this.projectSlug);
    if (!found) {
      throw new TrackerError(
        'tracker_not_found',
        `Linear project ${this.projectSlug} does not exist or is not visible to this API key`,
      );
    }
  }

  /** Follows `pageInfo { hasNextPage endCursor }` with `first`/`after` until the last page. */
  private async paginate<T>(
    operation: string,
    query: string,
    variables: Variables,
    connectionOf: (data: unknown) => Connection<T> | null | undefined,
    subject?: string,
  ): Promise<T[]> {
    const nodes: T[] = [];
    const seen = new Set<string>();
    let after: string | null = null;
    for (;;) {
      const data = await this.request(operation, query, { ...variables, first: this.pageSize, after }, subject);
      const connection = connectionOf(data);
      if (!connection || !Array.isArray(connection.nodes)) {
        throw new TrackerError('tracker_invalid_data', `Linear ${operation} returned no connection nodes`);
      }
      for (const node of connection.nodes) if (node) nodes.push(node);
      if (connection.pageInfo?.hasNextPage !== true) return nodes;
      const cursor = connection.pageInfo.endCursor;
      if (typeof cursor !== 'string' || cursor === '') {
        throw new TrackerError('tracker_invalid_data', `Linear ${operation} reported another page without an end cursor`);
      }
      if (seen.has(cursor)) {
        throw new TrackerError('tracker_invalid_data', `Linear ${operation} returned the same page cursor twice`);
      }
      seen.add(cursor);
      after = cursor;
    }
  }

  /** `subject` ("issue <id>", say) names what was asked for in not-found errors. */
  private async request(operation: string, query: string, variables: Variables, subject?: string): Promise<unknown> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new TrackerError('tracker_unavailable', `Linear ${operation} timed out after ${this.#timeoutMs} ms (${this.endpoint})`)),
        this.#timeoutMs,
      );
    });
    try {
      const response = await Promise.race([this.#client.client.rawRequest<unknown, Variables>(query, variables), timeout]);
      if (response.data === undefined || response.data === null) {
        throw new TrackerError('tracker_invalid_data', `Linear ${operation} returned no data`);
      }
      return response.data;
    } catch (error) {
      throw this.toTrackerError(error, operation, subject);
    } finally {
      clearTimeout(timer);
    }
  }

  private toTrackerError(error: unknown, operation: string, subject?: string): TrackerError {
    if (error instanceof TrackerError) return error;
    if (!(error instanceof LinearError)) {
      // fetch itself failed: DNS, refused connection, reset, TLS.
      return new TrackerError('tracker_unavailable', `Linear ${operation} failed: cannot reach ${this.endpoint}: ${this.detail(errorMessage(error, true))}`);
    }
    const status = error.status;
    const rawErrors = error.raw?.response?.errors ?? [];
    const codes = rawErrors.map((raw) => rawCode(raw));
    const types: unknown[] = rawErrors.map((raw) => raw?.extensions?.type);
    const detail = this.detail(error.message);
    const http = status ? ` (HTTP ${status})` : '';

    if (error instanceof RatelimitedLinearError || status === 429 || codes.includes('RATELIMITED')) {
      const { hint, waitMs } = rateLimitHint(error);
      return new TrackerError('tracker_rate_limited', `Linear API rate limit exceeded during ${operation}${http}${hint}: ${detail}`, waitMs);
    }
    const authTyped = types.includes('authentication error') || types.includes('forbidden') || codes.includes('AUTHENTICATION_ERROR') || codes.includes('FORBIDDEN');
    if (
      status === 401 ||
      status === 403 ||
      authTyped ||
      ((error instanceof AuthenticationLinearError || error instanceof ForbiddenLinearError) && rawErrors.length > 0)
    ) {
      return new TrackerError('tracker_auth_failed', `Linear rejected the API key during ${operation}${http}: ${detail}`);
    }
    if (rawErrors.some((raw) => typeof raw?.message === 'string' && raw.message.startsWith('Entity not found'))) {
      return new TrackerError('tracker_not_found', `Linear ${subject ?? 'entity'} not found (${operation}): ${detail}`);
    }
    if (error instanceof InternalLinearError || error instanceof NetworkLinearError || (status !== undefined && status >= 500)) {
      return new TrackerError('tracker_unavailable', `Linear API unavailable during ${operation}${http}: ${detail}`);
    }
    return new TrackerError('tracker_unavailable', `Linear API error during ${operation}${http}: ${detail}`);
  }

  private detail(message: string): string {
    const text = this.redact(message).replace(/\s+/g, ' ').trim() || 'no details';
    return text.length > MAX_DETAIL_CHARS ? `${text.slice(0, MAX_DETAIL_CHARS)}…` : text;
  }

  private redact(text: string): string {
    return text.split(this.#apiKey).join('[redacted]');
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

/** `data.key`, or undefined when data is not an object. */
function field<T>(data: unknown, key: string): T | null | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  return (data as Record<string, unknown>)[key] as T | null | undefined;
}

function rawCode(raw: unknown): string | undefined {
  const code = (raw as { extensions?: { code?: unknown } } | null)?.extensions?.code;
  return typeof code === 'string' ? code : undefined;
}

/** "; retry after 60 s" / "; requests reset at <ISO>" and how long that is, from the SDK's parsed rate-limit headers. */
function rateLimitHint(error: LinearError): { hint: string; waitMs?: number } {
  const headers = error.raw?.response?.headers;
  const header = (name: string): number | undefined => {
    const value = headers instanceof Headers ? headers.get(name) : undefined;
    const parsed = value === undefined || value === null || value === '' ? Number.NaN : Number(value);
    return Number.isFinite(parsed) ? parsed : undefined;
  };
  const limited = error instanceof RatelimitedLinearError ? error : undefined;
  const retryAfter = limited?.retryAfter ?? header('retry-after');
  const requestsReset = limited?.requestsResetAt ?? header('x-ratelimit-requests-reset');
  const complexityReset = limited?.complexityResetAt ?? header('x-ratelimit-complexity-reset');
  const parts: string[] = [];
  let waitMs: number | undefined;
  if (retryAfter !== undefined) {
    parts.push(`retry after ${retryAfter} s`);
    waitMs = Math.max(0, Math.ceil(retryAfter * 1000));
  }
  const reset = requestsReset ?? complexityReset;
  if (reset !== undefined) {
    // Linear sends epoch milliseconds; accept seconds too.
    const ms = reset > 1e12 ? reset : reset * 1000;
    parts.push(`${requestsReset !== undefined ? 'requests' : 'complexity'} budget resets at ${new Date(ms).toISOString()}`);
    waitMs ??= Math.max(0, ms - Date.now());
  }
  return { hint: parts.length > 0 ? `; ${parts.join(', ')}` : '', ...(waitMs !== undefined ? { waitMs } : {}) };
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

function errorMessage(error: unknown, withCause = false): string {
  if (!(error instanceof Error)) return String(error);
  const cause = withCause && error.cause instanceof Error ? ` (${error.cause.message})` : '';
  return `${error.message}${cause}`;
}
