/**
 * The shared artifact store on a real S3 server: versitygw v1.8.0 (infra/s3.ts), started by this file
 * on a free loopback port with fresh credentials and stopped at the end. Objects, pointers, the
 * conditional writes, the lease two workers race for, and the agent session's use of that lease.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MockActivityEnvironment } from '@temporalio/testing';
import OpenAI from 'openai';
import { createAgentActivities } from '../../activities/agent.ts';
import type { ActivityDeps } from '../../activities/deps.ts';
import { InfraError } from '../../infra/log.ts';
import { startS3Server, type S3Server } from '../../infra/s3.ts';
import type { ArtifactStore } from '../../lib/artifacts.ts';
import { openArtifactStore, storeConfigFrom } from '../../lib/artifacts-config.ts';
import { S3ArtifactStore } from '../../lib/artifacts-s3.ts';
import { loadContract } from '../../lib/contract/index.ts';
import { takeLease } from '../../lib/lease.ts';

describe('the artifact store on a real S3 server (versitygw)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cadenza-s3-'));
  let server: S3Server;
  const stores: ArtifactStore[] = [];
  /** A worker's store, opened from its environment as the worker opens it. */
  const workerStore = (prefix = 'shared', env: NodeJS.ProcessEnv = {}) => {
    const store = openArtifactStore(storeConfigFrom({ ...server.env(prefix), ...env }, path.join(dir, 'unused-state')));
    stores.push(store);
    return store;
  };

  beforeAll(async () => {
    server = await startS3Server({ dir });
  });
  afterAll(async () => {
    for (const store of stores) store.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps content-addressed objects in the bucket under the prefix, and names them s3://bucket/key', async () => {
    const store = workerStore('team/a');
    // verify() checks the bucket and that the server honours conditional writes, and leaves no probe behind.
    await store.verify();
    const probes = path.join(server.dataDir, 'cadenza', 'team', 'a', 'probes');
    expect(existsSync(probes) ? readdirSync(probes) : []).toEqual([]);
    const stored = await store.put('diff --git a/x b/x\n', 'diff');
    expect(stored).toEqual({ ref: `sha256:${createHash('sha256').update('diff --git a/x b/x\n').digest('hex')}`, kind: 'diff', bytes: 19 });
    const hex = stored.ref.slice('sha256:'.length);
    expect(store.pathOf(stored.ref)).toBe(`s3://cadenza/team/a/objects/${hex.slice(0, 2)}/${hex.slice(2)}`);
    // Really on the server: versitygw keeps the object as a file in the bucket's folder.
    expect(readFileSync(path.join(server.dataDir, 'cadenza', 'team', 'a', 'objects', hex.slice(0, 2), hex.slice(2)), 'utf8')).toBe('diff --git a/x b/x\n');
    // The same content again is the same object; another worker reads it.
    expect(await store.put('diff --git a/x b/x\n', 'diff')).toEqual(stored);
    const other = workerStore('team/a');
    expect(await other.getText(stored.ref)).toBe('diff --git a/x b/x\n');
    const json = await store.putJson({ turns: 2 }, 'transcript');
    expect(await other.getJson(json.ref)).toEqual({ turns: 2 });
    // Another prefix is another store.
    await expect(workerStore('team/b').get(stored.ref)).rejects.toThrow(`is not in s3://cadenza/team/b/`);
  });

  it('keeps pointers as objects: last writer wins for setPointer, and compare-and-set writes only from the version it names', async () => {
    const a = workerStore();
    const b = workerStore();
    expect(await a.getPointer('never-set')).toBeUndefined();
    expect(await a.readPointer('never-set')).toBeUndefined();
    await a.setPointer('checkpoint run/1', { turns: 1 });
    await b.setPointer('checkpoint run/1', { turns: 2 });
    expect(await a.getPointer('checkpoint run/1')).toEqual({ turns: 2 });
    expect(existsSync(path.join(server.dataDir, 'cadenza', 'shared', 'pointers', 'checkpoint_run_1.json'))).toBe(true);

    // Create: If-None-Match: *. Only the first creation is written.
    const created = await a.compareAndSetPointer('contract', { v: 1 }, null);
    expect(created.written).toBe(true);
    expect(await b.compareAndSetPointer('contract', { v: 'b' }, null)).toEqual({ written: false });
    const seen = (await b.readPointer<{ v: number }>('contract'))!;
    expect(seen.value).toEqual({ v: 1 });
    expect(seen.version).toBe(created.written && created.version);

    // Replace: If-Match: <etag>. The writer that read the current version wins; a stale one loses.
    const replaced = await b.compareAndSetPointer('contract', { v: 2 }, seen.version);
    expect(replaced.written).toBe(true);
    expect(await a.compareAndSetPointer('contract', { v: 'stale' }, seen.version)).toEqual({ written: false });
    expect(await a.getPointer('contract')).toEqual({ v: 2 });
  });

  it('of many workers racing from the same version, exactly one compare-and-set is written', async () => {
    const workers = Array.from({ length: 6 }, () => workerStore());
    for (let race = 0; race < 10; race++) {
      const name = `race-${race}`;
      await workers[0]!.setPointer(name, { by: 'setup' });
      const version = (await workers[0]!.readPointer(name))!.version;
      const results = await Promise.all(workers.map((store, i) => store.compareAndSetPointer(name, { by: i }, version)));
      const winners = results.flatMap((result, i) => (result.written ? [i] : []));
      expect(winners).toHaveLength(1);
      expect(await workers[1]!.getPointer(name)).toEqual({ by: winners[0] });
    }
  });

  it('gives a lease to exactly one of two workers racing for it; the other sees that it lost and to whom', async () => {
    for (let race = 0; race < 10; race++) {
      const name = `session-${race}-lease`;
      const [a, b] = await Promise.all([
        takeLease(workerStore(), name, { attempt: 2, holder: 'host-a:101' }),
        takeLease(workerStore(), name, { attempt: 2, holder: 'host-b:202' }),
      ]);
      expect([a.won, b.won].filter(Boolean)).toHaveLength(1);
      const [winner, loser] = a.won ? ['host-a:101', b] : ['host-b:202', a];
      if (loser.won) throw new Error('both won');
      expect(loser.heldBy).toMatchObject({ attempt: 2, holder: winner });
      expect(loser.why).toBe(`attempt 2 (${winner}) holds the lease ${name}`);
    }
  });

  it('lets a newer attempt take the lease over; the older holder learns at its next check, and cannot take it back', async () => {
    const older = await takeLease(workerStore(), 'takeover-lease', { attempt: 1, holder: 'host-a:1' });
    if (!older.won) throw new Error('attempt 1 should hold a fresh lease');
    expect(await older.lease.check()).toEqual({ held: true });
    const newer = await takeLease(workerStore(), 'takeover-lease', { attempt: 2, holder: 'host-b:2' });
    expect(newer.won).toBe(true);
    expect(await older.lease.check()).toMatchObject({ held: false, why: 'attempt 2 (host-b:2) took the lease over' });
    const again = await takeLease(workerStore(), 'takeover-lease', { attempt: 1, holder: 'host-a:1' });
    expect(again).toMatchObject({ won: false, heldBy: { attempt: 2, holder: 'host-b:2' } });
  });

  it('starts an agent session in exactly one of two workers given the same attempt; the other stops with SupersededAttempt', async () => {
    const contractDir = mkdtempSync(path.join(dir, 'contract-'));
    const file = path.join(contractDir, 'WORKFLOW.md');
    writeFileSync(file, ['---', 'tracker: { kind: local, path: ./issues }', 'repo: { url: ./remote.git, base_branch: main }', 'proof: { commands: [{ name: tests, run: npm test }] }', '---', 'Issue {{ issue.identifier }}', ''].join('\n'));
    const contract = loadContract(file, {});
    const reached: string[] = [];
    /** A worker whose sandbox and model record that the session got past its lease, and go no further. */
    const worker = (name: string) => {
      const stop = () => {
        reached.push(name);
        throw new Error(`${name} went past the lease`);
      };
      const deps = {
        artifacts: workerStore('agents'),
        docker: new Proxy({}, { get: () => stop }),
        model: { client: new OpenAI({ apiKey: 'unused', baseURL: 'http://127.0.0.1:9/v1', fetch: stop as never }), kind: 'scripted' },
        log: () => {},
      } as unknown as ActivityDeps;
      return createAgentActivities(deps);
    };
    const input = {
      workflowId: 'cadenza-local-LEASE-1',
      issue: { id: 'LEASE-1', identifier: 'LEASE-1', title: 'Lease', description: 'x', state: 'Todo', labels: [], blockedBy: [], priority: null, url: null, createdAt: null, updatedAt: null } as never,
      contract,
      round: 1,
      previousTranscript: null,
      feedback: null,
      tokensBefore: 0,
    };
    const info = { attempt: 3, workflowExecution: { workflowId: input.workflowId, runId: 'run-lease-test' }, heartbeatTimeoutMs: 30_000 };
    const quiet = { logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} } };
    const outcomes = await Promise.allSettled([
      new MockActivityEnvironment(info, quiet).run(worker('worker-a').runAgentSession, input),
      new MockActivityEnvironment(info, quiet).run(worker('worker-b').runAgentSession, input),
    ]);
    const reasons = outcomes.map((outcome) => (outcome.status === 'rejected' ? (outcome.reason as Error) : new Error('finished')));
    const superseded = reasons.filter((reason) => (reason as { type?: string }).type === 'SupersededAttempt');
    expect(superseded).toHaveLength(1);
    expect(superseded[0]!.message).toMatch(/^attempt 3 did not start the session: attempt 3 \(.+\) holds the lease .*-run-lease-test-round-1-lease$/);
    // The winner went on to its sandbox; the loser touched nothing.
    expect(reached).toHaveLength(1);
  });

  it('says clearly when the bucket is missing or the credentials are refused, without the credentials', async () => {
    const missing = workerStore('x', { CADENZA_STORE: 's3://no-such-bucket/x' });
    const error = await missing.verify().then(() => undefined, (e: unknown) => e as InfraError);
    expect(error).toBeInstanceOf(InfraError);
    expect(error!.message).toContain('the bucket no-such-bucket does not exist');

    const wrongSecret = 'not-the-secret-0123456789abcdef';
    const refused = workerStore('x', { AWS_SECRET_ACCESS_KEY: wrongSecret });
    const denied = await refused.verify().then(() => undefined, (e: unknown) => e as InfraError);
    expect(denied).toBeInstanceOf(InfraError);
    expect(denied!.message).toContain('the S3 server refused the credentials');
    expect(denied!.hint).toContain('AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY');
    expect(`${denied!.message} ${denied!.hint}`).not.toContain(wrongSecret);
    expect(`${denied!.message} ${denied!.hint}`).not.toContain(server.credentials.secretAccessKey);
  });

  it('is an S3 store, not a stand-in: another client with the same credentials sees the same bucket', async () => {
    const direct = new S3ArtifactStore({ bucket: server.bucket, prefix: 'shared/', endpoint: server.endpoint, region: server.region, credentials: server.credentials });
    stores.push(direct);
    const stored = await workerStore().put('seen by both', 'note');
    expect(await direct.getText(stored.ref)).toBe('seen by both');
  });
});
