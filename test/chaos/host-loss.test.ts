/**
 * Losing a worker host: host A is a worker process on its own (private) Docker engine and state
 * folder; host B a worker in this process on the shared engine. A run placed on A loses A (its worker
 * SIGKILLed, its engine stopped): the step A's queue never starts is noticed (schedule-to-start after
 * timing.hostLossMs), the run is placed on B, its sandbox rebuilt there from the work's snapshot on the
 * git remote, and it lands exactly once. Both hosts share an S3 artifact store (a real versitygw), as a
 * fleet does: proofs and checkpoints written on A are read on B.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { approve } from '../../client/issues.ts';
import { dockerClient } from '../../infra/docker.ts';
import { startS3Server, type S3Server } from '../../infra/s3.ts';
import { HOST_LABEL } from '../../lib/sandbox/names.ts';
import type { ScriptTurn } from '../../lib/scripted-model/index.ts';
import { statusQuery, WORKPAD_MARKER, type IssueStatus, type Timing } from '../../workflows/definitions.ts';
import { hostIdFor } from '../../workers/worker.ts';
import { startWorkerProcess, type WorkerProcess } from '../../workers/spawn.ts';
import { expectLandedExactlyOnce, waitUntil } from '../helpers/chaos.ts';
import { PrivateEngine } from '../helpers/private-engine.ts';
import { World, sh } from '../helpers/world.ts';

/** A lost activity is noticed by its heartbeat in 3 s; a host queue idle for 4 s is a lost host. */
const TIMING: Timing = { retryInitialIntervalMs: 300, heartbeatTimeoutMs: 3000, activityStartToCloseMs: 120_000, hostLossMs: 4000 };

const contract = (requireApproval: boolean) => [
  'proof:',
  '  commands:',
  '    - { name: tests, run: npm test, timeout_ms: 60000 }',
  `landing: { strategy: merge, target_branch: main, require_approval: ${requireApproval} }`,
].join('\n');

const write = (file: string, content: string) => ({ name: 'write_file', arguments: { path: file, content } });

/** Adds a function and its test; the middle turns are slow, so the host can be lost mid-session. */
function script(fn: string): ScriptTurn[] {
  return [
    { tool_calls: [{ name: 'read_file', arguments: { path: 'src/index.js' } }] },
    { delay_ms: 1500, tool_calls: [write(`src/${fn}.js`, `export function ${fn}(text) {\n  return \`\${text}?\`;\n}\n`)] },
    { delay_ms: 1500, tool_calls: [write(`test/${fn}.test.js`, `import test from 'node:test';\nimport assert from 'node:assert/strict';\nimport { ${fn} } from '../src/${fn}.js';\n\ntest('${fn}', () => assert.equal(${fn}('hi'), 'hi?'));\n`)] },
    { tool_calls: [{ name: 'finish', arguments: { summary: `Added ${fn}() with a test.` } }] },
  ];
}

