/**
 * The model endpoint as a destination of the egress relay. An agent CLI in the sandbox is pointed at
 * `http://model.cadenza.internal/v1` (through the relay's proxy); the worker forwards each request to
 * the real endpoint, adding the credential itself (the key never enters the sandbox), counts the
 * tokens the endpoint reports against the run's budget (refusing once it is spent), and hands every
 * exchange to `onExchange` for the transcript. Plain JSON and server-sent-event answers both stream
 * through as they come.
 */

/** The name agent CLIs in a sandbox use for the model endpoint; it never resolves anywhere. */
export const MODEL_HOST = 'model.cadenza.internal';
export const MODEL_BASE_URL = `http://${MODEL_HOST}/v1`;

export interface ModelExchange {
  method: string;
  /** The path as the client sent it, e.g. /v1/responses. */
  path: string;
  status: number;
  request: string;
  response: string;
  /** Tokens the endpoint reported: all of them (what the budget counts), and how they split. */
  tokens: number;
  inputTokens: number;
  outputTokens: number;
  durationMs: number;
}

export interface ModelGateway {
  /** The real endpoint, e.g. https://api.openai.com/v1 (a client's /v1/... path is appended after it). */
  baseUrl: string;
  /** Added by the worker; whatever credential the sandbox sent is dropped. */
  credential: { header: 'authorization' | 'x-api-key'; value: string } | null;
  /** Why no more requests may go (a spent budget), or null. */
  refusal(): string | null;
  onExchange(exchange: ModelExchange): void;
}

/** Headers a client in the sandbox may not choose: credentials, hop-by-hop, and what the worker sets. */
const DROPPED = new Set(['authorization', 'x-api-key', 'proxy-authorization', 'host', 'connection', 'proxy-connection', 'keep-alive', 'content-length', 'transfer-encoding', 'te', 'upgrade', 'accept-encoding']);

export interface ParsedRequest {
  method: string;
  path: string;
  headers: Array<[string, string]>;
  contentLength: number;
}

/** The request line and headers of a proxied `http://model.cadenza.internal/...` request. */
export function parseModelRequest(head: string): ParsedRequest | null {
  const [requestLine = '', ...lines] = head.split('\r\n');
  const [method = '', target = ''] = requestLine.split(' ');
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return null;
  }
  const headers = lines.filter(Boolean).map((line): [string, string] => {
    const colon = line.indexOf(':');
    return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()];
  });
  const length = Number(headers.find(([name]) => name === 'content-length')?.[1] ?? 0);
  if (headers.some(([name, value]) => name === 'transfer-encoding' && value.toLowerCase() !== 'identity')) return null;
  return { method, path: `${url.pathname}${url.search}`, headers, contentLength: Number.isFinite(length) ? length : 0 };
}

/** Where a client's path goes on the real endpoint: its /v1 prefix is the base URL's. */
export function upstreamUrl(baseUrl: string, path: string): string {
  return `${baseUrl.replace(/\/+$/, '')}${path.replace(/^\/v1(?=\/|$)/, '')}`;
}

export interface ReportedTokens {
  input: number;
  output: number;
  /** input + output: what the budget counts. */
  total: number;
}

/**
 * Tokens the endpoint says it used, from a JSON answer or an event stream, in either API's shape,
 * split into input and output:
 * - OpenAI (Responses, Chat Completions): `usage.input_tokens` / `prompt_tokens` (cached tokens
 *   included) and `usage.output_tokens` / `completion_tokens`; streamed, the usage comes with
 *   `response.completed`.
 * - Anthropic Messages: `input_tokens` plus the prompt-cache tokens (`cache_creation_input_tokens`,
 *   `cache_read_input_tokens`, which Anthropic counts apart) and `output_tokens`; streamed, the input
 *   comes with `message_start` and the final output count with `message_delta`.
 * Streamed counts are cumulative, so the largest seen is the count. A `total_tokens` above
 * input + output (an endpoint reporting no split) is counted as input, so the two always sum to the total.
 */
export function tokensReported(body: string): ReportedTokens {
  const documents: unknown[] = [];
  if (body.trimStart().startsWith('{')) {
    try {
      documents.push(JSON.parse(body));
    } catch {
      // not JSON after all
    }
  } else {
    for (const line of body.split('\n')) {
      if (!line.startsWith('data:')) continue;
      try {
        documents.push(JSON.parse(line.slice(5)));
      } catch {
        // [DONE] and the like
      }
    }
  }
  let input = 0;
  let output = 0;
  let total = 0;
  const count = (value: unknown) => (typeof value === 'number' && Number.isFinite(value) ? value : 0);
  const visit = (usage: unknown) => {
    if (typeof usage !== 'object' || usage === null) return;
    const u = usage as Record<string, unknown>;
    total = Math.max(total, count(u.total_tokens));
    const sent = count(u.input_tokens) + count(u.prompt_tokens) + count(u.cache_creation_input_tokens) + count(u.cache_read_input_tokens);
    input = Math.max(input, sent);
    output = Math.max(output, count(u.output_tokens) + count(u.completion_tokens));
  };
  for (const document of documents) {
    if (typeof document !== 'object' || document === null) continue;
    const d = document as Record<string, unknown>;
    visit(d.usage);
    visit((d.response as Record<string, unknown> | undefined)?.usage);
    visit((d.message as Record<string, unknown> | undefined)?.usage);
  }
  input += Math.max(0, total - input - output);
  return { input, output, total: input + output };
}

/** The headers to send upstream: the client's, minus what it may not choose, plus the worker's credential. */
export function upstreamHeaders(request: ParsedRequest, gateway: ModelGateway): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of request.headers) if (!DROPPED.has(name)) headers[name] = value;
  if (gateway.credential) headers[gateway.credential.header] = gateway.credential.header === 'authorization' ? `Bearer ${gateway.credential.value}` : gateway.credential.value;
  return headers;
}
