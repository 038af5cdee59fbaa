/**
 * Landing, decided on the host: the merge of the approved head into the target is built in Cadenza's
 * mirror (git merge-tree and commit-tree; nothing runs in the agent's sandbox), the required checks
 * run again on that merged commit in fresh checker containers, and exactly that commit, whose parents
 * are the target tip and the approved head, is pushed (merge). With pull_request the approved head is
 * pushed as the work branch and a pull request opened on the code host (lib/codehost: GitHub, in
 * landing.github's repository), which people merge. Cadenza pushes only to branches it owns: one it
 * created, or one still at the commit it last pushed there (recorded in the host mirror). A branch the
 * tracker names that is someone else's is left alone, and the work goes to Cadenza's own
 * `cadenza/<identifier>` instead. Idempotent: a retry that finds the approved head already on the
 * target does nothing, a retried push finds the branch at its commit, and a retried pull request
 * finds the one it opened.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { codeHostConfig, type CodeHostConfig } from '../lib/codehost/index.ts';
import type { ContractSettings } from '../lib/contract/index.ts';
import type { OwnedPush } from '../lib/git.ts';
import { sandboxKey } from '../lib/sandbox/names.ts';
import { TrackerError } from '../lib/tracker/types.ts';
import type { ProofCheck } from '../workflows/definitions.ts';
import type { ActivityDeps } from './deps.ts';
import type { createProofActivities } from './proof.ts';
import { runKey } from './run-key.ts';

export interface LandInput {
  workflowId: string;
  contract: ContractSettings;
  identifier: string;
  title: string;
  /** The approved head: exactly what the approver saw proven. */
  workCommit: string;
  /** The branch a pull request is opened from: the tracker's branch name, else `cadenza/<identifier>`. */
  workBranch: string;
  approvedBy: string | null;
  /** The tracker's issue id, for the pull request's description (absent in runs from before pull requests). */
  issueId?: string;
}

export interface OpenedPullRequest {
  number: number;
  url: string;
  /** The work branch it was opened from, on the remote. */
  branch: string;
  /** False when a retry (or an earlier round) had opened it already; it now shows the new head. */
  created: boolean;
  /**
   * Set when the work branch the tracker named exists on the remote and is someone else's (at a commit
   * Cadenza did not push there): it was left untouched, and `branch` is Cadenza's own branch instead.
   * `note` says so in a sentence, for the workpad.
   */
  leftAlone?: { branch: string; tip: string; note: string };
}

/** Where the host mirror records the commit Cadenza last pushed to `branch` of the remote for a run: what makes the branch Cadenza's. */
export const pushedRef = (runKey: string, branch: string) => `refs/cadenza/${sandboxKey(runKey)}/pushed/${branch}`;

/** Cadenza's own branch for an issue (the workflow's work branch when the tracker names none). */
export const ownBranch = (identifier: string) =>
  `cadenza/${identifier}`.replace(/[^A-Za-z0-9._/-]/g, '-').replace(/\.\.+/g, '.').replace(/^[-/]+/, '') || 'work';

export type LandResult =
  /**
   * `checks` is empty when the merged tree was the tree the proof had already tested. With a pull
   * request, `commit` is the work commit it shows, not a commit on the target.
   */
  | { outcome: 'landed'; commit: string; alreadyLanded: boolean; checks: ProofCheck[]; pullRequest?: OpenedPullRequest }
  | { outcome: 'conflict'; files: string[] }
  | { outcome: 'checks_failed'; checks: ProofCheck[] };

