/**
 * The agent's work leaves its sandbox only as git objects, made in a fresh exporter container that
 * mounts the workspace read-only: no agent process is alive, nothing of the agent's repository
 * configuration (hooks, fsmonitor, filters, includes) applies, and Cadenza's git directory is its own.
 * The agent's branch is taken when it descends from where the round started; the files it left
 * uncommitted are committed on top by Cadenza. The host then fetches the result with object checks.
 */
import type Docker from 'dockerode';
import type { SandboxLimits } from './container.ts';
import { CADENZA_DIR, waitForExit, withFreshContainer } from './fresh.ts';
import { getFile } from './workspace.ts';

const AGENT_MOUNT = '/agent';
/** Work bigger than this (as a git bundle) is refused: it is not a code change a person can review. */
export const MAX_WORK_BYTES = 256 * 1024 * 1024;

export class ExportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExportError';
  }
}

export interface ExportedWork {
  head: string;
  /** 'agent': the agent's branch head (descends from the round start); 'round-start': its files on the round's start, because its branch did not. */
  from: 'agent' | 'round-start';
  /** True when Cadenza committed files the agent left uncommitted. */
  committed: boolean;
  /** The new objects, as a bundle of `refs/cadenza/work` with the round start as prerequisite; null when nothing changed. */
  bundle: Buffer | null;
}

const NEEDS_START = 'cadenza-export-needs-start';
const NEEDS_START_EXIT = 4;

const SCRIPT = String.raw`
set -eu
A=${AGENT_MOUNT}/repo/.git
W=${AGENT_MOUNT}/repo
G=${CADENZA_DIR}/export.git
step() { STEP="$1"; }
trap 'echo "cadenza-export-failed: $STEP" >&2' EXIT
step "reading the round start"
git init --quiet --bare "$G"
[ -d "$W" ] || { echo "the repository folder $W is gone" >&2; exit 3; }
# The agent's objects are read, never trusted: the host checks every object it receives, and has the
# round start's own. Only when the agent's store lacks the round start does Cadenza send it in.
if [ -d "$A/objects" ] && [ ! -L "$A" ]; then echo "$A/objects" > "$G/objects/info/alternates"; fi
if ! git --git-dir="$G" cat-file -e "$START^{commit}" 2>/dev/null; then
  if [ ! -f ${CADENZA_DIR}/start.bundle ]; then trap - EXIT; echo ${NEEDS_START}; exit ${NEEDS_START_EXIT}; fi
  git --git-dir="$G" fetch --quiet ${CADENZA_DIR}/start.bundle "+$START_REF:refs/cadenza/start"
fi
step "reading the agent's branch"
agent_head() {
  [ -d "$A" ] && [ ! -L "$A" ] || return 0
  h=$(head -c 200 "$A/HEAD" 2>/dev/null) || return 0
  case "$h" in
    "ref: refs/heads/"*) r=$(printf '%s' "$h" | head -n 1 | cut -c6-) ;;
    *) printf '%s' "$h" | head -n 1; return 0 ;;
  esac
  case "$r" in *..*) return 0 ;; esac
  if [ -f "$A/$r" ]; then head -n 1 "$A/$r"; return 0; fi
  [ -f "$A/packed-refs" ] && awk -v r="$r" '$2 == r { print $1; exit }' "$A/packed-refs"
  return 0
}
H=$(agent_head | tr -cd '0-9a-f' | cut -c1-40)
P=$START
FROM=round-start
if [ ${"$"}{#H} -eq 40 ] && git --git-dir="$G" cat-file -e "$H^{commit}" 2>/dev/null && git --git-dir="$G" merge-base --is-ancestor "$START" "$H" 2>/dev/null; then
  P=$H
  FROM=agent
fi
step "committing the files the agent left"
export GIT_INDEX_FILE=${CADENZA_DIR}/index
cd "$W"
git --git-dir="$G" --work-tree="$W" read-tree "$P"
git --git-dir="$G" --work-tree="$W" add -A .
T=$(git --git-dir="$G" write-tree)
if [ "$T" = "$(git --git-dir="$G" rev-parse "$P^{tree}")" ]; then N=$P; C=no; else N=$(git --git-dir="$G" commit-tree "$T" -p "$P" < ${CADENZA_DIR}/message); C=yes; fi
step "bundling the work"
if [ "$N" != "$START" ]; then
  git --git-dir="$G" update-ref refs/cadenza/work "$N"
  git --git-dir="$G" bundle create --quiet ${CADENZA_DIR}/work.bundle refs/cadenza/work "^$START"
  S=$(stat -c %s ${CADENZA_DIR}/work.bundle)
else
  S=0
fi
trap - EXIT
echo "$FROM $C $N $S"
`;

