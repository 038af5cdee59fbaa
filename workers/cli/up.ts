/** `cadenza up`: sets everything up, runs a worker in this process and prints phase changes. */
import { createWriteStream, mkdirSync } from 'node:fs';
import { inspect } from 'node:util';
import path from 'node:path';
import { ScheduleOverlapPolicy, type Client, type Connection, type WorkflowHandle } from '@temporalio/client';
import { InfraError, say, step } from '../../infra/log.ts';
import { stateDir } from '../../infra/paths.ts';
import { sleep, waitFor } from '../../infra/process.ts';
import { obtainDockerEngine, obtainSandboxImage, startServer } from '../../infra/setup.ts';
import { connectWorker, temporalSettings, TEMPORAL_ENV, type TemporalSettings } from '../../client/connection.ts';
import { issueStatus } from '../../client/issues.ts';
import { ensurePollSchedule } from '../../client/schedule.ts';
import { seedDemo } from '../../lib/demo.ts';
import { createTrackerFactory } from '../../lib/tracker/index.ts';
import type { Contract } from '../../lib/contract/index.ts';
import type { PollerResult } from '../../workflows/poller.ts';
import { TASK_QUEUE, issueKey, issueWorkflowId, phaseKey, type IssueStatus, type IssueWorkflowResult } from '../../workflows/definitions.ts';
import type { WorkerVersionInfo } from '../versioning.ts';
import { cadenzaCommand, connect, contractFrom, demoDir, errorText, oneLine, out, short, temporalCommand, withWorker, type Flags } from './common.ts';

interface Watched {
  identifier: string;
  handle: WorkflowHandle;
  runId?: string;
  /** Retries already reported, by activity id and attempt. */
  retriesShown?: Set<string>;
  last?: IssueStatus;
  closed: boolean;
}

