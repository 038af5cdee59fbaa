/** Counting and removing the sandboxes a benchmark created (found by Cadenza's container labels). */
import type Docker from 'dockerode';
import { removeSandbox } from '../../lib/sandbox/container.ts';
import { MANAGED_LABEL, WORKFLOW_LABEL } from '../../lib/sandbox/names.ts';
import { sleep } from './common.ts';

/**
 * Polls running sandboxes (the query of `docker ps --filter label=dev.cadenza.managed=true`, through
 * the Docker API) and keeps the most seen at once among those whose workflow id contains `prefix`.
 */
export function watchSandboxes(docker: Docker, prefix: string, intervalMs = 500) {
  let max = 0;
  let samples = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        const running = await docker.listContainers({ filters: { label: [`${MANAGED_LABEL}=true`] } });
        const ours = running.filter((container) => (container.Labels?.[WORKFLOW_LABEL] ?? '').includes(prefix)).length;
        max = Math.max(max, ours);
        samples += 1;
      } catch {
        // A busy engine may time out a listing; the next poll counts again.
      }
      await sleep(intervalMs);
    }
  })();
  return {
    async stop(): Promise<{ max: number; samples: number }> {
      stopped = true;
      await loop;
      return { max, samples };
    },
  };
}

/** Removes every container and workspace volume of a workflow id containing `prefix`; returns how many ids. */
export async function sweepSandboxes(docker: Docker, prefix: string): Promise<number> {
  const ids = new Set<string>();
  const containers = await docker.listContainers({ all: true, filters: { label: [`${MANAGED_LABEL}=true`] } });
  for (const container of containers) {
    const id = container.Labels?.[WORKFLOW_LABEL];
    if (id?.includes(prefix)) ids.add(id);
  }
  const volumes = await docker.listVolumes({ filters: { label: [`${MANAGED_LABEL}=true`] } });
  for (const volume of volumes.Volumes ?? []) {
    const id = volume.Labels?.[WORKFLOW_LABEL];
    if (id?.includes(prefix)) ids.add(id);
  }
  for (const id of ids) await removeSandbox(docker, id).catch(() => undefined);
  return ids.size;
}
