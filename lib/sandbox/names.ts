import { createHash } from 'node:crypto';

/** A run's key (activities/run-key.ts): its namespace and workflow id. A run from before project ids is keyed by its workflow id alone. */
export const scopedRunKey = (namespace: string, workflowId: string) => `${namespace}:${workflowId}`;

/**
 * Docker object names derived from a run's key, Symphony-style: the workflow id with characters
 * outside [A-Za-z0-9._-] as `_`, and a short hash of the whole key (namespace included) that keeps two
 * keys apart which read alike.
 */
export function sandboxKey(key: string): string {
  const workflowId = key.slice(key.indexOf(':') + 1);
  const safe = workflowId.replace(/[^A-Za-z0-9._-]/g, '_');
  const hash = createHash('sha256').update(key).digest('hex').slice(0, 8);
  return `${safe}-${hash}`;
}

export const containerName = (key: string) => `cadenza-${sandboxKey(key)}`;
export const volumeName = (key: string) => `cadenza-ws-${sandboxKey(key)}`;

/** Labels that mark what Cadenza created, so orphans can be found and cleaned. */
export const MANAGED_LABEL = 'dev.cadenza.managed';
export const WORKFLOW_LABEL = 'dev.cadenza.workflow-id';
/** What a container is for: the agent's `sandbox`, or a fresh `exporter` / `checker` (lib/sandbox/fresh.ts). */
export const ROLE_LABEL = 'dev.cadenza.role';
/** The worker host a sandbox was placed on (activities/hosts.ts counts a host's sandboxes by it). */
export const HOST_LABEL = 'dev.cadenza.host';
