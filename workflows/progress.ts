/**
 * The progress note's entry for a round, from what the workflow knows when the round ends
 * (deterministic; the note is written by an activity, activities/progress.ts). References only:
 * the activity reads the failed checks' output.
 */
import type { ProgressEntry } from '../lib/progress-note.ts';
import type { ProofResult } from './definitions.ts';

export type { ProgressEntry };

const cap = (text: string, chars: number) => (text.length > chars ? `${text.slice(0, chars)} [...]` : text);

export function progressEntry(round: number, outcome: string, parts: { tried?: string; proof?: ProofResult; people?: ProgressEntry['people'] }): ProgressEntry {
  const { proof } = parts;
  return {
    round,
    outcome,
    ...(parts.tried ? { tried: cap(parts.tried, 2000) } : {}),
    ...(proof ? {
      head: proof.headCommit,
      changed: proof.changedFiles.slice(0, 12),
      changedTotal: proof.changedFilesTotal ?? proof.changedFiles.length,
      checks: [...proof.checks, ...(proof.baseTests ?? []).map((check) => ({ ...check, name: `${check.name} (the base's tests)` }))]
        .map(({ name, required, passed, exitCode, timedOut, output }) => ({ name, required, passed, exitCode, timedOut, output: output.ref })),
      ...(proof.integrity?.length ? { integrity: proof.integrity.slice(0, 10) } : {}),
      // The note shows the first 20 comments, shortened: history need not carry more of them twice.
      ...(proof.review ? { review: {
        verdict: proof.review.verdict, required: proof.review.required, summary: cap(proof.review.summary, 600),
        comments: proof.review.comments.slice(0, 20).map((c) => ({ ...c, text: cap(c.text, 300) })),
      } } : {}),
    } : {}),
    ...(parts.people?.length ? { people: parts.people.slice(-10).map((person) => ({ ...person, text: cap(person.text, 600) })) } : {}),
  };
}
