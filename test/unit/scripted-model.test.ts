import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import OpenAI from 'openai';
import type { ChatCompletionMessageParam } from 'openai/resources/chat/completions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startScriptedModel, type ScriptedModel } from '../../lib/scripted-model/server.ts';

const system = (identifier: string): ChatCompletionMessageParam => ({
  role: 'system',
  content: `You are Cadenza's coding agent.\nIssue identifier: ${identifier}\nWork carefully.`,
});

let dir: string;
let model: ScriptedModel;
let client: OpenAI;
const logLines: string[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'scripted-model-'));
  await writeFile(
    path.join(dir, 'ENG-1.json'),
    JSON.stringify({
      turns: [
        { say: 'Reading the code.', tool_calls: [{ name: 'read_file', arguments: { path: 'src/a.ts' } }] },
        {
          tool_calls: [
            { name: 'write_file', arguments: { path: 'src/a.ts', content: 'export const a = 1;\n' } },
            { name: 'finish', arguments: { summary: 'done' } },
          ],
        },
      ],
    }),
  );
  await writeFile(path.join(dir, 'ENG-2.yaml'), 'turns:\n  - say: thinking\n    delay_ms: 300\n  - say: plain text only\n');
  await writeFile(path.join(dir, 'ENG-3.json'), '{ "turns": [ { "tool_calls": [ { "arguments": {} } ] } ] }');
  model = await startScriptedModel({
    scriptsDir: dir,
    requestLogFile: path.join(dir, 'log', 'requests.jsonl'),
    log: (line) => logLines.push(line),
  });
  client = new OpenAI({ apiKey: 'scripted', baseURL: model.baseUrl, maxRetries: 0 });
});

afterAll(async () => {
  await model?.close();
  await rm(dir, { recursive: true, force: true });
});

async function ask(messages: ChatCompletionMessageParam[]) {
  return client.chat.completions.create({ model: 'gpt-test', messages });
}

