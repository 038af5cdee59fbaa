/**
 * Placing a run on a worker host. Every worker serves the shared task queue and its own host queue;
 * `placeRun` runs on the shared queue, so whichever worker takes it offers its own host, if that host
 * has room under `worker.max_sandboxes` (counted by the workspace volumes it made). A full host refuses (retryable, soon), and the next attempt
 * may go to another worker. From then on the run's sandbox steps go to that host's queue.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { ContractSettings } from '../lib/contract/index.ts';
import { removeSandbox } from '../lib/sandbox/container.ts';
import { HOST_LABEL, WORKFLOW_LABEL } from '../lib/sandbox/names.ts';
import { statusQuery } from '../workflows/definitions.ts';
import type { ActivityDeps } from './deps.ts';
import { runKey } from './run-key.ts';

/** How long a placement holds its slot before its sandbox exists (provisioning follows at once). */
const RESERVATION_MS = 5 * 60_000;

export interface Placement {
  host: string;
  hostQueue: string;
}

export function createHostActivities(deps: ActivityDeps) {
  const reserved = new Map<string, number>();

  async function placeRun(input: { workflowId: string; contract: ContractSettings }): Promise<Placement> {
    const host = deps.host;
    if (!host) throw ApplicationFailure.nonRetryable('this worker serves no host queue (create it with createCadenzaWorker)', 'ConfigError');
    const key = runKey(input);
    const limit = input.contract.config.worker?.maxSandboxes ?? null;
    if (limit !== null) {
      const now = Date.now();
      for (const [held, until] of reserved) if (until < now) reserved.delete(held);
      // The host's sandboxes are the workspace volumes it made (a sandbox stopped between rounds or
      // waiting for approval still holds its place); other installations on the engine are not counted.
      const { Volumes: volumes } = await deps.docker.listVolumes({ filters: { label: [`${HOST_LABEL}=${host.id}`] } });
      const existing = new Set((volumes ?? []).map((volume) => volume.Labels?.[WORKFLOW_LABEL] ?? volume.Name));
      // A reservation ends when its sandbox exists: from then on the container counts (until removed).
      for (const held of reserved.keys()) if (existing.has(held)) reserved.delete(held);
      const taken = new Set([...existing, ...reserved.keys()]);
      taken.delete(key);
      if (taken.size >= limit) {
        throw ApplicationFailure.create({
          type: 'HostFull',
          message: `host ${host.id} has ${taken.size} of its ${limit} sandboxes (worker.max_sandboxes) in use; waiting for a host with room`,
          nextRetryDelay: '2 seconds',
        });
      }
    }
    reserved.set(key, Date.now() + RESERVATION_MS);
    deps.log?.(`placed ${input.workflowId} on host ${host.id} (task queue ${host.queue})`);
    return { host: host.id, hostQueue: host.queue };
  }

  return { placeRun };
}

/**
 * A host that was lost and came back still holds the sandboxes of runs that moved to another host
 * meanwhile (or ended there): each counts against its worker.max_sandboxes and holds a workspace.
 * Removed at the worker's start: a sandbox whose run is closed, gone, or placed on another host.
 * A run this worker cannot ask about (another namespace, no worker answering its query) is left alone.
 */
export async function reclaimSandboxes(deps: Pick<ActivityDeps, 'docker' | 'temporal'>, hostId: string, namespace: string): Promise<string[]> {
  if (!deps.temporal) return [];
  const client = await deps.temporal();
  const { Volumes: volumes } = await deps.docker.listVolumes({ filters: { label: [`${HOST_LABEL}=${hostId}`] } });
  const reclaimed: string[] = [];
  for (const volume of volumes ?? []) {
    const key = volume.Labels?.[WORKFLOW_LABEL];
    if (!key) continue;
    // Keys are `<namespace>:<workflow id>`; runs from before project ids are keyed by the workflow id alone.
    const cut = key.indexOf(':');
    if (cut >= 0 && key.slice(0, cut) !== namespace) continue;
    const handle = client.workflow.getHandle(key.slice(cut + 1));
    let why: string | null = null;
    try {
      const description = await handle.describe();
      if (description.status.name !== 'RUNNING') why = `its run is ${description.status.name.toLowerCase()}`;
      else {
        const { host } = await handle.query(statusQuery);
        if (host && host !== hostId) why = `its run moved to host ${host}`;
      }
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) why = 'its run is gone';
      else continue;
    }
    if (!why) continue;
    await removeSandbox(deps.docker, key);
    reclaimed.push(`${key.slice(cut + 1)} (${why})`);
  }
  return reclaimed;
}
