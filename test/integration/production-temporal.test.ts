/**
 * Production Temporal: a Temporal server behind a TLS endpoint that requires a client certificate and
 * an API key (test/fakes/temporal-tls-proxy.ts, in front of a dev server of its own that was started
 * without Cadenza's search attributes and with its own namespace). A worker process and the CLI reach
 * it with nothing but the environment; without the certificate or the key they are refused with a
 * message naming what to set; the worker registers the missing search attributes through the operator
 * service, and a key that may not do that stops the worker with what to add and how.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { clientOf, connectClient, temporalSettings } from '../../client/connection.ts';
import { ensurePollSchedule } from '../../client/schedule.ts';
import { projectRoot } from '../../infra/paths.ts';
import { run } from '../../infra/process.ts';
import { freePort, startDevServer, type DevServer } from '../../infra/temporal.ts';
import { loadContract } from '../../lib/contract/index.ts';
import type { PollerResult } from '../../workflows/poller.ts';
import { startWorkerProcess, type WorkerProcess } from '../../workers/spawn.ts';
import { startTlsProxy, type TlsProxy } from '../fakes/temporal-tls-proxy.ts';
import { SERVER_NAME, makeTestPki, type TestPki } from '../helpers/certs.ts';
import { sh } from '../helpers/world.ts';

const NAMESPACE = 'cadenza-prod';
const ADMIN_KEY = 'cadenza-admin-7c41e0a9d2';
const READER_KEY = 'cadenza-reader-93b5f18e6c';
const KEYS = [ADMIN_KEY, READER_KEY];
const KEYWORD = 2;

const root = mkdtempSync(path.join(tmpdir(), 'cadenza-prod-temporal-'));
const taskQueue = `prod-${Date.now().toString(36)}`;
let pki: TestPki;
let server: DevServer;
let proxy: TlsProxy;
/** Straight to the dev server, behind the proxy's back: what the server really holds. */
let direct: Connection;
let directClient: Client;
let worker: WorkerProcess | undefined;
const workflowFile = path.join(root, 'project', 'WORKFLOW.md');

/** The environment an operator gives every Cadenza process for this server. */
function productionEnv(overrides: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    CADENZA_TEMPORAL_ADDRESS: proxy.address,
    CADENZA_NAMESPACE: NAMESPACE,
    CADENZA_TEMPORAL_TLS_CERT: pki.client.cert,
    CADENZA_TEMPORAL_TLS_KEY: pki.client.key,
    CADENZA_TEMPORAL_TLS_CA: pki.ca,
    CADENZA_TEMPORAL_TLS_SERVER_NAME: SERVER_NAME,
    CADENZA_TEMPORAL_API_KEY: ADMIN_KEY,
    CADENZA_TASK_QUEUE: taskQueue,
    ...overrides,
  };
  for (const [name, value] of Object.entries(env)) if (value === undefined) delete env[name];
  return env;
}

async function cadenza(args: string[], env: NodeJS.ProcessEnv) {
  const base = { ...process.env };
  for (const name of Object.keys(base)) if (name.startsWith('CADENZA_TEMPORAL_') || name === 'CADENZA_NAMESPACE') delete base[name];
  const result = await run(path.join(projectRoot, 'node_modules/.bin/tsx'), ['workers/cli.ts', ...args], {
    cwd: projectRoot,
    env: { ...base, CADENZA_STATE_DIR: path.join(root, 'cli-state'), OPENAI_API_KEY: '', ...env },
  });
  return { ...result, output: result.stdout + result.stderr };
}

function startWorker(env: NodeJS.ProcessEnv, name: string): Promise<WorkerProcess> {
  return startWorkerProcess({
    temporalAddress: env.CADENZA_TEMPORAL_ADDRESS!,
    taskQueue,
    stateDir: path.join(root, `state-${name}`),
    scriptsDir: path.join(root, 'scripts'),
    requestLog: path.join(root, `requests-${name}.jsonl`),
    readyTimeoutMs: 90_000,
    env,
  });
}

/** The output of a worker that did not start (startWorkerProcess puts it in its error). */
async function refusedWorker(env: NodeJS.ProcessEnv, name: string): Promise<string> {
  const started = await startWorker(env, name).then((process) => process, (error: Error) => error.message);
  if (typeof started !== 'string') {
    await started.kill();
    throw new Error(`the worker started with ${name}'s settings`);
  }
  return started;
}

