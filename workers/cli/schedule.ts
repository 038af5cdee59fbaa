/** `cadenza schedule list|pause|resume|delete`: the tracker poll schedules. */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { ScheduleNotFoundError, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import { InfraError } from '../../infra/log.ts';
import { legacyPollScheduleId, pollScheduleId } from '../../client/schedule.ts';
import { addressOf, cadenzaCommand, connect, contractFrom, defaultWorkflowFile, oneLine, out, table, when, type Flags } from './common.ts';

export const SCHEDULE_ACTIONS = ['list', 'pause', 'resume', 'delete'] as const;

/**
 * The poll schedules. Pausing keeps what the schedule is for in its memo and puts the reason in its
 * note (Temporal's pause replaces the note), so `schedule list` still says which contract it polls.
 */
export async function scheduleCommand(flags: Flags, action: (typeof SCHEDULE_ACTIONS)[number], id: string | undefined): Promise<void> {
  const { client, connection } = await connect(addressOf(flags));
  try {
    if (action === 'list') {
      const rows: string[][] = [];
      for await (const summary of client.schedule.list()) {
        if (!summary.scheduleId.startsWith('cadenza-poll-')) continue;
        const every = summary.spec?.intervals?.[0]?.every;
        const cron = summary.spec?.calendars?.length ? 'cron' : '';
        const next = summary.info.nextActionTimes[0];
        rows.push([
          summary.scheduleId, summary.state.paused ? 'paused' : 'active', every !== undefined ? `every ${typeof every === 'number' ? `${every} ms` : String(every)}` : cron || '-',
          summary.state.paused ? '-' : when(next), String(summary.memo?.workflowFile ?? '-'), oneLine(summary.state.note, 60),
        ]);
      }
      if (!rows.length) {
        out('No Cadenza poll schedules on this server. `npx cadenza up` creates one for its WORKFLOW.md.');
        return;
      }
      return table(['SCHEDULE', 'STATE', 'SPEC', 'NEXT POLL', 'WORKFLOW.md', 'NOTE'], rows);
    }
    const workflowFile = path.resolve((flags.workflow as string | undefined) ?? defaultWorkflowFile());
    const scheduleId = id ?? (await projectScheduleId(client, workflowFile));
    const handle = client.schedule.getHandle(scheduleId);
    const described = await handle.describe().catch((error: unknown) => {
      if (error instanceof ScheduleNotFoundError) {
        throw new InfraError(`no schedule ${scheduleId}${id ? '' : ` (the poll schedule of ${workflowFile})`} on ${addressOf(flags)}.`, '`npx cadenza schedule list` shows the poll schedules; `npx cadenza up` creates one.');
      }
      throw error;
    });
    const purpose = String(described.memo?.workflowFile ?? workflowFile);
    const reason = (flags.reason as string | undefined)?.trim();
    if (action === 'pause') {
      await handle.pause(`Paused with cadenza schedule pause${reason ? `: ${reason}` : ''} (polls ${purpose})`);
      out(`${scheduleId} paused: no new runs start from ${purpose}; open runs go on. Resume with: ${cadenzaCommand(addressOf(flags))} schedule resume ${scheduleId}`);
    } else if (action === 'resume') {
      await handle.unpause(`Cadenza tracker poll for ${purpose}${reason ? ` (resumed: ${reason})` : ''}`);
      await handle.trigger(ScheduleOverlapPolicy.SKIP);
      out(`${scheduleId} resumed: polling ${purpose} now and then on its schedule.`);
    } else {
      await handle.delete();
      out(`${scheduleId} deleted: nothing polls ${purpose} any more; open runs go on. \`npx cadenza up\` creates it again.`);
    }
  } finally {
    await connection.close();
  }
}

/** The poll schedule of a WORKFLOW.md: its project's, or one `up` made before projects had ids and has not replaced yet. */
async function projectScheduleId(client: Client, workflowFile: string): Promise<string> {
  const legacyId = legacyPollScheduleId(workflowFile);
  if (!existsSync(workflowFile)) return legacyId;
  const current = pollScheduleId(contractFrom(workflowFile, 'fix the file, or name the schedule: `npx cadenza schedule list` shows them.'));
  const exists = (scheduleId: string) => client.schedule.getHandle(scheduleId).describe().then(() => true, (error: unknown) => {
    if (error instanceof ScheduleNotFoundError) return false;
    throw error;
  });
  return !(await exists(current)) && (await exists(legacyId)) ? legacyId : current;
}
