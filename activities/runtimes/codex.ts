/**
 * The Codex runtime: `codex app-server` runs inside the sandbox (no network) and Cadenza speaks its
 * JSON-RPC protocol over a Docker exec stream, with Symphony's semantics: initialize, thread/start,
 * turn/start, streamed events until turn/completed or turn/failed, approval requests answered by
 * policy, read/turn/stall timeouts, continuation turns up to agent.max_turns while the repository has
 * no change. A retried attempt resumes its thread (thread/resume); a later round (after a failed
 * proof, a rejection, a conflict) continues the previous round's thread with the feedback as its next
 * turn, or, when that thread cannot be resumed, starts a new one primed with the previous round's
 * conversation from its transcript (thread/inject_items). Its model traffic goes through the egress
 * relay to the worker's model endpoint; the worker adds the key, counts tokens (input and output)
 * against model.budget_tokens and records every exchange.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { CODEX_VERSION, ensureCodex } from '../../infra/agents.ts';
import { MODEL_BASE_URL } from '../../lib/egress/model-gateway.ts';
import { execInSandbox } from '../../lib/sandbox/exec.ts';
import { WORKSPACE } from '../../lib/sandbox/container.ts';
import { REPO_DIR } from '../../lib/sandbox/workspace.ts';
import type { TokenUsage } from '../../workflows/definitions.ts';
import type { AgentSessionInput, AgentSessionResult } from '../agent.ts';
import type { ActivityDeps } from '../deps.ts';
import { runEgress, withEgress } from '../egress.ts';
import {
  agentBinaryIn, describeContinuation, meteredGateway, previousConversation, previousRoundThread, primedPrompt, recordRoundEnd, sessionPointers,
  sessionPrompt, startInSandbox, takeUp, watchSession, type Continuation,
} from './common.ts';
import { reattach, sandboxFor } from '../sandbox.ts';
import { runKey } from '../run-key.ts';

/**
 * Codex's state (its threads) on the workspace volume, beside the repository: it outlives the
 * container, so a retried attempt and the next round resume the same thread. The exporter takes only
 * the repository.
 */
const CODEX_HOME = `${WORKSPACE}/.cadenza-codex`;
/** codex.read_timeout_ms when a contract does not say: how long codex may take to answer a request. */
const READ_TIMEOUT_MS = 30_000;

interface RpcMessage {
  id?: number | string;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message?: string };
}

/** This run's round's thread: `prompted` false until the round's first input has reached it (absent: from before, prompted). */
interface ThreadPointer {
  threadId: string;
  prompted?: boolean;
}

