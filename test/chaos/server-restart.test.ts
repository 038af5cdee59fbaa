/**
 * Chaos: the Temporal server itself is SIGKILLed mid agent session and started again on the same
 * database file. Each case runs its own dev server (not the shared one) on free ports, a worker as a
 * separate process pointed at it, and checks the run still finishes exactly once.
 *
 * What actually happens (observed, and asserted below):
 * - The worker process survives the outage and reconnects by itself; no worker restart is needed.
 * - The agent session does not need the server: it keeps calling the (local) model and the sandbox and
 *   checkpointing its turns while the server is down; only its heartbeats fail.
 * - Outage shorter than the session's heartbeat timeout: the server takes the next heartbeat and the
 *   session finishes on its first attempt; every turn is asked exactly once.
 * - Outage longer than the heartbeat timeout: the restarted server finds the heartbeat overdue, times the
 *   attempt out ("activity Heartbeat timeout") and dispatches attempt 2 while attempt 1 is still running
 *   in the same worker. Attempt 2 takes the session's lease before it reads the checkpoint, and attempt 1
 *   stops at its next lease check (before its tools, its next model request or a checkpoint) or when its
 *   next heartbeat is refused. So exactly the turn attempt 1 had in flight at the takeover is asked by
 *   both; turns completed before the server came back are never asked again, the final transcript holds
 *   every turn once, and the issue lands once.
 *   Which comes first after a restart, the server's overdue heartbeat timer or the worker's next heartbeat
 *   (or its completion, if the session finished during the outage), is a race inside the server; this case
 *   keeps the worker frozen (SIGSTOP) from just before the restart until the server has timed the attempt
 *   out, so it always tests the takeover rather than whichever side won.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import type { WorkflowHandle } from '@temporalio/client';
import { approve } from '../../client/issues.ts';
import { isAlive } from '../../infra/process.ts';
import { freePort, startDevServer, stopDevServer, temporalAnswers } from '../../infra/temporal.ts';
import type { ScriptTurn } from '../../lib/scripted-model/index.ts';
import type { Timing } from '../../workflows/definitions.ts';
import { expectLandedExactlyOnce, loggedRequests, retriedSessionAttempts, waitUntil } from '../helpers/chaos.ts';
import { startWorkerProcess, type WorkerProcess } from '../../workers/spawn.ts';
import { World } from '../helpers/world.ts';

const CONTRACT = [
  'proof:',
  '  commands:',
  '    - { name: tests, run: npm test, timeout_ms: 60000 }',
  '  max_rounds: 3',
  'landing: { strategy: merge, target_branch: main, require_approval: true }',
].join('\n');

const write = (file: string, content: string) => ({ name: 'write_file', arguments: { path: file, content } });

/** Six turns, the middle ones slow, so the server can be killed mid-session. */
const SCRIPT: ScriptTurn[] = [
  { tool_calls: [{ name: 'read_file', arguments: { path: 'src/index.js' } }] },
  { delay_ms: 1500, tool_calls: [write('src/restart.js', 'export function restart(text) {\n  return `${text}?`;\n}\n')] },
  {
    delay_ms: 1500,
    tool_calls: [write('test/restart.test.js', "import test from 'node:test';\nimport assert from 'node:assert/strict';\nimport { restart } from '../src/restart.js';\n\ntest('restart', () => assert.equal(restart('hi'), 'hi?'));\n")],
  },
  { delay_ms: 1500, tool_calls: [{ name: 'list_files', arguments: { path: 'src' } }] },
  { delay_ms: 1500, tool_calls: [{ name: 'read_file', arguments: { path: 'src/restart.js' } }] },
  { tool_calls: [{ name: 'finish', arguments: { summary: 'Added restart() with a test.' } }] },
];

/** The session's heartbeat timeout must outlast the outage (kill + 3 s + a restart of a few seconds). */
const LONG_HEARTBEAT: Timing = { retryInitialIntervalMs: 300, heartbeatTimeoutMs: 30_000, activityStartToCloseMs: 120_000 };
/** The outage outlasts the heartbeat timeout. */
const SHORT_HEARTBEAT: Timing = { retryInitialIntervalMs: 300, heartbeatTimeoutMs: 4000, activityStartToCloseMs: 120_000 };
const DOWN_MS = 3000;

const workers: WorkerProcess[] = [];
let world: World | undefined;
let serverDir: string | undefined;

afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.kill()));
  await world?.close();
  world = undefined;
  if (serverDir) {
    await stopDevServer(serverDir);
    rmSync(serverDir, { recursive: true, force: true });
    serverDir = undefined;
  }
});

interface Outage {
  world: World;
  handle: WorkflowHandle;
  id: string;
  title: string;
  worker: WorkerProcess;
  /** Turns asked before the kill, and before the restart began. */
  beforeKill: number[];
  beforeRestart: number[];
  turns(): number[];
}

/**
 * Own server, world and worker process; the run is started, and the server SIGKILLed after the model's
 * second request and started again on its database. With `freezeWorker` the worker is stopped across the
 * restart and continued only once the server has timed the session attempt out.
 */
