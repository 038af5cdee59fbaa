/**
 * A local stand-in for Linear's GraphQL API (https://api.linear.app/graphql), for tests.
 *
 * It is a real GraphQL server: a subset of Linear's schema (the types, fields, filters and mutations
 * the Linear tracker uses, under Linear's names) built with graphql-js, and every request executed
 * with `graphql()` against it. A document asking for a field Linear does not have here fails
 * validation (HTTP 400) just as it would against Linear. On the wire it behaves like Linear where the
 * SDK looks: personal API keys sent raw in `Authorization`, errors as `{ errors: [{ message,
 * extensions: { code, type, userPresentableMessage } }] }` so @linear/sdk builds the same error
 * classes, rate limiting with RATELIMITED and x-ratelimit-* headers, opaque Relay cursors.
 * Listens on 127.0.0.1 only.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { buildSchema, getOperationAST, graphql, GraphQLError, parse, type GraphQLFormattedError } from 'graphql';

export type FakeLinearFailure = 'http500' | 'ratelimited' | 'graphqlError';

export interface FakeLinearOptions {
  /** The only key accepted in `Authorization` (raw, no `Bearer`). */
  apiKey: string;
  /** slugId of the project that exists from the start. */
  projectSlug: string;
  /** The team's workflow states, in order; default Todo, In Progress, Human Review, Done, Canceled. */
  teamStates?: string[];
  /** 0 or absent: any free port. */
  port?: number;
  /** The API key's user (`viewer`, `isMe`, author of comments created through the API). */
  viewerName?: string;
  /** Default CAD. */
  teamKey?: string;
}

export interface FakeIssueInput {
  identifier: string;
  title: string;
  description?: string | null;
  state: string;
  /** Linear's 0 (none) .. 4 (low); default 0. */
  priority?: number;
  /** Label names as shown in Linear (any case). */
  labels?: string[];
  /** Identifiers of issues that block this one (need not exist yet). */
  blockedBy?: string[];
  createdAt?: string | Date;
  /** A user name; the viewer's name (or `me`) assigns the viewer. */
  assignee?: string | null;
  /** Put the issue in another project (created on demand); default the configured project. */
  projectSlug?: string;
}

