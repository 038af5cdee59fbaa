/**
 * The Claude Code runtime: `claude` in its non-interactive streaming JSON mode (`-p --input-format
 * stream-json --output-format stream-json`) runs inside the sandbox with no network, as the agent's
 * user, with its permission prompts skipped (the Docker sandbox is the boundary). It reads one user
 * message and streams system, assistant, user (tool result) and result events, one JSON per line.
 * A retried attempt resumes its session (`--resume`); a later round continues the previous round's
 * session with the feedback as its next message, or, when that session cannot be resumed, starts a
 * new one whose first message carries the previous round's conversation from its transcript.
 * Its model traffic goes through the relay's model gateway to the worker's Anthropic endpoint.
 */
import { randomUUID } from 'node:crypto';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { CLAUDE_CODE_VERSION, ensureClaudeCode } from '../../infra/agents.ts';
import { MODEL_HOST } from '../../lib/egress/model-gateway.ts';
import { WORKSPACE } from '../../lib/sandbox/container.ts';
import { execInSandbox } from '../../lib/sandbox/exec.ts';
import { REPO_DIR } from '../../lib/sandbox/workspace.ts';
import type { AgentSessionInput, AgentSessionResult } from '../agent.ts';
import type { ActivityDeps } from '../deps.ts';
import { runEgress, withEgress } from '../egress.ts';
import { reattach, sandboxFor } from '../sandbox.ts';
import {
  agentBinaryIn, describeContinuation, meteredGateway, previousConversation, previousRoundThread, primedPrompt, recordRoundEnd, sessionPointers,
  sessionPrompt, startInSandbox, takeUp, watchSession, type Continuation,
} from './common.ts';
import { runKey } from '../run-key.ts';

/** Claude Code's home (its sessions) on the workspace volume beside the repository, so a retried attempt and the next round can resume. */
const CLAUDE_HOME = `${WORKSPACE}/.cadenza-claude`;

/** This run's round's session: `resume` false once claude could not resume it; `prompted` false until the round's first input reached the model (absent: from before, prompted). */
interface SessionPointer {
  sessionId: string;
  resume?: boolean;
  prompted?: boolean;
}

interface StreamEvent {
  type?: string;
  subtype?: string;
  is_error?: boolean;
  result?: string;
  num_turns?: number;
  errors?: string[];
  message?: { content?: Array<{ type?: string; text?: string }> };
}

/** The worker's Anthropic endpoint: ANTHROPIC_BASE_URL, the scripted model, or Anthropic's API. */
function anthropicEndpoint(deps: ActivityDeps): { baseUrl: string; key: string } {
  const env = deps.env ?? process.env;
  const base = env.ANTHROPIC_BASE_URL ? `${env.ANTHROPIC_BASE_URL.replace(/\/+$/, '')}/v1` : deps.model.kind === 'scripted' ? deps.model.client.baseURL : 'https://api.anthropic.com/v1';
  const key = env.ANTHROPIC_API_KEY || (deps.model.kind === 'scripted' ? 'scripted-model-no-key' : '');
  if (!key) throw ApplicationFailure.nonRetryable('agent.runtime claude-code needs ANTHROPIC_API_KEY in the worker\'s environment (it never enters the sandbox)', 'ModelAuthError');
  return { baseUrl: base, key };
}

