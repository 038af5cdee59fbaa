/**
 * The `cadenza` command (`npx cadenza <command>`, `npm start` runs `up`).
 *
 *   up [--workflow PATH] [--exit-when-done]   set everything up, start the ready issues' workflows,
 *                                             run a worker in the foreground and print phase changes
 *   status [IDENTIFIER]                       issue workflows and their progress; one issue in full
 *   approve IDENTIFIER --by NAME [--comment TEXT] [--commit SHA]
 *   reject IDENTIFIER --by NAME --feedback TEXT
 *   list                                      open and recent issue workflows
 *   down                                      stop the Temporal dev server `up` started
 *
 * Progress goes to stderr (infra/log.ts); results, instructions and phase changes to stdout. Every
 * failure ends with one clear message and exit code 1; a usage mistake with the usage and exit code 2.
 */
import { createWriteStream, existsSync, mkdirSync } from 'node:fs';
import { inspect } from 'node:util';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Client, Connection, ScheduleNotFoundError, ScheduleOverlapPolicy, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { InfraError, runMain, say, step } from '../infra/log.ts';
import { binDir, stateDir } from '../infra/paths.ts';
import { sleep, waitFor } from '../infra/process.ts';
import { obtainDockerEngine, obtainSandboxImage, startServer } from '../infra/setup.ts';
import { defaultServerOptions, stopDevServer, temporalAnswers } from '../infra/temporal.ts';
import { ArtifactStore } from '../lib/artifacts.ts';
import { ContractError, loadContract, type Contract } from '../lib/contract/index.ts';
import { seedDemo } from '../lib/demo.ts';
import { approve, issueHandle, issueStatus, reject, startIssue } from '../client/issues.ts';
import { ensurePollSchedule, pollScheduleId } from '../client/schedule.ts';
import { createTrackerFactory } from '../lib/tracker/index.ts';
import type { PollerResult } from '../workflows/poller.ts';
import { TASK_QUEUE, issueKey, issueWorkflowId, phaseKey, type IssueStatus, type IssueWorkflowResult } from '../workflows/definitions.ts';

const USAGE = `usage: cadenza <command> [options]

commands:
  up [--workflow PATH] [--exit-when-done]
        set up Temporal, Docker and the sandbox image, seed the demo (without --workflow), start a
        workflow per ready issue and run a worker until Ctrl-C (--exit-when-done: until they close)
  status [IDENTIFIER]                            all issue workflows, or one issue in full
  approve IDENTIFIER --by NAME [--comment TEXT] [--commit SHA]  let a run waiting in AwaitingApproval land (--commit: refused unless it is the head shown in the proof)
  reject IDENTIFIER --by NAME --feedback TEXT    send it back for another round with feedback
  start IDENTIFIER [--again]                     start an issue's run now (--again: after an earlier run ended)
  show IDENTIFIER [walkthrough|diff|checks|egress|summary]
                                                 print the latest proof's evidence from the artifact store (default walkthrough)
  list                                           open and recent issue workflows
  schedule [list|pause|resume|delete] [SCHEDULE-ID] [--reason TEXT]
                                                 the tracker poll schedules; pause/resume/delete the one of
                                                 --workflow (or the id given); open runs are not touched
  down                                           stop the Temporal dev server that up started

options:
  --workflow PATH     the contract (default <state>/demo/WORKFLOW.md; state: CADENZA_STATE_DIR or .cadenza)
  --address HOST:PORT the Temporal frontend (default CADENZA_TEMPORAL_ADDRESS, else 127.0.0.1:CADENZA_TEMPORAL_PORT or 7233)
`;

const SCHEDULE_ACTIONS = ['list', 'pause', 'resume', 'delete'] as const;

/** A mistake in how the command was called: printed with the usage, exit code 2. */
class UsageError extends Error {}

