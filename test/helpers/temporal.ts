import { inject } from 'vitest';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker, bundleWorkflowCode, type WorkerOptions, type WorkflowBundleWithSourceMap } from '@temporalio/worker';

/** A client on the run's shared dev server. Close it in afterAll. */
export async function testClient(): Promise<{ client: Client; connection: Connection }> {
  const connection = await Connection.connect({ address: inject('temporalAddress') });
  return { client: new Client({ connection }), connection };
}

const bundles = new Map<string, Promise<WorkflowBundleWithSourceMap>>();

/** Workflow code is bundled once per file per test process, as a production worker would. */
export function workflowBundle(workflowsPath: string): Promise<WorkflowBundleWithSourceMap> {
  let bundle = bundles.get(workflowsPath);
  if (!bundle) {
    bundle = bundleWorkflowCode({ workflowsPath, logger: { trace() {}, debug() {}, info() {}, warn() {}, error: console.error, log() {} } as never });
    bundles.set(workflowsPath, bundle);
  }
  return bundle;
}

/** A fresh worker on a fresh task queue; run the test inside `worker.runUntil(...)`. */
export async function testWorker(options: Omit<WorkerOptions, 'connection' | 'workflowBundle' | 'workflowsPath'> & { workflowsPath: string }): Promise<Worker> {
  const connection = await NativeConnection.connect({ address: inject('temporalAddress') });
  const { workflowsPath, ...rest } = options;
  return Worker.create({ connection, workflowBundle: await workflowBundle(workflowsPath), ...rest });
}

export const uniqueQueue = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
