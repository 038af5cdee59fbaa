/**
 * One agent session = one activity: a tool-calling loop on the `openai` package. Every turn
 * heartbeats and checkpoints the transcript to the artifact store, so a retried attempt continues
 * from the last completed turn instead of starting over.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { ApplicationFailure, Context } from '@temporalio/activity';
import OpenAI from 'openai';
import { renderPrompt, type Contract } from '../lib/contract/index.ts';
import { takeLease } from '../lib/lease.ts';
import { sandboxKey } from '../lib/sandbox/names.ts';
import type { Issue } from '../lib/tracker/types.ts';
import type { ArtifactRef, TokenUsage } from '../workflows/definitions.ts';
import { AGENT_TOOLS, runTool } from './agent-tools.ts';
import type { ActivityDeps } from './deps.ts';
import { runEgress, withEgress } from './egress.ts';
import { runClaudeCodeSession } from './runtimes/claude-code.ts';
import { runCodexSession } from './runtimes/codex.ts';
import { reattach, sandboxFor } from './sandbox.ts';
import { primedFeedback } from './progress.ts';
import { runKey } from './run-key.ts';

type Message = OpenAI.Chat.Completions.ChatCompletionMessageParam;

export interface AgentSessionInput {
  workflowId: string;
  issue: Issue;
  contract: Contract;
  round: number;
  /** The transcript the previous round ended with; the conversation continues on it. */
  previousTranscript: string | null;
  /** Why another round is needed (failed checks, a reviewer's rejection, a tracker comment). */
  feedback: string | null;
  /** Tokens the issue used before this session, for the per-issue budget. */
  tokensBefore: number;
  /** The run's progress note (an artifact reference): the session starts with it, before the feedback. */
  progressNote?: string | null;
  /** Times the run's sandbox was rebuilt on another host (its host was lost); a new count starts the round's session afresh. */
  rebuilds?: number;
}

export interface AgentSessionResult {
  transcript: ArtifactRef;
  turns: number;
  tokens: TokenUsage;
  summary: string;
  stopReason: 'finished' | 'max_turns';
  model: string;
  /** Turn count the session resumed at (0 = fresh start). */
  resumedAtTurn: number;
  /** The activity attempt that completed the session (1 = first try). */
  attempt: number;
}

interface Checkpoint {
  transcript: string;
  turns: number;
  tokens: TokenUsage;
  summary: string | null;
}

const zeroTokens = (): TokenUsage => ({ input: 0, output: 0, total: 0 });

function systemMessage(issue: Issue, kind: 'scripted' | 'openai'): string {
  return [
    "You are Cadenza's coding agent. You work alone in a sandboxed checkout of the repository, on a work branch.",
    `Issue identifier: ${issue.identifier}`,
    'Use the tools to inspect and change files and to run commands (there is no network).',
    'Paths are relative to the repository root and must stay inside it.',
    'Do not commit; Cadenza commits your work, runs the proof checks and asks a person to approve landing.',
    'When the change is complete and verified, call finish with a summary of what you changed and how you checked it.',
    ...(kind === 'scripted' ? ['(This session runs against the scripted model: no OPENAI_API_KEY is set.)'] : []),
  ].join('\n');
}

/** Errors a retry cannot fix: wrong key, unknown model, a request the model will never accept. */
export function classifyModelError(error: unknown): never {
  if (error instanceof OpenAI.AuthenticationError || error instanceof OpenAI.PermissionDeniedError) {
    throw ApplicationFailure.nonRetryable(`the model refused the credentials (${error.status}): check OPENAI_API_KEY`, 'ModelAuthError');
  }
  if (error instanceof OpenAI.NotFoundError || error instanceof OpenAI.BadRequestError || error instanceof OpenAI.UnprocessableEntityError) {
    throw ApplicationFailure.nonRetryable(`the model rejected the request (${error.status}): ${error.message}`, 'ModelRequestError');
  }
  if (error instanceof OpenAI.RateLimitError) {
    // The client's own retries did not outlast the limit: the next attempt waits as long as the endpoint asked.
    const waitMs = retryAfterMs(error.headers);
    throw ApplicationFailure.create({
      message: `the model endpoint is rate limiting (429)${waitMs !== undefined ? `; it asked to wait ${Math.ceil(waitMs / 1000)} s` : ''}: ${error.message}`,
      type: 'ModelRateLimited',
      ...(waitMs !== undefined ? { nextRetryDelay: waitMs } : {}),
    });
  }
  throw error;
}