const OPTIONS = {
  workflow: { type: 'string' },
  address: { type: 'string' },
  by: { type: 'string' },
  comment: { type: 'string' },
  feedback: { type: 'string' },
  'exit-when-done': { type: 'boolean' },
  again: { type: 'boolean' },
  commit: { type: 'string' },
  reason: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;
type Flag = keyof typeof OPTIONS;
type Flags = Partial<Record<Flag, string | boolean>>;

const COMMANDS: Record<string, { flags: Flag[]; positionals: [min: number, max: number] }> = {
  up: { flags: ['workflow', 'address', 'exit-when-done'], positionals: [0, 0] },
  status: { flags: ['workflow', 'address'], positionals: [0, 1] },
  approve: { flags: ['workflow', 'address', 'by', 'comment', 'commit'], positionals: [1, 1] },
  reject: { flags: ['workflow', 'address', 'by', 'feedback'], positionals: [1, 1] },
  start: { flags: ['workflow', 'address', 'again'], positionals: [1, 1] },
  show: { flags: ['workflow', 'address'], positionals: [1, 2] },
  list: { flags: ['workflow', 'address'], positionals: [0, 0] },
  schedule: { flags: ['workflow', 'address', 'reason'], positionals: [0, 2] },
  down: { flags: [], positionals: [0, 0] },
};

function parse(argv: string[]): { command: string; flags: Flags; args: string[] } {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    const message = (error as Error).message;
    const option = /'(-[^' ]+)/.exec(message)?.[1];
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new UsageError(`unknown option ${option}`);
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') throw new UsageError(`option ${option} needs a value`);
    throw new UsageError(message);
  }
  const flags = parsed.values as Flags;
  const [command, ...args] = parsed.positionals;
  if (flags.help) return { command: 'help', flags, args };
  if (!command) throw new UsageError('no command given');
  const spec = COMMANDS[command];
  if (!spec) throw new UsageError(`unknown command "${command}"`);
  for (const flag of Object.keys(flags) as Flag[]) {
    if (!spec.flags.includes(flag)) throw new UsageError(`${command} does not take --${flag}`);
  }
  const [min, max] = spec.positionals;
  if (command === 'schedule') {
    if (args[0] !== undefined && !(SCHEDULE_ACTIONS as readonly string[]).includes(args[0])) throw new UsageError(`schedule: unknown action "${args[0]}"; choose one of ${SCHEDULE_ACTIONS.join(', ')}`);
    if (args[0] === 'list' && args.length > 1) throw new UsageError('schedule list takes no schedule id');
    if (flags.reason !== undefined && args[0] !== 'pause' && args[0] !== 'resume') throw new UsageError('--reason goes with schedule pause or schedule resume');
    return { command, flags, args };
  }
  if (args.length < min) throw new UsageError(`${command} needs an issue identifier, e.g. cadenza ${command} DEMO-1`);
  if (args.length > max) throw new UsageError(`${command} takes ${max === 0 ? 'no arguments' : 'one issue identifier'}, got: ${args.join(' ')}`);
  return { command, flags, args };
}

// ---------------------------------------------------------------------------------------------
// Shared pieces

const out = (line = '') => process.stdout.write(`${line}\n`);
const demoDir = () => path.join(stateDir(), 'demo');
const defaultWorkflowFile = () => path.join(demoDir(), 'WORKFLOW.md');
const uiPort = () => Number(process.env.CADENZA_TEMPORAL_UI_PORT ?? 8233);

/** `npx cadenza` as a person must type it to reach `address` (the flag only when it is not the default). */
function cadenzaCommand(address: string): string {
  return address === '127.0.0.1:7233' ? 'npx cadenza' : `npx cadenza --address ${address}`;
}

/** The Temporal CLI as a person can run it here: its path unless `temporal` is on PATH, and the address unless default. */
function temporalCommand(address: string): string {
  const onPath = (process.env.PATH ?? '').split(path.delimiter).some((dir) => dir && existsSync(path.join(dir, 'temporal')));
  const local = path.join(binDir, 'temporal');
  const binary = process.env.TEMPORAL_CLI_PATH ?? (onPath || !existsSync(local) ? 'temporal' : path.relative(process.cwd(), local) || local);
  // A relative path runs only with a ./ in front (".cadenza/bin/temporal" would be looked up on PATH).
  const shown = binary.includes('/') && !path.isAbsolute(binary) && !binary.startsWith('./') && !binary.startsWith('../') ? `./${binary}` : binary;
  return address === '127.0.0.1:7233' || address === 'localhost:7233' ? shown : `${shown} --address ${address}`;
}