export async function up(flags: Flags): Promise<void> {
  // Address, namespace, TLS and API key from the environment (--address overrides the address).
  const fromEnv = temporalSettings();
  const external = (flags.address as string | undefined) ?? (fromEnv.addressGiven ? fromEnv.address : undefined);
  let settings: TemporalSettings;
  let uiUrl: string | undefined;
  if (external) {
    settings = fromEnv.withAddress(external);
    await step(`Temporal server at ${settings.describe()}`, async () => {
      const probe = await connect(settings).catch((error: unknown) => {
        if (error instanceof InfraError) throw new InfraError(`${error.message} (address from ${flags.address ? '--address' : TEMPORAL_ENV.address})`, `${error.hint} Or leave the address unset so cadenza starts its own dev server.`);
        throw error;
      });
      await probe.connection.close();
    }, () => 'answers (an existing server; cadenza does not start or stop it)');
  } else {
    if (fromEnv.secured) {
      throw new InfraError(
        `TLS or an API key is set (${fromEnv.describe()}), but ${TEMPORAL_ENV.address} is not: cadenza would start its own dev server, which speaks plaintext.`,
        `set ${TEMPORAL_ENV.address} (or --address) to the server those credentials are for, or unset ${TEMPORAL_ENV.cert}, ${TEMPORAL_ENV.key}, ${TEMPORAL_ENV.ca}, ${TEMPORAL_ENV.serverName}, ${TEMPORAL_ENV.apiKey} and ${TEMPORAL_ENV.tls} to use the embedded dev server.`,
      );
    }
    const server = await startServer();
    settings = fromEnv.plaintextAt(server.address);
    uiUrl = server.uiUrl;
  }
  const address = settings.address;
  await obtainDockerEngine();
  const image = await obtainSandboxImage();

  let workflowFile = flags.workflow as string | undefined;
  if (!workflowFile) {
    const demo = await step(`Demo project in ${demoDir()}`, () => seedDemo(demoDir()), (seeded) =>
      seeded.seeded ? 'seeded: the textkit repository as remote.git, issues DEMO-1..4, scripts, WORKFLOW.md' : 'reusing the demo seeded earlier (issue states and landed commits are kept)');
    workflowFile = demo.workflowFile;
  }
  const contract = contractFrom(workflowFile, 'fix WORKFLOW.md and run `cadenza up` again; no workflow was started.', { warn: true });
  const config = contract.config;
  say(`    contract ${contract.path}: tracker ${config.tracker.kind}${config.tracker.path ? ` (${config.tracker.path})` : ''}, repo ${config.repo.url}`);
  if (config.sandbox.image !== image.name) await obtainSandboxImage(config.sandbox.image);
  (() => {
    try {
      return createTrackerFactory({ onWarning: (message) => say(`    tracker: ${message}`) })(config.tracker);
    } catch (error) {
      throw new InfraError((error as Error).message, 'use tracker.kind: local in WORKFLOW.md; no workflow was started.');
    }
  })();

  // The worker: the same wiring as workers/worker.ts, in this process (loaded here: the other
  // commands stay quick without the worker's modules).
  const { DefaultLogger, Runtime, makeTelemetryFilterString } = await import('@temporalio/worker');
  const { cadenzaWorkflowBundle, createCadenzaWorker, createDeps, describeSearchAttributes } = await import('../worker.ts');
  const { describeVersion } = await import('../versioning.ts');
  // The SDK's warnings (a retried activity's failure with its stack and task token) go to the log
  // file; the screen gets one line per error, and the log's path once.
  const logFile = path.join(stateDir(), 'logs', 'worker.log');
  mkdirSync(path.dirname(logFile), { recursive: true });
  const log = createWriteStream(logFile, { flags: 'a' });
  const toLog = (line: string) => log.write(`${new Date().toISOString()} ${line}\n`);
  const sdkLogger = new DefaultLogger('INFO', (entry) => {
    toLog(`[${entry.level}] ${entry.message}${entry.meta && Object.keys(entry.meta).length ? ` ${inspect(entry.meta, { depth: 4, breakLength: Infinity })}` : ''}`);
    if (entry.level === 'ERROR') say(`    worker error: ${oneLine(entry.message, 160)} (details in ${logFile})`);
  });
  Runtime.install({ logger: sdkLogger, telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'WARN' }) } } });
  say(`    the worker's log: ${logFile}`);
  const scriptsDir = process.env.CADENZA_SCRIPTS_DIR ?? path.join(contract.dir, 'scripts');
  let modelLine = '';
  const wired = await createDeps({
    temporal: settings,
    stateDir: stateDir(),
    scriptsDir,
    log: (line) => {
      toLog(line);
      if (line === modelLine || line.startsWith('model: ') || line.startsWith('scripted model (no OPENAI_API_KEY)')) return;
      say(`    worker: ${line.trimEnd().replace(/\n/g, '\n            ')}`);
    },
  });
  modelLine = wired.modelDescription;
  out(wired.modelDescription);
  const native = await connectWorker(settings);
  const worker = await step(`Worker on task queue ${TASK_QUEUE}`, async () => {
    await cadenzaWorkflowBundle(sdkLogger);
    return createCadenzaWorker({ connection: native, deps: wired.deps, temporal: settings });
  }, (ready) => [
    `ready on ${address}; this host's sandbox steps on ${ready.hostQueue}`,
    describeSearchAttributes(ready.searchAttributesAdded, settings.namespace),
    describeVersion(ready.version),
  ].filter(Boolean).join('\n    '));
  let workerFailure: Error | undefined;
  const running = worker.run().catch((error: Error) => {
    workerFailure = error;
  });
  const { client, connection } = await connect(settings);

  // Runs already open are followed; the poll Schedule decides what starts (Symphony's dispatch rules).
  const watched: Watched[] = [];
  /** Follows a run (by run id: a re-run of the same workflow id is a new run to follow). */
  const follow = (identifier: string, workflowId: string, runId?: string) => {
    const known = watched.find((w) => w.handle.workflowId === workflowId);
    if (known && (!runId || known.runId === runId || !known.closed)) return false;
    if (known) watched.splice(watched.indexOf(known), 1);
    watched.push({ identifier, handle: client.workflow.getHandle(workflowId, runId), runId, closed: false });
    return true;
  };
  const followRunning = async (announce: (identifier: string, workflowId: string) => string) => {
    for await (const info of client.workflow.list({ query: "WorkflowType = 'issueWorkflow' AND ExecutionStatus = 'Running'" })) {
      const id = info.typedSearchAttributes.get(issueKey) ?? info.workflowId;
      if (follow(id, info.workflowId, info.runId)) out(announce(id, info.workflowId));
    }
  };
  await followRunning((id, workflowId) => `${id} is already running as ${workflowId}`);
  await reportPinnedElsewhere(client, worker.version, address).catch(() => undefined);
  const since = new Date();
  const schedule = await step('Tracker poll schedule', async () => {
    const ensured = await ensurePollSchedule(client, { contract });
    if (!ensured.created && ensured.pausedNote === null) await client.schedule.getHandle(ensured.scheduleId).trigger(ScheduleOverlapPolicy.ALLOW_ALL);
    return ensured;
  }, ({ scheduleId, created, pausedNote }) => `${created ? 'created' : 'updated'} ${scheduleId}: ${config.schedule ? `cron ${config.schedule}` : `every ${config.polling.intervalMs} ms`}, overlap skip; ${pausedNote === null ? 'polling now' : `PAUSED (${pausedNote || 'no note'})`}`);
  if (schedule.pausedNote !== null) say(`    it stays paused: open runs are followed, nothing new starts. Resume with: ${cadenzaCommand(address)} schedule resume${flags.workflow ? ` --workflow ${flags.workflow}` : ""}`);
  else say(`    pause it: ${cadenzaCommand(address)} schedule pause${flags.workflow ? ` --workflow ${flags.workflow}` : ""} --reason "..." (or in the UI under Schedules)`);
  const seenPolls = new Set<string>();
  const seenWaits = new Set<string>();
  /** Prints what the polls since this `up` decided, and follows the runs they started. */
  const readPolls = async () => {
    const runs = [];
    for await (const info of client.workflow.list({ query: `TemporalScheduledById = '${schedule.scheduleId}' AND ExecutionStatus = 'Completed'` })) {
      if (!seenPolls.has(info.runId) && info.startTime >= since) runs.push(info);
    }
    runs.sort((a, b) => a.startTime.getTime() - b.startTime.getTime());
    for (const info of runs) {
      seenPolls.add(info.runId);
      const result = (await client.workflow.getHandle(info.workflowId, info.runId).result()) as PollerResult;
      if (result.contractWarning && !seenWaits.has(result.contractWarning)) {
        seenWaits.add(result.contractWarning);
        out(`poll: ${result.contractWarning}`);
      }
      for (const id of result.started) {
        const workflowId = issueWorkflowId(config, id);
        if (follow(id, workflowId)) out(`${id} started as ${workflowId}`);
      }
      for (const warning of result.contractWarnings ?? []) {
        if (seenWaits.has(warning)) continue;
        seenWaits.add(warning);
        out(`poll: warning: ${warning}`);
      }
      for (const { identifier, reason } of result.waiting) {
        if (seenWaits.has(`${identifier}: ${reason}`)) continue;
        seenWaits.add(`${identifier}: ${reason}`);
        out(`${identifier} waits: ${reason}`);
      }
      for (const error of result.errors) out(`poll: ${error}`);
    }
    return runs.length;
  };
  if (schedule.pausedNote === null) await step('First poll', async () => {
    if (!(await waitFor(async () => (await readPolls()) > 0 || seenPolls.size > 0, 60_000, 300))) throw new InfraError('the first tracker poll did not complete within 60 s', `check the worker output above and the schedule ${schedule.scheduleId} in the Temporal UI.`);
  }, () => `${watched.length} workflow${watched.length === 1 ? '' : 's'} open`);

  printHowTo(address, uiUrl, config, watched.map((w) => w.identifier).sort()[0] ?? 'DEMO-1', logFile, settings.namespace);

  // Phase changes until Ctrl-C (or, with --exit-when-done, until every run has closed).
  let stopSignal: string | undefined;
  let wake: () => void = () => {};
  const onSignal = (signal: string) => {
    if (stopSignal) return; // a terminal's Ctrl-C can arrive twice (process group and tsx)
    stopSignal = signal;
    wake();
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  while (!stopSignal && !workerFailure) {
    await readPolls().catch(() => undefined);
    // Every run is followed, however it started (the poll, `cadenza start`, a re-run with --again, the UI).
    await followRunning((id, workflowId) => `${id} started as ${workflowId}`).catch(() => undefined);
    for (const run of watched.filter((w) => !w.closed)) await poll(run, connection, address).catch(() => undefined);
    if (flags['exit-when-done'] && watched.every((w) => w.closed)) break;
    await Promise.race([sleep(2_000), new Promise<void>((resolve) => (wake = resolve))]);
  }

  await step('Stopping the worker', async () => {
    if (!workerFailure) {
      try {
        worker.shutdown();
      } catch {
        // already stopping
      }
    }
    await running;
    await native.close();
    await connection.close();
    await wired.close();
    await new Promise((resolve) => log.end(resolve));
  }, () => 'stopped');
  if (workerFailure) throw new InfraError(`the worker stopped: ${workerFailure.message}`, 'run `npx cadenza up` again; open runs continue where they stopped.');
  if (uiUrl) {
    out(`The Temporal server keeps running at ${address} (UI ${uiUrl}); open runs continue when a worker is back (npx cadenza up).`);
    out('Stop it with: npx cadenza down');
  } else {
    out(`The Temporal server at ${address} was not started by cadenza and is left as it is.`);
  }
}

