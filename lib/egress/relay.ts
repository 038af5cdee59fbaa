/**
 * The worker's end of the egress relay. A sandbox has no network; for the length of one phase
 * (setup hooks, an agent session, a check) a relay process inside it listens on loopback, and each
 * connection made to it travels over a Docker exec stream to here. Here the policy decides: an HTTP
 * proxy request (CONNECT host:port, or an absolute http:// URL) to an allowed destination is connected
 * from the worker; anything else is answered at once with 403 and a message naming the destination and
 * the policy key. Every connection is recorded (phase, destination, bytes, allowed or refused): never
 * paths, headers or payloads. Works with a remote Docker engine: no ports, no network namespaces.
 */
import { lookup } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { PassThrough, type Duplex } from 'node:stream';
import type Docker from 'dockerode';
import { pack } from 'tar-stream';
import { MODEL_HOST, parseModelRequest, tokensReported, upstreamHeaders, upstreamUrl, type ModelGateway } from './model-gateway.ts';
import type { EgressPhase, ResolvedEgress } from './policy.ts';
import { policyKey } from './policy.ts';

const OPEN = 1;
const DATA = 2;
const CLOSE = 3;
const HEAD_LIMIT = 16 * 1024;
/** Where the relay script and the worker's CA bundle go in a sandbox (root's, readable by all). */
export const RELAY_DIR = '/cadenza-egress';
const SCRIPT = readFileSync(new URL('./relay-in-sandbox.cjs', import.meta.url));

export interface EgressRecord {
  phase: EgressPhase;
  /** host:port as the client asked for it. */
  destination: string;
  allowed: boolean;
  /** Why it was refused, or which allowed entry it matched. */
  reason: string;
  bytesOut: number;
  bytesIn: number;
  durationMs: number;
}

export interface RelaySession {
  /** The environment that points the phase's commands at the relay (proxy variables, registries, CA bundle). */
  env: Record<string, string>;
  /** Refusal messages since the last call, for the output of the command that caused them. */
  takeRefusals(): string[];
  /** Stops the relay and returns what went through it. */
  stop(): Promise<EgressRecord[]>;
}

const isPrivate = (address: string): boolean => {
  if (net.isIPv6(address)) {
    const lower = address.toLowerCase();
    if (lower.startsWith('::ffff:')) return isPrivate(lower.slice(7));
    return lower === '::1' || lower === '::' || lower.startsWith('fc') || lower.startsWith('fd') || lower.startsWith('fe80');
  }
  const [a = 0, b = 0] = address.split('.').map(Number);
  return a === 127 || a === 10 || a === 0 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 169 && b === 254);
};

/** The first request on a proxy connection: where it wants to go and what to send there first. */
function parseHead(head: string): { host: string; port: number; tunnel: boolean; firstBytes: string } | null {
  const [requestLine = '', ...rest] = head.split('\r\n');
  const [method = '', target = '', version = 'HTTP/1.1'] = requestLine.split(' ');
  if (method === 'CONNECT') {
    const match = /^\[?([^\]]+?)\]?:(\d+)$/.exec(target);
    return match ? { host: match[1]!.toLowerCase(), port: Number(match[2]), tunnel: true, firstBytes: '' } : null;
  }
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return null;
  }
  if (url.protocol !== 'http:') return null;
  // Origin-form towards the server, one request per connection.
  const headers = rest.filter((line) => line && !/^(proxy-connection|connection|keep-alive):/i.test(line));
  const firstBytes = [`${method} ${url.pathname}${url.search} ${version}`, ...headers, 'Connection: close', '', ''].join('\r\n');
  return { host: url.hostname.toLowerCase(), port: Number(url.port || 80), tunnel: false, firstBytes };
}

/** A policy entry matching `host:port`: `name`, `*.suffix`, with `:port` or else ports 443 and 80. */
function matchingEntry(host: string, port: number, hosts: string[]): string | null {
  for (const entry of hosts) {
    const [pattern = '', entryPort] = entry.split(/:(?=\d+$)/);
    const portOk = entryPort ? Number(entryPort) === port : port === 443 || port === 80;
    const hostOk = pattern.startsWith('*.') ? host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1 : host === pattern;
    if (portOk && hostOk) return entry;
  }
  return null;
}

function frame(type: number, id: number, payload?: Buffer): Buffer {
  const header = Buffer.alloc(9);
  header[0] = type;
  header.writeUInt32BE(id, 1);
  header.writeUInt32BE(payload ? payload.length : 0, 5);
  return payload ? Buffer.concat([header, payload]) : header;
}