function addressOf(flags: Flags): string {
  return (flags.address as string | undefined) ?? process.env.CADENZA_TEMPORAL_ADDRESS ?? `127.0.0.1:${process.env.CADENZA_TEMPORAL_PORT ?? 7233}`;
}

function stringFlag(flags: Flags, flag: 'by' | 'comment' | 'feedback', command: string, what: string): string {
  const value = flags[flag];
  if (typeof value !== 'string' || value.trim() === '') throw new UsageError(`${command} needs --${flag} ${what}`);
  return value;
}

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Loads WORKFLOW.md; a ContractError becomes one message naming code, key, value and what is allowed. */
function contractFrom(file: string, hint: string, options: { warn?: boolean } = {}): Contract {
  try {
    const contract = loadContract(file);
    // Keys Cadenza does not read: named where a run starts (up, start), not on every status call.
    if (options.warn) for (const warning of contract.warnings ?? []) process.stderr.write(`warning: ${warning}\n`);
    return contract;
  } catch (error) {
    if (!(error instanceof ContractError)) throw error;
    const details = [
      error.key !== undefined ? `key: ${error.key}` : '',
      error.value !== undefined ? `value: ${show(error.value)}` : '',
      error.allowed !== undefined ? `allowed: ${error.allowed}` : '',
    ].filter(Boolean);
    throw new InfraError(`${path.resolve(file)} is not a valid contract [${error.code}]: ${error.message}${details.length ? ` (${details.join('; ')})` : ''}`, hint);
  }
}

/** The tracker kind workflow ids are derived from: the contract's, or `local` for the demo not yet seeded. */
function trackerKind(flags: Flags): string {
  const file = (flags.workflow as string | undefined) ?? defaultWorkflowFile();
  if (!flags.workflow && !existsSync(file)) return 'local';
  return contractFrom(file, 'fix the file, or pass --workflow with the contract your runs were started from.').config.tracker.kind;
}

async function connect(address: string): Promise<{ client: Client; connection: Connection }> {
  let connection: Connection;
  try {
    connection = await Connection.connect({ address, connectTimeout: 5_000 });
  } catch {
    throw new InfraError(`no Temporal server answers at ${address}.`, 'start one with `npm start` (or `npx cadenza up`), or point --address / CADENZA_TEMPORAL_ADDRESS at your server.');
  }
  return { client: new Client({ connection }), connection };
}

/** Runs calls that need a worker (queries, updates) with a deadline, so a missing worker does not hang. */
async function withWorker<T>(connection: Connection, ms: number, call: () => Promise<T>): Promise<T> {
  try {
    return await connection.withDeadline(Date.now() + ms, call);
  } catch (error) {
    if (/deadline|DEADLINE_EXCEEDED|timed out|timeout/i.test(errorText(error))) {
      throw new InfraError(`no worker answered within ${ms / 1000} s.`, 'start one with `npx cadenza up` (it runs a worker in the foreground), then try again.');
    }
    throw error;
  }
}

function errorText(error: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = error; e instanceof Error && parts.length < 5; e = (e as { cause?: unknown }).cause) parts.push(e.message);
  return parts.join(': ');
}

function notFound(identifier: string, workflowId: string, address: string): InfraError {
  return new InfraError(`no workflow ${workflowId} for issue ${identifier} on ${address}.`, 'see the runs with `npx cadenza list`; `npx cadenza up` starts a workflow for each ready issue.');
}

function table(header: string[], rows: string[][]): void {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] ?? '').length)));
  for (const row of [header, ...rows]) out(row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd());
}

