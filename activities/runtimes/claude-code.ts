/**
 * The Claude Code runtime: `claude` in its non-interactive streaming JSON mode (`-p --input-format
 * stream-json --output-format stream-json`) runs inside the sandbox with no network, as the agent's
 * user, with its permission prompts skipped (the Docker sandbox is the boundary). It reads one user
 * message and streams system, assistant, user (tool result) and result events, one JSON per line.
 * Its model traffic goes through the relay's model gateway to the worker's Anthropic endpoint.
 */
import { randomUUID } from 'node:crypto';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { CLAUDE_CODE_VERSION, ensureClaudeCode } from '../../infra/agents.ts';
import { MODEL_HOST } from '../../lib/egress/model-gateway.ts';
import { WORKSPACE } from '../../lib/sandbox/container.ts';
import { sandboxKey } from '../../lib/sandbox/names.ts';
import { REPO_DIR } from '../../lib/sandbox/workspace.ts';
import type { AgentSessionInput, AgentSessionResult } from '../agent.ts';
import type { ActivityDeps } from '../deps.ts';
import { runEgress, withEgress } from '../egress.ts';
import { reattach, sandboxFor } from '../sandbox.ts';
import { agentBinaryIn, meteredGateway, sessionPrompt, startInSandbox, watchSession } from './common.ts';

/** Claude Code's home (its sessions) on the workspace volume beside the repository, so a retried attempt can resume. */
const CLAUDE_HOME = `${WORKSPACE}/.cadenza-claude`;

interface StreamEvent {
  type?: string;
  subtype?: string;
  is_error?: boolean;
  result?: string;
  num_turns?: number;
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
  const sandbox = sandboxFor(deps, workflowId, contract);
  await reattach(deps, workflowId, contract);
  const claude = await agentBinaryIn(deps, sandbox.container, 'claude', ensureClaudeCode);
  const endpoint = anthropicEndpoint(deps);
  const metered = meteredGateway(context, {
    baseUrl: endpoint.baseUrl, credential: { header: 'x-api-key', value: endpoint.key },
    budgetTokens: model.budgetTokens, tokensBefore: input.tokensBefore, identifier: issue.identifier,
  });

  // A retried attempt resumes the session the first one started (claude --resume); a new session gets an id of ours.
  const sessionPointer = `${sandboxKey(workflowId)}-${context.info.workflowExecution?.runId ?? 'standalone'}-round-${input.round}-claude-session`;
  const saved = await deps.artifacts.getPointer<{ sessionId: string; resume?: boolean }>(sessionPointer);
  const resume = Boolean(saved && saved.resume !== false);
  const sessionId = saved?.sessionId ?? randomUUID();
  if (!resume) await deps.artifacts.setPointer(sessionPointer, { sessionId, resume: true });
  const text = resume
    ? `Attempt ${context.info.attempt} of this session: the previous one was interrupted. Carry on from where the work stands.`
    : await sessionPrompt(context, input);

  const events: StreamEvent[] = [];
  let result: StreamEvent | null = null;
  const policy = await runEgress(deps, contract);
  await withEgress(deps, deps.docker, sandbox.container, workflowId, 'agent', policy, async (egress) => {
    await egress.ready();
    // model.name is passed on when it names a Claude model; otherwise (the default gpt-4.1) claude's own default is used.
    const claudeModel = /claude|sonnet|opus|haiku/i.test(model.name) ? ['--model', JSON.stringify(model.name)] : [];
    const flags = [
      '-p', '--input-format', 'stream-json', '--output-format', 'stream-json', '--verbose', '--dangerously-skip-permissions', '--max-turns', String(agent.maxTurns),
      ...(resume ? ['--resume', sessionId] : ['--session-id', sessionId]), ...claudeModel,
    ];
    const session = await startInSandbox(deps, sandbox.container, {
      command: `mkdir -p ${CLAUDE_HOME} && exec '${claude}' ${flags.join(' ')}`,
      user: contract.config.sandbox.user,
      workdir: REPO_DIR,
      env: {
        ...egress.env, HOME: CLAUDE_HOME, ANTHROPIC_BASE_URL: `http://${MODEL_HOST}`, ANTHROPIC_API_KEY: 'cadenza-gateway',
        // Nothing but the model: no telemetry, updates or error reports trying the closed network.
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', DISABLE_AUTOUPDATER: '1', DISABLE_TELEMETRY: '1', DISABLE_ERROR_REPORTING: '1',
      },
    });
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
      if (event.type === 'result') result = event;
    });
    session.write(JSON.stringify({ type: 'user', message: { role: 'user', content: text } }));
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
          else if (!result) {
            // A session claude cannot resume is not tried again: the next attempt starts a new one.
            if (resume) void deps.artifacts.setPointer(sessionPointer, { sessionId: randomUUID(), resume: false });
            reject(new Error(`claude exited without a result${stderrTail ? `: ${stderrTail.trim().split('\n').slice(-3).join(' | ')}` : ''}`));
          }
          else resolve();
        });
      });
    } finally {
      session.stop();
    }
  }, { relay: true, model: metered.gateway });

  const final = result as StreamEvent | null;
  if (final?.is_error && final.subtype !== 'error_max_turns') throw new Error(`claude ended with an error: ${String(final.result ?? final.subtype).slice(0, 400)}`);
  const stored = await deps.artifacts.putJson({ runtime: 'claude-code', version: CLAUDE_CODE_VERSION, exchanges: metered.exchanges, events }, 'transcript');
  return {
    transcript: { ref: stored.ref, kind: 'transcript', bytes: stored.bytes },
    turns: metered.exchanges.length,
    tokens: { input: 0, output: 0, total: metered.used() },
    summary: final?.result || 'claude ended without a final message',
    stopReason: final?.subtype === 'error_max_turns' ? 'max_turns' : 'finished',
    model: `claude-code ${CLAUDE_CODE_VERSION} (${deps.model.kind === 'scripted' ? `scripted ${model.name}` : model.name})`,
    resumedAtTurn: 0,
    attempt: context.info.attempt,
  };
}