describe('scripted model', () => {
  it('says at startup that it is the scripted model', () => {
    expect(model.baseUrl).toBe(`http://127.0.0.1:${model.port}/v1`);
    expect(logLines[0]).toBe(`scripted model (no OPENAI_API_KEY): replaying scripts from ${dir} at ${model.baseUrl}`);
  });

  it('replays a two-turn script, the turn following the assistant messages in the transcript', async () => {
    const first = await ask([system('ENG-1'), { role: 'user', content: 'Fix it' }]);
    expect(first.object).toBe('chat.completion');
    expect(first.model).toBe('gpt-test');
    const choice = first.choices[0]!;
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.content).toBe('Reading the code.');
    const call = choice.message.tool_calls![0]!;
    expect(call.id).toBe('call_0_0');
    expect(call.type).toBe('function');
    if (call.type !== 'function') throw new Error('expected a function call');
    expect(call.function.name).toBe('read_file');
    expect(JSON.parse(call.function.arguments)).toEqual({ path: 'src/a.ts' });

    const second = await ask([
      system('ENG-1'),
      { role: 'user', content: 'Fix it' },
      choice.message,
      { role: 'tool', tool_call_id: call.id, content: 'export const a = 0;\n' },
    ]);
    const calls = second.choices[0]!.message.tool_calls!.map((c) => (c.type === 'function' ? c : null)!);
    expect(second.choices[0]!.message.content).toBeNull();
    expect(calls.map((c) => c.id)).toEqual(['call_1_0', 'call_1_1']);
    expect(calls.map((c) => c.function.name)).toEqual(['write_file', 'finish']);
    expect(JSON.parse(calls[0]!.function.arguments)).toEqual({ path: 'src/a.ts', content: 'export const a = 1;\n' });
    expect(JSON.parse(calls[1]!.function.arguments)).toEqual({ summary: 'done' });
  });

  it('answers the same request identically (retries and resumed sessions)', async () => {
    const messages: ChatCompletionMessageParam[] = [system('ENG-1'), { role: 'user', content: 'same' }];
    const a = await ask(messages);
    const b = await ask(messages);
    expect(b).toEqual(a);
    expect(a.id).toMatch(/^chatcmpl-/);
    const other = await ask([system('ENG-1'), { role: 'user', content: 'different' }]);
    expect(other.id).not.toBe(a.id);
  });

  it('reports deterministic usage: ceil(chars / 4) of the request messages and the reply message', async () => {
    const messages: ChatCompletionMessageParam[] = [system('ENG-1'), { role: 'user', content: 'usage' }];
    const answer = await ask(messages);
    const usage = answer.usage!;
    expect(usage.prompt_tokens).toBe(Math.ceil(JSON.stringify(messages).length / 4));
    expect(usage.completion_tokens).toBe(Math.ceil(JSON.stringify(answer.choices[0]!.message).length / 4));
    expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens);
    expect((await ask(messages)).usage).toEqual(usage);
  });

  it('finishes with "script exhausted" past the last turn', async () => {
    const answer = await ask([
      system('ENG-1'),
      { role: 'assistant', content: 'one' },
      { role: 'assistant', content: 'two' },
      { role: 'user', content: 'more?' },
    ]);
    const call = answer.choices[0]!.message.tool_calls![0]!;
    if (call.type !== 'function') throw new Error('expected a function call');
    expect(call.id).toBe('call_2_0');
    expect(call.function.name).toBe('finish');
    expect(JSON.parse(call.function.arguments)).toEqual({ summary: 'script exhausted' });
    expect(answer.choices[0]!.finish_reason).toBe('tool_calls');
  });

  it('finishes with "no script for <id>" when the issue has no script or no identifier', async () => {
    const missing = await ask([system('NOPE-9'), { role: 'user', content: 'go' }]);
    expect(missing.choices[0]!.message.content).toContain('no script for NOPE-9');
    const call = missing.choices[0]!.message.tool_calls![0]!;
    if (call.type !== 'function') throw new Error('expected a function call');
    expect(call.function.name).toBe('finish');
    expect(JSON.parse(call.function.arguments)).toEqual({ summary: 'no script for NOPE-9' });

    const traversal = await ask([system('../ENG-1'), { role: 'user', content: 'go' }]);
    const traversalCall = traversal.choices[0]!.message.tool_calls![0]!;
    if (traversalCall.type !== 'function') throw new Error('expected a function call');
    expect(JSON.parse(traversalCall.function.arguments)).toEqual({ summary: 'no script for ../ENG-1' });

    const anonymous = await ask([{ role: 'user', content: 'hello' }]);
    const anonymousCall = anonymous.choices[0]!.message.tool_calls![0]!;
    if (anonymousCall.type !== 'function') throw new Error('expected a function call');
    expect(anonymousCall.function.name).toBe('finish');
  });

  it('reads YAML scripts, honours delay_ms and answers text-only turns with finish_reason stop', async () => {
    const started = performance.now();
    const first = await ask([system('ENG-2'), { role: 'user', content: 'go' }]);
    expect(performance.now() - started).toBeGreaterThanOrEqual(280);
    expect(first.choices[0]!.message.content).toBe('thinking');
    expect(first.choices[0]!.message.tool_calls).toBeUndefined();
    expect(first.choices[0]!.finish_reason).toBe('stop');

    const quickStart = performance.now();
    const second = await ask([system('ENG-2'), first.choices[0]!.message, { role: 'user', content: 'and?' }]);
    expect(performance.now() - quickStart).toBeLessThan(280);
    expect(second.choices[0]!.message.content).toBe('plain text only');
  });

  it('rejects stream: true and malformed bodies with BadRequestError', async () => {
    const streaming = client.chat.completions.create({ model: 'gpt-test', messages: [system('ENG-1')], stream: true });
    await expect(streaming).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    await expect(streaming).rejects.toMatchObject({ status: 400, param: 'stream', type: 'invalid_request_error' });

    const empty = client.chat.completions.create({ model: 'gpt-test', messages: [] });
    await expect(empty).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    await expect(empty).rejects.toMatchObject({ param: 'messages' });

    const noModel = client.chat.completions.create({ messages: [system('ENG-1')] } as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming);
    await expect(noModel).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    await expect(noModel).rejects.toThrow(/model/);
  });

  it('requires a bearer token (401) and answers unknown paths with 404', async () => {
    const response = await fetch(`${model.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(response.status).toBe(401);
    const body = (await response.json()) as { error: Record<string, unknown> };
    expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);

    const keyless = new OpenAI({ apiKey: 'unused', baseURL: model.baseUrl, maxRetries: 0, fetch: (url, init) => {
      const headers = new Headers(init?.headers);
      headers.delete('authorization');
      return fetch(url, { ...init, headers });
    } });
    await expect(keyless.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);

    await expect(client.get('/nowhere')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('lists the cadenza-scripted model', async () => {
    const ids: string[] = [];
    for await (const m of client.models.list()) ids.push(m.id);
    expect(ids).toEqual(['cadenza-scripted']);
  });

  it('answers a malformed script with a 500 naming the file', async () => {
    const answer = ask([system('ENG-3'), { role: 'user', content: 'go' }]);
    await expect(answer).rejects.toBeInstanceOf(OpenAI.InternalServerError);
    await expect(answer).rejects.toThrow(/ENG-3\.json.*turns\[0\]\.tool_calls\[0\]\.name/);
  });

  it('logs each request in memory and as JSON lines in the request log file', async () => {
    const before = model.requests.length;
    await ask([system('ENG-1'), { role: 'assistant', content: 'x' }, { role: 'user', content: [{ type: 'text', text: 'logged' }] }]);
    const entry = model.requests[before]!;
    expect(entry).toMatchObject({ identifier: 'ENG-1', turn: 1, messages: 3, lastUserMessage: 'logged' });
    expect(new Date(entry.at).toISOString()).toBe(entry.at);

    const lines = (await readFile(path.join(dir, 'log', 'requests.jsonl'), 'utf8')).trim().split('\n');
    expect(lines).toHaveLength(model.requests.length);
    expect(lines.map((line) => JSON.parse(line))).toEqual(model.requests);
  });

  it('closes promptly while a delayed answer is pending', async () => {
    const other = await startScriptedModel({ scriptsDir: dir, log: () => {} });
    const otherClient = new OpenAI({ apiKey: 'scripted', baseURL: other.baseUrl, maxRetries: 0 });
    const pending = otherClient.chat.completions.create({ model: 'm', messages: [system('ENG-2')] });
    pending.catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = performance.now();
    await other.close();
    expect(performance.now() - started).toBeLessThan(250);
    await expect(pending).rejects.toBeInstanceOf(OpenAI.APIConnectionError);
  });

  it('runs standalone and prints its base URL', async () => {
    const tsx = path.resolve('node_modules/.bin/tsx');
    const child = spawn(tsx, ['lib/scripted-model/server.ts', '--scripts', dir, '--port', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const baseUrl = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout! }).once('line', resolve);
        child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
      });
      expect(baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
      const standalone = new OpenAI({ apiKey: 'scripted', baseURL: baseUrl, maxRetries: 0 });
      const answer = await standalone.chat.completions.create({ model: 'm', messages: [system('ENG-1')] });
      expect(answer.choices[0]!.message.content).toBe('Reading the code.');
    } finally {
      child.kill('SIGTERM');
    }
  });
});
