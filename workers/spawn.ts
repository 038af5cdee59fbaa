/**
 * The Cadenza worker as its own OS process (`tsx workers/worker.ts`), wired by environment only, as an
 * operator runs it. Chaos tests kill it with SIGKILL and start another; benchmarks time and measure it.
 * Without OPENAI_API_KEY in its environment it runs the scripted model and logs each request.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { projectRoot } from '../infra/paths.ts';

export interface WorkerProcessOptions {
  temporalAddress: string;
  taskQueue: string;
  stateDir: string;
  scriptsDir: string;
  /** The scripted model appends one JSON line per request here. */
  requestLog: string;
  readyTimeoutMs?: number;
  /** Set last, over the variables above: e.g. DOCKER_HOST for another Docker engine. */
  env?: NodeJS.ProcessEnv;
}

export interface WorkerProcess {
  pid: number;
  spawnedAt: number;
  /** When it said it polls the task queue (epoch ms). */
  readyAt: number;
  output(): string;
  readonly exited: boolean;
  /** SIGKILL to the whole process group (tsx and the node child); resolves once it exited. */
  kill(): Promise<void>;
  /** SIGSTOP / SIGCONT to the whole process group: a worker frozen mid-run (a long GC pause, a suspended VM). */
  pause(): void;
  resume(): void;
}

const READY_LINE = 'worker polling task queue';
const OUTPUT_KEEP = 64 * 1024;

/** Starts a worker process and resolves once it polls its task queue (killing it if it never does). */
export async function startWorkerProcess(options: WorkerProcessOptions): Promise<WorkerProcess> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CADENZA_TEMPORAL_ADDRESS: options.temporalAddress,
    CADENZA_TASK_QUEUE: options.taskQueue,
    CADENZA_STATE_DIR: options.stateDir,
    CADENZA_SCRIPTS_DIR: options.scriptsDir,
    CADENZA_MODEL_REQUEST_LOG: options.requestLog,
  };
  delete env.OPENAI_API_KEY;
  delete env.OPENAI_BASE_URL;
  // The test or benchmark server's plaintext default namespace, whatever this process was given.
  for (const name of ['CADENZA_NAMESPACE', 'CADENZA_TEMPORAL_TLS', 'CADENZA_TEMPORAL_TLS_CERT', 'CADENZA_TEMPORAL_TLS_KEY', 'CADENZA_TEMPORAL_TLS_CA', 'CADENZA_TEMPORAL_TLS_SERVER_NAME', 'CADENZA_TEMPORAL_API_KEY']) delete env[name];
  Object.assign(env, options.env);

  const spawnedAt = Date.now();
  const child = spawn(path.join(projectRoot, 'node_modules', '.bin', 'tsx'), ['workers/worker.ts'], {
    cwd: projectRoot,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error('the worker process did not start');
  const pid = child.pid;
  let output = '';
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => {
    exited = true;
    resolve();
  }));
  const append = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-OUTPUT_KEEP);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);

  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-pid, signal);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    }
  };
  const kill = async () => {
    signalGroup('SIGKILL');
    await exit;
  };

  let readyAt = 0;
  const ready = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), options.readyTimeoutMs ?? 120_000);
    const check = () => {
      if (!readyAt && output.includes(READY_LINE)) {
        readyAt = Date.now();
        clearTimeout(timer);
        resolve(true);
      }
    };
    child.stdout?.on('data', check);
    child.stderr?.on('data', check);
    void exit.then(() => {
      clearTimeout(timer);
      resolve(false);
    });
  });
  if (!ready) {
    await kill();
    throw new Error(`the worker process did not start polling:\n${output.slice(-4000)}`);
  }
  return {
    pid,
    spawnedAt,
    readyAt,
    output: () => output,
    get exited() {
      return exited;
    },
    kill,
    pause: () => signalGroup('SIGSTOP'),
    resume: () => signalGroup('SIGCONT'),
  };
}
