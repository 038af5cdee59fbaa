/**
 * Benchmark 6, hosts: one batch of trivial issues (BENCH_HOSTS_ISSUES, default 6) run on ONE worker
 * host, then another batch on TWO: the second host a worker with its own private Docker engine and
 * state folder (as test/e2e/hosts.test.ts uses), both hosts with `worker.max_sandboxes: 2`. Wall time,
 * runs per minute, per-run wall time, the placement step's time, and how the runs spread. The first
 * host is a worker in this process on the shared engine, the second a worker process (as operators run
 * it) on the private engine.
 * On one machine both hosts share its cores: this measures what host queues cost, not the capacity a
 * second machine adds.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { clientOf, connectClient, connectWorker, plaintextSettings } from '../client/connection.ts';
import { startIssue } from '../client/issues.ts';
import { dockerClient } from '../infra/docker.ts';
import { statusQuery, type IssueStatus, type IssueWorkflowResult } from '../workflows/definitions.ts';
import { cadenzaWorkflowBundle, createCadenzaWorker, createDeps } from '../workers/worker.ts';
import { PrivateEngine } from '../test/helpers/private-engine.ts';
import { envInt, fmtMs, fmtS, median, onCleanup, table, writeResult, type BenchContext, type BenchOutcome } from './lib/common.ts';
import { startWorkerProcess } from './lib/worker-process.ts';
import { BenchWorld, trivialScript } from './lib/world.ts';

interface BatchResult {
  hosts: number;
  issues: number;
  done: number;
  wallMs: number;
  runsPerMinute: number;
  perRunMs: { median: number; max: number };
  placementMs: { median: number; max: number };
  perHost: Record<string, number>;
}

const quiet = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} };

/** Milliseconds from placeRun's scheduling to its completion, from the run's history. */
async function placementMs(client: Client, workflowId: string): Promise<number> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const time = (event: { eventTime?: { seconds?: unknown; nanos?: unknown } | null }) => Number(String(event.eventTime?.seconds ?? 0)) * 1000 + Number(event.eventTime?.nanos ?? 0) / 1e6;
  const scheduled = new Map<string, number>();
  for (const event of history.events ?? []) {
    if (event.activityTaskScheduledEventAttributes?.activityType?.name === 'placeRun') scheduled.set(String(event.eventId), time(event));
    const completed = event.activityTaskCompletedEventAttributes;
    if (completed && scheduled.has(String(completed.scheduledEventId))) return time(event) - scheduled.get(String(completed.scheduledEventId))!;
  }
  return NaN;
}

