/**
 * Benchmark 2, time to first agent turn: from the workflow start call to the first request the
 * scripted model receives for the issue. Reuses the overhead benchmark's runs when both run together.
 */
import { dockerClient } from '../infra/docker.ts';
import { envInt, fmtMs, median, percentile, table, writeResult, type BenchContext, type BenchOutcome } from './lib/common.ts';
import { runIssue, withInProcessWorker, type IssueRun } from './lib/inprocess.ts';
import { sweepSandboxes } from './lib/sandboxes.ts';
import { BenchWorld, functionName, trivialFiles } from './lib/world.ts';
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

  // The same measure for the agent CLI runtimes: the CLI starts in the sandbox, and its first model
  // request reaches the scripted model through the relay's model gateway.
  const perRuntime: Array<{ runtime: string; values: number[] }> = [{ runtime: 'cadenza', values }];
  for (const runtime of ['codex', 'claude-code'] as const) perRuntime.push({ runtime, values: await runtimeFirstTurns(ctx, runtime) });
  console.log('\n== first-turn per agent runtime: workflow start call -> first model request ==');
  console.log(table(['runtime', 'runs', 'median', 'p95', 'min', 'max'], perRuntime.map(({ runtime, values: measured }) => [
    runtime, String(measured.length), fmtMs(median(measured)), fmtMs(percentile(measured, 95)), fmtMs(Math.min(...measured)), fmtMs(Math.max(...measured)),
  ])));
  writeResult('first-turn-runtimes', { measuredAt: new Date().toISOString(), runtimes: perRuntime });
  return {
    targets: [
      { benchmark: 'first-turn', target: 'median < 2 s', measured: `median ${fmtMs(med)}, p95 ${fmtMs(p95)}`, pass: med < 2000 },
      ...perRuntime.slice(1).map(({ runtime, values: measured }) => ({
        benchmark: 'first-turn', target: `${runtime}: median < 5 s`, measured: `median ${fmtMs(median(measured))}, p95 ${fmtMs(percentile(measured, 95))}`, pass: median(measured) < 5000,
      })),
    ],
  };
}

/** First-turn times of `runtime` on trivial issues (a shell command writes the function and its test). */
async function runtimeFirstTurns(ctx: BenchContext, runtime: 'codex' | 'claude-code'): Promise<number[]> {
  const warmup = envInt('BENCH_WARMUP', 1, 0);
  const world = await BenchWorld.create(`first-turn-${runtime}`, [`agent: { max_turns: 12, runtime: ${runtime} }`, ...(runtime === 'claude-code' ? ['model: { name: claude-sonnet-4-5 }'] : [])]);
  const tool = runtime === 'codex' ? 'exec_command' : 'Bash';
  const measured: number[] = [];
  try {
    await withInProcessWorker(ctx.temporalAddress, world, `${ctx.prefix}-${runtime}`, async (worker) => {
      for (let index = 0; index < warmup + ctx.runs; index++) {
        const identifier = `${ctx.prefix}-${runtime === 'codex' ? 'x' : 'c'}${index}`;
        const write = trivialFiles(identifier).map((file) => `mkdir -p "$(dirname ${file.path})" && cat > ${file.path} <<'EOF'\n${file.content}EOF`).join('\n');
        const command = runtime === 'codex' ? { cmd: write, tty: false } : { command: write };
        await world.addIssue(identifier, `Bench ${runtime} ${index}`, [{ tool_calls: [{ name: tool, arguments: command }] }, { say: `Added ${functionName(identifier)}() with a test.` }]);
        const run = await runIssue(worker, world, world.contract, identifier);
        if (run.result?.phase !== 'Done') throw new Error(`${identifier} ended ${run.result?.phase ?? 'with an error'}: ${run.error ?? ''}`);
        ctx.log(`  ${runtime} ${identifier}: ${fmtMs(run.wallMs)} (first turn ${fmtMs(run.firstTurnMs ?? NaN)})`);
        if (index >= warmup && run.firstTurnMs !== null) measured.push(run.firstTurnMs);
      }
    });
  } finally {
    await sweepSandboxes(dockerClient(), ctx.prefix).catch(() => undefined);
    world.close();
  }
  return measured;
}
