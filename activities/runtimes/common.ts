/**
 * What every agent CLI runtime shares: putting Cadenza's pinned binary in a sandbox whose image has
 * none, the model gateway (the worker's endpoint and key, the token budget, the recorded exchanges),
 * and a process in the sandbox whose stdout is read line by line.
 */
import { createReadStream, statSync } from 'node:fs';
import { PassThrough, type Duplex } from 'node:stream';
import { ApplicationFailure, type Context } from '@temporalio/activity';
import { pack } from 'tar-stream';
import type { AgentBinary } from '../../infra/agents.ts';
import { renderPrompt } from '../../lib/contract/index.ts';
import type { ModelExchange, ModelGateway } from '../../lib/egress/model-gateway.ts';
import { execInSandbox } from '../../lib/sandbox/exec.ts';
import type { AgentSessionInput } from '../agent.ts';
import type { ActivityDeps } from '../deps.ts';

/** Where Cadenza puts its pinned agent CLIs in a sandbox (root's, read-only to the agent). */
const AGENT_BIN = '/opt/cadenza/bin';

/** The CLI `name` on the sandbox's PATH, or Cadenza's pinned copy put at /opt/cadenza/bin. */
export async function agentBinaryIn(deps: ActivityDeps, container: string, name: string, ensure: () => Promise<AgentBinary>): Promise<string> {
  const found = await execInSandbox(deps.docker, container, { command: `command -v ${name} || { test -x ${AGENT_BIN}/${name} && echo ${AGENT_BIN}/${name}; }`, timeoutMs: 20_000, user: 'root' });
  const existing = found.stdout.trim().split('\n').filter(Boolean).at(-1);
  if (existing) return existing;
  const binary = await ensure();
  const archive = pack();
  archive.entry({ name: 'opt/cadenza', type: 'directory', mode: 0o755, uid: 0, gid: 0 });
  archive.entry({ name: 'opt/cadenza/bin', type: 'directory', mode: 0o755, uid: 0, gid: 0 });
  const entry = archive.entry({ name: `opt/cadenza/bin/${name}`, mode: 0o755, uid: 0, gid: 0, size: statSync(binary.path).size }, () => archive.finalize());
  createReadStream(binary.path).pipe(entry);
  await deps.docker.getContainer(container).putArchive(archive as unknown as NodeJS.ReadableStream, { path: '/' });
  return `${AGENT_BIN}/${name}`;
}

export interface MeteredGateway {
  gateway: ModelGateway;
  exchanges: ModelExchange[];
  /** Tokens the endpoint reported for this session. */
  used(): number;
  /** Why the budget stopped the session, once it has. */
  spent(): string | null;
  /** The session's failure once the budget is spent (BudgetExhausted, not retried), else null. */
  exhausted(): ApplicationFailure | null;
}

/** The model endpoint as the worker reaches it, metered against model.budget_tokens for the issue. */
export function meteredGateway(
  context: Context, options: { baseUrl: string; credential: ModelGateway['credential']; budgetTokens: number; tokensBefore: number; identifier: string },
): MeteredGateway {
  const exchanges: ModelExchange[] = [];
  let used = 0;
  let spent: string | null = null;
  const gateway: ModelGateway = {
    baseUrl: options.baseUrl,
    credential: options.credential,
    refusal: () => {
      if (options.tokensBefore + used >= options.budgetTokens) {
        spent ??= `model.budget_tokens (${options.budgetTokens}) is spent: ${options.tokensBefore + used} tokens used for ${options.identifier}`;
      }
      return spent;
    },
    onExchange: (exchange) => {
      used += exchange.tokens;
      exchanges.push(exchange);
      context.heartbeat({ requests: exchanges.length });
    },
  };
  return {
    gateway, exchanges, used: () => used, spent: () => spent,
    exhausted: () => (spent ? ApplicationFailure.nonRetryable(`token budget exhausted: ${spent}; the agent was stopped mid-session`, 'BudgetExhausted') : null),
  };
}

