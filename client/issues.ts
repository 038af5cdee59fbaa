/** Client-side operations on issue workflows, shared by the CLI, the poller and tests. */
import { WorkflowIdReusePolicy, WorkflowNotFoundError, type Client, type WorkflowHandle } from '@temporalio/client';
import type { CadenzaConfig, Contract } from '../lib/contract/index.ts';
import type { Issue, TrackerAdapter } from '../lib/tracker/types.ts';
import {
  HISTORY_CAPS,
  TASK_QUEUE,
  WORKPAD_MARKER,
  approveLandingUpdate,
  issueKey,
  issueWorkflowId,
  legacyIssueWorkflowId,
  phaseKey,
  rejectLandingUpdate,
  repoKey,
  statusQuery,
  type IssueStatus,
  type Timing,
} from '../workflows/definitions.ts';
import type { issueWorkflow } from '../workflows/issue.ts';

export interface StartIssueOptions {
  issue: Issue;
  contract: Contract;
  taskQueue?: string;
  timing?: Timing;
  /** Start a new run even if an earlier run of this issue has closed. */
  again?: boolean;
  /** What people (and an earlier run's watch) said on the issue so far: round 1's prompt carries it. */
  comments?: IssueComment[];
}

export interface IssueComment {
  id: string;
  author: string;
  body: string;
}

/**
 * The issue's comments but Cadenza's workpad, for a new run to start with (a reopened issue's comments
 * say why it was reopened). A tracker that cannot answer now gives none: the first poll delivers them.
 */
export async function commentsForNewRun(tracker: Pick<TrackerAdapter, 'listComments'>, issueId: string): Promise<IssueComment[]> {
  try {
    return (await tracker.listComments(issueId))
      .filter((comment) => !comment.body.startsWith(WORKPAD_MARKER))
      .slice(-HISTORY_CAPS.comments)
      .map(({ id, author, body }) => ({ id, author, body: body.slice(0, HISTORY_CAPS.commentChars + 200) }));
  } catch {
    return [];
  }
}

/**
 * Starts the issue's workflow. While a run is open this is a no-op returning that run; a closed run is
 * only started again when asked (`again`).
 */
export async function startIssue(client: Client, options: StartIssueOptions): Promise<WorkflowHandle<typeof issueWorkflow>> {
  const { issue, contract } = options;
  const workflowId = issueWorkflowId(contract.config, issue.identifier);
  // A run started before projects had ids keeps its old id until it ends: never a second run beside it.
  const legacy = client.workflow.getHandle<typeof issueWorkflow>(legacyIssueWorkflowId(contract.config.tracker.kind, issue.identifier));
  if (legacy.workflowId !== workflowId && (await statusOf(legacy)) === 'RUNNING') return legacy;
  return client.workflow.start<typeof issueWorkflow>('issueWorkflow', {
    workflowId,
    taskQueue: options.taskQueue ?? TASK_QUEUE,
    args: [{ issue, contract, timing: options.timing, ...(options.comments?.length ? { comments: options.comments } : {}) }],
    workflowIdConflictPolicy: 'USE_EXISTING',
    workflowIdReusePolicy: options.again ? WorkflowIdReusePolicy.ALLOW_DUPLICATE : WorkflowIdReusePolicy.REJECT_DUPLICATE,
    typedSearchAttributes: [
      { key: phaseKey, value: 'Provisioning' },
      { key: issueKey, value: issue.identifier },
      { key: repoKey, value: contract.config.repo.url },
    ],
    memo: { title: issue.title, url: issue.url, issueId: issue.id },
    // What the UI's run list and the run's page show at the top.
    staticSummary: `${issue.identifier}: ${issue.title}`.replace(/\s+/g, ' ').slice(0, 200),
    ...(issue.url ? { staticDetails: `Issue: ${issue.url}` } : {}),
  });
}

/**
 * The issue's run: under its project's id, or else under the id runs had before projects had ids.
 * When neither exists, the handle names the project's id (what a new run would get).
 */
export async function findIssueRun(client: Client, config: Pick<CadenzaConfig, 'project' | 'tracker'>, identifier: string): Promise<WorkflowHandle<typeof issueWorkflow>> {
  const current = client.workflow.getHandle<typeof issueWorkflow>(issueWorkflowId(config, identifier));
  if ((await statusOf(current)) !== null) return current;
  const legacy = client.workflow.getHandle<typeof issueWorkflow>(legacyIssueWorkflowId(config.tracker.kind, identifier));
  if (legacy.workflowId !== current.workflowId && (await statusOf(legacy)) !== null) return legacy;
  return current;
}

/** The latest run's status (describe is strongly consistent, unlike list), or null when there is none. */
export async function statusOf(handle: WorkflowHandle): Promise<string | null> {
  try {
    return (await handle.describe()).status.name;
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) return null;
    throw error;
  }
}

export function issueStatus(handle: WorkflowHandle): Promise<IssueStatus> {
  return handle.query(statusQuery);
}

/** Approves landing; with `commit`, only if that is the head awaiting approval. */
export function approve(handle: WorkflowHandle, by: string, comment?: string, commit?: string): Promise<string> {
  return handle.executeUpdate(approveLandingUpdate, { args: [{ by, ...(comment ? { comment } : {}), ...(commit ? { commit } : {}) }] });
}

export function reject(handle: WorkflowHandle, by: string, feedback: string): Promise<string> {
  return handle.executeUpdate(rejectLandingUpdate, { args: [{ by, feedback }] });
}
