/**
 * A fault injector at the network edge: forwards OpenAI-wire requests to a model server, except
 * the chosen ones (1-based request numbers), which get an HTTP 500 in OpenAI's error shape.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FlakyProxy {
  url: string;
  forwarded: number;
  failed: number;
  close(): Promise<void>;
}

export async function startFlakyProxy(target: string, failRequests: Set<number>): Promise<FlakyProxy> {
  let count = 0;
  const proxy: FlakyProxy = { url: '', forwarded: 0, failed: 0, close: async () => {} };
  const server = http.createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    count += 1;
    if (failRequests.has(count)) {
      proxy.failed += 1;
      response.writeHead(500, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ error: { message: 'injected failure', type: 'server_error', param: null, code: null } }));
      return;
    }
    proxy.forwarded += 1;
    const upstream = await fetch(`${target}${request.url!.replace(/^\/v1/, '')}`, {
      method: request.method,
      headers: { 'content-type': 'application/json', authorization: request.headers.authorization ?? '' },
      body: request.method === 'GET' ? undefined : Buffer.concat(chunks),
    });
    response.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' });
    response.end(Buffer.from(await upstream.arrayBuffer()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  proxy.close = () => new Promise((resolve) => server.close(() => resolve()));
  return proxy;
}
