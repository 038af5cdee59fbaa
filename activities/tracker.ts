/** Tracker write-back activities. Credentials come from the worker's environment, never from input. */
import type { TrackerConfig } from '../lib/contract/index.ts';
import { WORKPAD_MARKER } from '../workflows/definitions.ts';
import type { ActivityDeps } from './deps.ts';

export interface WorkpadInput {
  tracker: TrackerConfig;
  issueId: string;
  commentId: string | null;
  body: string;
  proofRef: string | null;
  /** Move the issue to this tracker state in the same activity (one round trip instead of two). */
  state?: string;
}

export function createTrackerActivities(deps: ActivityDeps) {
  return {
    async trackerSetState(input: { tracker: TrackerConfig; issueId: string; state: string }): Promise<void> {
      await deps.tracker(input.tracker).setState(input.issueId, input.state);
    },
    /**
     * Creates or updates the issue's single workpad comment. `proofRef` (a stored proof summary) is
     * spliced in here so its text stays out of history. Finds an existing workpad by its marker, so a
     * retried first write never creates a second one.
     */
    async updateWorkpad(input: WorkpadInput): Promise<string> {
      const tracker = deps.tracker(input.tracker);
      // The state first: a retry after a failed comment write sets it again, which changes nothing.
      if (input.state) await tracker.setState(input.issueId, input.state);
      const proof = input.proofRef ? await deps.artifacts.getText(input.proofRef) : '';
      const body = input.body.replace('{{proof}}', proof);
      let commentId = input.commentId;
      if (!commentId) commentId = (await tracker.listComments(input.issueId)).find((comment) => comment.body.startsWith(WORKPAD_MARKER))?.id ?? null;
      if (commentId) {
        await tracker.updateComment(input.issueId, commentId, body);
        return commentId;
      }
      return (await tracker.addComment(input.issueId, body)).id;
    },
  };
}