function expectClear(output: string) {
  for (const key of KEYS) expect(output).not.toContain(key);
  expect(output).not.toContain('PRIVATE KEY');
  expect(output).not.toMatch(/\n\s+at .+:\d+:\d+\)?/);
  expect(output).not.toContain('unexpected failure');
}

async function customAttributes(): Promise<Record<string, number>> {
  const { customAttributes: found } = await direct.operatorService.listSearchAttributes({ namespace: NAMESPACE });
  return Object.fromEntries(Object.entries(found ?? {}).map(([name, type]) => [name, Number(type)]));
}

beforeAll(async () => {
  pki = await makeTestPki(path.join(root, 'pki'));
  server = await startDevServer({ cli: inject('temporalCli'), dir: path.join(root, 'temporal'), port: await freePort(), uiPort: await freePort(), namespace: NAMESPACE, searchAttributes: false });
  proxy = await startTlsProxy({
    upstream: server.address,
    cert: readFileSync(pki.server.cert),
    key: readFileSync(pki.server.key),
    clientCa: readFileSync(pki.ca),
    apiKeys: { [ADMIN_KEY]: { name: 'admin' }, [READER_KEY]: { name: 'reader', refuse: /OperatorService\/AddSearchAttributes$/ } },
  });
  direct = await Connection.connect({ address: server.address });
  directClient = new Client({ connection: direct, namespace: NAMESPACE });
  // A project to poll: a local tracker with no issues yet.
  const project = path.dirname(workflowFile);
  mkdirSync(path.join(project, 'issues'), { recursive: true });
  mkdirSync(path.join(root, 'scripts'), { recursive: true });
  mkdirSync(path.join(project, 'scripts'), { recursive: true });
  await sh(project, 'git init -q --bare remote.git');
  writeFileSync(workflowFile, ['---', 'project: { id: prod-temporal }', 'tracker: { kind: local, path: ./issues }', 'polling: { interval_ms: 3600000 }', 'repo: { url: ./remote.git, base_branch: main }',
    'proof: { commands: [{ name: tests, run: npm test }] }', '---', 'Issue {{ issue.identifier }}', ''].join('\n'));
}, 240_000);

afterAll(async () => {
  await worker?.kill();
  await direct?.close();
  await proxy?.close();
  await server?.stop();
  rmSync(root, { recursive: true, force: true });
});