const short = (sha: string | null | undefined) => (sha ? sha.slice(0, 10) : '-');
const when = (date: Date | undefined) => (date ? date.toISOString().replace('T', ' ').slice(0, 19) : '-');
const oneLine = (text: string | null | undefined, max = 80) => {
  const line = (text ?? '').replace(/\s+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max - 3)}...` : line || '-';
};

// ---------------------------------------------------------------------------------------------
// up

interface Watched {
  identifier: string;
  handle: WorkflowHandle;
  runId?: string;
  /** Retries already reported, by activity id and attempt. */
  retriesShown?: Set<string>;
  last?: IssueStatus;
  closed: boolean;
}

async function up(flags: Flags): Promise<void> {
  const external = (flags.address as string | undefined) ?? process.env.CADENZA_TEMPORAL_ADDRESS;
  let address: string;
  let uiUrl: string | undefined;
  if (external) {
    address = external;
    await step(`Temporal server at ${address}`, async () => {
      if (!(await temporalAnswers(address, 5_000))) {
        throw new InfraError(`no Temporal server answers at ${address} (from ${flags.address ? '--address' : 'CADENZA_TEMPORAL_ADDRESS'}).`, 'start that server, or leave the address unset so cadenza starts its own dev server.');
      }
    }, () => 'answers (an existing server; cadenza does not start or stop it)');
  } else {
    const server = await startServer();
    address = server.address;
    uiUrl = server.uiUrl;
  }
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
  const { DefaultLogger, NativeConnection, Runtime, makeTelemetryFilterString } = await import('@temporalio/worker');
  const { cadenzaWorkflowBundle, createCadenzaWorker, createDeps } = await import('./worker.ts');
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
    temporalAddress: address,
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
  const native = await NativeConnection.connect({ address });
  const worker = await step(`Worker on task queue ${TASK_QUEUE}`, async () => {
    await cadenzaWorkflowBundle(sdkLogger);
    return createCadenzaWorker({ connection: native, deps: wired.deps });
  }, () => `ready on ${address}`);
  let workerFailure: Error | undefined;
  const running = worker.run().catch((error: Error) => {
    workerFailure = error;
  });
  const { client, connection } = await connect(address);

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
        const workflowId = issueWorkflowId(config.tracker.kind, id);
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

  printHowTo(address, uiUrl, config.tracker.kind, watched.map((w) => w.identifier).sort()[0] ?? 'DEMO-1', logFile);

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


function printHowTo(address: string, uiUrl: string | undefined, kind: string, example: string, logFile: string): void {
  const workflowId = issueWorkflowId(kind, example);
  const temporal = temporalCommand(address);
  const cadenza = cadenzaCommand(address);
  out('');
  out(`Temporal UI: ${uiUrl ? `${uiUrl}/namespaces/default/workflows?query=${encodeURIComponent("WorkflowType='issueWorkflow'")}` : `the Web UI of the server at ${address}`} (the issue runs; each run's details hold its proof and how to decide)`);
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
      if (run.last?.phase === 'Done') return; // already shown
      const result = (await run.handle.result()) as IssueWorkflowResult;
      const rounds = `after ${result.rounds} round${result.rounds === 1 ? '' : 's'}`;
      const outcome = result.landedCommit ? `landed ${short(result.landedCommit)} ` : result.pullRequest ? `pull request ${result.pullRequest.url} ` : '';
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
    case 'Failed':
      return ` (${oneLine(status.lastError, 160)})`;
    default:
      return '';
  }
}

// ---------------------------------------------------------------------------------------------
// show

const EVIDENCE = ['walkthrough', 'diff', 'checks', 'egress', 'summary'] as const;

