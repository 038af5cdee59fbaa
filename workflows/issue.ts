/**
 * The issue workflow: one issue, one durable run, from Todo to code landed after a person approved
 * it. Phases: Provisioning -> Working -> Verifying -> AwaitingApproval -> Landing -> Done, with
 * Failed and Cancelled as ends. Handlers are registered before the first await; the body is a loop
 * of rounds, each waiting on activities or on a decision.
 */
import {
  allHandlersFinished,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  ContinueAsNew,
  continueAsNew,
  isCancellation,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  TimeoutFailure,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { AgentSessionResult } from '../activities/agent.ts';
import type { Activities } from '../activities/index.ts';
import type { ContractSettings, ProofCommand, WatchConfig } from '../lib/contract/index.ts';
import { progressEntry, type ProgressEntry } from './progress.ts';
import { changesRequested, reviewDetails, reviewEvent, reviewFeedback, reviewOutcome } from './review.ts';
import {
  approveLandingSignal,
  approveLandingUpdate,
  impactNoticeSignal,
  issueKey,
  phaseKey,
  rejectLandingSignal,
  rejectLandingUpdate,
  repoKey,
  statusQuery,
  trackerUpdateSignal,
  DEFAULT_MAX_ROUNDS,
  HISTORY_CAPS,
  WORKPAD_MARKER,
  type ApproveLanding,
  type CarriedState,
  type IssueStatus,
  type IssueWorkflowInput,
  type IssueWorkflowResult,
  type Phase,
  type ProofCheck,
  type ProofResult,
  type RejectLanding,
  type TrackerUpdate,
  type WatchStatus,
} from './definitions.ts';
import { invalidImpactNotice, keepNotice, noticeDetails, noticeEvent, noticeFeedback, toldEvent } from './impact.ts';
import { failingBeforeEvent, keepCheck, passedEvent, regressionComment, regressionMarker, revertDetails, watchingEvent } from './watch.ts';

/** Why a decision payload is not acceptable, or null when it is. */
function invalidDecision(kind: 'approveLanding' | 'rejectLanding', payload: unknown): string | null {
  const value = payload as Partial<ApproveLanding & RejectLanding> | null;
  if (typeof value !== 'object' || value === null) return `${kind} expects an object like ${kind === 'approveLanding' ? '{ "by": "alice", "comment": "..." }' : '{ "by": "alice", "feedback": "..." }'}`;
  if (typeof value.by !== 'string' || !value.by.trim()) return `${kind} needs "by": the name of the person deciding (a non-empty string)`;
  if (kind === 'rejectLanding' && (typeof value.feedback !== 'string' || !value.feedback.trim())) return 'rejectLanding needs "feedback": what the agent should change (a non-empty string)';
  if (kind === 'approveLanding' && value.comment !== undefined && typeof value.comment !== 'string') return 'approveLanding "comment" must be a string when given';
  if (kind === 'approveLanding' && value.commit !== undefined && (typeof value.commit !== 'string' || !/^[0-9a-f]{7,40}$/.test(value.commit))) {
    return 'approveLanding "commit" must be the head commit being approved: its id or a prefix of at least 7 hex digits';
  }
  return null;
}

/** Why a trackerUpdate payload is not acceptable, or null when it is. */
function invalidTrackerUpdate(payload: unknown): string | null {
  const value = payload as Partial<TrackerUpdate> | null;
  const shape = 'trackerUpdate expects { "state": "<tracker state>", "comments": [{ "id", "author", "body" }] }';
  if (typeof value !== 'object' || value === null || typeof value.state !== 'string' || !value.state.trim()) return `${shape}; "state" must be a non-empty string`;
  if (!Array.isArray(value.comments)) return `${shape}; "comments" must be a list`;
  const bad = value.comments.findIndex((c) => typeof c !== 'object' || c === null || typeof c.id !== 'string' || typeof c.author !== 'string' || typeof c.body !== 'string');
  return bad >= 0 ? `${shape}; comments[${bad}] needs string id, author and body` : null;
}

/** Why an approval that names a commit does not approve `head`, or null when it does (or names none). */
function wrongCommit(commit: string | undefined, head: string | null | undefined): string | null {
  if (commit === undefined || !head || head.startsWith(commit)) return null;
  return `approveLanding names commit ${commit}, but the head awaiting approval is ${head}; look at that proof and approve it by its id`;
}

/** A step its host's queue never started: the host's worker is gone (schedule-to-start timeout). */
function hostLost(error: unknown): boolean {
  return error instanceof ActivityFailure && error.cause instanceof TimeoutFailure && error.cause.timeoutType === 'SCHEDULE_TO_START';
}

/** The innermost message: "Activity task failed" says less than what made the activity fail. */
function rootMessage(error: unknown): string {
  let current = error as { message?: string; cause?: unknown } | undefined;
  while (current?.cause) current = current.cause as { message?: string; cause?: unknown };
  return current?.message ?? String(error);
}

/** 604800000 -> "7 d", 5400000 -> "90 min". */
function duration(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000} d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms >= 60_000) return `${Math.round(ms / 60_000)} min`;
  return `${Math.round(ms / 1000)} s`;
}

function sanitizeBranch(name: string): string {
  return name.replace(/[^A-Za-z0-9._/-]/g, '-').replace(/\.\.+/g, '.').replace(/^[-/]+/, '') || 'work';
}

function failureFeedback(proof: ProofResult, round: number): string {
  const failed = proof.checks.filter((check) => check.required && !check.passed);
  const refused = proof.rejectedProtected?.length
    ? [
        `Cadenza refused round ${round}: it changes files the contract protects (proof.on_protected_change is reject):`,
        ...proof.rejectedProtected.map((change) => `- ${change}`),
        'Make the change without modifying or deleting tests, test configuration or CI files.',
      ]
    : [];
  if (proof.changedFiles.length === 0 && failed.length === 0) {
    return `Round ${round} ended without any change to the repository. Make the change the issue asks for, then call finish.`;
  }
  return [
    ...refused,
    ...(failed.length ? [`${refused.length ? '\n' : ''}Cadenza ran the required checks after round ${round} and they failed, so nothing can land yet.`] : []),
    ...failed.map((check) => `\nCheck \`${check.name}\` exited with ${check.exitCode}${check.timedOut ? ' (timed out)' : ''}. The end of its output:\n${check.excerpt}`),
    failed.length ? '\nFix the cause, run the checks yourself, and call finish again.' : '\nThen call finish again.',
  ].join('\n');
}

/** A continuation shows the latest proofs in its status; older ones are in earlier runs' histories. */
const PROOFS_CARRIED = 5;