describe('Temporal behind TLS with a client certificate and an API key', () => {
  it('a worker registers the search attributes a namespace lacks, leaves the ones there alone, and stops with what to add when the server refuses', async () => {
    expect(Object.keys(await customAttributes()).filter((name) => name.startsWith('Cadenza'))).toEqual([]);
    // One of them is there already (an administrator added it).
    await direct.operatorService.addSearchAttributes({ namespace: NAMESPACE, searchAttributes: { CadenzaPhase: KEYWORD } });

    // A key whose role may not change the namespace (Temporal Cloud, or a cluster's reader role).
    const refused = await refusedWorker(productionEnv({ CADENZA_TEMPORAL_API_KEY: READER_KEY }), 'reader');
    expect(refused).toContain(`namespace ${NAMESPACE} lacks Cadenza's search attributes CadenzaIssue (Keyword), CadenzaRepo (Keyword), and the server refused to add them`);
    expect(refused).toContain('PERMISSION_DENIED');
    expect(refused).toContain(`temporal operator search-attribute create --namespace ${NAMESPACE} --name CadenzaIssue --type Keyword --name CadenzaRepo --type Keyword`);
    expect(refused).toContain(`tcld namespace search-attributes add --namespace ${NAMESPACE} --search-attribute CadenzaIssue=Keyword --search-attribute CadenzaRepo=Keyword`);
    expectClear(refused);
    expect(proxy.calls).toContainEqual({ method: '/temporal.api.operatorservice.v1.OperatorService/AddSearchAttributes', client: 'cadenza-worker', key: 'reader', outcome: 'denied' });
    expect(Object.keys(await customAttributes()).filter((name) => name.startsWith('Cadenza'))).toEqual(['CadenzaPhase']);

    worker = await startWorker(productionEnv(), 'admin');
    const output = worker.output();
    expect(output).toContain(`registered search attributes CadenzaIssue, CadenzaRepo on namespace ${NAMESPACE}`);
    expect(output).toContain(`worker polling task queue ${taskQueue}`);
    expect(output).toContain(`on ${proxy.address}; namespace ${NAMESPACE}; TLS, client certificate ${pki.client.cert}, CA ${pki.ca}, server name ${SERVER_NAME}; API key from CADENZA_TEMPORAL_API_KEY`);
    expectClear(output);
    expect(await customAttributes()).toMatchObject({ CadenzaPhase: KEYWORD, CadenzaIssue: KEYWORD, CadenzaRepo: KEYWORD });
    const added = proxy.calls.filter((call) => call.method.endsWith('/AddSearchAttributes') && call.outcome === 'forwarded');
    expect(added).toEqual([{ method: '/temporal.api.operatorservice.v1.OperatorService/AddSearchAttributes', client: 'cadenza-worker', key: 'admin', outcome: 'forwarded' }]);
  });

  it('the worker, its poller and the CLI work through it with only the environment', async () => {
    expect(worker, 'the worker of the previous test').toBeDefined();
    // A client as Cadenza makes one (client/connection.ts), from the same environment.
    const settings = temporalSettings(productionEnv());
    const connection = await connectClient(settings);
    try {
      const client = clientOf(connection, settings);
      const contract = loadContract(workflowFile, {});
      const { scheduleId } = await ensurePollSchedule(client, { contract, taskQueue });
      await client.schedule.getHandle(scheduleId).trigger();
      // The poll ran on the worker through the proxy; its activity's own client listed runs by CadenzaRepo.
      let poll: PollerResult | undefined;
      const deadline = Date.now() + 60_000;
      while (!poll && Date.now() < deadline) {
        for await (const info of directClient.workflow.list({ query: `TemporalScheduledById = '${scheduleId}' AND ExecutionStatus = 'Completed'` })) {
          poll = (await directClient.workflow.getHandle(info.workflowId, info.runId).result()) as PollerResult;
        }
        if (!poll) await new Promise((resolve) => setTimeout(resolve, 250));
      }
      expect(poll).toMatchObject({ started: [], errors: [], cancelled: [] });

      const forwarded = new Set(proxy.calls.filter((call) => call.client === 'cadenza-worker' && call.key === 'admin' && call.outcome === 'forwarded').map((call) => call.method.split('/').pop()));
      for (const method of ['PollWorkflowTaskQueue', 'RespondWorkflowTaskCompleted', 'PollActivityTaskQueue', 'RespondActivityTaskCompleted', 'ListWorkflowExecutions', 'CreateSchedule']) expect(forwarded).toContain(method);

      const listed = await cadenza(['schedule', 'list'], productionEnv());
      expect(listed.output).toContain(scheduleId);
      expect(listed.code).toBe(0);
      const paused = await cadenza(['schedule', 'pause', scheduleId, '--reason', 'through TLS'], productionEnv());
      expect(paused.code, paused.output).toBe(0);
      expect((await directClient.schedule.getHandle(scheduleId).describe()).state.paused).toBe(true);
      expectClear(listed.output + paused.output + worker!.output());
      await client.schedule.getHandle(scheduleId).delete();
    } finally {
      await connection.close();
    }
  });

  it('`cadenza up` runs its worker and the poll schedule through it, and prints Temporal CLI hints that carry the namespace and TLS files', async () => {
    const up = await cadenza(['up', '--workflow', workflowFile, '--exit-when-done'], productionEnv({ CADENZA_TASK_QUEUE: undefined }));
    expect(up.code, up.output).toBe(0);
    expect(up.stderr).toContain(`==> Temporal server at ${proxy.address}; namespace ${NAMESPACE}; TLS, client certificate ${pki.client.cert}`);
    expect(up.stderr).toMatch(/build bundle-[0-9a-f]{16} of Worker Deployment cadenza \(runs pinned to the build that started them\); made current now: new runs start on it/);
    expect(up.stderr).toContain('created cadenza-poll-prod-temporal');
    expect(up.stderr).toContain('==> First poll');
    expect(up.stdout).toContain(`--address ${proxy.address} --namespace ${NAMESPACE} --tls-cert-path ${pki.client.cert} --tls-key-path ${pki.client.key} --tls-ca-path ${pki.ca} --tls-server-name ${SERVER_NAME} --api-key "$CADENZA_TEMPORAL_API_KEY" workflow signal`);
    expectClear(up.output);
    const polls = [];
    for await (const info of directClient.workflow.list({ query: "TemporalScheduledById = 'cadenza-poll-prod-temporal' AND ExecutionStatus = 'Completed'" })) polls.push(info);
    expect(polls.length).toBeGreaterThan(0);
    await directClient.schedule.getHandle('cadenza-poll-prod-temporal').delete();
  });

  it('without the client certificate or the API key, the CLI and a worker are refused with what to set', async () => {
    const handshakesBefore = proxy.refusedHandshakes;
    const noCert = await cadenza(['schedule', 'list'], productionEnv({ CADENZA_TEMPORAL_TLS_CERT: undefined, CADENZA_TEMPORAL_TLS_KEY: undefined }));
    expect(noCert.code).toBe(1);
    expect(noCert.stderr).toContain(`could not connect to Temporal at ${proxy.address}`);
    expect(noCert.stderr).toContain('it requires a client certificate, and none is set');
    expect(noCert.stderr).toContain('set CADENZA_TEMPORAL_TLS_CERT and CADENZA_TEMPORAL_TLS_KEY');

    const stranger = await cadenza(['schedule', 'list'], productionEnv({ CADENZA_TEMPORAL_TLS_CERT: pki.stranger.cert, CADENZA_TEMPORAL_TLS_KEY: pki.stranger.key }));
    expect(stranger.code).toBe(1);
    expect(stranger.stderr).toContain(`it does not accept the client certificate ${pki.stranger.cert}`);

    const noKey = await cadenza(['schedule', 'list'], productionEnv({ CADENZA_TEMPORAL_API_KEY: undefined }));
    expect(noKey.code).toBe(1);
    expect(noKey.stderr).toContain('refused the credentials');
    expect(noKey.stderr).toContain('UNAUTHENTICATED');
    expect(noKey.stderr).toContain('set CADENZA_TEMPORAL_API_KEY');

    const wrongKey = await cadenza(['schedule', 'list'], productionEnv({ CADENZA_TEMPORAL_API_KEY: 'cadenza-wrong-key-0000' }));
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stderr).toContain('check CADENZA_TEMPORAL_API_KEY');
    expect(wrongKey.output).not.toContain('cadenza-wrong-key-0000');

    const halfPair = await cadenza(['schedule', 'list'], productionEnv({ CADENZA_TEMPORAL_TLS_KEY: undefined }));
    expect(halfPair.code).toBe(1);
    expect(halfPair.stderr).toContain(`CADENZA_TEMPORAL_TLS_CERT is set (${pki.client.cert}) but CADENZA_TEMPORAL_TLS_KEY is not`);

    const plaintext = await cadenza(['schedule', 'list'], { CADENZA_TEMPORAL_ADDRESS: proxy.address, CADENZA_NAMESPACE: NAMESPACE });
    expect(plaintext.code).toBe(1);
    expect(plaintext.stderr).toContain('speaks TLS, and this side connected in plaintext');

    const workerWithoutCert = await refusedWorker(productionEnv({ CADENZA_TEMPORAL_TLS_CERT: undefined, CADENZA_TEMPORAL_TLS_KEY: undefined }), 'no-cert');
    expect(workerWithoutCert).toContain('it requires a client certificate, and none is set');
    const workerWithoutKey = await refusedWorker(productionEnv({ CADENZA_TEMPORAL_API_KEY: undefined }), 'no-key');
    expect(workerWithoutKey).toContain('refused the credentials');
    expect(workerWithoutKey).toContain('set CADENZA_TEMPORAL_API_KEY');

    for (const output of [noCert.output, stranger.output, noKey.output, wrongKey.output, halfPair.output, plaintext.output, workerWithoutCert, workerWithoutKey]) expectClear(output);
    expect(proxy.refusedHandshakes).toBeGreaterThan(handshakesBefore);
  });
});
