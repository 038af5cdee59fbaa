/**
 * The repository inside a sandbox and the file operations the agent and the orchestrator use on it.
 * Every agent path is resolved inside the container, through symlinks, and must stay in the repo.
 */
import type Docker from 'dockerode';
import { extract, pack } from 'tar-stream';
import { WORKSPACE } from './container.ts';
import { SandboxNotRunningError, execInSandbox, type ExecResult } from './exec.ts';

/** The repository checkout; the agent's whole world. */
export const REPO_DIR = `${WORKSPACE}/repo`;
/** Orchestrator scratch space on the same volume (bundles in and out), outside the agent's reach. */
export const TRANSFER_DIR = `${WORKSPACE}/.cadenza`;

/** A tool failure the agent sees as a message; the run goes on. */
export class WorkspaceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WorkspaceError';
  }
}

export interface Sandbox {
  docker: Docker;
  container: string;
  user: string;
  /**
   * Brings the container back when it stopped or vanished (a Docker engine restart). Without it, a
   * command on a stopped container fails with SandboxNotRunningError.
   */
  reattach?: () => Promise<unknown>;
}

/**
 * Runs `operation`; if the container was found stopped or gone before anything ran, re-attaches the
 * sandbox once and runs it again.
 */
async function withReattach<T>(sandbox: Sandbox, operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    if (!sandbox.reattach || !(error instanceof SandboxNotRunningError)) throw error;
    await sandbox.reattach();
    return operation();
  }
}

export function sh(sandbox: Sandbox, command: string, options: { timeoutMs?: number; env?: Record<string, string>; stdin?: string | Buffer; workdir?: string; maxOutputBytes?: number } = {}): Promise<ExecResult> {
  return withReattach(sandbox, () =>
    execInSandbox(sandbox.docker, sandbox.container, {
      command,
      user: sandbox.user,
      timeoutMs: options.timeoutMs ?? 60_000,
      env: options.env,
      stdin: options.stdin,
      workdir: options.workdir ?? REPO_DIR,
      maxOutputBytes: options.maxOutputBytes,
    }),
  );
}

/** Like `sh`, but a non-zero exit is an error carrying the command's output. */
export async function shOk(sandbox: Sandbox, command: string, options: Parameters<typeof sh>[2] = {}): Promise<string> {
  const result = await sh(sandbox, command, options);
  if (result.exitCode !== 0) {
    throw new Error(`\`${command}\` exited with ${result.exitCode}${result.timedOut ? ' (timed out)' : ''}: ${(result.stderr || result.stdout).trim().slice(-2000)}`);
  }
  return result.stdout;
}

/**
 * Resolves an agent-supplied path (relative to the repo) to an absolute path inside it, following
 * symlinks. Anything that lands outside the repo, or inside .git, is refused.
 */
export async function confine(sandbox: Sandbox, requested: string): Promise<string> {
  if (typeof requested !== 'string' || requested.length === 0) throw new WorkspaceError('path must be a non-empty string relative to the repository root');
  if (requested.includes('\0')) throw new WorkspaceError('path must not contain NUL bytes');
  const result = await sh(sandbox, 'realpath -m -- "$P"', { env: { P: requested } });
  const resolved = result.stdout.trim();
  if (result.exitCode !== 0 || !resolved) throw new WorkspaceError(`cannot resolve path ${JSON.stringify(requested)}: ${result.stderr.trim()}`);
  const inside = resolved === REPO_DIR || resolved.startsWith(`${REPO_DIR}/`);
  if (!inside) {
    throw new WorkspaceError(`path ${JSON.stringify(requested)} resolves to ${resolved}, which is outside the workspace ${REPO_DIR}; only files inside the repository can be used`);
  }
  if (resolved === `${REPO_DIR}/.git` || resolved.startsWith(`${REPO_DIR}/.git/`)) {
    throw new WorkspaceError(`path ${JSON.stringify(requested)} is inside .git, which the agent may not touch directly; use git commands through run_shell`);
  }
  return resolved;
}

const MAX_READ_BYTES = 256 * 1024;

export async function readWorkspaceFile(sandbox: Sandbox, requested: string): Promise<string> {
  const file = await confine(sandbox, requested);
  const result = await sh(sandbox, 'if [ -d "$F" ]; then echo "is a directory" >&2; exit 2; fi; cat -- "$F"', { env: { F: file }, maxOutputBytes: MAX_READ_BYTES + 1 });
  if (result.exitCode !== 0) throw new WorkspaceError(`cannot read ${requested}: ${result.stderr.trim()}`);
  if (result.truncated) throw new WorkspaceError(`${requested} is larger than ${MAX_READ_BYTES} bytes; read parts of it with run_shell (e.g. sed -n 1,200p)`);
  return result.stdout;
}

export async function writeWorkspaceFile(sandbox: Sandbox, requested: string, content: string): Promise<number> {
  if (typeof content !== 'string') throw new WorkspaceError('content must be a string');
  const file = await confine(sandbox, requested);
  const result = await sh(sandbox, 'mkdir -p -- "$(dirname -- "$F")" && cat > "$F"', { env: { F: file }, stdin: content });
  if (result.exitCode !== 0) throw new WorkspaceError(`cannot write ${requested}: ${result.stderr.trim()}`);
  return Buffer.byteLength(content);
}

/** A copy to or from a container that no longer exists (copies work on stopped ones) is SandboxNotRunningError. */
const containerGone = (sandbox: Sandbox) => (error: { statusCode?: number; message?: string }): never => {
  if (error.statusCode === 404 && /no such container/i.test(error.message ?? '')) throw new SandboxNotRunningError(`sandbox container ${sandbox.container} does not exist: ${error.message}`);
  throw error;
};

/** Copies one file into the sandbox volume (owned by root, readable by the agent). */
export async function putFile(sandbox: Sandbox, directory: string, name: string, content: Buffer): Promise<void> {
  await withReattach(sandbox, async () => {
    const archive = pack();
    archive.entry({ name, mode: 0o644 }, content);
    archive.finalize();
    await sandbox.docker.getContainer(sandbox.container).putArchive(archive as unknown as NodeJS.ReadableStream, { path: directory }).catch(containerGone(sandbox));
  });
}

/** Reads one file out of the sandbox through the Docker API. */
export async function getFile(sandbox: Sandbox, file: string): Promise<Buffer> {
  const stream = await withReattach(sandbox, () => sandbox.docker.getContainer(sandbox.container).getArchive({ path: file }).catch(containerGone(sandbox)));
  return new Promise((resolve, reject) => {
    const unpack = extract();
    const chunks: Buffer[] = [];
    unpack.on('entry', (_header, entry, next) => {
      entry.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
      entry.on('end', next);
      entry.resume();
    });
    unpack.on('finish', () => resolve(Buffer.concat(chunks)));
    unpack.on('error', reject);
    (stream as NodeJS.ReadableStream).pipe(unpack);
  });
}
