/**
 * A throw-away world for end-to-end tests: a bare git remote made from the demo project, a local
 * tracker folder, scripts for the scripted model, a WORKFLOW.md, and a worker on its own task queue
 * wired exactly as production wires it (real Temporal, real Docker, real git).
 */
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { inject } from 'vitest';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import type Docker from 'dockerode';
import { dockerClient } from '../../infra/docker.ts';
import { projectRoot } from '../../infra/paths.ts';
import { removeSandbox } from '../../lib/sandbox/container.ts';
import { sandboxKey, scopedRunKey } from '../../lib/sandbox/names.ts';
import { run } from '../../infra/process.ts';
import { loadContract, type Contract } from '../../lib/contract/index.ts';
import { startIssue } from '../../client/issues.ts';
import { ensurePollSchedule } from '../../client/schedule.ts';
import type { PollerResult } from '../../workflows/poller.ts';
import { LocalTracker, writeIssueFile, type IssueFileFields } from '../../lib/tracker/local.ts';
import { startScriptedModel, type ScriptTurn, type ScriptedModel } from '../../lib/scripted-model/index.ts';
import { createCadenzaWorker, createDeps, type WorkerDeps } from '../../workers/worker.ts';
import { issueWorkflowId, statusQuery, type IssueStatus, type Phase, type Timing } from '../../workflows/definitions.ts';
import { uniqueQueue } from './temporal.ts';

export const FAST: Timing = { retryInitialIntervalMs: 300, heartbeatTimeoutMs: 30_000 };

export async function sh(cwd: string, command: string): Promise<string> {
  const result = await run('sh', ['-c', command], { cwd });
  if (result.code !== 0) throw new Error(`${command} failed: ${result.stderr}`);
  return result.stdout.trim();
}

export interface WorldOptions {
  /** Front matter lines appended to the default contract (YAML). */
  extraContract?: string;
  /** Extra worker environment. */
  env?: NodeJS.ProcessEnv;
  /**
   * Run the worker as with a real model: OPENAI_API_KEY set to this value and OPENAI_BASE_URL pointed
   * at an OpenAI-wire server (the scripted model) that the world starts.
   */
  modelKey?: string;
  /** Contract lines that depend on this world (its identifier prefix), e.g. a tracker on a fake server. */
  contractFor?: (prefix: string) => Promise<string>;
  /** With `modelKey`: the worker's ANTHROPIC_API_KEY, with ANTHROPIC_BASE_URL at the same model server. */
  anthropicKey?: string;
  /** With `modelKey`: put something (a failing proxy) between the worker and the model server. */
  wrapModelUrl?: (url: string) => Promise<string>;
  /** Another Temporal frontend than the run's shared test server (a test that restarts its own server). */
  temporalAddress?: string;
  /** Another Docker engine than DOCKER_HOST's (a test that restarts its own engine): sandbox checks and cleanup use it. */
  docker?: Docker;
  /** The project the remote starts with (default: the demo's textkit). */
  seed?: string;
}


/** The key a run's Docker objects and refs are named after (activities/run-key.ts); the tests' runs are in the default namespace. */
export const runKeyOf = (workflowId: string) => scopedRunKey('default', workflowId);
export class World {
  readonly root = mkdtempSync(path.join(tmpdir(), 'cadenza-world-'));
  readonly remote = path.join(this.root, 'remote.git');
  readonly issues = path.join(this.root, 'issues');
  readonly scripts = path.join(this.root, 'scripts');
  readonly state = path.join(this.root, 'state');
  readonly workflowFile = path.join(this.root, 'WORKFLOW.md');
  readonly taskQueue = uniqueQueue('e2e');
  readonly tracker = new LocalTracker(this.issues, { onWarning: () => {} });
  /** Identifiers are unique per world, so no two test runs ever share a workflow id or a sandbox. */
  readonly prefix = `T${Date.now().toString(36).toUpperCase()}${Math.random().toString(36).slice(2, 5).toUpperCase()}`;
  private handles: WorkflowHandle[] = [];
  private schedules: string[] = [];
  client!: Client;
  contract!: Contract;
  wired!: WorkerDeps;
  /** The OpenAI-wire server standing in for a real model endpoint (with `modelKey`). */
  externalModel?: ScriptedModel;
  /** The Temporal frontend this world's clients and workers use. */
  temporalAddress!: string;
  /** The Docker engine this world's sandboxes live on. */
  docker!: Docker;
  private connection!: Connection;
  private nativeConnection!: NativeConnection;