export interface FakeCommentSnapshot {
  id: string;
  body: string;
  author: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface FakeIssueSnapshot {
  id: string;
  identifier: string;
  title: string;
  description: string | null;
  state: string;
  priority: number;
  labels: string[];
  assignee: string | null;
  projectSlug: string | null;
  createdAt: string;
  updatedAt: string;
  /** Every state the issue was in, oldest first (a move to the state it is in adds nothing). */
  stateHistory: string[];
  /** Oldest first. */
  comments: FakeCommentSnapshot[];
}

export interface FakeLinear {
  /** The GraphQL endpoint, http://127.0.0.1:<port>/graphql. */
  readonly url: string;
  readonly viewerName: string;
  /** Operation name of every request received, in order (`<anonymous>`, `<invalid>` otherwise). */
  readonly requests: string[];
  /** Returns the new issue's id (a UUID). */
  addIssue(input: FakeIssueInput): string;
  setState(identifier: string, state: string): void;
  /** A comment written in Linear by `author` (null: no user, like an integration). Returns its id. */
  addComment(identifier: string, body: string, author?: string | null): string;
  issue(identifier: string): FakeIssueSnapshot;
  /** The next `count` requests fail this way (queued after any failures already pending). */
  failNext(count: number, kind: FakeLinearFailure): void;
  close(): Promise<void>;
}

const DEFAULT_STATES = ['Todo', 'In Progress', 'Human Review', 'Done', 'Canceled'];
const MAX_PAGE = 250;
const DEFAULT_PAGE = 50;
const MAX_BODY_BYTES = 5 * 1024 * 1024;

const CONNECTION_ARGS = 'first: Int, after: String, includeArchived: Boolean, orderBy: PaginationOrderBy';

/** The part of Linear's schema the tracker uses, under Linear's type, field and argument names. */
export const FAKE_LINEAR_SDL = `
"""ISO-8601 date and time."""
scalar DateTime

enum PaginationOrderBy { createdAt updatedAt }

type PageInfo {
  hasNextPage: Boolean!
  hasPreviousPage: Boolean!
  startCursor: String
  endCursor: String
}

type User {
  id: ID!
  name: String!
  displayName: String!
  email: String!
  active: Boolean!
}

type Project {
  id: ID!
  name: String!
  slugId: String!
  url: String!
  createdAt: DateTime!
}

type ProjectConnection { nodes: [Project!]! pageInfo: PageInfo! }

type Team {
  id: ID!
  key: String!
  name: String!
  states(${CONNECTION_ARGS}, filter: WorkflowStateFilter): WorkflowStateConnection!
}

type WorkflowState {
  id: ID!
  name: String!
  type: String!
  position: Float!
  color: String!
  team: Team!
}

type WorkflowStateConnection { nodes: [WorkflowState!]! pageInfo: PageInfo! }

type IssueLabel {
  id: ID!
  name: String!
  color: String!
}

type IssueLabelConnection { nodes: [IssueLabel!]! pageInfo: PageInfo! }

type IssueRelation {
  id: ID!
  type: String!
  issue: Issue!
  relatedIssue: Issue!
  createdAt: DateTime!
  updatedAt: DateTime!
}

type IssueRelationConnection { nodes: [IssueRelation!]! pageInfo: PageInfo! }

type Comment {
  id: ID!
  body: String!
  createdAt: DateTime!
  updatedAt: DateTime!
  editedAt: DateTime
  url: String!
  user: User
  issue: Issue
}

type CommentConnection { nodes: [Comment!]! pageInfo: PageInfo! }

type Issue {
  id: ID!
  identifier: String!
  number: Float!
  title: String!
  description: String
  priority: Float!
  priorityLabel: String!
  branchName: String!
  url: String!
  createdAt: DateTime!
  updatedAt: DateTime!
  state: WorkflowState!
  team: Team!
  project: Project
  assignee: User
  labels(${CONNECTION_ARGS}): IssueLabelConnection!
  relations(${CONNECTION_ARGS}): IssueRelationConnection!
  inverseRelations(${CONNECTION_ARGS}): IssueRelationConnection!
  comments(${CONNECTION_ARGS}): CommentConnection!
}

type IssueConnection { nodes: [Issue!]! pageInfo: PageInfo! }

input IDComparator { eq: ID neq: ID in: [ID!] nin: [ID!] }
input IssueIDComparator { eq: ID neq: ID in: [ID!] nin: [ID!] }
input StringComparator {
  eq: String
  neq: String
  in: [String!]
  nin: [String!]
  eqIgnoreCase: String
  neqIgnoreCase: String
}
input BooleanComparator { eq: Boolean neq: Boolean }

input NullableUserFilter {
  id: IDComparator
  name: StringComparator
  displayName: StringComparator
  email: StringComparator
  isMe: BooleanComparator
  null: Boolean
  and: [NullableUserFilter!]
  or: [NullableUserFilter!]
}

input NullableProjectFilter {
  id: IDComparator
  name: StringComparator
  slugId: StringComparator
  null: Boolean
  and: [NullableProjectFilter!]
  or: [NullableProjectFilter!]
}

input ProjectFilter {
  id: IDComparator
  name: StringComparator
  slugId: StringComparator
  and: [ProjectFilter!]
  or: [ProjectFilter!]
}

input WorkflowStateFilter {
  id: IDComparator
  name: StringComparator
  type: StringComparator
  and: [WorkflowStateFilter!]
  or: [WorkflowStateFilter!]
}

input IssueFilter {
  id: IssueIDComparator
  title: StringComparator
  project: NullableProjectFilter
  state: WorkflowStateFilter
  assignee: NullableUserFilter
  and: [IssueFilter!]
  or: [IssueFilter!]
}

input IssueUpdateInput {
  title: String
  description: String
  stateId: String
  priority: Int
  assigneeId: String
}

input CommentCreateInput { issueId: String body: String }
input CommentUpdateInput { body: String }

type IssuePayload { success: Boolean! lastSyncId: Float! issue: Issue }
type CommentPayload { success: Boolean! lastSyncId: Float! comment: Comment! }

type Query {
  viewer: User!
  issue(id: String!): Issue!
  issues(${CONNECTION_ARGS}, filter: IssueFilter): IssueConnection!
  projects(${CONNECTION_ARGS}, filter: ProjectFilter): ProjectConnection!
}

type Mutation {
  issueUpdate(id: String!, input: IssueUpdateInput!): IssuePayload!
  commentCreate(input: CommentCreateInput!): CommentPayload!
  commentUpdate(id: String!, input: CommentUpdateInput!): CommentPayload!
}
`;

const schema = buildSchema(FAKE_LINEAR_SDL);

interface UserRec {
  id: string;
  name: string;
  displayName: string;
  email: string;
}

interface StateRec {
  id: string;
  name: string;
  type: string;
  position: number;
}

interface ProjectRec {
  id: string;
  name: string;
  slugId: string;
  createdAt: number;
}

interface LabelRec {
  id: string;
  name: string;
}

interface RelationRec {
  id: string;
  type: string;
  /** The blocking issue, by identifier (resolved when read). */
  issueIdentifier: string;
  relatedIssueId: string;
  createdAt: number;
}

interface CommentRec {
  id: string;
  issueId: string;
  body: string;
  userId: string | null;
  createdAt: number;
  updatedAt: number;
  editedAt: number | null;
}

interface IssueRec {
  id: string;
  identifier: string;
  number: number;
  title: string;
  description: string | null;
  priority: number;
  stateId: string;
  /** Names of the states it was in, oldest first. */
  stateHistory: string[];
  projectId: string | null;
  assigneeId: string | null;
  labelIds: string[];
  createdAt: number;
  updatedAt: number;
}

type Args = Record<string, unknown>;
type Filter = Record<string, unknown>;
type SortKey = [number, string];

interface ConnectionArgs {
  first?: number | null;
  after?: string | null;
  orderBy?: 'createdAt' | 'updatedAt' | null;
}

/** Errors shaped like Linear's, so @linear/sdk picks the same error class. */
function linearError(message: string, extensions: Record<string, unknown>): GraphQLError {
  return new GraphQLError(message, { extensions });
}

function notFound(entity: string): GraphQLError {
  return linearError(`Entity not found: ${entity}`, {
    code: 'INPUT_ERROR',
    type: 'invalid input',
    userError: true,
    userPresentableMessage: `Could not find referenced ${entity}.`,
  });
}

function invalidInput(message: string): GraphQLError {
  return linearError('Argument Validation Error', {
    code: 'INVALID_INPUT',
    type: 'invalid input',
    userError: true,
    userPresentableMessage: message,
  });
}

function slugify(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40);
}

