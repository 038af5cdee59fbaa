/**
 * The Temporal Schedule that polls the tracker: created or updated by `cadenza up`, visible and
 * pausable in the Temporal UI and with `temporal schedule`.
 */
import { createHash } from 'node:crypto';
import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client, type ScheduleOptions } from '@temporalio/client';
import type { Contract } from '../lib/contract/index.ts';
import { TASK_QUEUE, type Timing } from '../workflows/definitions.ts';
import type { pollerWorkflow } from '../workflows/poller.ts';

/** One schedule per WORKFLOW.md: stable across restarts, distinct for two contracts on one server. */
export function pollScheduleId(workflowFile: string): string {
  return `cadenza-poll-${createHash('sha256').update(workflowFile).digest('hex').slice(0, 8)}`;
}

export async function ensurePollSchedule(
  client: Client,
  options: { contract: Contract; taskQueue?: string; timing?: Timing },
): Promise<{ scheduleId: string; created: boolean; pausedNote: string | null }> {
  const { contract } = options;
  const taskQueue = options.taskQueue ?? TASK_QUEUE;
  const scheduleId = pollScheduleId(contract.path);
  const spec: ScheduleOptions['spec'] = contract.config.schedule
    ? { cronExpressions: [contract.config.schedule] }
    : { intervals: [{ every: contract.config.polling.intervalMs }] };
  const action = {
    type: 'startWorkflow' as const,
    workflowType: 'pollerWorkflow',
    workflowId: `${scheduleId}-run`,
    taskQueue,
    args: [{ workflowFile: contract.path, taskQueue, timing: options.timing }] as Parameters<typeof pollerWorkflow>,
    workflowExecutionTimeout: '10 minutes',
  };
  const policies = { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' };
  try {
    await client.schedule.create({
      scheduleId,
      spec,
      action,
      policies,
      memo: { workflowFile: contract.path },
      // Symphony polls once immediately at start.
      state: { triggerImmediately: true, note: `Cadenza tracker poll for ${contract.path}` },
    });
    return { scheduleId, created: true, pausedNote: null };
  } catch (error) {
    if (!(error instanceof ScheduleAlreadyRunning)) throw error;
    const handle = client.schedule.getHandle(scheduleId);
    // A paused schedule stays paused, with the note that says why; `cadenza schedule resume` resumes it.
    let pausedNote: string | null = null;
    await handle.update((previous) => {
      if (previous.state.paused) pausedNote = previous.state.note ?? '';
      return { ...previous, spec, action, policies };
    });
    return { scheduleId, created: false, pausedNote };
  }
}
