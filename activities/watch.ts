/**
 * The post-merge watch (WORKFLOW.md's `watch:`), decided on the host like landing: the watch commands
 * run in fresh checker containers on the commit a merge landing pushed; a command that fails there is
 * run again on its first parent (the target as it was before), and only a failure the landing brought
 * is a regression. A regression's revert is built in the mirror (nothing of the agent's runs), checked
 * with the same commands, and pushed to the target, or opened as a pull request, only once a person
 * approved it. Idempotent like landing: a retry finds the revert already on the target (its trailer),
 * a pushed branch at its commit, an opened pull request open.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { codeHostConfig } from '../lib/codehost/index.ts';
import type { ContractSettings, WatchConfig } from '../lib/contract/index.ts';
import { sandboxKey } from '../lib/sandbox/names.ts';
import { TrackerError } from '../lib/tracker/types.ts';
import type { ProofCheck, PullRequestRef } from '../workflows/definitions.ts';
import type { ActivityDeps } from './deps.ts';
import { ownBranch } from './landing.ts';
import type { createProofActivities } from './proof.ts';
import { runKey } from './run-key.ts';

export interface WatchInput {
  workflowId: string;
  contract: ContractSettings;
  /** The commit the merge landing pushed to the target. */
  landedCommit: string;
}

/** One pass of the watch: what the commands said on the landed commit and, where they failed, on its first parent. */
export interface WatchPass {
  commit: string;
  parent: string;
  checks: ProofCheck[];
  /** The commands that failed on the landed commit, run on its first parent (empty when all passed). */
  parentChecks: ProofCheck[];
  /** regression: a command fails on the landed commit and passed on its first parent; failing_before: it failed there too. */
  verdict: 'passed' | 'regression' | 'failing_before';
}

export interface RevertInput extends WatchInput {
  identifier: string;
  title: string;
  /** The commands that showed the regression (their names go into the revert's message). */
  failed: string[];
}

export type RevertPlan =
  /** `checks`: the failing commands on the revert (none when its tree is the first parent's, which they just passed on). */
  | { outcome: 'ready'; commit: string; onto: string; checks: ProofCheck[] }
  | { outcome: 'conflict'; onto: string; files: string[] }
  /** The target already holds a revert of the landed commit (a retry, or a person was quicker). */
  | { outcome: 'already'; commit: string };

export interface LandRevertInput extends RevertInput {
  /** The revert the approver saw (on `onto`); re-made on the target's new tip if it moved since. */
  revertCommit: string;
  approvedBy: string | null;
}

export type RevertResult =
  | { outcome: 'reverted'; commit: string; alreadyReverted: boolean }
  | { outcome: 'pull_request'; commit: string; pullRequest: PullRequestRef }
  | { outcome: 'conflict'; files: string[] };

/** The trailer that marks a commit as Cadenza's revert of `commit`. */
export const revertTrailer = (commit: string) => `Cadenza-Reverts: ${commit}`;

