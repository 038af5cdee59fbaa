import { createHash } from 'node:crypto';

/**
 * Docker object names derived from a workflow id, Symphony-style: characters outside [A-Za-z0-9._-]
 * become `_`, and a short hash keeps two ids that sanitize alike apart.
 */
export function sandboxKey(workflowId: string): string {
  const safe = workflowId.replace(/[^A-Za-z0-9._-]/g, '_');
  const hash = createHash('sha256').update(workflowId).digest('hex').slice(0, 8);
  return `${safe}-${hash}`;
}

export const containerName = (workflowId: string) => `cadenza-${sandboxKey(workflowId)}`;
export const volumeName = (workflowId: string) => `cadenza-ws-${sandboxKey(workflowId)}`;

/** Labels that mark what Cadenza created, so orphans can be found and cleaned. */
export const MANAGED_LABEL = 'dev.cadenza.managed';
export const WORKFLOW_LABEL = 'dev.cadenza.workflow-id';
/** What a container is for: the agent's `sandbox`, or a fresh `exporter` / `checker` (lib/sandbox/fresh.ts). */
export const ROLE_LABEL = 'dev.cadenza.role';