export async function runClaudeCodeSession(deps: ActivityDeps, input: AgentSessionInput): Promise<AgentSessionResult> {
  const context = Context.current();
  const { contract, issue, workflowId } = input;
  const { agent, model } = contract.config;
  const key = runKey(input);
  const sandbox = sandboxFor(deps, key, contract);
  await reattach(deps, key, contract);
  const claude = await agentBinaryIn(deps, sandbox.container, 'claude', ensureClaudeCode);
  const endpoint = anthropicEndpoint(deps);
  const metered = meteredGateway(context, {
    baseUrl: endpoint.baseUrl, credential: { header: 'x-api-key', value: endpoint.key },
    budgetTokens: model.budgetTokens, tokensBefore: input.tokensBefore, identifier: issue.identifier,
  });

  const firstInput = await sessionPrompt(context, input);
  const pointers = sessionPointers(context, key, input.round, 'claude-session');
  const saved = await deps.artifacts.getPointer<SessionPointer>(pointers.round);
  const user = contract.config.sandbox.user;
  /** Whether claude has the session in its home on the volume (gone with a rebuilt volume). */
  const stored = async (sessionId: string) => (await execInSandbox(deps.docker, sandbox.container, {
    command: `for f in ${CLAUDE_HOME}/.claude/projects/*/${sessionId}.jsonl; do [ -s "$f" ] && exit 0; done; exit 1`, timeoutMs: 20_000, user,
  })).exitCode === 0;
  const carryOn = `Attempt ${context.info.attempt} of this session: the previous one was interrupted. Carry on from where the work stands.`;

  /**
   * Which session to run and what to tell it. `failed` is a session claude could not resume (in this
   * attempt, or an earlier one that recorded it): a new session then.
   */
  const plan = async (failed?: { id: string; why: string }): Promise<{ continuation: Continuation; text: string }> => {
    if (saved?.resume === false) failed ??= { id: saved.sessionId, why: `claude could not resume session ${saved.sessionId}: it exited without a result` };
    // A retried attempt of this round resumes the round's session (told to carry on once the round's
    // first input reached it, else given that input).
    if (saved && !failed) {
      if (await stored(saved.sessionId)) return { continuation: { how: 'resumed', id: saved.sessionId }, text: saved.prompted === false ? firstInput : carryOn };
      deps.log?.(`${issue.identifier}: claude's session ${saved.sessionId} of round ${input.round} is gone from ${CLAUDE_HOME}; starting the round's session again`);
    }
    if (!input.previousTranscript) return { continuation: { how: 'new', id: randomUUID() }, text: firstInput };
    // A later round continues the previous round's session, the feedback as its next message; when
    // that session cannot be resumed, a new one gets the previous round's conversation from its
    // transcript, as text before the round's input.
    const fromRound = input.round - 1;
    let previous = failed ?? await previousRoundThread(deps, pointers, input.previousTranscript);
    if ('id' in previous && !failed) {
      if (await stored(previous.id)) return { continuation: { how: 'continued', id: previous.id, fromRound }, text: firstInput };
      previous = { why: `its session ${previous.id} is gone from ${CLAUDE_HOME}` };
    }
    const why = 'why' in previous ? previous.why : 'it could not be resumed';
    const conversation = await previousConversation(deps, input.previousTranscript);
    return {
      continuation: { how: 'primed', id: randomUUID(), fromRound, why, transcript: input.previousTranscript, primedWith: conversation ? 'text' : 'nothing' },
      text: conversation ? primedPrompt(conversation, fromRound, why, firstInput) : firstInput,
    };
  };

  const events: StreamEvent[] = [];
  let result: StreamEvent | null = null;
  let continuation: Continuation | null = null;
  const policy = await runEgress(deps, contract);
  await withEgress(deps, deps.docker, sandbox.container, key, 'agent', policy, async (egress) => {
    await egress.ready();
    // model.name is passed on when it names a Claude model; otherwise (the default gpt-4.1) claude's own default is used.
    const claudeModel = /claude|sonnet|opus|haiku/i.test(model.name) ? ['--model', JSON.stringify(model.name)] : [];

    /** One claude process on the planned session: resolves with its result event (null: it ended without one). */
    const runClaude = async (planned: { continuation: Continuation; text: string }): Promise<StreamEvent | null> => {
      const { continuation: { how, id: sessionId } } = planned;
      const resume = how === 'resumed' || how === 'continued';
      if (how === 'continued') await takeUp(deps, pointers, input.previousTranscript!, sessionId);
      // Until the round's first input has reached the model, a retry gives it that input again.
      let prompted = how === 'resumed' && saved?.prompted !== false;
      if (!prompted) await deps.artifacts.setPointer(pointers.round, { sessionId, resume: true, prompted: false } satisfies SessionPointer);
      const exchangesBefore = metered.exchanges.length;
      const flags = [
        '-p', '--input-format', 'stream-json', '--output-format', 'stream-json', '--verbose', '--dangerously-skip-permissions', '--max-turns', String(agent.maxTurns),
        ...(resume ? ['--resume', sessionId] : ['--session-id', sessionId]), ...claudeModel,
      ];
      const session = await startInSandbox(deps, sandbox.container, {
        command: `mkdir -p ${CLAUDE_HOME} && exec '${claude}' ${flags.join(' ')}`,
        user,
        workdir: REPO_DIR,
        env: {
          ...egress.env, HOME: CLAUDE_HOME, ANTHROPIC_BASE_URL: `http://${MODEL_HOST}`, ANTHROPIC_API_KEY: 'cadenza-gateway',
          // Nothing but the model: no telemetry, updates or error reports trying the closed network.
          CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', DISABLE_AUTOUPDATER: '1', DISABLE_TELEMETRY: '1', DISABLE_ERROR_REPORTING: '1',
        },
      });
      let ended: StreamEvent | null = null;
      let exitedWithoutResult = false;
      let lastEventAt = Date.now();
      session.onLine((line) => {
        lastEventAt = Date.now();
        let event: StreamEvent;
        try {
          event = JSON.parse(line) as StreamEvent;
        } catch {
          return;
        }
        if (events.length < 2_000) events.push(event);
        if (event.type === 'result') ended = event;
      });
      session.write(JSON.stringify({ type: 'user', message: { role: 'user', content: planned.text } }));
      session.endInput();
      try {
        await new Promise<void>((resolve, reject) => {
          const unwatch = watchSession(context, {
            cli: 'claude', metered, stallTimeoutMs: agent.stallTimeoutMs, turnTimeoutMs: agent.turnTimeoutMs, startedAt: Date.now(), lastEventAt: () => lastEventAt, onLimit: reject,
          });
          void session.ended.then((stderrTail) => {
            unwatch();
            const exhausted = metered.exhausted();
            if (exhausted) reject(exhausted);
            else if (!ended) {
              exitedWithoutResult = true;
              reject(new Error(`claude exited without a result${stderrTail ? `: ${stderrTail.trim().split('\n').slice(-3).join(' | ')}` : ''}`));
            }
            else resolve();
          });
        });
      } finally {
        session.stop();
        const asked = metered.exchanges.length > exchangesBefore;
        if (exitedWithoutResult && resume && !asked) {
          // A session claude could not even resume is not tried again: the next attempt starts a new one.
          await deps.artifacts.setPointer(pointers.round, { sessionId, resume: false } satisfies SessionPointer);
        } else if (!prompted && asked) {
          // The model was asked with the round's input: it is in the session now.
          prompted = true;
          await deps.artifacts.setPointer(pointers.round, { sessionId, resume: true, prompted: true } satisfies SessionPointer);
        }
      }
      return ended;
    };

    let planned = await plan();
    for (;;) {
      continuation = planned.continuation;
      deps.log?.(`${issue.identifier}: ${describeContinuation('claude', input.round, continuation)}`);
      const exchangesBefore = metered.exchanges.length;
      result = await runClaude(planned);
      // claude could not load the session it was to resume (an error before asking the model): a new one, this attempt.
      const resumed = continuation.how === 'resumed' || continuation.how === 'continued';
      if (!resumed || !result?.is_error || metered.exchanges.length > exchangesBefore) break;
      const why = `claude could not resume session ${continuation.id}: ${String(result.errors?.join('; ') || result.result || result.subtype).slice(0, 300)}`;
      deps.log?.(`${issue.identifier}: ${why}`);
      planned = await plan({ id: continuation.id, why });
    }
  }, { relay: true, model: metered.gateway });

  const final = result as StreamEvent | null;
  if (final?.is_error && final.subtype !== 'error_max_turns') throw new Error(`claude ended with an error: ${String(final.result ?? final.subtype).slice(0, 400)}`);
  const ended = continuation as Continuation | null;
  const transcript = await deps.artifacts.putJson({ runtime: 'claude-code', version: CLAUDE_CODE_VERSION, continuation: ended, exchanges: metered.exchanges, events }, 'transcript');
  // The next round continues this session from here.
  if (ended) await recordRoundEnd(deps, pointers, transcript.ref, ended.id);
  return {
    transcript: { ref: transcript.ref, kind: 'transcript', bytes: transcript.bytes },
    turns: metered.exchanges.length,
    tokens: metered.usage(),
    summary: final?.result || 'claude ended without a final message',
    stopReason: final?.subtype === 'error_max_turns' ? 'max_turns' : 'finished',
    model: `claude-code ${CLAUDE_CODE_VERSION} (${deps.model.kind === 'scripted' ? `scripted ${model.name}` : model.name})`,
    resumedAtTurn: 0,
    attempt: context.info.attempt,
  };
}
