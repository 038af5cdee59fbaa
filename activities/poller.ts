/**
 * The tracker poll, run by the poller workflow on a Temporal Schedule: reload WORKFLOW.md (keeping the
 * last good contract when an edit is bad), reconcile running runs with the tracker, then dispatch.
 */
import { createHash } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/activity';
import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import { ContractError, loadContract, type Contract } from '../lib/contract/index.ts';
import { ineligibility, planDispatch, type RunningIssue } from '../lib/dispatch.ts';
import { commentsForNewRun, findIssueRun, startIssue, statusOf } from '../client/issues.ts';
import { TrackerError, type Issue } from '../lib/tracker/types.ts';
import { HISTORY_CAPS, issueWorkflowId, legacyIssueWorkflowId, statusQuery, trackerUpdateSignal, WORKPAD_MARKER, type Timing } from '../workflows/definitions.ts';
import type { ActivityDeps } from './deps.ts';

export interface LoadedContract {
  contract: Contract;
  /** Set when WORKFLOW.md is currently invalid and the last good contract is used instead. */
  reloadError: string | null;
}

export interface PollSummary {
  started: string[];
  waiting: Array<{ identifier: string; reason: string }>;
  cancelled: string[];
  updated: string[];
  errors: string[];
}

const describeError = (error: unknown) =>
  error instanceof ContractError || error instanceof TrackerError
    ? `${error.code}: ${error.message}`
    : error instanceof Error
      ? error.message
      : String(error);

