/**
 * The reviewer (WORKFLOW.md's `review:`): after the required checks pass, a separate session with no
 * write tools reads the issue, Cadenza's own diff and the evidence, and the files of the exact commit
 * in Cadenza's host mirror (never the agent's sandbox), then answers through submit_review with a
 * verdict and line comments. Its model traffic goes through the worker's model client, like the
 * built-in agent's; it has its own bounds (review.max_turns, review.budget_tokens). The verdict and
 * comments are written into the round's walkthrough and proof summary, which the approver reads.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import type OpenAI from 'openai';
import type { ContractSettings } from '../lib/contract/index.ts';
import {
  REVIEW_TOOLS, ReviewToolError, forHistory, parseArguments, parseSubmission, runReviewTool, summarySection, walkthroughSection, type SubmittedReview,
} from '../lib/review.ts';
import type { Issue } from '../lib/tracker/types.ts';
import type { ArtifactRef, ReviewResult, TokenUsage } from '../workflows/definitions.ts';
import { classifyModelError } from './agent.ts';
import type { ActivityDeps } from './deps.ts';

type Message = OpenAI.Chat.Completions.ChatCompletionMessageParam;

/** What of the diff and the walkthrough goes into the reviewer's prompt; the files are there to read beyond it. */
const DIFF_IN_PROMPT = 60_000;
const WALKTHROUGH_IN_PROMPT = 16_000;

export interface ReviewInput {
  workflowId: string;
  contract: ContractSettings;
  issue: Issue;
  round: number;
  baseCommit: string;
  headCommit: string;
  /** The round's proof, by reference: the host-computed diff, the walkthrough and the summary. */
  diff: string;
  walkthrough: string;
  summary: string;
  /** The reviewer's conversation of the previous review (it continues there). */
  previousTranscript: string | null;
  /** Tokens the run's reviews used before, for review.budget_tokens. */
  tokensBefore: number;
}

export interface ReviewOutcome {
  review: ReviewResult;
  /** The round's walkthrough and proof summary with the review in them (they replace the proof's). */
  walkthrough: ArtifactRef;
  summary: ArtifactRef;
}

function systemMessage(issue: Issue, required: boolean, prompt: string | null, scripted: boolean): string {
  return [
    "You are Cadenza's reviewer. A coding agent worked on an issue in a sandbox; Cadenza took its work out as a commit, ran the required checks on that commit in fresh containers (they passed) and computed the diff itself. You review that commit before a person decides whether it lands.",
    `Issue identifier: ${issue.identifier}`,
    'Cadenza session: reviewer',
    'You cannot change anything. Your tools read the files of the commit under review: read_file (with line numbers), list_files and search_files.',
    'Answer by calling submit_review once: verdict "approve" or "request_changes", a summary, and line comments { file, line, text } on the new version of the files (line numbers as read_file shows them).',
    'Request changes only for what must change before this can land (wrong behaviour, a requirement of the issue missed, missing or weakened tests); make smaller points as comments on an approval.',
    required
      ? 'Your verdict is required: request_changes sends the work back to the coding agent with your summary and comments.'
      : 'Your verdict is advisory: the person deciding reads it with the proof.',
    ...(scripted ? ['(This session runs against the scripted model: no OPENAI_API_KEY is set.)'] : []),
    ...(prompt ? ['', prompt] : []),
  ].join('\n');
}

const capped = (text: string, limit: number, what: string) =>
  text.length > limit ? `${text.slice(0, limit)}\n[cadenza] ${what} cut at ${limit} of ${text.length} characters; read the files with read_file.` : text;

function roundMessage(input: ReviewInput, diff: string, walkthrough: string, again: boolean): string {
  const { issue } = input;
  return [
    again
      ? `The coding agent worked another round. Review round ${input.round} of ${issue.identifier}: the commit under review is now \`${input.headCommit}\` (base \`${input.baseCommit}\`). The diff is the whole change against the base.`
      : `Review round ${input.round} of ${issue.identifier}: the commit under review is \`${input.headCommit}\` (base \`${input.baseCommit}\`).`,
    '',
    '## The issue',
    `${issue.identifier}: ${issue.title}${issue.url ? ` (${issue.url})` : ''}`,
    '',
    issue.description?.trim() || '(no description)',
    '',
    "## The diff (computed by Cadenza from its own copy of the commits)",
    '```diff',
    capped(diff, DIFF_IN_PROMPT, 'the diff'),
    '```',
    '',
    "## The evidence (Cadenza's walkthrough of this round)",
    capped(walkthrough, WALKTHROUGH_IN_PROMPT, 'the walkthrough'),
  ].join('\n');
}

/** The walkthrough with the review after its opening lines (before what the agent says it did). */
function withReview(walkthrough: string, section: string): string {
  const at = walkthrough.indexOf('## What the agent says it did');
  return at < 0 ? `${walkthrough.trimEnd()}\n\n${section}` : `${walkthrough.slice(0, at)}${section}\n${walkthrough.slice(at)}`;
}

const zero = (): TokenUsage => ({ input: 0, output: 0, total: 0 });