/** Prints the latest proof's evidence from this machine's artifact store (the worker's state folder). */
async function showEvidence(flags: Flags, identifier: string, what = 'walkthrough'): Promise<void> {
  const address = addressOf(flags);
  const { client, connection } = await connect(address);
  let status: IssueStatus;
  try {
    const handle = issueHandle(client, trackerKind(flags), identifier);
    await handle.describe().catch((error: unknown) => {
      if (error instanceof WorkflowNotFoundError) throw notFound(identifier, handle.workflowId, address);
      throw error;
    });
    status = await withWorker(connection, 10_000, () => issueStatus(handle));
  } finally {
    await connection.close();
  }
  const proof = status.proof.at(-1);
  if (!proof) throw new InfraError(`${identifier} has no proof yet (phase ${status.phase}, round ${status.round}).`, `wait for Verifying to finish; \`npx cadenza status ${identifier}\` shows where it is.`);
  const artifacts = new ArtifactStore(path.join(stateDir(), 'artifacts'));
  const text = async (ref: string) => artifacts.getText(ref).catch(() => {
    throw new InfraError(`the artifact ${ref} is not in ${path.join(stateDir(), 'artifacts')}.`, 'run `cadenza show` where the worker keeps its state, or set CADENZA_STATE_DIR to that folder.');
  });
  if (what === 'walkthrough') out(await text(proof.walkthrough.ref));
  if (what === 'summary') out(await text(proof.summary.ref));
  if (what === 'diff') out(await text(proof.diff.ref));
  if (what === 'checks') {
    for (const check of [...proof.checks, ...(proof.baseTests ?? [])]) out(`=== ${check.name}: ${check.passed ? 'passed' : 'FAILED'} (exit ${check.exitCode})\n${await text(check.output.ref)}`);
  }
  if (what === 'egress') {
    if (!proof.egress) {
      out('Nothing left the sandboxes of this run.');
      return;
    }
    const records = JSON.parse(await text(proof.egress.log.ref)) as Array<{ phase: string; destination: string; allowed: boolean; reason: string; bytesIn: number; bytesOut: number }>;
    table(['PHASE', 'DESTINATION', 'DECISION', 'BYTES IN', 'BYTES OUT', 'WHY'], records.map((r) => [r.phase, r.destination, r.allowed ? 'allowed' : 'REFUSED', String(r.bytesIn), String(r.bytesOut), r.reason]));
  }
}

// ---------------------------------------------------------------------------------------------
// status, list

async function status(flags: Flags, identifier: string | undefined): Promise<void> {
  const address = addressOf(flags);
  const kind = trackerKind(flags);
  const { client, connection } = await connect(address);
  try {
    if (identifier) await statusOf(client, connection, kind, identifier, address);
    else await statusTable(client, connection);
  } finally {
    await connection.close();
  }
}

async function statusTable(client: Client, connection: Connection): Promise<void> {
  const rows: string[][] = [];
  for await (const info of client.workflow.list({ query: "WorkflowType = 'issueWorkflow'" })) {
    const identifier = info.typedSearchAttributes.get(issueKey) ?? info.workflowId;
    const phase = info.typedSearchAttributes.get(phaseKey) ?? '?';
    const run = info.status.name.toLowerCase();
    if (info.status.name !== 'RUNNING') {
      rows.push([identifier, phase, '-', '-', '-', '-', run, '-']);
      continue;
    }
    const handle = client.workflow.getHandle(info.workflowId, info.runId);
    const status = await withWorker(connection, 5_000, () => issueStatus(handle)).catch(() => null);
    if (!status) rows.push([identifier, phase, '?', '?', '?', '?', run, 'no worker answered the status query (is `npx cadenza up` running?)']);
    else rows.push([identifier, status.phase, String(status.round), String(status.turns), String(status.tokens.total), status.model ?? '-', run, oneLine(status.lastError)]);
    if (rows.length >= 200) break;
  }
  if (rows.length === 0) {
    out('No issue workflows yet. `npx cadenza up` starts one per ready issue.');
    return;
  }
  table(['ISSUE', 'PHASE', 'ROUND', 'TURNS', 'TOKENS', 'MODEL', 'RUN', 'LAST ERROR'], rows);
}

