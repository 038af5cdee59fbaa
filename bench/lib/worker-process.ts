/**
 * The Cadenza worker as its own OS process (`tsx workers/worker.ts`), wired by environment only, and
 * its memory: tsx runs the worker in a child node process, so the whole process tree is sampled.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../infra/paths.ts';
import { onCleanup } from './common.ts';

export interface WorkerProcessOptions {
  temporalAddress: string;
  taskQueue: string;
  stateDir: string;
  scriptsDir: string;
  /** The scripted model appends one JSON line per request here. */
  requestLog: string;
  readyTimeoutMs?: number;
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
}

const READY_LINE = 'worker polling task queue';
const OUTPUT_KEEP = 64 * 1024;

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
  delete env.CADENZA_NAMESPACE;

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

  const kill = async () => {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    }
    await exit;
    forget();
  };
  const forget = onCleanup(kill);

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
  };
}

/** `root` and all its descendants, from /proc. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(name));
      children.set(ppid, list);
    } catch {
      // The process ended while we looked.
    }
  }
  const tree: number[] = [];
  const queue = [root];
  while (queue.length) {
    const pid = queue.shift()!;
    tree.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return tree;
}

/** VmRSS of one process in bytes (0 if it is gone). */
export function rssBytes(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    return '';
  }
}

export interface RssSummary {
  samples: number;
  /** Sum of VmRSS over the worker's process tree (tsx wrapper + node worker + any git children). */
  peakTreeBytes: number;
  /** The node process that runs the worker (tsx's child). */
  peakWorkerNodeBytes: number;
  /** The tsx launcher process. */
  peakLauncherBytes: number;
  lastTreeBytes: number;
  workerNodeCommand: string;
}

/** Samples the worker's process tree every `intervalMs` (200 ms) until stopped. */
export function sampleRss(rootPid: number, intervalMs = 200) {
  const summary: RssSummary = { samples: 0, peakTreeBytes: 0, peakWorkerNodeBytes: 0, peakLauncherBytes: 0, lastTreeBytes: 0, workerNodeCommand: '' };
  const sample = () => {
    const tree = processTree(rootPid);
    let total = 0;
    let workerNode = 0;
    for (const pid of tree) {
      const rss = rssBytes(pid);
      total += rss;
      if (pid !== rootPid && rss > workerNode && /node/.test(commandOf(pid)) && /workers\/worker\.ts/.test(commandOf(pid))) {
        workerNode = rss;
        if (!summary.workerNodeCommand) summary.workerNodeCommand = commandOf(pid).slice(0, 200);
      }
    }
    const launcher = rssBytes(rootPid);
    if (total === 0) return;
    summary.samples += 1;
    summary.lastTreeBytes = total;
    summary.peakTreeBytes = Math.max(summary.peakTreeBytes, total);
    summary.peakWorkerNodeBytes = Math.max(summary.peakWorkerNodeBytes, workerNode);
    summary.peakLauncherBytes = Math.max(summary.peakLauncherBytes, launcher);
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  return {
    current: () => ({ ...summary }),
    stop(): RssSummary {
      clearInterval(timer);
      sample();
      return { ...summary };
    },
  };
}
