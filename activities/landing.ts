/**
 * Landing: merge the work branch into the target inside the sandbox, re-run the required checks on
 * the merged tree, then fast-forward the target branch of the git remote. Idempotent: a retry that
 * finds this workflow's merge already on the target does nothing.
 */
import { ApplicationFailure } from '@temporalio/activity';
import type { Contract } from '../lib/contract/index.ts';
import { TRANSFER_DIR, getFile, putFile, sh, shOk } from '../lib/sandbox/workspace.ts';
import type { ProofCheck } from '../workflows/definitions.ts';
import type { ActivityDeps } from './deps.ts';
import type { createProofActivities } from './proof.ts';
import { sandboxFor } from './sandbox.ts';

export interface LandInput {
  workflowId: string;
  contract: Contract;
  identifier: string;
  title: string;
  workCommit: string;
  /** Where the sandbox goes back to after landing, by name: a retried landing starts on the landing branch. */
  workBranch: string;
  approvedBy: string | null;
}

export type LandResult =
  /** `checks` is empty when the merged tree was the tree the proof had already tested. */
  | { outcome: 'landed'; commit: string; alreadyLanded: boolean; checks: ProofCheck[] }
  | { outcome: 'conflict'; files: string[] }
  | { outcome: 'checks_failed'; checks: ProofCheck[] };

const LANDING_BRANCH = 'cadenza/landing';

export function createLandingActivities(deps: ActivityDeps, proof: ReturnType<typeof createProofActivities>) {
  async function landChange(input: LandInput): Promise<LandResult> {
    const { contract, workflowId } = input;
    const { landing, repo, proof: proofConfig } = contract.config;
    if (landing.strategy !== 'merge') {
      throw ApplicationFailure.nonRetryable(`landing.strategy ${landing.strategy} needs the GitHub tracker adapter, which this build does not have yet; use landing.strategy: merge`, 'UnsupportedLanding');
    }
    const trailer = `Cadenza-Workflow: ${workflowId}`;
    const mirror = deps.mirrors.get(repo.url);
    await mirror.refresh();
    const targetRef = `refs/heads/${landing.targetBranch}`;
    const targetTip = await mirror.resolve(targetRef);
    if (!targetTip) throw ApplicationFailure.nonRetryable(`landing.target_branch ${landing.targetBranch} does not exist in ${repo.url}`, 'RepoUnavailable');

    // Already landed by an earlier attempt (the push went through, the reply was lost).
    if (await mirror.isAncestor(input.workCommit, targetRef).catch(() => false)) {
      const commit = (await mirror.findCommitWithTrailer(landing.targetBranch, trailer)) ?? targetTip;
      return { outcome: 'landed', commit, alreadyLanded: true, checks: [] };
    }

    const sandbox = sandboxFor(deps, workflowId, contract);
    await putFile(sandbox, TRANSFER_DIR, 'target.bundle', await mirror.bundle([targetRef]));
    await shOk(sandbox, `git fetch --quiet ${TRANSFER_DIR}/target.bundle "+${targetRef}:refs/remotes/origin/${landing.targetBranch}"`);
    await shOk(sandbox, `git checkout --quiet -B ${LANDING_BRANCH} refs/remotes/origin/${landing.targetBranch}`);
    const message = [
      `Land ${input.identifier}: ${input.title}`,
      '',
      ...(input.approvedBy ? [`Approved-by: ${input.approvedBy}`] : ['Landed without approval (landing.require_approval: false)']),
      trailer,
    ].join('\n');
    const merge = await sh(sandbox, `git -c core.hooksPath=/dev/null -c user.name="Cadenza" -c user.email=cadenza@cadenza.invalid merge --no-ff -m "$MESSAGE" ${input.workCommit}`, { env: { MESSAGE: message } });
    if (merge.exitCode !== 0) {
      const files = (await sh(sandbox, 'git diff --name-only --diff-filter=U')).stdout.split('\n').filter(Boolean);
      await sh(sandbox, 'git merge --abort');
      await restoreWorkBranch(sandbox, input.workBranch);
      if (files.length === 0) throw new Error(`git merge failed: ${(merge.stderr || merge.stdout).trim()}`);
      return { outcome: 'conflict', files };
    }

    // The checks run again on exactly what will land, unless that is byte for byte the tree the proof
    // just tested (the target has not moved since the work branch left it).
    const checks: ProofCheck[] = [];
    const mergedTree = (await shOk(sandbox, 'git rev-parse HEAD^{tree}')).trim();
    const provenTree = (await shOk(sandbox, `git rev-parse ${input.workCommit}^{tree}`)).trim();
    if (mergedTree !== provenTree) {
      for (const command of proofConfig.commands.filter((c) => c.required)) {
        checks.push(await proof.runProofCheck({ workflowId, contract, command, label: `${command.name} (merged)` }));
      }
    }
    if (checks.some((check) => !check.passed)) {
      await restoreWorkBranch(sandbox, input.workBranch);
      return { outcome: 'checks_failed', checks };
    }

    await shOk(sandbox, `git bundle create --quiet ${TRANSFER_DIR}/out/landing.bundle ${LANDING_BRANCH}`);
    const mergeCommit = await mirror.fetchBundle(await getFile(sandbox, `${TRANSFER_DIR}/out/landing.bundle`), `refs/heads/${LANDING_BRANCH}`, `refs/cadenza/landing/${input.identifier}`);
    await restoreWorkBranch(sandbox, input.workBranch);
    try {
      await mirror.push(mergeCommit, landing.targetBranch);
    } catch (error) {
      // The target moved since we fetched it: the retry merges again on the new tip.
      throw ApplicationFailure.retryable(`push to ${landing.targetBranch} was rejected: ${(error as Error).message}`, 'TargetMoved');
    }
    return { outcome: 'landed', commit: mergeCommit, alreadyLanded: false, checks };
  }

  async function restoreWorkBranch(sandbox: ReturnType<typeof sandboxFor>, workBranch: string) {
    await shOk(sandbox, `git checkout --quiet --force ${workBranch} && git clean -fdq`);
  }

  return { landChange };
}
