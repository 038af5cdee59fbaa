/**
 * One sandbox per issue: a long-lived container with the security defaults of DESIGN.md, whose
 * workspace lives on a named volume so it outlives a lost container.
 */
import type Docker from 'dockerode';
import { capStopped, type StoppedProcess } from './leftovers.ts';
import { MANAGED_LABEL, ROLE_LABEL, WORKFLOW_LABEL, containerName, volumeName } from './names.ts';

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

async function ensureVolume(docker: Docker, name: string, runKey: string, labels: Record<string, string>): Promise<boolean> {
  try {
    await docker.getVolume(name).inspect();
    return false;
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
  await docker.createVolume({ Name: name, Labels: { ...labels, [MANAGED_LABEL]: 'true', [WORKFLOW_LABEL]: runKey } });
  return true;
}

/** Creates the container, or re-attaches to it (starting it if it stopped). `labels` go on a new workspace volume. */
export async function ensureSandbox(docker: Docker, runKey: string, limits: SandboxLimits, labels: Record<string, string> = {}): Promise<SandboxHandle> {
  const name = containerName(runKey);
  const volume = volumeName(runKey);
  const freshVolume = await ensureVolume(docker, volume, runKey, labels);

  const existing = docker.getContainer(name);
  try {
    const info = await existing.inspect();
    if (!info.State.Running) await startContainer(existing);
    return { name, volume, id: info.Id, reattached: true, freshVolume };
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }

  try {
    const id = await createContainer(docker, runKey, limits);
    return { name, volume, id, reattached: false, freshVolume };
  } catch (error) {
    // Two attempts racing to create the same sandbox: the loser re-attaches to the winner's.
    if (isConflict(error)) return ensureSandbox(docker, runKey, limits, labels);
    throw error;
  }
}

/** Starts a stopped container; one that is already running (a racing attempt started it) is fine. */
async function startContainer(container: Docker.Container): Promise<void> {
  await container.start().catch((error: { statusCode?: number }) => {
    if (error.statusCode !== 304) throw error;
  });
}

/**
 * The security defaults every Cadenza container gets (the agent's sandbox, exporters, checkers): no
 * network, the contract's limits, no capabilities but `capAdd`, no privilege gain, only `mounts`.
 */
export function isolatedHostConfig(limits: SandboxLimits, mounts: Docker.MountConfig, capAdd: string[] = []): Docker.HostConfig {
  return {
    NetworkMode: 'none',
    Init: true,
    Memory: limits.memoryMb * 1024 * 1024,
    MemorySwap: limits.memoryMb * 1024 * 1024,
    NanoCpus: Math.round(limits.cpus * 1e9),
    PidsLimit: limits.pidsLimit,
    CapDrop: ['ALL'],
    ...(capAdd.length ? { CapAdd: capAdd } : {}),
    SecurityOpt: ['no-new-privileges'],
    Mounts: mounts,
    Tmpfs: { '/tmp': 'rw,nosuid,nodev,size=256m' },
  };
}

/** Creates and starts the container on its workspace volume; returns the container id. */
async function createContainer(docker: Docker, runKey: string, limits: SandboxLimits): Promise<string> {
  const container = await docker.createContainer({
    name: containerName(runKey),
    Image: limits.image,
    Cmd: ['sleep', 'infinity'],
    User: limits.user,
    WorkingDir: WORKSPACE,
    Labels: { [MANAGED_LABEL]: 'true', [WORKFLOW_LABEL]: runKey, [ROLE_LABEL]: 'sandbox' },
    NetworkDisabled: true,
    HostConfig: isolatedHostConfig(limits, [{ Type: 'volume', Source: volumeName(runKey), Target: WORKSPACE }]),
  });
  await container.start();
  return (await container.inspect()).Id;
}

/** The sandbox's workspace volume is gone, so the work in it since the last snapshot is gone too. */
export class SandboxLostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SandboxLostError';
  }
}