function stateType(name: string): string {
  const lower = name.toLowerCase();
  if (/cancel|duplicate/.test(lower)) return 'canceled';
  if (/done|complete|closed|merged/.test(lower)) return 'completed';
  if (/backlog/.test(lower)) return 'backlog';
  if (/todo|triage/.test(lower)) return 'unstarted';
  return 'started';
}

const PRIORITY_LABELS = ['No priority', 'Urgent', 'High', 'Medium', 'Low'];

function compareKeys(a: SortKey, b: SortKey): number {
  return a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0);
}

function encodeCursor(kind: string, key: SortKey): string {
  return Buffer.from(JSON.stringify([kind, key[0], key[1]]), 'utf8').toString('base64url');
}

function decodeCursor(kind: string, cursor: string): SortKey {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(value) && value[0] === kind && typeof value[1] === 'number' && typeof value[2] === 'string') {
      return [value[1], value[2]];
    }
  } catch {
    // fall through
  }
  throw invalidInput(`Invalid cursor: ${cursor}`);
}

/** A Relay page: items sorted by key, `after` = everything strictly past the cursor's key. */
function connection<T, V>(kind: string, items: T[], keyOf: (item: T) => SortKey, args: ConnectionArgs, view: (item: T) => V) {
  const first = args.first ?? DEFAULT_PAGE;
  if (!Number.isInteger(first) || first < 0 || first > MAX_PAGE) {
    throw invalidInput(`first must be between 0 and ${MAX_PAGE}`);
  }
  const sorted = [...items].sort((a, b) => compareKeys(keyOf(a), keyOf(b)));
  let start = 0;
  if (args.after) {
    const after = decodeCursor(kind, args.after);
    start = sorted.findIndex((item) => compareKeys(keyOf(item), after) > 0);
    if (start < 0) start = sorted.length;
  }
  const page = sorted.slice(start, start + first);
  const firstItem = page[0];
  const lastItem = page[page.length - 1];
  return {
    nodes: page.map(view),
    pageInfo: {
      hasNextPage: start + page.length < sorted.length,
      hasPreviousPage: start > 0,
      startCursor: firstItem === undefined ? null : encodeCursor(kind, keyOf(firstItem)),
      endCursor: lastItem === undefined ? null : encodeCursor(kind, keyOf(lastItem)),
    },
  };
}

