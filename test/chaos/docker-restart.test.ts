/**
 * Chaos: the Docker engine goes down mid agent session and is started again on its data root. The
 * engine is a private dockerd (test/helpers/private-engine.ts), never the shared one, and the worker
 * runs as its own process with DOCKER_HOST pointed at it.
 *
 * Two ways down: a crash (dockerd, its containerd, the shims and the sandbox's processes all SIGKILLed
 * at once) and a normal restart (SIGTERM: dockerd stops its containers and exits). Either way the
 * engine comes back with the sandbox container stopped and its workspace volume intact. The run must
 * still finish exactly once: one landing commit, one workpad comment, no container or volume left,
 * every file the agent wrote before the restart in the landed tree, and no completed turn asked again
 * (only the one in flight may be).
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { WorkflowHandle } from '@temporalio/client';
import { dockerClient } from '../../infra/docker.ts';
import { SandboxLostError, ensureSandbox, reattachSandbox, removeSandbox } from '../../lib/sandbox/container.ts';
import { containerName, volumeName } from '../../lib/sandbox/names.ts';
import { REPO_DIR, sh as sandboxSh, shOk, type Sandbox } from '../../lib/sandbox/workspace.ts';
import type { ScriptTurn } from '../../lib/scripted-model/index.ts';
import type { Timing } from '../../workflows/definitions.ts';
import { expectLandedExactlyOnce, loggedRequests, retriedSessionAttempts, waitUntil } from '../helpers/chaos.ts';
import { PrivateEngine, type EngineStop } from '../helpers/private-engine.ts';
import { runKeyOf, sh, World } from '../helpers/world.ts';
import { startWorkerProcess, type WorkerProcess } from '../../workers/spawn.ts';

/** Session attempts retry quickly (300 ms, doubling), so the engine being back is noticed within seconds. */
const TIMING: Timing = { retryInitialIntervalMs: 300, heartbeatTimeoutMs: 4000, activityStartToCloseMs: 120_000 };
/** How long the engine stays down: longer than a model turn, so the turn in flight finds no engine. */
const DOWN_MS = 3000;

const CONTRACT = [
  'proof:',
  '  commands:',
  '    - { name: tests, run: npm test, timeout_ms: 60000 }',
  '  max_rounds: 3',
  'landing: { strategy: merge, target_branch: main, require_approval: false }',
].join('\n');

const write = (file: string, content: string) => ({ name: 'write_file', arguments: { path: file, content } });

/** Six turns, the middle ones slow: the engine goes down after the first file is written. Files are per case (the world's main moves). */
function script(name: string) {
  const fn = `engine${name.replace(/[^A-Za-z0-9]/g, '')}`;
  const source = `src/${fn}.js`;
  const test = `test/${fn}.test.js`;
  const turns: ScriptTurn[] = [
    { tool_calls: [{ name: 'read_file', arguments: { path: 'src/index.js' } }] },
    { delay_ms: 1500, tool_calls: [write(source, `export function ${fn}(text) {\n  return \`\${text}~\`;\n}\n`)] },
    {
      delay_ms: 1500,
      tool_calls: [write(test, `import test from 'node:test';\nimport assert from 'node:assert/strict';\nimport { ${fn} } from '../src/${fn}.js';\n\ntest('${fn}', () => assert.equal(${fn}('hi'), 'hi~'));\n`)],
    },
    { delay_ms: 1500, tool_calls: [{ name: 'list_files', arguments: { path: 'src' } }] },
    // Reads the file written before the engine went down: it must still be there.
    { delay_ms: 500, tool_calls: [{ name: 'read_file', arguments: { path: source } }] },
    { tool_calls: [{ name: 'finish', arguments: { summary: `Added ${fn}() with a test.` } }] },
  ];
  return { turns, source, test };
}

let engine: PrivateEngine | undefined;
let world: World | undefined;
const workers: WorkerProcess[] = [];

