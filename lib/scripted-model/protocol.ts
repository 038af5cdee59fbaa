/**
 * The OpenAI Chat Completions wire shapes the scripted model speaks, as pure functions of the request:
 * validation, OpenAI-shaped errors, and building a `chat.completion` from a script turn.
 */
import { createHash } from 'node:crypto';
import type { ChatCompletion, ChatCompletionMessage } from 'openai/resources/chat/completions';
import type { ScriptToolCall } from './script.ts';

export const MODEL_ID = 'cadenza-scripted';

/** An error answered with OpenAI's body `{"error":{message,type,param,code}}`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string = 'invalid_request_error',
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export interface ChatMessage {
  role: string;
  content?: unknown;
  [key: string]: unknown;
}

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  stream?: unknown;
  [key: string]: unknown;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Minimal validation: a 400 naming the offending field. */
export function validateRequest(body: unknown): ChatRequest {
  if (!isObject(body)) throw new ApiError(400, 'The request body must be a JSON object.');
  if (typeof body.model !== 'string' || body.model === '') {
    throw new ApiError(400, "'model' is required and must be a non-empty string.", 'invalid_request_error', 'model');
  }
  if (!Array.isArray(body.messages) || body.messages.length === 0) {
    throw new ApiError(400, "'messages' must be a non-empty array.", 'invalid_request_error', 'messages');
  }
  body.messages.forEach((message: unknown, i) => {
    if (!isObject(message) || typeof message.role !== 'string') {
      throw new ApiError(400, `'messages[${i}]' must be an object with a string 'role'.`, 'invalid_request_error', `messages[${i}].role`);
    }
  });
  if (body.stream === true) {
    throw new ApiError(400, "'stream: true' is not supported by the scripted model; send non-streaming requests.", 'invalid_request_error', 'stream');
  }
  return body as ChatRequest;
}

/** Text of a message's content: a string, or the text parts of a content-part array. */
export function messageText(content: unknown): string | null {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    const texts = content.flatMap((part: unknown) => (isObject(part) && typeof part.text === 'string' ? [part.text] : []));
    return texts.length > 0 ? texts.join('\n') : null;
  }
  return null;
}

const identifierPattern = /Issue identifier: (\S+)/;

/** The issue identifier from the first message carrying an `Issue identifier: X` line. */
export function findIdentifier(messages: ChatMessage[]): string | null {
  for (const message of messages) {
    const match = identifierPattern.exec(messageText(message.content) ?? '');
    if (match?.[1]) return match[1];
  }
  return null;
}

const sessionPattern = /Cadenza session: (\S+)/;

/**
 * The session a request belongs to (`Cadenza session: reviewer` in its system message), or null for the
 * coding agent's. Only system messages count, so a file the agent reads cannot change whose turn it is.
 */
export function findSession(messages: ChatMessage[]): string | null {
  for (const message of messages.filter((m) => m.role === 'system' || m.role === 'developer')) {
    const match = sessionPattern.exec(messageText(message.content) ?? '');
    if (match?.[1]) return match[1];
  }
  return null;
}

/** The script turn to answer: how many assistant messages the transcript already holds. */
export function turnIndex(messages: ChatMessage[]): number {
  return messages.filter((message) => message.role === 'assistant').length;
}

export function lastUserMessage(messages: ChatMessage[]): string | null {
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i];
    if (message?.role === 'user') return messageText(message.content);
  }
  return null;
}

/** What the model says on one turn. */
export interface Reply {
  content: string | null;
  toolCalls: ScriptToolCall[];
}

const tokens = (value: unknown): number => Math.ceil(JSON.stringify(value).length / 4);

/**
 * A `chat.completion` for `reply`, determined by the request alone: the id is a hash of the request,
 * `created` is fixed at 0, and usage is ceil(chars / 4) of the request messages and of the reply message.
 */
export function buildCompletion(request: ChatRequest, turn: number, reply: Reply): ChatCompletion {
  const message: ChatCompletionMessage = { role: 'assistant', content: reply.content, refusal: null };
  if (reply.toolCalls.length > 0) {
    message.tool_calls = reply.toolCalls.map((call, i) => ({
      id: `call_${turn}_${i}`,
      type: 'function' as const,
      function: {
        name: call.name,
        arguments: typeof call.arguments === 'string' ? call.arguments : JSON.stringify(call.arguments),
      },
    }));
  }
  const prompt_tokens = tokens(request.messages);
  const completion_tokens = tokens(message);
  const hash = createHash('sha256').update(JSON.stringify(request)).digest('hex');
  return {
    id: `chatcmpl-${hash.slice(0, 29)}`,
    object: 'chat.completion',
    created: 0,
    model: request.model,
    choices: [
      {
        index: 0,
        message,
        logprobs: null,
        finish_reason: reply.toolCalls.length > 0 ? 'tool_calls' : 'stop',
      },
    ],
    usage: { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens },
  };
}
