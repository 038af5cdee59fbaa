/**
 * The normalized issue (Symphony's shape) and the interface every tracker adapter implements.
 * Timestamps are ISO-8601 strings so an issue can travel through workflow history unchanged.
 * Each adapter is a thin mapping over its transport client (lib/tracker/<kind>/client.ts); pull
 * requests belong to the code host (lib/codehost), not to a tracker.
 */
export interface BlockerRef {
  id: string;
  identifier: string;
  state: string;
}

export interface Issue {
  id: string;
  identifier: string;
  title: string;
  description: string | null;
  /** 1 (urgent) .. 4 (low); null when unset. */
  priority: number | null;
  state: string;
  branch_name: string | null;
  url: string | null;
  /** Lower-cased. */
  labels: string[];
  blocked_by: BlockerRef[];
  created_at: string;
  updated_at: string;
}

export interface TrackerComment {
  id: string;
  author: string;
  body: string;
  created_at: string;
}

export interface TrackerAdapter {
  readonly kind: string;
  fetchIssuesByStates(states: string[]): Promise<Issue[]>;
  fetchIssuesByIds(ids: string[]): Promise<Issue[]>;
  setState(issueId: string, state: string): Promise<void>;
  addComment(issueId: string, body: string): Promise<TrackerComment>;
  updateComment(issueId: string, commentId: string, body: string): Promise<void>;
  listComments(issueId: string): Promise<TrackerComment[]>;
}

/** Errors with stable names, as Symphony's adapters return them. */
export class TrackerError extends Error {
  constructor(
    readonly code: 'tracker_not_found' | 'tracker_unavailable' | 'tracker_rate_limited' | 'tracker_auth_failed' | 'tracker_invalid_data',
    message: string,
    /** With tracker_rate_limited: how long the tracker asked us to wait (Retry-After or its reset time), when it said. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'TrackerError';
  }
}
