/**
 * The GraphQL documents the Linear tracker sends: hand-written and named, as Symphony sends its own
 * queries, so each shows up by name in Linear's logs (and in the fake server's).
 */
import { MAX_PAGE_SIZE } from './client.ts';

/** Labels and relations per issue, as Symphony asks for them. */
const NESTED_PAGE_SIZE = 50;

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

export const PROJECT_QUERY = `
query ${LINEAR_OPERATIONS.project}($slug: String!) {
  projects(filter: { slugId: { eq: $slug } }, first: 1) {
    nodes { id name slugId }
  }
}`;

export const ISSUES_BY_STATES_QUERY = `
query ${LINEAR_OPERATIONS.issuesByStates}($filter: IssueFilter!, $first: Int!, $after: String) {
  issues(filter: $filter, first: $first, after: $after) {
    nodes { ...CadenzaLinearIssueFields }
    pageInfo { hasNextPage endCursor }
  }
}
${ISSUE_FIELDS}`;

export const ISSUES_BY_IDS_QUERY = `
query ${LINEAR_OPERATIONS.issuesByIds}($ids: [ID!]!, $first: Int!, $after: String) {
  issues(filter: { id: { in: $ids } }, first: $first, after: $after) {
    nodes { ...CadenzaLinearIssueFields }
    pageInfo { hasNextPage endCursor }
  }
}
${ISSUE_FIELDS}`;

export const ISSUE_TEAM_STATES_QUERY = `
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

export const SET_STATE_MUTATION = `
mutation ${LINEAR_OPERATIONS.setState}($id: String!, $stateId: String!) {
  issueUpdate(id: $id, input: { stateId: $stateId }) {
    success
    issue { id state { name } }
  }
}`;

const COMMENT_FIELDS = 'id body createdAt user { name }';

export const ADD_COMMENT_MUTATION = `
mutation ${LINEAR_OPERATIONS.addComment}($issueId: String!, $body: String!) {
  commentCreate(input: { issueId: $issueId, body: $body }) {
    success
    comment { ${COMMENT_FIELDS} }
  }
}`;

export const UPDATE_COMMENT_MUTATION = `
mutation ${LINEAR_OPERATIONS.updateComment}($id: String!, $body: String!) {
  commentUpdate(id: $id, input: { body: $body }) {
    success
    comment { id }
  }
}`;

export const COMMENTS_QUERY = `
query ${LINEAR_OPERATIONS.comments}($id: String!, $first: Int!, $after: String) {
  issue(id: $id) {
    id
    comments(first: $first, after: $after, orderBy: createdAt) {
      nodes { ${COMMENT_FIELDS} }
      pageInfo { hasNextPage endCursor }
    }
  }
}`;
