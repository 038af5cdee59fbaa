/**
 * What every agent CLI runtime shares: finding the CLI in the sandbox (Cadenza's default image carries
 * both) or putting Cadenza's pinned binary in one whose image has none, the model gateway (the
 * worker's endpoint and key, the token budget, the recorded exchanges), and a process in the sandbox
 * whose stdout is read line by line.
 */
import { createReadStream, statSync } from 'node:fs';
import { PassThrough, type Duplex } from 'node:stream';
import { ApplicationFailure, type Context } from '@temporalio/activity';
import { pack } from 'tar-stream';
import { AGENT_CLIS, AGENT_CLIS_DIR, AgentCliUnavailable, type AgentBinary, type AgentCli } from '../../infra/agents.ts';
import { renderPrompt } from '../../lib/contract/index.ts';
import type { ModelExchange, ModelGateway } from '../../lib/egress/model-gateway.ts';
import { execInSandbox } from '../../lib/sandbox/exec.ts';
import { refHex } from '../../lib/artifacts.ts';
import { sandboxKey } from '../../lib/sandbox/names.ts';
import type { TokenUsage } from '../../workflows/definitions.ts';
import type { AgentSessionInput } from '../agent.ts';
import type { ActivityDeps } from '../deps.ts';
import { conversationOf, renderConversation, type CliTranscript, type RecordedConversation } from './conversation.ts';

/**
 * The CLI on the sandbox's PATH (Cadenza's default image carries both at /opt/cadenza/bin), else
 * Cadenza's pinned copy put there: how an image without one (a contract's own) still works.
 */
export async function agentBinaryIn(
  deps: Pick<ActivityDeps, 'docker' | 'log'>, container: string, name: AgentCli['name'], ensure: () => Promise<AgentBinary>,
): Promise<string> {
  const cli = AGENT_CLIS.find((pinned) => pinned.name === name)!;
  const pinnedPath = `${AGENT_CLIS_DIR}/${cli.name}`;
  const found = await execInSandbox(deps.docker, container, { command: `command -v ${cli.name} || { test -x ${pinnedPath} && echo ${pinnedPath}; }`, timeoutMs: 20_000, user: 'root' });
  const existing = found.stdout.trim().split('\n').filter(Boolean).at(-1);
  if (existing) return existing;
  const image = (await deps.docker.getContainer(container).inspect()).Config.Image;
  const binary = await ensure().catch((error: Error) => {
    const message = `agent.runtime ${cli.runtime} needs ${cli.name} in the sandbox, and there is none: the image ${image} has no ${cli.name} on PATH, `
      + `and Cadenza's pinned ${cli.name} ${cli.version} is not available on this worker (${error.message}). `
      + `Use a sandbox image that brings ${cli.name} on PATH (sandbox.image in WORKFLOW.md), or run \`npm run setup\` where the pinned ${cli.name} can be fetched: Cadenza's default image then carries it`;
    throw error instanceof AgentCliUnavailable && error.permanent ? ApplicationFailure.nonRetryable(message, 'AgentCliMissing') : ApplicationFailure.retryable(message, 'AgentCliMissing');
  });
  const size = statSync(binary.path).size;
  deps.log?.(`${container}: the image ${image} has no ${cli.name} on PATH; copying Cadenza's pinned ${cli.name} ${cli.version} to ${AGENT_CLIS_DIR} (${Math.round(size / 1e6)} MB)`);
  const archive = pack();
  archive.entry({ name: 'opt/cadenza', type: 'directory', mode: 0o755, uid: 0, gid: 0 });
  archive.entry({ name: 'opt/cadenza/bin', type: 'directory', mode: 0o755, uid: 0, gid: 0 });
  const entry = archive.entry({ name: pinnedPath.slice(1), mode: 0o755, uid: 0, gid: 0, size }, () => archive.finalize());
  createReadStream(binary.path).pipe(entry);
  await deps.docker.getContainer(container).putArchive(archive as unknown as NodeJS.ReadableStream, { path: '/' });
  return pinnedPath;
}

