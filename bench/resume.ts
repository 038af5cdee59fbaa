/**
 * Benchmark 4, resume: an issue whose agent turns are slow (delay_ms) runs on a worker process; the
 * worker's process group is SIGKILLed mid-session and a new worker process is started at once. The
 * measure is the time from the kill to the next model request of that issue (the scripted model's
 * request log). Pending-activity details from `describe` show where that time goes.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { clientOf, connectClient, plaintextSettings } from '../client/connection.ts';
import { bundleWorkflowCode } from '@temporalio/worker';
import { dockerClient } from '../infra/docker.ts';
import { startIssue } from '../client/issues.ts';
import { workflowsPath } from '../workers/worker.ts';
import type { IssueWorkflowResult, Timing } from '../workflows/definitions.ts';
import { envInt, fmtMs, fmtS, median, sleep, table, waitUntil, writeResult, type BenchContext, type BenchOutcome } from './lib/common.ts';
import { timeline } from './lib/history.ts';
import { sweepSandboxes } from './lib/sandboxes.ts';
import { startWorkerProcess, type WorkerProcess } from './lib/worker-process.ts';
import { BenchWorld, trivialScript } from './lib/world.ts';

const quietLogger = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} };
const TURN_DELAY_MS = 1500;

type Obj = Record<string, unknown>;
const tsMs = (value: unknown): number | null => {
  const ts = value as { seconds?: unknown; nanos?: unknown } | null | undefined;
  if (!ts) return null;
  const ms = Number(String(ts.seconds ?? 0)) * 1000 + Number(String(ts.nanos ?? 0)) / 1e6;
  return ms > 0 ? ms : null;
};

function requestsOf(file: string, identifier: string): number[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { identifier: string | null; at: string })
    .filter((entry) => entry.identifier === identifier)
    .map((entry) => Date.parse(entry.at));
}

async function pendingSession(handle: WorkflowHandle): Promise<Obj | null> {
  const description = await handle.describe();
  const pending = (description.raw.pendingActivities ?? []) as unknown as Obj[];
  return pending.find((activity) => (activity.activityType as Obj | null)?.name === 'runAgentSession') ?? null;
}

interface ResumeRun {
  identifier: string;
  /** Kill -> next model request: the measure. */
  resumeMs: number;
  /** How old the last recorded heartbeat was when the worker died. */
  heartbeatAgeAtKillMs: number | null;
  /** Where in the slow turns the kill fell (ms after the second model request). */
  killOffsetMs: number;
  /** Kill -> the server recorded the attempt as failed (heartbeat timeout); else when `describe` first showed attempt 2 (polled every ~100 ms). */
  detectedMs: number | null;
  /** Kill -> the retry was due (detection + retry interval). */
  retryDueMs: number | null;
  /** Kill -> the new worker process polled (spawned right after the kill). */
  workerReadyMs: number;
  /** Kill -> the retried attempt started on the new worker. */
  restartedMs: number | null;
  /** Retried attempt started -> its first model request (checkpoint load, first request). */
  restartToRequestMs: number | null;
  failure: string | null;
  /** Kill -> the run ended, and how. */
  doneMs: number | null;
  phase: string;
  /** Longest workflow-task wait after the kill (a dead worker's sticky queue shows here). */
  maxWorkflowTaskQueueAfterKillMs: number;
  /** The session activity as `describe` showed it after the kill, at each change (ms relative to the kill). */
  transitions: unknown[];
}