const shellQuote = (value: string) => `'${value.replace(/'/g, `'\\''`)}'`;

export async function runCodexSession(deps: ActivityDeps, input: AgentSessionInput): Promise<AgentSessionResult> {
  const context = Context.current();
  const { contract, issue, workflowId } = input;
  const { agent, model } = contract.config;
  const key = runKey(input);
  const sandbox = sandboxFor(deps, key, contract);
  await reattach(deps, key, contract);
  const codex = await agentBinaryIn(deps, sandbox.container, 'codex', ensureCodex);

  // The model endpoint as the worker reaches it; the sandbox only ever sees MODEL_BASE_URL.
  const metered = meteredGateway(context, {
    baseUrl: deps.model.client.baseURL,
    credential: { header: 'authorization', value: deps.model.client.apiKey ?? 'scripted-model-no-key' },
    budgetTokens: model.budgetTokens, tokensBefore: input.tokensBefore, identifier: issue.identifier,
  });
  const { exchanges } = metered;

  const firstInput = await sessionPrompt(context, input);
  const pointers = sessionPointers(context, key, input.round, 'codex-thread');
  const saved = await deps.artifacts.getPointer<ThreadPointer>(pointers.round);
  /** Which thread the session works on, and how it came to (set once codex has it). */
  let threadOf: Continuation | null = null;
  /** Called when codex accepted a turn's input (the first one marks the round's thread as prompted). */
  let onTurnStarted = async () => {};

  const command = [
    agent.codex?.command ?? 'codex app-server',
    '-c', shellQuote('model_provider="cadenza"'),
    '-c', shellQuote(`model_providers.cadenza={ name = "Cadenza's model gateway", base_url = "${MODEL_BASE_URL}", wire_api = "responses", env_key = "CADENZA_MODEL_KEY" }`),
    '-c', shellQuote(`model=${JSON.stringify(model.name)}`),
  ].join(' ').replace(/^codex(?=\s)/, shellQuote(codex));
  const events: RpcMessage[] = [];
  let lastText = '';
  let turns = 0;
  const policy = await runEgress(deps, contract);

  await withEgress(deps, deps.docker, sandbox.container, key, 'agent', policy, async (egress) => {
    await egress.ready();
    await execInSandbox(deps.docker, sandbox.container, { command: `mkdir -p ${CODEX_HOME}`, timeoutMs: 10_000, user: contract.config.sandbox.user });
    const codexProcess = await startInSandbox(deps, sandbox.container, {
      command, user: contract.config.sandbox.user, workdir: REPO_DIR,
      env: { ...egress.env, CODEX_HOME, HOME: CODEX_HOME, CADENZA_MODEL_KEY: 'cadenza-gateway' },
    });

    let nextId = 1;
    const waiting = new Map<number, { resolve: (result: Record<string, unknown>) => void; reject: (error: Error) => void }>();
    let lastEventAt = Date.now();
    let ended: Error | null = null;
    const listeners = new Set<(message: RpcMessage) => void>();
    const send = (message: RpcMessage) => codexProcess.write(JSON.stringify(message));
    const fail = (error: Error) => {
      ended ??= error;
      for (const { reject } of waiting.values()) reject(error);
      waiting.clear();
      for (const listener of listeners) listener({});
    };
    void codexProcess.ended.then((stderrTail) => fail(new Error(`codex app-server exited${stderrTail ? `: ${stderrTail.trim().split('\n').slice(-3).join(' | ')}` : ''}`)));

    codexProcess.onLine((line) => {
      let message: RpcMessage;
      try {
        message = JSON.parse(line) as RpcMessage;
      } catch {
        return;
      }
      lastEventAt = Date.now();
      if (message.id !== undefined && message.method === undefined) {
        const call = waiting.get(Number(message.id));
        waiting.delete(Number(message.id));
        if (message.error) call?.reject(new Error(message.error.message ?? 'codex refused the request'));
        else call?.resolve(message.result ?? {});
        return;
      }
      if (events.length < 2_000) events.push(message);
      if (message.id !== undefined && message.method) {
        // Requests from codex: approvals are granted (the Docker sandbox is the boundary); anything
        // needing a person is declined, since nobody is at this session.
        if (/approval/i.test(message.method)) send({ id: message.id, result: { decision: 'accept' } });
        else send({ id: message.id, error: { message: `Cadenza does not answer ${message.method} in an unattended session` } } as RpcMessage);
        return;
      }
      const item = message.params?.item as { type?: string; text?: string } | undefined;
      if (message.method === 'item/completed' && item?.type === 'agentMessage' && item.text) lastText = item.text;
      for (const listener of listeners) listener(message);
    });

    const request = (method: string, params: Record<string, unknown>, timeoutMs = agent.codex?.readTimeoutMs ?? READ_TIMEOUT_MS) => new Promise<Record<string, unknown>>((resolve, reject) => {
      if (ended) return reject(ended);
      const id = nextId++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(ApplicationFailure.retryable(`codex did not answer ${method} within ${timeoutMs} ms`, 'AgentTimedOut'));
      }, timeoutMs);
      waiting.set(id, { resolve: (result) => (clearTimeout(timer), resolve(result)), reject: (error) => (clearTimeout(timer), reject(error)) });
      send({ id, method, params });
    });

    /** One turn: resolves on turn/completed; a failed turn, a stall, a spent budget or the turn timeout end it. */
    const runTurn = (threadId: string, text: string) => new Promise<void>((resolve, reject) => {
      const unwatch = watchSession(context, {
        cli: 'codex', metered, stallTimeoutMs: agent.stallTimeoutMs, turnTimeoutMs: agent.turnTimeoutMs, startedAt: Date.now(), lastEventAt: () => lastEventAt, onLimit: (failure) => finish(failure),
      });
      const listener = (message: RpcMessage) => {
        if (ended) return finish(ended);
        // A turn that ends because the worker refused its model requests ended for want of budget.
        if (message.method === 'turn/completed') finish(metered.exhausted());
        else if (message.method === 'turn/failed') finish(new Error(`codex turn failed: ${JSON.stringify(message.params?.error ?? message.params).slice(0, 400)}`));
      };
      const finish = (error: Error | null) => {
        unwatch();
        listeners.delete(listener);
        if (error) reject(error);
        else resolve();
      };
      listeners.add(listener);
      request('turn/start', {
        threadId, input: [{ type: 'text', text }], cwd: REPO_DIR, approvalPolicy: 'never', sandboxPolicy: { type: 'dangerFullAccess' },
      }).then(() => onTurnStarted()).catch(finish);
    });

    try {
      await request('initialize', { clientInfo: { name: 'cadenza', title: 'Cadenza', version: CODEX_VERSION }, capabilities: { experimentalApi: true } });
      send({ method: 'initialized', params: {} });
      const threadSettings = { cwd: REPO_DIR, approvalPolicy: 'never', sandbox: 'danger-full-access' };
      const threadIdOf = (answer: Record<string, unknown>, method: string) => {
        const id = String((answer.thread as { id?: string } | undefined)?.id ?? '');
        if (!id) throw new Error(`codex answered ${method} without a thread id`);
        return id;
      };
      /** Resumes a thread codex keeps in CODEX_HOME, or says why it cannot. */
      const resume = async (threadId: string): Promise<{ id: string } | { why: string }> => {
        try {
          return { id: threadIdOf(await request('thread/resume', { threadId, ...threadSettings }), 'thread/resume') };
        } catch (error) {
          return { why: `codex could not resume thread ${threadId}: ${(error as Error).message}` };
        }
      };
      const startThread = async () => threadIdOf(await request('thread/start', threadSettings), 'thread/start');

      let continuation: Continuation | null = null;
      let text = firstInput;
      // A retried attempt of this round resumes the round's thread; told to carry on once the round's
      // first input reached it, else given that input.
      if (saved) {
        const resumed = await resume(saved.threadId);
        if ('id' in resumed) {
          continuation = { how: 'resumed', id: resumed.id };
          if (saved.prompted !== false) text = `Attempt ${context.info.attempt} of this session: the previous one was interrupted. Carry on from where the work stands.`;
        } else deps.log?.(`${issue.identifier}: ${resumed.why}; starting the round's thread again`);
      }
      // A later round continues the previous round's thread, the feedback as its next turn; when that
      // thread cannot be resumed, a new one gets the previous round's conversation from its transcript
      // (as history items, or as text before the round's input if codex does not take them).
      if (!continuation && input.previousTranscript) {
        const fromRound = input.round - 1;
        const previous = await previousRoundThread(deps, pointers, input.previousTranscript);
        const resumed = 'id' in previous ? await resume(previous.id) : previous;
        if ('id' in resumed) {
          await takeUp(deps, pointers, input.previousTranscript, resumed.id);
          continuation = { how: 'continued', id: resumed.id, fromRound };
        } else {
          const id = await startThread();
          const conversation = await previousConversation(deps, input.previousTranscript);
          let primedWith: Continuation['primedWith'] = 'nothing';
          if (conversation?.items.length) {
            primedWith = await request('thread/inject_items', { threadId: id, items: conversation.items }).then(() => 'items' as const, (error: Error) => {
              deps.log?.(`${issue.identifier}: codex did not take round ${fromRound}'s conversation as items (${error.message}); it goes in the first message instead`);
              return 'nothing' as const;
            });
          }
          if (primedWith === 'nothing' && conversation) {
            text = primedPrompt(conversation, fromRound, resumed.why, firstInput);
            primedWith = 'text';
          }
          continuation = { how: 'primed', id, fromRound, why: resumed.why, transcript: input.previousTranscript, primedWith };
        }
      }
      continuation ??= { how: 'new', id: await startThread() };
      deps.log?.(`${issue.identifier}: ${describeContinuation('codex', input.round, continuation)}`);
      const threadId = continuation.id;
      threadOf = continuation;
      // Until the round's first input has reached the thread, a retry gives it that input again.
      let prompted = continuation.how === 'resumed' && saved?.prompted !== false;
      if (!prompted) await deps.artifacts.setPointer(pointers.round, { threadId, prompted: false } satisfies ThreadPointer);
      onTurnStarted = async () => {
        if (prompted) return;
        prompted = true;
        await deps.artifacts.setPointer(pointers.round, { threadId, prompted: true } satisfies ThreadPointer);
      };
      for (;;) {
        turns += 1;
        await runTurn(threadId, text);
        const changed = await execInSandbox(deps.docker, sandbox.container, { command: 'git status --porcelain', timeoutMs: 20_000, user: contract.config.sandbox.user, workdir: REPO_DIR });
        if (changed.stdout.trim() || turns >= agent.maxTurns) break;
        text = `Continuation turn ${turns + 1} of ${agent.maxTurns}: the repository has no change yet. Make the change the issue asks for.`;
      }
    } finally {
      codexProcess.stop();
    }
  }, { relay: true, model: metered.gateway });

  const tokens: TokenUsage = metered.usage();
  const continuation = threadOf as Continuation | null;
  const stored = await deps.artifacts.putJson({ runtime: 'codex', version: CODEX_VERSION, continuation, exchanges, events }, 'transcript');
  // The next round continues this thread from here.
  if (continuation) await recordRoundEnd(deps, pointers, stored.ref, continuation.id);
  return {
    transcript: { ref: stored.ref, kind: 'transcript', bytes: stored.bytes },
    turns: exchanges.length,
    tokens,
    summary: lastText || `codex ended ${turns} turn(s) without a final message`,
    stopReason: 'finished',
    model: `codex ${CODEX_VERSION} (${deps.model.kind === 'scripted' ? `scripted ${model.name}` : model.name})`,
    resumedAtTurn: 0,
    attempt: context.info.attempt,
  };
}
