/**
 * A throw-away PKI made with openssl at test time: a CA, a server certificate for 127.0.0.1 and
 * `temporal.cadenza.test`, a client certificate signed by the CA, and a client certificate from
 * another CA (which the server must refuse). EC P-256, X.509 v3, valid for two days.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { run } from '../../infra/process.ts';

export const SERVER_NAME = 'temporal.cadenza.test';

export interface CertPair {
  cert: string;
  key: string;
}

export interface TestPki {
  dir: string;
  /** The CA that signed the server and the client certificate. */
  ca: string;
  server: CertPair;
  client: CertPair;
  /** A client certificate from a CA the server does not trust. */
  stranger: CertPair;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  const result = await run('openssl', args, { cwd: dir });
  if (result.code !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${result.stderr}`);
}

async function authority(dir: string, name: string, subject: string): Promise<CertPair> {
  const pair = { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
  await openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', pair.key, '-out', pair.cert, '-days', '2', '-subj', subject,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return pair;
}

async function leaf(dir: string, name: string, subject: string, ca: CertPair, extensions: string): Promise<CertPair> {
  const pair = { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
  const csr = path.join(dir, `${name}.csr`);
  const ext = path.join(dir, `${name}.ext`);
  writeFileSync(ext, `${extensions}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n`);
  await openssl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', pair.key, '-out', csr, '-subj', subject]);
  await openssl(dir, ['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', pair.cert, '-days', '2', '-extfile', ext]);
  return pair;
}

export async function makeTestPki(dir: string): Promise<TestPki> {
  mkdirSync(dir, { recursive: true });
  const ca = await authority(dir, 'ca', '/CN=Cadenza Test CA');
  const other = await authority(dir, 'other-ca', '/CN=Someone Else CA');
  const server = await leaf(dir, 'server', `/CN=${SERVER_NAME}`, ca, `subjectAltName=DNS:${SERVER_NAME},IP:127.0.0.1\nextendedKeyUsage=serverAuth`);
  const client = await leaf(dir, 'client', '/CN=cadenza-worker', ca, 'extendedKeyUsage=clientAuth');
  const stranger = await leaf(dir, 'stranger', '/CN=stranger', other, 'extendedKeyUsage=clientAuth');
  return { dir, ca: ca.cert, server, client, stranger };
}