function printHowTo(address: string, uiUrl: string | undefined, config: Contract['config'], example: string, logFile: string, namespace: string): void {
  const workflowId = issueWorkflowId(config, example);
  const temporal = temporalCommand(address);
  const cadenza = cadenzaCommand(address);
  out('');
  out(`Temporal UI: ${uiUrl ? `${uiUrl}/namespaces/${encodeURIComponent(namespace)}/workflows?query=${encodeURIComponent("WorkflowType='issueWorkflow'")}` : `the Web UI of the server at ${address}`} (the issue runs; each run's details hold its proof and how to decide)`);
  out(`When a run waits in AwaitingApproval, look at its proof (${cadenza} status ${example}, ${cadenza} show ${example} diff) and approve it:`);
  out(`  ${cadenza} approve ${example} --by YOUR-NAME`);
  out('or with the Temporal CLI, as an Update (answers) or a Signal:');
  out(`  ${temporal} workflow update execute --workflow-id ${workflowId} --name approveLanding --input '{"by":"YOUR-NAME"}'`);
  out(`  ${temporal} workflow signal --workflow-id ${workflowId} --name approveLanding --input '{"by":"YOUR-NAME"}'`);
  out(`Reject with: ${cadenza} reject ${example} --by YOUR-NAME --feedback "what to change"`);
  out(`The worker's full log (warnings, stack traces): ${logFile}`);
  out('Phase changes follow; Ctrl-C stops the worker (runs stay durable in Temporal).');
  out('');
}

