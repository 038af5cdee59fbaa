/**
 * The scripted model's other wire protocols, driven by the real client libraries: OpenAI's Responses
 * API (plain and streamed, as Codex uses it) through `openai`, and Anthropic's Messages API (plain and
 * streamed, as Claude Code uses it) through `@anthropic-ai/sdk`. The turn answered follows the
 * transcript the client sends back, as it does for chat completions.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startScriptedModel, type ScriptedModel } from '../../lib/scripted-model/server.ts';

let dir: string;
let model: ScriptedModel;
const instructions = 'You are a coding agent.\nIssue identifier: WIRE-1\nWork carefully.';

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'scripted-wire-'));
  await writeFile(path.join(dir, 'WIRE-1.json'), JSON.stringify({
    turns: [
      { say: 'Looking first.', tool_calls: [{ name: 'shell', arguments: { command: ['bash', '-lc', 'ls'] } }] },
      { say: 'All done.' },
    ],
  }));
  model = await startScriptedModel({ scriptsDir: dir, log: () => {} });
});
afterAll(async () => {
  await model?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('OpenAI Responses API', () => {
  const client = () => new OpenAI({ apiKey: 'k', baseURL: model.baseUrl, maxRetries: 0 });

  it('answers a turn with a message and a function call, and the next turn from the transcript sent back', async () => {
    const first = await client().responses.create({ model: 'gpt-5', instructions, input: [{ role: 'user', content: 'Fix the bug.' }] });
    expect(first.output_text).toBe('Looking first.');
    const call = first.output.find((item) => item.type === 'function_call');
    expect(call).toMatchObject({ type: 'function_call', name: 'shell', call_id: 'call_0_0' });
    expect(JSON.parse((call as { arguments: string }).arguments)).toEqual({ command: ['bash', '-lc', 'ls'] });
    expect(first.usage!.total_tokens).toBe(first.usage!.input_tokens + first.usage!.output_tokens);

    const second = await client().responses.create({
      model: 'gpt-5', instructions,
      input: [{ role: 'user', content: 'Fix the bug.' }, ...first.output, { type: 'function_call_output', call_id: 'call_0_0', output: 'README.md\nsrc' }] as never,
    });
    expect(second.output_text).toBe('All done.');
    expect(model.requests.at(-1)).toMatchObject({ identifier: 'WIRE-1', turn: 1, wire: 'responses', lastUserMessage: 'README.md\nsrc' });
  });

  it('streams the same answer as server-sent events the client assembles', async () => {
    const stream = client().responses.stream({ model: 'gpt-5', instructions, input: 'Fix the bug.' });
    const types: string[] = [];
    let text = '';
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === 'response.output_text.delta') text += event.delta;
    }
    const final = await stream.finalResponse();
    expect(text).toBe('Looking first.');
    expect(types[0]).toBe('response.created');
    expect(types.at(-1)).toBe('response.completed');
    expect(types).toContain('response.function_call_arguments.done');
    expect(final.output.map((item) => item.type)).toEqual(['message', 'function_call']);
  });
});

describe('Anthropic Messages API', () => {
  const client = () => new Anthropic({ apiKey: 'k', baseURL: model.baseUrl.replace(/\/v1$/, ''), maxRetries: 0 });

  it('answers with text and a tool_use block, then the next turn from the transcript', async () => {
    const first = await client().messages.create({ model: 'claude-sonnet-4-5', max_tokens: 1024, system: instructions, messages: [{ role: 'user', content: 'Fix the bug.' }] });
    expect(first.stop_reason).toBe('tool_use');
    expect(first.content[0]).toEqual({ type: 'text', text: 'Looking first.' });
    expect(first.content[1]).toMatchObject({ type: 'tool_use', name: 'shell', input: { command: ['bash', '-lc', 'ls'] } });
    const toolUse = first.content[1] as { id: string };
    const second = await client().messages.create({
      model: 'claude-sonnet-4-5', max_tokens: 1024, system: instructions,
      messages: [{ role: 'user', content: 'Fix the bug.' }, { role: 'assistant', content: first.content as never }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: toolUse.id, content: 'README.md' }] }],
    });
    expect(second.stop_reason).toBe('end_turn');
    expect(second.content).toEqual([{ type: 'text', text: 'All done.' }]);
    expect(model.requests.at(-1)).toMatchObject({ identifier: 'WIRE-1', turn: 1, wire: 'messages' });
  });

  it('streams the same message, which the SDK assembles; errors come in Anthropic\'s shape', async () => {
    const stream = client().messages.stream({ model: 'claude-sonnet-4-5', max_tokens: 1024, system: instructions, messages: [{ role: 'user', content: 'Fix the bug.' }] });
    const final = await stream.finalMessage();
    expect(final.content[0]).toEqual({ type: 'text', text: 'Looking first.' });
    expect(final.content[1]).toMatchObject({ type: 'tool_use', name: 'shell', input: { command: ['bash', '-lc', 'ls'] } });
    expect(final.usage.output_tokens).toBeGreaterThan(0);

    const refused = await client().messages.create({ model: 'claude-sonnet-4-5', max_tokens: 0, messages: [{ role: 'user', content: 'x' }] }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(Anthropic.BadRequestError);
    expect((refused as InstanceType<typeof Anthropic.BadRequestError>).error).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
  });
});