export async function resume(ctx: BenchContext): Promise<BenchOutcome> {
  const runs = envInt('BENCH_RESUME_RUNS', ctx.runs);
  const timing: Timing = {
    heartbeatTimeoutMs: envInt('BENCH_HEARTBEAT_MS', 5000),
    retryInitialIntervalMs: envInt('BENCH_RESUME_RETRY_MS', 300),
  };
  const heartbeatMs = timing.heartbeatTimeoutMs!;
  const docker = dockerClient();
  const world = await BenchWorld.create('resume');
  const temporal = plaintextSettings(ctx.temporalAddress);
  const connection = await connectClient(temporal);
  const client = clientOf(connection, temporal);
  const results: ResumeRun[] = [];
  const workers: WorkerProcess[] = [];
  try {
    // Evidence for the worker start time: every worker process bundles the workflow code at start.
    const bundleStarted = performance.now();
    await bundleWorkflowCode({ workflowsPath, logger: quietLogger });
    const bundleMs = performance.now() - bundleStarted;
    ctx.log(`resume: ${runs} runs, heartbeatTimeoutMs ${heartbeatMs}, retryInitialIntervalMs ${timing.retryInitialIntervalMs}; bundling the workflow code in this process took ${fmtMs(bundleMs)}`);

    for (let index = 0; index < runs; index++) {
      const identifier = `${ctx.prefix}-r${index}`;
      const taskQueue = `${ctx.prefix}-r${index}`;
      const requestLog = path.join(world.root, `r${index}-requests.jsonl`);
      const issue = await world.addIssue(identifier, `Bench resume ${index}`, trivialScript(identifier, TURN_DELAY_MS));
      const options = { temporalAddress: ctx.temporalAddress, taskQueue, stateDir: world.state, scriptsDir: world.scripts, requestLog };
      const first = await startWorkerProcess(options);
      workers.push(first);
      const handle = await startIssue(client, { issue, contract: world.contract, taskQueue, timing });
      try {
        await waitUntil(() => requestsOf(requestLog, identifier).length >= 2, 'the second model request', 120_000, 20);
        // Mid-session, at a different point of the slow turns each run (so the last heartbeat's age varies).
        const killOffsetMs = 300 + (index % 5) * 800;
        await sleep(killOffsetMs);
        const before = await pendingSession(handle);
        const killAt = Date.now();
        await first.kill();
        const secondStarting = startWorkerProcess(options);
        secondStarting.catch(() => undefined);

        let detectedAt: number | null = null;
        let retryDueAt: number | null = null;
        let restartedAt: number | null = null;
        let failure: string | null = null;
        let nextRequestAt: number | null = null;
        let observedRetryAt: number | null = null;
        const transitions: Array<{ atMs: number; attempt: number; state: unknown; scheduledMs: number | null; lastStartedMs: number | null; lastHeartbeatMs: number | null }> = [];
        const deadline = killAt + 120_000;
        while (Date.now() < deadline) {
          nextRequestAt = requestsOf(requestLog, identifier).find((at) => at >= killAt) ?? null;
          const pending = await pendingSession(handle).catch(() => null);
          if (pending) {
            const last = transitions.at(-1);
            const attempt = Number(pending.attempt ?? 1);
            if (!last || last.attempt !== attempt || last.state !== pending.state) {
              const rel = (value: unknown) => {
                const ms = tsMs(value);
                return ms === null ? null : ms - killAt;
              };
              transitions.push({ atMs: Date.now() - killAt, attempt, state: pending.state, scheduledMs: rel(pending.scheduledTime), lastStartedMs: rel(pending.lastStartedTime), lastHeartbeatMs: rel(pending.lastHeartbeatTime) });
            }
          }
          if (pending && Number(pending.attempt ?? 1) >= 2) {
            observedRetryAt ??= Date.now();
            detectedAt ??= tsMs(pending.lastAttemptCompleteTime);
            retryDueAt ??= tsMs(pending.nextAttemptScheduleTime) ?? tsMs(pending.scheduledTime);
            failure ??= String((pending.lastFailure as Obj | null)?.message ?? '') || null;
            const started = tsMs(pending.lastStartedTime);
            if (started !== null && started > killAt) restartedAt ??= started;
          }
          if (nextRequestAt !== null && restartedAt !== null) break;
          if (nextRequestAt !== null && Date.now() - nextRequestAt > 1000) break;
          await sleep(100);
        }
        const second = await secondStarting;
        workers.push(second);
        if (nextRequestAt === null) throw new Error(`no model request for ${identifier} within 120 s of the kill`);

        let phase = 'timeout';
        let doneAt: number | null = null;
        try {
          const result = (await Promise.race([handle.result(), sleep(180_000).then(() => null)])) as IssueWorkflowResult | null;
          if (result) {
            phase = result.phase;
            doneAt = Date.now();
          } else await handle.terminate('benchmark: run did not finish within 180 s after the resume');
        } catch (error) {
          phase = `error: ${(error as Error).message}`;
        }
        const line = timeline(await handle.fetchHistory());
        const maxWftQueue = Math.max(0, ...line.segments.filter((segment) => segment.kind === 'wft-queue' && segment.end > killAt).map((segment) => segment.end - Math.max(segment.start, killAt)));
        const lastHeartbeat = before ? tsMs(before.lastHeartbeatTime) : null;
        const run: ResumeRun = {
          identifier,
          killOffsetMs,
          resumeMs: nextRequestAt - killAt,
          heartbeatAgeAtKillMs: lastHeartbeat === null ? null : killAt - lastHeartbeat,
          detectedMs: detectedAt !== null ? detectedAt - killAt : observedRetryAt !== null ? observedRetryAt - killAt : null,
          retryDueMs: retryDueAt === null ? null : retryDueAt - killAt,
          workerReadyMs: second.readyAt - killAt,
          restartedMs: restartedAt === null ? null : restartedAt - killAt,
          restartToRequestMs: restartedAt === null ? null : nextRequestAt - restartedAt,
          failure,
          doneMs: doneAt === null ? null : doneAt - killAt,
          phase,
          maxWorkflowTaskQueueAfterKillMs: maxWftQueue,
          transitions,
        };
        results.push(run);
        ctx.log(`  ${identifier}: next model request ${fmtMs(run.resumeMs)} after the kill (new worker ready at ${fmtMs(run.workerReadyMs)}, retry started at ${fmtMs(run.restartedMs ?? NaN)}); run ${phase}`);
      } finally {
        await handle.terminate('benchmark cleanup').catch(() => undefined);
        for (const worker of workers.splice(0)) await worker.kill();
        await sweepSandboxes(docker, identifier).catch(() => undefined);
      }
    }

    const resumeMedian = median(results.map((run) => run.resumeMs));
    const limit = heartbeatMs + 2000;
    const col = (pick: (run: ResumeRun) => number | null) => {
      const values = results.map(pick).filter((value): value is number => value !== null);
      return [fmtMs(median(values)), fmtMs(Math.min(...values)), fmtMs(Math.max(...values))];
    };
    console.log(`\n== resume: SIGKILL the worker mid-session, start a new one; heartbeatTimeoutMs ${heartbeatMs}, retryInitialIntervalMs ${timing.retryInitialIntervalMs} ==`);
    console.log(table(['from the kill to ...', 'median', 'min', 'max'], [
      ['the next model request (the measure)', ...col((run) => run.resumeMs)],
      ['  (last heartbeat before the kill, age at kill)', ...col((run) => run.heartbeatAgeAtKillMs)],
      ['  (kill point: ms after the second model request)', ...col((run) => run.killOffsetMs)],
      ['  the server failed the attempt (heartbeat timeout)', ...col((run) => run.detectedMs)],
      ['  the retry was due', ...col((run) => run.retryDueMs)],
      ['  the new worker process polled', ...col((run) => run.workerReadyMs)],
      ['  the retried session started', ...col((run) => run.restartedMs)],
      ['  (retried session start -> model request)', ...col((run) => run.restartToRequestMs)],
      ['the run ended', ...col((run) => run.doneMs)],
      ['  (longest workflow-task wait after the kill)', ...col((run) => run.maxWorkflowTaskQueueAfterKillMs)],
    ]));
    console.log(`target: <= heartbeat timeout + 2 s = ${fmtS(limit)}; measured median ${fmtS(resumeMedian)}; runs ended: ${results.map((run) => run.phase).join(', ')}`);
    const file = writeResult('resume', { measuredAt: new Date().toISOString(), timing, turnDelayMs: TURN_DELAY_MS, bundleMs, targetMs: limit, medianMs: resumeMedian, runs: results });
    ctx.log(`resume: wrote ${file}`);
    return { targets: [{ benchmark: 'resume', target: `<= heartbeat timeout + 2 s (${fmtS(limit)})`, measured: `median ${fmtS(resumeMedian)} (heartbeatTimeoutMs ${heartbeatMs})`, pass: resumeMedian <= limit }] };
  } finally {
    for (const worker of workers) await worker.kill();
    await sweepSandboxes(docker, ctx.prefix).catch(() => undefined);
    await connection.close();
    world.close();
  }
}
