/**
 * Everything client, workflow and tests share about the issue workflow: ids, phases, messages,
 * search attributes and the shapes that travel through history (references, never payloads).
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { CadenzaConfig, Contract } from '../lib/contract/index.ts';
import type { Issue } from '../lib/tracker/types.ts';
import type { StoppedProcess } from '../lib/sandbox/leftovers.ts';
import type { FileChange } from '../lib/proof/changes.ts';
import type { TestCount } from '../lib/proof/integrity.ts';

export const TASK_QUEUE = 'cadenza';

/** agent.max_rounds when a contract does not say: rounds a run may take, whatever starts them. */
export const DEFAULT_MAX_ROUNDS = 10;

/**
 * Caps on what a run keeps in its history and status: the rest lives in the tracker and the artifact
 * store. A run with thousands of comments or log lines stays small and replays fast.
 */
export const HISTORY_CAPS = {
  /** Human comments kept in the status (the latest). */
  comments: 20,
  /** Characters of one comment body kept in history (the rest is in the tracker). */
  commentChars: 4000,
  /** Comment ids remembered for deduplication. */
  seenCommentIds: 500,
  /** Lines of the workpad's log (the latest; the first line says how many were dropped). */
  workpadEvents: 40,
  /** Impact notices kept in the status (the latest; impactCount says how many arrived). */
  impactNotices: 20,
  /** Files, and module links, named in one impact notice (the first; the totals say how many). */
  noticeFiles: 50,
  noticeSymbols: 20,
  /** Names listed in one module link of a notice. */
  noticeNames: 20,
} as const;

/** Watching: after a merge landing, while watch: checks run on the landed commit. Reverted: the landing was reverted after the watch found a regression. */
export const PHASES = ['Provisioning', 'Working', 'Verifying', 'AwaitingApproval', 'Landing', 'Watching', 'Done', 'Reverted', 'Failed', 'Cancelled'] as const;
export type Phase = (typeof PHASES)[number];

export const phaseKey = defineSearchAttributeKey('CadenzaPhase', SearchAttributeType.KEYWORD);
export const issueKey = defineSearchAttributeKey('CadenzaIssue', SearchAttributeType.KEYWORD);
export const repoKey = defineSearchAttributeKey('CadenzaRepo', SearchAttributeType.KEYWORD);

/** One workflow per issue and project: `cadenza-<project id>-<identifier>`. */
export function issueWorkflowId(config: Pick<CadenzaConfig, 'project' | 'tracker'>, identifier: string): string {
  return config.project ? `cadenza-${config.project.id}-${identifier}` : legacyIssueWorkflowId(config.tracker.kind, identifier);
}

/** The id runs had before projects had ids (tracker kind and identifier only): runs started so keep it. */
export function legacyIssueWorkflowId(trackerKind: string, identifier: string): string {
  return `cadenza-${trackerKind}-${identifier}`;
}

export interface ApproveLanding {
  by: string;
  comment?: string;
  /** The head commit being approved (its full id or a prefix of at least 7 hex digits); refused if it is not the head. */
  commit?: string;
}

export interface RejectLanding {
  by: string;
  feedback: string;
}

export const approveLandingSignal = defineSignal<[ApproveLanding]>('approveLanding');
export const rejectLandingSignal = defineSignal<[RejectLanding]>('rejectLanding');
/** The same decisions as Updates: their validators refuse them outside AwaitingApproval. */
export const approveLandingUpdate = defineUpdate<string, [ApproveLanding]>('approveLanding');
export const rejectLandingUpdate = defineUpdate<string, [RejectLanding]>('rejectLanding');
export const statusQuery = defineQuery<IssueStatus>('status');

/** From the poller: the issue's current tracker state and its human comments (deduplicated by id). */
export interface TrackerUpdate {
  state: string;
  comments: Array<{ id: string; author: string; body: string }>;
}
export const trackerUpdateSignal = defineSignal<[TrackerUpdate]>('trackerUpdate');

/**
 * Sent by a run that landed (activities/impact.ts) to every other open run of its project whose work
 * touches what landed: the same files, or (JavaScript, TypeScript) a file of one side imports names
 * from a file the other changed. The run shows it in its status and workpad, and its next round's
 * prompt carries it; landing merges onto the moved target and re-runs the checks whatever it says.
 */
export interface ImpactNotice {
  /** The issue that landed, and its run. */
  issue: string;
  title?: string;
  workflowId: string;
  /** The commit that landed on the target (the landing merge), and the target branch. */
  commit: string;
  targetBranch: string;
  /** Files both this run's work and the landed change touched (capped: filesTotal says how many). */
  files: string[];
  filesTotal?: number;
  /** `file` imports `names` from `from`, which the other side (`changedBy`) changed (capped: symbolsTotal). */
  symbols?: Array<{ file: string; from: string; names: string[]; changedBy: 'landed' | 'run' }>;
  symbolsTotal?: number;
}
export const impactNoticeSignal = defineSignal<[ImpactNotice]>('impactNotice');

