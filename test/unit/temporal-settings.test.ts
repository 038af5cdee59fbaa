/**
 * How Cadenza reads its Temporal settings from the environment (client/connection.ts) and its worker
 * versioning (workers/versioning.ts): the options both connections get, bad combinations refused
 * naming the variable and what is allowed, and secrets never in anything printable.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TemporalSettingsError, temporalSettings } from '../../client/connection.ts';
import { buildIdOf, deploymentNameOf, versioningFromEnv } from '../../workers/versioning.ts';
import { SERVER_NAME, makeTestPki, type TestPki } from '../helpers/certs.ts';

const API_KEY = 'cadenza-test-key-4f1d9b7e2a';

let dir: string;
let pki: TestPki;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'cadenza-settings-'));
  pki = await makeTestPki(path.join(dir, 'pki'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The error a setting raises (it must raise one). */
function refusal(env: NodeJS.ProcessEnv): TemporalSettingsError {
  try {
    temporalSettings(env);
  } catch (error) {
    expect(error).toBeInstanceOf(TemporalSettingsError);
    return error as TemporalSettingsError;
  }
  throw new Error(`no error for ${JSON.stringify(Object.keys(env))}`);
}

describe('Temporal settings from the environment', () => {
  it('defaults to the local dev server: plaintext, namespace default', () => {
    const settings = temporalSettings({});
    expect(settings.address).toBe('127.0.0.1:7233');
    expect(settings.namespace).toBe('default');
    expect(settings.addressGiven).toBe(false);
    expect(settings.connectionOptions()).toEqual({ address: '127.0.0.1:7233' });
    expect(settings.nativeConnectionOptions()).toEqual({ address: '127.0.0.1:7233' });
    expect(temporalSettings({ CADENZA_TEMPORAL_PORT: '7999' }).address).toBe('127.0.0.1:7999');
  });

  it('gives the client and the worker the same address, namespace, client certificate, CA, server name and API key', () => {
    const settings = temporalSettings({
      CADENZA_TEMPORAL_ADDRESS: 'temporal.example.internal:7233',
      CADENZA_NAMESPACE: 'cadenza-prod',
      CADENZA_TEMPORAL_TLS_CERT: pki.client.cert,
      CADENZA_TEMPORAL_TLS_KEY: pki.client.key,
      CADENZA_TEMPORAL_TLS_CA: pki.ca,
      CADENZA_TEMPORAL_TLS_SERVER_NAME: SERVER_NAME,
      CADENZA_TEMPORAL_API_KEY: API_KEY,
    });
    expect(settings.namespace).toBe('cadenza-prod');
    for (const options of [settings.connectionOptions(), settings.nativeConnectionOptions()]) {
      expect(options.address).toBe('temporal.example.internal:7233');
      expect(options.apiKey).toBe(API_KEY);
      const tls = options.tls as { serverNameOverride?: string; serverRootCACertificate?: Uint8Array; clientCertPair?: { crt: Uint8Array; key: Uint8Array } };
      expect(tls.serverNameOverride).toBe(SERVER_NAME);
      expect(Buffer.from(tls.serverRootCACertificate!).toString()).toContain('BEGIN CERTIFICATE');
      expect(Buffer.from(tls.clientCertPair!.crt).toString()).toContain('BEGIN CERTIFICATE');
      expect(Buffer.from(tls.clientCertPair!.key).toString()).toContain('PRIVATE KEY');
    }
  });

  it('an API key alone turns TLS on (Temporal Cloud); CADENZA_TEMPORAL_TLS=false sends it in plaintext', () => {
    const cloud = temporalSettings({ CADENZA_TEMPORAL_ADDRESS: 'ns.acct.tmprl.cloud:7233', CADENZA_TEMPORAL_API_KEY: API_KEY });
    expect(cloud.connectionOptions()).toEqual({ address: 'ns.acct.tmprl.cloud:7233', tls: {}, apiKey: API_KEY });
    expect(cloud.nativeConnectionOptions()).toEqual({ address: 'ns.acct.tmprl.cloud:7233', tls: {}, apiKey: API_KEY });
    const plain = temporalSettings({ CADENZA_TEMPORAL_ADDRESS: 'proxy.local:7233', CADENZA_TEMPORAL_API_KEY: API_KEY, CADENZA_TEMPORAL_TLS: 'false' });
    expect(plain.connectionOptions()).toEqual({ address: 'proxy.local:7233', tls: false, apiKey: API_KEY });
    expect(temporalSettings({ CADENZA_TEMPORAL_TLS: 'true' }).connectionOptions()).toEqual({ address: '127.0.0.1:7233', tls: {} });
  });

  it('refuses a certificate without its key, and a key without its certificate', () => {
    const noKey = refusal({ CADENZA_TEMPORAL_TLS_CERT: pki.client.cert });
    expect(noKey.message).toContain('CADENZA_TEMPORAL_TLS_CERT is set');
    expect(noKey.message).toContain('CADENZA_TEMPORAL_TLS_KEY is not');
    expect(noKey.hint).toContain('set CADENZA_TEMPORAL_TLS_KEY to the PEM file');
    const noCert = refusal({ CADENZA_TEMPORAL_TLS_KEY: pki.client.key });
    expect(noCert.variable).toBe('CADENZA_TEMPORAL_TLS_KEY');
    expect(noCert.message).toContain('CADENZA_TEMPORAL_TLS_CERT is not');
  });

  it('refuses files it cannot read, that are not PEM, or that do not belong together, naming the variable and never the contents', () => {
    const missing = refusal({ CADENZA_TEMPORAL_TLS_CERT: path.join(dir, 'nope.crt'), CADENZA_TEMPORAL_TLS_KEY: pki.client.key });
    expect(missing.message).toBe(`CADENZA_TEMPORAL_TLS_CERT is ${path.join(dir, 'nope.crt')}, which cannot be read (no such file).`);
    expect(missing.hint).toContain('PEM file');

    const unreadable = path.join(dir, 'unreadable.key');
    writeFileSync(unreadable, 'secret');
    chmodSync(unreadable, 0o000);
    if (process.getuid?.() !== 0) expect(refusal({ CADENZA_TEMPORAL_TLS_CERT: pki.client.cert, CADENZA_TEMPORAL_TLS_KEY: unreadable }).message).toContain('permission denied');
    expect(refusal({ CADENZA_TEMPORAL_TLS_CERT: pki.client.cert, CADENZA_TEMPORAL_TLS_KEY: dir }).message).toContain('a folder, not a file');

    const garbage = path.join(dir, 'garbage.pem');
    writeFileSync(garbage, 'not a certificate, but could be a secret 123');
    const notPem = refusal({ CADENZA_TEMPORAL_TLS_CERT: garbage, CADENZA_TEMPORAL_TLS_KEY: pki.client.key });
    expect(notPem.variable).toBe('CADENZA_TEMPORAL_TLS_CERT');
    expect(notPem.message).toContain('is not a PEM certificate');
    const keyNotPem = refusal({ CADENZA_TEMPORAL_TLS_CERT: pki.client.cert, CADENZA_TEMPORAL_TLS_KEY: garbage });
    expect(keyNotPem.variable).toBe('CADENZA_TEMPORAL_TLS_KEY');
    for (const error of [notPem, keyNotPem]) expect(`${error.message} ${error.hint}`).not.toContain('could be a secret');

    const mismatch = refusal({ CADENZA_TEMPORAL_TLS_CERT: pki.client.cert, CADENZA_TEMPORAL_TLS_KEY: pki.stranger.key });
    expect(mismatch.message).toContain(`is not the private key of the certificate in CADENZA_TEMPORAL_TLS_CERT (${pki.client.cert})`);

    const badCa = refusal({ CADENZA_TEMPORAL_TLS_CA: garbage });
    expect(badCa.variable).toBe('CADENZA_TEMPORAL_TLS_CA');
  });

  it('refuses certificates over plaintext, and values that are not what the variable takes', () => {
    const plaintextCert = refusal({ CADENZA_TEMPORAL_TLS: 'false', CADENZA_TEMPORAL_TLS_CERT: pki.client.cert, CADENZA_TEMPORAL_TLS_KEY: pki.client.key });
    expect(plaintextCert.message).toBe('CADENZA_TEMPORAL_TLS is false while CADENZA_TEMPORAL_TLS_CERT is set.');
    expect(refusal({ CADENZA_TEMPORAL_TLS: 'yes please' }).hint).toContain('true or false');
    expect(refusal({ CADENZA_TEMPORAL_ADDRESS: 'https://temporal.example.com' }).hint).toContain('host and gRPC port');
    expect(refusal({ CADENZA_NAMESPACE: 'my namespace' }).variable).toBe('CADENZA_NAMESPACE');
  });

  it('never shows the API key: not in describe(), JSON, inspect, the CLI flags or a refusal', () => {
    const settings = temporalSettings({ CADENZA_TEMPORAL_ADDRESS: 'ns.acct.tmprl.cloud:7233', CADENZA_NAMESPACE: 'ns.acct', CADENZA_TEMPORAL_API_KEY: API_KEY, CADENZA_TEMPORAL_TLS_CERT: pki.client.cert, CADENZA_TEMPORAL_TLS_KEY: pki.client.key });
    const shown = [settings.describe(), JSON.stringify(settings), JSON.stringify({ settings }), inspect(settings), String(settings.temporalCliFlags()), settings.redact(`server said: bad key ${API_KEY}`)];
    for (const text of shown) {
      expect(text).not.toContain(API_KEY);
      expect(text).not.toContain('PRIVATE KEY');
    }
    expect(settings.describe()).toBe(`ns.acct.tmprl.cloud:7233; namespace ns.acct; TLS, client certificate ${pki.client.cert}; API key from CADENZA_TEMPORAL_API_KEY`);
    expect(settings.temporalCliFlags()).toEqual(['--namespace', 'ns.acct', '--tls-cert-path', pki.client.cert, '--tls-key-path', pki.client.key, '--api-key', '"$CADENZA_TEMPORAL_API_KEY"']);
    const spaced = refusal({ CADENZA_TEMPORAL_API_KEY: `${API_KEY} trailing-part` });
    expect(`${spaced.message} ${spaced.hint}`).not.toContain(API_KEY);
  });

  it('is read once per environment', () => {
    const env: NodeJS.ProcessEnv = { CADENZA_NAMESPACE: 'first' };
    expect(temporalSettings(env).namespace).toBe('first');
    env.CADENZA_NAMESPACE = 'second';
    expect(temporalSettings(env).namespace).toBe('first');
    expect(temporalSettings(env).withAddress('other:7233').address).toBe('other:7233');
  });
});

