/**
 * The normalized issue (Symphony's shape) and the interface every tracker adapter implements.
 * Timestamps are ISO-8601 strings so an issue can travel through workflow history unchanged.
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
  /**
   * Opens a pull request from `head` into `base` in the adapter's repository, or returns the open one
   * that already exists for that head and base (so a retried landing opens exactly one). Only adapters
   * of a code host have it (GitHub); `landing.strategy: pull_request` uses one, whichever the tracker.
   */
  openPullRequest?(request: PullRequestRequest): Promise<PullRequest>;
}

export interface PullRequestRequest {
  /** Branch name in the tracker's repository (no `owner:` prefix). */
  head: string;
  base: string;
  title: string;
  body: string;
}

export interface PullRequest {
  number: number;
  /** The page a person opens (GitHub's `html_url`). */
  url: string;
  /** False when an open pull request for the same head and base already existed. */
  created: boolean;
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
