/**
 * Containers Cadenza starts fresh for one purpose and removes afterwards: the exporter that turns
 * the agent's workspace into git objects, and the checkers that run proof checks on an exact commit.
 * Nothing the agent left running, installed or configured in its own sandbox reaches them: they start
 * from the sandbox image, with the same limits and no network.
 */
import { randomBytes } from 'node:crypto';
import type Docker from 'dockerode';
import { pack } from 'tar-stream';
import type { SandboxLimits } from './container.ts';
import { MANAGED_LABEL, ROLE_LABEL, WORKFLOW_LABEL, sandboxKey, volumeName } from './names.ts';
import type { Sandbox } from './workspace.ts';

export type FreshRole = 'exporter' | 'checker';

/** Where Cadenza's own files go in a fresh container: created by the engine as root, read-only to the agent's user. */
export const CADENZA_DIR = '/cadenza';

export interface FreshOptions {
  workflowId: string;
  role: FreshRole;
  limits: SandboxLimits;
  /** The user commands run as: the contract's sandbox user for checks, root for Cadenza's own steps. */
  user: string;
  /** Mount the run's workspace volume here, read-only (the exporter reads the agent's work through it). */
  workspaceReadOnlyAt?: string;
  /** Capabilities on top of none (the exporter reads files whatever their mode: DAC_READ_SEARCH). */
  capAdd?: string[];
  /** Files to place in CADENZA_DIR before anything runs. */
  files?: Record<string, Buffer | string>;
}

/** A root-owned folder with `files` in it, as a tar archive for putArchive at `/`. */
function cadenzaArchive(files: Record<string, Buffer | string>): NodeJS.ReadableStream {
  const archive = pack();
  archive.entry({ name: CADENZA_DIR.slice(1), type: 'directory', mode: 0o755, uid: 0, gid: 0 });
  for (const [name, content] of Object.entries(files)) archive.entry({ name: `${CADENZA_DIR.slice(1)}/${name}`, mode: 0o644, uid: 0, gid: 0 }, content);
  archive.finalize();
  return archive as unknown as NodeJS.ReadableStream;
}

/** Runs `body` against a new container of the run's image and removes the container, whatever happens. */
export async function withFreshContainer<T>(docker: Docker, options: FreshOptions, body: (box: Sandbox & { id: string }) => Promise<T>): Promise<T> {
  const { limits } = options;
  const name = `cadenza-${options.role}-${sandboxKey(options.workflowId)}-${randomBytes(3).toString('hex')}`;
  const container = await docker.createContainer({
    name,
    Image: limits.image,
    Cmd: ['sleep', 'infinity'],
    // The container's own user: an exec as another user would not get the container's capabilities.
    User: options.user,
    WorkingDir: '/',
    Labels: { [MANAGED_LABEL]: 'true', [WORKFLOW_LABEL]: options.workflowId, [ROLE_LABEL]: options.role },
    NetworkDisabled: true,
    HostConfig: {
      NetworkMode: 'none',
      Init: true,
      Memory: limits.memoryMb * 1024 * 1024,
      MemorySwap: limits.memoryMb * 1024 * 1024,
      NanoCpus: Math.round(limits.cpus * 1e9),
      PidsLimit: limits.pidsLimit,
      CapDrop: ['ALL'],
      ...(options.capAdd?.length ? { CapAdd: options.capAdd } : {}),
      SecurityOpt: ['no-new-privileges'],
      Mounts: options.workspaceReadOnlyAt ? [{ Type: 'volume', Source: volumeName(options.workflowId), Target: options.workspaceReadOnlyAt, ReadOnly: true }] : [],
      Tmpfs: { '/tmp': 'rw,nosuid,nodev,size=256m' },
    },
  });
  try {
    if (options.files) await container.putArchive(cadenzaArchive(options.files), { path: '/' });
    await container.start();
    return await body({ docker, container: name, id: container.id, user: options.user });
  } finally {
    await container.remove({ force: true, v: true }).catch(() => undefined);
  }
}
