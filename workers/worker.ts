/**
 * The Cadenza worker process: wiring happens here and nowhere else. It runs the issue workflow and
 * every activity. Without OPENAI_API_KEY it starts the scripted model and says so.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Runtime, Worker, makeTelemetryFilterString, type Logger, type WorkflowBundle } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from '../activities/index.ts';
import { dockerClient } from '../infra/docker.ts';
import { runMain } from '../infra/log.ts';
import { stateDir } from '../infra/paths.ts';
import { describeStore, openArtifactStore, storeConfigFrom } from '../lib/artifacts-config.ts';
import { createCodeHostFactory } from '../lib/codehost/index.ts';
import { MirrorCache } from '../lib/git.ts';
import { startScriptedModel, type ScriptedModel } from '../lib/scripted-model/index.ts';
import { createTrackerFactory } from '../lib/tracker/index.ts';
import { TASK_QUEUE } from '../workflows/definitions.ts';
import { loadWorkflowBundle } from './bundle.ts';

export { workflowsPath } from './bundle.ts';

export interface DepsOptions {
  /** Root of artifacts and git mirrors. */
  stateDir: string;
  /** Scripts the scripted model replays when no OPENAI_API_KEY is set. */
  scriptsDir: string;
  /** Where the scripted model appends its request log (chaos tests read it). */
  requestLogFile?: string;
  env?: NodeJS.ProcessEnv;
  log?: (line: string) => void;
  /** Temporal frontend, for the poller's client (starting, signalling, cancelling issue runs). */
  temporalAddress?: string;
  namespace?: string;
}

export interface WorkerDeps {
  deps: ActivityDeps;
  /** One line saying which model runs, for logs and the CLI. */
  modelDescription: string;
  scriptedModel?: ScriptedModel;
  close(): Promise<void>;
}

export async function createDeps(options: DepsOptions): Promise<WorkerDeps> {
  const env = options.env ?? process.env;
  const log = options.log ?? ((line: string) => console.error(`[cadenza] ${line}`));
  // The folder under the state folder, or a store every worker reaches (CADENZA_STORE); checked now,
  // so a wrong bucket or refused credentials stop the worker before it takes work.
  const storeConfig = storeConfigFrom(env, options.stateDir);
  const artifacts = openArtifactStore(storeConfig);
  await artifacts.verify();
  log(`artifacts: ${describeStore(storeConfig)}`);
  let scriptedModel: ScriptedModel | undefined;
  let client: OpenAI;
  let modelDescription: string;
  if (env.OPENAI_API_KEY) {
    client = new OpenAI({ apiKey: env.OPENAI_API_KEY, baseURL: env.OPENAI_BASE_URL || undefined, maxRetries: 2 });
    modelDescription = `model: OpenAI-compatible endpoint ${env.OPENAI_BASE_URL || 'https://api.openai.com/v1'}`;
  } else {
    scriptedModel = await startScriptedModel({ scriptsDir: options.scriptsDir, requestLogFile: options.requestLogFile, log });
    client = new OpenAI({ apiKey: 'scripted-model-no-key', baseURL: scriptedModel.baseUrl, maxRetries: 2 });
    modelDescription = `model: the scripted model (no OPENAI_API_KEY set), replaying ${options.scriptsDir} at ${scriptedModel.baseUrl}`;
  }
  log(modelDescription);
  const deps: ActivityDeps = {
    docker: dockerClient(),
    artifacts,
    mirrors: new MirrorCache(path.join(options.stateDir, 'mirrors')),
    model: { client, kind: scriptedModel ? 'scripted' : 'openai' },
    tracker: createTrackerFactory({ onWarning: (message) => log(`tracker: ${message}`), env }),
    codeHost: createCodeHostFactory({ env }),
    log,
    env,
  };
  let connection: Promise<Connection> | undefined;
  if (options.temporalAddress) {
    const address = options.temporalAddress;
    deps.temporal = async () => new Client({ connection: await (connection ??= Connection.connect({ address })), namespace: options.namespace ?? 'default' });
  }
  return {
    deps,
    modelDescription,
    scriptedModel,
    close: async () => {
      artifacts.close();
      await scriptedModel?.close();
      await (await connection)?.close();
    },
  };
}

let bundle: Promise<WorkflowBundle> | undefined;
/**
 * The workflow code, loaded once per process and shared by every worker in it: the prebuilt bundle
 * (workers/bundle.ts) when it matches the sources, otherwise bundled now (`logger` gets the bundler's output).
 */
export function cadenzaWorkflowBundle(logger?: Logger): Promise<WorkflowBundle> {
  bundle ??= loadWorkflowBundle(logger).then((loaded) => {
    if (loaded.built) logger?.info(`workflow code bundled into ${loaded.file}; later worker starts reuse it`);
    return loaded.bundle;
  });
  return bundle;
}

export async function createCadenzaWorker(options: { connection: NativeConnection; deps: ActivityDeps; taskQueue?: string; namespace?: string }): Promise<Worker> {
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace ?? 'default',
    taskQueue: options.taskQueue ?? TASK_QUEUE,
    workflowBundle: await cadenzaWorkflowBundle(),
    activities: createActivities(options.deps),
  });
}

async function main() {
  Runtime.install({ telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'WARN' }) } } });
  const address = process.env.CADENZA_TEMPORAL_ADDRESS ?? '127.0.0.1:7233';
  const state = stateDir();
  const wired = await createDeps({
    temporalAddress: address,
    namespace: process.env.CADENZA_NAMESPACE,
    stateDir: state,
    scriptsDir: process.env.CADENZA_SCRIPTS_DIR ?? path.join(state, 'demo', 'scripts'),
    requestLogFile: process.env.CADENZA_MODEL_REQUEST_LOG,
  });
  const connection = await NativeConnection.connect({ address });
  const worker = await createCadenzaWorker({ connection, deps: wired.deps, taskQueue: process.env.CADENZA_TASK_QUEUE, namespace: process.env.CADENZA_NAMESPACE });
  console.error(`[cadenza] worker polling task queue ${process.env.CADENZA_TASK_QUEUE ?? TASK_QUEUE} on ${address}`);
  try {
    await worker.run();
  } finally {
    await connection.close();
    await wired.close();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  // A configuration the worker cannot use (CADENZA_STORE, the store's bucket) ends in one message saying what to do.
  await runMain(main);
}
