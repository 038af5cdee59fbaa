/**
 * The Cadenza worker as a separate OS process (`tsx workers/worker.ts`), wired to a test World by
 * environment only, as an operator would run it. Chaos tests kill it with SIGKILL and start another.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { projectRoot } from '../../infra/paths.ts';

export interface WorkerProcessOptions {
  temporalAddress: string;
  taskQueue: string;
  stateDir: string;
  scriptsDir: string;
  /** The scripted model appends one JSON line per request here. */
  requestLog: string;
  /** How long to wait for the worker to say it is polling. */
  readyTimeoutMs?: number;
}

export interface WorkerProcess {
  readonly pid: number;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** True once the process has exited (for whatever reason). */
  readonly exited: boolean;
  /** SIGKILL to the whole process group (tsx and the node child it runs), then waits for the exit. */
  kill(): Promise<void>;
}

const READY_LINE = 'worker polling task queue';

/** Starts a worker process and resolves once it polls the task queue. */
export async function startWorkerProcess(options: WorkerProcessOptions): Promise<WorkerProcess> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CADENZA_TEMPORAL_ADDRESS: options.temporalAddress,
    CADENZA_TASK_QUEUE: options.taskQueue,
    CADENZA_STATE_DIR: options.stateDir,
    CADENZA_SCRIPTS_DIR: options.scriptsDir,
    CADENZA_MODEL_REQUEST_LOG: options.requestLog,
  };
  // No key: the worker starts its own scripted model (and logs its requests).
  delete env.OPENAI_API_KEY;
  delete env.OPENAI_BASE_URL;
  delete env.CADENZA_NAMESPACE;

  const child: ChildProcess = spawn(path.join(projectRoot, 'node_modules', '.bin', 'tsx'), ['workers/worker.ts'], {
    cwd: projectRoot,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => {
    exited = true;
    resolve();
  }));
  child.stdout?.on('data', (chunk) => (output += chunk));
  child.stderr?.on('data', (chunk) => (output += chunk));
  if (child.pid === undefined) throw new Error('the worker process did not start');
  const pid = child.pid;

  const kill = async () => {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    }
    await exit;
  };

  const ready = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), options.readyTimeoutMs ?? 60_000);
    const check = () => {
      if (output.includes(READY_LINE)) {
        clearTimeout(timer);
        resolve(true);
      }
    };
    child.stdout?.on('data', check);
    child.stderr?.on('data', check);
    void exit.then(() => {
      clearTimeout(timer);
      resolve(output.includes(READY_LINE));
    });
  });
  if (!ready || exited) {
    await kill();
    throw new Error(`the worker process did not start polling:\n${output}`);
  }
  return {
    pid,
    output: () => output,
    get exited() {
      return exited;
    },
    kill,
  };
}
