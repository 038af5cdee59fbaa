/**
 * The artifact store's configuration (CADENZA_STORE and friends), and the folder store's pointers:
 * compare-and-set and the lease on top of it. The S3 store is tested on a real S3 server in
 * test/integration/s3-artifacts.test.ts.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InfraError } from '../../infra/log.ts';
import { FolderArtifactStore } from '../../lib/artifacts.ts';
import { describeStore, openArtifactStore, storeConfigFrom } from '../../lib/artifacts-config.ts';
import { takeLease } from '../../lib/lease.ts';

const SECRET = 'wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY';
const CREDENTIALS = { AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: SECRET };

function refused(env: NodeJS.ProcessEnv): InfraError {
  try {
    storeConfigFrom(env, '/state');
  } catch (error) {
    expect(error).toBeInstanceOf(InfraError);
    const infra = error as InfraError;
    expect(`${infra.message} ${infra.hint}`).not.toContain(SECRET);
    return infra;
  }
  throw new Error(`accepted ${JSON.stringify(env)}`);
}

describe('choosing the artifact store from the environment', () => {
  it('is the folder under the state folder by default, and another folder by path or file URL', () => {
    expect(storeConfigFrom({}, '/state')).toEqual({ kind: 'folder', root: '/state/artifacts' });
    expect(storeConfigFrom({ CADENZA_STORE: '  ' }, '/state')).toEqual({ kind: 'folder', root: '/state/artifacts' });
    expect(storeConfigFrom({ CADENZA_STORE: '/srv/cadenza/artifacts/' }, '/state')).toEqual({ kind: 'folder', root: '/srv/cadenza/artifacts' });
    expect(storeConfigFrom({ CADENZA_STORE: 'file:///srv/cadenza/artifacts' }, '/state')).toEqual({ kind: 'folder', root: '/srv/cadenza/artifacts' });
    expect(openArtifactStore(storeConfigFrom({}, '/state')).location).toBe('/state/artifacts');
  });

  it('is S3 for s3://bucket/prefix, with the endpoint, region and credentials from the environment', () => {
    const config = storeConfigFrom({ CADENZA_STORE: 's3://team-artifacts/cadenza/prod/', CADENZA_S3_ENDPOINT: 'http://127.0.0.1:7070', ...CREDENTIALS }, '/state');
    expect(config).toEqual({
      kind: 's3',
      bucket: 'team-artifacts',
      prefix: 'cadenza/prod/',
      endpoint: 'http://127.0.0.1:7070',
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: SECRET },
    });
    // What the worker logs and `up` prints names the store, never the credentials.
    expect(describeStore(config)).toBe('s3://team-artifacts/cadenza/prod/ at http://127.0.0.1:7070');
    expect(openArtifactStore(config).location).toBe('s3://team-artifacts/cadenza/prod/');
    expect(storeConfigFrom({ CADENZA_STORE: 's3://bucket', AWS_REGION: 'eu-west-1', ...CREDENTIALS }, '/state')).toMatchObject({ prefix: '', region: 'eu-west-1' });
    expect(describeStore(storeConfigFrom({ CADENZA_STORE: 's3://bucket', AWS_REGION: 'eu-west-1', ...CREDENTIALS }, '/state'))).toBe('s3://bucket/ at AWS S3 (eu-west-1)');
  });

  it('refuses what it cannot use, naming the variable, what was wrong and what is allowed', () => {
    let error = refused({ CADENZA_STORE: 'https://s3.example.com/bucket' });
    expect(error.message).toContain('CADENZA_STORE="https://s3.example.com/bucket" is not a store Cadenza knows (scheme https:)');
    expect(error.hint).toContain('s3://BUCKET[/PREFIX]');
    expect(error.hint).toContain('absolute folder path');

    expect(refused({ CADENZA_STORE: 'artifacts' }).message).toContain('(a relative path)');

    error = refused({ CADENZA_STORE: 's3://Bad_Bucket/x', ...CREDENTIALS });
    expect(error.message).toContain('names the bucket "Bad_Bucket", which is not a valid S3 bucket name');
    expect(error.hint).toContain('3 to 63 characters');

    error = refused({ CADENZA_STORE: 's3://bucket' });
    expect(error.message).toBe('CADENZA_STORE=s3://bucket needs credentials, and AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set.');
    expect(refused({ CADENZA_STORE: 's3://bucket', AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE' }).message).toContain('AWS_SECRET_ACCESS_KEY is not set');

    // Credentials written into a URL are refused, and not echoed.
    error = refused({ CADENZA_STORE: `s3://AKIDEXAMPLE:${SECRET}@bucket/x`, ...CREDENTIALS });
    expect(error.message).toContain('credentials in it');
    error = refused({ CADENZA_STORE: 's3://bucket', CADENZA_S3_ENDPOINT: `http://AKIDEXAMPLE:${SECRET}@127.0.0.1:7070`, ...CREDENTIALS });
    expect(error.message).toContain('CADENZA_S3_ENDPOINT carries credentials');

    expect(refused({ CADENZA_STORE: 's3://bucket', CADENZA_S3_ENDPOINT: 'ftp://127.0.0.1', ...CREDENTIALS }).message).toContain('is a ftp: URL');
    expect(refused({ CADENZA_STORE: 's3://bucket', CADENZA_S3_ENDPOINT: 'not a url', ...CREDENTIALS }).message).toContain('is not a URL');
    expect(refused({ CADENZA_STORE: 's3://bucket', CADENZA_S3_ENDPOINT: 'http://127.0.0.1:7070/bucket', ...CREDENTIALS }).hint).toContain('the bucket and prefix go in CADENZA_STORE');
    expect(refused({ CADENZA_STORE: 's3://bucket/../x', ...CREDENTIALS }).message).toContain('"." or ".."');
    // An endpoint without an S3 store would silently keep artifacts in the folder.
    error = refused({ CADENZA_S3_ENDPOINT: 'http://127.0.0.1:7070' });
    expect(error.message).toContain('CADENZA_S3_ENDPOINT is set (http://127.0.0.1:7070) but CADENZA_STORE is not set');
  });
});

describe('the folder store', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'cadenza-folder-store-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('stores content by its hash and keeps pointers as files, where they always were', async () => {
    const store = new FolderArtifactStore(root);
    const stored = await store.put('hello', 'greeting');
    expect(stored.ref).toBe('sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824');
    expect(store.pathOf(stored.ref)).toBe(path.join(root, 'objects', '2c', 'f24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824'));
    expect(await store.getText(stored.ref)).toBe('hello');
    await store.setPointer('run/1 round', { turns: 3 });
    expect(JSON.parse(readFileSync(path.join(root, 'pointers', 'run_1_round.json'), 'utf8'))).toEqual({ turns: 3 });
    expect(await store.getPointer('run/1 round')).toEqual({ turns: 3 });
    expect(await store.getPointer('never-set')).toBeUndefined();
  });

  it('compare-and-set writes only from the version it names', async () => {
    const store = new FolderArtifactStore(root);
    const created = await store.compareAndSetPointer('cas', { v: 1 }, null);
    expect(created.written).toBe(true);
    expect(await store.compareAndSetPointer('cas', { v: 'again' }, null)).toEqual({ written: false });
    const read = await store.readPointer<{ v: number }>('cas');
    expect(read).toEqual({ value: { v: 1 }, version: created.written ? created.version : '' });
    const replaced = await store.compareAndSetPointer('cas', { v: 2 }, read!.version);
    expect(replaced.written).toBe(true);
    // A writer still holding the old version loses.
    expect(await store.compareAndSetPointer('cas', { v: 'stale' }, read!.version)).toEqual({ written: false });
    expect(await store.getPointer('cas')).toEqual({ v: 2 });
  });

  it('gives a lease to exactly one of two stores racing for it on one host', async () => {
    for (let race = 0; race < 20; race++) {
      const name = `lease-${race}`;
      const [a, b] = await Promise.all([
        takeLease(new FolderArtifactStore(root), name, { attempt: 1, holder: 'worker-a' }),
        takeLease(new FolderArtifactStore(root), name, { attempt: 1, holder: 'worker-b' }),
      ]);
      expect([a.won, b.won].filter(Boolean)).toHaveLength(1);
    }
  });
});