/** Marks Cadenza's own workpad comment, so it is never mistaken for a human comment. */
export const WORKPAD_MARKER = '<!-- cadenza:workpad -->';

/** A content-addressed artifact in the artifact store (`sha256:<hex>`), with what it holds. */
export interface ArtifactRef {
  ref: string;
  kind: string;
  bytes: number;
}

export interface TokenUsage {
  input: number;
  output: number;
  total: number;
}

export interface ProofCheck {
  name: string;
  required: boolean;
  passed: boolean;
  exitCode: number;
  timedOut: boolean;
  durationMs: number;
  output: ArtifactRef;
  /** The last lines of output, for the tracker comment and the agent's next round. */
  excerpt: string;
  /** Test reports the command wrote (JUnit-style XML and the like), by path in the repository. */
  reports?: Array<ArtifactRef & { path: string }>;
  /** The commit the check ran on, in a fresh checker container. */
  commit?: string;
  /** The test runner's own count, read from its output. */
  tests?: TestCount;
  /** What the check left running in its checker container (removed with it). */
  leftRunning?: StoppedProcess[];
}

/** A reviewer's comment on one line of the proposed version of a file. */
export interface ReviewComment {
  file: string;
  line: number;
  text: string;
}

/** What the reviewer (WORKFLOW.md's `review:`) answered about a round's proof. */
export interface ReviewResult {
  /** `none`: an optional reviewer ran out of review.max_turns or review.budget_tokens before it answered. */
  verdict: 'approve' | 'request_changes' | 'none';
  summary: string;
  /** The first 50, texts capped (commentsTotal says how many there were); the walkthrough has them all. */
  comments: ReviewComment[];
  commentsTotal?: number;
  /** With `review.required`, request_changes sends the round back to the agent. */
  required: boolean;
  model: string;
  turns: number;
  tokens: TokenUsage;
  /** The reviewer's conversation (the next round's review continues it). */
  transcript: ArtifactRef;
}

/** A run's progress note in the artifact store: what each round tried, what failed, what was asked. */
export interface ProgressNoteRef {
  ref: string;
  /** The latest round's entry, shortened. */
  excerpt: string;
  /** The round the note was last written for. */
  round: number;
}

export interface ProofResult {
  round: number;
  passed: boolean;
  checks: ProofCheck[];
  headCommit: string;
  /** Capped (see changedFilesTotal); computed by Cadenza's git in its mirror. */
  changedFiles: string[];
  changes?: FileChange[];
  changedFilesTotal?: number;
  /** Test-integrity warnings, shown to the approver before anything else. */
  integrity?: string[];
  /** With proof.on_protected_change reject: the protected changes that failed this proof. */
  rejectedProtected?: string[];
  /** The base revision's tests run on the new code (when the work changed protected paths). */
  baseTests?: ProofCheck[];
  diff: ArtifactRef;
  /** git's one-line diffstat of the change ("3 files changed, 10 insertions(+), 2 deletions(-)"). */
  diffstat?: string;
  /** What left the sandboxes through the egress relay so far in the run (the full log is the artifact). */
  egress?: { log: ArtifactRef; allowed: number; refused: number };
  walkthrough: ArtifactRef;
  summary: ArtifactRef;
  /** Processes the agent or the checks left running, which Cadenza stopped (the agent's before the checks). */
  stoppedProcesses?: StoppedProcess[];
  /** The reviewer's verdict and comments (with a `review:` section, once the required checks passed). */
  review?: ReviewResult;
}

export interface IssueStatus {
  workflowId: string;
  issue: string;
  title: string;
  phase: Phase;
  round: number;
  /** Attempt of the current agent session activity (1 = first try). */
  attempt: number;
  turns: number;
  tokens: TokenUsage;
  model: string | null;
  lastError: string | null;
  /** The worker host holding the run's sandbox (absent: runs from before host queues, or not placed yet). */
  host?: string;
  proof: ProofResult[];
  decision: { kind: 'approved' | 'rejected'; by: string; text?: string; commit?: string } | null;
  /** The commit an approval would land: the head of the latest passed proof. */
  headCommit?: string | null;
  landedCommit: string | null;
  /** With landing.strategy pull_request: the pull request Cadenza opened (people merge it). */
  pullRequest?: PullRequestRef | null;
  sandbox: string | null;
  /** The issue's tracker state as last reported by the poller; non-active pauses the agent. */
  trackerState: string | null;
  paused: boolean;
  /** Human comments delivered to the run, oldest first: the latest few, bodies capped (see commentCount). */
  comments: Array<{ id: string; author: string; body: string }>;
  /** How many human comments were delivered in all, and the ids of the latest ones (for the poller's dedup). */
  commentCount?: number;
  seenCommentIds?: string[];
  /**
   * Changes that landed on the target while this run was open and touch its work, oldest first (the
   * latest HISTORY_CAPS.impactNotices; impactCount says how many arrived): the round each arrived in,
   * and the round whose prompt carried it.
   */
  impact?: Array<ImpactNotice & { receivedInRound: number; toldInRound?: number }>;
  impactCount?: number;
  /** The tracker comment Cadenza keeps up to date. */
  workpadCommentId: string | null;
  /** The run's progress note (written at the end of every round; absent before the first, and in runs from before). */
  progress?: ProgressNoteRef;
  /** Tokens the reviewer used (its own budget, review.budget_tokens). */
  reviewTokens?: TokenUsage;
  /** The post-merge watch of the landed commit (with a watch: section, once landed). */
  watch?: WatchStatus;
}