export interface MeteredGateway {
  gateway: ModelGateway;
  exchanges: ModelExchange[];
  /** Tokens the endpoint reported for this session (all of them: what the budget counts). */
  used(): number;
  /** The same, split into input and output as the endpoint reported them. */
  usage(): TokenUsage;
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
  let input = 0;
  let output = 0;
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
      input += exchange.inputTokens;
      output += exchange.outputTokens;
      exchanges.push(exchange);
      context.heartbeat({ requests: exchanges.length });
    },
  };
  return {
    gateway, exchanges, used: () => used, usage: () => ({ input, output, total: used }), spent: () => spent,
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
  // Symphony's `attempt`: null for the first session, then how many sessions came before this one (a
  // later round is a follow-up on the same workspace, like Symphony's continuation; a retry too).
  const attempt = (input.round - 1) + (context.info.attempt - 1) || null;
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

/**
 * How a session's conversation began, as its transcript and the worker's log say:
 * - `new`: a new thread or session (an issue's first round);
 * - `resumed`: a retried attempt of the round, on the thread or session its first attempt started;
 * - `continued`: a later round, on the previous round's thread or session, resumed where it ended;
 * - `primed`: a later round whose previous thread or session could not be resumed (its state is
 *   gone, resuming failed, or it went on past that round before a reset): a new one, given the
 *   previous round's conversation from its transcript artifact first.
 */
export interface Continuation {
  how: 'new' | 'resumed' | 'continued' | 'primed';
  /** The CLI's thread or session id. */
  id: string;
  /** continued / primed: the round whose conversation this one carries on. */
  fromRound?: number;
  /** primed: why the previous round's thread or session was not resumed. */
  why?: string;
  /** primed: the transcript artifact it was primed from, and how (as history items, or as text in the first message). */
  transcript?: string;
  primedWith?: 'items' | 'text' | 'nothing';
}

/** One line for the log: which conversation a session carries on. */
export function describeContinuation(cli: 'codex' | 'claude', round: number, continuation: Continuation): string {
  const what = cli === 'codex' ? 'thread' : 'session';
  switch (continuation.how) {
    case 'new': return `round ${round}: ${cli} starts a new ${what} ${continuation.id}`;
    case 'resumed': return `round ${round}: ${cli} resumes its ${what} ${continuation.id} (a retried attempt)`;
    case 'continued': return `round ${round}: ${cli} continues round ${continuation.fromRound}'s ${what} ${continuation.id}, the feedback as the next turn`;
    case 'primed': return `round ${round}: ${cli} could not continue round ${continuation.fromRound}'s ${what} (${continuation.why}); a new ${what} ${continuation.id} is primed with round ${continuation.fromRound}'s transcript ${continuation.transcript} (${continuation.primedWith})`;
  }
}

/**
 * Where a CLI runtime keeps its thread or session ids in the artifact store:
 * - `round`: this run's round (per run, like the built-in loop's checkpoint: a reset or a new run
 *   starts the round afresh); a retried attempt of the round resumes what it names;
 * - `after(transcript)`: the thread or session a round's transcript ends on, so the next round can
 *   continue it, also after the run continued as new; marked once a later round took it up, so a
 *   round started again after a reset does not continue a thread that went on without it.
 */
export function sessionPointers(context: Context, runKey: string, round: number, kind: 'codex-thread' | 'claude-session') {
  const run = context.info.workflowExecution?.runId ?? 'standalone';
  return {
    round: `${sandboxKey(runKey)}-${run}-round-${round}-${kind}`,
    after: (transcript: string) => `${sandboxKey(runKey)}-after-${refHex(transcript).slice(0, 32)}-${kind}`,
    /** Who takes up a previous round's thread. */
    me: `${run}-round-${round}`,
  };
}
export type SessionPointers = ReturnType<typeof sessionPointers>;

interface AfterPointer {
  id: string;
  /** The run and round that continued it. */
  takenBy?: string;
}

/** The thread or session the previous round ended on, if it still ends there; otherwise why not. */
export async function previousRoundThread(deps: ActivityDeps, pointers: SessionPointers, previousTranscript: string): Promise<{ id: string } | { why: string }> {
  const saved = await deps.artifacts.getPointer<AfterPointer>(pointers.after(previousTranscript));
  if (!saved) return { why: 'no thread or session is recorded for its transcript' };
  if (saved.takenBy && saved.takenBy !== pointers.me) return { why: `${saved.id} went on past that round (${saved.takenBy}), as before a reset` };
  return { id: saved.id };
}

/** Marks the previous round's thread or session as taken up by this round. */
export async function takeUp(deps: ActivityDeps, pointers: SessionPointers, previousTranscript: string, id: string): Promise<void> {
  await deps.artifacts.setPointer(pointers.after(previousTranscript), { id, takenBy: pointers.me } satisfies AfterPointer);
}

/** Records the thread or session a finished round's transcript ends on. */
export async function recordRoundEnd(deps: ActivityDeps, pointers: SessionPointers, transcript: string, id: string): Promise<void> {
  await deps.artifacts.setPointer(pointers.after(transcript), { id } satisfies AfterPointer);
}

/** The previous round's conversation from its transcript artifact (null when it cannot be read). */
export async function previousConversation(deps: ActivityDeps, transcript: string): Promise<RecordedConversation | null> {
  try {
    return conversationOf(await deps.artifacts.getJson<CliTranscript>(transcript));
  } catch (error) {
    deps.log?.(`the transcript ${transcript} could not be read: ${(error as Error).message}`);
    return null;
  }
}

/** A new session's first message when it is primed with the previous round's conversation as text. */
export function primedPrompt(conversation: RecordedConversation, fromRound: number, why: string, prompt: string): string {
  return [
    `This session carries on the earlier work on this issue: the previous round's session could not be resumed (${why}), so here is the conversation up to the end of round ${fromRound}, as it was recorded.`,
    '',
    '<earlier-conversation>',
    renderConversation(conversation.steps),
    '</earlier-conversation>',
    '',
    prompt,
  ].join('\n');
}
