/**
 * The two other wire protocols the scripted model speaks, so the coding-agent CLIs people use can be
 * driven offline by the real binaries: OpenAI's Responses API (what Codex speaks) and Anthropic's
 * Messages API (what Claude Code speaks), each plain JSON or streamed as server-sent events. Pure
 * functions of the request: which issue and turn it is, and the answer for a script turn.
 */
import { createHash } from 'node:crypto';
import { ApiError, type Reply } from './protocol.ts';

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const tokens = (value: unknown): number => Math.ceil(JSON.stringify(value ?? '').length / 4);
const hashOf = (value: unknown) => createHash('sha256').update(JSON.stringify(value)).digest('hex');

/** All the text a request carries (instructions, system prompt, messages), for finding the issue. */
function textsOf(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value);
  else if (Array.isArray(value)) value.forEach((item) => textsOf(item, out));
  else if (isObject(value)) {
    for (const key of ['text', 'content', 'input', 'instructions', 'system', 'output']) if (key in value) textsOf(value[key], out);
  }
  return out;
}

const identifierPattern = /Issue identifier: (\S+)/;

export function identifierIn(...parts: unknown[]): string | null {
  for (const text of textsOf(parts)) {
    const match = identifierPattern.exec(text);
    if (match?.[1]) return match[1].replace(/[`.,;:]+$/, '');
  }
  return null;
}

const sessionPattern = /Cadenza session: (\S+)/;

/** The session a request belongs to (`Cadenza session: reviewer` in its instructions or system prompt), or null for the coding agent's. */
export function sessionIn(...parts: unknown[]): string | null {
  for (const text of textsOf(parts)) {
    const match = sessionPattern.exec(text);
    if (match?.[1]) return match[1].replace(/[`.,;:]+$/, '');
  }
  return null;
}

/** One server-sent event as the APIs send them. */
export interface SseEvent {
  event: string;
  data: Record<string, unknown>;
}

// ---------------------------------------------------------------------------------------------
// OpenAI Responses API

export interface ResponsesRequest {
  model: string;
  input: string | Array<Record<string, unknown>>;
  instructions?: unknown;
  stream?: boolean;
  [key: string]: unknown;
}

export function validateResponsesRequest(body: unknown): ResponsesRequest {
  if (!isObject(body)) throw new ApiError(400, 'The request body must be a JSON object.');
  if (typeof body.model !== 'string' || body.model === '') throw new ApiError(400, "'model' is required and must be a non-empty string.", 'invalid_request_error', 'model');
  if (typeof body.input !== 'string' && !Array.isArray(body.input)) {
    throw new ApiError(400, "'input' must be a string or an array of input items.", 'invalid_request_error', 'input');
  }
  if (body.stream !== undefined && typeof body.stream !== 'boolean') throw new ApiError(400, "'stream' must be a boolean.", 'invalid_request_error', 'stream');
  return body as ResponsesRequest;
}

const MODEL_OUTPUT = new Set(['function_call', 'reasoning', 'custom_tool_call', 'local_shell_call']);
const isModelOutput = (item: Record<string, unknown>) => MODEL_OUTPUT.has(String(item.type)) || (item.role === 'assistant' && (item.type === undefined || item.type === 'message'));

/** How many answers the model already gave: runs of its own output items in the input. */
export function responsesTurn(request: ResponsesRequest): number {
  if (typeof request.input === 'string') return 0;
  let turns = 0;
  let inOutput = false;
  for (const item of request.input) {
    const own = isObject(item) && isModelOutput(item);
    if (own && !inOutput) turns += 1;
    inOutput = own;
  }
  return turns;
}

/** The latest user text or tool output in the input (what the agent was just told). */
export function responsesLastInput(request: ResponsesRequest): string | null {
  if (typeof request.input === 'string') return request.input;
  for (let i = request.input.length - 1; i >= 0; i--) {
    const item = request.input[i]!;
    if (item.role === 'user' || item.type === 'function_call_output') return textsOf(item).join('\n') || null;
  }
  return null;
}

export function buildResponse(request: ResponsesRequest, turn: number, reply: Reply): Record<string, unknown> {
  const id = `resp_${hashOf(request).slice(0, 40)}`;
  const output: Array<Record<string, unknown>> = [];
  if (reply.content) {
    output.push({ type: 'message', id: `msg_${turn}`, role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: reply.content, annotations: [] }] });
  }
  reply.toolCalls.forEach((call, i) => {
    output.push({
      type: 'function_call', id: `fc_${turn}_${i}`, call_id: `call_${turn}_${i}`, name: call.name,
      arguments: typeof call.arguments === 'string' ? call.arguments : JSON.stringify(call.arguments), status: 'completed',
    });
  });
  const input_tokens = tokens([request.instructions, request.input]);
  const output_tokens = tokens(output);
  return {
    id, object: 'response', created_at: 0, status: 'completed', model: request.model, output,
    parallel_tool_calls: true, tool_choice: 'auto', tools: [], error: null, incomplete_details: null,
    usage: { input_tokens, input_tokens_details: { cached_tokens: 0 }, output_tokens, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: input_tokens + output_tokens },
  };
}

