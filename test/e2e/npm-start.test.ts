/**
 * README's main job, as a user runs it: `npm start` in a fresh state folder brings up its own Temporal
 * dev server (detached, on free ports), the Docker engine and the sandbox image, seeds the demo and
 * starts the ready issues' workflows with the scripted model. A person approves DEMO-1 from another
 * shell; it lands on the demo's bare remote and the tracker says Done. DEMO-2 needs a second round
 * after a failed proof; DEMO-4 waits for DEMO-1. Ctrl-C stops the worker, `cadenza down` the server.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import { dockerClient } from '../../infra/docker.ts';
import { projectRoot } from '../../infra/paths.ts';
import { run, waitFor } from '../../infra/process.ts';
import { freePort, stopDevServer } from '../../infra/temporal.ts';
import { loadContract } from '../../lib/contract/index.ts';
import { LocalTracker } from '../../lib/tracker/local.ts';
import { MANAGED_LABEL, WORKFLOW_LABEL } from '../../lib/sandbox/names.ts';
import { issueWorkflowId, statusQuery, type IssueStatus } from '../../workflows/definitions.ts';

const state = mkdtempSync(path.join(tmpdir(), 'cadenza-npm-start-'));
const demo = path.join(state, 'demo');
const testStartedAt = Math.floor(Date.now() / 1000) - 1;
let env: NodeJS.ProcessEnv = {};
let app: ChildProcess | undefined;
/** A second `cadenza up --exit-when-done` while the first runs. */
let second: ChildProcess | undefined;
let appExit: Promise<number | null> = Promise.resolve(null);
let output = '';
let connection: Connection | undefined;

/** The CLI, as a user runs it from a second shell. */
async function cadenza(args: string[], via: 'tsx' | 'bin' = 'tsx') {
  const [command, prefix] = via === 'tsx' ? [path.join(projectRoot, 'node_modules/.bin/tsx'), ['workers/cli.ts']] : [path.join(projectRoot, 'bin/cadenza'), []];
  const result = await run(command, [...prefix, ...args], { cwd: projectRoot, env });
  return { ...result, output: result.stdout + result.stderr };
}

/** Waits until npm start has printed a line matching `pattern`, failing early if it exited. */
async function waitForOutput(pattern: RegExp, timeoutMs: number): Promise<void> {
  let exited = false;
  void appExit.then(() => (exited = true));
  const seen = await waitFor(async () => pattern.test(output), timeoutMs, 200, () => exited);
  if (!seen) throw new Error(`npm start ${exited ? 'exited' : 'did not print'} ${pattern} within ${timeoutMs / 1000} s. Its output:\n${output}`);
}

async function remoteSubjects(): Promise<string[]> {
  const log = await run('git', ['--git-dir', path.join(demo, 'remote.git'), 'log', '--format=%s', 'main']);
  return log.stdout.trim().split('\n');
}

/** Sandboxes of this test's demo runs: DEMO workflow ids, created since the test started. */
async function removeOurSandboxes(): Promise<void> {
  const docker = dockerClient();
  const ours = (labels: Record<string, string> | null | undefined) => /(^|:)cadenza-[a-z0-9-]+-DEMO-\d+$/.test(labels?.[WORKFLOW_LABEL] ?? '');
  const containers = await docker.listContainers({ all: true, filters: { label: [`${MANAGED_LABEL}=true`] } });
  for (const container of containers.filter((c) => ours(c.Labels) && c.Created >= testStartedAt)) {
    await docker.getContainer(container.Id).remove({ force: true, v: true }).catch(() => undefined);
  }
  const { Volumes: volumes } = await docker.listVolumes({ filters: { label: [`${MANAGED_LABEL}=true`] } });
  for (const volume of (volumes ?? []).filter((v) => ours(v.Labels) && Date.parse((v as { CreatedAt?: string }).CreatedAt ?? '') / 1000 >= testStartedAt)) {
    await docker.getVolume(volume.Name).remove().catch(() => undefined);
  }
}

function processGroupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

