/**
 * The front door of a production Temporal, at the network edge: a TLS (HTTP/2) endpoint that requires
 * a client certificate signed by its CA and an API key (`authorization: Bearer <key>`, as Temporal
 * Cloud takes it), and forwards each gRPC stream to a dev server's plaintext port. A key can be
 * refused some methods (PERMISSION_DENIED, as a namespace role without admin rights is). It records
 * every call (method, client certificate's CN, which key, what happened), never the key itself.
 */
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';

export interface ProxyKey {
  /** A name for the key in `calls` (the key itself is not recorded). */
  name: string;
  /** gRPC methods (`/package.Service/Method`) this key is refused. */
  refuse?: RegExp;
}

export interface ProxyCall {
  method: string;
  /** The client certificate's common name. */
  client: string;
  key: string | null;
  outcome: 'forwarded' | 'unauthenticated' | 'denied';
}

export interface TlsProxy {
  address: string;
  calls: ProxyCall[];
  /** TLS handshakes refused (no client certificate, or one the CA did not sign). */
  refusedHandshakes: number;
  close(): Promise<void>;
}

export interface TlsProxyOptions {
  /** host:port of the plaintext gRPC frontend. */
  upstream: string;
  cert: Buffer;
  key: Buffer;
  /** The CA client certificates must be signed by. */
  clientCa: Buffer;
  apiKeys: Record<string, ProxyKey>;
}

const { NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM, HTTP2_HEADER_AUTHORITY } = http2.constants;
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'authorization']);

function strip(headers: http2.IncomingHttpHeaders): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) if (!HOP_BY_HOP.has(name) && value !== undefined) out[name] = value;
  return out;
}

/** gRPC's percent-encoding of grpc-message: only '%' and bytes outside printable ASCII. */
const grpcMessage = (text: string) => Array.from(Buffer.from(text, 'utf8')).map((byte) => (byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`)).join('');

/** A gRPC error in the trailers-only form. */
function refuse(stream: http2.ServerHttp2Stream, code: number, message: string): void {
  stream.resume();
  stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(code), 'grpc-message': grpcMessage(message) }, { endStream: true });
}

export async function startTlsProxy(options: TlsProxyOptions): Promise<TlsProxy> {
  const proxy: TlsProxy = { address: '', calls: [], refusedHandshakes: 0, close: async () => {} };
  let upstream: http2.ClientHttp2Session | undefined;
  const session = () => {
    if (!upstream || upstream.closed || upstream.destroyed) {
      upstream = http2.connect(`http://${options.upstream}`);
      upstream.on('error', () => undefined);
    }
    return upstream;
  };
  const sessions = new Set<http2.ServerHttp2Session>();
  const server = http2.createSecureServer({ cert: options.cert, key: options.key, ca: options.clientCa, requestCert: true, rejectUnauthorized: true, allowHTTP1: false });
  server.on('tlsClientError', () => (proxy.refusedHandshakes += 1));
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    const method = String(headers[':path'] ?? '');
    const client = String((stream.session?.socket as TLSSocket | undefined)?.getPeerCertificate()?.subject?.CN ?? '');
    const bearer = /^Bearer (.+)$/.exec(String(headers.authorization ?? ''))?.[1];
    const key = bearer !== undefined ? options.apiKeys[bearer] : undefined;
    if (!key) {
      proxy.calls.push({ method, client, key: null, outcome: 'unauthenticated' });
      refuse(stream, 16, bearer === undefined ? 'this endpoint needs an API key (authorization: Bearer <key>)' : 'invalid API key');
      return;
    }
    if (key.refuse?.test(method)) {
      proxy.calls.push({ method, client, key: key.name, outcome: 'denied' });
      refuse(stream, 7, `the API key ${key.name} may not call ${method.split('/').pop()}`);
      return;
    }
    proxy.calls.push({ method, client, key: key.name, outcome: 'forwarded' });
    const request = session().request({ ...strip(headers), [HTTP2_HEADER_AUTHORITY]: options.upstream });
    request.on('error', () => undefined);
    let done = false;
    let trailers: http2.OutgoingHttpHeaders = { 'grpc-status': '2', 'grpc-message': 'upstream ended without trailers' };
    stream.pipe(request);
    request.on('response', (response, flags) => {
      if (stream.destroyed) return;
      if (flags & NGHTTP2_FLAG_END_STREAM) {
        done = true;
        stream.respond(strip(response), { endStream: true });
        return;
      }
      stream.respond(strip(response), { waitForTrailers: true });
    });
    stream.on('wantTrailers', () => stream.sendTrailers(trailers));
    request.on('trailers', (received) => (trailers = strip(received)));
    request.on('data', (chunk: Buffer) => {
      if (!done && !stream.destroyed) stream.write(chunk);
    });
    request.on('end', () => {
      if (!done && !stream.destroyed) stream.end();
      done = true;
    });
    request.on('close', () => {
      if (!stream.destroyed && !done) stream.close(request.rstCode || NGHTTP2_CANCEL);
    });
    stream.on('close', () => {
      if (!request.closed) request.close(NGHTTP2_CANCEL);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = async () => {
    for (const s of sessions) s.destroy();
    upstream?.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return proxy;
}