export function createWatchActivities(deps: ActivityDeps, proof: ReturnType<typeof createProofActivities>) {
  const checksOn = async (input: WatchInput, commands: WatchConfig['commands'], commit: string, label: string): Promise<ProofCheck[]> => {
    const checks: ProofCheck[] = [];
    for (const command of commands) {
      checks.push(await proof.runProofCheck({ workflowId: input.workflowId, contract: input.contract, command, commit, label: `${command.name} (${label})`, workBranch: input.contract.config.landing.targetBranch }));
    }
    return checks;
  };
  const watchOf = (contract: ContractSettings): WatchConfig => {
    const watch = contract.config.watch;
    if (!watch) throw ApplicationFailure.nonRetryable('this contract has no watch: section', 'ContractError');
    return watch;
  };

  async function watchLanded(input: WatchInput): Promise<WatchPass> {
    const watch = watchOf(input.contract);
    const mirror = deps.mirrors.get(input.contract.config.repo.url);
    await mirror.refresh();
    if (!(await mirror.resolve(input.landedCommit))) throw ApplicationFailure.nonRetryable(`watchLanded: the landed commit ${input.landedCommit} is not in ${input.contract.config.repo.url}`, 'WorkLost');
    const parent = await mirror.firstParent(input.landedCommit);
    const checks = await checksOn(input, watch.commands, input.landedCommit, 'watch');
    const failing = watch.commands.filter((command) => !checks.find((check) => check.name === command.name)!.passed);
    if (!failing.length) return { commit: input.landedCommit, parent, checks, parentChecks: [], verdict: 'passed' };
    const parentChecks = await checksOn(input, failing, parent, 'watch, before the landing');
    // A regression only where a command passed before the landing: a target already broken is not this change's.
    const verdict = parentChecks.some((check) => check.passed) ? 'regression' : 'failing_before';
    return { commit: input.landedCommit, parent, checks, parentChecks, verdict };
  }

  /** The revert of the landed commit on the target's tip, and the failing commands run on it. */
  async function prepareRevert(input: RevertInput): Promise<RevertPlan> {
    const { landing, repo } = input.contract.config;
    const mirror = deps.mirrors.get(repo.url);
    await mirror.refresh();
    const onto = await mirror.resolve(`refs/heads/${landing.targetBranch}`);
    if (!onto) throw ApplicationFailure.nonRetryable(`landing.target_branch ${landing.targetBranch} does not exist in ${repo.url}`, 'RepoUnavailable');
    const already = await mirror.findCommitWithTrailer(landing.targetBranch, revertTrailer(input.landedCommit));
    if (already) return { outcome: 'already', commit: already };
    const made = await revertOn(input, onto);
    if ('files' in made) return { outcome: 'conflict', onto, files: made.files };
    await mirror.setRef(`refs/cadenza/${sandboxKey(runKey(input))}/revert`, made.commit);
    const before = await mirror.treeOf(await mirror.firstParent(input.landedCommit));
    const failing = watchOf(input.contract).commands.filter((command) => input.failed.includes(command.name));
    const checks = made.tree === before ? [] : await checksOn(input, failing, made.commit, 'watch, on the revert');
    return { outcome: 'ready', commit: made.commit, onto, checks };
  }

  /** Pushes the approved revert to the target (re-made on its tip if it moved), or opens it as a pull request. */
  async function landRevert(input: LandRevertInput): Promise<RevertResult> {
    const { landing, repo } = input.contract.config;
    const mirror = deps.mirrors.get(repo.url);
    await mirror.refresh();
    const target = landing.targetBranch;
    const already = await mirror.findCommitWithTrailer(target, revertTrailer(input.landedCommit));
    if (already) return { outcome: 'reverted', commit: already, alreadyReverted: true };
    const tip = await mirror.resolve(`refs/heads/${target}`);
    if (!tip) throw ApplicationFailure.nonRetryable(`landing.target_branch ${target} does not exist in ${repo.url}`, 'RepoUnavailable');
    let commit = input.revertCommit;
    if (!(await mirror.resolve(commit)) || (await mirror.firstParent(commit)) !== tip) {
      const made = await revertOn(input, tip);
      if ('files' in made) return { outcome: 'conflict', files: made.files };
      commit = made.commit;
    }
    if (input.contract.config.watch?.revert === 'pull_request') return openRevertPullRequest(input, commit);
    try {
      await mirror.push(commit, target);
    } catch (error) {
      throw ApplicationFailure.retryable(`push of the revert to ${target} was rejected: ${(error as Error).message}`, 'TargetMoved');
    }
    return { outcome: 'reverted', commit, alreadyReverted: false };
  }

  async function revertOn(input: RevertInput, onto: string): Promise<{ commit: string; tree: string } | { files: string[] }> {
    const mirror = deps.mirrors.get(input.contract.config.repo.url);
    if (!(await mirror.isAncestor(input.landedCommit, onto).catch(() => false))) {
      throw ApplicationFailure.nonRetryable(`the landed commit ${input.landedCommit} is no longer on ${input.contract.config.landing.targetBranch} (was the branch rewritten?): there is nothing to revert`, 'LandingGone');
    }
    const reverted = await mirror.revertTree(input.landedCommit, onto);
    if (reverted.conflicts.length) return { files: reverted.conflicts };
    const message = [
      `Revert ${input.identifier}: ${input.title}`,
      '',
      `This reverts the landing ${input.landedCommit}: after it landed, ${input.failed.map((name) => `\`${name}\``).join(', ')} failed on it and passed on its first parent.`,
      '',
      revertTrailer(input.landedCommit),
      `Cadenza-Workflow: ${input.workflowId}`,
    ].join('\n');
    return { commit: await mirror.commitTree(reverted.tree, [onto], message), tree: reverted.tree };
  }

  async function openRevertPullRequest(input: LandRevertInput, commit: string): Promise<RevertResult> {
    const config = input.contract.config;
    const hostConfig = codeHostConfig(config);
    if (!hostConfig) throw ApplicationFailure.nonRetryable('watch.revert pull_request has no GitHub repository to open the pull request in (set landing.github.repository)', 'UnsupportedLanding');
    const mirror = deps.mirrors.get(config.repo.url);
    const branch = ownBranch(`revert-${input.identifier}`);
    const pushed = await mirror.pushOwned(commit, branch, `refs/cadenza/${sandboxKey(runKey(input))}/pushed/${branch}`).catch((error: Error) => {
      throw ApplicationFailure.retryable(`push of ${branch} to ${config.repo.url} failed: ${error.message}`, 'PushFailed');
    });
    if (pushed.outcome === 'not_owned') {
      throw ApplicationFailure.nonRetryable(`branch ${branch} of ${config.repo.url} is at ${pushed.tip}, which Cadenza did not push there; delete it and approve the revert again`, 'BranchNotOwned');
    }
    try {
      const opened = await deps.codeHost(hostConfig).openPullRequest({
        head: branch, base: config.landing.targetBranch, title: `Revert ${input.identifier}: ${input.title}`,
        body: [
          `This reverts ${input.landedCommit}, which landed ${input.identifier}: after it landed, ${input.failed.map((name) => `\`${name}\``).join(', ')} failed on it and passed on its first parent.`,
          '',
          input.approvedBy ? `Approved by ${input.approvedBy} in Cadenza.` : 'Opened without approval (landing.require_approval: false).',
          '',
          revertTrailer(input.landedCommit),
          `Cadenza-Workflow: ${input.workflowId}`,
        ].join('\n'),
      });
      return { outcome: 'pull_request', commit, pullRequest: { number: opened.number, url: opened.url, branch } };
    } catch (error) {
      if (error instanceof TrackerError && (error.code === 'tracker_invalid_data' || error.code === 'tracker_not_found')) {
        throw ApplicationFailure.nonRetryable(`could not open the revert's pull request from ${branch}: ${error.message}`, 'PullRequestRefused');
      }
      throw error;
    }
  }

  return { watchLanded, prepareRevert, landRevert };
}