export function createPollerActivities(deps: ActivityDeps) {
  const lastGood = new Map<string, Contract>();

  async function loadWorkflowContract(input: { workflowFile: string }): Promise<LoadedContract> {
    const pointer = `contract-${createHash('sha256').update(input.workflowFile).digest('hex').slice(0, 16)}`;
    try {
      const contract = loadContract(input.workflowFile, deps.env ?? process.env);
      lastGood.set(input.workflowFile, contract);
      await deps.artifacts.setPointer(pointer, contract);
      return { contract, reloadError: null };
    } catch (error) {
      const previous = lastGood.get(input.workflowFile) ?? (await deps.artifacts.getPointer<Contract>(pointer));
      const message = `${input.workflowFile} is invalid (${describeError(error)})`;
      if (!previous) throw ApplicationFailure.nonRetryable(`${message}, and there is no earlier good version to fall back on`, 'ContractError');
      deps.log?.(`${message}; keeping the last good contract`);
      return { contract: previous, reloadError: `${message}; the last good contract stays in use` };
    }
  }

  async function pollOnce(input: { contract: Contract; taskQueue: string; timing?: Timing }): Promise<PollSummary> {
    const { contract } = input;
    const { tracker: trackerConfig, agent, repo } = contract.config;
    if (!deps.temporal) throw ApplicationFailure.nonRetryable('this worker has no Temporal client for the poller', 'ConfigError');
    const client: Client = await deps.temporal();
    const tracker = deps.tracker(trackerConfig);
    const summary: PollSummary = { started: [], waiting: [], cancelled: [], updated: [], errors: [] };
    // This project's runs, and runs started before projects had ids (they keep the old id till they end).
    const prefixes = [...new Set([issueWorkflowId(contract.config, ''), legacyIssueWorkflowId(trackerConfig.kind, '')])];
    const terminal = new Set(trackerConfig.terminalStates.map((state) => state.toLowerCase()));

    // Open runs of this repository, keyed by identifier, with their tracker issue ids from the memo.
    const open = new Map<string, { workflowId: string; issueId: string }>();
    for await (const run of client.workflow.list({ query: `WorkflowType = 'issueWorkflow' AND ExecutionStatus = 'Running' AND CadenzaRepo = '${repo.url.replace(/'/g, "\\'")}'` })) {
      const prefix = prefixes.find((candidate) => run.workflowId.startsWith(candidate));
      if (prefix === undefined) continue;
      const memo = (run.memo ?? {}) as { issueId?: string };
      open.set(run.workflowId.slice(prefix.length), { workflowId: run.workflowId, issueId: memo.issueId ?? run.workflowId.slice(prefix.length) });
    }

    // Reconcile: a terminal issue cancels its run; any other change (state, human comments) is signalled.
    const running: RunningIssue[] = [];
    const watchingRuns = new Set<string>();
    let fresh: Issue[];
    try {
      fresh = open.size ? await tracker.fetchIssuesByIds([...open.values()].map((run) => run.issueId)) : [];
    } catch (error) {
      // A tracker outage leaves running work alone; the next poll tries again.
      summary.errors.push(`tracker unavailable, nothing reconciled or started: ${describeError(error)}`);
      return summary;
    }
    for (const issue of fresh) {
      const run = open.get(issue.identifier);
      if (!run) continue;
      const handle = client.workflow.getHandle(run.workflowId);
      try {
        const status = await handle.query(statusQuery);
        // A run watching what it landed (watch:) has no agent and no sandbox: it holds no slot, and the issue
        // it reopened on a regression waits for it to end.
        const watching = Boolean(status.watch);
        if (watching) watchingRuns.add(issue.identifier);
        if (terminal.has(issue.state.toLowerCase())) {
          // A run that landed moved its own issue to done and is only cleaning up: it keeps its slot. A
          // watching run is not cancelled either: the landing stands and its watch goes on.
          if (status.landedCommit || status.phase === 'Landing' || status.phase === 'Done') {
            if (!watching) running.push({ identifier: issue.identifier, state: issue.state });
          } else {
            await handle.cancel();
            summary.cancelled.push(issue.identifier);
          }
          continue;
        }
        if (!watching) running.push({ identifier: issue.identifier, state: issue.state });
        const comments = (await tracker.listComments(issue.id))
          .filter((comment) => !comment.body.startsWith(WORKPAD_MARKER))
          .map(({ id, author, body }) => ({ id, author, body }));
        // Only comments the run has not seen travel (each signal is in its history for good).
        const known = new Set(status.seenCommentIds ?? status.comments.map((comment) => comment.id));
        const unseen = comments.filter((comment) => !known.has(comment.id)).slice(-HISTORY_CAPS.comments);
        if (status.trackerState !== issue.state || unseen.length) {
          await handle.signal(trackerUpdateSignal, { state: issue.state, comments: unseen.map((comment) => ({ ...comment, body: comment.body.slice(0, HISTORY_CAPS.commentChars + 200) })) });
          summary.updated.push(issue.identifier);
        }
      } catch (error) {
        // Unknown state of this run: count it, so a slot is never handed out twice.
        if (!running.some((r) => r.identifier === issue.identifier)) running.push({ identifier: issue.identifier, state: issue.state });
        summary.errors.push(`${issue.identifier}: ${describeError(error)}`);
      }
    }
    // Runs whose issue the tracker no longer returns still hold their slots.
    for (const [identifier] of open) {
      if (!running.some((r) => r.identifier === identifier) && !summary.cancelled.includes(identifier) && !watchingRuns.has(identifier)) running.push({ identifier, state: '' });
    }

    // Dispatch.
    let candidates: Issue[];
    try {
      candidates = await tracker.fetchIssuesByStates(trackerConfig.activeStates);
    } catch (error) {
      summary.errors.push(`tracker unavailable, nothing started: ${describeError(error)}`);
      return summary;
    }
    const excluded = new Map<string, string>();
    const restartable = new Set<string>();
    for (const issue of candidates) {
      if (open.has(issue.identifier)) {
        excluded.set(issue.identifier, 'running');
        continue;
      }
      const closed = await statusOf(await findIssueRun(client, contract.config, issue.identifier));
      if (closed === 'RUNNING') {
        // Started so recently that visibility does not list it yet: it holds a slot all the same.
        excluded.set(issue.identifier, 'running');
        running.push({ identifier: issue.identifier, state: issue.state });
        continue;
      }
      // A landed issue that is active again was reopened: it gets a new run. A run that failed or was
      // stopped by a person is not restarted behind their back.
      if (closed === 'COMPLETED') restartable.add(issue.identifier);
      else if (closed) excluded.set(issue.identifier, `its last run ended ${closed.toLowerCase()}; start it again deliberately with \`cadenza start ${issue.identifier} --again\``);
    }
    const plan = planDispatch({ candidates, running, excluded, tracker: trackerConfig, agent });
    summary.waiting.push(...plan.waiting);
    for (const candidate of plan.start) {
      // Re-fetch just before starting: the issue may have moved since the list was read.
      const [issue] = await tracker.fetchIssuesByIds([candidate.id]);
      const reason = issue ? ineligibility(issue, trackerConfig) : 'no longer in the tracker';
      if (!issue || reason) {
        summary.waiting.push({ identifier: candidate.identifier, reason: reason ?? 'unknown' });
        continue;
      }
      try {
        await startIssue(client, { issue, contract, taskQueue: input.taskQueue, timing: input.timing, again: restartable.has(issue.identifier), comments: await commentsForNewRun(tracker, issue.id) });
        summary.started.push(issue.identifier);
      } catch (error) {
        if (error instanceof WorkflowExecutionAlreadyStartedError) continue;
        summary.errors.push(`${issue.identifier}: could not start: ${describeError(error)}`);
      }
    }
    if (summary.started.length || summary.cancelled.length || summary.errors.length) {
      deps.log?.(`poll: started [${summary.started.join(', ')}] cancelled [${summary.cancelled.join(', ')}] errors [${summary.errors.join('; ')}]`);
    }
    return summary;
  }

  return { loadWorkflowContract, pollOnce };
}
