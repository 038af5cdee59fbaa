/**
 * Benchmark 3, concurrency: 1, 10, 25 and 50 trivial issues started at once on ONE worker process
 * (`tsx workers/worker.ts`, a fresh one per level). Wall time, issues per minute, the worker's peak
 * memory (VmRSS summed over its process tree, sampled every 200 ms) and the most sandboxes alive at once.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { clientOf, connectClient, plaintextSettings } from '../client/connection.ts';
import { dockerClient } from '../infra/docker.ts';
import type { Contract } from '../lib/contract/index.ts';
import { startIssue } from '../client/issues.ts';
import type { Issue } from '../lib/tracker/types.ts';
import type { IssueWorkflowResult, Timing } from '../workflows/definitions.ts';
import { envInt, envList, fmtMiB, fmtMs, fmtS, mean, median, percentile, sleep, table, writeResult, type BenchContext, type BenchOutcome } from './lib/common.ts';
import { sumByLabel, timeline } from './lib/history.ts';
import { sweepSandboxes, watchSandboxes } from './lib/sandboxes.ts';
import { sampleRss, startWorkerProcess, type RssSummary } from './lib/worker-process.ts';
import { BenchWorld, trivialScript } from './lib/world.ts';

const GIB = 1024 * 1024 * 1024;
/** Production retry defaults except a 1 s first retry, so a transient failure under load costs little. */
const TIMING: Timing = { retryInitialIntervalMs: 1000 };

interface LevelResult {
  level: number;
  done: number;
  failed: Array<{ identifier: string; phase: string; error?: string }>;
  wallMs: number;
  issuesPerMinute: number;
  perIssueMs: { median: number; max: number };
  firstTurnMs: { median: number; p95: number; max: number };
  workerReadyMs: number;
  idleTreeBytes: number;
  rss: RssSummary;
  maxSandboxes: number;
  sandboxSamples: number;
  /** Mean per issue, from each run's history. */
  breakdown: Array<{ label: string; meanMs: number }>;
}

function firstRequests(file: string): Map<string, number> {
  const first = new Map<string, number>();
  if (!existsSync(file)) return first;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const entry = JSON.parse(line) as { identifier: string | null; at: string };
    if (entry.identifier && !first.has(entry.identifier)) first.set(entry.identifier, Date.parse(entry.at));
  }
  return first;
}

