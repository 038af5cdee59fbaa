/**
 * The Cadenza worker process: wiring happens here and nowhere else. It runs the issue workflow and
 * every activity. Without OPENAI_API_KEY it starts the scripted model and says so.
 */
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import type { Connection } from '@temporalio/client';
import { Runtime, Worker, makeTelemetryFilterString, type NativeConnection, type Logger, type WorkflowBundle } from '@temporalio/worker';
import { reclaimSandboxes } from '../activities/hosts.ts';
import { createActivities, type ActivityDeps } from '../activities/index.ts';
import { clientOf, connectClient, connectWorker, plaintextSettings, temporalSettings, type TemporalSettings } from '../client/connection.ts';
import { ensureSearchAttributes } from '../client/search-attributes.ts';
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
import { behaviorOf, buildIdOf, deploymentNameOf, describeVersion, inspectDeployment, settleVersion, versioningFromEnv, type VersioningOptions, type WorkerVersionInfo } from './versioning.ts';

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
  /** Temporal, for the poller's client (starting, signalling, cancelling issue runs): address, namespace, TLS, API key. */
  temporal?: TemporalSettings;
  /** A plaintext Temporal frontend instead (tests), with `namespace`. */
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
    hostId: hostIdFor(options.stateDir, env),
  };
  let connection: Promise<Connection> | undefined;
  const settings = options.temporal ?? (options.temporalAddress ? plaintextSettings(options.temporalAddress, options.namespace) : undefined);
  if (settings) {
    // Connected on first use; a failed attempt is not kept, so the next activity attempt tries again.
    deps.temporal = async () => clientOf(await (connection ??= connectClient(settings).catch((error: unknown) => {
      connection = undefined;
      throw error;
    })), settings);
  }
  return {
    deps,
    modelDescription,
    scriptedModel,
    close: async () => {
      artifacts.close();
      await scriptedModel?.close();
      await (await connection?.catch(() => undefined))?.close();
    },
  };
}

let bundle: Promise<WorkflowBundle & { code: string }> | undefined;
/**
 * The workflow code, loaded once per process and shared by every worker in it: the prebuilt bundle
 * (workers/bundle.ts) when it matches the sources, otherwise bundled now (`logger` gets the bundler's output).
 */
export function cadenzaWorkflowBundle(logger?: Logger): Promise<WorkflowBundle & { code: string }> {
  bundle ??= loadWorkflowBundle(logger).then((loaded) => {
    if (loaded.built) logger?.info(`workflow code bundled into ${loaded.file}; later worker starts reuse it`);
    return { code: loaded.bundle.code };
  });
  return bundle;
}

/**
 * This machine's host id: CADENZA_HOST_ID, else the host name and a hash of the state folder, so a
 * restarted worker serves the same host queue (its runs' sandboxes are still on this engine).
 */
export function hostIdFor(stateDirectory: string, env: NodeJS.ProcessEnv = process.env): string {
  if (env.CADENZA_HOST_ID) return env.CADENZA_HOST_ID;
  const name = hostname().toLowerCase().replace(/[^a-z0-9-]+/g, '-').slice(0, 40) || 'host';
  return `${name}-${createHash('sha256').update(path.resolve(stateDirectory)).digest('hex').slice(0, 8)}`;
}

/** The task queue of one host's sandbox steps (Temporal's worker-specific task queue pattern). */
export const hostQueueOf = (taskQueue: string, hostId: string) => `${taskQueue}-host-${hostId}`;

/**
 * A Cadenza worker: the shared task queue (workflows, placement, tracker steps, and every activity of
 * runs from before host queues) and this host's queue (the sandbox steps of runs placed here).
 */
export interface CadenzaWorker {
  readonly hostQueue: string;
  /** The version (deployment and build id) it runs as, and whether this start made it current. */
  readonly version: WorkerVersionInfo;
  /** Search attributes this start registered on the namespace (none when they were there). */
  readonly searchAttributesAdded: string[];
  run(): Promise<void>;
  runUntil<T>(body: () => Promise<T>): Promise<T>;
  shutdown(): void;
}

export interface CadenzaWorkerOptions {
  connection: NativeConnection;
  deps: ActivityDeps;
  taskQueue?: string;
  /** Default: `temporal`'s namespace, else `default`. */
  namespace?: string;
  /** How the connection was made (named in error messages; its namespace is the default). */
  temporal?: TemporalSettings;
  hostId?: string;
  /** Default: from the environment (CADENZA_VERSIONING, CADENZA_BUILD_ID, CADENZA_DEPLOYMENT_NAME, CADENZA_PROMOTE). */
  versioning?: VersioningOptions;
}

