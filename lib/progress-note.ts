/**
 * A run's progress note: one Markdown text in the artifact store, rewritten at the end of every round,
 * saying what each round tried, how it ended, what the checks said and what the reviewer or a person
 * asked. Every later round's prompt (and every resumed session) starts with it, so a late round does
 * not repeat an early round's mistake. Pure functions: the activity reads and stores, this writes text.
 */
import type { ReviewComment } from '../workflows/definitions.ts';

/** What the workflow knows about one round when it ends (references, not outputs: the activity reads those). */
export interface ProgressEntry {
  round: number;
  /** How the round ended, one line ("the proof failed (tests exited 1)", "landed as ..."). */
  outcome: string;
  /** What the agent says it did (its finish summary). */
  tried?: string;
  head?: string;
  changed?: string[];
  changedTotal?: number;
  /** The round's checks; a failed one is quoted from its output (`output` is its artifact reference). */
  checks?: Array<{ name: string; required: boolean; passed: boolean; exitCode: number; timedOut: boolean; output: string }>;
  /** Test-integrity warnings of the round's proof. */
  integrity?: string[];
  review?: { verdict: string; required: boolean; summary: string; comments: ReviewComment[] };
  /** What people asked: comments delivered at the round's start, a rejection of its proof. */
  people?: Array<{ by: string; text: string; kind: 'comment' | 'rejection' }>;
}

/** Rounds kept in full; older ones shrink to their heading line. */
export const FULL_ROUNDS = 6;
const TRIED_CHARS = 800;
const TEXT_CHARS = 600;
const OUTPUT_LINES = 12;

const HEADER_INTRO = 'Cadenza writes this note at the end of every round of this run and starts every later round, and every resumed session, with it.';
const EARLIER = '## Earlier rounds';

const cap = (text: string, chars: number) => {
  const clean = text.trim();
  return clean.length > chars ? `${clean.slice(0, chars)} [...]` : clean;
};
const oneLine = (text: string, chars: number) => cap(text.replace(/\s+/g, ' '), chars);
const fence = (text: string) => text.replaceAll('```', "'''");

/** Where a failure report starts in common test runners' output (node's TAP, jest, vitest, pytest, go, cargo, mocha). */
const FAILURE_START = /^\s*(not ok\b|FAIL\b|FAILED\b|---\s*FAIL|[✖×✗]|\d+\) |E\s{2,}|panicked at|error(\[|:)|\w*Error\b)/i;

/**
 * What a failed check said, from its stored report (`$ cmd`, header lines, `--- stdout ---`, `--- stderr ---`):
 * the first failure the output reports and the lines after it, else its last lines.
 */
export function checkOutputTail(report: string, lines = OUTPUT_LINES): string {
  const stdoutAt = report.indexOf('--- stdout ---\n');
  const body = stdoutAt >= 0 ? report.slice(stdoutAt) : report;
  const kept = body.split('\n').filter((line) => line.trim() && line !== '--- stdout ---' && line !== '--- stderr ---')
    .map((line) => (line.length > 300 ? `${line.slice(0, 300)} [...]` : line));
  const start = kept.findIndex((line) => FAILURE_START.test(line));
  if (start < 0 || start >= kept.length - lines) return kept.slice(-lines).join('\n');
  return [...kept.slice(start, start + lines), '[...]'].join('\n');
}

/** One round's section. `outputs` holds the output tails of the failed checks, by name. */
export function renderEntry(entry: ProgressEntry, outputs: Record<string, string> = {}): string {
  const lines = [`## Round ${entry.round}: ${oneLine(entry.outcome, 200)}`];
  for (const person of entry.people?.filter((p) => p.kind === 'comment') ?? []) lines.push(`- ${person.by} commented before this round: "${oneLine(person.text, TEXT_CHARS)}"`);
  if (entry.tried) lines.push(`- Tried: ${oneLine(entry.tried, TRIED_CHARS)}`);
  if (entry.head) {
    const changed = entry.changed ?? [];
    const more = (entry.changedTotal ?? changed.length) - Math.min(changed.length, 12);
    lines.push(`- Work: head \`${entry.head.slice(0, 12)}\`; changed ${changed.length ? changed.slice(0, 12).map((file) => `\`${file}\``).join(', ') : 'nothing'}${more > 0 ? ` and ${more} more` : ''}`);
  }
  if (entry.checks?.length) {
    const verdict = (check: NonNullable<ProgressEntry['checks']>[number]) =>
      check.passed ? `passed \`${check.name}\`` : `FAILED \`${check.name}\`${check.required ? '' : ' (optional)'} (exit ${check.exitCode}${check.timedOut ? ', timed out' : ''})`;
    lines.push(`- Checks: ${entry.checks.map(verdict).join(', ')}`);
    for (const check of entry.checks.filter((c) => !c.passed)) {
      const tail = outputs[check.name];
      if (tail) lines.push(`  The end of \`${check.name}\`'s output:`, '  ```', ...fence(tail).split('\n').map((line) => `  ${line}`), '  ```');
    }
  }
  for (const warning of entry.integrity ?? []) lines.push(`- Test integrity: ${oneLine(warning, 300)}`);
  if (entry.review) {
    const { verdict, required, summary, comments } = entry.review;
    const said = verdict === 'approve' ? 'approved' : verdict === 'request_changes' ? 'requested changes' : 'gave no verdict';
    lines.push(`- The reviewer ${said}${required ? ' (required)' : ''}: ${oneLine(summary, TEXT_CHARS) || '(no summary)'}`);
    for (const c of comments.slice(0, 20)) lines.push(`  - \`${c.file}:${c.line}\`: ${oneLine(c.text, 300)}`);
    if (comments.length > 20) lines.push(`  - ... and ${comments.length - 20} more comments (the walkthrough has them all)`);
  }
  for (const person of entry.people?.filter((p) => p.kind === 'rejection') ?? []) lines.push(`- ${person.by} rejected landing: "${oneLine(person.text, TEXT_CHARS)}"`);
  return lines.join('\n');
}