/**
 * Starts a relay in `container` for `phase` under `policy`, as root (the agent's user cannot stop
 * it). Resolves once it listens.
 */
export async function startRelay(
  docker: Docker, container: string, phase: EgressPhase, policy: ResolvedEgress, port = relayPort(), options: { model?: ModelGateway } = {},
): Promise<RelaySession> {
  const rule = policy.phases[phase];
  const files = pack();
  files.entry({ name: RELAY_DIR.slice(1), type: 'directory', mode: 0o755, uid: 0, gid: 0 });
  files.entry({ name: `${RELAY_DIR.slice(1)}/relay.cjs`, mode: 0o644, uid: 0, gid: 0 }, SCRIPT);
  if (policy.caBundle) files.entry({ name: `${RELAY_DIR.slice(1)}/ca.pem`, mode: 0o644, uid: 0, gid: 0 }, policy.caBundle);
  files.finalize();
  await docker.getContainer(container).putArchive(files as unknown as NodeJS.ReadableStream, { path: '/' });
  const exec = await docker.getContainer(container).exec({
    Cmd: ['node', `${RELAY_DIR}/relay.cjs`, String(port)],
    User: 'root',
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: true,
  });
  const stream = (await exec.start({ hijack: true, stdin: true })) as Duplex;
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  docker.modem.demuxStream(stream, stdout, stderr);

  const records: EgressRecord[] = [];
  const refusals: string[] = [];
  /** A connection collects its request head, then waits for the decision (queueing what comes), then flows. */
  interface Connection {
    head: Buffer<ArrayBufferLike>; deciding: boolean; queued: Buffer[]; upstream?: net.Socket; record?: EgressRecord; started: number;
    /** Set for a model request: the body is collected here, then forwarded as one request. */
    sink?: (payload: Buffer) => void;
  }
  const connections = new Map<number, Connection>();
  const toSandbox = (type: number, id: number, payload?: Buffer) => {
    if (!stream.destroyed) stream.write(frame(type, id, payload));
  };

  const refuse = (id: number, destination: string, reason: string, started: number) => {
    const message = `Cadenza refused egress to ${destination} during ${phase}: ${reason}. To allow it, add it to ${policyKey(phase)} in WORKFLOW.md (now: ${rule.describe}).`;
    refusals.push(message);
    records.push({ phase, destination, allowed: false, reason, bytesOut: 0, bytesIn: 0, durationMs: Date.now() - started });
    const body = `${message}\n`;
    toSandbox(DATA, id, Buffer.from(`HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\nX-Cadenza-Egress: refused\r\nConnection: close\r\n\r\n${body}`));
    toSandbox(CLOSE, id);
    connections.delete(id);
  };

  const decide = async (id: number) => {
    const connection = connections.get(id)!;
    const text = connection.head.toString('latin1');
    const end = text.indexOf('\r\n\r\n');
    const request = parseHead(text.slice(0, end));
    if (!request) return refuse(id, 'an unreadable request', 'only HTTP proxy requests (CONNECT host:port, or http:// URLs) go through the relay', connection.started);
    const destination = `${request.host}:${request.port}`;
    if (request.host === MODEL_HOST) {
      if (!options.model || request.tunnel) return refuse(id, destination, 'the model endpoint is reachable only from an agent runtime\'s session, as plain http://' + MODEL_HOST, connection.started);
      return forwardToModel(id, connection, options.model, text.slice(0, end), connection.head.subarray(end + 4));
    }
    if (rule.hosts === 'none') return refuse(id, destination, `${policyKey(phase)} is none`, connection.started);
    const entry = matchingEntry(request.host, request.port, rule.hosts);
    if (!entry) return refuse(id, destination, 'not an allowed destination', connection.started);
    let address: string;
    try {
      const addresses = await lookup(request.host, { all: true });
      if (addresses.some((found) => isPrivate(found.address))) return refuse(id, destination, `it resolves to a loopback or private address (${addresses.map((found) => found.address).join(', ')})`, connection.started);
      address = addresses[0]!.address;
    } catch (error) {
      return refuse(id, destination, `the worker cannot resolve it (${(error as Error).message})`, connection.started);
    }
    const record: EgressRecord = { phase, destination, allowed: true, reason: `allowed by ${rule.labelOf(entry)}`, bytesOut: 0, bytesIn: 0, durationMs: 0 };
    records.push(record);
    connection.record = record;
    const upstream = net.connect({ host: address, port: request.port });
    connection.upstream = upstream;
    const rest = connection.head.subarray(end + 4);
    upstream.on('connect', () => {
      if (request.tunnel) toSandbox(DATA, id, Buffer.from('HTTP/1.1 200 Connection established\r\n\r\n'));
      else upstream.write(request.firstBytes);
      for (const chunk of [rest, ...connection.queued.splice(0)]) {
        if (!chunk.length) continue;
        record.bytesOut += chunk.length;
        upstream.write(chunk);
      }
      connection.deciding = false;
    });
    upstream.on('data', (chunk: Buffer) => {
      record.bytesIn += chunk.length;
      toSandbox(DATA, id, chunk);
    });
    const finish = () => {
      if (!connections.has(id)) return;
      record.durationMs = Date.now() - connection.started;
      connections.delete(id);
      toSandbox(CLOSE, id);
    };
    upstream.on('close', finish);
    upstream.on('error', (error) => {
      record.reason += `; the connection failed: ${error.message}`;
      finish();
    });
  };

  /** Answers a model request itself: a status, JSON or an event stream, then the connection closes. */
  const answer = (id: number, status: string, contentType: string, body: string) => {
    toSandbox(DATA, id, Buffer.from(`HTTP/1.1 ${status}\r\nContent-Type: ${contentType}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`));
    toSandbox(CLOSE, id);
    connections.delete(id);
  };

  /**
   * A request to the model endpoint: collected whole, sent from the worker with the worker's
   * credential, its answer streamed back as it comes, its tokens counted and the exchange recorded.
   */
  const forwardToModel = (id: number, connection: Connection, gateway: ModelGateway, head: string, rest: Buffer) => {
    const destination = `${MODEL_HOST}:80`;
    const parsed = parseModelRequest(head);
    if (!parsed) return refuse(id, destination, 'a model request needs a Content-Length body (no chunked uploads)', connection.started);
    const refusal = gateway.refusal();
    if (refusal) {
      records.push({ phase, destination, allowed: false, reason: refusal, bytesOut: 0, bytesIn: 0, durationMs: Date.now() - connection.started });
      refusals.push(`Cadenza refused a model request during ${phase}: ${refusal}.`);
      return answer(id, '429 Too Many Requests', 'application/json', JSON.stringify({
        type: 'error', error: { type: 'insufficient_quota', code: 'budget_exhausted', message: `Cadenza: ${refusal}`, param: null },
      }));
    }
    const record: EgressRecord = { phase, destination, allowed: true, reason: 'the model endpoint (the worker adds the credential)', bytesOut: 0, bytesIn: 0, durationMs: 0 };
    records.push(record);
    const chunks = [rest, ...connection.queued.splice(0)];
    let received = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
    let sent = false;
    const send = async () => {
      sent = true;
      connection.sink = () => {};
      const body = Buffer.concat(chunks).subarray(0, parsed.contentLength);
      record.bytesOut = body.length;
      try {
        const response = await fetch(upstreamUrl(gateway.baseUrl, parsed.path), {
          method: parsed.method, headers: upstreamHeaders(parsed, gateway),
          ...(parsed.method === 'GET' || parsed.method === 'HEAD' ? {} : { body }),
        });
        const keep = ['content-type', 'retry-after', 'retry-after-ms', 'request-id', 'x-request-id'].flatMap((name) => {
          const value = response.headers.get(name);
          return value ? [`${name}: ${value}`] : [];
        });
        toSandbox(DATA, id, Buffer.from([`HTTP/1.1 ${response.status} ${response.statusText || 'OK'}`, ...keep, 'Connection: close', '', ''].join('\r\n')));
        const parts: Buffer[] = [];
        if (response.body) {
          for await (const chunk of response.body) {
            const bytes = Buffer.from(chunk);
            parts.push(bytes);
            record.bytesIn += bytes.length;
            toSandbox(DATA, id, bytes);
          }
        }
        const text = Buffer.concat(parts).toString('utf8');
        const tokens = tokensReported(text);
        gateway.onExchange({
          method: parsed.method, path: parsed.path, status: response.status, request: body.toString('utf8'), response: text,
          tokens: tokens.total, inputTokens: tokens.input, outputTokens: tokens.output, durationMs: Date.now() - connection.started,
        });
      } catch (error) {
        record.reason += `; the request failed: ${(error as Error).message}`;
        if (!record.bytesIn) {
          answer(id, '502 Bad Gateway', 'application/json', JSON.stringify({ error: { type: 'server_error', message: `Cadenza could not reach the model endpoint: ${(error as Error).message}` } }));
          return;
        }
      } finally {
        record.durationMs = Date.now() - connection.started;
      }
      connections.delete(id);
      toSandbox(CLOSE, id);
    };
    connection.sink = (payload: Buffer) => {
      chunks.push(payload);
      received += payload.length;
      if (!sent && received >= parsed.contentLength) void send();
    };
    connection.deciding = false;
    if (received >= parsed.contentLength) void send();
  };

  let pending: Buffer<ArrayBufferLike> = Buffer.alloc(0);
  stdout.on('data', (chunk: Buffer) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    while (pending.length >= 9) {
      const length = pending.readUInt32BE(5);
      if (pending.length < 9 + length) break;
      const type = pending[0]!;
      const id = pending.readUInt32BE(1);
      const payload = pending.subarray(9, 9 + length);
      pending = pending.subarray(9 + length);
      if (type === OPEN) {
        connections.set(id, { head: Buffer.alloc(0), deciding: false, queued: [], started: Date.now() });
        continue;
      }
      const connection = connections.get(id);
      if (!connection) continue;
      if (type === CLOSE) {
        connection.upstream?.end();
        if (connection.record) connection.record.durationMs = Date.now() - connection.started;
        connections.delete(id);
      } else if (connection.sink) {
        connection.sink(Buffer.from(payload));
      } else if (connection.deciding) {
        connection.queued.push(Buffer.from(payload));
      } else if (connection.upstream) {
        if (connection.record) connection.record.bytesOut += payload.length;
        connection.upstream.write(payload);
      } else {
        connection.head = Buffer.concat([connection.head, payload]);
        if (connection.head.includes('\r\n\r\n')) {
          connection.deciding = true;
          void decide(id).catch((error: Error) => refuse(id, 'a destination', `the relay failed: ${error.message}`, connection.started));
        } else if (connection.head.length > HEAD_LIMIT) {
          refuse(id, 'an unreadable request', `its request head is larger than ${HEAD_LIMIT} bytes`, connection.started);
        }
      }
    }
  });

  await new Promise<void>((resolve, reject) => {
    let said = '';
    const onData = (chunk: Buffer) => {
      said += chunk.toString('utf8');
      if (said.includes('cadenza-relay-listening')) {
        stderr.off('data', onData);
        resolve();
      } else if (said.includes('cadenza-relay-error')) {
        reject(new Error(`the egress relay could not start in ${container}: ${said.trim()}`));
      }
    };
    stderr.on('data', onData);
    stream.on('end', () => reject(new Error(`the egress relay in ${container} ended before it listened (is node in the sandbox image?): ${said.trim()}`)));
  });

  return {
    env: relayEnv(port, policy),
    takeRefusals: () => refusals.splice(0),
    async stop() {
      for (const connection of connections.values()) connection.upstream?.destroy();
      stream.end();
      stream.destroy();
      return records;
    },
  };
}

