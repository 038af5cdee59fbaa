/**
 * The post-merge watch on the workflow's side, as deterministic helpers: what the status keeps of a
 * pass, the words for the workpad and the issue, and what the approver of a revert reads.
 */
import type { WatchConfig } from '../lib/contract/index.ts';
import type { ProofCheck, WatchCheck, WatchStatus } from './definitions.ts';

/** The marker line that makes the regression comment for a landed commit once only. */
export const regressionMarker = (commit: string) => `<!-- cadenza:regression ${commit} -->`;

export const keepCheck = (check: ProofCheck): WatchCheck => ({
  name: check.name, passed: check.passed, exitCode: check.exitCode, timedOut: check.timedOut, commit: check.commit ?? '', output: check.output, excerpt: check.excerpt,
});

const short = (commit: string) => commit.slice(0, 12);
const names = (checks: Array<{ name: string }>) => checks.map((check) => `\`${check.name}\``).join(', ');
const failedOf = (checks: WatchCheck[]) => checks.filter((check) => !check.passed);
const exit = (check: WatchCheck) => `exit ${check.exitCode}${check.timedOut ? ', timed out' : ''}`;

/** "once" or "every 1 h for 1 d". */
export function watchSchedule(watch: WatchConfig, duration: (ms: number) => string): string {
  return watch.everyMs ? `every ${duration(watch.everyMs)} for ${duration(watch.windowMs)}` : 'once';
}

export function watchingEvent(watch: WatchConfig, commit: string, target: string, duration: (ms: number) => string): string {
  return `Watching \`${short(commit)}\` on \`${target}\`: ${names(watch.commands)}, ${watchSchedule(watch, duration)}.`;
}

export function passedEvent(state: WatchStatus): string {
  return `Watch passed: ${names(state.checks)} passed on \`${short(state.commit)}\` ${state.runs === 1 ? 'once' : `${state.runs} times`}; the watch is over.`;
}

export function failingBeforeEvent(state: WatchStatus): string {
  const failed = failedOf(state.checks);
  return `Watch: ${names(failed)} failed on \`${short(state.commit)}\` and on its first parent \`${short(state.parent ?? '')}\` too: the target was failing before this landing, so nothing is reverted.`;
}

/**
 * The comment that reopens the issue: which check broke, on which commit, that it passed before, the
 * end of its output and where the whole output is. The next run of the issue reads it.
 */
export function regressionComment(state: WatchStatus, input: { identifier: string; target: string; reopenState: string; revert: string }): string {
  const failed = failedOf(state.checks).filter((check) => state.parentChecks.some((before) => before.name === check.name && before.passed));
  return [
    regressionMarker(state.commit),
    `Cadenza's post-merge watch found a regression: ${names(failed)} ${failed.length === 1 ? 'fails' : 'fail'} on \`${state.commit}\`, the landing of ${input.identifier} on \`${input.target}\`, and ${failed.length === 1 ? 'passes' : 'pass'} on its first parent \`${state.parent}\` (\`${input.target}\` before the landing).`,
    '',
    `${input.revert} The issue is back in ${input.reopenState} to be done again without breaking ${failed.length === 1 ? 'it' : 'them'}.`,
    ...failed.flatMap((check) => [
      '',
      `**\`${check.name}\`** on \`${short(state.commit)}\` (${exit(check)}; whole output: ${check.output.ref}):`,
      '```',
      check.excerpt,
      '```',
    ]),
  ].join('\n');
}

/** What the approver of a revert reads in the UI's current details (Markdown). */
export function revertDetails(state: WatchStatus, input: { identifier: string; workflowId: string; namespace: string; target: string }): string {
  const revert = state.revert!;
  const commit = revert.commit!;
  const failed = failedOf(state.checks);
  const row = (check: WatchCheck, where: string) => `| ${check.passed ? 'pass' : '**FAIL**'} | \`${check.name.replace(/[|`]/g, ' ')}\` | ${where} \`${short(check.commit)}\` | ${exit(check)} |`;
  return [
    '### A regression after landing: approve its revert',
    `${names(failed)} failed on the landed commit \`${state.commit}\` and passed on its first parent \`${state.parent}\`.`,
    '',
    '| result | check | on | |',
    '|---|---|---|---|',
    ...state.checks.map((check) => row(check, 'landed')),
    ...state.parentChecks.map((check) => row(check, 'before')),
    ...revert.checks.map((check) => row(check, 'revert')),
    '',
    `Revert commit: \`${commit}\` on \`${input.target}\` at \`${short(revert.onto)}\`${revert.checks.length ? '' : " (its tree is the first parent's, where the checks passed)"}.`,
    '',
    '**Approve the revert** (Send a Signal or Update `approveLanding`, or run one of these):',
    '```',
    JSON.stringify({ by: 'YOUR-NAME', commit }),
    `npx cadenza approve ${input.identifier} --by YOUR-NAME --commit ${short(commit)}`,
    `temporal workflow signal --namespace ${input.namespace} --workflow-id ${input.workflowId} --name approveLanding --input '${JSON.stringify({ by: 'YOUR-NAME', commit })}'`,
    '```',
    '**Keep the landing** (signal `rejectLanding` with why; nothing is reverted):',
    '```',
    `npx cadenza reject ${input.identifier} --by YOUR-NAME --feedback "why it stays"`,
    '```',
  ].join('\n');
}
