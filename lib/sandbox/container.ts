/**
 * One sandbox per issue: a long-lived container with the security defaults of DESIGN.md, whose
 * workspace lives on a named volume so it outlives a lost container.
 */
import type Docker from 'dockerode';
import { MANAGED_LABEL, WORKFLOW_LABEL, containerName, volumeName } from './names.ts';

export const WORKSPACE = '/workspace';

export interface SandboxLimits {
  image: string;
  cpus: number;
  memoryMb: number;
  pidsLimit: number;
  user: string;
}

export interface SandboxHandle {
  name: string;
  volume: string;
  id: string;
  /** True when an existing container was found and re-used. */
  reattached: boolean;
  /** True when the workspace volume was new (so `after_create` must run). */
  freshVolume: boolean;
}

function isNotFound(error: unknown): boolean {
  return (error as { statusCode?: number }).statusCode === 404;
}

function isConflict(error: unknown): boolean {
  return (error as { statusCode?: number }).statusCode === 409;
}

async function ensureVolume(docker: Docker, name: string, workflowId: string): Promise<boolean> {
  try {
    await docker.getVolume(name).inspect();
    return false;
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
  await docker.createVolume({ Name: name, Labels: { [MANAGED_LABEL]: 'true', [WORKFLOW_LABEL]: workflowId } });
  return true;
}

/** Creates the container, or re-attaches to it (starting it if it stopped). */
export async function ensureSandbox(docker: Docker, workflowId: string, limits: SandboxLimits): Promise<SandboxHandle> {
  const name = containerName(workflowId);
  const volume = volumeName(workflowId);
  const freshVolume = await ensureVolume(docker, volume, workflowId);

  const existing = docker.getContainer(name);
  try {
    const info = await existing.inspect();
    if (!info.State.Running) await existing.start();
    return { name, volume, id: info.Id, reattached: true, freshVolume };
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }

  try {
    const container = await docker.createContainer({
      name,
      Image: limits.image,
      Cmd: ['sleep', 'infinity'],
      User: limits.user,
      WorkingDir: WORKSPACE,
      Labels: { [MANAGED_LABEL]: 'true', [WORKFLOW_LABEL]: workflowId },
      NetworkDisabled: true,
      HostConfig: {
        NetworkMode: 'none',
        Init: true,
        Memory: limits.memoryMb * 1024 * 1024,
        MemorySwap: limits.memoryMb * 1024 * 1024,
        NanoCpus: Math.round(limits.cpus * 1e9),
        PidsLimit: limits.pidsLimit,
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges'],
        Mounts: [{ Type: 'volume', Source: volume, Target: WORKSPACE }],
        Tmpfs: { '/tmp': 'rw,nosuid,nodev,size=256m' },
      },
    });
    await container.start();
    const info = await container.inspect();
    return { name, volume, id: info.Id, reattached: false, freshVolume };
  } catch (error) {
    // Two attempts racing to create the same sandbox: the loser re-attaches to the winner's.
    if (isConflict(error)) return ensureSandbox(docker, workflowId, limits);
    throw error;
  }
}

/** Removes the container and (unless kept) its workspace volume. Missing ones are fine. */
export async function removeSandbox(docker: Docker, workflowId: string, options: { keepVolume?: boolean } = {}): Promise<{ container: boolean; volume: boolean }> {
  let container = false;
  let volume = false;
  try {
    await docker.getContainer(containerName(workflowId)).remove({ force: true, v: false });
    container = true;
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
  if (!options.keepVolume) {
    try {
      await docker.getVolume(volumeName(workflowId)).remove();
      volume = true;
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }
  return { container, volume };
}

export async function sandboxExists(docker: Docker, workflowId: string): Promise<boolean> {
  try {
    await docker.getContainer(containerName(workflowId)).inspect();
    return true;
  } catch (error) {
    if (isNotFound(error)) return false;
    throw error;
  }
}