/** A loopback port for a relay (the sandbox's own loopback: nothing else listens there). */
export const relayPort = () => 20_000 + Math.floor(Math.random() * 40_000);

/** What a phase's commands get: the environment that sends them through the phase's proxy, and what to tell after each. */
export interface PhaseEgress {
  env: Record<string, string>;
  /** Resolves once the relay listens; await it before a command runs. */
  ready(): Promise<void>;
  /** What to tell after a command with this `output`: a line per connection refused meanwhile (or that the phase has no egress); '' when nothing. */
  notes(output: string): string;
}

/** The proxy variables (and npm's own settings, which ignore them) that send a command's traffic to `proxy`. */
export function proxyEnv(proxy: string): Record<string, string> {
  return {
    HTTP_PROXY: proxy, HTTPS_PROXY: proxy, http_proxy: proxy, https_proxy: proxy,
    NO_PROXY: 'localhost,127.0.0.1,::1', no_proxy: 'localhost,127.0.0.1,::1',
    npm_config_proxy: proxy, npm_config_https_proxy: proxy,
  };
}

/** The environment that points a phase's commands at a relay on `port`: proxy variables, registries, CA bundle. */
export function relayEnv(port: number, policy: ResolvedEgress): Record<string, string> {
  return {
    ...proxyEnv(`http://127.0.0.1:${port}`),
    ...policy.sandboxEnv,
    ...(policy.caBundle ? {
      NODE_EXTRA_CA_CERTS: `${RELAY_DIR}/ca.pem`, SSL_CERT_FILE: `${RELAY_DIR}/ca.pem`, REQUESTS_CA_BUNDLE: `${RELAY_DIR}/ca.pem`,
      PIP_CERT: `${RELAY_DIR}/ca.pem`, npm_config_cafile: `${RELAY_DIR}/ca.pem`, GIT_SSL_CAINFO: `${RELAY_DIR}/ca.pem`, CURL_CA_BUNDLE: `${RELAY_DIR}/ca.pem`,
    } : {}),
  };
}