afterAll(async () => {
  if (process.env.CADENZA_TEST_TRACE) console.error(output);
  // Whatever a failed run left: the app (as Ctrl-C would), the detached server, sandboxes, the folder.
  for (const child of [second, app]) {
    const pid = child?.pid;
    if (!pid || !processGroupAlive(pid)) continue;
    try {
      process.kill(-pid, 'SIGINT');
    } catch {
      // already gone
    }
    if (!(await waitFor(async () => !processGroupAlive(pid), 20_000, 200))) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  await connection?.close();
  await stopDevServer(path.join(state, 'temporal'));
  await removeOurSandboxes();
  rmSync(state, { recursive: true, force: true });
}, 120_000);

describe('npm start, the main job in README', () => {
  it('runs the demo end to end: approve DEMO-1, it lands; DEMO-2 needs two rounds; DEMO-4 waits', async () => {
    const [port, uiPort] = [await freePort(), await freePort()];
    env = { ...process.env, CADENZA_STATE_DIR: state, CADENZA_TEMPORAL_PORT: String(port), CADENZA_TEMPORAL_UI_PORT: String(uiPort) };
    for (const name of ['OPENAI_API_KEY', 'OPENAI_BASE_URL', 'CADENZA_TEMPORAL_ADDRESS', 'CADENZA_SCRIPTS_DIR', 'CADENZA_QUIET']) delete env[name];

    // Its own process group, like a terminal's foreground job, so Ctrl-C reaches npm, tsx and node.
    app = spawn('npm', ['start'], { cwd: projectRoot, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    app.stdout!.on('data', (chunk) => (output += chunk));
    app.stderr!.on('data', (chunk) => (output += chunk));
    const child = app;
    appExit = new Promise((resolve) => child.on('exit', (code) => resolve(code)));

    // Set-up steps with their durations, then the dispatch decisions and how to approve.
    await waitForOutput(/Phase changes follow/, 180_000);
    // Workflow ids carry the demo project's id (derived from its tracker folder and repository).
    const demoConfig = loadContract(path.join(demo, 'WORKFLOW.md'), {}).config;
    const wf = (id: string) => issueWorkflowId(demoConfig, id);
    expect(wf('DEMO-1')).toMatch(/^cadenza-remote-[0-9a-f]{8}-DEMO-1$/);
    expect(output).toMatch(/==> Temporal dev server on \d+ \(UI \d+\)\n\s+started at 127\.0\.0\.1:\d+.*\(\d+\.\ds\)/);
    expect(output).toMatch(/==> Docker engine\n/);
    expect(output).toMatch(/==> Sandbox image\n/);
    expect(output).toContain(`==> Demo project in ${demo}`);
    expect(output).toContain('model: the scripted model (no OPENAI_API_KEY set)');
    expect(output).toContain(`DEMO-1 started as ${wf('DEMO-1')}`);
    expect(output).toContain(`DEMO-2 started as ${wf('DEMO-2')}`);
    expect(output).toContain('DEMO-4 waits: blocked by DEMO-1 (Todo)');
    expect(output).toContain(`created cadenza-poll-${demoConfig.project!.id}: every 5000 ms, overlap skip`);
    expect(output).toContain(`http://127.0.0.1:${uiPort}/namespaces/default/workflows`);
    // Hints a person can paste as printed: this server's address, the Temporal CLI's path.
    expect(output).toContain(`npx cadenza --address 127.0.0.1:${port} approve DEMO-1 --by YOUR-NAME`);
    expect(output).toContain(`./.cadenza/bin/temporal --address 127.0.0.1:${port} workflow update execute --workflow-id ${wf('DEMO-1')} --name approveLanding --input '{"by":"YOUR-NAME"}'`);
    expect(output).toContain(`./.cadenza/bin/temporal --address 127.0.0.1:${port} workflow signal --workflow-id ${wf('DEMO-1')} --name approveLanding --input '{"by":"YOUR-NAME"}'`);
    expect(output).toContain(`pause it: npx cadenza --address 127.0.0.1:${port} schedule pause --reason`);
    expect(output).toContain(`The worker's full log (warnings, stack traces): ${path.join(state, 'logs', 'worker.log')}`);

    // The Web UI of the detached dev server answers.
    const ui = await fetch(`http://127.0.0.1:${uiPort}/`);
    expect(ui.status).toBe(200);

    connection = await Connection.connect({ address: `127.0.0.1:${port}` });
    const client = new Client({ connection });
    const statusOf = (id: string) => client.workflow.getHandle(wf(id)).query(statusQuery);

    await waitForOutput(/DEMO-1\s+\S+ -> AwaitingApproval/, 240_000);
    const shown = await cadenza(['status', 'DEMO-1'], 'bin');
    expect(shown.code, shown.output).toBe(0);
    expect(shown.stdout).toContain('phase       AwaitingApproval, round 1');
    expect(shown.stdout).toMatch(/proof round 1: passed/);
    expect(shown.stdout).toContain('src/index.js');
    expect(await remoteSubjects()).toEqual(['textkit: initial import']); // nothing lands before approval

    // A second `up` (a second worker) reuses the server and the seeded demo and starts no
    // duplicates; with --exit-when-done it follows the open runs and exits once they have closed.
    let secondOutput = '';
    second = spawn(path.join(projectRoot, 'node_modules/.bin/tsx'), ['workers/cli.ts', 'up', '--exit-when-done'], { cwd: projectRoot, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    second.stdout!.on('data', (chunk) => (secondOutput += chunk));
    second.stderr!.on('data', (chunk) => (secondOutput += chunk));
    const secondChild = second;
    const secondExit = new Promise<number | null>((resolve) => secondChild.on('exit', (code) => resolve(code)));
    expect(await waitFor(async () => /Phase changes follow/.test(secondOutput), 120_000, 200), secondOutput).toBe(true);
    expect(secondOutput).toMatch(/already running at 127\.0\.0\.1:\d+/);
    expect(secondOutput).toContain('reusing the demo seeded earlier');
    expect(secondOutput).toContain(`DEMO-2 is already running as ${wf('DEMO-2')}`);
    expect(secondOutput).toContain(`DEMO-3 is already running as ${wf('DEMO-3')}`);
    expect(secondOutput).not.toContain('started as');
    expect(secondOutput).toContain(`DEMO-1 is already running as ${wf('DEMO-1')}`);
    expect(secondOutput).toMatch(/DEMO-4 waits: blocked by DEMO-1 \((Human Review|Todo)\)/);

    const approved = await cadenza(['approve', 'DEMO-1', '--by', 'e2e-test']);
    expect(approved.code, approved.output).toBe(0);
    expect(approved.stdout).toMatch(/DEMO-1: landing of [0-9a-f]{40} approved by e2e-test/);

    const tracker = new LocalTracker(path.join(demo, 'issues'), { onWarning: () => {} });
    const landed = await waitFor(async () => (await remoteSubjects())[0] === 'Land DEMO-1: Add slugify', 120_000, 500);
    expect(landed, `remote main: ${(await remoteSubjects()).join(' | ')}\n${output}`).toBe(true);
    const done = await waitFor(async () => (await tracker.fetchIssuesByIds(['DEMO-1']))[0]?.state === 'Done', 60_000, 500);
    expect(done, output).toBe(true);
    await waitForOutput(/DEMO-1\s+\S+ -> Done \(landed [0-9a-f]{10}/, 60_000);

    // A decision on a run that has ended is refused with one clear line.
    const again = await cadenza(['approve', 'DEMO-1', '--by', 'e2e-test']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`cadenza: the run ${wf('DEMO-1')} has already ended (completed, phase Done); there is nothing to approve.`);
    expect(again.output).not.toMatch(/\n\s+at .+:\d+:\d+/);

    // DEMO-2's first fix fails its proof; round 2 fixes it and waits for approval.
    await waitForOutput(/DEMO-2\s+Verifying -> Working \(round 2: proof failed\)/, 240_000);
    const waiting = await waitFor(async () => (await statusOf('DEMO-2')).phase === 'AwaitingApproval', 240_000, 1000);
    expect(waiting, output).toBe(true);
    const demo2: IssueStatus = await statusOf('DEMO-2');
    expect(demo2.round).toBe(2);
    expect(demo2.proof.map((proof) => [proof.round, proof.passed])).toEqual([[1, false], [2, true]]);

    // The overview lists the runs; DEMO-4 started only once its blocker DEMO-1 was Done.
    const table = await cadenza(['status']);
    expect(table.code, table.output).toBe(0);
    expect(table.stdout).toMatch(/DEMO-2\s+AwaitingApproval\s+2\s/);
    const listed = await cadenza(['list']);
    expect(listed.stdout).toMatch(new RegExp(`${wf('DEMO-1')}\\s+DEMO-1\\s+Done\\s+completed`));
    await waitForOutput(new RegExp(`DEMO-4 started as ${wf('DEMO-4')}`), 60_000);
    // The blocker is done once it landed and moved its issue to Done; its run may still be removing its sandbox.
    const demo4Start = (await client.workflow.getHandle(wf('DEMO-4')).describe()).startTime;
    const demo1Events = (await client.workflow.getHandle(wf('DEMO-1')).fetchHistory()).events ?? [];
    const landScheduled = demo1Events.find((event) => event.activityTaskScheduledEventAttributes?.activityType?.name === 'landChange')!.eventId!;
    const demo1Landed = demo1Events.find((event) => String(event.activityTaskCompletedEventAttributes?.scheduledEventId) === String(landScheduled))!;
    const landedAt = Number(demo1Landed.eventTime!.seconds) * 1000 + Math.floor((demo1Landed.eventTime!.nanos ?? 0) / 1e6);
    expect(demo4Start.getTime()).toBeGreaterThanOrEqual(landedAt);

    // Cancel what still waits while the workers run, so each run removes its own sandbox.
    for await (const info of client.workflow.list({ query: "WorkflowType = 'issueWorkflow' AND ExecutionStatus = 'Running'" })) {
      const handle = client.workflow.getHandle(info.workflowId);
      await handle.cancel();
      await handle.result().catch(() => undefined);
    }
    expect(await secondExit, secondOutput).toBe(0);
    expect(secondOutput).toMatch(/DEMO-1\s+\S+ -> Done \(landed [0-9a-f]{10}/);
    expect(secondOutput).toMatch(/DEMO-2\s+AwaitingApproval -> Cancelled\n/);
    let runs = 0;
    for await (const info of client.workflow.list({ query: "WorkflowType = 'issueWorkflow'" })) runs += info ? 1 : 0;
    expect(runs).toBe(4);

    // A run started by hand is followed by the running `up` too (a re-run of DEMO-1, cancelled here).
    const rerun = await cadenza(['start', 'DEMO-1', '--again']);
    expect(rerun.code, rerun.output).toBe(0);
    const startedTwice = `DEMO-1 started as ${wf('DEMO-1')}[^]*DEMO-1 started as ${wf('DEMO-1')}\n`;
    await waitForOutput(new RegExp(startedTwice), 60_000);
    await client.workflow.getHandle(wf('DEMO-1')).cancel();
    await waitForOutput(new RegExp(`${startedTwice}[^]*DEMO-1\\s+(\\S+ -> )?Cancelled`), 60_000);
    await client.workflow.getHandle(wf('DEMO-1')).result().catch(() => undefined);
    // Retried activities and their stack traces went to the log file, not to the screen.
    expect(output).not.toMatch(/\[WARN\]|\n\s+at .+:\d+:\d+\)?\n/);

    // Ctrl-C: the worker stops cleanly, the server keeps running until `cadenza down`.
    process.kill(-app.pid!, 'SIGINT');
    await appExit;
    const groupGone = await waitFor(async () => !processGroupAlive(app!.pid!), 30_000, 200);
    expect(groupGone, output).toBe(true);
    expect(output).toMatch(/==> Stopping the worker\n\s+stopped/);
    expect(output).toContain('Stop it with: npx cadenza down');
    const stopped = await cadenza(['down']);
    expect(stopped.code, stopped.output).toBe(0);
    expect(stopped.output).toMatch(/Stopping the Temporal dev server\n\s+stopped/);
    expect(existsSync(path.join(state, 'temporal', 'temporal.db'))).toBe(true);
  }, 400_000);
});
