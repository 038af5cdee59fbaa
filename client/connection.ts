/**
 * How every Cadenza process reaches Temporal: the environment is read once into TemporalSettings
 * (address, namespace, TLS with a client certificate, API key), which give the client `Connection`
 * and the worker `NativeConnection` the same options. A combination that cannot work (a certificate
 * without its key, an unreadable file, a client certificate over plaintext) is refused up front with
 * the variable and what is allowed; secrets (the API key, the private key) are never printed.
 *
 *   CADENZA_TEMPORAL_ADDRESS          host:port of the frontend (default 127.0.0.1:CADENZA_TEMPORAL_PORT or 7233)
 *   CADENZA_NAMESPACE                 the namespace (default `default`)
 *   CADENZA_TEMPORAL_TLS_CERT / _KEY  PEM files of the client certificate and its private key (mTLS; both or neither)
 *   CADENZA_TEMPORAL_TLS_CA           PEM file of the CA that signed the server's certificate (default: the system's)
 *   CADENZA_TEMPORAL_TLS_SERVER_NAME  the name the server's certificate is checked against (default: the address's host)
 *   CADENZA_TEMPORAL_API_KEY          an API key, sent as `authorization: Bearer <key>` (Temporal Cloud); turns TLS on
 *   CADENZA_TEMPORAL_TLS              `true` / `false`: TLS without a client certificate, or an API key over plaintext
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { inspect } from 'node:util';
import { Client, Connection, type ConnectionOptions } from '@temporalio/client';
import type { NativeConnection, NativeConnectionOptions } from '@temporalio/worker';
import { InfraError } from '../infra/log.ts';

export const TEMPORAL_ENV = {
  address: 'CADENZA_TEMPORAL_ADDRESS',
  namespace: 'CADENZA_NAMESPACE',
  tls: 'CADENZA_TEMPORAL_TLS',
  cert: 'CADENZA_TEMPORAL_TLS_CERT',
  key: 'CADENZA_TEMPORAL_TLS_KEY',
  ca: 'CADENZA_TEMPORAL_TLS_CA',
  serverName: 'CADENZA_TEMPORAL_TLS_SERVER_NAME',
  apiKey: 'CADENZA_TEMPORAL_API_KEY',
} as const;

/** A setting that cannot work: names the variable, what was wrong and what is allowed. */
export class TemporalSettingsError extends InfraError {
  constructor(readonly variable: string, problem: string, allowed: string) {
    super(`${variable} ${problem}.`, allowed);
    this.name = 'TemporalSettingsError';
  }
}

interface TlsFiles {
  cert?: { path: string; pem: Buffer };
  key?: { path: string; pem: Buffer };
  ca?: { path: string; pem: Buffer };
  serverName?: string;
}

/**
 * Where and how to reach Temporal. The API key and the private key live in private fields: printing,
 * logging or serialising a TemporalSettings shows `describe()`, never them.
 */
export class TemporalSettings {
  readonly #apiKey: string | undefined;
  readonly #tls: TlsFiles | null;

  constructor(
    readonly address: string,
    readonly namespace: string,
    tls: TlsFiles | null,
    apiKey: string | undefined,
    /** Whether the address came from CADENZA_TEMPORAL_ADDRESS (or a flag), not the local default. */
    readonly addressGiven: boolean,
  ) {
    this.#tls = tls;
    this.#apiKey = apiKey;
  }

  /** The TLS files (for a direct look at the server: diagnoseConnection); null for plaintext. */
  tlsFiles(): Readonly<TlsFiles> | null {
    return this.#tls;
  }

  /** TLS on (with or without a client certificate). */
  get tls(): boolean {
    return this.#tls !== null;
  }

  get clientCertificate(): string | undefined {
    return this.#tls?.cert?.path;
  }

  get hasApiKey(): boolean {
    return this.#apiKey !== undefined;
  }

  /** Anything beyond a plaintext address and namespace (TLS, an API key): what the embedded dev server cannot speak. */
  get secured(): boolean {
    return this.tls || this.hasApiKey;
  }

