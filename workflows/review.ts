/**
 * The reviewer's verdict on the workflow's side (deterministic; used by the issue workflow): the words
 * the workpad, the approver's details and the agent's next round get. The review itself runs in an
 * activity (activities/review.ts).
 */
import type { ProofResult, ReviewResult } from './definitions.ts';

const verdictWords = (review: ReviewResult) =>
  review.verdict === 'approve' ? 'approved' : review.verdict === 'request_changes' ? 'requested changes' : 'gave no verdict';

const count = (review: ReviewResult) => {
  const total = review.commentsTotal ?? review.comments.length;
  return `${total} line comment${total === 1 ? '' : 's'}`;
};

/** Whether the round goes back to the agent: a required reviewer asked for changes to passing work. */
export function changesRequested(proof: ProofResult): boolean {
  return proof.passed && proof.review?.required === true && proof.review.verdict === 'request_changes';
}

/** The workpad's words after "Cadenza proof for round N: passed". */
export function reviewEvent(proof: ProofResult, nextRound: number): string {
  const review = proof.review;
  if (!review) return '';
  return `; the reviewer ${verdictWords(review)} (${count(review)})${changesRequested(proof) ? `: round ${nextRound} starts with the comments` : ''}`;
}

/** How a round the reviewer sent back ended (for the note and the agent.max_rounds error). */
export function reviewOutcome(review: ReviewResult): string {
  return `the required reviewer requested changes (${count(review)})`;
}

/** What the agent's next round is told. */
export function reviewFeedback(review: ReviewResult, round: number, head: string): string {
  const more = (review.commentsTotal ?? review.comments.length) - review.comments.length;
  return [
    `Cadenza's reviewer requested changes to round ${round} (commit ${head.slice(0, 12)}) before it can land. The checks passed; the reviewer says:`,
    '',
    review.summary || '(no summary)',
    ...(review.comments.length ? ['', 'Line comments (line numbers of the files as of that commit):', ...review.comments.map((c) => `- ${c.file}:${c.line}: ${c.text}`)] : []),
    ...(more > 0 ? [`- ... and ${more} more in the round's walkthrough`] : []),
    '',
    'Address them, run the checks yourself, and call finish again.',
  ].join('\n');
}

/** The approver's details (Markdown): the verdict and the comments, right after any test-integrity warnings. */
export function reviewDetails(review: ReviewResult | undefined): string[] {
  if (!review) return [];
  const shown = review.comments.slice(0, 20);
  const more = (review.commentsTotal ?? review.comments.length) - shown.length;
  return [
    `### Reviewer: ${review.verdict === 'approve' ? 'approved' : review.verdict === 'request_changes' ? 'changes requested' : 'no verdict'}${review.required ? ' (required)' : ''}`,
    review.summary.replace(/\s+/g, ' ') || '(no summary)',
    ...shown.map((c) => `- \`${c.file}:${c.line}\` ${c.text.replace(/\s+/g, ' ')}`),
    ...(more > 0 ? [`- ... and ${more} more (the walkthrough has them all)`] : []),
    `_${review.model}, ${review.turns} turn${review.turns === 1 ? '' : 's'}, ${review.tokens.total} tokens; read-only on the head commit_`,
    '',
  ];
}
