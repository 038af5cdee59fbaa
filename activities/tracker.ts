/** Tracker write-back activities. Credentials come from the worker's environment, never from input. */
import type { TrackerConfig } from '../lib/contract/index.ts';
import type { ActivityDeps } from './deps.ts';

export function createTrackerActivities(deps: ActivityDeps) {
  return {
    async trackerSetState(input: { tracker: TrackerConfig; issueId: string; state: string }): Promise<void> {
      await deps.tracker(input.tracker).setState(input.issueId, input.state);
    },
    async trackerComment(input: { tracker: TrackerConfig; issueId: string; body: string }): Promise<string> {
      return (await deps.tracker(input.tracker).addComment(input.issueId, input.body)).id;
    },
    /** Posts a stored artifact (a proof summary) as a comment, so its text stays out of history. */
    async trackerCommentArtifact(input: { tracker: TrackerConfig; issueId: string; ref: string }): Promise<string> {
      const body = await deps.artifacts.getText(input.ref);
      return (await deps.tracker(input.tracker).addComment(input.issueId, body)).id;
    },
  };
}