/** `and`/`or` plus field comparators; null values mean "not given", as in Linear's filters. */
function matchFilter(filter: Filter | null | undefined, field: (key: string, value: unknown) => boolean): boolean {
  if (!filter) return true;
  return Object.entries(filter).every(([key, value]) => {
    if (value === null || value === undefined) return true;
    if (key === 'and') return (value as Filter[]).every((sub) => matchFilter(sub, field));
    if (key === 'or') return (value as Filter[]).some((sub) => matchFilter(sub, field));
    return field(key, value);
  });
}

function matchString(comparator: Filter, value: string): boolean {
  return Object.entries(comparator).every(([op, operand]) => {
    if (operand === null || operand === undefined) return true;
    switch (op) {
      case 'eq':
        return value === operand;
      case 'neq':
        return value !== operand;
      case 'in':
        return (operand as string[]).includes(value);
      case 'nin':
        return !(operand as string[]).includes(value);
      case 'eqIgnoreCase':
        return value.toLowerCase() === String(operand).toLowerCase();
      case 'neqIgnoreCase':
        return value.toLowerCase() !== String(operand).toLowerCase();
      default:
        throw invalidInput(`unsupported comparator ${op}`);
    }
  });
}

function matchBoolean(comparator: Filter, value: boolean): boolean {
  return Object.entries(comparator).every(([op, operand]) => {
    if (operand === null || operand === undefined) return true;
    return op === 'eq' ? value === operand : value !== operand;
  });
}

/** Nullable-entity filters: `null: true|false`, and any other condition fails on a missing entity. */
function matchNullable<T>(filter: Filter, entity: T | null, field: (entity: T, key: string, value: unknown) => boolean): boolean {
  return matchFilter(filter, (key, value) => {
    if (key === 'null') return (entity === null) === value;
    return entity !== null && field(entity, key, value);
  });
}

