/**
 * Tokens the model gateway counts for the agent CLIs, split into input and output as each API
 * reports them: the Responses API's usage (its stream's `response.completed`), Anthropic's Messages
 * usage (input with `message_start`, the output count with `message_delta`, prompt-cache tokens as
 * input), Chat Completions' prompt and completion tokens. The streams are the scripted model's.
 */
import { describe, expect, it } from 'vitest';
import { tokensReported } from '../../lib/egress/model-gateway.ts';
import { buildMessage, buildResponse, messageEvents, responseEvents, type SseEvent } from '../../lib/scripted-model/wire.ts';

const sse = (events: SseEvent[]) => events.map(({ event, data }) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`).join('');
const reply = { content: 'Done: added shout() with a test.', toolCalls: [{ name: 'exec_command', arguments: { cmd: 'npm test' } }] };

describe('tokens the model endpoint reports, split', () => {
  it('Responses API: input_tokens and output_tokens, plain and from the stream\'s response.completed', () => {
    const response = buildResponse({ model: 'gpt-5.5', input: [{ role: 'user', content: 'Issue identifier: T-1\nAdd shout.' }] }, 0, reply);
    const usage = response.usage as { input_tokens: number; output_tokens: number; total_tokens: number };
    expect(usage.input_tokens).toBeGreaterThan(0);
    expect(usage.output_tokens).toBeGreaterThan(0);
    const expected = { input: usage.input_tokens, output: usage.output_tokens, total: usage.total_tokens };
    expect(tokensReported(JSON.stringify(response))).toEqual(expected);
    // Streamed: response.created and in_progress carry usage null; response.completed the counts.
    expect(tokensReported(sse(responseEvents(response)))).toEqual(expected);
  });

  it('Messages API: input from message_start, the output count from message_delta, not message_start\'s placeholder', () => {
    const message = buildMessage({ model: 'claude-sonnet-4-5', max_tokens: 1024, messages: [{ role: 'user', content: 'Issue identifier: T-1\nAdd shout.' }] }, 0, reply);
    const usage = message.usage as { input_tokens: number; output_tokens: number };
    expect(usage.output_tokens).toBeGreaterThan(1);
    const expected = { input: usage.input_tokens, output: usage.output_tokens, total: usage.input_tokens + usage.output_tokens };
    expect(tokensReported(JSON.stringify(message))).toEqual(expected);
    const stream = sse(messageEvents(message));
    expect(stream).toMatch(/"message_start".*"output_tokens":1[,}]/);
    expect(tokensReported(stream)).toEqual(expected);
  });

  it('Messages API: prompt-cache reads and writes count as input (Anthropic reports them apart from input_tokens)', () => {
    const stream = sse([
      { event: 'message_start', data: { type: 'message_start', message: { usage: { input_tokens: 12, cache_creation_input_tokens: 300, cache_read_input_tokens: 4000, output_tokens: 1 } } } },
      { event: 'message_delta', data: { type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 85 } } },
      { event: 'message_stop', data: { type: 'message_stop' } },
    ]);
    expect(tokensReported(stream)).toEqual({ input: 4312, output: 85, total: 4397 });
    // Newer API versions repeat the cumulative input in message_delta: not counted twice.
    const repeated = stream.replace('"usage":{"output_tokens":85}', '"usage":{"input_tokens":12,"cache_creation_input_tokens":300,"cache_read_input_tokens":4000,"output_tokens":85}');
    expect(tokensReported(repeated)).toEqual({ input: 4312, output: 85, total: 4397 });
  });

  it('Chat Completions: prompt_tokens and completion_tokens; a total with no split counts as input; nothing reported is zero', () => {
    expect(tokensReported(JSON.stringify({ usage: { prompt_tokens: 70, completion_tokens: 30, total_tokens: 100 } }))).toEqual({ input: 70, output: 30, total: 100 });
    expect(tokensReported(JSON.stringify({ usage: { total_tokens: 42 } }))).toEqual({ input: 42, output: 0, total: 42 });
    expect(tokensReported('data: [DONE]\n\n')).toEqual({ input: 0, output: 0, total: 0 });
    expect(tokensReported('not json')).toEqual({ input: 0, output: 0, total: 0 });
  });
});