/** The same response as the Responses API streams it: created, each item added / delta / done, completed. */
export function responseEvents(response: Record<string, unknown>): SseEvent[] {
  const events: SseEvent[] = [];
  let sequence = 0;
  const push = (type: string, data: Record<string, unknown>) => events.push({ event: type, data: { type, sequence_number: sequence++, ...data } });
  const pending = { ...response, status: 'in_progress', output: [], usage: null };
  push('response.created', { response: pending });
  push('response.in_progress', { response: pending });
  (response.output as Array<Record<string, unknown>>).forEach((item, output_index) => {
    if (item.type === 'message') {
      const text = String((item.content as Array<{ text: string }>)[0]!.text);
      push('response.output_item.added', { output_index, item: { ...item, status: 'in_progress', content: [] } });
      push('response.content_part.added', { item_id: item.id, output_index, content_index: 0, part: { type: 'output_text', text: '', annotations: [] } });
      push('response.output_text.delta', { item_id: item.id, output_index, content_index: 0, delta: text, logprobs: [] });
      push('response.output_text.done', { item_id: item.id, output_index, content_index: 0, text, logprobs: [] });
      push('response.content_part.done', { item_id: item.id, output_index, content_index: 0, part: { type: 'output_text', text, annotations: [] } });
    } else {
      push('response.output_item.added', { output_index, item: { ...item, status: 'in_progress', arguments: '' } });
      push('response.function_call_arguments.delta', { item_id: item.id, output_index, delta: item.arguments });
      push('response.function_call_arguments.done', { item_id: item.id, output_index, name: item.name, arguments: item.arguments });
    }
    push('response.output_item.done', { output_index, item });
  });
  push('response.completed', { response });
  return events;
}

// ---------------------------------------------------------------------------------------------
// Anthropic Messages API

export interface MessagesRequest {
  model: string;
  max_tokens: number;
  messages: Array<{ role: string; content: unknown }>;
  system?: unknown;
  stream?: boolean;
  [key: string]: unknown;
}

/** Anthropic's error body: `{"type":"error","error":{"type","message"}}`. */
export function anthropicError(error: ApiError): Record<string, unknown> {
  const type = error.status === 401 ? 'authentication_error' : error.status === 404 ? 'not_found_error' : error.status >= 500 ? 'api_error' : 'invalid_request_error';
  return { type: 'error', error: { type, message: error.message } };
}

export function validateMessagesRequest(body: unknown): MessagesRequest {
  if (!isObject(body)) throw new ApiError(400, 'The request body must be a JSON object.');
  if (typeof body.model !== 'string' || body.model === '') throw new ApiError(400, 'model: Field required');
  if (typeof body.max_tokens !== 'number' || !Number.isInteger(body.max_tokens) || body.max_tokens < 1) throw new ApiError(400, 'max_tokens: Field required (an integer >= 1)');
  if (!Array.isArray(body.messages) || body.messages.length === 0) throw new ApiError(400, 'messages: at least one message is required');
  body.messages.forEach((message: unknown, i) => {
    if (!isObject(message) || (message.role !== 'user' && message.role !== 'assistant')) throw new ApiError(400, `messages.${i}.role: Input should be 'user' or 'assistant'`);
  });
  if (body.stream !== undefined && typeof body.stream !== 'boolean') throw new ApiError(400, 'stream: Input should be a valid boolean');
  return body as MessagesRequest;
}

export const messagesTurn = (request: MessagesRequest): number => request.messages.filter((message) => message.role === 'assistant').length;

export function messagesLastInput(request: MessagesRequest): string | null {
  const last = [...request.messages].reverse().find((message) => message.role === 'user');
  return last ? textsOf(last.content).join('\n') || null : null;
}

export function buildMessage(request: MessagesRequest, turn: number, reply: Reply): Record<string, unknown> {
  const content: Array<Record<string, unknown>> = [];
  if (reply.content) content.push({ type: 'text', text: reply.content });
  reply.toolCalls.forEach((call, i) => {
    const input = typeof call.arguments === 'string' ? safeJson(call.arguments) : call.arguments;
    content.push({ type: 'tool_use', id: `toolu_${turn}_${i}`, name: call.name, input });
  });
  return {
    id: `msg_${hashOf(request).slice(0, 24)}`, type: 'message', role: 'assistant', model: request.model, content,
    stop_reason: reply.toolCalls.length ? 'tool_use' : 'end_turn', stop_sequence: null,
    usage: { input_tokens: tokens([request.system, request.messages]), output_tokens: tokens(content), cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
  };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return { raw: text };
  }
}

/** The same message as Anthropic streams it: message_start, each block start / delta / stop, message_delta, message_stop. */
export function messageEvents(message: Record<string, unknown>): SseEvent[] {
  const events: SseEvent[] = [];
  const push = (type: string, data: Record<string, unknown>) => events.push({ event: type, data: { type, ...data } });
  const usage = message.usage as { input_tokens: number; output_tokens: number };
  push('message_start', { message: { ...message, content: [], stop_reason: null, usage: { ...usage, output_tokens: 1 } } });
  (message.content as Array<Record<string, unknown>>).forEach((block, index) => {
    if (block.type === 'text') {
      push('content_block_start', { index, content_block: { type: 'text', text: '' } });
      push('content_block_delta', { index, delta: { type: 'text_delta', text: block.text } });
    } else {
      push('content_block_start', { index, content_block: { ...block, input: {} } });
      push('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: JSON.stringify(block.input) } });
    }
    push('content_block_stop', { index });
  });
  push('message_delta', { delta: { stop_reason: message.stop_reason, stop_sequence: null }, usage: { output_tokens: usage.output_tokens } });
  push('message_stop', {});
  return events;
}
