/**
 * Chaos: the Cadenza worker runs as its own process, is killed with SIGKILL in a phase, and a new
 * worker process finishes the run. Whatever the phase, the issue must land exactly once, keep one
 * workpad comment, leave no sandbox behind, and (mid-session) repeat no completed agent turn.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import type { WorkflowHandle } from '@temporalio/client';
import { dockerClient } from '../../infra/docker.ts';
import { approve } from '../../client/issues.ts';
import { sandboxExists } from '../../lib/sandbox/container.ts';
import type { ScriptTurn } from '../../lib/scripted-model/index.ts';
import { approveLandingSignal, type IssueWorkflowResult, type Timing } from '../../workflows/definitions.ts';
import { expectLandedExactlyOnce as landedExactlyOnce } from '../helpers/chaos.ts';
import { runKeyOf, sh, World } from '../helpers/world.ts';
import { startWorkerProcess, type WorkerProcess } from '../../workers/spawn.ts';

const docker = dockerClient();

/** A killed activity that heartbeats is retried after 4 s on whichever worker polls next. */
const TIMING: Timing = { retryInitialIntervalMs: 300, heartbeatTimeoutMs: 4000, activityStartToCloseMs: 120_000 };
/** Recovery from a kill outside the agent session waits for start-to-close (see the report), so allow for it. */
const CASE_TIMEOUT = 420_000;

// The required check sleeps, so Verifying and Landing (which runs it again when the target moved) last long enough to be hit.
const CONTRACT = [
  'proof:',
  '  commands:',
  '    - { name: tests, run: "sleep 3 && npm test", timeout_ms: 20000 }',
  '  max_rounds: 3',
  'landing: { strategy: merge, target_branch: main, require_approval: true }',
].join('\n');

const write = (file: string, content: string) => ({ name: 'write_file', arguments: { path: file, content } });

/** Six turns, the middle ones slow, so there is time to kill the worker mid-session. */
function script(name: string): ScriptTurn[] {
  const fn = `chaos${name.replace(/[^A-Za-z0-9]/g, '')}`;
  return [
    { tool_calls: [{ name: 'read_file', arguments: { path: 'src/index.js' } }] },
    { delay_ms: 1500, tool_calls: [write(`src/${fn}.js`, `export function ${fn}(text) {\n  return \`\${text}!\`;\n}\n`)] },
    {
      delay_ms: 1500,
      tool_calls: [write(`test/${fn}.test.js`, `import test from 'node:test';\nimport assert from 'node:assert/strict';\nimport { ${fn} } from '../src/${fn}.js';\n\ntest('${fn}', () => assert.equal(${fn}('hi'), 'hi!'));\n`)],
    },
    { delay_ms: 1500, tool_calls: [{ name: 'list_files', arguments: { path: 'src' } }] },
    { delay_ms: 1500, tool_calls: [{ name: 'read_file', arguments: { path: `src/${fn}.js` } }] },
    { tool_calls: [{ name: 'finish', arguments: { summary: `Added ${fn}() with a test.` } }] },
  ];
}

interface Chaos {
  world: World;
  id: string;
  title: string;
  handle: WorkflowHandle;
  requestLog: string;
  /** Starts a worker process on this world; the test kills it or afterEach does. */
  startWorker(): Promise<WorkerProcess>;
  /** `turn` of every model request for this issue, in order, across all worker processes. */
  turns(): number[];
  /** Activities pending on the run right now (what a kill interrupts). */
  pendingActivities(): Promise<string[]>;
}

const running: WorkerProcess[] = [];
const worlds: World[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((worker) => worker.kill()));
  // Closing terminates whatever a failed case left running and removes its sandbox.
  await Promise.all(worlds.splice(0).map((world) => world.close()));
});