beforeAll(async () => {
  engine = await PrivateEngine.start();
  // The world's sandbox checks and cleanup go to the private engine.
  world = await World.create({ extraContract: CONTRACT, docker: engine.docker });
  // The image the activities ask for, from the shared engine (where `npm test`'s setup built it).
  await engine.loadImage(dockerClient(), world.contract.config.sandbox.image);
}, 240_000);

afterAll(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.kill()));
  await world?.close();
  await engine?.close();
}, 120_000);

/** The agent's uncommitted files in the sandbox, with their content. */
async function changedFiles(engine: PrivateEngine, workflowId: string): Promise<Map<string, string>> {
  const sandbox = { docker: engine.docker, container: containerName(runKeyOf(workflowId)), user: world!.contract.config.sandbox.user };
  const status = await sandboxSh(sandbox, 'git status --porcelain --untracked-files=all');
  expect(status.exitCode, status.stderr).toBe(0);
  const files = new Map<string, string>();
  for (const line of status.stdout.split('\n').filter(Boolean)) {
    const file = line.slice(3);
    const content = await sandboxSh(sandbox, 'cat -- "$F"', { env: { F: `${REPO_DIR}/${file}` } });
    files.set(file, content.stdout);
  }
  return files;
}

/** What the run's pending activities last failed with, for a timeout's message. */
async function pendingFailures(handle: WorkflowHandle): Promise<string> {
  const description = await handle.describe().catch(() => undefined);
  const pending = description?.raw.pendingActivities ?? [];
  return pending.map((activity) => `${activity.activityType?.name} attempt ${activity.attempt}: ${activity.lastFailure?.message ?? 'no failure'}`).join('; ') || 'none pending';
}

