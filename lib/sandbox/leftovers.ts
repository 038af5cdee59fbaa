/**
 * Processes the agent or a proof check left running (a dev server started with `&`, a watcher, a fork
 * loop) would otherwise outlive their step. Cadenza ends them by ending their container: the agent's
 * sandbox is killed when its session ends, a checker is removed after its check. What was running is
 * read from the engine (the container's cgroup, which nothing inside can hide from) and reported.
 */
export type StartedBy = 'agent' | 'check';

/** A process Cadenza stopped: who started it and its command line (cut to 200 characters). */
export interface StoppedProcess {
  startedBy: StartedBy;
  command: string;
}

/** History keeps this many; a line says how many more there were. */
export const STOPPED_SHOWN = 20;

export function capStopped(processes: StoppedProcess[]): StoppedProcess[] {
  if (processes.length <= STOPPED_SHOWN) return processes;
  return [...processes.slice(0, STOPPED_SHOWN), { startedBy: processes[0]!.startedBy, command: `... and ${processes.length - STOPPED_SHOWN} more` }];
}