/** True for errors that mean the Docker engine itself did not answer (down, restarting, socket gone). */
export function engineUnreachable(error: unknown): boolean {
  const { code, message } = error as { code?: string; message?: string };
  return ['ENOENT', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE'].includes(code ?? '') || /socket hang up/i.test(message ?? '');
}

/** Where the client talks to the engine, for messages. */
export function engineAddress(docker: Docker): string {
  const modem = docker.modem as { socketPath?: string; host?: string; port?: string | number };
  return modem.socketPath ? `unix://${modem.socketPath}` : `${modem.host ?? 'localhost'}:${modem.port ?? ''}`;
}

export type ReattachOutcome = 'running' | 'started' | 'recreated';

/**
 * Makes an already provisioned sandbox usable again after its container stopped or vanished (the
 * Docker engine restarted or crashed): a stopped container is started, a missing one is created
 * again on the surviving workspace volume. Nothing is rebuilt: without the volume the work since
 * the last snapshot is gone, and that is reported (SandboxLostError) instead of hidden.
 */
export async function reattachSandbox(docker: Docker, runKey: string, limits: SandboxLimits): Promise<ReattachOutcome> {
  const name = containerName(runKey);
  const volume = volumeName(runKey);
  try {
    try {
      await docker.getVolume(volume).inspect();
    } catch (error) {
      if (!isNotFound(error)) throw error;
      throw new SandboxLostError(`the workspace volume ${volume} of sandbox ${name} is gone (was the Docker engine's data removed?), so the uncommitted work in it is lost; the last snapshot of the work branch is still in the host mirror`);
    }
    const container = docker.getContainer(name);
    try {
      const info = await container.inspect();
      if (info.State.Running) return 'running';
      await startContainer(container);
      return 'started';
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    try {
      await createContainer(docker, runKey, limits);
    } catch (error) {
      // Another attempt re-created it first: make sure it runs.
      if (!isConflict(error)) throw error;
      await startContainer(container);
    }
    return 'recreated';
  } catch (error) {
    if (engineUnreachable(error)) {
      throw new Error(`the Docker engine at ${engineAddress(docker)} does not answer (${(error as Error).message}), so sandbox ${name} cannot be re-attached`, { cause: error });
    }
    throw error;
  }
}

/**
 * The processes running in a container as the engine sees them (its cgroup, not /proc inside, which
 * the agent could hide from), without the container's init and main command. Empty when it is not running.
 */
export async function runningProcesses(container: Docker.Container, startedBy: StoppedProcess['startedBy']): Promise<Array<StoppedProcess & { pid: string }>> {
  const top = await container.top({ ps_args: '-eo pid,ppid,args' }).catch((error: { statusCode?: number }) => {
    if (error.statusCode === 404 || error.statusCode === 409) return null;
    throw error;
  }) as { Titles?: string[]; Processes?: string[][] } | null;
  if (!top?.Processes?.length) return [];
  const column = (name: string, fallback: number) => (top.Titles?.includes(name) ? top.Titles.indexOf(name) : fallback);
  const [pidAt, ppidAt, argsAt] = [column('PID', 0), column('PPID', 1), column('COMMAND', 2)];
  const rows = top.Processes.map((row) => ({ pid: row[pidAt]!, ppid: row[ppidAt]!, command: row[argsAt] ?? '' }));
  // Not the container's own: its init (docker-init) and the main command that init runs (`sleep infinity`).
  const init = rows.find((row) => /docker-init/.test(row.command));
  const own = (row: (typeof rows)[number]) => row === init || (row.ppid === init?.pid && row.command === 'sleep infinity');
  return rows.filter((row) => !own(row)).map((row) => ({ pid: row.pid, startedBy, command: row.command.slice(0, 200) }));
}

/**
 * Ends everything the agent started in its sandbox by killing the container (fork bombs, daemons,
 * processes that changed their environment or name alike), and says what was running. The volume and
 * the container stay; the next round starts it again.
 */
export async function stopSandboxProcesses(docker: Docker, runKey: string): Promise<StoppedProcess[]> {
  const container = docker.getContainer(containerName(runKey));
  const running = await runningProcesses(container, 'agent');
  await container.kill().catch((error: { statusCode?: number }) => {
    // Not running (a retried step already stopped it) or gone (the engine lost it): nothing runs in it.
    if (error.statusCode !== 409 && error.statusCode !== 404 && error.statusCode !== 304) throw error;
  });
  await container.wait({ condition: 'not-running' }).catch(() => undefined);
  return capStopped(running.map(({ startedBy, command }) => ({ startedBy, command })));
}

/** Removes the container, Cadenza's fresh containers of the run, and (unless kept) its workspace volume. Missing ones are fine. */
export async function removeSandbox(docker: Docker, runKey: string, options: { keepVolume?: boolean } = {}): Promise<{ container: boolean; volume: boolean }> {
  let container = false;
  let volume = false;
  // Exporters and checkers a lost worker left behind.
  const fresh = await docker.listContainers({ all: true, filters: { label: [`${WORKFLOW_LABEL}=${runKey}`, `${ROLE_LABEL}`] } });
  for (const other of fresh) {
    if (other.Labels?.[ROLE_LABEL] === 'sandbox') continue;
    await docker.getContainer(other.Id).remove({ force: true, v: true }).catch(() => undefined);
  }
  try {
    await docker.getContainer(containerName(runKey)).remove({ force: true, v: false });
    container = true;
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
  if (!options.keepVolume) {
    try {
      await docker.getVolume(volumeName(runKey)).remove();
      volume = true;
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }
  return { container, volume };
}

export async function sandboxExists(docker: Docker, runKey: string): Promise<boolean> {
  try {
    await docker.getContainer(containerName(runKey)).inspect();
    return true;
  } catch (error) {
    if (isNotFound(error)) return false;
    throw error;
  }
}