  /** The same credentials against another address (`--address`). */
  withAddress(address: string | undefined): TemporalSettings {
    if (!address || address === this.address) return this;
    return new TemporalSettings(address, this.namespace, this.#tls, this.#apiKey, true);
  }

  /** The namespace and nothing else: the embedded dev server, which speaks plaintext. */
  plaintextAt(address: string): TemporalSettings {
    return new TemporalSettings(address, this.namespace, null, undefined, true);
  }

  /** One line that is safe to print: the address, namespace, TLS files by path, whether an API key is set. */
  describe(): string {
    const parts = [this.address, `namespace ${this.namespace}`];
    const tls = this.#tls;
    if (!tls) parts.push('plaintext');
    else {
      const what = ['TLS'];
      if (tls.cert) what.push(`client certificate ${tls.cert.path}`);
      if (tls.ca) what.push(`CA ${tls.ca.path}`);
      if (tls.serverName) what.push(`server name ${tls.serverName}`);
      parts.push(what.join(', '));
    }
    if (this.#apiKey !== undefined) parts.push(`API key from ${TEMPORAL_ENV.apiKey}`);
    return parts.join('; ');
  }

  /**
   * The Temporal CLI's flags for the same namespace and TLS (without the address). The API key is
   * a reference to its variable for the shell to expand, never its value.
   */
  temporalCliFlags(): string[] {
    const flags: string[] = [];
    if (this.namespace !== 'default') flags.push('--namespace', this.namespace);
    const tls = this.#tls;
    if (tls?.cert && tls.key) flags.push('--tls-cert-path', shellWord(tls.cert.path), '--tls-key-path', shellWord(tls.key.path));
    if (tls?.ca) flags.push('--tls-ca-path', shellWord(tls.ca.path));
    if (tls?.serverName) flags.push('--tls-server-name', shellWord(tls.serverName));
    if (tls && !tls.cert && !tls.ca && !tls.serverName && this.#apiKey === undefined) flags.push('--tls');
    if (this.#apiKey !== undefined) flags.push('--api-key', `"$${TEMPORAL_ENV.apiKey}"`);
    if (!tls && this.#apiKey !== undefined) flags.push('--tls=false');
    return flags;
  }

  /** Replaces the API key wherever it occurs in `text` (an error message from the transport). */
  redact(text: string): string {
    return this.#apiKey ? text.split(this.#apiKey).join('<CADENZA_TEMPORAL_API_KEY>') : text;
  }

  private tlsOption(): NonNullable<ConnectionOptions['tls']> | undefined {
    const tls = this.#tls;
    if (!tls) return this.#apiKey !== undefined ? false : undefined;
    return {
      ...(tls.serverName ? { serverNameOverride: tls.serverName } : {}),
      ...(tls.ca ? { serverRootCACertificate: tls.ca.pem } : {}),
      ...(tls.cert && tls.key ? { clientCertPair: { crt: tls.cert.pem, key: tls.key.pem } } : {}),
    };
  }

  /** Options for `Connection.connect` (clients: the CLI, the poller's client, benchmarks). */
  connectionOptions(extra: Partial<ConnectionOptions> = {}): ConnectionOptions {
    const tls = this.tlsOption();
    return { address: this.address, ...(tls !== undefined ? { tls } : {}), ...(this.#apiKey !== undefined ? { apiKey: this.#apiKey } : {}), ...extra };
  }

  /** Options for `NativeConnection.connect` (workers). */
  nativeConnectionOptions(extra: Partial<NativeConnectionOptions> = {}): NativeConnectionOptions {
    const tls = this.tlsOption();
    return { address: this.address, ...(tls !== undefined ? { tls } : {}), ...(this.#apiKey !== undefined ? { apiKey: this.#apiKey } : {}), ...extra };
  }

  toJSON(): string {
    return this.describe();
  }

  [inspect.custom](): string {
    return `TemporalSettings(${this.describe()})`;
  }
}

const shellWord = (word: string) => (/^[\w./:@%+=-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`);

const cached = new WeakMap<NodeJS.ProcessEnv, TemporalSettings>();

/** The settings of `env` (default: this process's environment, read once). */
export function temporalSettings(env: NodeJS.ProcessEnv = process.env): TemporalSettings {
  let settings = cached.get(env);
  if (!settings) {
    settings = readSettings(env);
    cached.set(env, settings);
  }
  return settings;
}

/** A plaintext address and namespace (tests, a server this process started). */
export function plaintextSettings(address: string, namespace = 'default'): TemporalSettings {
  return new TemporalSettings(address, namespace, null, undefined, true);
}

const set = (env: NodeJS.ProcessEnv, name: string): string | undefined => {
  const value = env[name]?.trim();
  return value ? value : undefined;
};

function readSettings(env: NodeJS.ProcessEnv): TemporalSettings {
  const givenAddress = set(env, TEMPORAL_ENV.address);
  const address = givenAddress ?? `127.0.0.1:${set(env, 'CADENZA_TEMPORAL_PORT') ?? 7233}`;
  if (!/^[^\s/]+:\d+$/.test(address)) {
    throw new TemporalSettingsError(TEMPORAL_ENV.address, `is ${JSON.stringify(address)}, not a host:port`, `set it to the Temporal frontend's host and gRPC port, e.g. temporal.example.internal:7233 or <namespace>.<account>.tmprl.cloud:7233.`);
  }
  const namespace = set(env, TEMPORAL_ENV.namespace) ?? 'default';
  if (/\s/.test(namespace)) {
    throw new TemporalSettingsError(TEMPORAL_ENV.namespace, `is ${JSON.stringify(namespace)}, which has white space`, 'set it to the namespace name as Temporal shows it (e.g. default, or <namespace>.<account> on Temporal Cloud).');
  }
  const apiKey = set(env, TEMPORAL_ENV.apiKey);
  if (apiKey && /\s/.test(apiKey)) {
    throw new TemporalSettingsError(TEMPORAL_ENV.apiKey, 'has white space inside it (the value is not shown)', 'set it to the API key alone, as Temporal Cloud issued it, with no quotes, spaces or line breaks.');
  }
  const tlsFlag = set(env, TEMPORAL_ENV.tls)?.toLowerCase();
  if (tlsFlag !== undefined && !['true', 'false', '1', '0'].includes(tlsFlag)) {
    throw new TemporalSettingsError(TEMPORAL_ENV.tls, `is ${JSON.stringify(env[TEMPORAL_ENV.tls])}`, 'set it to true or false, or leave it unset (TLS is then on when a certificate, a CA or an API key is given).');
  }
  const certPath = set(env, TEMPORAL_ENV.cert);
  const keyPath = set(env, TEMPORAL_ENV.key);
  const caPath = set(env, TEMPORAL_ENV.ca);
  const serverName = set(env, TEMPORAL_ENV.serverName);
  if (certPath && !keyPath) {
    throw new TemporalSettingsError(TEMPORAL_ENV.cert, `is set (${certPath}) but ${TEMPORAL_ENV.key} is not`, `a client certificate needs its private key: set ${TEMPORAL_ENV.key} to the PEM file of the key, or unset ${TEMPORAL_ENV.cert}.`);
  }
  if (keyPath && !certPath) {
    throw new TemporalSettingsError(TEMPORAL_ENV.key, `is set (${keyPath}) but ${TEMPORAL_ENV.cert} is not`, `a private key is used with its client certificate: set ${TEMPORAL_ENV.cert} to the PEM file of the certificate, or unset ${TEMPORAL_ENV.key}.`);
  }
  const wantsTls = Boolean(certPath || caPath || serverName || apiKey);
  const tlsOn = tlsFlag === undefined ? wantsTls : tlsFlag === 'true' || tlsFlag === '1';
  if (!tlsOn && (certPath || caPath || serverName)) {
    const variable = certPath ? TEMPORAL_ENV.cert : caPath ? TEMPORAL_ENV.ca : TEMPORAL_ENV.serverName;
    throw new TemporalSettingsError(TEMPORAL_ENV.tls, `is false while ${variable} is set`, `certificates are only used over TLS: unset ${TEMPORAL_ENV.tls} (or set it to true), or unset ${variable}.`);
  }
  let tls: TlsFiles | null = null;
  if (tlsOn) {
    tls = { ...(serverName ? { serverName } : {}) };
    if (certPath && keyPath) {
      const cert = readPem(TEMPORAL_ENV.cert, certPath, 'the client certificate');
      const key = readPem(TEMPORAL_ENV.key, keyPath, 'the private key of the client certificate');
      checkPair(cert, certPath, key, keyPath);
      tls.cert = { path: certPath, pem: cert };
      tls.key = { path: keyPath, pem: key };
    }
    if (caPath) {
      const ca = readPem(TEMPORAL_ENV.ca, caPath, "the CA certificate that signed the server's certificate");
      try {
        new X509Certificate(ca);
      } catch {
        throw new TemporalSettingsError(TEMPORAL_ENV.ca, `(${caPath}) is not a PEM certificate`, "point it at the PEM file of the CA (-----BEGIN CERTIFICATE-----) that signed the server's certificate, or unset it to trust the system's CAs.");
      }
      tls.ca = { path: caPath, pem: ca };
    }
  }
  return new TemporalSettings(address, namespace, tls, apiKey, givenAddress !== undefined);
}

function readPem(variable: string, file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'a folder, not a file' : code;
    throw new TemporalSettingsError(variable, `is ${file}, which cannot be read (${why})`, `point it at a PEM file with ${what}, readable by this user.`);
  }
}

/** The certificate parses, the key parses, and they belong together (contents are never echoed). */
function checkPair(certPem: Buffer, certPath: string, keyPem: Buffer, keyPath: string): void {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    throw new TemporalSettingsError(TEMPORAL_ENV.cert, `(${certPath}) is not a PEM certificate`, `point it at the client certificate's PEM file (-----BEGIN CERTIFICATE-----); its key goes in ${TEMPORAL_ENV.key}.`);
  }
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch {
    throw new TemporalSettingsError(TEMPORAL_ENV.key, `(${keyPath}) is not an unencrypted PEM private key`, `point it at the PEM file of the client certificate's private key (-----BEGIN PRIVATE KEY----- or RSA/EC PRIVATE KEY), without a passphrase.`);
  }
  if (!cert.checkPrivateKey(key)) {
    throw new TemporalSettingsError(TEMPORAL_ENV.key, `(${keyPath}) is not the private key of the certificate in ${TEMPORAL_ENV.cert} (${certPath})`, 'set both to the files of one certificate and its own key.');
  }
  if (Date.parse(cert.validTo) < Date.now()) {
    throw new TemporalSettingsError(TEMPORAL_ENV.cert, `(${certPath}) expired on ${cert.validTo}`, 'renew the client certificate and point the variable at the new file.');
  }
}

/** What a direct look at the address found, when a connection failed for no reason Temporal gave. */
export interface Diagnosis {
  /** One sentence on what is wrong. */
  finding: string;
  /** What to change. */
  fix: string;
}

function hostAndPort(address: string): { host: string; port: number } {
  const match = /^\[?([^\]]+?)\]?:(\d+)$/.exec(address);
  return { host: match?.[1] ?? address, port: Number(match?.[2] ?? 7233) };
}

/** HTTP/2's client preface and an empty SETTINGS frame: a server that accepts the connection answers with its SETTINGS. */
const H2_PREFACE = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);

/**
 * Opens a connection to the address as the settings say (TLS with the same CA, server name and
 * client certificate) and speaks the first bytes of HTTP/2, to name what a failed connection ran
 * into: nothing listening, a server certificate this side does not trust, a server that wants a
 * client certificate or does not trust this one, a TLS server reached in plaintext. Nothing secret
 * is sent (no API key, no request).
 */
export function diagnoseConnection(settings: TemporalSettings, timeoutMs = 5_000): Promise<Diagnosis | null> {
  const { host, port } = hostAndPort(settings.address);
  const files = settings.tlsFiles();
  return new Promise((resolve) => {
    let settled = false;
    let socket: tls.TLSSocket | net.Socket;
    const finish = (diagnosis: Diagnosis | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket?.destroy();
      resolve(diagnosis);
    };
    const timer = setTimeout(() => finish({ finding: `${settings.address} did not answer within ${timeoutMs / 1000} s`, fix: `check ${TEMPORAL_ENV.address}, and that a firewall lets this machine reach it.` }), timeoutMs);
    /** Nothing listening, or no such host: true when it was one of those. */
    const early = (error: NodeJS.ErrnoException): boolean => {
      if (error.code === 'ECONNREFUSED') finish({ finding: `nothing listens on ${settings.address}`, fix: `check ${TEMPORAL_ENV.address} (host and gRPC port) and that the server is up.` });
      else if (error.code === 'ENOTFOUND' || error.code === 'EAI_AGAIN') finish({ finding: `the host name ${host} does not resolve`, fix: `check ${TEMPORAL_ENV.address}.` });
      else return false;
      return true;
    };
    if (!files) {
      // Plaintext: does the port speak TLS instead?
      socket = net.connect(port, host);
      socket.on('error', (error: NodeJS.ErrnoException) => early(error) || finish(null));
      socket.on('connect', () => {
        socket.destroy();
        const probe = tls.connect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['h2'], ...(net.isIP(host) ? {} : { servername: host }) });
        socket = probe;
        probe.on('secureConnect', () => finish({ finding: `the server at ${settings.address} speaks TLS, and this side connected in plaintext`, fix: `set ${TEMPORAL_ENV.tls}=true, with ${TEMPORAL_ENV.ca} if its certificate comes from a private CA, and ${TEMPORAL_ENV.cert} / ${TEMPORAL_ENV.key} if it wants a client certificate.` }));
        probe.on('error', () => finish(null));
      });
      return;
    }
    const serverName = files.serverName ?? (net.isIP(host) ? undefined : host);
    const probe = tls.connect({
      host, port, ALPNProtocols: ['h2'],
      ...(serverName ? { servername: serverName } : {}),
      ...(files.ca ? { ca: files.ca.pem } : {}),
      ...(files.cert && files.key ? { cert: files.cert.pem, key: files.key.pem } : {}),
      // The name is checked as the SDK checks it: against the server name override when there is one.
      checkServerIdentity: (_name, cert) => tls.checkServerIdentity(serverName ?? host, cert),
    });
    socket = probe;
    let secured = false;
    probe.on('secureConnect', () => {
      secured = true;
      probe.write(H2_PREFACE);
    });
    probe.on('data', () => finish(null));
    probe.on('end', () => finish(refusedClientCertificate(settings, 'the server closed the TLS connection before answering')));
    probe.on('error', (error: NodeJS.ErrnoException) => {
      if (early(error)) return;
      const text = `${error.code ?? ''} ${error.message}`;
      if (!secured && /ALTNAME|Hostname\/IP does not match/i.test(text)) {
        return finish({ finding: `the server's certificate does not name ${serverName ?? host} (${error.message})`, fix: `set ${TEMPORAL_ENV.serverName} to a name the certificate has, or use that name in ${TEMPORAL_ENV.address}.` });
      }
      if (!secured && /UNABLE_TO_VERIFY|SELF_SIGNED|UNABLE_TO_GET_ISSUER|CERT_UNTRUSTED|CERT_SIGNATURE_FAILURE/i.test(text)) {
        return finish({ finding: `the server's certificate is not signed by a CA this side trusts (${error.code})`, fix: `set ${TEMPORAL_ENV.ca} to the PEM file of the CA that signed it${files.ca ? ` (now ${files.ca.path})` : ''}.` });
      }
      if (!secured && /CERT_HAS_EXPIRED/i.test(text)) return finish({ finding: "the server's certificate has expired", fix: 'renew the server certificate.' });
      if (/certificate required|handshake failure|bad certificate|unknown ca|certificate unknown|access denied|ECONNRESET|EPIPE/i.test(text)) {
        const alert = /(?:tlsv1\d? |sslv3 )?alert [a-z ]+/i.exec(error.message)?.[0] ?? error.code ?? error.message.trim();
        return finish(refusedClientCertificate(settings, `the server ended the TLS handshake (${alert})`));
      }
      if (!secured && /wrong version number|packet length too long|unknown protocol/i.test(text)) {
        return finish({ finding: `the server at ${settings.address} does not speak TLS`, fix: `unset ${TEMPORAL_ENV.tls}, ${TEMPORAL_ENV.cert}, ${TEMPORAL_ENV.key}, ${TEMPORAL_ENV.ca} and ${TEMPORAL_ENV.apiKey} for a plaintext server, or check ${TEMPORAL_ENV.address}.` });
      }
      return finish({ finding: `the TLS connection failed (${error.message.trim()})`, fix: `check ${TEMPORAL_ENV.cert}, ${TEMPORAL_ENV.key}, ${TEMPORAL_ENV.ca} and ${TEMPORAL_ENV.serverName}.` });
    });
  });
}

function refusedClientCertificate(settings: TemporalSettings, what: string): Diagnosis {
  const cert = settings.clientCertificate;
  return cert
    ? { finding: `${what}: it does not accept the client certificate ${cert}`, fix: `use a client certificate signed by a CA the server trusts (${TEMPORAL_ENV.cert}, with its key in ${TEMPORAL_ENV.key}).` }
    : { finding: `${what}: it requires a client certificate, and none is set`, fix: `set ${TEMPORAL_ENV.cert} and ${TEMPORAL_ENV.key} to the PEM files of a client certificate the server trusts and its key.` };
}

/**
 * Why a connection or call was refused, in words that name the setting to look at. Temporal's own
 * message is kept (with the API key, should it appear, replaced); `diagnosis` is what a direct look
 * at the address found (diagnoseConnection).
 */
export function explainRefusal(settings: TemporalSettings, error: unknown, options: { diagnosis?: Diagnosis | null; call?: string } = {}): { message: string; hint: string } {
  const parts: string[] = [];
  for (let e: unknown = error; e instanceof Error && parts.length < 5; e = (e as { cause?: unknown }).cause) parts.push(e.message);
  let text = settings.redact(parts.join(': ') || String(error));
  // The gRPC status, by name (the SDK's Rust core words it, the Node client numbers it).
  const code = GRPC_CODES[(error as { code?: unknown }).code as number];
  if (code && !text.includes(code)) text = `${code}: ${text}`;
  const where = `Temporal at ${settings.describe()}`;
  if (/UNAUTHENTICATED|valid authentication credentials/i.test(text)) {
    return {
      message: `${where} refused the credentials: ${text}`,
      hint: settings.hasApiKey
        ? `check ${TEMPORAL_ENV.apiKey}: the key may be wrong, expired or not allowed on namespace ${settings.namespace}.`
        : `this server wants an API key: set ${TEMPORAL_ENV.apiKey} (Temporal Cloud: Settings > API keys), or a client certificate with ${TEMPORAL_ENV.cert} and ${TEMPORAL_ENV.key}.`,
    };
  }
  if (/PERMISSION_DENIED|caller does not have permission/i.test(text)) {
    const identity = [settings.clientCertificate ? `the client certificate ${settings.clientCertificate}` : '', settings.hasApiKey ? 'the API key' : ''].filter(Boolean).join(' with ') || 'this client (no credentials)';
    return { message: `${where} refused ${options.call ?? 'the request'}: ${text}`, hint: `${identity} lacks a permission on namespace ${settings.namespace}; grant it, or use credentials that have it.` };
  }
  if (/NOT_FOUND|not found/i.test(text) && /namespace/i.test(text)) {
    return { message: `${where}: the namespace does not exist: ${text}`, hint: `set ${TEMPORAL_ENV.namespace} to an existing namespace (temporal operator namespace list), or create it (temporal operator namespace create --namespace ${settings.namespace}).` };
  }
  if (options.call) return { message: `${where} failed ${options.call}: ${text}`, hint: 'see the message above; the call is made again at the next start.' };
  const diagnosis = options.diagnosis;
  if (diagnosis) return { message: `could not connect to Temporal at ${settings.describe()}: ${diagnosis.finding} (${text})`, hint: diagnosis.fix };
  if (settings.tls) {
    return {
      message: `could not connect to Temporal at ${settings.describe()}: ${text}`,
      hint: `check ${TEMPORAL_ENV.address} and that the server is up; over TLS, check that it trusts the client certificate (${TEMPORAL_ENV.cert} / ${TEMPORAL_ENV.key}) and that ${TEMPORAL_ENV.ca} / ${TEMPORAL_ENV.serverName} match its certificate.`,
    };
  }
  return {
    message: `no Temporal server answers at ${settings.describe()}: ${text}`,
    hint: settings.addressGiven
      ? `check ${TEMPORAL_ENV.address} (or --address) and that the server is up; if it needs TLS or an API key, set ${TEMPORAL_ENV.cert} / ${TEMPORAL_ENV.key} or ${TEMPORAL_ENV.apiKey}.`
      : `start one with \`npm start\` (or \`npx cadenza up\`), or point --address / ${TEMPORAL_ENV.address} at your server.`,
  };
}

const GRPC_CODES: Record<number, string> = {
  1: 'CANCELLED', 2: 'UNKNOWN', 3: 'INVALID_ARGUMENT', 4: 'DEADLINE_EXCEEDED', 5: 'NOT_FOUND', 6: 'ALREADY_EXISTS', 7: 'PERMISSION_DENIED', 8: 'RESOURCE_EXHAUSTED',
  9: 'FAILED_PRECONDITION', 10: 'ABORTED', 11: 'OUT_OF_RANGE', 12: 'UNIMPLEMENTED', 13: 'INTERNAL', 14: 'UNAVAILABLE', 15: 'DATA_LOSS', 16: 'UNAUTHENTICATED',
};

/** A refusal with Temporal's reason (credentials, permission, namespace) needs no probe; anything else gets one. */
async function refusal(settings: TemporalSettings, error: unknown): Promise<InfraError> {
  const first = explainRefusal(settings, error);
  const reasoned = /refused the credentials|refused the request|namespace does not exist/.test(first.message);
  const { message, hint } = reasoned ? first : explainRefusal(settings, error, { diagnosis: await diagnoseConnection(settings).catch(() => null) });
  return new InfraError(message, hint);
}

/** A client connection, checked with a call that needs the credentials; a refusal becomes one clear InfraError. */
export async function connectClient(settings: TemporalSettings, options: { connectTimeoutMs?: number } = {}): Promise<Connection> {
  let connection: Connection | undefined;
  try {
    connection = await Connection.connect(settings.connectionOptions({ connectTimeout: options.connectTimeoutMs ?? 10_000 }));
    // Connect alone does not show whether the namespace exists and the credentials reach it; describing it does.
    await connection.withDeadline(Date.now() + (options.connectTimeoutMs ?? 10_000), () => connection!.workflowService.describeNamespace({ namespace: settings.namespace }));
    return connection;
  } catch (error) {
    await connection?.close().catch(() => undefined);
    throw await refusal(settings, error);
  }
}

/** A client on the settings' namespace. */
export function clientOf(connection: Connection, settings: TemporalSettings): Client {
  return new Client({ connection, namespace: settings.namespace });
}

/** A worker connection (the SDK's Rust core), checked the same way. */
export async function connectWorker(settings: TemporalSettings): Promise<NativeConnection> {
  const { NativeConnection } = await import('@temporalio/worker');
  let connection: NativeConnection | undefined;
  try {
    connection = await NativeConnection.connect(settings.nativeConnectionOptions());
    await connection.workflowService.describeNamespace({ namespace: settings.namespace });
    return connection;
  } catch (error) {
    await connection?.close().catch(() => undefined);
    throw await refusal(settings, error);
  }
}
