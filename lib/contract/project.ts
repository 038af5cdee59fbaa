/**
 * A project's identity: which tracker and which repository a contract works on. It is part of every
 * workflow id, schedule id and Docker name, so two projects (or two installations of one, whose
 * local trackers and repositories live in different folders) never touch each other's runs.
 */
import { createHash } from 'node:crypto';
import type { TrackerConfig } from './types.ts';

/** What `project.id` may be: it becomes part of workflow ids and Docker object names. */
export const PROJECT_ID = /^[a-z0-9][a-z0-9-]{0,39}$/;
export const PROJECT_ID_ALLOWED = 'lower-case letters, digits and "-", starting with a letter or digit, at most 40 characters';

/** Where the tracker's issues live, as precisely as the contract says it. */
function trackerScope(tracker: TrackerConfig): string {
  switch (tracker.kind) {
    case 'local':
      return `local:${tracker.path}`;
    case 'github':
      return `github:${tracker.endpoint ?? ''}:${tracker.repository?.toLowerCase()}`;
    default:
      return `${tracker.kind}:${tracker.endpoint ?? ''}:${tracker.projectSlug ?? ''}:${tracker.assignee ?? ''}`;
  }
}

/**
 * The derived id: the repository's name (readable in the UI and `docker ps`) and a hash of the tracker
 * scope and the repository URL, e.g. `demo-9c1f03ab`.
 */
export function derivedProjectId(tracker: TrackerConfig, repoUrl: string): string {
  const name = repoUrl.replace(/\.git$/, '').replace(/[/\\]+$/, '').split(/[/\\:]/).at(-1) ?? '';
  const readable = name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 24) || 'project';
  const hash = createHash('sha256').update(trackerScope(tracker)).update('\n').update(repoUrl).digest('hex').slice(0, 8);
  return `${readable}-${hash}`;
}