export async function startFakeLinear(options: FakeLinearOptions): Promise<FakeLinear> {
  if (!options.apiKey) throw new Error('startFakeLinear: apiKey is required');
  const teamKey = options.teamKey ?? 'CAD';
  const viewerName = options.viewerName ?? 'Cadenza Agent';
  let clock = 0;
  /** Strictly increasing timestamps, so creation order is also time order. */
  const tick = (): number => (clock = Math.max(Date.now(), clock + 1));
  let syncId = 1000;

  const users = new Map<string, UserRec>();
  const projects = new Map<string, ProjectRec>();
  const states: StateRec[] = [];
  const labels = new Map<string, LabelRec>();
  const issues = new Map<string, IssueRec>();
  const relations: RelationRec[] = [];
  const comments = new Map<string, CommentRec>();
  const team = { id: randomUUID(), key: teamKey, name: 'Cadenza' };
  const requests: string[] = [];
  const failures: FakeLinearFailure[] = [];

  const addUser = (name: string): UserRec => {
    for (const user of users.values()) if (user.name === name) return user;
    const displayName = slugify(name).replace(/-/g, '.') || 'user';
    const user: UserRec = { id: randomUUID(), name, displayName, email: `${displayName}@example.com` };
    users.set(user.id, user);
    return user;
  };
  const viewer = addUser(viewerName);

  (options.teamStates ?? DEFAULT_STATES).forEach((name, index) => {
    states.push({ id: randomUUID(), name, type: stateType(name), position: index });
  });

  const addProject = (slugId: string): ProjectRec => {
    for (const project of projects.values()) if (project.slugId === slugId) return project;
    const project: ProjectRec = { id: randomUUID(), name: `Project ${slugId}`, slugId, createdAt: tick() };
    projects.set(project.id, project);
    return project;
  };
  addProject(options.projectSlug);

  const stateNamed = (name: string): StateRec => {
    const state = states.find((candidate) => candidate.name === name);
    if (!state) throw new Error(`fake Linear: no workflow state ${JSON.stringify(name)} (have ${states.map((s) => s.name).join(', ')})`);
    return state;
  };
  const findIssue = (idOrIdentifier: string): IssueRec | undefined => {
    const byId = issues.get(idOrIdentifier);
    if (byId) return byId;
    const wanted = idOrIdentifier.toUpperCase();
    for (const issue of issues.values()) if (issue.identifier.toUpperCase() === wanted) return issue;
    return undefined;
  };
  const requireIssue = (identifier: string): IssueRec => {
    const issue = findIssue(identifier);
    if (!issue) throw new Error(`fake Linear: no issue ${identifier}`);
    return issue;
  };
  const stateOf = (issue: IssueRec): StateRec => states.find((state) => state.id === issue.stateId) as StateRec;
  const moveTo = (issue: IssueRec, stateId: string) => {
    if (issue.stateId === stateId) return;
    issue.stateId = stateId;
    issue.stateHistory.push(stateOf(issue).name);
  };
  const projectOf = (issue: IssueRec): ProjectRec | null => (issue.projectId ? (projects.get(issue.projectId) ?? null) : null);
  const assigneeOf = (issue: IssueRec): UserRec | null => (issue.assigneeId ? (users.get(issue.assigneeId) ?? null) : null);
  const issueComments = (issue: IssueRec): CommentRec[] => [...comments.values()].filter((comment) => comment.issueId === issue.id);

  // ---- GraphQL views: plain objects whose function-valued fields graphql-js calls with (args).

  const userView = (user: UserRec) => ({ ...user, active: true });
  const projectView = (project: ProjectRec) => ({
    id: project.id,
    name: project.name,
    slugId: project.slugId,
    url: `https://linear.app/fake/project/${slugify(project.name)}-${project.slugId}`,
    createdAt: new Date(project.createdAt).toISOString(),
  });
  const teamView = () => ({
    ...team,
    states: (args: ConnectionArgs & { filter?: Filter | null }) =>
      connection(
        'WorkflowState',
        states.filter((state) => matchStateFilter(args.filter, state)),
        (state) => [state.position, state.id],
        args,
        stateView,
      ),
  });
  const stateView = (state: StateRec) => ({
    ...state,
    color: '#888888',
    team: teamView,
  });
  const labelView = (label: LabelRec) => ({ ...label, color: '#5e6ad2' });
  const relationView = (relation: RelationRec) => ({
    id: relation.id,
    type: relation.type,
    createdAt: new Date(relation.createdAt).toISOString(),
    updatedAt: new Date(relation.createdAt).toISOString(),
    issue: () => {
      const blocker = findIssue(relation.issueIdentifier);
      if (!blocker) throw notFound('Issue');
      return issueView(blocker);
    },
    relatedIssue: () => {
      const related = issues.get(relation.relatedIssueId);
      if (!related) throw notFound('Issue');
      return issueView(related);
    },
  });
  const commentView = (comment: CommentRec) => ({
    id: comment.id,
    body: comment.body,
    createdAt: new Date(comment.createdAt).toISOString(),
    updatedAt: new Date(comment.updatedAt).toISOString(),
    editedAt: comment.editedAt === null ? null : new Date(comment.editedAt).toISOString(),
    url: `https://linear.app/fake/comment/${comment.id}`,
    user: () => (comment.userId ? userView(users.get(comment.userId) as UserRec) : null),
    issue: () => {
      const issue = issues.get(comment.issueId);
      return issue ? issueView(issue) : null;
    },
  });
  const orderKey = (args: ConnectionArgs) => (item: { id: string; createdAt: number; updatedAt: number }): SortKey => [
    args.orderBy === 'updatedAt' ? item.updatedAt : item.createdAt,
    item.id,
  ];
  /** Relations whose blocking issue exists (Linear has no dangling relations). */
  const liveRelations = () => relations.filter((relation) => findIssue(relation.issueIdentifier) !== undefined);
  const relationKey = (relation: RelationRec): SortKey => [relation.createdAt, relation.id];
  const issueView = (issue: IssueRec) => ({
    id: issue.id,
    identifier: issue.identifier,
    number: issue.number,
    title: issue.title,
    description: issue.description,
    priority: issue.priority,
    priorityLabel: PRIORITY_LABELS[issue.priority] ?? 'No priority',
    branchName: `${viewer.displayName}/${issue.identifier.toLowerCase()}-${slugify(issue.title)}`,
    url: `https://linear.app/fake/issue/${issue.identifier}/${slugify(issue.title)}`,
    createdAt: new Date(issue.createdAt).toISOString(),
    updatedAt: new Date(issue.updatedAt).toISOString(),
    state: () => stateView(stateOf(issue)),
    team: teamView,
    project: () => {
      const project = projectOf(issue);
      return project ? projectView(project) : null;
    },
    assignee: () => {
      const user = assigneeOf(issue);
      return user ? userView(user) : null;
    },
    labels: (args: ConnectionArgs) =>
      connection(
        'IssueLabel',
        issue.labelIds.map((id) => labels.get(id) as LabelRec),
        // In the order they were put on the issue.
        (label) => [issue.labelIds.indexOf(label.id), label.id],
        args,
        labelView,
      ),
    relations: (args: ConnectionArgs) =>
      connection(
        'IssueRelation',
        liveRelations().filter((relation) => findIssue(relation.issueIdentifier)?.id === issue.id),
        relationKey,
        args,
        relationView,
      ),
    inverseRelations: (args: ConnectionArgs) =>
      connection(
        'IssueRelation',
        liveRelations().filter((relation) => relation.relatedIssueId === issue.id),
        relationKey,
        args,
        relationView,
      ),
    comments: (args: ConnectionArgs) => connection('Comment', issueComments(issue), orderKey(args), args, commentView),
  });

  // ---- Filters.

  function matchStateFilter(filter: Filter | null | undefined, state: StateRec): boolean {
    return matchFilter(filter, (key, value) => {
      if (key === 'id') return matchString(value as Filter, state.id);
      if (key === 'name') return matchString(value as Filter, state.name);
      if (key === 'type') return matchString(value as Filter, state.type);
      throw invalidInput(`unsupported WorkflowStateFilter field ${key}`);
    });
  }
  const projectField = (project: ProjectRec, key: string, value: unknown): boolean => {
    if (key === 'id') return matchString(value as Filter, project.id);
    if (key === 'name') return matchString(value as Filter, project.name);
    if (key === 'slugId') return matchString(value as Filter, project.slugId);
    throw invalidInput(`unsupported project filter field ${key}`);
  };
  const userField = (user: UserRec, key: string, value: unknown): boolean => {
    if (key === 'id') return matchString(value as Filter, user.id);
    if (key === 'name') return matchString(value as Filter, user.name);
    if (key === 'displayName') return matchString(value as Filter, user.displayName);
    if (key === 'email') return matchString(value as Filter, user.email);
    if (key === 'isMe') return matchBoolean(value as Filter, user.id === viewer.id);
    throw invalidInput(`unsupported user filter field ${key}`);
  };
  function matchIssueFilter(filter: Filter | null | undefined, issue: IssueRec): boolean {
    return matchFilter(filter, (key, value) => {
      const sub = value as Filter;
      switch (key) {
        case 'id':
          return matchString(sub, issue.id);
        case 'title':
          return matchString(sub, issue.title);
        case 'project':
          return matchNullable(sub, projectOf(issue), projectField);
        case 'state':
          return matchStateFilter(sub, stateOf(issue));
        case 'assignee':
          return matchNullable(sub, assigneeOf(issue), userField);
        default:
          throw invalidInput(`unsupported IssueFilter field ${key}`);
      }
    });
  }

  // ---- Root resolvers.

  const rootValue = {
    viewer: () => userView(viewer),
    issue: (args: { id: string }) => {
      const issue = findIssue(args.id);
      if (!issue) throw notFound('Issue');
      return issueView(issue);
    },
    issues: (args: ConnectionArgs & { filter?: Filter | null }) =>
      connection(
        'Issue',
        [...issues.values()].filter((issue) => matchIssueFilter(args.filter, issue)),
        orderKey(args),
        args,
        issueView,
      ),
    projects: (args: ConnectionArgs & { filter?: Filter | null }) =>
      connection(
        'Project',
        [...projects.values()].filter((project) =>
          matchFilter(args.filter, (key, value) => projectField(project, key, value)),
        ),
        (project) => [project.createdAt, project.id],
        args,
        projectView,
      ),
    issueUpdate: (args: { id: string; input: Args }) => {
      const issue = findIssue(args.id);
      if (!issue) throw notFound('Issue');
      const input = args.input;
      if (typeof input.stateId === 'string') {
        if (!states.some((state) => state.id === input.stateId)) throw notFound('WorkflowState');
        moveTo(issue, input.stateId);
      }
      if (typeof input.title === 'string') issue.title = input.title;
      if (typeof input.description === 'string') issue.description = input.description;
      if (typeof input.priority === 'number') {
        if (!Number.isInteger(input.priority) || input.priority < 0 || input.priority > 4) {
          throw invalidInput('priority must be between 0 and 4');
        }
        issue.priority = input.priority;
      }
      if (input.assigneeId !== undefined) {
        if (input.assigneeId !== null && !users.has(String(input.assigneeId))) throw notFound('User');
        issue.assigneeId = input.assigneeId === null ? null : String(input.assigneeId);
      }
      issue.updatedAt = tick();
      return { success: true, lastSyncId: ++syncId, issue: issueView(issue) };
    },
    commentCreate: (args: { input: Args }) => {
      const { issueId, body } = args.input;
      if (typeof issueId !== 'string') throw invalidInput('A comment needs an issueId (the fake supports issue comments only)');
      if (typeof body !== 'string' || body.trim() === '') throw invalidInput('Comment body cannot be empty');
      const issue = findIssue(issueId);
      if (!issue) throw notFound('Issue');
      const comment = createComment(issue, body, viewer.id);
      return { success: true, lastSyncId: ++syncId, comment: commentView(comment) };
    },
    commentUpdate: (args: { id: string; input: Args }) => {
      const comment = comments.get(args.id);
      if (!comment) throw notFound('Comment');
      if (typeof args.input.body === 'string') {
        if (args.input.body.trim() === '') throw invalidInput('Comment body cannot be empty');
        comment.body = args.input.body;
        comment.editedAt = tick();
        comment.updatedAt = comment.editedAt;
      }
      return { success: true, lastSyncId: ++syncId, comment: commentView(comment) };
    },
  };

  function createComment(issue: IssueRec, body: string, userId: string | null): CommentRec {
    const now = tick();
    const comment: CommentRec = { id: randomUUID(), issueId: issue.id, body, userId, createdAt: now, updatedAt: now, editedAt: null };
    comments.set(comment.id, comment);
    return comment;
  }

  // ---- HTTP.

  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, {
      'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json; charset=utf-8',
      'content-length': String(Buffer.byteLength(text)),
      ...headers,
    });
    res.end(text);
  };

  const sendFailure = (res: ServerResponse, kind: FakeLinearFailure) => {
    if (kind === 'http500') return send(res, 500, 'Internal Server Error');
    if (kind === 'ratelimited') {
      const resetAt = Date.now() + 60_000;
      return send(
        res,
        400,
        {
          errors: [
            {
              message: 'Rate limit exceeded',
              extensions: {
                code: 'RATELIMITED',
                type: 'ratelimited',
                userError: true,
                userPresentableMessage: 'You have exceeded the API rate limit. Please try again later.',
              },
            },
          ],
        },
        {
          'retry-after': '60',
          'x-ratelimit-requests-limit': '5000',
          'x-ratelimit-requests-remaining': '0',
          'x-ratelimit-requests-reset': String(resetAt),
        },
      );
    }
    return send(res, 200, {
      data: null,
      errors: [{ message: 'Injected failure from the fake Linear server', extensions: { code: 'INTERNAL_SERVER_ERROR' } }],
    });
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    if (path !== '/graphql') return send(res, 404, 'Not Found');
    if (req.method !== 'POST') return send(res, 405, 'Method Not Allowed', { allow: 'POST' });

    let size = 0;
    const chunks: Buffer[] = [];
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY_BYTES) return send(res, 413, 'Payload Too Large');
      chunks.push(chunk as Buffer);
    }
    let payload: { query?: unknown; variables?: unknown; operationName?: unknown };
    try {
      payload = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof payload;
    } catch {
      requests.push('<invalid>');
      return send(res, 400, { errors: [{ message: 'Body is not valid JSON', extensions: { code: 'BAD_REQUEST', type: 'graphql error' } }] });
    }
    const source = typeof payload?.query === 'string' ? payload.query : null;
    const operationName = typeof payload?.operationName === 'string' ? payload.operationName : undefined;
    requests.push(source === null ? '<invalid>' : nameOf(source, operationName));

    const failure = failures.shift();
    if (failure) return sendFailure(res, failure);

    if (req.headers.authorization !== options.apiKey) {
      return send(res, 401, {
        errors: [
          {
            message: 'Authentication required, not authenticated',
            extensions: {
              code: 'AUTHENTICATION_ERROR',
              type: 'authentication error',
              userError: true,
              userPresentableMessage: 'You need to authenticate to access this operation.',
            },
          },
        ],
      });
    }
    if (source === null) {
      return send(res, 400, { errors: [{ message: 'Must provide query string.', extensions: { code: 'BAD_REQUEST', type: 'graphql error' } }] });
    }
    const variables = payload.variables;
    const result = await graphql({
      schema,
      source,
      rootValue,
      variableValues: typeof variables === 'object' && variables !== null ? (variables as Record<string, unknown>) : undefined,
      operationName,
    });
    const errors: GraphQLFormattedError[] | undefined = result.errors?.map((error) => error.toJSON());
    if (!('data' in result)) {
      // Parse, validation or variable errors: nothing ran (HTTP 400, like Linear).
      return send(res, 400, {
        errors: errors?.map((error) => ({
          ...error,
          extensions: error.extensions ?? { code: 'GRAPHQL_VALIDATION_FAILED', type: 'graphql error', userError: true },
        })),
      });
    }
    return send(res, 200, errors ? { data: result.data ?? null, errors } : { data: result.data });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) send(res, 500, `fake Linear crashed: ${error instanceof Error ? error.message : String(error)}`);
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  let nextNumber = 1;
  return {
    url: `http://127.0.0.1:${port}/graphql`,
    viewerName,
    requests,

    addIssue(input) {
      if (findIssue(input.identifier)) throw new Error(`fake Linear: issue ${input.identifier} already exists`);
      const priority = input.priority ?? 0;
      if (!Number.isInteger(priority) || priority < 0 || priority > 4) throw new Error(`fake Linear: priority ${priority} is not 0..4`);
      const createdAt = input.createdAt === undefined ? tick() : new Date(input.createdAt).getTime();
      if (Number.isNaN(createdAt)) throw new Error(`fake Linear: invalid createdAt ${String(input.createdAt)}`);
      const labelIds = (input.labels ?? []).map((name) => {
        for (const label of labels.values()) if (label.name === name) return label.id;
        const label = { id: randomUUID(), name };
        labels.set(label.id, label);
        return label.id;
      });
      let assigneeId: string | null = null;
      if (input.assignee) assigneeId = input.assignee === 'me' ? viewer.id : addUser(input.assignee).id;
      const issue: IssueRec = {
        id: randomUUID(),
        identifier: input.identifier,
        number: Number(/(\d+)$/.exec(input.identifier)?.[1] ?? nextNumber),
        title: input.title,
        description: input.description ?? null,
        priority,
        stateId: stateNamed(input.state).id,
        stateHistory: [stateNamed(input.state).name],
        projectId: addProject(input.projectSlug ?? options.projectSlug).id,
        assigneeId,
        labelIds,
        createdAt,
        updatedAt: createdAt,
      };
      nextNumber += 1;
      issues.set(issue.id, issue);
      for (const blocker of input.blockedBy ?? []) {
        relations.push({ id: randomUUID(), type: 'blocks', issueIdentifier: blocker, relatedIssueId: issue.id, createdAt: tick() });
      }
      return issue.id;
    },

    setState(identifier, state) {
      const issue = requireIssue(identifier);
      moveTo(issue, stateNamed(state).id);
      issue.updatedAt = tick();
    },

    addComment(identifier, body, author = null) {
      const issue = requireIssue(identifier);
      return createComment(issue, body, author === null ? null : addUser(author).id).id;
    },

    issue(identifier) {
      const issue = requireIssue(identifier);
      return {
        id: issue.id,
        identifier: issue.identifier,
        title: issue.title,
        description: issue.description,
        state: stateOf(issue).name,
        stateHistory: [...issue.stateHistory],
        priority: issue.priority,
        labels: issue.labelIds.map((id) => (labels.get(id) as LabelRec).name),
        assignee: assigneeOf(issue)?.name ?? null,
        projectSlug: projectOf(issue)?.slugId ?? null,
        createdAt: new Date(issue.createdAt).toISOString(),
        updatedAt: new Date(issue.updatedAt).toISOString(),
        comments: issueComments(issue)
          .sort((a, b) => a.createdAt - b.createdAt)
          .map((comment) => ({
            id: comment.id,
            body: comment.body,
            author: comment.userId ? (users.get(comment.userId)?.name ?? null) : null,
            createdAt: new Date(comment.createdAt).toISOString(),
            updatedAt: new Date(comment.updatedAt).toISOString(),
          })),
      };
    },

    failNext(count, kind) {
      if (!Number.isInteger(count) || count < 0) throw new Error(`fake Linear: failNext count must be a non-negative integer, got ${count}`);
      for (let i = 0; i < count; i += 1) failures.push(kind);
    },

    close() {
      return new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
    },
  };
}

/** The operation's name for the request log. */
function nameOf(source: string, operationName: string | undefined): string {
  try {
    const operation = getOperationAST(parse(source), operationName);
    return operation?.name?.value ?? '<anonymous>';
  } catch {
    return '<invalid>';
  }
}