export async function concurrency(ctx: BenchContext): Promise<BenchOutcome> {
  const levels = envList('BENCH_LEVELS', [1, 10, 25, 50]);
  const levelTimeoutMs = envInt('BENCH_LEVEL_TIMEOUT_MS', 20 * 60_000);
  const sharedRemote = process.env.BENCH_SHARED_REMOTE === '1';
  const docker = dockerClient();
  const world = await BenchWorld.create('concurrency', ['sandbox: { image: cadenza-sandbox:latest, cpus: 1, memory_mb: 256, pids_limit: 256 }']);
  const temporal = plaintextSettings(ctx.temporalAddress);
  const connection = await connectClient(temporal);
  const client = clientOf(connection, temporal);
  const results: LevelResult[] = [];
  ctx.log(`concurrency: levels ${levels.join(', ')}; ${sharedRemote ? 'all issues land on ONE shared remote' : 'each issue lands on its own bare remote'}; sandbox memory_mb 256`);
  try {
    for (const level of levels) {
      const tag = `c${level}`;
      const taskQueue = `${ctx.prefix}-${tag}`;
      const requestLog = path.join(world.root, `${tag}-requests.jsonl`);
      const issues: Array<{ issue: Issue; contract: Contract }> = [];
      for (let index = 0; index < level; index++) {
        const identifier = `${ctx.prefix}-${tag}-${index}`;
        const remote = sharedRemote ? path.join(world.root, 'remote.git') : await world.createRemote(`${tag}-${index}`);
        issues.push({ issue: await world.addIssue(identifier, `Bench concurrency ${level} #${index}`, trivialScript(identifier)), contract: world.contractWithRemote(remote) });
      }
      const worker = await startWorkerProcess({ temporalAddress: ctx.temporalAddress, taskQueue, stateDir: path.join(world.root, `state-${tag}`), scriptsDir: world.scripts, requestLog });
      try {
        await sleep(1000);
        const rss = sampleRss(worker.pid, 200);
        const idleTreeBytes = rss.current().lastTreeBytes;
        const sandboxes = watchSandboxes(docker, `${ctx.prefix}-${tag}-`, 500);
        ctx.log(`  level ${level}: worker ${worker.pid} ready in ${fmtMs(worker.readyAt - worker.spawnedAt)}, idle ${fmtMiB(idleTreeBytes)}; starting ${level} issues`);

        const startedAt = Date.now();
        const deadline = startedAt + levelTimeoutMs;
        const handles = await Promise.all(issues.map(({ issue, contract }) => startIssue(client, { issue, contract, taskQueue, timing: TIMING })));
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`not finished within BENCH_LEVEL_TIMEOUT_MS ${levelTimeoutMs}`)), deadline - Date.now());
        });
        timedOut.catch(() => undefined);
        const outcomes = await Promise.all(handles.map(async (handle, index) => {
          const identifier = issues[index]!.issue.identifier;
          try {
            const result = (await Promise.race([handle.result(), timedOut])) as IssueWorkflowResult;
            return { identifier, handle, phase: result.phase, at: Date.now() };
          } catch (error) {
            await handle.terminate('benchmark level timed out').catch(() => undefined);
            return { identifier, handle, phase: 'error', error: (error as Error).message, at: Date.now() };
          }
        }));
        clearTimeout(timer);
        const finishedAt = Math.max(...outcomes.map((outcome) => outcome.at));
        const rssSummary = rss.stop();
        const boxes = await sandboxes.stop();

        const wallMs = finishedAt - startedAt;
        const done = outcomes.filter((outcome) => outcome.phase === 'Done').length;
        const firsts = firstRequests(requestLog);
        const firstTurns = issues.flatMap(({ issue }) => (firsts.has(issue.identifier) ? [firsts.get(issue.identifier)! - startedAt] : []));
        const perIssue = outcomes.map((outcome) => outcome.at - startedAt);

        const labels = new Map<string, number[]>();
        for (const outcome of outcomes) {
          const history = await outcome.handle.fetchHistory().catch(() => null);
          if (!history) continue;
          const line = timeline(history, startedAt, outcome.at);
          for (const [label, ms] of sumByLabel(line.segments, startedAt, outcome.at).ms) labels.set(label, [...(labels.get(label) ?? []), ms]);
        }
        const result: LevelResult = {
          level,
          done,
          failed: outcomes.filter((outcome) => outcome.phase !== 'Done').map(({ identifier, phase, error }) => ({ identifier, phase, error })),
          wallMs,
          issuesPerMinute: done / (wallMs / 60_000),
          perIssueMs: { median: median(perIssue), max: Math.max(...perIssue) },
          firstTurnMs: { median: median(firstTurns), p95: percentile(firstTurns, 95), max: Math.max(...firstTurns) },
          workerReadyMs: worker.readyAt - worker.spawnedAt,
          idleTreeBytes,
          rss: rssSummary,
          maxSandboxes: boxes.max,
          sandboxSamples: boxes.samples,
          breakdown: [...labels.entries()].map(([label, values]) => ({ label, meanMs: mean(values) })).sort((a, b) => b.meanMs - a.meanMs),
        };
        results.push(result);
        ctx.log(`  level ${level}: ${done}/${level} Done in ${fmtS(wallMs)}, ${result.issuesPerMinute.toFixed(1)} issues/min, worker peak ${fmtMiB(rssSummary.peakTreeBytes)}, ${boxes.max} sandboxes at once`);
      } finally {
        await worker.kill();
        await sweepSandboxes(docker, `${ctx.prefix}-${tag}-`).catch(() => undefined);
      }
    }

    console.log('\n== concurrency: N issues at once on one worker process (sandbox memory_mb 256) ==');
    console.log(table(
      ['issues', 'Done', 'wall', 'issues/min', 'per issue median', 'per issue max', 'first turn median', 'first turn p95', 'worker idle', 'worker peak (tree)', 'worker node peak', 'sandboxes at once'],
      results.map((r) => [
        r.level, `${r.done}/${r.level}`, fmtS(r.wallMs), r.issuesPerMinute.toFixed(1), fmtS(r.perIssueMs.median), fmtS(r.perIssueMs.max),
        fmtS(r.firstTurnMs.median), fmtS(r.firstTurnMs.p95), fmtMiB(r.idleTreeBytes), fmtMiB(r.rss.peakTreeBytes), fmtMiB(r.rss.peakWorkerNodeBytes), r.maxSandboxes,
      ]),
    ));
    const labels = [...new Set(results.flatMap((r) => r.breakdown.filter((row) => row.meanMs >= 50).map((row) => row.label)))];
    console.log('\nWhere an issue\'s time goes at each level (mean per issue, from history):');
    console.log(table(['segment', ...results.map((r) => `${r.level} issues`)], labels.map((label) => [
      label, ...results.map((r) => fmtMs(r.breakdown.find((row) => row.label === label)?.meanMs ?? 0)),
    ])));
    for (const r of results) for (const failure of r.failed) console.log(`  level ${r.level}: ${failure.identifier} ended ${failure.phase}${failure.error ? `: ${failure.error}` : ''}`);
    const file = writeResult('concurrency', { measuredAt: new Date().toISOString(), sharedRemote, sandboxMemoryMb: 256, timing: TIMING, levels: results });
    ctx.log(`concurrency: wrote ${file}`);

    const top = results.find((r) => r.level === 50);
    const target = top
      ? { measured: `${top.done}/50 Done, worker peak ${fmtMiB(top.rss.peakTreeBytes)} (tree)`, pass: top.done === 50 && top.rss.peakTreeBytes < GIB }
      : { measured: 'level 50 not run (BENCH_LEVELS)', pass: null };
    return { targets: [{ benchmark: 'concurrency', target: '50 concurrent issues Done, worker peak < 1 GiB', ...target }] };
  } finally {
    await sweepSandboxes(docker, ctx.prefix).catch(() => undefined);
    await connection.close();
    world.close();
  }
}