export async function issueWorkflow(input: IssueWorkflowInput): Promise<IssueWorkflowResult> {
  const { issue, contract, carried } = input;
  const config = contract.config;
  // Only the agent session needs the prompt template; the other steps get the configuration alone.
  const settings: ContractSettings = { config };
  const timing = input.timing ?? {};
  const { workflowId } = workflowInfo();
  const workBranch = sanitizeBranch(issue.branch_name ?? `cadenza/${issue.identifier}`);

  const status: IssueStatus = carried ? { ...carried.status, workflowId } : {
    workflowId,
    issue: issue.identifier,
    title: issue.title,
    phase: 'Provisioning',
    round: 0,
    attempt: 1,
    turns: 0,
    tokens: { input: 0, output: 0, total: 0 },
    model: null,
    lastError: null,
    proof: [],
    decision: null,
    landedCommit: null,
    sandbox: null,
    trackerState: issue.state,
    paused: false,
    comments: [],
    workpadCommentId: null,
  };
  let pending: IssueStatus['decision'] = null;
  /** Human comments not yet handed to the agent. */
  let undelivered: IssueStatus['comments'] = carried?.undelivered ?? [];
  // What was said on the issue before the run started (why a reopened issue was reopened): round 1 gets it.
  if (!carried && input.comments?.length) {
    const cap = (body: string) => (body.length > HISTORY_CAPS.commentChars ? `${body.slice(0, HISTORY_CAPS.commentChars)} [... cut; the whole comment is on the issue]` : body);
    const kept = input.comments.slice(-HISTORY_CAPS.comments).map(({ id, author, body }) => ({ id, author, body: cap(body) }));
    status.comments = kept;
    undelivered = [...kept];
    status.commentCount = input.comments.length;
    status.seenCommentIds = input.comments.map((comment) => comment.id).slice(-HISTORY_CAPS.seenCommentIds);
  }
  /** The scope of the running agent session, cancelled when the issue leaves the active states. */
  let agentScope: CancellationScope | null = null;
  const lower = (values: string[]) => values.map((value) => value.toLowerCase());
  const keepsRunning = new Set(lower([...config.tracker.activeStates, config.tracker.inProgressState, config.tracker.reviewState]));

  /** An update refused by its validator: a typed failure a retry cannot fix, so clients print it as such. */
  const refuse = (message: string, type: string): never => {
    throw ApplicationFailure.create({ message, type, nonRetryable: true });
  };
  const refuseOutsideApproval = (kind: string) => {
    if (status.phase !== 'AwaitingApproval') refuse(`${kind} is only accepted while the run is in AwaitingApproval; it is in ${status.phase}`, 'NotAwaitingApproval');
  };
  setHandler(statusQuery, () => status);
  setHandler(trackerUpdateSignal, (update) => {
    // A malformed one (sent by hand) would fail the workflow task and wedge the run: record it, ignore it.
    const problem = invalidTrackerUpdate(update);
    if (problem) {
      status.lastError = problem;
      return;
    }
    status.trackerState = update.state;
    const paused = !keepsRunning.has(update.state.toLowerCase());
    if (paused && !status.paused) agentScope?.cancel();
    status.paused = paused;
    // Only the latest comments (bodies capped) stay in the status; the tracker has them all.
    const seen = status.seenCommentIds ?? status.comments.map((comment) => comment.id);
    const known = new Set(seen);
    for (const { id, author, body } of update.comments) {
      if (known.has(id)) continue;
      known.add(id);
      seen.push(id);
      const kept = { id, author, body: body.length > HISTORY_CAPS.commentChars ? `${body.slice(0, HISTORY_CAPS.commentChars)} [... cut; the whole comment is on the issue]` : body };
      status.comments.push(kept);
      undelivered.push(kept);
      status.commentCount = (status.commentCount ?? status.comments.length - 1) + 1;
    }
    status.comments = status.comments.slice(-HISTORY_CAPS.comments);
    undelivered = undelivered.slice(-HISTORY_CAPS.comments);
    status.seenCommentIds = seen.slice(-HISTORY_CAPS.seenCommentIds);
  });
  // A change landed that touches this run's work (activities/impact.ts): recorded in the status and the
  // workpad's log, carried by the next round's prompt. A malformed one is recorded and ignored, as above.
  let noticesToShow = false;
  setHandler(impactNoticeSignal, (notice) => {
    const problem = invalidImpactNotice(notice);
    if (problem) {
      status.lastError = problem;
      return;
    }
    // A retried sender signals again: one notice per landed commit.
    if (status.impact?.some((known) => known.commit === notice.commit)) return;
    const kept = keepNotice(notice, status.round);
    status.impact = [...(status.impact ?? []), kept].slice(-HISTORY_CAPS.impactNotices);
    status.impactCount = (status.impactCount ?? 0) + 1;
    const line = noticeEvent(kept);
    if (!events.includes(line)) events.push(line);
    noticesToShow = true;
  });
  // Signals cannot answer, so a bad one is recorded in status.lastError and otherwise ignored.
  setHandler(approveLandingSignal, (decision) => {
    const problem = invalidDecision('approveLanding', decision)
      ?? (status.phase === 'AwaitingApproval' ? null : `approveLanding ignored: the run is in ${status.phase}, not AwaitingApproval`)
      ?? wrongCommit(decision.commit, status.headCommit);
    if (problem) status.lastError = problem;
    else pending = { kind: 'approved', by: decision.by, text: decision.comment, ...(status.headCommit ? { commit: status.headCommit } : {}) };
  });
  setHandler(rejectLandingSignal, (decision) => {
    const problem = invalidDecision('rejectLanding', decision) ?? (status.phase === 'AwaitingApproval' ? null : `rejectLanding ignored: the run is in ${status.phase}, not AwaitingApproval`);
    if (problem) status.lastError = problem;
    else pending = { kind: 'rejected', by: decision.by, text: decision.feedback };
  });
  setHandler(approveLandingUpdate, (decision) => {
    pending = { kind: 'approved', by: decision.by, text: decision.comment, ...(status.headCommit ? { commit: status.headCommit } : {}) };
    return status.watch?.revert ? `revert ${status.headCommit} of ${status.watch.commit} approved by ${decision.by}` : `landing of ${status.headCommit ?? 'the work'} approved by ${decision.by}`;
  }, {
    validator: (decision) => {
      const problem = invalidDecision('approveLanding', decision);
      if (problem) refuse(problem, 'InvalidDecision');
      refuseOutsideApproval('approveLanding');
      const mismatch = wrongCommit(decision.commit, status.headCommit);
      if (mismatch) refuse(mismatch, 'WrongCommit');
    },
  });
  setHandler(rejectLandingUpdate, (decision) => {
    pending = { kind: 'rejected', by: decision.by, text: decision.feedback };
    return status.watch?.revert ? `revert declined by ${decision.by}; the landing stays` : `landing rejected by ${decision.by}; another round starts with the feedback`;
  }, {
    validator: (decision) => {
      const problem = invalidDecision('rejectLanding', decision);
      if (problem) refuse(problem, 'InvalidDecision');
      refuseOutsideApproval('rejectLanding');
    },
  });

  const retryInitial = timing.retryInitialIntervalMs ?? 10_000;
  // Every activity heartbeats while it runs: a lost worker is noticed within this, not the timeout.
  const heartbeatTimeout = timing.heartbeatTimeoutMs ?? 60_000;
  // Retries are bounded in time, not in attempts: a Docker engine restart or a tracker outage of a few
  // minutes is outlasted, a rate limit's Retry-After is honoured (nextRetryDelay), and what no retry can
  // fix fails at once with a non-retryable type.
  const short: ActivityOptions = {
    startToCloseTimeout: timing.activityStartToCloseMs ?? 10 * 60_000,
    scheduleToCloseTimeout: 30 * 60_000,
    heartbeatTimeout,
    retry: { initialInterval: Math.min(retryInitial, 1_000), maximumInterval: 30_000 },
  };
  // A run's sandbox steps go to the queue of the host that holds its sandbox once it is placed (runs
  // from before host queues: the shared queue, where every worker serves them).
  let hostQueue: string | undefined = carried?.hostQueue;
  // A step its host's queue does not start within this is taken as the host being lost (see onHostOrMoved).
  const hostLossMs = timing.hostLossMs ?? 10 * 60_000;
  const onHost = (options: ActivityOptions) => proxyActivities<Activities>(hostQueue ? { ...options, taskQueue: hostQueue, scheduleToStartTimeout: hostLossMs } : options);
  const acts = () => onHost(short);
  // Placement waits while every host is full (worker.max_sandboxes); each refusal is retried soon.
  const placeActs = proxyActivities<Activities>({ startToCloseTimeout: 60_000, scheduleToCloseTimeout: 24 * 60 * 60_000, retry: { initialInterval: 1_000, maximumInterval: 10_000 } });
  // Tracker writes go to the host too: the workpad shows the proof summary from the host's artifact store.
  const trackerOptions: ActivityOptions = { ...short, startToCloseTimeout: 60_000, scheduleToCloseTimeout: 15 * 60_000, retry: { ...short.retry, maximumInterval: 60_000 } };
  const trackerActs = () => onHost(trackerOptions);
  // Symphony's backoff for failed sessions: min(10 s * 2^(n-1), agent.max_retry_backoff_ms).
  const agentOptions: ActivityOptions = {
    startToCloseTimeout: config.agent.turnTimeoutMs * config.agent.maxTurns,
    heartbeatTimeout: timing.heartbeatTimeoutMs ?? (config.agent.stallTimeoutMs || 300_000),
    retry: {
      initialInterval: retryInitial,
      backoffCoefficient: 2,
      maximumInterval: Math.max(retryInitial, config.agent.maxRetryBackoffMs),
      maximumAttempts: 10,
      nonRetryableErrorTypes: ['ContractError', 'BudgetExhausted', 'ModelAuthError', 'ModelRequestError'],
    },
  };
  const agentActs = () => onHost(agentOptions);
  const checkActs = (command: ProofCommand) =>
    // Time enough to outlast a Docker engine restart; a hung check is cut by its own timeout first.
    onHost({ startToCloseTimeout: command.timeoutMs + 60_000, scheduleToCloseTimeout: 2 * command.timeoutMs + 10 * 60_000, heartbeatTimeout, retry: { initialInterval: 1_000, maximumInterval: 16_000 } });
  const landOptions: ActivityOptions = {
    startToCloseTimeout: timing.activityStartToCloseMs ?? 30 * 60_000,
    scheduleToCloseTimeout: 2 * 60 * 60_000,
    heartbeatTimeout,
    retry: { initialInterval: Math.min(retryInitial, 2_000), maximumInterval: 60_000 },
  };
  const landActs = () => onHost(landOptions);
  // Telling the project's other open runs about a landing runs on the landing run's host: its mirror has
  // just fetched the target and made the landing merge, and holds the snapshots of the runs on this host
  // even where the remote refused their publish (the other hosts' come from the remote).
  const impactActs = () => onHost({ ...short, startToCloseTimeout: 5 * 60_000, scheduleToCloseTimeout: 15 * 60_000 });

  const setPhase = (phase: Phase, details?: string) => {
    // The run moved on: an earlier error (a retried step, a mistimed signal) no longer describes it.
    if (phase !== 'Failed' && phase !== status.phase) status.lastError = null;
    status.phase = phase;
    upsertSearchAttributes([{ key: phaseKey, value: phase }]);
    setCurrentDetails(`**${issue.identifier}** ${issue.title}\n\nPhase: ${phase}, round ${status.round}${details ? `\n\n${details}` : ''}`);
  };
  /**
   * What the approver reads in the UI's current details (Markdown): integrity warnings first, then the
   * commit, the checks, the changes, the cost and how to decide. Commands and JSON sit in code blocks,
   * where the UI keeps quotes straight and shows angle brackets.
   */
  const approvalDetails = (proof: ProofResult) => {
    const head = proof.headCommit;
    const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    const checkRow = (check: ProofCheck) =>
      `| ${check.passed ? 'pass' : '**FAIL**'} | \`${check.name.replace(/[|`]/g, ' ')}\` | ${check.required ? 'required' : 'optional'} | exit ${check.exitCode}${check.timedOut ? ' (timed out)' : ''} | ${seconds(check.durationMs)} | ${check.tests ? `${check.tests.total} tests, ${check.tests.failed} failed` : '-'} |`;
    const checkTable = (checks: ProofCheck[]) => ['| result | check | | exit | took | tests |', '|---|---|---|---|---|---|', ...checks.map(checkRow)];
    const changes = proof.changes ?? proof.changedFiles.map((path) => ({ path, status: 'changed', from: undefined, note: undefined }));
    const total = proof.changedFilesTotal ?? changes.length;
    const shown = changes.slice(0, 30).map((change) => `${change.status.padEnd(9)} ${change.from ? `${change.from} -> ` : ''}${change.path}${change.note ? ` (${change.note})` : ''}`);
    const { namespace } = workflowInfo();
    return [
      ...(proof.integrity?.length ? ['### Test integrity warnings', ...proof.integrity.map((line) => `- ${line}`), ''] : []),
      ...reviewDetails(proof.review),
      ...noticeDetails((status.impact ?? []).filter((notice) => notice.toldInRound === undefined)),
      '### Awaiting approval',
      `Head commit: \`${head}\` (round ${proof.round})`,
      '',
      '**Checks** (each in a fresh container on that commit)',
      '',
      ...checkTable(proof.checks),
      ...(proof.baseTests?.length ? ['', "**The base's tests on the new code**", '', ...checkTable(proof.baseTests)] : []),
      '',
      `**Changed files** (${total}${proof.diffstat ? `: ${proof.diffstat}` : ''})`,
      '```',
      ...(shown.length ? shown : ['(none)']),
      ...(total > shown.length ? [`... and ${total - shown.length} more (npx cadenza show ${issue.identifier} diff)`] : []),
      '```',
      `Tokens: ${status.tokens.total} (${status.tokens.input} in, ${status.tokens.output} out)${status.model ? ` on ${status.model}` : ''} · ${status.turns} turns`,
      '',
      '**Approve** (Send a Signal or Update `approveLanding` with this input, or run one of these):',
      '```',
      JSON.stringify({ by: 'YOUR-NAME', commit: head }),
      `npx cadenza approve ${issue.identifier} --by YOUR-NAME --commit ${head.slice(0, 12)}`,
      `temporal workflow signal --namespace ${namespace} --workflow-id ${workflowId} --name approveLanding --input '${JSON.stringify({ by: 'YOUR-NAME', commit: head })}'`,
      '```',
      '**Reject** (another round starts with the feedback; signal `rejectLanding`):',
      '```',
      JSON.stringify({ by: 'YOUR-NAME', feedback: 'what to change' }),
      `npx cadenza reject ${issue.identifier} --by YOUR-NAME --feedback "what to change"`,
      `temporal workflow signal --namespace ${namespace} --workflow-id ${workflowId} --name rejectLanding --input '${JSON.stringify({ by: 'YOUR-NAME', feedback: 'what to change' })}'`,
      '```',
      `Evidence: \`npx cadenza show ${issue.identifier} diff\` · \`checks\` · \`walkthrough\``,
    ].join('\n');
  };
  /** Tracker write-back is best effort: a tracker outage is recorded, it does not fail the run. */
  const report = async (write: () => Promise<unknown>) => {
    try {
      await write();
      if (status.lastError?.startsWith('tracker write failed')) status.lastError = null;
    } catch (error) {
      if (isCancellation(error)) throw error;
      status.lastError = `tracker write failed: ${rootMessage(error)}`;
    }
  };
  // One workpad comment per issue, rewritten as the run moves: phase, latest proof, and a log.
  let events: string[] = carried?.events ?? [];
  let droppedEvents = carried?.droppedEvents ?? 0;
  let latestProof: string | null = carried?.latestProof ?? null;
  const renderWorkpad = () => [
    WORKPAD_MARKER,
    `### Cadenza workpad: ${issue.identifier}`,
    `**Phase:** ${status.phase} · round ${status.round} · ${status.tokens.total} tokens${status.model ? ` · model ${status.model}` : ''}`,
    `**Workflow:** \`${workflowId}\` · **Branch:** \`${status.pullRequest?.branch ?? workBranch}\`${status.landedCommit ? ` · **Landed:** \`${status.landedCommit}\`` : ''}${status.pullRequest ? ` · **Pull request:** ${status.pullRequest.url}` : ''}`,
    ...(status.headCommit ? [`**Awaiting approval of commit** \`${status.headCommit}\` (\`cadenza approve ${issue.identifier} --by NAME --commit ${status.headCommit.slice(0, 12)}\`)`] : []),
    ...(latestProof ? ['', '#### Latest proof', '{{proof}}'] : []),
    '',
    '#### Log',
    ...(droppedEvents ? [`- (${droppedEvents} earlier entries are in the workflow's history)`] : []),
    ...events.map((event) => `- ${event}`),
  ].join('\n');
  /** Logs `event` on the workpad; with `state`, moves the issue there in the same activity. */
  const comment = (event: string, state?: string) =>
    report(async () => {
      if (!events.includes(event)) events.push(event);
      if (events.length > HISTORY_CAPS.workpadEvents) {
        droppedEvents += events.length - HISTORY_CAPS.workpadEvents;
        events = events.slice(-HISTORY_CAPS.workpadEvents);
      }
      status.workpadCommentId = await trackerActs().updateWorkpad({
        tracker: config.tracker, issueId: issue.id, commentId: status.workpadCommentId, body: renderWorkpad(), proofRef: latestProof, ...(state ? { state } : {}),
      });
      // The issue is where Cadenza just moved it (the next poll confirms it).
      if (state) status.trackerState = state;
    });
  const moveTo = (state: string) => report(async () => {
    await trackerActs().trackerSetState({ tracker: config.tracker, issueId: issue.id, state });
    status.trackerState = state;
  });
  /** Moves the issue and logs the event: one activity on lean runs, two (in that order) on runs from before. */
  const moveAndComment = async (state: string, event: string) => {
    if (lean) return comment(event, state);
    await moveTo(state);
    await comment(event);
  };
  const fail = (message: string, type: string) => {
    throw ApplicationFailure.create({ message, type, nonRetryable: true });
  };

  /**
   * One agent session. If the issue leaves the active states the session is cancelled, the sandbox
   * and the session's checkpoint are kept, and it resumes once the issue is active again.
   */
  const runSession = async (session: { round: number; previousTranscript: string | null; feedback: string | null; progressNote?: string }): Promise<AgentSessionResult> => {
    for (;;) {
      if (status.paused) {
        await comment(`Paused: the issue moved to ${status.trackerState}. The sandbox and the work so far are kept.`);
        await condition(() => !status.paused);
        await comment(`Resumed: the issue is ${status.trackerState} again.`);
      }
      const scope = new CancellationScope();
      agentScope = scope;
      try {
        return await scope.run(() => onHostOrMoved('the agent session', async () => {
          if (!lean || config.hooks.beforeRun) await acts().runBeforeRunHook({ workflowId, contract: settings });
          // Summaries label the UI's timeline; they are metadata, not part of what replay compares.
          // The prompt shows the issue's state as the tracker last reported it, not as it was at dispatch.
          const current = { ...issue, state: status.trackerState || issue.state };
          return agentActs().runAgentSession.executeWithOptions({ summary: `Round ${session.round}: agent session` }, [{ workflowId, issue: current, contract, ...session, tokensBefore: status.tokens.total, ...(rebuilds ? { rebuilds } : {}) }]);
        }));
      } catch (error) {
        // Our own pause, not a cancellation of the whole run: wait and go again.
        if (isCancellation(error) && status.paused && !CancellationScope.current().consideredCancelled) continue;
        throw error;
      } finally {
        agentScope = null;
      }
    }
  };

  // Lean rounds: the first round's provisioning is the run's only one, hook activities run only when a
  // hook is set, and tracker state moves ride on workpad writes. Runs started before keep their steps.
  const lean = patched('lean-rounds');
  // Proof decided on the host: the base revision's tests run on the new code when protected paths changed.
  const hostProof = patched('host-proof');
  // Every round counts against agent.max_rounds, whatever started it (failed proof, rejection, conflict).
  const boundedRounds = patched('bounded-rounds');
  // Each round ends with an entry in the run's progress note, which later rounds start with; with a
  // review: section, a read-only reviewer answers after the checks pass.
  const progressNotes = patched('progress-note');
  const reviewing = Boolean(config.review) && patched('reviewer');
  // The run is placed on a worker host with room, and its sandbox steps go to that host's task queue.
  const hostAffinity = patched('host-affinity');
  // A run that lands tells the project's other open runs whose work it touches; an impact notice wakes the
  // approval wait to show it on the workpad and in the approver's details.
  const impactNotices = patched('impact-notices');
  const maxRounds = config.agent.maxRounds ?? DEFAULT_MAX_ROUNDS;
  /** Why the latest round did not land, for the error when the rounds run out. */
  let lastRoundEnded = '';
  upsertSearchAttributes([
    { key: issueKey, value: issue.identifier },
    { key: repoKey, value: config.repo.url },
  ]);
  upsertMemo({ title: issue.title, url: issue.url, ...(status.model ? { model: status.model } : {}) });
  setPhase(carried ? 'Working' : 'Provisioning');

  // Set once this run hands over to its continuation: then the sandbox stays for the next run.
  let continuing = false;
  const { continueAsNewAfterEvents = 500, continueAsNewAfterBytes = 1024 * 1024 } = timing;
  const historyIsLong = () => {
    const info = workflowInfo();
    return info.continueAsNewSuggested || info.historyLength >= continueAsNewAfterEvents || info.historySize >= continueAsNewAfterBytes;
  };

  // The head of the work so far (the last round's snapshot): where a sandbox is rebuilt.
  let lastHead = '';
  /** Times the sandbox was rebuilt on another host: a session after a rebuild starts afresh. */
  let rebuilds = 0;
  /**
   * Runs a step of the run's host. When the host's queue does not start it within timing.hostLossMs
   * (the host's worker is gone), the run is placed on another host, its sandbox rebuilt there at the
   * work's last snapshot (kept on the git remote), and the step runs again there. Runs from before
   * host queues (no host) fail as before.
   */
  const onHostOrMoved = async <T>(what: string, step: () => Promise<T>): Promise<T> => {
    let rebuild = false;
    for (;;) {
      try {
        if (rebuild) await acts().provisionSandbox({ workflowId, contract: settings, workBranch, atCommit: lastHead });
        return await step();
      } catch (error) {
        if (!hostQueue || !hostLost(error)) throw error;
        const lost = status.host ?? hostQueue;
        hostQueue = undefined;
        const placement = await placeActs.placeRun.executeWithOptions({ summary: `Placing the run on another host (${lost} is lost)` }, [{ workflowId, contract: settings }]);
        hostQueue = placement.hostQueue;
        status.host = placement.host;
        rebuild = Boolean(lastHead);
        if (rebuild) rebuilds += 1;
        await comment(`Host ${lost} took no step for ${duration(hostLossMs)} (${what}): the run moved to host ${placement.host}${rebuild ? `, its sandbox rebuilt there at ${lastHead.slice(0, 12)}` : ''}.`);
      }
    }
  };

  /** Writes a round's entry into the run's progress note (artifact store); the status keeps its reference and an excerpt. */
  const writeNote = async (entry: ProgressEntry) => {
    if (!progressNotes) return;
    status.progress = await onHostOrMoved('the progress note', () => acts().recordProgress({
      workflowId, contract: settings, identifier: issue.identifier, title: issue.title, previous: status.progress?.ref ?? null, entry,
    }));
  };
  /** The reviewer's conversation so far: each review continues it, so it sees what it asked for before. */
  let reviewTranscript: string | null = carried?.reviewTranscript ?? null;
  // The reviewer's session: its own bounds (review.max_turns, review.budget_tokens); a retry starts the review again.
  const reviewOptions: ActivityOptions = {
    startToCloseTimeout: config.agent.turnTimeoutMs * (config.review?.maxTurns ?? 1),
    heartbeatTimeout,
    retry: {
      initialInterval: retryInitial,
      backoffCoefficient: 2,
      maximumInterval: Math.max(retryInitial, config.agent.maxRetryBackoffMs),
      maximumAttempts: 5,
      nonRetryableErrorTypes: ['ContractError', 'ModelAuthError', 'ModelRequestError', 'ReviewIncomplete', 'WorkLost'],
    },
  };
  /** Puts the reviewer's verdict and comments into the round's proof (its walkthrough and summary too). */
  const review = async (proof: ProofResult, round: number, baseCommit: string) => {
    const reviewed = await onHostOrMoved('the review', () => onHost(reviewOptions).runReview.executeWithOptions({ summary: `Round ${round}: review` }, [{
      workflowId, contract: settings, issue, round, baseCommit, headCommit: proof.headCommit,
      diff: proof.diff.ref, walkthrough: proof.walkthrough.ref, summary: proof.summary.ref,
      previousTranscript: reviewTranscript, tokensBefore: status.reviewTokens?.total ?? 0,
    }]));
    Object.assign(proof, { review: reviewed.review, walkthrough: reviewed.walkthrough, summary: reviewed.summary });
    reviewTranscript = reviewed.review.transcript.ref;
    const used = status.reviewTokens ?? { input: 0, output: 0, total: 0 };
    const { tokens } = reviewed.review;
    status.reviewTokens = { input: used.input + tokens.input, output: used.output + tokens.output, total: used.total + tokens.total };
  };

  // A watch pass runs every watch command, and the failing ones again on the first parent.
  const watchActs = (watch: WatchConfig) => {
    const checksMs = watch.commands.reduce((sum, command) => sum + command.timeoutMs, 0);
    return onHost({ startToCloseTimeout: 2 * checksMs + 5 * 60_000, scheduleToCloseTimeout: 4 * checksMs + 20 * 60_000, heartbeatTimeout, retry: { initialInterval: 1_000, maximumInterval: 16_000 } });
  };
  /**
   * The post-merge watch (watch:): the watch commands on the landed commit, once or every every_ms for
   * window_ms. A command that fails there and passed on the first parent is a regression: the revert is
   * prepared and checked, the issue reopened with the evidence, and, once a person approves (the same
   * signal as a landing), the revert lands. Returns the run's result when it reverted, else null (Done).
   */
  const watchLanding = async (landedCommit: string, round: number, headCommit: string): Promise<IssueWorkflowResult | null> => {
    const watch = config.watch!;
    const target = config.landing.targetBranch;
    // The sandbox is done with: removed now, so the host has room while the watch goes on, and a host
    // lost meanwhile has nothing to rebuild (a lost host's sandbox is left to it, as at the end of a run).
    lastHead = '';
    await acts().removeSandbox({ workflowId, contract: settings }).catch((error: unknown) => {
      if (!hostLost(error)) throw error;
    });
    status.sandbox = null;
    const startedAt = Date.now();
    const state: WatchStatus = { commit: landedCommit, runs: 0, verdict: null, checks: [], parentChecks: [], ...(watch.everyMs ? { until: startedAt + watch.windowMs } : {}) };
    status.watch = state;
    setPhase('Watching', watchingEvent(watch, landedCommit, target, duration));
    await comment(watchingEvent(watch, landedCommit, target, duration));
    for (;;) {
      const pass = await onHostOrMoved('the watch', () => watchActs(watch).watchLanded.executeWithOptions(
        { summary: `Watch ${state.runs + 1}: ${watch.commands.map((command) => command.name).join(', ')} on ${landedCommit.slice(0, 12)}` },
        [{ workflowId, contract: settings, landedCommit }],
      ));
      Object.assign(state, { runs: state.runs + 1, parent: pass.parent, verdict: pass.verdict, checks: pass.checks.map(keepCheck), parentChecks: pass.parentChecks.map(keepCheck) });
      if (pass.verdict === 'failing_before') {
        await comment(failingBeforeEvent(state));
        return null;
      }
      if (pass.verdict === 'regression') break;
      if (!watch.everyMs || Date.now() + watch.everyMs > startedAt + watch.windowMs) {
        await comment(passedEvent(state));
        return null;
      }
      await sleep(watch.everyMs);
    }

    // A regression: the revert, checked, then the issue reopened with the evidence.
    const failed = state.checks.filter((check) => !check.passed && state.parentChecks.some((before) => before.name === check.name && before.passed)).map((check) => check.name);
    const revertInput = { workflowId, contract: settings, landedCommit, identifier: issue.identifier, title: issue.title, failed };
    const plan = await onHostOrMoved('the revert', () => landActs().prepareRevert.executeWithOptions({ summary: `Preparing the revert of ${landedCommit.slice(0, 12)}` }, [revertInput]));
    const approving = config.landing.requireApproval ? ' (approve it: `cadenza approve` or the approveLanding signal)' : '';
    const revertLine = plan.outcome === 'ready'
      ? `Cadenza prepared a revert, \`${plan.commit.slice(0, 12)}\`${watch.revert === 'pull_request' ? ', to open as a pull request' : ` on \`${target}\``}${approving}.`
      : plan.outcome === 'already' ? `\`${target}\` already reverts it (\`${plan.commit.slice(0, 12)}\`).`
        : `It cannot be reverted automatically: reverting it on \`${target}\` conflicts in ${plan.files.slice(0, 10).join(', ')}; revert it by hand.`;
    state.revert = plan.outcome === 'ready'
      ? { commit: plan.commit, onto: plan.onto, checks: plan.checks.map(keepCheck), outcome: 'awaiting_approval' }
      : plan.outcome === 'already' ? { commit: plan.commit, onto: plan.commit, checks: [], outcome: 'already_reverted' }
        : { commit: null, onto: plan.onto, checks: [], outcome: 'conflict', conflicts: plan.files.slice(0, 50) };
    await report(async () => {
      await trackerActs().commentOnIssue({
        tracker: config.tracker, issueId: issue.id, marker: regressionMarker(landedCommit), state: watch.reopenState,
        body: regressionComment(state, { identifier: issue.identifier, target, reopenState: watch.reopenState, revert: revertLine }),
      });
      status.trackerState = watch.reopenState;
    });
    const failedNames = failed.map((name) => `\`${name}\``).join(', ');
    await comment(`Watch: ${failedNames} failed on \`${landedCommit.slice(0, 12)}\` and passed on its first parent: a regression. ${revertLine} The issue is reopened (${watch.reopenState}) with the evidence.`);
    if (plan.outcome === 'conflict') return null;
    if (plan.outcome === 'already') {
      setPhase('Reverted', `The landing \`${landedCommit}\` was already reverted on \`${target}\` by \`${plan.commit}\`.`);
      return { phase: 'Reverted', landedCommit, revertCommit: plan.commit, rounds: round, tokens: status.tokens, turns: status.turns, model: status.model, headCommit };
    }

    let approvedBy: string | null = null;
    if (config.landing.requireApproval) {
      pending = null;
      status.decision = null;
      status.headCommit = plan.commit;
      setPhase('AwaitingApproval', revertDetails(state, { identifier: issue.identifier, workflowId, namespace: workflowInfo().namespace, target }));
      const decided = await condition(() => pending !== null, config.landing.approvalTimeoutMs, { summary: `waiting for approval of the revert ${plan.commit.slice(0, 12)}, up to ${duration(config.landing.approvalTimeoutMs)}` });
      status.headCommit = null;
      const decision = pending as IssueStatus['decision'];
      if (!decided || !decision) {
        state.revert.outcome = 'timed_out';
        await comment(`No decision on the revert \`${plan.commit.slice(0, 12)}\` within landing.approval_timeout_ms: the landing stays and nothing is reverted.`);
        return null;
      }
      status.decision = decision;
      state.revert.by = decision.by;
      if (decision.kind === 'rejected') {
        state.revert.outcome = 'declined';
        await comment(`Revert declined by ${decision.by} ("${decision.text ?? ''}"): the landing \`${landedCommit.slice(0, 12)}\` stays.`);
        return null;
      }
      approvedBy = decision.by;
    }
    setPhase('Landing', `Reverting \`${landedCommit}\`${approvedBy ? `, approved by ${approvedBy}` : ''}`);
    const reverted = await onHostOrMoved('the revert', () => landActs().landRevert.executeWithOptions(
      { summary: `Reverting ${landedCommit.slice(0, 12)} ${watch.revert === 'pull_request' ? 'by pull request' : `on ${target}`}` },
      [{ ...revertInput, revertCommit: plan.commit, approvedBy }],
    ));
    if (reverted.outcome === 'conflict') {
      Object.assign(state.revert, { outcome: 'conflict', conflicts: reverted.files.slice(0, 50) });
      await comment(`The revert could not be made on \`${target}\` as it is now: conflicts in ${reverted.files.slice(0, 10).join(', ')}; revert \`${landedCommit.slice(0, 12)}\` by hand.`);
      return null;
    }
    const by = approvedBy ? `, approved by ${approvedBy}` : '';
    if (reverted.outcome === 'pull_request') {
      Object.assign(state.revert, { outcome: 'pull_request', commit: reverted.commit, pullRequest: reverted.pullRequest });
      await comment(`Opened pull request #${reverted.pullRequest.number} to revert \`${landedCommit.slice(0, 12)}\`: ${reverted.pullRequest.url}${by}.`);
      setPhase('Done', `Landed as \`${landedCommit}\`; the watch found a regression and opened the revert as pull request ${reverted.pullRequest.url}.`);
      return { phase: 'Done', landedCommit, revertCommit: reverted.commit, rounds: round, tokens: status.tokens, turns: status.turns, model: status.model, headCommit };
    }
    Object.assign(state.revert, { outcome: 'reverted', commit: reverted.commit });
    status.phase = 'Reverted';
    await comment(`Reverted \`${landedCommit.slice(0, 12)}\` on \`${target}\` as \`${reverted.commit}\`${by}.`);
    setPhase('Reverted', `Landed as \`${landedCommit}\`, then reverted as \`${reverted.commit}\` on \`${target}\`${by}: ${failedNames} failed on the landing and passed before it.`);
    return { phase: 'Reverted', landedCommit, revertCommit: reverted.commit, rounds: round, tokens: status.tokens, turns: status.turns, model: status.model, headCommit };
  };

  try {
    const started = `Cadenza started working on ${issue.identifier} (workflow \`${workflowId}\`, branch \`${workBranch}\`).`;
    let baseCommit = '';
    let previousTranscript: string | null = null;
    let feedback: string | null = null;
    let failedProofRounds = 0;
    if (carried) {
      ({ baseCommit, lastHead, previousTranscript, feedback, failedProofRounds } = carried);
      lastRoundEnded = carried.lastRoundEnded ?? '';
    } else if (!lean) {
      const provisioned = await acts().provisionSandbox({ workflowId, contract: settings, workBranch });
      status.sandbox = provisioned.sandbox;
      await moveAndComment(config.tracker.inProgressState, started);
      baseCommit = lastHead = provisioned.baseCommit;
    }

    const firstRound = carried?.round ?? 1;
    for (let round = firstRound; ; round++) {
      if (boundedRounds && round > maxRounds) {
        fail(`the run used all ${maxRounds} rounds (agent.max_rounds) without landing; round ${round - 1} ended with: ${lastRoundEnded}. Nothing was landed; raise agent.max_rounds or start it again with \`cadenza start ${issue.identifier} --again\`.`, 'RoundsExhausted');
      }
      // Between rounds, a long history is handed over to a fresh run of the same workflow id, so a
      // run with many rounds never drags a huge history through replay. Nothing is in flight here.
      if (round > firstRound && historyIsLong()) {
        continuing = true;
        await condition(allHandlersFinished);
        const handover: CarriedState = {
          round, status: { ...status, proof: status.proof.slice(-PROOFS_CARRIED) }, baseCommit, lastHead,
          ...(reviewTranscript ? { reviewTranscript } : {}),
          previousTranscript, feedback, failedProofRounds, events, droppedEvents, latestProof, undelivered, lastRoundEnded,
          ...(hostQueue ? { hostQueue } : {}),
        };
        await continueAsNew<typeof issueWorkflow>({ ...input, carried: handover });
      }
      status.round = round;
      const firstProvisioning = lean && round === 1;
      if (firstProvisioning) {
        if (hostAffinity && !hostQueue) {
          const placement = await placeActs.placeRun.executeWithOptions({ summary: 'Placing the run on a worker host' }, [{ workflowId, contract: settings }]);
          hostQueue = placement.hostQueue;
          status.host = placement.host;
        }
        const provisioned = await onHostOrMoved('provisioning', () => acts().provisionSandbox({ workflowId, contract: settings, workBranch }));
        status.sandbox = provisioned.sandbox;
        baseCommit = lastHead = provisioned.baseCommit;
        await moveAndComment(config.tracker.inProgressState, started);
      }
      setPhase('Working');
      // Each round starts from a sandbox that exists and stands at the previous round's head, so a
      // reset to a round start (or a lost container) rebuilds or rewinds it. Patched: runs recorded
      // before this change replay without it.
      if (!firstProvisioning && patched('sandbox-each-round')) {
        await onHostOrMoved('provisioning', () => acts().provisionSandbox({ workflowId, contract: settings, workBranch, atCommit: lastHead }));
      }
      // What people asked this round (comments delivered now, a rejection later), for the progress note.
      let asked: NonNullable<ProgressEntry['people']> = [];
      if (undelivered.length) {
        feedback = [feedback, `New comments on the issue:\n${undelivered.map((c) => `- ${c.author}: ${c.body}`).join('\n')}`].filter(Boolean).join('\n\n');
        asked = undelivered.map((c) => ({ by: c.author, text: c.body, kind: 'comment' as const }));
        undelivered = [];
      }
      // Changes that landed under the work since the last prompt: the agent brings its branch up to date.
      const untold = (status.impact ?? []).filter((notice) => notice.toldInRound === undefined);
      if (untold.length) {
        feedback = [feedback, noticeFeedback(untold)].filter(Boolean).join('\n\n');
        for (const notice of untold) notice.toldInRound = round;
      }
      const session = await runSession({ round, previousTranscript, feedback, ...(status.progress ? { progressNote: status.progress.ref } : {}) });
      /** The round's entry in the progress note, written where the round ends. */
      const noteRound = (outcome: string) => writeNote(progressEntry(round, outcome, {
        tried: session.summary, proof: status.proof.at(-1)?.round === round ? status.proof.at(-1) : undefined, people: asked,
      }));
      if (!lean || config.hooks.afterRun) await onHostOrMoved('after_run', () => acts().runAfterRunHook({ workflowId, contract: settings }));
      previousTranscript = session.transcript.ref;
      status.turns += session.turns;
      status.attempt = session.attempt;
      status.tokens = {
        input: status.tokens.input + session.tokens.input,
        output: status.tokens.output + session.tokens.output,
        total: status.tokens.total + session.tokens.total,
      };
      if (status.model !== session.model) {
        status.model = session.model;
        upsertMemo({ model: session.model });
      }

      setPhase('Verifying');
      const { headCommit, stoppedProcesses, protectedChanged } = await onHostOrMoved('committing the work', () => acts().commitWork({
        workflowId, contract: settings, identifier: issue.identifier, title: issue.title, round, summary: session.summary, roundStart: lastHead, baseCommit,
      }));
      lastHead = headCommit;
      const checks: ProofCheck[] = [];
      for (const command of config.proof.commands) {
        checks.push(await onHostOrMoved(`check ${command.name}`, () => checkActs(command).runProofCheck.executeWithOptions({ summary: `Round ${round}: proof check ${command.name}` }, [{ workflowId, contract: settings, command, commit: headCommit, workBranch }])));
      }
      let baseTests: ProofCheck[] | undefined;
      const requiredCommands = config.proof.commands.filter((command) => command.required);
      if (hostProof && config.proof.baseTests !== false && protectedChanged?.length && requiredCommands.length) {
        const timeoutMs = requiredCommands.reduce((sum, command) => sum + command.timeoutMs, 0);
        baseTests = await onHostOrMoved("the base's tests", () => checkActs({ ...requiredCommands[0]!, timeoutMs }).runBaseTests.executeWithOptions(
          { summary: `Round ${round}: the base's tests on the new code` },
          [{ workflowId, contract: settings, baseCommit, headCommit, protectedChanged, workBranch }],
        ));
      }
      const proof = await onHostOrMoved('collecting the evidence', () => acts().collectEvidence({
        workflowId, contract: settings, identifier: issue.identifier, title: issue.title, round,
        baseCommit, headCommit, checks, agentSummary: session.summary, tokens: status.tokens, model: session.model,
        ...(stoppedProcesses?.length ? { stoppedBeforeChecks: stoppedProcesses } : {}),
        ...(baseTests ? { baseTests } : {}),
      }));
      // Work that passed its checks goes to the reviewer before anyone is asked to approve it.
      if (reviewing && proof.passed) await review(proof, round, baseCommit);
      const sentBack = changesRequested(proof);
      status.proof.push(proof);
      latestProof = proof.summary.ref;
      const failedChecks = proof.checks.filter((check) => !check.passed).map((check) => `${check.name} exited ${check.exitCode}`);
      const toReview = lean && proof.passed && !sentBack && config.landing.requireApproval;
      // Set while a person may approve it (the workpad written next says so); cleared when landing starts.
      if (proof.passed && !sentBack && config.landing.requireApproval) status.headCommit = headCommit;
      await comment(`Cadenza proof for round ${round}: ${proof.passed ? 'passed' : 'FAILED'}${failedChecks.length ? ` (${failedChecks.join(', ')})` : ''}${reviewEvent(proof, round + 1)}`, toReview ? config.tracker.reviewState : undefined);
      if (!proof.passed) {
        failedProofRounds += 1;
        await noteRound(`the proof failed${failedChecks.length ? ` (${failedChecks.join(', ')})` : ''}`);
        if (failedProofRounds >= config.proof.maxRounds) {
          fail(`proof failed in ${failedProofRounds} rounds (proof.max_rounds ${config.proof.maxRounds}); nothing was landed. Evidence: ${proof.walkthrough.ref}`, 'ProofFailed');
        }
        feedback = failureFeedback(proof, round);
        lastRoundEnded = `the proof failed${failedChecks.length ? ` (${failedChecks.join(', ')})` : ''}`;
        continue;
      }
      // A required reviewer asked for changes: another round, with its comments, counted like any other.
      if (sentBack) {
        feedback = reviewFeedback(proof.review!, round, headCommit);
        lastRoundEnded = reviewOutcome(proof.review!);
        await noteRound(lastRoundEnded);
        continue;
      }

      let approvedBy: string | null = null;
      if (config.landing.requireApproval) {
        pending = null;
        status.decision = null;
        setPhase('AwaitingApproval', approvalDetails(proof));
        // Lean runs moved the issue to review with the proof comment above.
        if (!lean) await moveTo(config.tracker.reviewState);
        const waiting = { summary: `waiting for approval of ${headCommit.slice(0, 12)}, up to ${duration(config.landing.approvalTimeoutMs)}` };
        const approvalDeadline = Date.now() + config.landing.approvalTimeoutMs;
        const awake = () => pending !== null || (impactNotices && noticesToShow);
        let decided = await condition(awake, config.landing.approvalTimeoutMs, waiting);
        // Woken by an impact notice: the workpad and the approver's details show it; the wait goes on to the same deadline.
        while (decided && pending === null) {
          noticesToShow = false;
          setPhase('AwaitingApproval', approvalDetails(proof));
          const latest = status.impact?.at(-1);
          if (latest) await comment(noticeEvent(latest));
          if (pending === null) decided = await condition(awake, Math.max(1, approvalDeadline - Date.now()), waiting);
        }
        if (!decided || !pending) {
          fail(`no approval or rejection arrived within landing.approval_timeout_ms (${config.landing.approvalTimeoutMs} ms)`, 'ApprovalTimedOut');
        }
        const decision: NonNullable<IssueStatus['decision']> = pending!;
        status.decision = decision;
        if (decision.kind === 'rejected') {
          status.headCommit = null;
          const rejected = `Landing rejected by ${decision.by}:\n\n> ${decision.text}\n\nCadenza starts round ${round + 1} with this feedback.`;
          feedback = `A reviewer (${decision.by}) rejected landing this change. Their feedback:\n\n${decision.text}\n\nAddress it, verify, and call finish again.`;
          lastRoundEnded = `landing rejected by ${decision.by}`;
          asked = [...asked, { by: decision.by, text: decision.text ?? '', kind: 'rejection' }];
          await noteRound(lastRoundEnded);
          if (lean) {
            await comment(rejected, config.tracker.inProgressState);
          } else {
            await comment(rejected);
            await moveTo(config.tracker.inProgressState);
          }
          continue;
        }
        approvedBy = decision.by;
      }

      setPhase('Landing');
      status.headCommit = null;
      const landed = await onHostOrMoved('landing', () => landActs().landChange.executeWithOptions(
        { summary: `Round ${round}: ${config.landing.strategy === 'pull_request' ? 'pull request' : 'merge'} into ${config.landing.targetBranch}` },
        [{ workflowId, contract: settings, identifier: issue.identifier, title: issue.title, workCommit: headCommit, workBranch, approvedBy, issueId: issue.id }],
      ));
      if (landed.outcome !== 'landed') {
        feedback = landed.outcome === 'conflict'
          ? `Landing found merge conflicts with ${config.landing.targetBranch} in: ${landed.files.join(', ')}. Bring the work branch up to date and resolve them.`
          : `The required checks failed on the result of merging into ${config.landing.targetBranch}:\n${landed.checks.filter((c) => !c.passed).map((c) => `${c.name}: ${c.excerpt}`).join('\n')}`;
        lastRoundEnded = landed.outcome === 'conflict' ? `a merge conflict with ${config.landing.targetBranch}` : `the required checks failed on the merge into ${config.landing.targetBranch}`;
        await noteRound(`landing stopped: ${landed.outcome === 'conflict'
          ? `a merge conflict with ${config.landing.targetBranch} in ${landed.files.slice(0, 10).join(', ')}`
          : `${lastRoundEnded} (${landed.checks.filter((c) => !c.passed).map((c) => `${c.name} exited ${c.exitCode}`).join(', ')})`}`);
        await comment(`Landing stopped: ${landed.outcome === 'conflict' ? 'merge conflict' : 'checks failed on the merged result'}. ${boundedRounds && round >= maxRounds ? 'No rounds are left (agent.max_rounds).' : 'Another round starts.'}`);
        continue;
      }
      const approval = `${approvedBy ? `, approved by ${approvedBy}` : ''}${status.decision?.text ? ` ("${status.decision.text}")` : ''}`;
      await noteRound(landed.pullRequest ? `pull request #${landed.pullRequest.number} opened${approval}` : `landed as ${landed.commit.slice(0, 12)}${approval}`);
      if (landed.pullRequest) {
        // People merge it; the issue waits in review and closes when the pull request merges.
        const { number, url, branch } = landed.pullRequest;
        status.pullRequest = { number, url, branch };
        // The workpad written next is the last one: it shows where the run ends (the phase is set after).
        status.phase = 'Done';
        await moveAndComment(
          config.tracker.reviewState,
          `Opened pull request #${number} for ${issue.identifier}: ${url} (\`${branch}\` into \`${config.landing.targetBranch}\`, head \`${landed.commit}\`)${approval}. The required checks passed on it merged into \`${config.landing.targetBranch}\`.${landed.pullRequest.leftAlone ? ` ${landed.pullRequest.leftAlone.note}` : ''}`,
        );
        setPhase('Done', `Pull request #${number} opened: ${url}`);
        return { phase: 'Done', landedCommit: null, pullRequest: status.pullRequest, rounds: round, tokens: status.tokens, turns: status.turns, model: status.model, headCommit: landed.commit };
      }
      status.landedCommit = landed.commit;
      // With watch:, the run goes on watching the landed commit (a regression is reverted once approved).
      const watching = Boolean(config.watch) && patched('post-merge-watch');
      status.phase = watching ? 'Watching' : 'Done';
      await moveAndComment(
        config.tracker.doneState,
        `Landed ${issue.identifier} as commit \`${landed.commit}\` on \`${config.landing.targetBranch}\` of ${config.repo.url}${approval}.`,
      );
      // The project's other open runs whose work this landing touches are told. Best effort: it stands either way.
      if (impactNotices) {
        try {
          const impact = await impactActs().noticeImpact.executeWithOptions(
            { summary: `Telling open runs whose work ${landed.commit.slice(0, 12)} touches` },
            [{ workflowId, contract: settings, identifier: issue.identifier, title: issue.title, landedCommit: landed.commit }],
          );
          if (impact.told.length) await comment(toldEvent(impact.told, config.landing.targetBranch));
        } catch (error) {
          // Cancelled after landing: the run still ends as landed.
          if (!isCancellation(error)) await comment(`Could not tell the other open runs about this landing: ${rootMessage(error)}`);
        }
      }
      // Watched after a merge landing (watch:); a regression is reverted once a person approves.
      if (watching) {
        const reverted = await watchLanding(landed.commit, round, headCommit);
        if (reverted) return reverted;
      }
      setPhase('Done', `Landed as \`${landed.commit}\` on \`${config.landing.targetBranch}\`${approvedBy ? `, approved by ${approvedBy}` : ''}: the merge of head \`${headCommit}\` after ${round} round(s), ${status.tokens.total} tokens.`);
      return { phase: 'Done', landedCommit: landed.commit, rounds: round, tokens: status.tokens, turns: status.turns, model: status.model, headCommit };
    }
  } catch (error) {
    if (error instanceof ContinueAsNew) throw error;
    if (isCancellation(error)) {
      setPhase('Cancelled');
      await CancellationScope.nonCancellable(() => comment(`Cadenza's run for ${issue.identifier} was cancelled in round ${status.round}; its sandbox was removed. Work so far is kept on branch \`${workBranch}\` of the run's snapshot.`));
      throw error;
    }
    status.lastError = rootMessage(error);
    setPhase('Failed', status.lastError);
    await CancellationScope.nonCancellable(() => comment(`Cadenza's run for ${issue.identifier} failed: ${status.lastError}`));
    throw error;
  } finally {
    // A lost host's sandbox cannot be removed from here: it is left for that host (its labels name the run).
    if (!continuing) await CancellationScope.nonCancellable(() => acts().removeSandbox({ workflowId, contract: settings }).catch((error: unknown) => {
      if (!hostLost(error)) throw error;
    }));
  }
}