/** One check of the watch, as the status keeps it (the whole output is behind `output`). */
export interface WatchCheck {
  name: string;
  passed: boolean;
  exitCode: number;
  timedOut: boolean;
  commit: string;
  output: ArtifactRef;
  excerpt: string;
}

export interface WatchStatus {
  /** The landed commit watched, and its first parent (the target before the landing). */
  commit: string;
  parent?: string;
  /** Times the checks ran; with every_ms, the end of the window (epoch ms). */
  runs: number;
  until?: number;
  /** null while the first pass runs. */
  verdict: 'passed' | 'regression' | 'failing_before' | null;
  /** The latest pass on the landed commit, and the failing commands on its first parent. */
  checks: WatchCheck[];
  parentChecks: WatchCheck[];
  /** The revert of a regression, once prepared: its commit, the target tip it is on, the checks on it, and how it ended. */
  revert?: {
    commit: string | null;
    onto: string;
    checks: WatchCheck[];
    outcome: 'awaiting_approval' | 'reverted' | 'pull_request' | 'declined' | 'timed_out' | 'conflict' | 'already_reverted';
    by?: string;
    pullRequest?: PullRequestRef;
    conflicts?: string[];
  };
}

/** Test and benchmark knobs; production leaves them unset. */
export interface Timing {
  retryInitialIntervalMs?: number;
  heartbeatTimeoutMs?: number;
  activityStartToCloseMs?: number;
  /** Continue as new between rounds once the run's history has this many events (default 500). */
  continueAsNewAfterEvents?: number;
  /** ... or this many bytes (default 1 MiB). Temporal also suggests it on its own limits. */
  continueAsNewAfterBytes?: number;
  /** A host whose queue takes no step of the run for this long is lost: the run moves (default 10 min). */
  hostLossMs?: number;
}

/**
 * What a run hands to its continuation when it continues as new between rounds: enough to carry on
 * at the start of `round` as if nothing happened. References only, like the rest of history.
 */
export interface CarriedState {
  round: number;
  status: IssueStatus;
  baseCommit: string;
  /** The head of the previous round's work: the next round's sandbox stands there. */
  lastHead: string;
  previousTranscript: string | null;
  feedback: string | null;
  failedProofRounds: number;
  /** The workpad's log so far, and the latest proof shown on it. */
  events: string[];
  /** Log entries dropped from the workpad by HISTORY_CAPS.workpadEvents (absent: none). */
  droppedEvents?: number;
  latestProof: string | null;
  /** Why the previous round did not land (for the agent.max_rounds error). */
  lastRoundEnded?: string;
  undelivered: IssueStatus['comments'];
  /** The task queue of the host holding the sandbox: the continuation's sandbox steps go there too. */
  hostQueue?: string;
  /** The reviewer's conversation so far (the next review continues it). */
  reviewTranscript?: string | null;
}

export interface IssueWorkflowInput {
  issue: Issue;
  /** The validated contract this run keeps for its whole life. Secrets are references only. */
  contract: Contract;
  timing?: Timing;
  /** The issue's comments when the run started (absent in runs from before): round 1's prompt carries them. */
  comments?: Array<{ id: string; author: string; body: string }>;
  /** Set only on a continuation: where the previous run of this workflow left off. */
  carried?: CarriedState;
}

export interface PullRequestRef {
  number: number;
  url: string;
  branch: string;
}

export interface IssueWorkflowResult {
  phase: Phase;
  landedCommit: string | null;
  pullRequest?: PullRequestRef;
  rounds: number;
  tokens: TokenUsage;
  /** Agent turns over all rounds, the model, and the approved head (absent in results of runs from before). */
  turns?: number;
  model?: string | null;
  headCommit?: string;
  /** With phase Reverted: the commit on the target that reverts landedCommit (or the pull request that would). */
  revertCommit?: string;
}
