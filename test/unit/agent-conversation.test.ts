/**
 * A round's conversation read back from an agent CLI's transcript artifact, to prime a new thread or
 * session when the previous round's cannot be resumed: the Responses API's items (codex) without what
 * codex adds on its own, Anthropic's messages (claude) put together from the stream, side requests
 * and failed exchanges passed over, and the text a new session's first message carries.
 */
import { describe, expect, it } from 'vitest';
import { conversationOf, renderConversation, type CliTranscript } from '../../activities/runtimes/conversation.ts';
import type { ModelExchange } from '../../lib/egress/model-gateway.ts';
import { buildMessage, buildResponse, messageEvents, responseEvents, type SseEvent } from '../../lib/scripted-model/wire.ts';

const sse = (events: SseEvent[]) => events.map(({ event, data }) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`).join('');
const exchange = (path: string, request: unknown, response: string, status = 200): ModelExchange => ({
  method: 'POST', path, status, request: JSON.stringify(request), response, tokens: 10, inputTokens: 8, outputTokens: 2, durationMs: 5,
});
const transcript = (runtime: string, exchanges: ModelExchange[]): CliTranscript => ({ runtime, exchanges, events: [] });

/** A codex request of turn 2: its own context, the prompt, a tool call and its output. */
const codexRequest = {
  model: 'gpt-5.5',
  instructions: 'You are Codex.',
  tools: [{ type: 'function', name: 'exec_command' }],
  input: [
    { type: 'message', role: 'developer', content: [{ type: 'input_text', text: '<permissions instructions>sandbox off</permissions instructions>' }] },
    { type: 'message', role: 'user', content: [{ type: 'input_text', text: '<environment_context>\n  <cwd>/workspace/repo</cwd>\n</environment_context>' }] },
    { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Issue identifier: T-1\nAdd shout.' }] },
    { type: 'reasoning', id: 'rs_1', summary: [], encrypted_content: 'opaque' },
    { type: 'function_call', id: 'fc_0_0', call_id: 'call_0_0', name: 'exec_command', arguments: '{"cmd":"npm test"}', status: 'completed' },
    { type: 'function_call_output', call_id: 'call_0_0', output: '# pass 2\n# fail 0' },
  ],
};

describe('a round\'s conversation from its transcript', () => {
  it('codex (Responses API): the last request\'s items and its streamed answer, without codex\'s own context, reasoning or server ids', () => {
    const answer = sse(responseEvents(buildResponse(codexRequest, 1, { content: 'Added shout(); npm test passes.', toolCalls: [] })));
    const sideRequest = { model: 'gpt-5.5', input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Title this thread' }] }] };
    const sideAnswer = sse(responseEvents(buildResponse(sideRequest, 0, { content: 'Shout', toolCalls: [] })));
    const conversation = conversationOf(transcript('codex', [
      exchange('/v1/responses', { ...codexRequest, input: codexRequest.input.slice(0, 3) }, 'earlier'),
      exchange('/v1/responses', codexRequest, answer),
      // A title request (no tools) and a refused request come later: passed over.
      exchange('/v1/responses', sideRequest, sideAnswer),
      exchange('/v1/responses', codexRequest, '{"error":{"message":"budget"}}', 429),
    ]))!;
    expect(conversation.wire).toBe('responses');
    expect(conversation.exchange).toBe(1);
    expect(conversation.items).toEqual([
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Issue identifier: T-1\nAdd shout.' }] },
      { type: 'function_call', call_id: 'call_0_0', name: 'exec_command', arguments: '{"cmd":"npm test"}' },
      { type: 'function_call_output', call_id: 'call_0_0', output: '# pass 2\n# fail 0' },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Added shout(); npm test passes.', annotations: [] }] },
    ]);
    expect(renderConversation(conversation.steps)).toBe([
      '[user]\nIssue identifier: T-1\nAdd shout.',
      '[assistant called exec_command]\n{"cmd":"npm test"}',
      '[result]\n# pass 2\n# fail 0',
      '[assistant]\nAdded shout(); npm test passes.',
    ].join('\n\n'));
  });

  it('claude (Messages API): the messages and the answer put together from its stream, without claude\'s system reminders', () => {
    const request = {
      model: 'claude-sonnet-4-5', max_tokens: 1024, system: [{ type: 'text', text: 'You are Claude Code.' }], tools: [{ name: 'Bash' }],
      messages: [
        { role: 'user', content: [{ type: 'text', text: '<system-reminder>\nToday is Thursday.\n</system-reminder>' }, { type: 'text', text: 'Issue identifier: T-2\nAdd shout.' }] },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_0', name: 'Bash', input: { command: 'npm test' } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_0', content: '# fail 0' }] },
      ],
    };
    const answer = sse(messageEvents(buildMessage(request, 1, { content: 'All done.', toolCalls: [{ name: 'Bash', arguments: { command: 'git status' } }] })));
    const conversation = conversationOf(transcript('claude-code', [
      exchange('/v1/messages?beta=true', request, answer),
      exchange('/v1/messages/count_tokens', request, '{"input_tokens":12}'),
    ]))!;
    expect(conversation.wire).toBe('messages');
    expect(conversation.items).toEqual([]);
    expect(conversation.steps).toEqual([
      { kind: 'user', text: 'Issue identifier: T-2\nAdd shout.' },
      { kind: 'tool_call', name: 'Bash', input: '{"command":"npm test"}' },
      { kind: 'tool_result', output: '# fail 0' },
      { kind: 'assistant', text: 'All done.' },
      { kind: 'tool_call', name: 'Bash', input: '{"command":"git status"}' },
    ]);
    // A plain JSON answer reads the same.
    const plain = conversationOf(transcript('claude-code', [exchange('/v1/messages', request, JSON.stringify(buildMessage(request, 1, { content: 'All done.', toolCalls: [] })))]))!;
    expect(plain.steps.at(-1)).toEqual({ kind: 'assistant', text: 'All done.' });
  });

  it('nothing to read: no exchanges, only failed ones, or an answer cut off mid-stream', () => {
    expect(conversationOf(transcript('codex', []))).toBeNull();
    expect(conversationOf({ runtime: 'codex' } as CliTranscript)).toBeNull();
    expect(conversationOf(transcript('codex', [exchange('/v1/responses', codexRequest, 'upstream error', 502)]))).toBeNull();
    const cut = sse(responseEvents(buildResponse(codexRequest, 1, { content: 'Half', toolCalls: [] })).slice(0, 3));
    expect(conversationOf(transcript('codex', [exchange('/v1/responses', codexRequest, cut)]))).toBeNull();
  });

  it('renders long results clipped and a long conversation from its end', () => {
    const steps = [
      { kind: 'user' as const, text: 'Issue identifier: T-3\nstart' },
      { kind: 'tool_result' as const, output: `${'a'.repeat(3_000)}${'z'.repeat(3_000)}` },
      { kind: 'assistant' as const, text: 'the end' },
    ];
    const clipped = renderConversation(steps, { maxResultChars: 100 });
    expect(clipped).toContain(`[result]\n${'a'.repeat(50)}\n[... 5900 characters left out ...]\n${'z'.repeat(50)}`);
    const tail = renderConversation(steps, { maxChars: 200, maxResultChars: 100 });
    expect(tail.startsWith('[... the beginning of the conversation is left out ...]')).toBe(true);
    expect(tail.endsWith('[assistant]\nthe end')).toBe(true);
    expect(tail).not.toContain('start');
  });
});