async function statusOf(client: Client, connection: Connection, kind: string, identifier: string, address: string): Promise<void> {
  const handle = issueHandle(client, kind, identifier);
  const description = await handle.describe().catch((error: unknown) => {
    if (error instanceof WorkflowNotFoundError) throw notFound(identifier, handle.workflowId, address);
    throw error;
  });
  const run = description.status.name;
  const status = await withWorker(connection, run === 'RUNNING' ? 10_000 : 3_000, () => issueStatus(handle)).catch((error: unknown) => {
    if (run === 'RUNNING') throw error;
    return null;
  });
  out(`${identifier}  ${status?.title ?? (description.memo?.title as string | undefined) ?? ''}`);
  out(`  workflow    ${handle.workflowId} (${run.toLowerCase()}, started ${when(description.startTime)}${description.closeTime ? `, closed ${when(description.closeTime)}` : ''})`);
  if (!status) {
    // A closed run with no worker to answer the query: what its result and search attributes say.
    out(`  phase       ${description.typedSearchAttributes.get(phaseKey) ?? '?'}`);
    const result = await handle.result().then((r) => r as IssueWorkflowResult, (error: Error) => error);
    if (result instanceof Error) out(`  last error  ${oneLine(errorText(result), 200)}`);
    else {
      out(`  round       ${result.rounds}${result.turns !== undefined ? `\n  turns       ${result.turns}` : ''}`);
      out(`  tokens      ${result.tokens.total} (input ${result.tokens.input}, output ${result.tokens.output})`);
      if (result.model) out(`  model       ${result.model}`);
      if (result.headCommit) out(`  approved    ${result.headCommit}`);
      out(`  landed      ${result.landedCommit ?? '-'}`);
      if (result.pullRequest) out(`  pull req.   #${result.pullRequest.number} ${result.pullRequest.url}`);
    }
    return;
  }
  out(`  phase       ${status.phase}, round ${status.round} (session attempt ${status.attempt})`);
  out(`  turns       ${status.turns}`);
  out(`  tokens      ${status.tokens.total} (input ${status.tokens.input}, output ${status.tokens.output})`);
  out(`  model       ${status.model ?? '-'}`);
  out(`  sandbox     ${status.sandbox ?? '-'}`);
  out(`  last error  ${status.lastError ?? '-'}`);
  out(`  decision    ${status.decision ? `${status.decision.kind} by ${status.decision.by}${status.decision.text ? `: ${oneLine(status.decision.text)}` : ''}` : '-'}`);
  out(`  landed      ${status.landedCommit ?? '-'}`);
  if (status.pullRequest) out(`  pull req.   #${status.pullRequest.number} ${status.pullRequest.url} (from ${status.pullRequest.branch})`);
  if (status.proof.length === 0) out('  proof       none yet');
  for (const proof of status.proof) {
    out(`  proof round ${proof.round}: ${proof.passed ? 'passed' : 'FAILED'} at commit ${proof.headCommit}`);
    for (const warning of proof.integrity ?? []) out(`    TEST INTEGRITY: ${warning}`);
    for (const check of proof.checks) {
      const verdict = check.passed ? 'passed' : check.timedOut ? 'timed out' : 'failed';
      out(`    check ${check.name}${check.required ? '' : ' (optional)'}: ${verdict}, exit ${check.exitCode}, ${(check.durationMs / 1000).toFixed(1)}s, output ${check.output.ref}`);
    }
    const changes = proof.changes?.map((change) => `${change.status} ${change.from ? `${change.from} -> ` : ''}${change.path}${change.note ? ` (${change.note})` : ''}`) ?? proof.changedFiles;
    out(`    changed files: ${changes.join(', ') || 'none'}`);
    out(`    diff ${proof.diff.ref}, walkthrough ${proof.walkthrough.ref}`);
  }
  if (status.phase === 'AwaitingApproval') {
    const cadenza = cadenzaCommand(address);
    out(`  waiting for a decision on ${status.headCommit ?? 'the head above'}:`);
    out(`    ${cadenza} approve ${identifier} --by YOUR-NAME${status.headCommit ? ` --commit ${status.headCommit.slice(0, 12)}` : ''}`);
    out(`    ${cadenza} reject ${identifier} --by YOUR-NAME --feedback "what to change"`);
  }
}

async function list(flags: Flags): Promise<void> {
  const { client, connection } = await connect(addressOf(flags));
  try {
    const rows: string[][] = [];
    for await (const info of client.workflow.list({ query: "WorkflowType = 'issueWorkflow'" })) {
      rows.push([
        info.workflowId,
        info.typedSearchAttributes.get(issueKey) ?? '-',
        info.typedSearchAttributes.get(phaseKey) ?? '-',
        info.status.name.toLowerCase(),
        when(info.startTime),
        when(info.closeTime),
      ]);
      if (rows.length >= 200) break;
    }
    if (rows.length === 0) out('No issue workflows yet. `npx cadenza up` starts one per ready issue.');
    else table(['WORKFLOW ID', 'ISSUE', 'PHASE', 'STATUS', 'STARTED', 'CLOSED'], rows);
  } finally {
    await connection.close();
  }
}

