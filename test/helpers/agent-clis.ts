/** What tests observe of the agent CLIs in a sandbox: a CLI copied into the container shows in its own layer. */
import path from 'node:path';
import type Docker from 'dockerode';
import { AGENT_CLIS_DIR } from '../../infra/agents.ts';
import { ROLE_LABEL, WORKFLOW_LABEL } from '../../lib/sandbox/names.ts';

/** Paths the container's own layer added or changed under /opt/cadenza (empty when the image carried the CLI). */
export async function changesUnderAgentClisDir(docker: Docker, container: string): Promise<string[]> {
  const changes = ((await docker.getContainer(container).changes()) ?? []) as Array<{ Path: string }>;
  const cadenzaDir = path.posix.dirname(AGENT_CLIS_DIR);
  return changes.map((change) => change.Path).filter((changed) => changed.startsWith(cadenzaDir));
}

/** The agent's sandbox container of a workflow (running or stopped), found by its labels. */
export async function sandboxContainerOf(docker: Docker, workflowId: string): Promise<string> {
  const sandboxes = await docker.listContainers({ all: true, filters: { label: [`${ROLE_LABEL}=sandbox`] } });
  // A run's key is its workflow id, or namespace and workflow id.
  const mine = sandboxes.filter((info) => {
    const key = info.Labels?.[WORKFLOW_LABEL] ?? '';
    return key === workflowId || key.endsWith(`:${workflowId}`);
  });
  if (mine.length !== 1) throw new Error(`expected one sandbox container for ${workflowId}, found ${mine.length}`);
  return mine[0]!.Id;
}
