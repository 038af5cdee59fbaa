/**
 * Processes the agent's shell commands or the proof checks start and leave running (a dev server
 * started with `&`, a watcher) would otherwise outlive their step: keep a port the checks need, write
 * to the tree while it is committed and proven, or carry over into the next round. Cadenza marks those
 * processes through their environment (inherited by everything they start, daemons included) and
 * stops them, and only them, between steps. Services a hook starts are not marked and are left alone.
 */

/** The environment that marks a process as started by the agent or by a proof check. */
export const STARTED_BY = 'CADENZA_STARTED_BY';
export type StartedBy = 'agent' | 'check';
export const startedByEnv = (by: StartedBy): Record<string, string> => ({ [STARTED_BY]: by });

/** A process Cadenza stopped: who started it and its command line (cut to 200 characters). */
export interface StoppedProcess {
  startedBy: StartedBy;
  command: string;
}

const LINE_PREFIX = '@@cadenza-stopped@@ ';

/**
 * Shell lines (for an exec's `sh -c`; `set -e` safe) that SIGKILL every marked process except the
 * exec's own shell, its `timeout` parent and PID 1, printing one line per process. Two passes catch a
 * child forked while the first ran. Zombies have no readable environment and are skipped.
 */
export const STOP_LEFTOVERS_SCRIPT = [
  'for cadenza_pass in 1 2; do',
  '  for cadenza_proc in /proc/[0-9]*; do',
  '    cadenza_pid=${cadenza_proc#/proc/}',
  '    case "$cadenza_pid" in 1|$$|$PPID) continue ;; esac',
  `    cadenza_by=$(tr '\\000' '\\n' < "$cadenza_proc/environ" 2>/dev/null | sed -n 's/^${STARTED_BY}=//p' | head -n 1) || true`,
  '    [ -n "$cadenza_by" ] || continue',
  `    cadenza_cmd=$(tr '\\000' ' ' < "$cadenza_proc/cmdline" 2>/dev/null | cut -c1-200) || true`,
  `    if kill -KILL "$cadenza_pid" 2>/dev/null; then printf '${LINE_PREFIX}%s %s\\n' "$cadenza_by" "$cadenza_cmd"; fi`,
  '  done',
  'done',
].join('\n');

/** Splits an exec's output into the processes the script above stopped and the rest of the output. */
export function takeStoppedProcesses(output: string): { stopped: StoppedProcess[]; rest: string } {
  const stopped: StoppedProcess[] = [];
  const rest: string[] = [];
  for (const line of output.split('\n')) {
    if (!line.startsWith(LINE_PREFIX)) {
      rest.push(line);
      continue;
    }
    const [by, ...command] = line.slice(LINE_PREFIX.length).split(' ');
    stopped.push({ startedBy: by === 'check' ? 'check' : 'agent', command: command.join(' ').trim() });
  }
  return { stopped, rest: rest.join('\n') };
}