// ---------------------------------------------------------------------------------------------
// approve, reject, down

async function decide(kind: 'approve' | 'reject', flags: Flags, identifier: string): Promise<void> {
  const by = stringFlag(flags, 'by', kind, 'NAME (who decides)');
  const feedback = kind === 'reject' ? stringFlag(flags, 'feedback', kind, 'TEXT (what the agent should change)') : undefined;
  const address = addressOf(flags);
  const trackerKindName = trackerKind(flags);
  const { client, connection } = await connect(address);
  const handle = issueHandle(client, trackerKindName, identifier);
  try {
    const answer = await withWorker(connection, 30_000, () =>
      kind === 'approve' ? approve(handle, by, flags.comment as string | undefined, flags.commit as string | undefined) : reject(handle, by, feedback!));
    out(`${identifier}: ${answer}`);
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) {
      // Updates only reach running workflows: a run that has ended is reported as not found.
      const ended = await handle.describe().catch(() => null);
      if (!ended) throw notFound(identifier, handle.workflowId, address);
      const phase = ended.typedSearchAttributes.get(phaseKey);
      throw new InfraError(
        `the run ${handle.workflowId} has already ended (${ended.status.name.toLowerCase()}${phase ? `, phase ${phase}` : ''}); there is nothing to ${kind}.`,
        `see how it ended with \`npx cadenza status ${identifier}\`.`,
      );
    }
    if (error instanceof WorkflowUpdateFailedError) {
      throw new InfraError(error.cause?.message ?? error.message, `see where the run is with \`npx cadenza status ${identifier}\`.`);
    }
    if (/already completed|workflow execution already/i.test(errorText(error))) {
      throw new InfraError(`the run ${handle.workflowId} has already ended; there is nothing to ${kind}.`, `see how it ended with \`npx cadenza status ${identifier}\`.`);
    }
    throw error;
  } finally {
    await connection.close();
  }
}

/**
 * The poll schedules. Pausing keeps what the schedule is for in its memo and puts the reason in its
 * note (Temporal's pause replaces the note), so `schedule list` still says which contract it polls.
 */
async function scheduleCommand(flags: Flags, action: (typeof SCHEDULE_ACTIONS)[number], id: string | undefined): Promise<void> {
  const { client, connection } = await connect(addressOf(flags));
  try {
    if (action === 'list') {
      const rows: string[][] = [];
      for await (const summary of client.schedule.list()) {
        if (!summary.scheduleId.startsWith('cadenza-poll-')) continue;
        const every = summary.spec?.intervals?.[0]?.every;
        const cron = summary.spec?.calendars?.length ? 'cron' : '';
        const next = summary.info.nextActionTimes[0];
        rows.push([
          summary.scheduleId, summary.state.paused ? 'paused' : 'active', every !== undefined ? `every ${typeof every === 'number' ? `${every} ms` : String(every)}` : cron || '-',
          summary.state.paused ? '-' : when(next), String(summary.memo?.workflowFile ?? '-'), oneLine(summary.state.note, 60),
        ]);
      }
      if (!rows.length) {
        out('No Cadenza poll schedules on this server. `npx cadenza up` creates one for its WORKFLOW.md.');
        return;
      }
      return table(['SCHEDULE', 'STATE', 'SPEC', 'NEXT POLL', 'WORKFLOW.md', 'NOTE'], rows);
    }
    const workflowFile = path.resolve((flags.workflow as string | undefined) ?? defaultWorkflowFile());
    const scheduleId = id ?? pollScheduleId(workflowFile);
    const handle = client.schedule.getHandle(scheduleId);
    const described = await handle.describe().catch((error: unknown) => {
      if (error instanceof ScheduleNotFoundError) {
        throw new InfraError(`no schedule ${scheduleId}${id ? '' : ` (the poll schedule of ${workflowFile})`} on ${addressOf(flags)}.`, '`npx cadenza schedule list` shows the poll schedules; `npx cadenza up` creates one.');
      }
      throw error;
    });
    const purpose = String(described.memo?.workflowFile ?? workflowFile);
    const reason = (flags.reason as string | undefined)?.trim();
    if (action === 'pause') {
      await handle.pause(`Paused with cadenza schedule pause${reason ? `: ${reason}` : ''} (polls ${purpose})`);
      out(`${scheduleId} paused: no new runs start from ${purpose}; open runs go on. Resume with: ${cadenzaCommand(addressOf(flags))} schedule resume ${scheduleId}`);
    } else if (action === 'resume') {
      await handle.unpause(`Cadenza tracker poll for ${purpose}${reason ? ` (resumed: ${reason})` : ''}`);
      await handle.trigger(ScheduleOverlapPolicy.SKIP);
      out(`${scheduleId} resumed: polling ${purpose} now and then on its schedule.`);
    } else {
      await handle.delete();
      out(`${scheduleId} deleted: nothing polls ${purpose} any more; open runs go on. \`npx cadenza up\` creates it again.`);
    }
  } finally {
    await connection.close();
  }
}

