/** What `cadenza status ID` prints of a run's reviewer verdicts and its progress note. */
import { stateDir } from '../../infra/paths.ts';
import { describeStore, openArtifactStore, storeConfigFrom } from '../../lib/artifacts-config.ts';
import type { IssueStatus, ProofResult } from '../../workflows/definitions.ts';

const flat = (text: string) => text.replace(/\s+/g, ' ').trim();

/** A proof's review: the verdict line and its line comments. */
export function reviewLines(proof: ProofResult): string[] {
  const review = proof.review;
  if (!review) return [];
  const verdict = review.verdict === 'approve' ? 'approved' : review.verdict === 'request_changes' ? 'changes requested' : 'no verdict';
  const more = (review.commentsTotal ?? review.comments.length) - review.comments.length;
  return [
    `    review: ${verdict}${review.required ? ' (required)' : ''} by ${review.model}, ${review.turns} turn${review.turns === 1 ? '' : 's'}, ${review.tokens.total} tokens: ${flat(review.summary) || '(no summary)'}`,
    ...review.comments.map((c) => `      ${c.file}:${c.line}: ${flat(c.text)}`),
    ...(more > 0 ? [`      ... and ${more} more (in the walkthrough)`] : []),
  ];
}

/**
 * The run's progress note: its reference and excerpt (from the status), then the note itself from the
 * artifact store the workers use (this machine's state folder, or CADENZA_STORE), when it is there.
 */
export async function progressNoteLines(status: IssueStatus): Promise<string[]> {
  const note = status.progress;
  if (!note) return ['  progress    no note yet (written at the end of the first round)'];
  const lines = [`  progress    note ${note.ref}, as of round ${note.round}: ${note.excerpt}`];
  const config = storeConfigFrom(process.env, stateDir());
  const store = openArtifactStore(config);
  try {
    const text = await store.getText(note.ref);
    lines.push(...text.trimEnd().split('\n').map((line) => `    | ${line}`));
  } catch {
    lines.push(`    (the note itself is not in ${describeStore(config)}; run this where the worker keeps its state, or with CADENZA_STORE set as the workers have it)`);
  } finally {
    store.close();
  }
  return lines;
}