  static async create(options: WorldOptions = {}): Promise<World> {
    const world = new World();
    await world.init(options);
    return world;
  }

  private async init(options: WorldOptions) {
    this.temporalAddress = options.temporalAddress ?? inject('temporalAddress');
    this.docker = options.docker ?? dockerClient();
    const seed = path.join(this.root, 'seed');
    cpSync(options.seed ?? path.join(projectRoot, 'demo', 'repo'), seed, { recursive: true });
    await sh(seed, 'git init -q -b main && git add -A && git -c user.name=Seed -c user.email=seed@example.invalid commit -qm "textkit: initial import"');
    await sh(this.root, `git clone -q --bare seed ${this.remote}`);
    rmSync(seed, { recursive: true, force: true });
    // Extra contract lines replace the defaults with the same top-level key.
    const extra = [options.extraContract ?? '', options.contractFor ? await options.contractFor(this.prefix) : ''].join('\n');
    const overridden = new Set([...extra.matchAll(/^([a-z_]+):/gm)].map((match) => match[1]));
    const defaults = [
      'tracker: { kind: local, path: ./issues }',
      'repo: { url: ./remote.git, base_branch: main }',
      'sandbox: { memory_mb: 512, pids_limit: 256 }',
      'agent: { max_turns: 12 }',
      'proof:\n  commands:\n    - { name: tests, run: npm test, timeout_ms: 120000 }\n  max_rounds: 3',
      'hooks: { after_create: git log --oneline -1, before_run: node --version }',
    ].filter((line) => !overridden.has(line.slice(0, line.indexOf(':'))));
    writeFileSync(this.workflowFile, ['---', ...defaults, extra, '---', 'Issue {{ issue.identifier }}: {{ issue.title }}', '', '{{ issue.description }}', ''].join('\n'));
    mkdirSync(this.scripts, { recursive: true });
    const env: NodeJS.ProcessEnv = { ...process.env, OPENAI_API_KEY: '', OPENAI_BASE_URL: '', ...options.env };
    if (options.modelKey) {
      this.externalModel = await startScriptedModel({ scriptsDir: this.scripts, log: () => {} });
      const url = options.wrapModelUrl ? await options.wrapModelUrl(this.externalModel.baseUrl) : this.externalModel.baseUrl;
      Object.assign(env, { OPENAI_API_KEY: options.modelKey, OPENAI_BASE_URL: url });
      // The same server as the worker's Anthropic endpoint (it speaks the Messages API too).
      if (options.anthropicKey) Object.assign(env, { ANTHROPIC_API_KEY: options.anthropicKey, ANTHROPIC_BASE_URL: url.replace(/\/v1$/, '') });
    }
    this.contract = loadContract(this.workflowFile, env);
    this.wired = await createDeps({ stateDir: this.state, scriptsDir: this.scripts, env, log: () => {}, temporalAddress: this.temporalAddress });
    this.wired.deps.docker = this.docker;
    this.connection = await Connection.connect({ address: this.temporalAddress });
    this.client = new Client({ connection: this.connection });
    this.nativeConnection = await NativeConnection.connect({ address: this.temporalAddress });
  }

  /** Runs `body` while a fresh worker (wired as in production) serves this world's task queue. */
  async run<T>(body: () => Promise<T>): Promise<T> {
    const worker = await createCadenzaWorker({ connection: this.nativeConnection, deps: this.wired.deps, taskQueue: this.taskQueue });
    return worker.runUntil(body);
  }

  async addIssue(fields: Partial<IssueFileFields> & { identifier: string }, turns: ScriptTurn[]) {
    await writeIssueFile(this.issues, { title: `Work on ${fields.identifier}`, state: 'Todo', description: 'Make the change.', ...fields });
    writeFileSync(path.join(this.scripts, `${fields.identifier}.json`), JSON.stringify({ turns }, null, 2));
    const [issue] = await this.tracker.fetchIssuesByIds([fields.identifier]);
    return issue!;
  }

  /** This world's identifier for a short name (`ship` -> `TXYZ-ship`). */
  id(name: string): string {
    return `${this.prefix}-${name}`;
  }