export function createLandingActivities(deps: ActivityDeps, proof: ReturnType<typeof createProofActivities>) {
  async function landChange(input: LandInput): Promise<LandResult> {
    const { contract, workflowId } = input;
    const { landing, repo, proof: proofConfig } = contract.config;
    const pullRequestsIn = landing.strategy === 'pull_request' ? codeHostOf(contract) : null;
    const trailer = `Cadenza-Workflow: ${workflowId}`;
    const mirror = deps.mirrors.get(repo.url);
    await mirror.refresh();
    const targetRef = `refs/heads/${landing.targetBranch}`;
    const targetTip = await mirror.resolve(targetRef);
    if (!targetTip) throw ApplicationFailure.nonRetryable(`landing.target_branch ${landing.targetBranch} does not exist in ${repo.url}`, 'RepoUnavailable');
    if (!(await mirror.resolve(input.workCommit))) throw ApplicationFailure.nonRetryable(`landChange: the approved commit ${input.workCommit} is not in the host mirror`, 'WorkLost');

    // Already landed by an earlier attempt (the push went through, the reply was lost).
    if ((await mirror.isAncestor(input.workCommit, targetRef).catch(() => false))) {
      const commit = (await mirror.findCommitWithTrailer(landing.targetBranch, trailer)) ?? targetTip;
      return { outcome: 'landed', commit, alreadyLanded: true, checks: [] };
    }

    const merged = await mirror.mergeTree(targetTip, input.workCommit);
    if (merged.conflicts.length) return { outcome: 'conflict', files: merged.conflicts };
    const message = [
      `Land ${input.identifier}: ${input.title}`,
      '',
      ...(input.approvedBy ? [`Approved-by: ${input.approvedBy}`, `Approved-commit: ${input.workCommit}`] : ['Landed without approval (landing.require_approval: false)']),
      trailer,
    ].join('\n');
    const mergeCommit = await mirror.commitTree(merged.tree, [targetTip, input.workCommit], message);
    const landingRef = `refs/cadenza/${sandboxKey(runKey(input))}/landing`;
    // The approved head of this issue's previous landing: what a pull request landing pushed before pushes were recorded.
    const landedBefore = await mirror.resolve(`${landingRef}^2`);
    await mirror.setRef(landingRef, mergeCommit);

    // The checks run again on exactly what will land, unless that is byte for byte the tree the proof
    // just tested (the target has not moved since the work branch left it).
    const checks: ProofCheck[] = [];
    if (merged.tree !== (await mirror.treeOf(input.workCommit))) {
      for (const command of proofConfig.commands.filter((c) => c.required)) {
        checks.push(await proof.runProofCheck({ workflowId, contract, command, label: `${command.name} (merged)`, commit: mergeCommit, workBranch: landing.targetBranch }));
      }
    }
    if (checks.some((check) => !check.passed)) return { outcome: 'checks_failed', checks };

    if (pullRequestsIn) {
      return { outcome: 'landed', commit: input.workCommit, alreadyLanded: false, checks, pullRequest: await openPullRequest(input, pullRequestsIn, landedBefore) };
    }
    try {
      await mirror.push(mergeCommit, landing.targetBranch);
    } catch (error) {
      // The target moved since we fetched it: the retry merges again on the new tip.
      throw ApplicationFailure.retryable(`push to ${landing.targetBranch} was rejected: ${(error as Error).message}`, 'TargetMoved');
    }
    return { outcome: 'landed', commit: mergeCommit, alreadyLanded: false, checks };
  }

  /**
   * Pushes the approved head to a branch Cadenza owns (rewinding it if a reset or a new run moved the
   * work back): the work branch, or, when that is someone else's, `cadenza/<identifier>`. Then opens
   * the pull request from it, or finds the one already open.
   */
  async function openPullRequest(input: LandInput, hostConfig: CodeHostConfig, landedBefore: string | undefined): Promise<OpenedPullRequest> {
    const { landing, repo, tracker } = input.contract.config;
    const host = deps.codeHost(hostConfig);
    const mirror = deps.mirrors.get(repo.url);
    const push = async (branch: string): Promise<OwnedPush> => {
      const record = pushedRef(runKey(input), branch);
      try {
        // Runs that landed before pushes were recorded: their last landing's approved head is what they pushed.
        if (landedBefore && !(await mirror.resolve(record))) await mirror.setRef(record, landedBefore);
        return await mirror.pushOwned(input.workCommit, branch, record);
      } catch (error) {
        // Also a lost lease: someone pushed to the branch meanwhile. The retry looks at it again.
        throw ApplicationFailure.retryable(`push of ${branch} to ${repo.url} failed: ${(error as Error).message}`, 'PushFailed');
      }
    };
    const notOwned = (branch: string, tip: string, before = '') => ApplicationFailure.nonRetryable(
      `${before}branch ${branch} of ${repo.url} is at ${tip}, which Cadenza did not push there: it is someone else's branch and Cadenza will not overwrite it. Delete it (or give the issue another branch name) and run the issue again`,
      'BranchNotOwned',
    );

    let branch = input.workBranch;
    let leftAlone: OpenedPullRequest['leftAlone'];
    const pushed = await push(branch);
    if (pushed.outcome === 'not_owned') {
      const own = ownBranch(input.identifier);
      if (own === branch) throw notOwned(branch, pushed.tip);
      const note = `Branch \`${branch}\` of ${repo.url} is someone else's (at \`${pushed.tip.slice(0, 12)}\`, which Cadenza did not push), so Cadenza left it alone and pushed the work to its own branch \`${own}\`.`;
      leftAlone = { branch, tip: pushed.tip, note };
      const ownPushed = await push(own);
      if (ownPushed.outcome === 'not_owned') throw notOwned(own, ownPushed.tip, `the tracker's branch ${branch} is someone else's and so is Cadenza's own: `);
      branch = own;
    }

    const body = [
      `${input.identifier}: ${input.title}`,
      '',
      input.approvedBy ? `Approved for landing by ${input.approvedBy} in Cadenza, after its proof of work passed.` : 'Opened without approval (landing.require_approval: false), after its proof of work passed.',
      `The required checks passed on this branch merged into \`${landing.targetBranch}\`.`,
      ...(leftAlone ? [`The issue names branch \`${leftAlone.branch}\`, which is someone else's: Cadenza left it alone and opened this pull request from its own branch.`] : []),
      '',
      host.issueLine({ tracker, id: input.issueId, identifier: input.identifier }),
      '',
      `Cadenza-Workflow: ${input.workflowId}`,
    ].join('\n');
    try {
      const opened = await host.openPullRequest({
        head: branch, base: landing.targetBranch, title: `${input.identifier}: ${input.title}`, body,
      });
      return { number: opened.number, url: opened.url, branch, created: opened.created, ...(leftAlone ? { leftAlone } : {}) };
    } catch (error) {
      // Bad data will not get better by retrying; an outage, a rate limit or a token being fixed may.
      if (error instanceof TrackerError && (error.code === 'tracker_invalid_data' || error.code === 'tracker_not_found')) {
        throw ApplicationFailure.nonRetryable(`could not open a pull request from ${branch} into ${landing.targetBranch}: ${error.message}`, 'PullRequestRefused');
      }
      throw error;
    }
  }

  /** Where this contract's pull requests go (lib/codehost decides from landing.github or the GitHub tracker). */
  function codeHostOf(contract: ContractSettings): CodeHostConfig {
    const host = codeHostConfig(contract.config);
    if (!host) throw ApplicationFailure.nonRetryable('landing.strategy pull_request has no GitHub repository to open the pull request in (set landing.github.repository)', 'UnsupportedLanding');
    return host;
  }

  return { landChange };
}
