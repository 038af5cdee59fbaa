/**
 * The scripted model: a local HTTP server speaking the model wire protocols that replays a script of
 * tool calls per issue (used when there is no OPENAI_API_KEY, and to drive agent CLIs offline).
 *
 * - POST /v1/chat/completions (non-streaming), GET /v1/models; any `Authorization: Bearer` value.
 * - POST /v1/responses (OpenAI's Responses API, what Codex speaks) and POST /v1/messages (Anthropic's
 *   Messages API, what Claude Code speaks; `x-api-key` or Bearer), each plain or with `stream: true`
 *   as server-sent events (see wire.ts). The turn answered is the number of answers the model already
 *   gave in the request's transcript, as for chat completions.
 * - The issue comes from the first `Issue identifier: X` line in the messages; its script is
 *   `<scriptsDir>/X.json|.yaml|.yml` (see script.ts). The turn answered is the number of assistant
 *   messages already in the transcript, so the reply depends only on the request: a retried or
 *   resumed session sending the same transcript gets the same answer.
 * - A `Cadenza session: reviewer` line makes it the reviewer's request: it is answered from the
 *   script's `reviewer.turns`, counted in the reviewer's own conversation.
 * - No identifier, or no script for it: an assistant message saying so plus a `finish` tool call with
 *   summary `no script for <id>`. Past the last turn: a `finish` tool call with summary `script exhausted`.
 *   Either way a run ends cleanly instead of looping. For the reviewer the closing call is
 *   `submit_review` with verdict `approve` and the same summary.
 * - A malformed script file: 500 (server_error, code script_error) naming the file and the problem.
 *
 * Standalone: `tsx lib/scripted-model/server.ts --scripts DIR [--port N] [--host H] [--request-log FILE]`
 * prints the base URL on stdout.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { appendFile, mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import {
  ApiError,
  MODEL_ID,
  buildCompletion,
  findIdentifier,
  findSession,
  lastUserMessage,
  turnIndex,
  validateRequest,
  type Reply,
} from './protocol.ts';
import { SESSIONS, ScriptError, loadScript, type ScriptToolCall, type SessionName } from './script.ts';
import {
  anthropicError, buildMessage, buildResponse, identifierIn, messageEvents, messagesLastInput, messagesTurn, responseEvents,
  responsesLastInput, responsesTurn, sessionIn, validateMessagesRequest, validateResponsesRequest, type SseEvent,
} from './wire.ts';

export interface ScriptedModelOptions {
  scriptsDir: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** When set, each request is also appended here as one JSON line. */
  requestLogFile?: string;
  /** Default: console.error. */
  log?: (line: string) => void;
}

/** One chat completion request as the scripted model saw it. */
export interface ScriptedRequest {
  at: string;
  identifier: string | null;
  turn: number;
  /** How many messages the request carried. */
  messages: number;
  lastUserMessage: string | null;
  /** Which API it came in on (absent: chat completions). */
  wire?: 'responses' | 'messages';
  /** The model the request named. */
  model?: string;
  /** The session other than the coding agent's it came from (`reviewer`). */
  session?: string;
}

