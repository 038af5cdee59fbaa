/**
 * A Cadenza worker inside the bench process, wired exactly as workers/worker.ts wires it (createDeps,
 * createCadenzaWorker, the shared workflow bundle), and one issue run through it, timed.
 */
import type { Client } from '@temporalio/client';
import { clientOf, connectClient, connectWorker, plaintextSettings } from '../../client/connection.ts';
import type { Contract } from '../../lib/contract/index.ts';
import { startIssue } from '../../client/issues.ts';
import type { ScriptedRequest } from '../../lib/scripted-model/index.ts';
import { cadenzaWorkflowBundle, createCadenzaWorker, createDeps } from '../../workers/worker.ts';
import type { IssueWorkflowResult, Timing } from '../../workflows/definitions.ts';
import { timeline, type HistoryTimeline } from './history.ts';
import type { BenchWorld } from './world.ts';

export interface InProcessWorker {
  client: Client;
  taskQueue: string;
  /** What the worker's scripted model was asked, with timestamps. */
  requests: ScriptedRequest[];
}

const quietLogger = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} };

export async function withInProcessWorker<T>(address: string, world: BenchWorld, taskQueue: string, body: (worker: InProcessWorker) => Promise<T>): Promise<T> {
  // The first call bundles the workflow code (once per process); later workers reuse the bundle.
  await cadenzaWorkflowBundle(quietLogger);
  const env: NodeJS.ProcessEnv = { ...process.env, OPENAI_API_KEY: '', OPENAI_BASE_URL: '' };
  // The bench's own dev server: plaintext, the default namespace.
  const temporal = plaintextSettings(address);
  const wired = await createDeps({ stateDir: world.state, scriptsDir: world.scripts, env, log: () => {}, temporal });
  const connection = await connectClient(temporal);
  const native = await connectWorker(temporal);
  try {
    const worker = await createCadenzaWorker({ connection: native, deps: wired.deps, taskQueue, temporal });
    const client = clientOf(connection, temporal);
    return await worker.runUntil(() => body({ client, taskQueue, requests: wired.scriptedModel!.requests }));
  } finally {
    await connection.close();
    await native.close();
    await wired.close();
  }
}

export interface IssueRun {
  identifier: string;
  workflowId: string;
  /** Epoch ms just before the start call, and when result() returned. */
  startedAt: number;
  finishedAt: number;
  wallMs: number;
  /** Epoch ms of the first model request of this issue (scripted model log), and its distance from startedAt. */
  firstRequestAt: number | null;
  firstTurnMs: number | null;
  result: IssueWorkflowResult | null;
  error: string | null;
  timeline: HistoryTimeline;
}

/** Starts the issue, waits for its result, and reads back the history and the first model request. */
export async function runIssue(worker: InProcessWorker, world: BenchWorld, contract: Contract, identifier: string, timing?: Timing): Promise<IssueRun> {
  const [issue] = await world.tracker.fetchIssuesByIds([identifier]);
  if (!issue) throw new Error(`no issue ${identifier}`);
  const startedAt = Date.now();
  const handle = await startIssue(worker.client, { issue, contract, taskQueue: worker.taskQueue, timing });
  let result: IssueWorkflowResult | null = null;
  let error: string | null = null;
  try {
    result = await handle.result();
  } catch (failure) {
    error = (failure as Error).message;
  }
  const finishedAt = Date.now();
  const first = worker.requests.find((request) => request.identifier === identifier);
  const firstRequestAt = first ? Date.parse(first.at) : null;
  return {
    identifier,
    workflowId: handle.workflowId,
    startedAt,
    finishedAt,
    wallMs: finishedAt - startedAt,
    firstRequestAt,
    firstTurnMs: firstRequestAt === null ? null : firstRequestAt - startedAt,
    result,
    error,
    timeline: timeline(await handle.fetchHistory(), startedAt, finishedAt),
  };
}
