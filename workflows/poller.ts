/**
 * One tracker poll, started by Cadenza's Temporal Schedule (overlap: skip). Each run reloads
 * WORKFLOW.md, so the next poll uses an edited contract; running issue workflows keep their own.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import type { PollSummary } from '../activities/poller.ts';
import type { Timing } from './definitions.ts';

export interface PollerInput {
  workflowFile: string;
  /** Task queue for the issue workflows it starts. */
  taskQueue: string;
  timing?: Timing;
}

export interface PollerResult extends PollSummary {
  contractWarning: string | null;
  /** Keys in WORKFLOW.md Cadenza does not read, with the nearest known key (absent in results from before). */
  contractWarnings?: string[];
}

const { loadWorkflowContract, pollOnce } = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', maximumAttempts: 3 },
});

export async function pollerWorkflow(input: PollerInput): Promise<PollerResult> {
  const { contract, reloadError } = await loadWorkflowContract({ workflowFile: input.workflowFile });
  const summary = await pollOnce({ contract, taskQueue: input.taskQueue, timing: input.timing });
  return { ...summary, contractWarning: reloadError, contractWarnings: contract.warnings ?? [] };
}