export function createReviewActivities(deps: ActivityDeps) {
  async function runReview(input: ReviewInput): Promise<ReviewOutcome> {
    const context = Context.current();
    const { config } = input.contract;
    const review = config.review;
    if (!review) throw ApplicationFailure.nonRetryable('runReview: the contract has no review: section', 'ContractError');
    const mirror = deps.mirrors.get(config.repo.url);
    if ((await mirror.resolve(input.headCommit)) !== input.headCommit) {
      throw ApplicationFailure.nonRetryable(`runReview: commit ${input.headCommit} is not in this host's mirror of ${config.repo.url}`, 'WorkLost');
    }
    // The round's evidence from the artifact store; a run moved off a lost host with a local store has the
    // diff computed again from the mirror, and says the rest is gone.
    const stored = (ref: string, instead: () => Promise<string> | string) => deps.artifacts.getText(ref).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT' && !/is not in /.test(error.message)) throw error;
      return instead();
    });
    const gone = (what: string, ref: string) => `(The round's ${what} ${ref} is not in this worker's artifact store: it was kept on a host that is gone.)`;
    const [diff, walkthrough, summaryText] = await Promise.all([
      stored(input.diff, async () => (await mirror.evidence(input.baseCommit, input.headCommit)).diff),
      stored(input.walkthrough, () => gone('walkthrough', input.walkthrough)),
      stored(input.summary, () => gone('proof summary', input.summary)),
    ]);
    const model = deps.model.kind === 'scripted' ? `scripted (${review.model})` : review.model;

    // The previous review's conversation, unless it stayed on a lost host (then the review starts afresh).
    const previous = input.previousTranscript
      ? await deps.artifacts.getJson<Message[]>(input.previousTranscript).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT' && !/is not in /.test(error.message)) throw error;
        return null;
      })
      : null;
    const transcript: Message[] = previous ?? [{ role: 'system', content: systemMessage(input.issue, review.required, review.prompt, deps.model.kind === 'scripted') }];
    transcript.push({ role: 'user', content: roundMessage(input, diff, walkthrough, previous !== null) });

    let turns = 0;
    let tokens = zero();
    let submitted: SubmittedReview | null = null;
    let stopped = '';
    while (!submitted) {
      if (turns >= review.maxTurns) {
        stopped = `it gave no verdict within review.max_turns (${review.maxTurns})`;
        break;
      }
      if (input.tokensBefore + tokens.total >= review.budgetTokens) {
        stopped = `its token budget is spent (${input.tokensBefore + tokens.total} of review.budget_tokens ${review.budgetTokens})`;
        break;
      }
      const response = await deps.model.client.chat.completions
        .create(
          { model: review.model, messages: transcript, tools: REVIEW_TOOLS, max_tokens: review.maxOutputTokens },
          { signal: context.cancellationSignal, timeout: config.agent.stallTimeoutMs || config.agent.turnTimeoutMs },
        )
        .catch(classifyModelError);
      turns += 1;
      const usage = response.usage;
      tokens = { input: tokens.input + (usage?.prompt_tokens ?? 0), output: tokens.output + (usage?.completion_tokens ?? 0), total: tokens.total + (usage?.total_tokens ?? 0) };
      const message = response.choices[0]?.message;
      if (!message) throw new Error('the model returned no choices');
      transcript.push({ role: 'assistant', content: message.content ?? null, ...(message.tool_calls?.length ? { tool_calls: message.tool_calls } : {}) });
      if (!message.tool_calls?.length) {
        transcript.push({ role: 'user', content: `Turn ${turns + 1} of ${review.maxTurns}: call submit_review with your verdict.` });
      }
      for (const call of message.tool_calls ?? []) {
        if (call.type !== 'function') continue;
        let content: string;
        try {
          const args = parseArguments(call.function.name, call.function.arguments);
          if (submitted) content = 'ignored: the review was already submitted';
          else if (call.function.name === 'submit_review') {
            submitted = await parseSubmission(mirror, input.headCommit, args);
            content = 'Review recorded.';
          } else content = await runReviewTool(mirror, input.headCommit, call.function.name, args);
        } catch (error) {
          if (!(error instanceof ReviewToolError) && !(error instanceof Error && error.name === 'GitError')) throw error;
          content = `error: ${error.message}`;
        }
        transcript.push({ role: 'tool', tool_call_id: call.id, content });
      }
      context.heartbeat({ turns });
    }
    const kept = await deps.artifacts.putJson(transcript, 'review-transcript');
    if (!submitted && review.required) {
      throw ApplicationFailure.nonRetryable(
        `the required reviewer (review.required) stopped before a verdict: ${stopped}. Nothing lands without it; its conversation is ${kept.ref}`,
        'ReviewIncomplete',
      );
    }
    const answer: SubmittedReview = submitted ?? { verdict: 'approve', summary: `The reviewer stopped before a verdict: ${stopped}.`, comments: [] };
    const result: ReviewResult = {
      verdict: submitted ? answer.verdict : 'none',
      ...forHistory(answer),
      required: review.required,
      model,
      turns,
      tokens,
      transcript: { ref: kept.ref, kind: kept.kind, bytes: kept.bytes },
    };
    const newWalkthrough = await deps.artifacts.put(withReview(walkthrough, walkthroughSection(result, answer.comments, input.headCommit)), 'walkthrough');
    // The summary names the walkthrough by where it is: now the reviewed one.
    const oldPath = deps.artifacts.pathOf(input.walkthrough);
    const lines = summaryText.replaceAll(oldPath, deps.artifacts.pathOf(newWalkthrough.ref)).split('\n');
    // After the verdict line and any test-integrity warnings, before the head commit and the checks.
    const at = lines.findIndex((line) => line.startsWith('Head commit: '));
    lines.splice(at < 0 ? lines.length : at, 0, summarySection(result, answer.comments), '');
    const newSummary = await deps.artifacts.put(lines.join('\n'), 'proof-summary');
    const asRef = (s: { ref: string; kind: string; bytes: number }): ArtifactRef => ({ ref: s.ref, kind: s.kind, bytes: s.bytes });
    return { review: result, walkthrough: asRef(newWalkthrough), summary: asRef(newSummary) };
  }

  return { runReview };
}
