/**
 * The Temporal Schedule that polls the tracker: created or updated by `cadenza up`, visible and
 * pausable in the Temporal UI and with `temporal schedule`.
 */
import { createHash } from 'node:crypto';
import { ScheduleAlreadyRunning, ScheduleNotFoundError, ScheduleOverlapPolicy, type Client, type ScheduleOptions } from '@temporalio/client';
import type { Contract } from '../lib/contract/index.ts';
import { TASK_QUEUE, type Timing } from '../workflows/definitions.ts';
import type { pollerWorkflow } from '../workflows/poller.ts';

/** One schedule per project: stable across restarts, distinct for two projects on one server. */
export function pollScheduleId(contract: Pick<Contract, 'path' | 'config'>): string {
  return contract.config.project ? `cadenza-poll-${contract.config.project.id}` : legacyPollScheduleId(contract.path);
}

/** The id schedules had before projects had ids (one per WORKFLOW.md path); `up` replaces such a schedule. */
export function legacyPollScheduleId(workflowFile: string): string {
  return `cadenza-poll-${createHash('sha256').update(workflowFile).digest('hex').slice(0, 8)}`;
}

/** Deletes this contract's schedule of the old id, returning whether it was paused and why (null = not paused or none). */
async function retireLegacySchedule(client: Client, contract: Contract, scheduleId: string): Promise<{ existed: boolean; pausedNote: string | null }> {
  const legacyId = legacyPollScheduleId(contract.path);
  if (legacyId === scheduleId) return { existed: false, pausedNote: null };
  const handle = client.schedule.getHandle(legacyId);
  const described = await handle.describe().catch((error: unknown) => {
    if (error instanceof ScheduleNotFoundError) return null;
    throw error;
  });
  if (!described) return { existed: false, pausedNote: null };
  await handle.delete();
  return { existed: true, pausedNote: described.state.paused ? (described.state.note ?? '') : null };
}

export async function ensurePollSchedule(
  client: Client,
  options: { contract: Contract; taskQueue?: string; timing?: Timing },
): Promise<{ scheduleId: string; created: boolean; pausedNote: string | null }> {
  const { contract } = options;
  const taskQueue = options.taskQueue ?? TASK_QUEUE;
  const scheduleId = pollScheduleId(contract);
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
  // A schedule from before project ids is replaced by this one; paused, it stays paused.
  const legacy = await retireLegacySchedule(client, contract, scheduleId);
  try {
    await client.schedule.create({
      scheduleId,
      spec,
      action,
      policies,
      memo: { workflowFile: contract.path },
      // Symphony polls once immediately at start.
      state: legacy.pausedNote !== null
        ? { paused: true, note: legacy.pausedNote }
        : { triggerImmediately: true, note: `Cadenza tracker poll for ${contract.path}` },
    });
    return { scheduleId, created: !legacy.existed, pausedNote: legacy.pausedNote };
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