/**
 * Open runs pinned to another build of this worker's deployment go on only while a worker of that
 * build runs (after a code change, the previous `up`'s): says which, and how to move them here.
 */
async function reportPinnedElsewhere(client: Client, version: WorkerVersionInfo, address: string): Promise<void> {
  if (version.mode !== 'pinned' || !version.deploymentName) return;
  const here = `${version.deploymentName}:${version.buildId}`;
  const elsewhere = new Map<string, string[]>();
  for await (const info of client.workflow.list({ query: `WorkflowType = 'issueWorkflow' AND ExecutionStatus = 'Running' AND TemporalWorkerDeployment = '${version.deploymentName}'` })) {
    const pinnedTo = String(info.searchAttributes?.TemporalWorkerDeploymentVersion?.[0] ?? '');
    if (!pinnedTo || pinnedTo === here) continue;
    elsewhere.set(pinnedTo, [...(elsewhere.get(pinnedTo) ?? []), info.typedSearchAttributes.get(issueKey) ?? info.workflowId]);
  }
  for (const [pinnedTo, runs] of elsewhere) {
    const build = pinnedTo.slice(version.deploymentName.length + 1);
    say(`    ${runs.length} open run${runs.length === 1 ? ' is' : 's are'} pinned to build ${build} (${runs.sort().join(', ')}): ${runs.length === 1 ? 'it goes' : 'they go'} on while a worker of that build runs. To move ${runs.length === 1 ? 'it' : 'them'} to this build (${version.buildId}), if the workflow code replays ${runs.length === 1 ? 'its history' : 'their histories'}:`);
    say(`      ${temporalCommand(address)} workflow update-options --query "TemporalWorkerDeploymentVersion = '${pinnedTo}' AND ExecutionStatus = 'Running'" --versioning-override-behavior pinned --versioning-override-deployment-name ${version.deploymentName} --versioning-override-build-id ${version.buildId} --reason "move to build ${version.buildId}"`);
  }
}