export interface ExportInput {
  runKey: string;
  limits: SandboxLimits;
  /** Where the round started (a commit the host mirror has), and a bundle of it for when the agent's repository lacks it. */
  roundStart: string;
  startBundle: () => Promise<Buffer>;
  /** The ref that holds the round start in `startBundle`. */
  startRef: string;
  message: string;
  timeoutMs?: number;
  /** The export starts once this settles (the agent's container being stopped). */
  startAfter?: Promise<unknown>;
}

export async function exportWork(docker: Docker, input: ExportInput): Promise<ExportedWork> {
  return (await exportOnce(docker, input, null)) ?? (await exportOnce(docker, input, await input.startBundle()))!;
}

/** One export; null when the agent's repository lacks the round start and no bundle of it was given. */
async function exportOnce(docker: Docker, input: ExportInput, startBundle: Buffer | null): Promise<ExportedWork | null> {
  return withFreshContainer(docker, {
    runKey: input.runKey,
    role: 'exporter',
    limits: input.limits,
    // A user the agent is not; it reads the agent's files whatever their mode, and writes only its own folder.
    user: 'root',
    capAdd: ['DAC_READ_SEARCH'],
    workspaceReadOnlyAt: AGENT_MOUNT,
    files: { ...(startBundle ? { 'start.bundle': startBundle } : {}), message: input.message, gitconfig: '[safe]\n\tdirectory = *\n' },
    command: ['sh', '-c', SCRIPT],
    env: {
      START: input.roundStart,
      START_REF: input.startRef,
      HOME: '/nonexistent',
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: `${CADENZA_DIR}/gitconfig`,
      GIT_TERMINAL_PROMPT: '0',
      LC_ALL: 'C',
      GIT_AUTHOR_NAME: 'Cadenza Agent',
      GIT_AUTHOR_EMAIL: 'agent@cadenza.invalid',
      GIT_COMMITTER_NAME: 'Cadenza',
      GIT_COMMITTER_EMAIL: 'cadenza@cadenza.invalid',
    },
    ...(input.startAfter ? { startAfter: input.startAfter } : {}),
  }, async (box) => {
    // The script is the container's own command: it runs once, and the result is read after it exits.
    const result = await waitForExit(docker, box.container, input.timeoutMs ?? 300_000);
    if (result.timedOut) throw new ExportError(`exporting the agent's work took longer than ${Math.round((input.timeoutMs ?? 300_000) / 1000)} s and was stopped`);
    if (result.exitCode === NEEDS_START_EXIT && result.stdout.includes(NEEDS_START)) return null;
    if (result.exitCode !== 0) {
      const step = /cadenza-export-failed: (.*)/.exec(result.stderr)?.[1] ?? 'running';
      const said = result.stderr.replace(/cadenza-export-failed: .*\n?/, '').trim().split('\n').filter(Boolean).at(-1) ?? `exit ${result.exitCode}`;
      throw new ExportError(`exporting the agent's work failed while ${step}: ${said}`);
    }
    const [from, committed, head, size] = result.stdout.trim().split('\n').at(-1)!.split(' ');
    if (!head || !/^[0-9a-f]{40}$/.test(head)) throw new ExportError(`exporting the agent's work gave no commit: ${result.stdout.trim().slice(-200)}`);
    const bytes = Number(size);
    if (bytes > MAX_WORK_BYTES) {
      throw new ExportError(`the agent's work is ${Math.round(bytes / 1024 / 1024)} MiB as git objects, more than the ${MAX_WORK_BYTES / 1024 / 1024} MiB Cadenza takes out of a sandbox (large generated or binary files?)`);
    }
    const bundle = bytes > 0 ? await getFile(box, `${CADENZA_DIR}/work.bundle`) : null;
    return { head, from: from === 'agent' ? 'agent' : 'round-start', committed: committed === 'yes', bundle };
  });
}
