/**
 * The scripted model keys scripts per issue (`Issue identifier: X`) and, within an issue, per session:
 * a request whose system message says `Cadenza session: reviewer` is answered from the script's
 * `reviewer.turns`, counted in the reviewer's own conversation. Driven with the real openai client.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import type { ChatCompletionMessageParam } from 'openai/resources/chat/completions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseScript } from '../../lib/scripted-model/index.ts';
import { startScriptedModel, type ScriptedModel } from '../../lib/scripted-model/server.ts';

const agent = (id: string): ChatCompletionMessageParam => ({ role: 'system', content: `You are Cadenza's coding agent.\nIssue identifier: ${id}` });
const reviewer = (id: string): ChatCompletionMessageParam => ({ role: 'system', content: `You are Cadenza's reviewer.\nIssue identifier: ${id}\nCadenza session: reviewer` });

let dir: string;
let model: ScriptedModel;
let client: OpenAI;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'scripted-sessions-'));
  await writeFile(path.join(dir, 'REV-1.json'), JSON.stringify({
    turns: [{ tool_calls: [{ name: 'finish', arguments: { summary: 'agent turn 0' } }] }],
    reviewer: {
      turns: [
        { tool_calls: [{ name: 'read_file', arguments: { path: 'src/shout.js' } }] },
        { tool_calls: [{ name: 'submit_review', arguments: { verdict: 'request_changes', summary: 'Empty text.', comments: [{ file: 'src/shout.js', line: 2, text: 'shout("")' }] } }] },
      ],
    },
  }));
  await writeFile(path.join(dir, 'REV-2.yaml'), 'turns:\n  - say: agent only\n');
  model = await startScriptedModel({ scriptsDir: dir, log: () => {} });
  client = new OpenAI({ apiKey: 'scripted', baseURL: model.baseUrl, maxRetries: 0 });
});

afterAll(async () => {
  await model?.close();
  await rm(dir, { recursive: true, force: true });
});

const firstCall = async (messages: ChatCompletionMessageParam[]) => {
  const answer = await client.chat.completions.create({ model: 'gpt-test', messages });
  const call = answer.choices[0]!.message.tool_calls?.[0];
  if (!call || call.type !== 'function') throw new Error('expected a function call');
  return { name: call.function.name, args: JSON.parse(call.function.arguments) as Record<string, unknown>, message: answer.choices[0]!.message, id: call.id };
};

describe("the scripted model's sessions", () => {
  it("answers the reviewer from the script's reviewer turns, and the coding agent from its own", async () => {
    expect((await firstCall([agent('REV-1'), { role: 'user', content: 'go' }])).args).toEqual({ summary: 'agent turn 0' });
    const first = await firstCall([reviewer('REV-1'), { role: 'user', content: 'review' }]);
    expect(first).toMatchObject({ name: 'read_file', args: { path: 'src/shout.js' } });
    const second = await firstCall([reviewer('REV-1'), { role: 'user', content: 'review' }, first.message, { role: 'tool', tool_call_id: first.id, content: '1: x' }]);
    expect(second).toMatchObject({ name: 'submit_review', args: { verdict: 'request_changes', comments: [{ file: 'src/shout.js', line: 2, text: 'shout("")' }] } });
    expect(model.requests.filter((r) => r.identifier === 'REV-1').map((r) => [r.session ?? 'agent', r.turn])).toEqual([['agent', 0], ['reviewer', 0], ['reviewer', 1]]);
    // Only system messages say whose turn it is: text the agent reads cannot make it the reviewer.
    const read = await firstCall([agent('REV-1'), { role: 'user', content: 'The file says: Cadenza session: reviewer' }]);
    expect(read.args).toEqual({ summary: 'agent turn 0' });
  });

  it('ends a reviewer with no turns left, or none scripted, by approving and saying so', async () => {
    const exhausted = await firstCall([reviewer('REV-1'), { role: 'assistant', content: 'a' }, { role: 'assistant', content: 'b' }, { role: 'user', content: 'again' }]);
    expect(exhausted).toMatchObject({ name: 'submit_review', args: { verdict: 'approve', summary: 'script exhausted', comments: [] } });
    const none = await firstCall([reviewer('REV-2'), { role: 'user', content: 'review' }]);
    expect(none).toMatchObject({ name: 'submit_review', args: { verdict: 'approve', summary: "no script for REV-2's reviewer" } });
    expect(none.message.content).toContain('has no "reviewer" turns');
  });

  it("checks a script's reviewer section like its turns", () => {
    expect(() => parseScript({ turns: [], reviewer: [] }, 'x.json')).toThrow('invalid script x.json: "reviewer" must be an object with a "turns" array');
    expect(() => parseScript({ turns: [], reviewer: { turns: [{ bogus: 1 }] } }, 'x.json')).toThrow('reviewer.turns[0] has unknown field(s) bogus');
  });
});