/** Retry-After (seconds or an HTTP date) or OpenAI's retry-after-ms, in milliseconds. */
function retryAfterMs(headers: Headers | undefined): number | undefined {
  const ms = Number(headers?.get('retry-after-ms'));
  if (headers?.get('retry-after-ms') && Number.isFinite(ms) && ms >= 0) return ms;
  const value = headers?.get('retry-after')?.trim();
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

export function createAgentActivities(deps: ActivityDeps) {
  async function runAgentSession(input: AgentSessionInput): Promise<AgentSessionResult> {
    // The run's progress note goes first into whatever the round starts with, for every runtime.
    if (input.progressNote) input = { ...input, feedback: await primedFeedback(deps, input.progressNote, input.feedback) };
    // An agent CLI inside the sandbox instead of Cadenza's own loop (agent.runtime, or Symphony's codex.command).
    if (input.contract.config.agent.runtime === 'codex') return runCodexSession(deps, input);
    if (input.contract.config.agent.runtime === 'claude-code') return runClaudeCodeSession(deps, input);
    const context = Context.current();
    const { contract, issue, workflowId, round } = input;
    const { agent, model } = contract.config;
    const key = runKey(input);
    const sandbox = sandboxFor(deps, key, contract);
    // Per run: a reset or a new run of the same issue starts its round afresh instead of resuming.
    // A sandbox rebuilt on another host has lost the session's file changes: the session starts afresh.
    const checkpointName = `${sandboxKey(key)}-${context.info.workflowExecution?.runId ?? "standalone"}-round-${round}${input.rebuilds ? `-rebuilt-${input.rebuilds}` : ''}`;
    const modelName = deps.model.kind === 'scripted' ? `scripted (${model.name})` : model.name;

    // Fencing: after a server outage a new attempt can start while an older one still runs in some
    // worker, possibly on another host. One live attempt owns the session: the lease is taken by a
    // compare-and-set in the artifact store before the checkpoint is read, so of attempts racing for it
    // exactly one holds it, and a newer attempt takes it over from an older one (which can then no
    // longer save past it). The holder checks it before it runs a turn's tools, asks the model or saves;
    // an attempt that lost stops. So at most the turn an older attempt had in flight is asked twice.
    const attempt = context.info.attempt;
    const taken = await takeLease(deps.artifacts, `${checkpointName}-lease`, { attempt, holder: `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}` });
    if (!taken.won) {
      throw ApplicationFailure.retryable(`attempt ${attempt} did not start the session: ${taken.why}`, 'SupersededAttempt');
    }
    const lease = taken.lease;
    const stillOwner = async () => {
      const check = await lease.check();
      if (!check.held) throw ApplicationFailure.retryable(`attempt ${attempt} stopped: ${check.why}`, 'SupersededAttempt');
    };

    let transcript: Message[];
    let turns = 0;
    let tokens = zeroTokens();
    let summary: string | null = null;
    const checkpoint = await deps.artifacts.getPointer<Checkpoint>(checkpointName);
    if (checkpoint) {
      transcript = await deps.artifacts.getJson<Message[]>(checkpoint.transcript);
      ({ turns, tokens, summary } = checkpoint);
      deps.log?.(`${issue.identifier}: resuming round ${round} at turn ${turns} (attempt ${context.info.attempt})`);
    } else if (input.previousTranscript) {
      transcript = await deps.artifacts.getJson<Message[]>(input.previousTranscript);
      transcript.push({ role: 'user', content: input.feedback ?? 'Continue working on the issue.' });
    } else {
      const attempt = context.info.attempt > 1 ? context.info.attempt - 1 : null;
      const prompt = await renderPrompt(contract, { issue, attempt }).catch((error: Error) => {
        throw ApplicationFailure.nonRetryable(error.message, 'ContractError');
      });
      transcript = [
        { role: 'system', content: systemMessage(issue, deps.model.kind) },
        { role: 'user', content: input.feedback ? `${prompt}\n\n${input.feedback}` : prompt },
      ];
    }
    const resumedAtTurn = checkpoint ? turns : 0;

    const save = async () => {
      await stillOwner();
      const stored = await deps.artifacts.putJson(transcript, 'transcript');
      await deps.artifacts.setPointer(checkpointName, { transcript: stored.ref, turns, tokens, summary } satisfies Checkpoint);
      return stored;
    };

    // A retried attempt may follow a Docker engine restart that stopped the sandbox: bring it back
    // before asking the model, so a turn is not asked again only to find no sandbox to run it in.
    if (summary === null && turns < agent.maxTurns) await reattach(deps, key, contract);

    // Long tool calls (test runs) keep the heartbeat going so a live session is never taken for a stalled one.
    const beatEvery = Math.max(200, Math.min(5_000, (context.info.heartbeatTimeoutMs ?? 15_000) / 3));
    const keepAlive = setInterval(() => context.heartbeat({ turns }), beatEvery);
    // What the agent's commands may reach (sandbox.egress.agent; none by default).
    const policy = await runEgress(deps, contract);
    try {
      if (summary === null && turns < agent.maxTurns) await withEgress(deps, deps.docker, sandbox.container, key, 'agent', policy, async (egress) => {
        while (summary === null && turns < agent.maxTurns) {
          if (input.tokensBefore + tokens.total >= model.budgetTokens) {
            await save();
            throw ApplicationFailure.nonRetryable(
              `token budget exhausted: ${input.tokensBefore + tokens.total} of model.budget_tokens ${model.budgetTokens} used for ${issue.identifier}`,
              'BudgetExhausted',
            );
          }
          await stillOwner();
          const response = await deps.model.client.chat.completions
            .create(
              { model: model.name, messages: transcript, tools: AGENT_TOOLS, max_tokens: model.maxOutputTokens },
              // The heartbeat keeps beating while we wait, so a hung model request must time out on its own.
              { signal: context.cancellationSignal, timeout: agent.stallTimeoutMs || agent.turnTimeoutMs },
            )
            .catch(classifyModelError);
          turns += 1;
          const usage = response.usage;
          tokens = {
            input: tokens.input + (usage?.prompt_tokens ?? 0),
            output: tokens.output + (usage?.completion_tokens ?? 0),
            total: tokens.total + (usage?.total_tokens ?? 0),
          };
          const message = response.choices[0]?.message;
          if (!message) throw new Error('the model returned no choices');
          transcript.push({ role: 'assistant', content: message.content ?? null, ...(message.tool_calls?.length ? { tool_calls: message.tool_calls } : {}) });

          await stillOwner();
          if (!message.tool_calls?.length) {
            transcript.push({ role: 'user', content: `Continuation turn ${turns + 1} of ${agent.maxTurns}: keep working with the tools, and call finish when the change is done.` });
          }
          for (const call of message.tool_calls ?? []) {
            if (call.type !== 'function') continue;
            const outcome = await runTool(sandbox, call.function.name, call.function.arguments, egress);
            transcript.push({ role: 'tool', tool_call_id: call.id, content: outcome.content });
            if (outcome.finished) summary = outcome.finished.summary;
          }
          await save();
          context.heartbeat({ turns });
        }
        // Even with nothing allowed, the agent's session has a relay: each refusal is answered at once, told and logged.
      }, { relay: true });
    } finally {
      clearInterval(keepAlive);
    }
    const stored = await save();
    return {
      transcript: { ref: stored.ref, kind: 'transcript', bytes: stored.bytes },
      turns,
      tokens,
      summary: summary ?? `stopped after agent.max_turns (${agent.maxTurns}) turns without calling finish`,
      stopReason: summary === null ? 'max_turns' : 'finished',
      model: modelName,
      resumedAtTurn,
      attempt: context.info.attempt,
    };
  }

  return { runAgentSession };
}