/** A fresh world with the issue, a first worker process, and the run started on it. */
async function setUp(name: string): Promise<{ chaos: Chaos; first: WorkerProcess }> {
  const world = await World.create({ extraContract: CONTRACT });
  worlds.push(world);
  const id = world.id(name);
  const title = `Chaos ${name}`;
  await world.addIssue({ identifier: id, title }, script(name));
  const requestLog = path.join(world.root, 'model-requests.jsonl');
  const startWorker = async () => {
    const worker = await startWorkerProcess({
      temporalAddress: inject('temporalAddress'),
      taskQueue: world.taskQueue,
      stateDir: world.state,
      scriptsDir: world.scripts,
      requestLog,
    });
    running.push(worker);
    return worker;
  };
  const first = await startWorker();
  const handle = await world.start(id, TIMING);
  const chaos: Chaos = {
    world,
    id,
    title,
    handle,
    requestLog,
    startWorker,
    turns() {
      if (!existsSync(requestLog)) return [];
      return readFileSync(requestLog, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as { identifier: string | null; turn: number })
        .filter((entry) => entry.identifier === id)
        .map((entry) => entry.turn);
    },
    async pendingActivities() {
      const description = await handle.describe();
      return (description.raw.pendingActivities ?? []).map((activity) => `${activity.activityType?.name} (attempt ${activity.attempt})`);
    },
  };
  return { chaos, first };
}

async function kill(worker: WorkerProcess, chaos: Chaos, what: string) {
  await worker.kill();
  const pending = await chaos.pendingActivities().catch((error: Error) => [`(describe failed: ${error.message})`]);
  console.info(`[chaos] ${chaos.id}: SIGKILLed worker ${worker.pid} ${what}; pending activities: ${pending.join(', ') || 'none'}`);
}

async function waitUntil(probe: () => Promise<boolean> | boolean, what: string, timeoutMs = 120_000, intervalMs = 50) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(`timed out waiting until ${what}`);
}

/** The shared "landed exactly once" check, with this case's turns in the log. */
async function expectLandedExactlyOnce(chaos: Chaos): Promise<IssueWorkflowResult> {
  const result = await landedExactlyOnce(chaos.world, chaos.handle, chaos.id, chaos.title);
  console.info(`[chaos] ${chaos.id}: turns ${JSON.stringify(chaos.turns())}`);
  return result;
}

/** All six turns, each asked exactly once (the session itself was never interrupted). */
const ONCE_EACH = [0, 1, 2, 3, 4, 5];

