/**
 * Running a command inside a sandbox: always with a timeout (enforced inside the container by
 * coreutils `timeout`, which kills the whole process group, and by a host-side deadline) and an
 * output cap that keeps the tail, where failures usually are.
 */
import { PassThrough } from 'node:stream';
import type Docker from 'dockerode';
import { WORKSPACE, engineAddress, engineUnreachable } from './container.ts';

export interface ExecOptions {
  /** Shell command, run by `sh -c`. */
  command: string;
  timeoutMs: number;
  /** Per stream; the tail is kept. */
  maxOutputBytes?: number;
  user?: string;
  workdir?: string;
  env?: Record<string, string>;
  stdin?: Buffer | string;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  truncated: boolean;
  durationMs: number;
}

const TIMEOUT_EXIT = 124;

/**
 * The command could not start because the sandbox container is stopped or gone (e.g. the Docker
 * engine restarted). Nothing ran, so it is safe to re-attach the sandbox and run it again.
 */
export class SandboxNotRunningError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SandboxNotRunningError';
  }
}

/** The error of a failed engine call, saying what it was for and, when the engine is away, that it is. */
function engineError(docker: Docker, containerName: string, doing: string, error: unknown): Error {
  const message = (error as Error).message ?? String(error);
  if (engineUnreachable(error)) return new Error(`the Docker engine at ${engineAddress(docker)} did not answer while ${doing} in sandbox ${containerName}: ${message}`, { cause: error });
  return error as Error;
}

class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  total = 0;
  constructor(private readonly cap: number) {}
  push(chunk: Buffer) {
    this.total += chunk.length;
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size > this.cap && this.chunks.length > 1) this.size -= this.chunks.shift()!.length;
  }
  text(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.cap)).toString('utf8');
  }
}

export async function execInSandbox(docker: Docker, containerName: string, options: ExecOptions): Promise<ExecResult> {
  const cap = options.maxOutputBytes ?? 64 * 1024;
  const seconds = Math.max(1, Math.ceil(options.timeoutMs / 1000));
  const started = performance.now();
  const container = docker.getContainer(containerName);
  const exec = await container
    .exec({
      Cmd: ['timeout', '--kill-after=2', String(seconds), 'sh', '-c', options.command],
      AttachStdout: true,
      AttachStderr: true,
      AttachStdin: options.stdin !== undefined,
      User: options.user,
      WorkingDir: options.workdir ?? WORKSPACE,
      Env: Object.entries(options.env ?? {}).map(([key, value]) => `${key}=${value}`),
    })
    .catch((error: { statusCode?: number; message?: string }) => {
      const text = error.message ?? '';
      if (error.statusCode === 409 && /not running|is paused|is restarting/i.test(text)) throw new SandboxNotRunningError(`sandbox container ${containerName} is not running: ${text}`);
      if (error.statusCode === 404 && /no such container/i.test(text)) throw new SandboxNotRunningError(`sandbox container ${containerName} does not exist: ${text}`);
      throw engineError(docker, containerName, 'starting a command', error);
    });
  const stream = await exec.start({ hijack: true, stdin: options.stdin !== undefined }).catch((error: unknown) => {
    throw engineError(docker, containerName, 'starting a command', error);
  });
  const stdout = new TailBuffer(cap);
  const stderr = new TailBuffer(cap);
  const outSink = new PassThrough();
  const errSink = new PassThrough();
  outSink.on('data', (chunk: Buffer) => stdout.push(chunk));
  errSink.on('data', (chunk: Buffer) => stderr.push(chunk));
  docker.modem.demuxStream(stream, outSink, errSink);
  if (options.stdin !== undefined) {
    stream.write(options.stdin);
    // Half-close so the command sees end of input while we keep reading its output.
    (stream as unknown as { end(): void }).end();
  }

  let hostDeadlineHit = false;
  await new Promise<void>((resolve) => {
    // Backstop in case the engine never closes the stream: the in-container timeout plus grace.
    const timer = setTimeout(() => {
      hostDeadlineHit = true;
      stream.destroy();
      resolve();
    }, seconds * 1000 + 5000);
    stream.on('end', () => { clearTimeout(timer); resolve(); });
    stream.on('close', () => { clearTimeout(timer); resolve(); });
    stream.on('error', () => { clearTimeout(timer); resolve(); });
  });
  // The engine going away mid-command (a restart) loses the exec and with it the exit code.
  const info = hostDeadlineHit
    ? undefined
    : await exec.inspect().catch((error: Error) => {
        throw new Error(`the result of a command in sandbox ${containerName} was lost (did the Docker engine at ${engineAddress(docker)} restart while it ran?): ${error.message}`, { cause: error });
      });
  const exitCode = info?.ExitCode ?? TIMEOUT_EXIT;
  const durationMs = Math.round(performance.now() - started);
  // 124: coreutils timeout fired; 137 after the deadline: it had to SIGKILL (--kill-after).
  const timedOut = hostDeadlineHit || exitCode === TIMEOUT_EXIT || (exitCode === 137 && durationMs >= options.timeoutMs);
  return {
    exitCode,
    stdout: stdout.text(),
    stderr: stderr.text() + (timedOut ? `\n[cadenza] command timed out after ${options.timeoutMs} ms and was killed\n` : ''),
    timedOut,
    truncated: stdout.total > cap || stderr.total > cap,
    durationMs,
  };
}