/**
 * Watches a running session every half second: heartbeats, and calls `onLimit` with the first limit
 * crossed (a spent budget, no event for agent.stall_timeout_ms, past agent.turn_timeout_ms since
 * `startedAt`). Returns the function that stops watching.
 */
export function watchSession(
  context: Context,
  options: { cli: string; metered: MeteredGateway; stallTimeoutMs: number; turnTimeoutMs: number; startedAt: number; lastEventAt: () => number; onLimit: (failure: ApplicationFailure) => void },
): () => void {
  const { cli, metered, stallTimeoutMs, turnTimeoutMs } = options;
  const check = setInterval(() => {
    context.heartbeat({ requests: metered.exchanges.length });
    const failure = metered.exhausted()
      ?? (stallTimeoutMs > 0 && Date.now() - options.lastEventAt() > stallTimeoutMs
        ? ApplicationFailure.retryable(`${cli} sent nothing for ${stallTimeoutMs} ms (agent.stall_timeout_ms); the session is retried`, 'AgentStalled') : null)
      ?? (Date.now() - options.startedAt > turnTimeoutMs ? ApplicationFailure.retryable(`the ${cli} turn ran past agent.turn_timeout_ms (${turnTimeoutMs} ms)`, 'AgentTimedOut') : null);
    if (failure) {
      clearInterval(check);
      options.onLimit(failure);
    }
  }, 500);
  return () => clearInterval(check);
}

export interface SandboxProcess {
  write(line: string): void;
  endInput(): void;
  /** Called for each line the process writes to stdout. */
  onLine(listener: (line: string) => void): void;
  /** Resolves when the process's output ends, with the tail of what it wrote to stderr. */
  ended: Promise<string>;
  stop(): void;
}

/** Starts `command` in the sandbox as `user`, its stdin writable and its stdout read line by line. */
export async function startInSandbox(
  deps: ActivityDeps, container: string, options: { command: string; user: string; workdir: string; env: Record<string, string> },
): Promise<SandboxProcess> {
  const exec = await deps.docker.getContainer(container).exec({
    Cmd: ['sh', '-c', options.command],
    User: options.user,
    WorkingDir: options.workdir,
    Env: Object.entries(options.env).map(([key, value]) => `${key}=${value}`),
    AttachStdin: true, AttachStdout: true, AttachStderr: true,
  });
  const stream = (await exec.start({ hijack: true, stdin: true })) as Duplex;
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  deps.docker.modem.demuxStream(stream, stdout, stderr);
  let stderrTail = '';
  stderr.on('data', (chunk: Buffer) => (stderrTail = (stderrTail + chunk.toString('utf8')).slice(-4000)));
  const listeners: Array<(line: string) => void> = [];
  let buffered = '';
  stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (line) for (const listener of listeners) listener(line);
    }
  });
  const ended = new Promise<string>((resolve) => {
    stream.on('end', () => resolve(stderrTail));
    stream.on('close', () => resolve(stderrTail));
  });
  return {
    write: (line) => void stream.write(`${line}\n`),
    // Half-close: the process sees end of input and may still answer.
    endInput: () => (stream as unknown as { end(): void }).end(),
    onLine: (listener) => void listeners.push(listener),
    ended,
    stop: () => stream.destroy(),
  };
}

/**
 * What an agent CLI is told first: the issue (its identifier, which the scripted model keys on), the
 * ground rules, the contract's prompt, and why this round exists when it is not the first.
 */
export async function sessionPrompt(context: Context, input: AgentSessionInput): Promise<string> {
  const attempt = context.info.attempt > 1 ? context.info.attempt - 1 : null;
  const prompt = await renderPrompt(input.contract, { issue: input.issue, attempt }).catch((error: Error) => {
    throw ApplicationFailure.nonRetryable(error.message, 'ContractError');
  });
  return [
    `Issue identifier: ${input.issue.identifier}`,
    'You work in a sandboxed checkout with no network. Do not commit: Cadenza commits your work, runs the proof checks and asks a person to approve landing.',
    '',
    prompt,
    ...(input.feedback ? ['', input.feedback] : []),
  ].join('\n');
}
