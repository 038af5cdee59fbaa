/**
 * The model endpoint through the egress relay, on the real Docker engine: a client inside a sandbox
 * with no network (Python's standard library, as any agent CLI would, through the proxy variables)
 * reaches `http://model.cadenza.internal/v1`; the worker adds the key, which the sandbox never holds;
 * tokens are counted from plain and streamed answers; a spent budget is refused with a clear reason.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerClient } from '../../infra/docker.ts';
import { DEFAULT_SANDBOX_IMAGE } from '../../infra/image.ts';
import { MODEL_BASE_URL, type ModelExchange, type ModelGateway } from '../../lib/egress/model-gateway.ts';
import { resolveEgress } from '../../lib/egress/policy.ts';
import { startRelay, type RelaySession } from '../../lib/egress/relay.ts';
import { ensureSandbox, removeSandbox } from '../../lib/sandbox/container.ts';
import { execInSandbox } from '../../lib/sandbox/exec.ts';
import { containerName } from '../../lib/sandbox/names.ts';
import { startScriptedModel, type ScriptedModel } from '../../lib/scripted-model/server.ts';

const KEY = 'sk-worker-only-0123456789-NEVER-IN-THE-SANDBOX';
const docker = dockerClient();
const workflowId = `test/model-gateway/${process.pid}-${Date.now()}`;
const container = containerName(workflowId);
const policy = resolveEgress(undefined, [], () => { throw new Error('no registries here'); }, null);

/** A client in the sandbox: POSTs JSON to the model endpoint through the relay; prints status and body. */
const CLIENT = `
import json, os, sys, urllib.request, urllib.error
path, body = sys.argv[1], sys.argv[2]
req = urllib.request.Request(os.environ['MODEL_URL'] + path, data=body.encode(), headers={'content-type': 'application/json', 'authorization': 'Bearer sandbox-made-this-up'})
try:
    with urllib.request.urlopen(req, timeout=30) as r:
        print(r.status); print(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); print(e.read().decode())
`;

let scripts: string;
let model: ScriptedModel;
/** In front of the scripted model: records the credential each request arrived with. */
let front: http.Server;
let frontUrl: string;
const seenCredentials: string[] = [];

beforeAll(async () => {
  scripts = await mkdtemp(path.join(tmpdir(), 'gateway-scripts-'));
  await writeFile(path.join(scripts, 'GW-1.json'), JSON.stringify({ turns: [{ say: 'hello from the model' }, { say: 'second' }, { say: 'third' }] }));
  model = await startScriptedModel({ scriptsDir: scripts, log: () => {} });
  front = http.createServer(async (request, response) => {
    seenCredentials.push(String(request.headers.authorization ?? request.headers['x-api-key'] ?? ''));
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const upstream = await fetch(`${model.baseUrl}${request.url!.replace(/^\/v1/, '')}`, { method: request.method, headers: { 'content-type': 'application/json', authorization: String(request.headers.authorization ?? '') }, body: Buffer.concat(chunks) });
    response.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' });
    response.end(Buffer.from(await upstream.arrayBuffer()));
  });
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
  frontUrl = `http://127.0.0.1:${(front.address() as AddressInfo).port}/v1`;
  await ensureSandbox(docker, workflowId, { image: DEFAULT_SANDBOX_IMAGE, cpus: 1, memoryMb: 256, pidsLimit: 64, user: 'agent' });
});
afterAll(async () => {
  await removeSandbox(docker, workflowId);
  await new Promise((resolve) => front?.close(resolve));
  await model?.close();
  await rm(scripts, { recursive: true, force: true });
});

function gateway(budget: number, exchanges: ModelExchange[]): ModelGateway {
  let used = 0;
  return {
    baseUrl: frontUrl,
    credential: { header: 'authorization', value: KEY },
    refusal: () => (used >= budget ? `model.budget_tokens (${budget}) is spent: ${used} tokens used` : null),
    onExchange: (exchange) => {
      used += exchange.tokens;
      exchanges.push(exchange);
    },
  };
}

async function ask(relay: RelaySession, requestPath: string, body: unknown): Promise<{ status: number; body: string }> {
  const result = await execInSandbox(docker, container, {
    command: `python3 - '${requestPath}' '${JSON.stringify(body).replace(/'/g, "'\\''")}'`,
    stdin: CLIENT,
    timeoutMs: 60_000,
    env: { ...relay.env, MODEL_URL: MODEL_BASE_URL },
  });
  expect(result.exitCode, result.stderr).toBe(0);
  const [status = '', ...rest] = result.stdout.split('\n');
  return { status: Number(status), body: rest.join('\n') };
}