export interface ScriptedModel {
  /** e.g. http://127.0.0.1:PORT/v1 — the `baseURL` for the openai client. */
  baseUrl: string;
  port: number;
  /** Every chat completion request answered so far, oldest first. */
  requests: ScriptedRequest[];
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 32 * 1024 * 1024;

export async function startScriptedModel(options: ScriptedModelOptions): Promise<ScriptedModel> {
  const scriptsDir = path.resolve(options.scriptsDir);
  const host = options.host ?? '127.0.0.1';
  const log = options.log ?? ((line: string) => console.error(line));
  const requestLogFile = options.requestLogFile ? path.resolve(options.requestLogFile) : undefined;

  const dirStat = await stat(scriptsDir).catch(() => null);
  if (!dirStat?.isDirectory()) throw new Error(`scripted model: scripts directory ${scriptsDir} does not exist`);
  if (requestLogFile) await mkdir(path.dirname(requestLogFile), { recursive: true });

  const requests: ScriptedRequest[] = [];
  const closing = new AbortController();

  async function record(entry: ScriptedRequest): Promise<void> {
    requests.push(entry);
    if (requestLogFile) await appendFile(requestLogFile, `${JSON.stringify(entry)}\n`);
  }

  /** What the script says for this issue's (and session's) turn, or why there is nothing to say. */
  async function replyFor(identifier: string | null, turn: number, session: string | null = null): Promise<Reply> {
    // How a session ends when its script says nothing more: the coding agent finishes, the reviewer approves.
    const closingCall = (summary: string): ScriptToolCall => session === 'reviewer'
      ? { name: 'submit_review', arguments: { verdict: 'approve', summary, comments: [] } }
      : { name: 'finish', arguments: { summary } };
    const loaded = identifier === null ? null : await loadScript(scriptsDir, identifier);
    const known = (SESSIONS as readonly string[]).includes(session ?? '');
    const turns = loaded === null ? undefined : session === null ? loaded.script.turns : known ? loaded.script[session as SessionName]?.turns : undefined;
    if (loaded === null || turns === undefined) {
      const id = identifier ?? '(no issue identifier)';
      const why = identifier === null
        ? 'the request has no "Issue identifier:" line'
        : loaded === null
          ? `there is no ${identifier}.json, ${identifier}.yaml or ${identifier}.yml in ${scriptsDir}`
          : `${loaded.file} has no "${session}" turns${known ? '' : ` (the sessions a script can have are ${SESSIONS.join(', ')})`}`;
      const whose = session === null ? id : `${id}'s ${session}`;
      return {
        content: `This is the scripted model (no OPENAI_API_KEY) and it has no script for ${whose}: ${why}. Finishing.`,
        toolCalls: [closingCall(`no script for ${whose}`)],
      };
    }
    const step = turns[turn];
    if (step === undefined) return { content: null, toolCalls: [closingCall('script exhausted')] };
    const toolCalls = step.tool_calls ?? [];
    if (step.delay_ms) await sleep(step.delay_ms, undefined, { signal: closing.signal });
    return { content: step.say ?? (toolCalls.length > 0 ? null : ''), toolCalls };
  }

  async function chatCompletion(req: IncomingMessage): Promise<unknown> {
    const request = validateRequest(await readJson(req));
    const identifier = findIdentifier(request.messages);
    const session = findSession(request.messages);
    const turn = turnIndex(request.messages);
    await record({ at: new Date().toISOString(), identifier, turn, messages: request.messages.length, lastUserMessage: lastUserMessage(request.messages), model: request.model, ...(session ? { session } : {}) });
    return buildCompletion(request, turn, await replyFor(identifier, turn, session));
  }

  /** OpenAI's Responses API, plain or streamed (what Codex speaks). */
  async function responses(req: IncomingMessage, res: ServerResponse): Promise<unknown> {
    const request = validateResponsesRequest(await readJson(req));
    const identifier = identifierIn(request.instructions, request.input);
    const session = sessionIn(request.instructions);
    const turn = responsesTurn(request);
    await record({ at: new Date().toISOString(), identifier, turn, messages: Array.isArray(request.input) ? request.input.length : 1, lastUserMessage: responsesLastInput(request), wire: 'responses', model: request.model, ...(session ? { session } : {}) });
    const response = buildResponse(request, turn, await replyFor(identifier, turn, session));
    if (!request.stream) return response;
    return streamEvents(res, responseEvents(response));
  }

  /** Anthropic's Messages API, plain or streamed (what Claude Code speaks). */
  async function messages(req: IncomingMessage, res: ServerResponse): Promise<unknown> {
    const request = validateMessagesRequest(await readJson(req));
    const identifier = identifierIn(request.system, request.messages);
    const session = sessionIn(request.system);
    const turn = messagesTurn(request);
    await record({ at: new Date().toISOString(), identifier, turn, messages: request.messages.length, lastUserMessage: messagesLastInput(request), wire: 'messages', model: request.model, ...(session ? { session } : {}) });
    const message = buildMessage(request, turn, await replyFor(identifier, turn, session));
    if (!request.stream) return message;
    return streamEvents(res, messageEvents(message));
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { pathname } = new URL(req.url ?? '/', 'http://scripted-model');
    const route = routes[pathname];
    if (!route) {
      throw new ApiError(404, `Unknown request URL: ${req.method} ${pathname}.`, 'invalid_request_error', null, 'unknown_url');
    }
    if (req.method !== route.method) {
      res.setHeader('allow', route.method);
      throw new ApiError(405, `${pathname} only accepts ${route.method}.`, 'invalid_request_error', null, 'method_not_allowed');
    }
    const anthropicKey = pathname === '/v1/messages' && typeof req.headers['x-api-key'] === 'string' && req.headers['x-api-key'] !== '';
    if (!anthropicKey && !/^Bearer\s+\S/i.test(req.headers.authorization ?? '')) {
      throw new ApiError(401, 'Missing API key: send an "Authorization: Bearer <any value>" header (or x-api-key on /v1/messages).', 'invalid_request_error', null, 'invalid_api_key');
    }
    const body = await route.run(req, res);
    if (body !== STREAMED) send(res, 200, body);
  }

  const routes: Record<string, { method: string; run: (req: IncomingMessage, res: ServerResponse) => Promise<unknown> }> = {
    '/v1/chat/completions': { method: 'POST', run: chatCompletion },
    '/v1/responses': { method: 'POST', run: responses },
    '/v1/messages': { method: 'POST', run: messages },
    '/v1/models': {
      method: 'GET',
      run: async () => ({ object: 'list', data: [{ id: MODEL_ID, object: 'model', created: 0, owned_by: 'cadenza' }] }),
    },
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (closing.signal.aborted) {
        res.destroy();
        return;
      }
      const anthropic = (req.url ?? '').startsWith('/v1/messages');
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (error instanceof ApiError) {
        send(res, error.status, anthropic ? anthropicError(error) : error.body());
        return;
      }
      const message = error instanceof Error ? error.message : String(error);
      const scriptError = error instanceof ScriptError;
      log(`scripted model: ${scriptError ? '' : 'unexpected failure: '}${message}`);
      send(res, 500, new ApiError(500, message, 'server_error', null, scriptError ? 'script_error' : null).body());
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const baseUrl = `http://${host.includes(':') ? `[${host}]` : host}:${port}/v1`;
  log(`scripted model (no OPENAI_API_KEY): replaying scripts from ${scriptsDir} at ${baseUrl}`);

  let closed: Promise<void> | undefined;
  return {
    baseUrl,
    port,
    requests,
    close() {
      closed ??= new Promise<void>((resolve, reject) => {
        closing.abort();
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
      return closed;
    },
  };
}

/** Marks a reply already written as a stream. */
const STREAMED = Symbol('streamed');

/** Writes server-sent events the way both APIs do (`event:` and `data:` lines, a blank line between). */
function streamEvents(res: ServerResponse, events: SseEvent[]): typeof STREAMED {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  for (const { event, data } of events) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  res.end();
  return STREAMED;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.destroyed || res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new ApiError(413, `Request body exceeds ${MAX_BODY_BYTES} bytes.`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new ApiError(400, 'The request body is not valid JSON.');
  }
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      scripts: { type: 'string' },
      port: { type: 'string', default: '0' },
      host: { type: 'string' },
      'request-log': { type: 'string' },
    },
  });
  if (!values.scripts) throw new Error('usage: server.ts --scripts DIR [--port N] [--host H] [--request-log FILE]');
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be 0..65535, got ${values.port}`);
  const model = await startScriptedModel({
    scriptsDir: values.scripts,
    port,
    host: values.host,
    requestLogFile: values['request-log'],
  });
  process.stdout.write(`${model.baseUrl}\n`);
  const stop = () => void model.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
