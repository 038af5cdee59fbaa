/**
 * The worker process for benchmarks (the shared `workers/spawn.ts`, killed on Ctrl-C too) and its
 * memory: tsx runs the worker in a child node process, so the whole process tree is sampled.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { startWorkerProcess as spawnWorker, type WorkerProcess, type WorkerProcessOptions } from '../../workers/spawn.ts';
import { onCleanup } from './common.ts';

export type { WorkerProcess } from '../../workers/spawn.ts';

export async function startWorkerProcess(options: WorkerProcessOptions): Promise<WorkerProcess> {
  const worker = await spawnWorker(options);
  const forget = onCleanup(() => worker.kill());
  return {
    ...worker,
    get exited() {
      return worker.exited;
    },
    kill: async () => {
      await worker.kill();
      forget();
    },
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