export async function hosts(ctx: BenchContext): Promise<BenchOutcome> {
  const count = envInt('BENCH_HOSTS_ISSUES', 6);
  await cadenzaWorkflowBundle(quiet);
  const world = await BenchWorld.create('hosts', ['worker: { max_sandboxes: 2 }']);
  const temporal = plaintextSettings(ctx.temporalAddress);
  const env: NodeJS.ProcessEnv = { ...process.env, OPENAI_API_KEY: '', OPENAI_BASE_URL: '' };
  const connection = await connectClient(temporal);
  const client = clientOf(connection, temporal);
  const native = await connectWorker(temporal);
  const engine = await PrivateEngine.start();
  const forgetEngine = onCleanup(() => engine.close());
  ctx.log(`hosts: loading the sandbox image into the second host's private engine`);
  await engine.loadImage(dockerClient(), world.contract.config.sandbox.image);

  /** One host, or two: workers on one task queue, each on its own engine and state folder. */
  async function batch(hostCount: number): Promise<BatchResult> {
    const taskQueue = `${ctx.prefix}-hosts-${hostCount}`;
    const ids = Array.from({ length: count }, (_, i) => `${ctx.prefix}-H${hostCount}-${i + 1}`);
    for (const id of ids) await world.addIssue(id, `Trivial ${id}`, trivialScript(id));
    const wired = await createDeps({ stateDir: path.join(world.root, `host-a-${hostCount}`), scriptsDir: world.scripts, env, log: () => {}, temporal });
    const hostA = await createCadenzaWorker({ connection: native, deps: wired.deps, taskQueue, temporal });
    const hostB = hostCount === 2
      ? await startWorkerProcess({
        temporalAddress: ctx.temporalAddress, taskQueue, stateDir: mkdtempSync(path.join(tmpdir(), 'cadenza-bench-host-b-')), scriptsDir: world.scripts,
        requestLog: path.join(world.root, 'host-b-requests.jsonl'), env: { DOCKER_HOST: engine.host },
      })
      : null;
    const runAll = async () => {
      const started = Date.now();
      const runs = await Promise.all(ids.map(async (id) => {
        const [issue] = await world.tracker.fetchIssuesByIds([id]);
        const runStart = Date.now();
        const handle = await startIssue(client, { issue: issue!, contract: world.contract, taskQueue, timing: { retryInitialIntervalMs: 1000 } });
        const result = (await handle.result().catch(() => null)) as IssueWorkflowResult | null;
        const status = (await handle.query(statusQuery)) as IssueStatus;
        return { id, wallMs: Date.now() - runStart, done: result?.phase === 'Done', host: status.host ?? '?', placement: await placementMs(client, handle.workflowId) };
      }));
      return { wallMs: Date.now() - started, runs };
    };
    try {
      const { wallMs, runs } = await hostA.runUntil(runAll);
      const perHost: Record<string, number> = {};
      for (const r of runs) perHost[r.host] = (perHost[r.host] ?? 0) + 1;
      if (hostB && Object.keys(perHost).length < 2) ctx.log(`the second host took no run; its worker said:\n${hostB.output().slice(-3000)}`);
      const per = runs.map((r) => r.wallMs);
      const placed = runs.map((r) => r.placement).filter(Number.isFinite);
      return {
        hosts: hostCount, issues: count, done: runs.filter((r) => r.done).length, wallMs, runsPerMinute: (runs.length / wallMs) * 60_000,
        perRunMs: { median: median(per), max: Math.max(...per) }, placementMs: { median: median(placed), max: Math.max(...placed) }, perHost,
      };
    } finally {
      await hostB?.kill();
      await wired.close();
    }
  }

  try {
    const results = [await batch(1), await batch(2)];
    ctx.log(`\n${table(['hosts', 'issues', 'done', 'wall', 'runs/min', 'per run (median / max)', 'placement (median / max)', 'runs per host'], results.map((r) => [
      r.hosts, r.issues, r.done, fmtS(r.wallMs), r.runsPerMinute.toFixed(1), `${fmtS(r.perRunMs.median)} / ${fmtS(r.perRunMs.max)}`, `${fmtMs(r.placementMs.median)} / ${fmtMs(r.placementMs.max)}`, Object.values(r.perHost).join(' + '),
    ]))}`);
    writeResult('hosts', { measuredAt: new Date().toISOString(), results });
    const [one, two] = results as [BatchResult, BatchResult];
    return {
      targets: [
        { benchmark: 'hosts', target: 'every run done on 1 and 2 hosts', measured: `${one.done}/${one.issues}, ${two.done}/${two.issues}`, pass: one.done === one.issues && two.done === two.issues },
        { benchmark: 'hosts', target: 'runs spread over both hosts', measured: Object.values(two.perHost).join(' + '), pass: Object.keys(two.perHost).length === 2 },
        { benchmark: 'hosts', target: 'runs per minute at 2 hosts vs 1 (same machine)', measured: `${two.runsPerMinute.toFixed(1)} vs ${one.runsPerMinute.toFixed(1)}; per run ${fmtS(two.perRunMs.median)} vs ${fmtS(one.perRunMs.median)}`, pass: null },
      ],
    };
  } finally {
    await native.close();
    await connection.close();
    await engine.close();
    forgetEngine();
  }
}