describe('a worker host is lost', () => {
  let engine: PrivateEngine;
  let store: S3Server;
  let storeDir: string;
  const worlds: World[] = [];
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    storeDir = mkdtempSync(path.join(tmpdir(), 'cadenza-host-loss-store-'));
    store = await startS3Server({ dir: storeDir });
    engine = await PrivateEngine.start();
    await engine.loadImage(dockerClient(), 'cadenza-sandbox:latest');
  }, 240_000);
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((worker) => worker.kill()));
    await Promise.all(worlds.splice(0).map((world) => world.close()));
    if (!(await engine.docker.ping().then(() => true, () => false))) await engine.start();
  });
  afterAll(async () => {
    await engine?.close();
    await store?.stop();
    rmSync(storeDir, { recursive: true, force: true });
  });

  /** A world whose run starts on host A (a worker process on the private engine) alone. */
  async function onHostA(name: string, requireApproval: boolean) {
    const shared = store.env(`host-loss/${name}-${Date.now()}`);
    const world = await World.create({ extraContract: contract(requireApproval), env: shared });
    worlds.push(world);
    const id = world.id(name);
    const title = `Host loss ${name}`;
    await world.addIssue({ identifier: id, title }, script(`lost${name}`));
    const stateA = path.join(world.root, 'host-a');
    const requestLog = path.join(world.root, 'model-requests.jsonl');
    const startHostA = async () => {
      const worker = await startWorkerProcess({
        temporalAddress: inject('temporalAddress'), taskQueue: world.taskQueue, stateDir: stateA, scriptsDir: world.scripts, requestLog,
        env: { DOCKER_HOST: engine.host, ...shared },
      });
      workers.push(worker);
      return worker;
    };
    const hostA = await startHostA();
    const handle = await world.start(id, TIMING);
    const requests = () => (existsSync(requestLog) ? readFileSync(requestLog, 'utf8').split('\n').filter((line) => line.includes(id)).length : 0);
    const status = () => handle.query(statusQuery) as Promise<IssueStatus>;
    return { world, id, title, handle, hostA, hostAId: hostIdFor(stateA), requests, status, startHostA };
  }

  /** Host A gone: its worker SIGKILLed and its Docker engine with it. */
  async function loseHostA(hostA: WorkerProcess) {
    await hostA.kill();
    await engine.stop('SIGKILL');
  }

  it('mid-session: the run moves to host B, the session starts again there from the base, and it lands once', async () => {
    const run = await onHostA('session', false);
    await waitUntil(() => run.requests() >= 2, 'the session on host A asked the model twice', 120_000);
    expect((await run.status()).host).toBe(run.hostAId);
    expect((await engine.docker.listContainers()).length).toBe(1);
    await run.world.run(async () => {
      await loseHostA(run.hostA);
      const result = await expectLandedExactlyOnce(run.world, run.handle, run.id, run.title);
      const status = await run.status();
      expect(status.host).toBe(hostIdFor(run.world.state));
      expect(result.rounds).toBe(1);
      const [workpad] = (await run.world.tracker.listComments(run.id)).filter((comment) => comment.body.startsWith(WORKPAD_MARKER));
      expect(workpad!.body).toContain(`Host ${run.hostAId} took no step for 4 s (the agent session): the run moved to host ${status.host}`);
      expect(await sh(run.world.remote, 'git show main:src/lostsession.js')).toContain('lostsession');

      // Host A comes back (its engine, then its worker): the sandbox it kept for the run that moved is removed.
      await engine.start();
      const left = await engine.docker.listVolumes();
      expect((left.Volumes ?? []).filter((volume) => volume.Labels?.[HOST_LABEL] === run.hostAId)).toHaveLength(1);
      await run.startHostA();
      await waitUntil(async () => {
        const [containers, volumes] = await Promise.all([engine.docker.listContainers({ all: true }), engine.docker.listVolumes()]);
        return containers.length === 0 && !(volumes.Volumes ?? []).some((volume) => volume.Labels?.[HOST_LABEL] === run.hostAId);
      }, 'host A removed the sandbox of the run that moved away', 60_000);
    });
  }, 300_000);

  it('while awaiting approval: landing moves to host B, which rebuilds the approved work from the git remote and lands exactly it', async () => {
    const run = await onHostA('approval', true);
    const waiting = await run.world.waitForPhase(run.handle, 'AwaitingApproval', 180_000);
    expect(waiting.host).toBe(run.hostAId);
    const approvedHead = waiting.headCommit!;
    // The snapshot of the work is on the remote, not only on host A's disk.
    expect(await sh(run.world.remote, `git for-each-ref --format='%(objectname)' 'refs/cadenza/*/work'`)).toContain(approvedHead);
    await run.world.run(async () => {
      await loseHostA(run.hostA);
      await approve(run.handle, 'alice');
      const result = await expectLandedExactlyOnce(run.world, run.handle, run.id, run.title);
      expect(result.headCommit).toBe(approvedHead);
      expect(await sh(run.world.remote, `git rev-parse ${result.landedCommit}^2`)).toBe(approvedHead);
      expect((await run.status()).host).toBe(hostIdFor(run.world.state));
      // The run is over: its snapshot ref is gone from the remote.
      expect(await sh(run.world.remote, `git for-each-ref 'refs/cadenza/*/work'`)).toBe('');
    });
  }, 300_000);
});