/** Splits a note into its round sections (by their `## Round N` headings) and its collapsed earlier rounds. */
function sections(note: string): { earlier: string[]; rounds: string[] } {
  const earlier: string[] = [];
  const rounds: string[] = [];
  let current: string[] | null = null;
  let inEarlier = false;
  for (const line of note.split('\n')) {
    if (line.startsWith('## Round ')) {
      if (current) rounds.push(current.join('\n').trimEnd());
      current = [line];
      inEarlier = false;
    } else if (line === EARLIER) {
      if (current) rounds.push(current.join('\n').trimEnd());
      current = null;
      inEarlier = true;
    } else if (inEarlier && line.startsWith('- Round ')) {
      earlier.push(line);
    } else if (current) {
      current.push(line);
    }
  }
  if (current) rounds.push(current.join('\n').trimEnd());
  return { earlier, rounds };
}

/**
 * The note with `section` as its latest round: a section for the same round replaces it (a retried
 * write), and beyond FULL_ROUNDS the oldest rounds shrink to one line each.
 */
export function appendEntry(previous: string | null, issue: { identifier: string; title: string }, section: string): string {
  const { earlier, rounds } = previous ? sections(previous) : { earlier: [], rounds: [] };
  const heading = section.split('\n')[0]!;
  const round = /^## Round (\d+):/.exec(heading)?.[1];
  const kept = rounds.filter((text) => /^## Round (\d+):/.exec(text)?.[1] !== round);
  kept.push(section.trimEnd());
  while (kept.length > FULL_ROUNDS) {
    const oldest = kept.shift()!;
    const tried = /^- Tried: (.*)$/m.exec(oldest)?.[1];
    earlier.push(`- ${oldest.split('\n')[0]!.slice(3)}${tried ? `. Tried: ${oneLine(tried, 200)}` : ''}`);
  }
  return [
    `# Progress note: ${issue.identifier}: ${oneLine(issue.title, 200)}`,
    '',
    HEADER_INTRO,
    '',
    ...(earlier.length ? [EARLIER, ...earlier, ''] : []),
    kept.join('\n\n'),
    '',
  ].join('\n');
}

/** Lines of an entry the excerpt keeps: what was tried and what the reviewer or people said. */
const EXCERPT_LINE = /^- (Tried: |The reviewer |\S.* (rejected landing|commented before this round): )/;

/**
 * The latest round's entry on one line, for the status (history carries the note's reference and this):
 * how it ended, what was tried, what the reviewer and people said.
 */
export function noteExcerpt(note: string, chars = 300): string {
  const latest = sections(note).rounds.at(-1);
  if (!latest) return '';
  const [heading, ...rest] = latest.split('\n');
  const said = rest.filter((line) => EXCERPT_LINE.test(line)).map((line) => line.slice(2).trim());
  return oneLine([`${heading!.replace(/^## /, '')}.`, ...said].join(' '), chars);
}

/** What a session is started with when the run has a note: the note, then the round's own feedback. */
export function primeWithNote(note: string, feedback: string | null): string {
  return [
    "Cadenza's progress note for this issue follows: what earlier rounds tried, how they ended, what the checks said and what the reviewer and people asked. Read it first, and do not repeat what already failed.",
    '',
    note.trimEnd(),
    ...(feedback ? ['', '---', '', feedback] : []),
  ].join('\n');
}
