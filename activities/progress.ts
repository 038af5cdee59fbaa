/**
 * The run's progress note (lib/progress-note.ts) in the artifact store: written at the end of every
 * round, read into the prompt of every later round and every resumed session. History carries its
 * reference and a short excerpt; the quoted check output is read here, by reference.
 */
import type { ContractSettings } from '../lib/contract/index.ts';
import { appendEntry, checkOutputTail, noteExcerpt, primeWithNote, renderEntry, type ProgressEntry } from '../lib/progress-note.ts';
import type { ProgressNoteRef } from '../workflows/definitions.ts';
import type { ActivityDeps } from './deps.ts';

export interface RecordProgressInput {
  workflowId: string;
  contract: ContractSettings;
  identifier: string;
  title: string;
  /** The note so far (null: the run's first). */
  previous: string | null;
  entry: ProgressEntry;
}

/** A stored text this worker cannot read (kept by a host that is gone) is named, not waited for. */
const unreadable = (error: NodeJS.ErrnoException) => error.code === 'ENOENT' || /is not in /.test(error.message);

export function createProgressActivities(deps: ActivityDeps) {
  async function recordProgress(input: RecordProgressInput): Promise<ProgressNoteRef> {
    let previous: string | null = null;
    if (input.previous) {
      previous = await deps.artifacts.getText(input.previous).catch((error: NodeJS.ErrnoException) => {
        if (!unreadable(error)) throw error;
        deps.log?.(`${input.identifier}: the progress note ${input.previous} is not in this worker's artifact store; it starts again`);
        return null;
      });
    }
    const outputs: Record<string, string> = {};
    for (const check of input.entry.checks?.filter((c) => !c.passed) ?? []) {
      const report = await deps.artifacts.getText(check.output).catch((error: NodeJS.ErrnoException) => {
        if (!unreadable(error)) throw error;
        return null;
      });
      if (report) outputs[check.name] = checkOutputTail(report);
    }
    const note = appendEntry(previous, input, renderEntry(input.entry, outputs));
    const stored = await deps.artifacts.put(note, 'progress-note');
    return { ref: stored.ref, excerpt: noteExcerpt(note), round: input.entry.round };
  }

  return { recordProgress };
}

/**
 * A session's feedback with the run's note in front (every runtime takes the round's feedback into its
 * prompt, so each is primed the same way). A note this worker cannot read leaves the feedback as it is.
 */
export async function primedFeedback(deps: ActivityDeps, noteRef: string | null | undefined, feedback: string | null): Promise<string | null> {
  if (!noteRef) return feedback;
  const note = await deps.artifacts.getText(noteRef).catch((error: NodeJS.ErrnoException) => {
    if (!unreadable(error)) throw error;
    deps.log?.(`the progress note ${noteRef} is not in this worker's artifact store; the session starts without it`);
    return null;
  });
  return note ? primeWithNote(note, feedback) : feedback;
}
