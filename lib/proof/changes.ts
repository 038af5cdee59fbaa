/**
 * Changed files with their status, read from `git diff --raw -z` in Cadenza's mirror: what the
 * approver needs beyond names (a deleted test, a new executable, a symlink, a renamed file).
 */
export type ChangeStatus = 'added' | 'modified' | 'deleted' | 'renamed' | 'copied' | 'type-changed';

export interface FileChange {
  path: string;
  status: ChangeStatus;
  /** The old path of a rename or copy. */
  from?: string;
  /** What the mode says, when it is worth saying: a new executable, a symlink, a submodule. */
  note?: string;
}

const STATUS: Record<string, ChangeStatus> = { A: 'added', M: 'modified', D: 'deleted', R: 'renamed', C: 'copied', T: 'type-changed' };
const KIND: Record<string, string> = { '120000': 'symlink', '160000': 'submodule (gitlink)' };

function modeNote(oldMode: string, newMode: string): string | undefined {
  if (newMode === '000000') return undefined;
  if (KIND[newMode] && oldMode !== newMode) return KIND[newMode];
  if (newMode === '100755' && oldMode !== '100755') return oldMode === '000000' ? 'executable' : 'made executable';
  if (oldMode === '100755' && newMode === '100644') return 'no longer executable';
  return undefined;
}

export function parseRawDiff(raw: string): FileChange[] {
  const fields = raw.split('\0');
  const changes: FileChange[] = [];
  for (let i = 0; i < fields.length; i++) {
    const header = fields[i]!;
    if (!header.startsWith(':')) continue;
    const [oldMode = '', newMode = '', , , code = ''] = header.slice(1).split(' ');
    const status = STATUS[code[0] ?? ''] ?? 'modified';
    const twoPaths = status === 'renamed' || status === 'copied';
    const from = twoPaths ? fields[++i]! : undefined;
    const path = fields[++i]!;
    const note = modeNote(oldMode, newMode);
    changes.push({ path, status, ...(from !== undefined ? { from } : {}), ...(note ? { note } : {}) });
  }
  return changes;
}

/** One line per change, for the walkthrough and the approver's summary. */
export function describeChange(change: FileChange): string {
  const what = change.from ? `${change.status} ${change.from} -> ${change.path}` : `${change.status} ${change.path}`;
  return change.note ? `${what} (${change.note})` : what;
}
