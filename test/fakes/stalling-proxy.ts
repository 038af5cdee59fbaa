/**
 * A model that stops answering, at the network edge: forwards model requests (Chat Completions,
 * Responses, Messages) to a model server,
 * but for the first `stallCount` requests of one turn (turn = assistant messages already in the
 * transcript, as the scripted model counts) it forwards the request and then never sends the answer.
 * The client's own timeout is the only way out; later requests of that turn are answered as usual.
 * The scripted model behind it answers from the request alone, so a retried request gets the answer
 * the stalled one would have got.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { responsesTurn, type ResponsesRequest } from '../../lib/scripted-model/wire.ts';

export interface StalledRequest {
  turn: number;
  /** Epoch ms the request arrived / the client gave up on it. */
  at: number;
  abandonedAt: number | null;
}

export interface StallingProxy {
  url: string;
  /** The requests that got no answer, in order. */
  stalled: StalledRequest[];
  close(): Promise<void>;
}

export async function startStallingProxy(target: string, options: { turn: number; stallCount: number }): Promise<StallingProxy> {
  let seen = 0;
  const held = new Set<http.ServerResponse>();
  const proxy: StallingProxy = { url: '', stalled: [], close: async () => {} };
  const server = http.createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    let turn = -1;
    try {
      const parsed = JSON.parse(body.toString('utf8')) as { messages?: Array<{ role?: string }>; input?: unknown };
      // Chat Completions and Messages count assistant messages; the Responses API its own output runs.
      turn = parsed.messages ? parsed.messages.filter((message) => message.role === 'assistant').length
        : parsed.input !== undefined ? responsesTurn(parsed as ResponsesRequest) : -1;
    } catch {
      // not JSON; forwarded as is
    }
    const stall = turn === options.turn && seen < options.stallCount;
    if (turn === options.turn) seen += 1;
    const arrivedAt = Date.now();
    const upstream = await fetch(`${target}${request.url!.replace(/^\/v1/, '')}`, {
      method: request.method,
      headers: { 'content-type': 'application/json', authorization: request.headers.authorization ?? '', ...(request.headers['x-api-key'] ? { 'x-api-key': String(request.headers['x-api-key']) } : {}) },
      body: request.method === 'GET' ? undefined : body,
    });
    const answer = Buffer.from(await upstream.arrayBuffer());
    if (stall) {
      // The model server saw (and logged) the request; its answer is never delivered.
      const entry: StalledRequest = { turn, at: arrivedAt, abandonedAt: null };
      proxy.stalled.push(entry);
      held.add(response);
      response.once('close', () => {
        entry.abandonedAt = Date.now();
        held.delete(response);
      });
      return;
    }
    response.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' });
    response.end(answer);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  proxy.close = () =>
    new Promise((resolve) => {
      for (const response of held) response.destroy();
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return proxy;
}