describe('worker versioning settings', () => {
  it('defaults to pinned runs, a build id from the workflow bundle, the task queue as deployment, new builds made current', () => {
    expect(versioningFromEnv({})).toEqual({ mode: 'pinned', promote: 'new' });
    expect(versioningFromEnv({ CADENZA_VERSIONING: 'auto-upgrade', CADENZA_BUILD_ID: 'v1.2.3', CADENZA_DEPLOYMENT_NAME: 'cadenza-prod', CADENZA_PROMOTE: 'manual' }))
      .toEqual({ mode: 'auto-upgrade', promote: 'manual', buildId: 'v1.2.3', deploymentName: 'cadenza-prod' });
    expect(buildIdOf('export const a = 1;')).toBe(buildIdOf('export const a = 1;'));
    expect(buildIdOf('export const a = 1;')).not.toBe(buildIdOf('export const a = 2;'));
    expect(buildIdOf('x')).toMatch(/^bundle-[0-9a-f]{16}$/);
    expect(deploymentNameOf('cadenza')).toBe('cadenza');
    expect(deploymentNameOf('team.a:queue')).toBe('team-a-queue');
  });

  it('refuses values it does not take, naming the variable and what is allowed', () => {
    expect(() => versioningFromEnv({ CADENZA_VERSIONING: 'sometimes' })).toThrow(/CADENZA_VERSIONING is "sometimes"/);
    expect(() => versioningFromEnv({ CADENZA_PROMOTE: 'always' })).toThrow(/CADENZA_PROMOTE is "always"/);
    expect(() => versioningFromEnv({ CADENZA_BUILD_ID: 'has space' })).toThrow(/CADENZA_BUILD_ID/);
    expect(() => versioningFromEnv({ CADENZA_DEPLOYMENT_NAME: 'a.b' })).toThrow(/CADENZA_DEPLOYMENT_NAME/);
  });
});
