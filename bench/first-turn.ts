/**
 * Benchmark 2, time to first agent turn: from the workflow start call to the first request the
 * scripted model receives for the issue. Reuses the overhead benchmark's runs when both run together.
 */
import { dockerClient } from '../infra/docker.ts';
import { envInt, fmtMs, median, percentile, table, writeResult, type BenchContext, type BenchOutcome } from './lib/common.ts';
import type { IssueRun } from './lib/inprocess.ts';
import { sweepSandboxes } from './lib/sandboxes.ts';
import { BenchWorld } from './lib/world.ts';
import { breakdown, cadenzaRuns } from './overhead.ts';

export async function firstTurn(ctx: BenchContext): Promise<BenchOutcome> {
  let runs = ctx.shared.get('cadenzaRuns') as IssueRun[] | undefined;
  const reused = runs !== undefined;
  if (!runs) {
    const warmup = envInt('BENCH_WARMUP', 1, 0);
    const world = await BenchWorld.create('first-turn');
    try {
      ctx.log(`first-turn: ${warmup} warm-up + ${ctx.runs} measured runs`);
      runs = (await cadenzaRuns(ctx, world, warmup + ctx.runs, 'f')).slice(warmup);
    } finally {
      await sweepSandboxes(dockerClient(), ctx.prefix).catch(() => undefined);
      world.close();
    }
  }
  const values = runs.map((run) => run.firstTurnMs).filter((value): value is number => value !== null);
  const fromServerStart = runs.flatMap((run) => (run.firstRequestAt === null ? [] : [run.firstRequestAt - run.timeline.startedAt]));
  const med = median(values);
  const p95 = percentile(values, 95);
  const rows = breakdown(runs, (run) => [run.startedAt, run.firstRequestAt ?? run.startedAt]).sort((a, b) => b.meanMs - a.meanMs);

  console.log(`\n== first-turn: workflow start call -> first model request (${values.length} runs${reused ? ', the overhead runs' : ''}) ==`);
  console.log(table(['', 'median', 'p95', 'min', 'max'], [
    ['from the client start call', fmtMs(med), fmtMs(p95), fmtMs(Math.min(...values)), fmtMs(Math.max(...values))],
    ['from WorkflowExecutionStarted', fmtMs(median(fromServerStart)), fmtMs(percentile(fromServerStart, 95)), fmtMs(Math.min(...fromServerStart)), fmtMs(Math.max(...fromServerStart))],
  ]));
  console.log('\nWhat happens before the first turn (mean per run):');
  console.log(table(['segment', 'count', 'mean'], rows.filter((row) => row.meanMs >= 0.5).map((row) => [row.label, row.count.toFixed(0), fmtMs(row.meanMs)])));
  const file = writeResult('first-turn', {
    measuredAt: new Date().toISOString(),
    runs: values.length,
    reusedOverheadRuns: reused,
    medianMs: med,
    p95Ms: p95,
    valuesMs: values,
    fromWorkflowStartedMs: fromServerStart,
    breakdown: rows,
  });
  ctx.log(`first-turn: wrote ${file}`);
  return { targets: [{ benchmark: 'first-turn', target: 'median < 2 s', measured: `median ${fmtMs(med)}, p95 ${fmtMs(p95)}`, pass: med < 2000 }] };
}
