/**
 * Containers Cadenza starts fresh for one purpose and removes afterwards: the exporter that turns
 * the agent's workspace into git objects, and the checkers that run proof checks on an exact commit.
 * Nothing the agent left running, installed or configured in its own sandbox reaches them: they start
 * from the sandbox image, with the same limits and no network.
 */
import { randomBytes } from 'node:crypto';
import type Docker from 'dockerode';
import { pack } from 'tar-stream';
import { isolatedHostConfig, type SandboxLimits } from './container.ts';
import { MANAGED_LABEL, ROLE_LABEL, WORKFLOW_LABEL, sandboxKey, volumeName } from './names.ts';
import type { Sandbox } from './workspace.ts';

export type FreshRole = 'exporter' | 'checker';

/** Where Cadenza's own files go in a fresh container: created by the engine as root, read-only to the agent's user. */
export const CADENZA_DIR = '/cadenza';

export interface FreshOptions {
  runKey: string;
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
  /** The container's own command (default: it waits for execs), with its environment. */
  command?: string[];
  env?: Record<string, string>;
  /** Start only once this settles (the container is created meanwhile). */
  startAfter?: Promise<unknown>;
}

/** A root-owned folder with `files` in it, as a tar archive for putArchive at `/`. */
function cadenzaArchive(files: Record<string, Buffer | string>): NodeJS.ReadableStream {
  const archive = pack();
  archive.entry({ name: CADENZA_DIR.slice(1), type: 'directory', mode: 0o755, uid: 0, gid: 0 });
  for (const [name, content] of Object.entries(files)) archive.entry({ name: `${CADENZA_DIR.slice(1)}/${name}`, mode: 0o644, uid: 0, gid: 0 }, content);
  archive.finalize();
  return archive as unknown as NodeJS.ReadableStream;
}

interface Created {
  container: Docker.Container;
  name: string;
}

async function createFresh(docker: Docker, options: FreshOptions): Promise<Created> {
  const { limits } = options;
  const name = `cadenza-${options.role}-${sandboxKey(options.runKey)}-${randomBytes(3).toString('hex')}`;
  const container = await docker.createContainer({
    name,
    Image: limits.image,
    Cmd: options.command ?? ['sleep', 'infinity'],
    Env: Object.entries(options.env ?? {}).map(([key, value]) => `${key}=${value}`),
    // The container's own user: an exec as another user would not get the container's capabilities.
    User: options.user,
    WorkingDir: '/',
    Labels: { [MANAGED_LABEL]: 'true', [WORKFLOW_LABEL]: options.runKey, [ROLE_LABEL]: options.role },
    NetworkDisabled: true,
    HostConfig: isolatedHostConfig(
      limits,
      options.workspaceReadOnlyAt ? [{ Type: 'volume', Source: volumeName(options.runKey), Target: options.workspaceReadOnlyAt, ReadOnly: true }] : [],
      options.capAdd,
    ),
  });
  return { container, name };
}

/**
 * Started containers waiting for their first use, so a check does not wait for a container start
 * (about 150 ms here). Nothing has run in them: they are as fresh as a new one. Unused ones are removed
 * after a while, and removeSandbox removes any a lost worker left.
 */
const warm = new Map<string, Array<Promise<Created | null>>>();
const WARM_FOR_MS = 120_000;
const warmKey = (options: FreshOptions) => JSON.stringify([options.runKey, options.role, options.limits, options.user, options.capAdd ?? [], options.workspaceReadOnlyAt ?? null]);

/** Starts a container for a later withFreshContainer with the same options (without its own command). */
export function prepareFreshContainer(docker: Docker, options: FreshOptions): void {
  const key = warmKey(options);
  const queue = warm.get(key) ?? [];
  warm.set(key, queue);
  const ready: Promise<Created | null> = (async () => {
    const created = await createFresh(docker, options);
    const { container } = created;
    await container.start();
    setTimeout(() => {
      const index = queue.indexOf(ready);
      if (index < 0) return;
      queue.splice(index, 1);
      void container.remove({ force: true, v: true }).catch(() => undefined);
    }, WARM_FOR_MS).unref();
    return created;
  })().catch(() => null);
  queue.push(ready);
}

async function takeWarm(options: FreshOptions): Promise<Created | null> {
  if (options.command || options.startAfter) return null;
  const queue = warm.get(warmKey(options));
  const ready = queue?.shift();
  if (queue && queue.length === 0) warm.delete(warmKey(options));
  return ready ? ready : null;
}

/** Runs `body` against a new container of the run's image and removes the container, whatever happens. */
export async function withFreshContainer<T>(docker: Docker, options: FreshOptions, body: (box: Sandbox & { id: string }) => Promise<T>): Promise<T> {
  const prepared = await takeWarm(options);
  const { container, name } = prepared ?? (await createFresh(docker, options));
  try {
    if (options.files) await container.putArchive(cadenzaArchive(options.files), { path: '/' });
    if (!prepared) {
      await options.startAfter;
      await container.start();
    }
    return await body({ docker, container: name, id: container.id, user: options.user });
  } finally {
    // Off the critical path: the engine kills and removes it while the run goes on (removeSandbox
    // removes any that a lost worker left behind).
    void container.remove({ force: true, v: true }).catch(() => undefined);
  }
}

/** Splits the engine's multiplexed log stream (8-byte frame headers: stream, size) into stdout and stderr. */
function demuxLogs(raw: Buffer): { stdout: string; stderr: string } {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  for (let at = 0; at + 8 <= raw.length;) {
    const size = raw.readUInt32BE(at + 4);
    (raw[at] === 2 ? err : out).push(raw.subarray(at + 8, at + 8 + size));
    at += 8 + size;
  }
  return { stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

/** Waits for a fresh container's own command to end (killing it at `timeoutMs`) and returns its exit and output. */
export async function waitForExit(docker: Docker, name: string, timeoutMs: number): Promise<{ exitCode: number; stdout: string; stderr: string; timedOut: boolean }> {
  const container = docker.getContainer(name);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void container.kill().catch(() => undefined);
  }, timeoutMs);
  try {
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    const logs = (await container.logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
    return { exitCode: StatusCode, ...demuxLogs(logs), timedOut };
  } finally {
    clearTimeout(timer);
  }
}