/** Prints one line when a watched run changes phase or round. */
async function poll(run: Watched, connection: Connection, address: string): Promise<void> {
  const description = await run.handle.describe();
  const label = run.identifier.padEnd(8);
  const from = run.last ? `${run.last.phase} -> ` : '';
  const runStatus = description.status.name;
  if (runStatus === 'PAUSED') return;
  if (runStatus !== 'RUNNING') {
    run.closed = true;
    const phase = description.typedSearchAttributes.get(phaseKey);
    if (runStatus === 'COMPLETED') {
      if (run.last?.phase === 'Done' || run.last?.phase === 'Reverted') return; // already shown
      const result = (await run.handle.result()) as IssueWorkflowResult;
      const rounds = `after ${result.rounds} round${result.rounds === 1 ? '' : 's'}`;
      const outcome = result.revertCommit ? `landed ${short(result.landedCommit ?? '')}, reverted by ${short(result.revertCommit)} ` : result.landedCommit ? `landed ${short(result.landedCommit)} ` : result.pullRequest ? `pull request ${result.pullRequest.url} ` : '';
      out(`${label}${from}${result.phase} (${outcome}${rounds})`);
    } else if (runStatus === 'FAILED') {
      if (run.last?.phase === 'Failed') return;
      const reason = await run.handle.result().then(() => '', (error: Error) => errorText(error).replace(/^Workflow execution failed: /, ''));
      out(`${label}${from}Failed (${oneLine(reason, 160)})`);
    } else if (runStatus === 'CANCELLED') {
      if (run.last?.phase === 'Cancelled') return;
      out(`${label}${from}Cancelled`);
    } else {
      out(`${label}${from}${runStatus.toLowerCase()}${phase ? ` (the run ended outside Cadenza while in ${phase})` : ''}`);
    }
    return;
  }
  // A retried step is one line (its attempt and why the last one failed), not the SDK's warning.
  for (const pending of description.raw.pendingActivities ?? []) {
    const attempt = pending.attempt ?? 1;
    const type = pending.activityType?.name ?? 'activity';
    const key = `${pending.activityId}:${attempt}`;
    if (attempt > 1 && pending.lastFailure && !run.retriesShown?.has(key)) {
      (run.retriesShown ??= new Set()).add(key);
      out(`${label}${type} is retried (attempt ${attempt}) after: ${oneLine(rootFailure(pending.lastFailure), 140)}`);
    }
  }
  const status = await withWorker(connection, 10_000, () => issueStatus(run.handle));
  const last = run.last;
  if (last && last.phase === status.phase && last.round === status.round) return;
  run.last = status;
  out(`${label}${from}${status.phase}${phaseNote(status, run.identifier, address)}`);
}

/** The innermost message of a failure from the API (the activity's own error, not "activity failed"). */
function rootFailure(failure: { message?: string | null; cause?: unknown }): string {
  let current = failure;
  while (current.cause) current = current.cause as typeof failure;
  return current.message ?? 'unknown failure';
}

function phaseNote(status: IssueStatus, identifier: string, address: string): string {
  const round = status.round;
  switch (status.phase) {
    case 'Working': {
      if (round <= 1) return ` (round ${round || 1})`;
      const proof = status.proof.at(-1);
      if (proof && proof.round === round - 1 && !proof.passed) return ` (round ${round}: proof failed)`;
      if (status.decision?.kind === 'rejected') return ` (round ${round}: rejected by ${status.decision.by}: ${oneLine(status.decision.text, 60)})`;
      return ` (round ${round}: landing stopped)`;
    }
    case 'Verifying':
      return ` (round ${round}: ${status.turns} turns, ${status.tokens.total} tokens so far)`;
    case 'AwaitingApproval':
      return ` (round ${round}: proof passed; ${cadenzaCommand(address)} approve ${identifier} --by YOUR-NAME${status.headCommit ? ` --commit ${status.headCommit.slice(0, 12)}` : ''})`;
    case 'Landing':
      return status.decision ? ` (approved by ${status.decision.by})` : '';
    case 'Done':
      if (status.pullRequest) return ` (pull request ${status.pullRequest.url})`;
      return status.landedCommit ? ` (landed ${short(status.landedCommit)})` : '';
    case 'Watching':
      return status.watch ? ` (${status.watch.commit.slice(0, 12)}: pass ${status.watch.runs + 1})` : '';
    case 'Reverted':
      return status.watch?.revert?.commit ? ` (reverted by ${short(status.watch.revert.commit)})` : '';
    case 'Failed':
      return ` (${oneLine(status.lastError, 160)})`;
    default:
      return '';
  }
}