const chat = (content: string) => ({ model: 'gpt-4.1', messages: [{ role: 'system', content: 'Issue identifier: GW-1' }, { role: 'user', content }] });

describe('the model endpoint through the egress relay', () => {
  it('reaches the endpoint with the worker\'s key, never the sandbox\'s, and counts tokens of plain and streamed answers', async () => {
    const exchanges: ModelExchange[] = [];
    const relay = await startRelay(docker, container, 'agent', policy, undefined, { model: gateway(1_000_000, exchanges) });
    try {
      const plain = await ask(relay, '/chat/completions', chat('hi'));
      expect(plain.status).toBe(200);
      expect(JSON.parse(plain.body).choices[0].message.content).toBe('hello from the model');
      const streamed = await ask(relay, '/responses', { model: 'gpt-5', instructions: 'Issue identifier: GW-1', input: 'hi', stream: true });
      expect(streamed.status).toBe(200);
      expect(streamed.body).toContain('event: response.completed');
      expect(seenCredentials).toEqual([`Bearer ${KEY}`, `Bearer ${KEY}`]);
      expect(exchanges.map((exchange) => [exchange.path, exchange.status])).toEqual([['/v1/chat/completions', 200], ['/v1/responses', 200]]);
      expect(exchanges.every((exchange) => exchange.tokens > 0)).toBe(true);
      // Split as the endpoint reported them: the streamed Responses usage comes with response.completed.
      const completed = JSON.parse(/event: response\.completed\ndata: (.*)\n/.exec(streamed.body)![1]!).response.usage;
      expect([exchanges[1]!.inputTokens, exchanges[1]!.outputTokens, exchanges[1]!.tokens]).toEqual([completed.input_tokens, completed.output_tokens, completed.total_tokens]);
      const usage = JSON.parse(plain.body).usage;
      expect([exchanges[0]!.inputTokens, exchanges[0]!.outputTokens, exchanges[0]!.tokens]).toEqual([usage.prompt_tokens, usage.completion_tokens, usage.total_tokens]);
      expect(exchanges[0]!.request).toContain('"content":"hi"');
      expect(exchanges[1]!.response).toContain('response.output_text.delta');

      // The key is nowhere in the sandbox: not in the environment its commands get, a process, or a file.
      const search = await execInSandbox(docker, container, {
        // The key in two halves, so this command's own command line does not hold it whole.
        command: `env; cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' '\\n'; a='${KEY.slice(0, 10)}'; b='${KEY.slice(10)}'; grep -rl "$a$b" / --exclude-dir=proc --exclude-dir=sys 2>/dev/null; true`,
        timeoutMs: 60_000, user: 'root', env: relay.env,
      });
      expect(search.stdout + search.stderr).not.toContain(KEY);
    } finally {
      const records = await relay.stop();
      expect(records.filter((record) => record.allowed).map((record) => record.destination)).toEqual(['model.cadenza.internal:80', 'model.cadenza.internal:80']);
    }
  });

  it('refuses once the budget is spent, with the reason, and only an agent session with a gateway reaches it', async () => {
    const exchanges: ModelExchange[] = [];
    const relay = await startRelay(docker, container, 'agent', policy, undefined, { model: gateway(1, exchanges) });
    try {
      expect((await ask(relay, '/chat/completions', chat('one'))).status).toBe(200);
      const spent = await ask(relay, '/chat/completions', chat('two'));
      expect(spent.status).toBe(429);
      expect(JSON.parse(spent.body).error).toMatchObject({ code: 'budget_exhausted', message: expect.stringContaining('model.budget_tokens (1) is spent') });
      expect(exchanges).toHaveLength(1);
      expect(relay.takeRefusals().join('\n')).toContain('Cadenza refused a model request during agent: model.budget_tokens (1) is spent');
    } finally {
      await relay.stop();
    }
    const checks = await startRelay(docker, container, 'checks', policy);
    try {
      const refused = await ask(checks, '/chat/completions', chat('from a check'));
      expect(refused.status).toBe(403);
      expect(refused.body).toContain('the model endpoint is reachable only from an agent runtime');
    } finally {
      await checks.stop();
    }
  });
});
