/**
 * Impact notices on the receiving run's side (deterministic; used by the issue workflow): checking a
 * notice that arrived as a signal, keeping it small, and the words the workpad, the approver and the
 * agent's next prompt get.
 */
import { HISTORY_CAPS, type ImpactNotice, type IssueStatus } from './definitions.ts';

type KeptNotice = NonNullable<IssueStatus['impact']>[number];

const isStrings = (value: unknown): value is string[] => Array.isArray(value) && value.every((item) => typeof item === 'string');

/** Why an impactNotice payload is not acceptable, or null when it is. */
export function invalidImpactNotice(payload: unknown): string | null {
  const value = payload as Partial<ImpactNotice> | null;
  const shape = 'impactNotice expects { "issue", "workflowId", "commit": "<landed commit>", "targetBranch", "files": ["<path>", ...], "symbols"?: [{ "file", "from", "names": [...], "changedBy": "landed" | "run" }] }';
  if (typeof value !== 'object' || value === null) return shape;
  for (const key of ['issue', 'workflowId', 'targetBranch'] as const) {
    if (typeof value[key] !== 'string' || !value[key].trim()) return `${shape}; "${key}" must be a non-empty string`;
  }
  if (typeof value.commit !== 'string' || !/^[0-9a-f]{7,64}$/.test(value.commit)) return `${shape}; "commit" must be a commit id (7 to 64 hex digits)`;
  if (value.title !== undefined && typeof value.title !== 'string') return `${shape}; "title" must be a string when given`;
  if (!isStrings(value.files)) return `${shape}; "files" must be a list of paths`;
  if (value.symbols !== undefined) {
    if (!Array.isArray(value.symbols)) return `${shape}; "symbols" must be a list when given`;
    const bad = value.symbols.findIndex((link) => typeof link !== 'object' || link === null || typeof link.file !== 'string' || typeof link.from !== 'string' || !isStrings(link.names) || (link.changedBy !== 'landed' && link.changedBy !== 'run'));
    if (bad >= 0) return `${shape}; symbols[${bad}] needs string file and from, a list of names, and changedBy "landed" or "run"`;
  }
  if (!value.files.length && !value.symbols?.length) return `${shape}; it names no file and no symbol, so it concerns nothing here`;
  return null;
}

/** The notice as the status keeps it: lists capped (their totals kept), with the round it arrived in. */
export function keepNotice(notice: ImpactNotice, round: number): KeptNotice {
  const symbols = notice.symbols?.slice(0, HISTORY_CAPS.noticeSymbols).map((link) => ({ ...link, names: link.names.slice(0, HISTORY_CAPS.noticeNames) }));
  return {
    issue: notice.issue,
    ...(notice.title !== undefined ? { title: notice.title.slice(0, 200) } : {}),
    workflowId: notice.workflowId,
    commit: notice.commit,
    targetBranch: notice.targetBranch,
    files: notice.files.slice(0, HISTORY_CAPS.noticeFiles),
    filesTotal: Math.max(notice.filesTotal ?? 0, notice.files.length),
    ...(symbols?.length ? { symbols, symbolsTotal: Math.max(notice.symbolsTotal ?? 0, notice.symbols!.length) } : {}),
    receivedInRound: round,
  };
}

const listed = (items: string[], total: number, max = 10) =>
  `${items.slice(0, max).join(', ')}${total > Math.min(items.length, max) ? ` and ${total - Math.min(items.length, max)} more` : ''}`;

/** What the notice says the two share, in one line: "files it changed too: a, b; a.js imports x from b.js". */
function overlap(notice: ImpactNotice, self: string): string {
  const parts: string[] = [];
  if (notice.files.length) parts.push(`files ${self} changed too: ${listed(notice.files, notice.filesTotal ?? notice.files.length)}`);
  for (const link of (notice.symbols ?? []).slice(0, 5)) {
    const names = link.names.includes('*') ? 'everything' : link.names.join(', ');
    parts.push(link.changedBy === 'landed'
      ? `${link.file} (${self === 'this run' ? "this run's" : 'yours'}) imports ${names} from ${link.from}, which it changed`
      : `its ${link.file} imports ${names} from ${link.from}, which ${self} changes`);
  }
  const more = (notice.symbolsTotal ?? notice.symbols?.length ?? 0) - Math.min(notice.symbols?.length ?? 0, 5);
  if (more > 0) parts.push(`${more} more module link(s)`);
  return parts.join('; ');
}

const short = (commit: string) => commit.slice(0, 12);

/** The workpad's log line for a notice that arrived. */
export function noticeEvent(notice: ImpactNotice): string {
  return `Impact notice: ${notice.issue} landed as \`${short(notice.commit)}\` on \`${notice.targetBranch}\`, touching this run's work (${overlap(notice, 'this run')}). The next round's prompt carries it; landing merges onto the new \`${notice.targetBranch}\` and runs the checks again.`;
}

/** The next round's feedback for notices the agent has not been told yet. */
export function noticeFeedback(notices: ImpactNotice[]): string {
  const target = notices[0]!.targetBranch;
  return [
    `While you worked, ${notices.length === 1 ? 'this change' : 'these changes'} landed on ${target} and touch what you are working on:`,
    ...notices.map((notice) => `- ${notice.issue}${notice.title ? ` ("${notice.title}")` : ''}, commit ${short(notice.commit)}: ${overlap(notice, 'you')}`),
    '',
    `Bring your branch up to date with it: \`git merge origin/${target}\` (origin/${target} is ${target} as it is now; merge rather than rebase, because Cadenza keeps your earlier commits), resolve anything that conflicts, make sure your change still fits what landed, and run the checks again before you call finish.`,
  ].join('\n');
}

/** For the approver's details: what landed since the run's work started that touches it. */
export function noticeDetails(notices: KeptNotice[]): string[] {
  if (!notices.length) return [];
  return [
    `### ${notices[0]!.targetBranch} moved under this work`,
    ...notices.map((notice) => `- ${notice.issue} landed as \`${short(notice.commit)}\`: ${overlap(notice, 'this run')}`),
    '',
    'Approving lands the merge onto the new tip after the required checks pass on it again; rejecting starts a round whose prompt carries this.',
    '',
  ];
}

/** The landing run's log line: which open runs it told. */
export function toldEvent(told: Array<{ identifier: string; files: string[]; symbols: number }>, targetBranch: string): string {
  return `Told ${told.length} open run(s) that this landing on \`${targetBranch}\` touches their work: ${told.map((run) => `${run.identifier} (${[
    run.files.length ? listed(run.files, run.files.length, 5) : '',
    run.symbols ? `${run.symbols} module link(s)` : '',
  ].filter(Boolean).join('; ')})`).join(', ')}.`;
}
