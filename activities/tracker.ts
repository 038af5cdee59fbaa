/** Tracker write-back activities. Credentials come from the worker's environment, never from input. */
import { ApplicationFailure } from '@temporalio/activity';
import type { TrackerConfig } from '../lib/contract/index.ts';
import { TrackerError } from '../lib/tracker/types.ts';
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

/**
 * A tracker error as a Temporal failure: a rate limit retries no sooner than the tracker asked
 * (Retry-After), an outage retries with backoff, and what a retry cannot fix (credentials, a missing
 * issue, data the tracker refuses) fails at once with its stable name as the type.
 */
export function asTrackerFailure(error: unknown): unknown {
  if (!(error instanceof TrackerError)) return error;
  switch (error.code) {
    case 'tracker_rate_limited':
      return ApplicationFailure.create({ message: error.message, type: error.code, ...(error.retryAfterMs !== undefined ? { nextRetryDelay: error.retryAfterMs } : {}) });
    case 'tracker_unavailable':
      return ApplicationFailure.create({ message: error.message, type: error.code });
    default:
      return ApplicationFailure.create({ message: error.message, type: error.code, nonRetryable: true });
  }
}

const mapped = async <T>(call: () => Promise<T>): Promise<T> => {
  try {
    return await call();
  } catch (error) {
    throw asTrackerFailure(error);
  }
};

export function createTrackerActivities(deps: ActivityDeps) {
  return {
    async trackerSetState(input: { tracker: TrackerConfig; issueId: string; state: string }): Promise<void> {
      await mapped(() => deps.tracker(input.tracker).setState(input.issueId, input.state));
    },
    /**
     * Creates or updates the issue's single workpad comment. `proofRef` (a stored proof summary) is
     * spliced in here so its text stays out of history. Finds an existing workpad by its marker, so a
     * retried first write never creates a second one.
     */
    async updateWorkpad(input: WorkpadInput): Promise<string> {
      return mapped(() => writeWorkpad(input));
    },
    /**
     * A comment of its own (not the workpad), which the issue's next run reads like a person's, after
     * moving the issue to `state` when given. `marker` (a line the body contains) makes it once only:
     * a retry that finds it does not add it again.
     */
    async commentOnIssue(input: { tracker: TrackerConfig; issueId: string; body: string; marker: string; state?: string }): Promise<void> {
      await mapped(async () => {
        const tracker = deps.tracker(input.tracker);
        if (input.state) await tracker.setState(input.issueId, input.state);
        if ((await tracker.listComments(input.issueId)).some((comment) => comment.body.includes(input.marker))) return;
        await tracker.addComment(input.issueId, input.body);
      });
    },
  };

  async function writeWorkpad(input: WorkpadInput): Promise<string> {
    const tracker = deps.tracker(input.tracker);
    // The state first: a retry after a failed comment write sets it again, which changes nothing.
    if (input.state) await tracker.setState(input.issueId, input.state);
    // A proof stored on a host that was lost (a local artifact store) is named, not waited for.
    const proof = input.proofRef ? await deps.artifacts.getText(input.proofRef).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT' && !/is not in /.test(error.message)) throw error;
      return `(The proof summary ${input.proofRef} is not in this worker's artifact store: it was kept on a host that is gone. Share the store between hosts with CADENZA_STORE.)`;
    }) : '';
    const body = input.body.replace('{{proof}}', proof);
    let commentId = input.commentId;
    if (!commentId) commentId = (await tracker.listComments(input.issueId)).find((comment) => comment.body.startsWith(WORKPAD_MARKER))?.id ?? null;
    if (commentId) {
      await tracker.updateComment(input.issueId, commentId, body);
      return commentId;
    }
    return (await tracker.addComment(input.issueId, body)).id;
  }
}