async function down(): Promise<void> {
  const { dir } = defaultServerOptions('temporal');
  await step('Stopping the Temporal dev server', () => stopDevServer(dir), (was) =>
    was ? `stopped (its database stays in ${dir}; npm start brings it back)` : `none was running from ${dir}`);
}

// ---------------------------------------------------------------------------------------------

/** Starts one issue's run by hand: no-op while a run is open; `--again` after an earlier run ended. */
async function startOne(flags: Flags, identifier: string): Promise<void> {
  const contract = contractFrom((flags.workflow as string | undefined) ?? defaultWorkflowFile(), 'fix WORKFLOW.md; nothing was started.', { warn: true });
  const tracker = createTrackerFactory()(contract.config.tracker);
  const [issue] = await tracker.fetchIssuesByIds([identifier]).catch((error: Error) => {
    throw new InfraError(`cannot read the tracker: ${error.message}`, 'check the tracker settings in WORKFLOW.md.');
  });
  if (!issue) throw new InfraError(`the tracker has no issue ${identifier}.`, 'check the identifier (cadenza status lists the runs).');
  const { client, connection } = await connect(addressOf(flags));
  try {
    const handle = await startIssue(client, { issue, contract, again: Boolean(flags.again) });
    out(`${identifier}: ${handle.workflowId} is running`);
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) {
      throw new InfraError(`an earlier run of ${identifier} has ended and is not restarted by default.`, `run \`cadenza start ${identifier} --again\` to start a new run.`);
    }
    throw error;
  } finally {
    await connection.close();
  }
}

async function main(argv: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parse(argv);
    if (parsed.command === 'approve' || parsed.command === 'reject') {
      stringFlag(parsed.flags, 'by', parsed.command, 'NAME (who decides)');
      if (parsed.command === 'reject') stringFlag(parsed.flags, 'feedback', 'reject', 'TEXT (what the agent should change)');
    }
    const evidence = parsed.command === 'show' ? parsed.args[1] : undefined;
    if (evidence !== undefined && !(EVIDENCE as readonly string[]).includes(evidence)) {
      throw new UsageError(`show: unknown evidence "${evidence}"; choose one of ${EVIDENCE.join(', ')}`);
    }
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`cadenza: ${error.message}\n\n${USAGE}`);
    process.exit(2);
  }
  const { command, flags, args } = parsed;
  switch (command) {
    case 'help':
      out(USAGE);
      return;
    case 'up':
      return up(flags);
    case 'status':
      return status(flags, args[0]);
    case 'approve':
    case 'reject':
      return decide(command, flags, args[0]!);
    case 'start':
      return startOne(flags, args[0]!);
    case 'list':
      return list(flags);
    case 'show':
      return showEvidence(flags, args[0]!, args[1]);
    case 'schedule':
      return scheduleCommand(flags, (args[0] ?? 'list') as (typeof SCHEDULE_ACTIONS)[number], args[1]);
    case 'down':
      return down();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  await runMain(() => main(process.argv.slice(2)));
  // gRPC channels and the native runtime may hold the event loop open after a command is done.
  process.exit(process.exitCode ?? 0);
}