async function runThroughOutage(name: string, timing: Timing, { freezeWorker = false } = {}): Promise<Outage> {
  const cli = inject('temporalCli');
  serverDir = mkdtempSync(path.join(tmpdir(), 'cadenza-restart-temporal-'));
  const ports = { port: await freePort(), uiPort: await freePort() };
  const first = await startDevServer({ cli, dir: serverDir, ...ports });
  expect(first.reused).toBe(false);

  world = await World.create({ extraContract: CONTRACT, temporalAddress: first.address });
  const id = world.id(name);
  const title = `Server restart ${name}`;
  await world.addIssue({ identifier: id, title }, SCRIPT);
  const requestLog = path.join(world.root, 'model-requests.jsonl');
  const turns = () => loggedRequests(requestLog, id).map((request) => request.turn);
  const worker = await startWorkerProcess({ temporalAddress: first.address, taskQueue: world.taskQueue, stateDir: world.state, scriptsDir: world.scripts, requestLog });
  workers.push(worker);
  const handle = await world.start(id, timing);

  await waitUntil(() => turns().length >= 2, 'the model got two requests', 120_000, 25);
  process.kill(first.pid, 'SIGKILL');
  await waitUntil(() => !isAlive(first.pid), 'the server process is gone', 10_000);
  const killedAt = Date.now();
  const beforeKill = turns();
  expect(beforeKill).not.toContain(SCRIPT.length - 1);
  expect(await temporalAnswers(first.address, 500)).toBe(false);

  await new Promise((resolve) => setTimeout(resolve, DOWN_MS));
  const beforeRestart = turns();
  // The worker does not need the server to go on with the session.
  expect(worker.exited).toBe(false);
  expect(beforeRestart.length).toBeGreaterThan(beforeKill.length);
  if (freezeWorker) worker.pause();
  const second = await startDevServer({ cli, dir: serverDir, ...ports });
  expect(second.reused).toBe(false);
  expect(second.address).toBe(first.address);
  if (freezeWorker) {
    await waitUntil(async () => (await sessionAttemptPending(handle)) >= 2, 'the server timed attempt 1 out and scheduled attempt 2', 60_000, 200);
    worker.resume();
  }
  console.info(`[chaos] ${id}: server SIGKILLed after turns ${JSON.stringify(beforeKill)}, restarted after turns ${JSON.stringify(beforeRestart)}, answering again ${Date.now() - killedAt} ms after the kill`);
  return { world, handle, id, title, worker, beforeKill, beforeRestart, turns };
}

/** The attempt of the pending agent session, 0 if none is pending (or the server does not answer yet). */
async function sessionAttemptPending(handle: WorkflowHandle): Promise<number> {
  const description = await handle.describe().catch(() => undefined);
  const session = description?.raw.pendingActivities?.find((activity) => activity.activityType?.name === 'runAgentSession');
  return session?.attempt ?? 0;
}

describe('chaos: the Temporal server is SIGKILLed mid-session and restarted on its database', () => {
  it('an outage shorter than the heartbeat timeout: the same worker and the same attempt finish, every turn asked once', async () => {
    const outage = await runThroughOutage('brief', LONG_HEARTBEAT);
    const waiting = await outage.world.waitForPhase(outage.handle, 'AwaitingApproval', 240_000);
    expect(waiting.attempt).toBe(1);
    expect(await retriedSessionAttempts(outage.handle)).toEqual([]);
    await approve(outage.handle, 'alice');
    await expectLandedExactlyOnce(outage.world, outage.handle, outage.id, outage.title);
    expect(outage.worker.exited).toBe(false);
    expect(outage.turns()).toEqual([0, 1, 2, 3, 4, 5]);
  }, 300_000);

  it('an outage longer than the heartbeat timeout: the session is retried on the same worker and lands once; no turn completed before the restart is asked again', async () => {
    const outage = await runThroughOutage('long', SHORT_HEARTBEAT, { freezeWorker: true });
    const waiting = await outage.world.waitForPhase(outage.handle, 'AwaitingApproval', 240_000);
    const retried = await retriedSessionAttempts(outage.handle);
    console.info(`[chaos] ${outage.id}: AwaitingApproval on attempt ${waiting.attempt}; turns ${JSON.stringify(outage.turns())}; retried ${JSON.stringify(retried)}`);
    expect(waiting.attempt).toBe(2);
    expect(retried).toEqual([{ attempt: 2, lastFailure: 'activity Heartbeat timeout' }]);
    await approve(outage.handle, 'alice');
    await expectLandedExactlyOnce(outage.world, outage.handle, outage.id, outage.title);
    expect(outage.worker.exited).toBe(false);

    const all = outage.turns();
    expect([...new Set(all)].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5]);
    for (let i = 1; i < all.length; i++) expect(all[i]!, `turns ${JSON.stringify(all)}`).toBeGreaterThanOrEqual(all[i - 1]!);
    // A request for turn k+1 means turn k was checkpointed: attempt 2 (started after the restart) resumes
    // after it, and only the one turn attempt 1 had in flight at the takeover is asked twice.
    const inFlightAtRestart = outage.beforeRestart.at(-1)!;
    const askedTwice = [...new Set(all)].filter((turn) => all.filter((t) => t === turn).length > 1);
    expect(all.length, `turns ${JSON.stringify(all)}`).toBe(SCRIPT.length + askedTwice.length);
    expect(askedTwice.length, `turns ${JSON.stringify(all)}`).toBeLessThanOrEqual(1);
    for (const turn of askedTwice) expect(turn, `turns ${JSON.stringify(all)}`).toBeGreaterThanOrEqual(inFlightAtRestart);
    // Whatever the overlap asked twice, the transcript the run kept holds every turn exactly once.
    expect(outage.world.transcriptOf(outage.handle.workflowId, 1).filter((message) => message.role === 'assistant')).toHaveLength(SCRIPT.length);
  }, 300_000);
});
