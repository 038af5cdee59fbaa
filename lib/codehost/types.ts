/**
 * Where code is reviewed and merged: the pull request side of landing (`landing.strategy:
 * pull_request`), apart from the tracker that holds the issues. A tracker and a code host may be the
 * same service (GitHub issues, GitHub pull requests) or not (Linear issues, GitHub pull requests).
 */

export interface PullRequestRequest {
  /** Branch name in the host's repository (no `owner:` prefix). */
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

/** The issue a pull request is for, as the contract's tracker knows it. */
export interface IssueOfPullRequest {
  tracker: { kind: string; repository?: string | null };
  /** The tracker's issue id (absent in runs from before pull requests). */
  id?: string;
  identifier: string;
}

/**
 * Errors are TrackerErrors with their stable codes (a host shares its transport with a tracker):
 * tracker_invalid_data and tracker_not_found will not get better by retrying; an outage, a rate limit
 * or a token being fixed may.
 */
export interface CodeHost {
  readonly kind: string;
  /** Where pull requests are opened (`owner/name`). */
  readonly repository: string;
  /**
   * Opens a pull request from `head` into `base`, or returns the open one that already exists for
   * that head and base (`created: false`): a retried landing, or a later round pushing the same
   * branch again, finds the one it opened, which now shows the new head.
   */
  openPullRequest(request: PullRequestRequest): Promise<PullRequest>;
  /** The open pull request from `head` into `base`, or null. */
  findOpenPullRequest(head: string, base: string): Promise<PullRequest | null>;
  /** The line of a pull request's description naming its issue (one the host closes on merge where it can). */
  issueLine(issue: IssueOfPullRequest): string;
}

