/** Client-side operations on issue workflows, shared by the CLI, the poller and tests. */
import { WorkflowIdReusePolicy, type Client, type WorkflowHandle } from '@temporalio/client';
import type { Contract } from '../lib/contract/index.ts';
import type { Issue } from '../lib/tracker/types.ts';
import {
  TASK_QUEUE,
  approveLandingUpdate,
  issueKey,
  issueWorkflowId,
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
}

/**
 * Starts the issue's workflow. While a run is open this is a no-op returning that run; a closed run is
 * only started again when asked (`again`).
 */
export async function startIssue(client: Client, options: StartIssueOptions): Promise<WorkflowHandle<typeof issueWorkflow>> {
  const { issue, contract } = options;
  const workflowId = issueWorkflowId(contract.config.tracker.kind, issue.identifier);
  return client.workflow.start<typeof issueWorkflow>('issueWorkflow', {
    workflowId,
    taskQueue: options.taskQueue ?? TASK_QUEUE,
    args: [{ issue, contract, timing: options.timing }],
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

export function issueHandle(client: Client, trackerKind: string, identifier: string): WorkflowHandle<typeof issueWorkflow> {
  return client.workflow.getHandle(issueWorkflowId(trackerKind, identifier));
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
