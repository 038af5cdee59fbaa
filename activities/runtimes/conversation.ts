/**
 * A round's conversation read back from an agent CLI's transcript artifact (the model exchanges the
 * gateway recorded), for priming a new thread or session when the previous round's cannot be resumed:
 * as Responses API items (what codex's `thread/inject_items` takes) and as text for a first message.
 * Pure functions of the transcript: no Temporal, Docker or store here.
 */
import type { ModelExchange } from '../../lib/egress/model-gateway.ts';

/** What the CLI runtimes store as a session's transcript artifact. */
export interface CliTranscript {
  runtime: string;
  version?: string;
  exchanges: ModelExchange[];
  events?: unknown[];
}

/** One step of a conversation, in neither API's shape. */
export type Step =
  | { kind: 'user' | 'assistant'; text: string }
  | { kind: 'tool_call'; name: string; input: string }
  | { kind: 'tool_result'; output: string };

export interface RecordedConversation {
  wire: 'responses' | 'messages';
  /** The model exchange it was read from (its place in the transcript). */
  exchange: number;
  /** Responses API items, ready to inject into a codex thread (empty for the Messages API). */
  items: Array<Record<string, unknown>>;
  steps: Step[];
}

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The JSON documents of an answer: the body itself, or each `data:` line of an event stream. */
function documentsOf(body: string): Json[] {
  if (body.trimStart().startsWith('{')) {
    const document = parseJson(body);
    return isObject(document) ? [document] : [];
  }
  return body.split('\n').filter((line) => line.startsWith('data:')).map((line) => parseJson(line.slice(5))).filter(isObject);
}

/**
 * Text the CLI adds on its own (codex's `<environment_context>`, claude's `<system-reminder>`): a new
 * thread gets its own, so it is left out of what is carried over.
 */
const isContextBlock = (text: string) => /^<([A-Za-z_][\w-]*)>[\s\S]*<\/\1>$/.test(text.trim());

const textOf = (value: unknown): string => {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.map(textOf).filter(Boolean).join('\n');
  if (isObject(value)) {
    if (typeof value.text === 'string') return value.text;
    if ('content' in value) return textOf(value.content);
    if ('output' in value) return textOf(value.output);
  }
  return '';
};

// ---------------------------------------------------------------------------------------------
// OpenAI Responses API (codex)

/** Items a new thread can take as history: messages and tool calls with their outputs. */
const CARRIED_ITEMS = new Set(['message', 'function_call', 'function_call_output', 'custom_tool_call', 'custom_tool_call_output']);

/** The output items of a Responses answer: the body, or the stream's `response.completed`. */
function responseOutput(body: string): Json[] | null {
  for (const document of documentsOf(body)) {
    if (Array.isArray(document.output)) return document.output.filter(isObject);
    const response = document.response;
    if (document.type === 'response.completed' && isObject(response) && Array.isArray(response.output)) return response.output.filter(isObject);
  }
  return null;
}

/** An item as a new thread takes it: no server-side ids or status, only what the model saw. */
function carriedItem(item: Json): Json | null {
  if (!CARRIED_ITEMS.has(String(item.type))) return null;
  if (item.type === 'message') {
    if (item.role !== 'user' && item.role !== 'assistant') return null;
    const texts = Array.isArray(item.content) ? item.content.map(textOf) : [textOf(item.content)];
    if (item.role === 'user' && texts.every((text) => !text.trim() || isContextBlock(text))) return null;
  }
  const { id: _id, status: _status, ...rest } = item;
  return rest;
}

function responsesSteps(items: Json[]): Step[] {
  return items.flatMap((item): Step[] => {
    switch (item.type) {
      case 'message': {
        const parts = Array.isArray(item.content) ? item.content.map(textOf) : [textOf(item.content)];
        const text = parts.filter((part) => part.trim() && !isContextBlock(part)).join('\n');
        return text ? [{ kind: item.role === 'assistant' ? 'assistant' : 'user', text }] : [];
      }
      case 'function_call':
        return [{ kind: 'tool_call', name: String(item.name ?? 'tool'), input: String(item.arguments ?? '') }];
      case 'custom_tool_call':
        return [{ kind: 'tool_call', name: String(item.name ?? 'tool'), input: String(item.input ?? '') }];
      default:
        return [{ kind: 'tool_result', output: textOf(item.output) }];
    }
  });
}

function responsesConversation(request: Json, response: string): Omit<RecordedConversation, 'exchange'> | null {
  const output = responseOutput(response);
  if (!output) return null;
  const input = typeof request.input === 'string'
    ? [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: request.input }] }]
    : Array.isArray(request.input) ? request.input.filter(isObject) : [];
  const items = [...input, ...output].map(carriedItem).filter((item): item is Json => item !== null);
  return { wire: 'responses', items, steps: responsesSteps(items) };
}

// ---------------------------------------------------------------------------------------------
// Anthropic Messages API (claude)