describe('chaos: the worker process is SIGKILLed and a new one finishes the run exactly once', () => {
  it('kill during Provisioning (as soon as the container appears)', async () => {
    const { chaos, first } = await setUp('prov');
    await waitUntil(() => sandboxExists(docker, runKeyOf(chaos.handle.workflowId)), 'the sandbox container exists', 60_000, 25);
    await kill(first, chaos, 'in Provisioning');
    expect(chaos.turns()).toEqual([]);

    await chaos.startWorker();
    await chaos.world.waitForPhase(chaos.handle, 'AwaitingApproval', CASE_TIMEOUT - 60_000);
    await approve(chaos.handle, 'alice');
    await expectLandedExactlyOnce(chaos);
    expect(chaos.turns()).toEqual(ONCE_EACH);
  }, CASE_TIMEOUT);

  it('kill mid agent session: the retry resumes from the checkpoint and repeats only the turn in flight', async () => {
    const { chaos, first } = await setUp('mid');
    await waitUntil(() => chaos.turns().length >= 2, 'the model got two requests', 120_000, 25);
    await kill(first, chaos, 'mid-session');
    const beforeKill = chaos.turns();
    expect(beforeKill.length).toBeGreaterThanOrEqual(2);
    expect(beforeKill).not.toContain(5); // killed before finish
    const inFlight = beforeKill.at(-1)!;

    await chaos.startWorker();
    const waiting = await chaos.world.waitForPhase(chaos.handle, 'AwaitingApproval', CASE_TIMEOUT - 60_000);
    expect(waiting.attempt).toBeGreaterThan(1); // the session finished on a retried attempt
    await approve(chaos.handle, 'alice');
    await expectLandedExactlyOnce(chaos);

    const turns = chaos.turns();
    expect(turns.slice(0, beforeKill.length)).toEqual(beforeKill);
    expect(turns.at(-1)).toBe(5);
    for (let i = 1; i < turns.length; i++) expect(turns[i]!, `turns ${JSON.stringify(turns)}`).toBeGreaterThanOrEqual(turns[i - 1]!);
    const counts = new Map<number, number>();
    for (const turn of turns) counts.set(turn, (counts.get(turn) ?? 0) + 1);
    for (const [turn, count] of counts) {
      expect(count, `turn ${turn} in ${JSON.stringify(turns)}`).toBeLessThanOrEqual(turn === inFlight ? 2 : 1);
    }
    expect([...counts.keys()].sort((a, b) => a - b)).toEqual(ONCE_EACH);
  }, CASE_TIMEOUT);

  it('kill during Verifying (while the sleepy required check runs)', async () => {
    const { chaos, first } = await setUp('verify');
    await chaos.world.waitForPhase(chaos.handle, 'Verifying', 120_000);
    await waitUntil(async () => (await chaos.pendingActivities()).some((name) => name.startsWith('runProofCheck')), 'the proof check runs', 30_000, 100);
    await kill(first, chaos, 'in Verifying');

    await chaos.startWorker();
    await chaos.world.waitForPhase(chaos.handle, 'AwaitingApproval', CASE_TIMEOUT - 60_000);
    await approve(chaos.handle, 'alice');
    await expectLandedExactlyOnce(chaos);
    expect(chaos.turns()).toEqual(ONCE_EACH);
  }, CASE_TIMEOUT);

  it('kill during AwaitingApproval, approve by signal while no worker runs, then a new worker lands it', async () => {
    const { chaos, first } = await setUp('approval');
    await chaos.world.waitForPhase(chaos.handle, 'AwaitingApproval', 180_000);
    await kill(first, chaos, 'in AwaitingApproval');
    // No worker: an Update could not be validated, a Signal is recorded by the server.
    await chaos.handle.signal(approveLandingSignal, { by: 'alice', comment: 'approved while no worker ran' });

    await chaos.startWorker();
    const result = await expectLandedExactlyOnce(chaos);
    expect(await sh(chaos.world.remote, `git log -1 --format=%B ${result.landedCommit}`)).toContain('Approved-by: alice');
    expect(chaos.turns()).toEqual(ONCE_EACH);
  }, CASE_TIMEOUT);

  it('kill during Landing (while the required check runs again on the merged tree)', async () => {
    const { chaos, first } = await setUp('landing');
    await chaos.world.waitForPhase(chaos.handle, 'AwaitingApproval', 180_000);
    // Someone else lands first, so the merged tree differs from the proven one and the checks run again.
    const other = mkdtempSync(path.join(tmpdir(), 'cadenza-other-'));
    await sh(other, `git clone -q ${chaos.world.remote} work && cd work && echo notes > NOTES.md && git add NOTES.md && git -c user.name=Other -c user.email=other@example.invalid commit -qm "Someone else's change" && git push -q origin main`);
    rmSync(other, { recursive: true, force: true });
    const before = await chaos.world.remoteLog();
    await approve(chaos.handle, 'alice');
    await chaos.world.waitForPhase(chaos.handle, 'Landing', 60_000);
    await kill(first, chaos, 'in Landing');
    const landedBeforeKill = (await chaos.world.remoteLog()) !== before;
    console.info(`[chaos] ${chaos.id}: remote main ${landedBeforeKill ? 'had' : 'had not'} moved when the worker died`);

    await chaos.startWorker();
    await expectLandedExactlyOnce(chaos);
    expect(chaos.turns()).toEqual(ONCE_EACH);
  }, CASE_TIMEOUT);
});