  async start(identifier: string, timing: Timing = FAST) {
    const [issue] = await this.tracker.fetchIssuesByIds([identifier]);
    const handle = await startIssue(this.client, { issue: issue!, contract: this.contract, taskQueue: this.taskQueue, timing });
    this.handles.push(handle);
    return handle;
  }

  /** A handle on this world's run of an issue (started by the poller or by `start`). */
  handle(identifier: string): WorkflowHandle {
    const handle = this.client.workflow.getHandle(issueWorkflowId(this.contract.config, identifier));
    if (!this.handles.some((known) => known.workflowId === handle.workflowId)) this.handles.push(handle);
    return handle;
  }

  /** Polls the status query until the run reaches `phase` (fails fast if it ends elsewhere). */
  async waitForPhase(handle: WorkflowHandle, phase: Phase, timeoutMs = 180_000): Promise<IssueStatus> {
    const deadline = Date.now() + timeoutMs;
    let last: IssueStatus | undefined;
    while (Date.now() < deadline) {
      last = await handle.query(statusQuery).catch(() => last);
      if (last?.phase === phase) return last;
      if (process.env.CADENZA_TEST_TRACE) console.error('status', JSON.stringify(last));
      if (last && ['Done', 'Reverted', 'Failed', 'Cancelled'].includes(last.phase)) {
        // What the last failed check said, so a test failing in CI tells why.
        const failedCheck = last.proof.at(-1)?.checks.find((check) => !check.passed);
        throw new Error(`run ended in ${last.phase} (${last.lastError}) while waiting for ${phase}${failedCheck ? `; check ${failedCheck.name} said:\n${failedCheck.excerpt}` : ''}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    throw new Error(`timed out waiting for ${phase}; last status: ${JSON.stringify(last)}`);
  }

  /** What the model was asked, whichever server played it. */
  get modelRequests() {
    return (this.externalModel ?? this.wired.scriptedModel)!.requests;
  }

  /** The transcript of a round as the agent activity checkpointed it. */
  transcriptOf(workflowId: string, round: number): Array<{ role: string; content?: string | null }> {
    const pointers = path.join(this.state, 'artifacts', 'pointers');
    const file = readdirSync(pointers).find((name) => name.startsWith(sandboxKey(runKeyOf(workflowId))) && name.endsWith(`-round-${round}.json`));
    if (!file) throw new Error(`no checkpoint for round ${round}`);
    const { transcript } = JSON.parse(readFileSync(path.join(pointers, file), 'utf8')) as { transcript: string };
    const hex = transcript.slice('sha256:'.length);
    return JSON.parse(readFileSync(path.join(this.state, 'artifacts', 'objects', hex.slice(0, 2), hex.slice(2)), 'utf8'));
  }

  /** Someone else lands `file` on the remote's main (as a person would, from a clone); returns the new tip. */
  async pushToMain(file: string, content: string): Promise<string> {
    const clone = mkdtempSync(path.join(tmpdir(), 'cadenza-other-'));
    try {
      await sh(clone, `git clone -q ${this.remote} . && mkdir -p ${path.dirname(file)}`);
      writeFileSync(path.join(clone, file), content);
      await sh(clone, `git add -A && git -c user.name=Other -c user.email=other@example.invalid commit -qm "Other: ${file}" && git push -q origin main`);
      return await sh(clone, 'git rev-parse HEAD');
    } finally {
      rmSync(clone, { recursive: true, force: true });
    }
  }

  /** Runs the `cadenza` CLI against this world: its contract, its state folder, its Temporal server. */
  async cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return run(path.join(projectRoot, 'node_modules/.bin/tsx'), ['workers/cli.ts', ...args, '--workflow', this.workflowFile], {
      cwd: projectRoot,
      env: { ...process.env, CADENZA_STATE_DIR: this.state, CADENZA_TEMPORAL_ADDRESS: this.temporalAddress, OPENAI_API_KEY: '' },
    });
  }

  remoteLog(branch = 'main'): Promise<string> {
    return sh(this.remote, `git log --format='%H %s%n%b' ${branch}`);
  }

  /** Creates this world's poll Schedule (as `cadenza up` does) on its task queue. */
  async schedulePolls(timing: Timing = FAST): Promise<string> {
    const { scheduleId } = await ensurePollSchedule(this.client, { contract: this.contract, taskQueue: this.taskQueue, timing });
    this.schedules.push(scheduleId);
    return scheduleId;
  }

  /**
   * With CADENZA_RECORD_HISTORIES=<folder>, saves the run's history (as `temporal workflow show`
   * exports it) as a replay fixture named `name`. Otherwise does nothing.
   */
  async recordHistory(handle: WorkflowHandle, name: string): Promise<void> {
    const folder = process.env.CADENZA_RECORD_HISTORIES;
    if (!folder) return;
    const result = await run(inject('temporalCli'), ['workflow', 'show', '--workflow-id', handle.workflowId, '--output', 'json', '--address', this.temporalAddress]);
    if (result.code !== 0) throw new Error(`could not export the history of ${handle.workflowId}: ${result.stderr}`);
    mkdirSync(folder, { recursive: true });
    writeFileSync(path.join(folder, `${name}.json`), result.stdout);
  }

  /** Results of this world's completed polls, oldest first. */
  async pollResults(): Promise<PollerResult[]> {
    const runs = [];
    for await (const run of this.client.workflow.list({ query: `WorkflowType = 'pollerWorkflow' AND TaskQueue = '${this.taskQueue}' AND ExecutionStatus = 'Completed'` })) runs.push(run);
    runs.sort((a, b) => a.startTime.getTime() - b.startTime.getTime());
    return Promise.all(runs.map((run) => this.client.workflow.getHandle(run.workflowId, run.runId).result() as Promise<PollerResult>));
  }

  /** Open issue runs of this world, by identifier. */
  async runningIssues(): Promise<string[]> {
    const ids: string[] = [];
    for await (const run of this.client.workflow.list({ query: `WorkflowType = 'issueWorkflow' AND TaskQueue = '${this.taskQueue}' AND ExecutionStatus = 'Running'` })) ids.push(run.workflowId.slice(issueWorkflowId(this.contract.config, '').length));
    return ids.sort();
  }

  /** The most of these runs that were open at the same moment, from their start and close times. */
  async mostAtOnce(identifiers: string[]): Promise<number> {
    const spans = await Promise.all(identifiers.map(async (id) => {
      const description = await this.handle(id).describe();
      return { start: description.startTime.getTime(), end: description.closeTime?.getTime() ?? Infinity };
    }));
    return Math.max(0, ...spans.map((span) => spans.filter((other) => other.start <= span.start && span.start < other.end).length));
  }

  async waitUntil(probe: () => Promise<boolean>, what: string, timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (await probe()) return;
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    throw new Error(`timed out waiting until ${what}`);
  }

  async close() {
    for (const id of this.schedules) await this.client.schedule.getHandle(id).delete().catch(() => undefined);
    // Whatever a failed test left running is ended, and its sandbox removed: every issue run on this
    // world's task queue (including ones the poller started), not only the handles the test held.
    const ids = new Set(this.handles.map((handle) => handle.workflowId));
    const runs = this.client?.workflow.list({ query: `WorkflowType = 'issueWorkflow' AND TaskQueue = '${this.taskQueue}'` });
    if (runs) for await (const run of runs) ids.add(run.workflowId);
    for (const id of ids) await this.client.workflow.getHandle(id).terminate('test world closed').catch(() => undefined);
    // Runs from contracts with a project id are keyed by namespace and id; older ones by id alone.
    for (const id of ids) for (const key of [runKeyOf(id), id]) await removeSandbox(this.docker, key).catch(() => undefined);
    await this.connection?.close();
    await this.nativeConnection?.close();
    await this.wired?.close();
    await this.externalModel?.close();
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** Every string in a workflow history, payloads decoded, for searching it. */
export function historyText(value: unknown): string {
  const parts: string[] = [];
  const visit = (node: unknown) => {
    if (node === null || node === undefined) return;
    if (typeof node === 'string') parts.push(node);
    else if (node instanceof Uint8Array) parts.push(Buffer.from(node).toString('utf8'));
    else if (Array.isArray(node)) node.forEach(visit);
    else if (typeof node === 'object') Object.values(node as Record<string, unknown>).forEach(visit);
  };
  visit(value);
  return parts.join('\n');
}
