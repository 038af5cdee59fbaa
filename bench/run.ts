/**
 * `npm run bench [-- overhead first-turn concurrency resume egress hosts]`: Cadenza's benchmarks against a
 * Temporal dev server started here (free ports, throw-away database) and the real Docker engine.
 * Each prints a table and writes bench/results/<name>.json; the end prints every target, pass or fail.
 *
 * Knobs: BENCH_RUNS (5) measured runs per benchmark, BENCH_WARMUP (1), BENCH_LEVELS (1,10,25,50),
 * BENCH_LEVEL_TIMEOUT_MS, BENCH_SHARED_REMOTE=1, BENCH_RESUME_RUNS, BENCH_HEARTBEAT_MS (5000),
 * BENCH_RESUME_RETRY_MS (300).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { DefaultLogger, Runtime, makeTelemetryFilterString } from '@temporalio/worker';
import { dockerClient, ensureDockerEngine } from '../infra/docker.ts';
import { ensureSandboxImage } from '../infra/image.ts';
import { ensureTemporalCli, freePort, startDevServer } from '../infra/temporal.ts';
import { concurrency } from './concurrency.ts';
import { egress } from './egress.ts';
import { firstTurn } from './first-turn.ts';
import { hosts } from './hosts.ts';
import { envInt, fmtS, onCleanup, runCleanups, table, writeResult, type BenchContext, type BenchOutcome, type Target } from './lib/common.ts';
import { sweepSandboxes } from './lib/sandboxes.ts';
import { overhead } from './overhead.ts';
import { resume } from './resume.ts';

const BENCHMARKS: Record<string, (ctx: BenchContext) => Promise<BenchOutcome>> = {
  overhead,
  'first-turn': firstTurn,
  concurrency,
  resume,
  egress,
  hosts,
};

const log = (line: string) => console.error(`[bench] ${line}`);

async function main(): Promise<number> {
  const requested = process.argv.slice(2).filter((arg) => arg !== '--');
  const unknown = requested.filter((name) => !(name in BENCHMARKS));
  if (unknown.length) {
    console.error(`unknown benchmark ${unknown.join(', ')}; choose from: ${Object.keys(BENCHMARKS).join(', ')} (none = all)`);
    return 2;
  }
  const names = requested.length ? Object.keys(BENCHMARKS).filter((name) => requested.includes(name)) : Object.keys(BENCHMARKS);

  Runtime.install({
    logger: new DefaultLogger('WARN'),
    telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'WARN' }) } },
    shutdownSignals: [],
  });
  let interrupted = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      interrupted = true;
      log(`${signal}: cleaning up (worker processes, sandboxes, the Temporal server)`);
      void runCleanups().finally(() => process.exit(130));
    });
  }

  const started = Date.now();
  log(`machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 1024 ** 3).toFixed(1)} GiB; node ${process.version}`);
  await ensureDockerEngine();
  const image = await ensureSandboxImage();
  const cli = await ensureTemporalCli();
  const dir = mkdtempSync(path.join(tmpdir(), 'cadenza-bench-temporal-'));
  const server = await startDevServer({ cli: cli.path, dir, port: await freePort(), uiPort: await freePort() });
  const forgetServer = onCleanup(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const prefix = `B${Date.now().toString(36).toUpperCase()}`;
  const docker = dockerClient();
  const forgetSweep = onCleanup(async () => void (await sweepSandboxes(docker, prefix)));
  log(`Temporal dev server ${server.address} (${cli.source}, ${cli.version.split('\n')[0]}); sandbox image ${image.name}; prefix ${prefix}; benchmarks: ${names.join(', ')}`);

  const ctx: BenchContext = { temporalAddress: server.address, prefix, runs: envInt('BENCH_RUNS', 5), log, shared: new Map() };
  const targets: Target[] = [];
  const failures: string[] = [];
  /** The machine may be shared: the 1-minute load average before and after each benchmark goes into the summary. */
  const load: Array<{ benchmark: string; before: number; after: number }> = [];
  try {
    for (const name of names) {
      const benchStarted = Date.now();
      const before = loadavg()[0]!;
      try {
        const outcome = await BENCHMARKS[name]!(ctx);
        targets.push(...outcome.targets);
      } catch (error) {
        if (interrupted) throw error;
        failures.push(`${name}: ${(error as Error).stack ?? error}`);
        targets.push({ benchmark: name, target: '(benchmark failed)', measured: (error as Error).message.split('\n')[0]!.slice(0, 160), pass: false });
        log(`${name} FAILED: ${(error as Error).stack ?? error}`);
      }
      load.push({ benchmark: name, before, after: loadavg()[0]! });
      log(`${name} took ${fmtS(Date.now() - benchStarted)}; 1-minute load average ${before.toFixed(2)} before, ${loadavg()[0]!.toFixed(2)} after`);
    }
  } finally {
    await sweepSandboxes(docker, prefix).catch(() => undefined);
    forgetSweep();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
    forgetServer();
  }

  console.log('\n== targets ==');
  console.log(table(['benchmark', 'target', 'measured', 'result'], targets.map((t) => [t.benchmark, t.target, t.measured, t.pass === null ? 'not measured' : t.pass ? 'PASS' : 'FAIL'])));
  const file = writeResult(names.length === Object.keys(BENCHMARKS).length ? 'summary' : `summary-${names.join('-')}`, {
    measuredAt: new Date().toISOString(),
    machine: { cores: cpus().length, model: cpus()[0]?.model, memoryBytes: totalmem(), node: process.version },
    temporalCli: cli.version,
    benchmarks: names,
    runs: ctx.runs,
    durationMs: Date.now() - started,
    targets,
    load,
    failures,
  });
  log(`wrote ${file}; all benchmarks took ${fmtS(Date.now() - started)}`);
  return failures.length ? 1 : 0;
}

process.exitCode = await main().catch(async (error: Error) => {
  console.error(`[bench] ${error.stack ?? error.message}`);
  await runCleanups();
  return 1;
});
// Open handles (connections a failed benchmark left) must not keep the process alive.
await runCleanups();
process.exit(process.exitCode);