/**
 * Creates the worker: makes sure the namespace has Cadenza's search attributes, then creates both
 * task queues' workers as one version of the Worker Deployment (workers/versioning.ts), which becomes
 * current when the deployment has not seen it before.
 */
export async function createCadenzaWorker(options: CadenzaWorkerOptions): Promise<CadenzaWorker> {
  const taskQueue = options.taskQueue ?? TASK_QUEUE;
  const hostId = options.hostId ?? options.deps.hostId ?? hostIdFor(stateDir());
  const host = { id: hostId, queue: hostQueueOf(taskQueue, hostId) };
  const deps: ActivityDeps = { ...options.deps, host };
  const activities = createActivities(deps);
  const namespace = options.namespace ?? options.temporal?.namespace ?? 'default';
  const settings = options.temporal && options.temporal.namespace === namespace ? options.temporal : plaintextSettings(options.temporal?.address ?? 'the worker connection', namespace);
  const { connection } = options;
  const { added: searchAttributesAdded } = await ensureSearchAttributes(connection, settings);

  const workflowBundle = await cadenzaWorkflowBundle();
  const versioning = options.versioning ?? versioningFromEnv(options.deps.env ?? process.env);
  const version = { deploymentName: versioning.deploymentName ?? deploymentNameOf(taskQueue), buildId: versioning.buildId ?? buildIdOf(workflowBundle.code) };
  const deployment = await inspectDeployment(connection, namespace, version, versioning.mode);
  const workerDeploymentOptions = versioning.mode === 'off'
    ? undefined
    : { version, useWorkerVersioning: true as const, defaultVersioningBehavior: behaviorOf(versioning.mode) };
  const versionOptions = workerDeploymentOptions ? { workerDeploymentOptions } : { buildId: version.buildId };
  const shared = await Worker.create({ connection, namespace, taskQueue, workflowBundle, activities, ...versionOptions });
  const local = await Worker.create({ connection, namespace, taskQueue: host.queue, activities, ...versionOptions });
  const versionInfo: WorkerVersionInfo = versioning.mode === 'off'
    ? { mode: 'off', buildId: version.buildId, promoted: false }
    : await settleVersion(connection, namespace, version, versioning, deployment);
  const shutdown = () => {
    for (const worker of [shared, local]) if (worker.getState() === 'RUNNING') worker.shutdown();
  };
  return {
    hostQueue: host.queue,
    version: versionInfo,
    searchAttributesAdded,
    async run() {
      // A host back from being lost removes the sandboxes of runs that moved away meanwhile (once the
      // workers run, so the queries about those runs can be answered here too).
      const reclaiming = reclaimSandboxes(deps, host.id, namespace).then((reclaimed) => {
        if (reclaimed.length) deps.log?.(`host ${host.id} removed the sandboxes of ${reclaimed.join(', ')}`);
      }, (error: unknown) => deps.log?.(`host ${host.id} could not look for sandboxes of runs that moved away: ${(error as Error).message}`));
      // One stopping (a fatal error or a signal) stops the other.
      await Promise.all([shared.run().finally(shutdown), local.run().finally(shutdown), reclaiming]);
    },
    runUntil: (body) => shared.runUntil(() => local.runUntil(body)),
    shutdown,
  };
}

/** One line for logs about the search attributes a start registered. */
export const describeSearchAttributes = (added: string[], namespace: string) =>
  added.length ? `registered search attributes ${added.join(', ')} on namespace ${namespace}` : '';

async function main() {
  Runtime.install({ telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'WARN' }) } } });
  // Address, namespace, TLS and API key: read and checked once, before anything starts.
  const settings = temporalSettings();
  const versioning = versioningFromEnv();
  const state = stateDir();
  const connection = await connectWorker(settings);
  let wired: WorkerDeps | undefined;
  try {
    wired = await createDeps({
      temporal: settings,
      stateDir: state,
      scriptsDir: process.env.CADENZA_SCRIPTS_DIR ?? path.join(state, 'demo', 'scripts'),
      requestLogFile: process.env.CADENZA_MODEL_REQUEST_LOG,
    });
    const worker = await createCadenzaWorker({ connection, deps: wired.deps, taskQueue: process.env.CADENZA_TASK_QUEUE, temporal: settings, versioning });
    const registered = describeSearchAttributes(worker.searchAttributesAdded, settings.namespace);
    if (registered) console.error(`[cadenza] ${registered}`);
    console.error(`[cadenza] worker polling task queue ${process.env.CADENZA_TASK_QUEUE ?? TASK_QUEUE} and its host queue ${worker.hostQueue} on ${settings.describe()}; ${describeVersion(worker.version)}`);
    await worker.run();
  } finally {
    await connection.close();
    await wired?.close();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  // A configuration the worker cannot use (CADENZA_STORE, the store's bucket) ends in one message saying what to do.
  await runMain(main);
}
