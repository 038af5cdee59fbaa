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
/** Where bundles enter the agent's sandbox: root's, readable by the agent. Cadenza reads nothing back from it. */
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

/**
 * Like `sh`, but a non-zero exit is an error. With `step` (one of Cadenza's own steps) the error is
 * one line: the step, the exit and the last thing the command said; without, the command and its output.
 */
export async function shOk(sandbox: Sandbox, command: string, options: Parameters<typeof sh>[2] & { step?: string } = {}): Promise<string> {
  const result = await sh(sandbox, command, options);
  if (result.exitCode !== 0) {
    const said = (result.stderr || result.stdout).trim();
    const how = `exited with ${result.exitCode}${result.timedOut ? ' (timed out)' : ''}`;
    if (options.step) throw new Error(`${options.step} ${how}: ${said.split('\n').filter(Boolean).at(-1)?.slice(0, 300) ?? 'no output'}`);
    throw new Error(`\`${command}\` ${how}: ${said.slice(-2000)}`);
  }
  return result.stdout;
}

function checkRequested(requested: string) {
  if (typeof requested !== 'string' || requested.length === 0) throw new WorkspaceError('path must be a non-empty string relative to the repository root');
  if (requested.includes('\0')) throw new WorkspaceError('path must not contain NUL bytes');
}

/** Exit codes of the confinement prelude; no command the agent tools run exits with these. */
const OUTSIDE = 90;
const IN_GIT = 91;
const UNRESOLVABLE = 92;
/** Resolves $P (relative to the repo, following symlinks) into $F, or exits saying why it may not be used. */
const CONFINE_PRELUDE = [
  `F=$(realpath -m -- "$P") && [ -n "$F" ] || exit ${UNRESOLVABLE}`,
  `case "$F" in ${REPO_DIR}/.git|${REPO_DIR}/.git/*) exit ${IN_GIT};; ${REPO_DIR}|${REPO_DIR}/*) ;; *) echo "$F" >&2; exit ${OUTSIDE};; esac`,
].join('\n');

/**
 * Runs `command` on an agent-supplied path, in one exec with the check that confines it: the command
 * sees the path resolved (symlinks followed) in $F. A path that lands outside the repository, or
 * inside .git, is refused before the command runs.
 */
export async function inWorkspace(sandbox: Sandbox, requested: string, command: string, options: { env?: Record<string, string>; stdin?: string; maxOutputBytes?: number } = {}): Promise<ExecResult> {
  checkRequested(requested);
  const result = await sh(sandbox, `${CONFINE_PRELUDE}\n${command}`, { ...options, env: { ...options.env, P: requested } });
  const quoted = JSON.stringify(requested);
  if (result.exitCode === OUTSIDE) {
    throw new WorkspaceError(`path ${quoted} resolves to ${result.stderr.trim()}, which is outside the workspace ${REPO_DIR}; only files inside the repository can be used`);
  }
  if (result.exitCode === IN_GIT) throw new WorkspaceError(`path ${quoted} is inside .git, which the agent may not touch directly; use git commands through run_shell`);
  if (result.exitCode === UNRESOLVABLE) throw new WorkspaceError(`cannot resolve path ${quoted}: ${result.stderr.trim()}`);
  return result;
}

const MAX_READ_BYTES = 256 * 1024;

export async function readWorkspaceFile(sandbox: Sandbox, requested: string): Promise<string> {
  const result = await inWorkspace(sandbox, requested, 'if [ -d "$F" ]; then echo "is a directory" >&2; exit 2; fi; cat -- "$F"', { maxOutputBytes: MAX_READ_BYTES + 1 });
  if (result.exitCode !== 0) throw new WorkspaceError(`cannot read ${requested}: ${result.stderr.trim()}`);
  if (result.truncated) throw new WorkspaceError(`${requested} is larger than ${MAX_READ_BYTES} bytes; read parts of it with run_shell (e.g. sed -n 1,200p)`);
  return result.stdout;
}

export async function writeWorkspaceFile(sandbox: Sandbox, requested: string, content: string): Promise<number> {
  if (typeof content !== 'string') throw new WorkspaceError('content must be a string');
  const result = await inWorkspace(sandbox, requested, 'mkdir -p -- "$(dirname -- "$F")" && cat > "$F"', { stdin: content });
  if (result.exitCode !== 0) throw new WorkspaceError(`cannot write ${requested}: ${result.stderr.trim()}`);
  return Buffer.byteLength(content);
}

/** A copy to or from a container that no longer exists (copies work on stopped ones) is SandboxNotRunningError. */
const containerGone = (sandbox: Sandbox) => (error: { statusCode?: number; message?: string }): never => {
  // The engine says "no such container - Could not find the file" for a file that is missing in a container that exists.
  if (error.statusCode === 404 && /no such container/i.test(error.message ?? '') && !/could not find the file/i.test(error.message ?? '')) throw new SandboxNotRunningError(`sandbox container ${sandbox.container} does not exist: ${error.message}`);
  throw error;
};

/** Copies one file into `directory` of the sandbox (both owned by root, readable by the agent, not writable). */
export async function putFile(sandbox: Sandbox, directory: string, name: string, content: Buffer): Promise<void> {
  await withReattach(sandbox, async () => {
    const parent = directory.slice(0, directory.lastIndexOf('/')) || '/';
    const folder = directory.slice(directory.lastIndexOf('/') + 1);
    const archive = pack();
    archive.entry({ name: folder, type: 'directory', mode: 0o755, uid: 0, gid: 0 });
    archive.entry({ name: `${folder}/${name}`, mode: 0o644, uid: 0, gid: 0 }, content);
    archive.finalize();
    await sandbox.docker.getContainer(sandbox.container).putArchive(archive as unknown as NodeJS.ReadableStream, { path: parent }).catch(containerGone(sandbox));
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