describe('chaos: the Docker engine goes down mid agent session and is started again on its data root', () => {
  it.each<{ how: EngineStop; what: string }>([
    { how: 'SIGKILL', what: 'a crash: dockerd, containerd, shims and container processes SIGKILLed at once' },
    { how: 'SIGTERM', what: 'a normal restart: dockerd stops its containers and exits' },
  ])('$how ($what): the sandbox is re-attached and the run lands once', async ({ how }) => {
    const id = world!.id(how.toLowerCase());
    const title = `Docker engine ${how}`;
    const { turns: steps, source, test: testFile } = script(how);
    await world!.addIssue({ identifier: id, title }, steps);
    const requestLog = path.join(world!.root, `model-requests-${how}.jsonl`);
    const turns = () => loggedRequests(requestLog, id).map((request) => request.turn);
    const worker = await startWorkerProcess({
      temporalAddress: inject('temporalAddress'),
      taskQueue: world!.taskQueue,
      stateDir: world!.state,
      scriptsDir: world!.scripts,
      requestLog,
      env: { DOCKER_HOST: engine!.host },
    });
    workers.push(worker);
    const handle = await world!.start(id, TIMING);
    const sandbox = engine!.docker.getContainer(containerName(runKeyOf(handle.workflowId)));

    // Turn 2 was asked, so turn 1's file is written; the model takes 1.5 s to answer turn 2.
    await waitUntil(() => turns().length >= 3, 'the model got three requests', 120_000, 25);
    const before = await sandbox.inspect();
    expect(before.State.Running).toBe(true);
    const written = await changedFiles(engine!, handle.workflowId);
    expect([...written.keys()]).toContain(source);

    const stoppedAt = Date.now();
    await engine!.stop(how);
    const beforeRestart = turns();
    expect(beforeRestart).not.toContain(steps.length - 1);
    const inFlight = beforeRestart.at(-1)!;
    console.info(`[chaos] ${id}: engine stopped (${how}) ${Date.now() - stoppedAt} ms after turns ${JSON.stringify(beforeRestart)}; files written: ${[...written.keys()].join(', ')}`);
    await new Promise((resolve) => setTimeout(resolve, DOWN_MS));
    await engine!.start();

    // The engine came back with the container stopped; the session's retry started the same one again.
    await waitUntil(async () => {
      const info = await sandbox.inspect();
      return info.State.Running && Date.parse(info.State.StartedAt) > stoppedAt;
    }, 'the sandbox container runs again', 60_000, 100).catch(async (error: Error) => {
      throw new Error(`${error.message}; pending: ${await pendingFailures(handle)}`);
    });
    const after = await sandbox.inspect();
    expect(after.Id).toBe(before.Id);
    expect(after.Mounts.map((mount) => mount.Name)).toContain(volumeName(runKeyOf(handle.workflowId)));

    const result = await expectLandedExactlyOnce(world!, handle, id, title);
    expect(worker.exited).toBe(false); // the worker itself lived through the engine going away
    console.info(`[chaos] ${id}: turns ${JSON.stringify(turns())}; retried session attempts ${JSON.stringify(await retriedSessionAttempts(handle))}`);

    // Nothing done before the restart is lost: every file is in the landed tree, as it was written.
    for (const [file, content] of written) {
      expect(await sh(world!.remote, `git show ${result.landedCommit}:${file}`), file).toBe(content.trimEnd());
    }
    expect(await sh(world!.remote, `git ls-tree -r --name-only ${result.landedCommit}`)).toContain(testFile);

    // No completed turn was asked again; only the one in flight when the engine went down may have been.
    const all = turns();
    expect(all.slice(0, beforeRestart.length)).toEqual(beforeRestart);
    expect(all.at(-1)).toBe(steps.length - 1);
    for (let i = 1; i < all.length; i++) expect(all[i]!, `turns ${JSON.stringify(all)}`).toBeGreaterThanOrEqual(all[i - 1]!);
    const counts = new Map<number, number>();
    for (const turn of all) counts.set(turn, (counts.get(turn) ?? 0) + 1);
    for (const [turn, count] of counts) expect(count, `turn ${turn} in ${JSON.stringify(all)}`).toBeLessThanOrEqual(turn === inFlight ? 2 : 1);
    expect([...counts.keys()].sort((a, b) => a - b)).toEqual(steps.map((_turn, index) => index));

    // Nothing is left on the engine: no container, no volume.
    expect(await engine!.docker.listContainers({ all: true })).toEqual([]);
    expect((await engine!.docker.listVolumes()).Volumes ?? []).toEqual([]);
    await worker.kill();
  }, 150_000);

  it('a stopped sandbox is started again, a removed one created again on its volume; a lost volume is reported', async () => {
    const docker = engine!.docker;
    const workflowId = `${world!.prefix}-reattach`;
    const limits = world!.contract.config.sandbox;
    const sandbox: Sandbox = { docker, container: containerName(workflowId), user: limits.user, reattach: () => reattachSandbox(docker, workflowId, limits) };
    try {
      await ensureSandbox(docker, workflowId, limits);
      await shOk(sandbox, `mkdir -p ${REPO_DIR} && echo kept > ${REPO_DIR}/work.txt`, { workdir: '/' });
      expect(await reattachSandbox(docker, workflowId, limits)).toBe('running');

      await docker.getContainer(sandbox.container).stop({ t: 0 });
      expect(await shOk(sandbox, 'cat work.txt')).toBe('kept\n'); // the command re-attached it
      await docker.getContainer(sandbox.container).stop({ t: 0 });
      expect(await reattachSandbox(docker, workflowId, limits)).toBe('started');

      await docker.getContainer(sandbox.container).remove({ force: true });
      expect(await shOk(sandbox, 'cat work.txt')).toBe('kept\n');
      await docker.getContainer(sandbox.container).remove({ force: true });
      expect(await reattachSandbox(docker, workflowId, limits)).toBe('recreated');
      expect(await shOk(sandbox, 'cat work.txt')).toBe('kept\n');

      await removeSandbox(docker, workflowId);
      const lost = await reattachSandbox(docker, workflowId, limits).catch((error: Error) => error);
      expect(lost).toBeInstanceOf(SandboxLostError);
      expect((lost as Error).message).toContain(`workspace volume ${volumeName(workflowId)}`);
    } finally {
      await removeSandbox(docker, workflowId);
    }
  });
});