/** The content blocks of a Messages answer: the body, or the stream's blocks put together. */
function messageContent(body: string): Json[] | null {
  const documents = documentsOf(body);
  if (documents.length === 1 && Array.isArray(documents[0]!.content)) return documents[0]!.content.filter(isObject);
  const blocks: Json[] = [];
  const partialJson = new Map<number, string>();
  let stopped = false;
  for (const document of documents) {
    const index = Number(document.index);
    if (document.type === 'content_block_start' && isObject(document.content_block)) blocks[index] = { ...document.content_block };
    else if (document.type === 'content_block_delta' && isObject(document.delta) && blocks[index]) {
      const delta = document.delta;
      if (delta.type === 'text_delta') blocks[index]!.text = `${String(blocks[index]!.text ?? '')}${String(delta.text ?? '')}`;
      else if (delta.type === 'input_json_delta') partialJson.set(index, `${partialJson.get(index) ?? ''}${String(delta.partial_json ?? '')}`);
    } else if (document.type === 'message_stop') stopped = true;
  }
  if (!stopped) return null;
  for (const [index, json] of partialJson) if (blocks[index]) blocks[index]!.input = parseJson(json) ?? json;
  return blocks.filter(isObject);
}

function messagesSteps(messages: Json[]): Step[] {
  return messages.flatMap((message): Step[] => {
    const role = message.role === 'assistant' ? 'assistant' : 'user';
    const blocks = typeof message.content === 'string' ? [{ type: 'text', text: message.content }] : Array.isArray(message.content) ? message.content.filter(isObject) : [];
    return blocks.flatMap((block): Step[] => {
      if (block.type === 'text') {
        const text = String(block.text ?? '');
        return text.trim() && !isContextBlock(text) ? [{ kind: role, text }] : [];
      }
      if (block.type === 'tool_use') return [{ kind: 'tool_call', name: String(block.name ?? 'tool'), input: JSON.stringify(block.input ?? {}) }];
      if (block.type === 'tool_result') return [{ kind: 'tool_result', output: textOf(block.content) }];
      return [];
    });
  });
}

function messagesConversation(request: Json, response: string): Omit<RecordedConversation, 'exchange'> | null {
  const content = messageContent(response);
  if (!content || !Array.isArray(request.messages)) return null;
  const messages = [...request.messages.filter(isObject), { role: 'assistant', content }];
  return { wire: 'messages', items: [], steps: messagesSteps(messages) };
}

// ---------------------------------------------------------------------------------------------

/**
 * The conversation as the round's last answered model request carried it, plus that answer. Requests
 * of the conversation carry the agent's tools; one without (a title, a count) is a side request and
 * only used when there is nothing else. Null when no answered request can be read.
 */
export function conversationOf(transcript: CliTranscript): RecordedConversation | null {
  const exchanges = Array.isArray(transcript?.exchanges) ? transcript.exchanges : [];
  let fallback: RecordedConversation | null = null;
  for (let index = exchanges.length - 1; index >= 0; index--) {
    const exchange = exchanges[index]!;
    if (exchange.status !== 200) continue;
    const path = exchange.path.split('?')[0]!;
    const request = parseJson(exchange.request);
    if (!isObject(request)) continue;
    const read = path.endsWith('/responses') ? responsesConversation(request, exchange.response)
      : path.endsWith('/messages') ? messagesConversation(request, exchange.response) : null;
    if (!read || !read.steps.length) continue;
    const conversation = { ...read, exchange: index };
    if (Array.isArray(request.tools) && request.tools.length) return conversation;
    fallback ??= conversation;
  }
  return fallback;
}

const clip = (text: string, max: number) => (text.length <= max ? text : `${text.slice(0, max / 2)}\n[... ${text.length - max} characters left out ...]\n${text.slice(-max / 2)}`);

/**
 * The conversation as text for a new session's first message: who said what, tool calls and their
 * results (each result clipped to `maxResultChars`). Past `maxChars`, the steps at the beginning are
 * left out (the prompt is sent again with the new round anyway).
 */
export function renderConversation(steps: Step[], options: { maxChars?: number; maxResultChars?: number } = {}): string {
  const { maxChars = 60_000, maxResultChars = 2_000 } = options;
  const parts = steps.map((step) => {
    switch (step.kind) {
      case 'user': return `[user]\n${step.text}`;
      case 'assistant': return `[assistant]\n${step.text}`;
      case 'tool_call': return `[assistant called ${step.name}]\n${step.input}`;
      case 'tool_result': return `[result]\n${clip(step.output, maxResultChars)}`;
    }
  });
  // Whole steps from the end, as many as fit.
  let kept = parts.length;
  for (let size = 0; kept > 0 && size + parts[kept - 1]!.length + 2 <= maxChars; kept--) size += parts[kept - 1]!.length + 2;
  if (kept === parts.length && parts.length) return `[... the beginning of the conversation is left out ...]\n\n${parts.at(-1)!.slice(-maxChars)}`;
  return [...(kept > 0 ? ['[... the beginning of the conversation is left out ...]'] : []), ...parts.slice(kept)].join('\n\n');
}
