/** What tests read of an issue run's agent sessions: each completed session's transcript artifact, in order. */
import type { WorkflowHandle } from '@temporalio/client';
import type { AgentSessionResult } from '../../activities/agent.ts';
import { issueStatus } from '../../client/issues.ts';
import type { Continuation } from '../../activities/runtimes/common.ts';
import type { ArtifactStore } from '../../lib/artifacts.ts';
import type { ModelExchange } from '../../lib/egress/model-gateway.ts';
import type { World } from './world.ts';
import { sandboxContainerOf } from './agent-clis.ts';

export interface SessionTranscript {
  ref: string;
  runtime: string;
  continuation: Continuation | null;
  exchanges: ModelExchange[];
}

/** The transcripts of the run's completed runAgentSession activities, oldest first (from its history). */
export async function sessionTranscripts(handle: WorkflowHandle, artifacts: ArtifactStore): Promise<SessionTranscript[]> {
  const history = await handle.fetchHistory();
  const activityType = new Map<string, string>();
  const transcripts: SessionTranscript[] = [];
  for (const event of history.events ?? []) {
    const scheduled = event.activityTaskScheduledEventAttributes;
    if (scheduled) activityType.set(String(event.eventId), scheduled.activityType?.name ?? '');
    const completed = event.activityTaskCompletedEventAttributes;
    if (!completed || activityType.get(String(completed.scheduledEventId)) !== 'runAgentSession') continue;
    const payload = completed.result?.payloads?.[0];
    const result = JSON.parse(Buffer.from(payload!.data!).toString('utf8')) as AgentSessionResult;
    transcripts.push({ ref: result.transcript.ref, ...(await artifacts.getJson<Omit<SessionTranscript, 'ref'>>(result.transcript.ref)) });
  }
  return transcripts;
}

/** Waits until the run's round `round` awaits approval (fails fast if the run fails). */
export async function waitForRound(world: World, handle: WorkflowHandle, round: number, timeoutMs = 300_000) {
  let status = await issueStatus(handle);
  await world.waitUntil(async () => {
    status = await issueStatus(handle);
    if (['Failed', 'Cancelled', 'Done'].includes(status.phase)) throw new Error(`the run ended in ${status.phase} (${status.lastError}) before round ${round} awaited approval`);
    return status.round === round && status.phase === 'AwaitingApproval';
  }, `round ${round} awaits approval`, timeoutMs);
  return status;
}

/**
 * Runs a shell command as root on the run's workspace volume (mounted at /workspace): how a test
 * loses or spoils what an agent CLI keeps there. The sandbox is stopped while the run waits for
 * approval, so a throw-away container of its image, on its volume, runs it.
 */
export async function onWorkspaceVolume(world: World, handle: WorkflowHandle, command: string): Promise<void> {
  const sandbox = await world.docker.getContainer(await sandboxContainerOf(world.docker, handle.workflowId)).inspect();
  const volume = sandbox.Mounts.find((mount) => mount.Destination === '/workspace')!;
  const worker = await world.docker.createContainer({
    Image: sandbox.Config.Image, User: 'root', Cmd: ['sh', '-ec', command],
    HostConfig: { Binds: [`${volume.Name}:/workspace`], NetworkMode: 'none' },
  });
  try {
    await worker.start();
    const { StatusCode } = await worker.wait();
    if (StatusCode !== 0) throw new Error(`\`${command}\` failed on the workspace volume ${volume.Name} (exit ${StatusCode})`);
  } finally {
    await worker.remove({ force: true });
  }
}
