import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import type { Client, Connection } from '@temporalio/client';
import * as activities from '../fixtures/hello/activities.ts';
import { greetingQuery, hello, setNameSignal } from '../fixtures/hello/workflows.ts';
import { testClient, testWorker, uniqueQueue } from '../helpers/temporal.ts';

const workflowsPath = fileURLToPath(new URL('../fixtures/hello/workflows.ts', import.meta.url));

describe('the real Temporal dev server from the infra binary', () => {
  let client: Client;
  let connection: Connection;
  beforeAll(async () => ({ client, connection } = await testClient()));
  afterAll(async () => connection?.close());

  it('runs a workflow on an in-process worker: query, signal, activity, result', async () => {
    const taskQueue = uniqueQueue('hello');
    const worker = await testWorker({ taskQueue, workflowsPath, activities });
    const result = await worker.runUntil(async () => {
      const handle = await client.workflow.start(hello, { taskQueue, workflowId: `hello-${taskQueue}` });
      expect(await handle.query(greetingQuery)).toBe('waiting for a name');
      await handle.signal(setNameSignal, 'Ada');
      return handle.result();
    });
    expect(result).toBe(`Hello, Ada, from worker process ${process.pid}`);
  });

  it('has Cadenza search attributes registered', async () => {
    const { customAttributes: keys } = await connection.operatorService.listSearchAttributes({ namespace: 'default' });
    expect(Object.keys(keys ?? {})).toEqual(expect.arrayContaining(['CadenzaPhase', 'CadenzaIssue', 'CadenzaRepo']));
  });

  it('serves the Temporal Web UI on its port', async () => {
    const response = await fetch(inject('temporalUiUrl'));
    expect(response.status).toBe(200);
    expect(await response.text()).toMatch(/<html/i);
  });
});
