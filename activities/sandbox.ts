/**
 * Sandbox activities: create or re-attach the issue's container, bring the repository in at the base
 * branch on a work branch, run the hooks inside, and remove it all on the way out.
 */
import { ApplicationFailure } from '@temporalio/activity';
import type { ContractSettings } from '../lib/contract/index.ts';
import type { RepoMirror } from '../lib/git.ts';
import { SandboxLostError, ensureSandbox, reattachSandbox, removeSandbox as removeContainer, sandboxExists } from '../lib/sandbox/container.ts';
import { HOST_LABEL, containerName, sandboxKey } from '../lib/sandbox/names.ts';
import { REPO_DIR, TRANSFER_DIR, putFile, sh, shOk, type Sandbox } from '../lib/sandbox/workspace.ts';
import type { ActivityDeps } from './deps.ts';
import { clearEgressLog, runEgress, withEgress } from './egress.ts';
import { runKey } from './run-key.ts';

const HOOK_OUTPUT_LIMIT = 2048;

export interface ProvisionInput {
  workflowId: string;
  contract: ContractSettings;
  workBranch: string;
  /**
   * Where the work branch must stand (the previous round's head). A reset run, or a run whose sandbox
   * was lost, gets its workspace rebuilt or rewound to exactly this commit.
   */
  atCommit?: string | null;
}

export interface ProvisionResult {
  sandbox: string;
  baseCommit: string;
  reattached: boolean;
  /** True when the work branch was restored from its last exported snapshot. */
  restored: boolean;
}

/** The ref under which a run's work branch is kept in the host mirror, so a lost sandbox can be rebuilt. */
export const workSnapshotRef = (runKey: string) => `refs/cadenza/${sandboxKey(runKey)}/work`;

/**
 * Copies the work snapshot to the git remote (same ref), so another host can rebuild the sandbox when
 * this one is lost; `undefined` deletes it there. A remote that refuses leaves the snapshot on this
 * host only: logged, not fatal.
 */
export async function publishSnapshot(deps: ActivityDeps, mirror: RepoMirror, key: string, commit: string | undefined): Promise<void> {
  await mirror.publishRef(workSnapshotRef(key), commit).catch((error: Error) => {
    deps.log?.(`the work snapshot stays on this host only: ${error.message.split('\n')[0]}`);
  });
}

/**
 * The run's sandbox for commands and file copies. A command that finds the container stopped or gone
 * (the Docker engine restarted) re-attaches it first: every activity survives an engine restart.
 */
export function sandboxFor(deps: ActivityDeps, key: string, contract: ContractSettings): Sandbox {
  return {
    docker: deps.docker,
    container: containerName(key),
    user: contract.config.sandbox.user,
    reattach: () => reattach(deps, key, contract),
  };
}

/**
 * Makes sure the provisioned sandbox runs: a stopped container is started, a missing one is created
 * again on its workspace volume. A lost workspace volume cannot be fixed by a retry.
 */
export async function reattach(deps: ActivityDeps, key: string, contract: ContractSettings): Promise<void> {
  try {
    const outcome = await reattachSandbox(deps.docker, key, contract.config.sandbox);
    if (outcome === 'started') deps.log?.(`sandbox ${containerName(key)} had stopped (did the Docker engine restart?); started it again`);
    if (outcome === 'recreated') deps.log?.(`sandbox ${containerName(key)} was gone; created it again on its workspace volume`);
  } catch (error) {
    if (error instanceof SandboxLostError) throw ApplicationFailure.nonRetryable(error.message, 'WorkspaceLost');
    throw error;
  }
}

export function createSandboxActivities(deps: ActivityDeps) {
  /** Runs a hook in the setup phase's egress (after_create and before_run install what the work needs). */
  async function runHook(sandbox: Sandbox, key: string, contract: ContractSettings, name: string, script: string | null): Promise<{ ok: boolean; output: string }> {
    if (!script) return { ok: true, output: '' };
    const policy = await runEgress(deps, contract);
    return withEgress(deps, deps.docker, sandbox.container, key, 'setup', policy, async (egress) => {
      await egress.ready();
      const result = await sh(sandbox, script, { timeoutMs: contract.config.hooks.timeoutMs, env: egress.env });
      const output = (result.stdout + result.stderr + egress.notes(result.stdout + result.stderr)).slice(-HOOK_OUTPUT_LIMIT);
      deps.log?.(`hook ${name} in ${sandbox.container}: exit ${result.exitCode}${output ? `\n${output}` : ''}`);
      return { ok: result.exitCode === 0, output: result.timedOut ? `${output}\n(timed out after ${contract.config.hooks.timeoutMs} ms)` : output };
    });
  }

  async function provisionSandbox(input: ProvisionInput): Promise<ProvisionResult> {
    const { contract, workBranch } = input;
    const key = runKey(input);
    const { repo, sandbox: limits } = contract.config;
    const handle = await ensureSandbox(deps.docker, key, limits, deps.host ? { [HOST_LABEL]: deps.host.id } : {}).catch((error: Error) => {
      if (/No such image/i.test(error.message)) {
        throw ApplicationFailure.nonRetryable(`sandbox image ${limits.image} is not in the Docker engine; build it with \`npm run setup\` or set sandbox.image in WORKFLOW.md`, 'SandboxImageMissing');
      }
      throw error;
    });
    const sandbox = sandboxFor(deps, key, contract);

    const mirror = deps.mirrors.get(repo.url);
    await mirror.refresh().catch((error: Error) => {
      throw ApplicationFailure.nonRetryable(`repo.url ${repo.url} cannot be fetched: ${error.message}`, 'RepoUnavailable');
    });
    const baseCommit = await mirror.resolve(`refs/heads/${repo.baseBranch}`);
    if (!baseCommit) throw ApplicationFailure.nonRetryable(`repo.base_branch ${repo.baseBranch} does not exist in ${repo.url}`, 'RepoUnavailable');

    // A sandbox rebuilt on another host: the work's snapshot comes from the git remote.
    if (input.atCommit && !(await mirror.resolve(workSnapshotRef(key)))) await mirror.fetchRef(workSnapshotRef(key));
    const targetTip = (await mirror.resolve(`refs/heads/${contract.config.landing.targetBranch}`)) ?? baseCommit;
    if (!input.atCommit) {
      // A run's first round starts from the base branch as it is now, never from an earlier run's work
      // (nor with its egress log).
      await mirror.deleteRef(workSnapshotRef(key));
      await publishSnapshot(deps, mirror, key, undefined);
      await clearEgressLog(deps, key);
    }
    // Cadenza's git in the agent's repository: no hooks or fsmonitor of the agent's run on its steps.
    const git = 'git -c core.hooksPath=/dev/null -c core.fsmonitor=false';
    // One exec to learn where the workspace stands: cloned or not, whether it has the base and the
    // target's tip as origin/<target> (for an agent bringing its branch up to date), and the requested head.
    const probe = (await shOk(sandbox, [
      `if [ ! -d ${REPO_DIR}/.git ]; then echo fresh; exit 0; fi`,
      `cd ${REPO_DIR} && echo cloned`,
      'git cat-file -e "$BASE^{commit}" 2>/dev/null && [ "$(git rev-parse -q --verify "refs/remotes/origin/$TARGET_BRANCH")" = "$TARGET" ] && echo has-base || echo no-base',
      'if [ -n "$AT" ]; then git cat-file -e "$AT^{commit}" 2>/dev/null && echo has-at || echo no-at; fi',
      'git rev-parse HEAD 2>/dev/null || echo none',
    ].join('\n'), { workdir: '/', env: { BASE: baseCommit, TARGET: targetTip, TARGET_BRANCH: contract.config.landing.targetBranch, AT: input.atCommit ?? '' }, step: 'provisioning: reading the workspace' })).trim().split('\n');
    const cloned = probe[0] !== 'fresh';
    const remoteRefs = [...new Set([repo.baseBranch, contract.config.landing.targetBranch])].map((branch) => `+refs/heads/${branch}:refs/remotes/origin/${branch}`);
    if (cloned && probe[1] === 'no-base') {
      // A re-attached workspace from before the base or target moved: bring them in.
      await putFile(sandbox, TRANSFER_DIR, 'base.bundle', await mirror.bundle([...new Set([`refs/heads/${repo.baseBranch}`, `refs/heads/${contract.config.landing.targetBranch}`])]));
      await shOk(sandbox, `${git} fetch --quiet ${TRANSFER_DIR}/base.bundle ${remoteRefs.map((ref) => `"${ref}"`).join(' ')}`, { step: 'provisioning: bringing the base in' });
    }
    let restored = false;
    if (!cloned) {
      // The sandbox has no network: history enters as a bundle through the Docker API.
      const snapshot = input.atCommit ? await mirror.resolve(workSnapshotRef(key)) : undefined;
      const refs = [...new Set([`refs/heads/${repo.baseBranch}`, `refs/heads/${contract.config.landing.targetBranch}`]), ...(snapshot ? [workSnapshotRef(key)] : [])];
      await putFile(sandbox, TRANSFER_DIR, 'base.bundle', await mirror.bundle(refs));
      await shOk(sandbox, [
        `rm -rf ${REPO_DIR}.partial`,
        `git clone --quiet --branch ${repo.baseBranch} ${TRANSFER_DIR}/base.bundle ${REPO_DIR}.partial`,
        `mv ${REPO_DIR}.partial ${REPO_DIR}`,
        `cd ${REPO_DIR}`,
        `${git} fetch --quiet ${TRANSFER_DIR}/base.bundle ${remoteRefs.map((ref) => `"${ref}"`).join(' ')}`,
        snapshot
          ? `${git} fetch --quiet ${TRANSFER_DIR}/base.bundle "${workSnapshotRef(key)}:refs/heads/${workBranch}" && ${git} checkout --quiet ${workBranch}`
          : `${git} checkout --quiet -B ${workBranch} ${baseCommit}`,
      ].join(' && '), { workdir: '/', timeoutMs: 300_000, step: 'provisioning: cloning the repository' });
      restored = Boolean(snapshot);
      // The workspace was just created: `after_create` runs once; its failure deletes the workspace.
      const hook = await runHook(sandbox, key, contract, 'after_create', contract.config.hooks.afterCreate);
      if (!hook.ok) {
        await removeContainer(deps.docker, key);
        throw ApplicationFailure.nonRetryable(`hooks.after_create failed, so the new workspace was removed:\n${hook.output}`, 'HookFailed');
      }
    } else if (!input.atCommit && probe.at(-1) !== baseCommit) {
      // A workspace left from before (an earlier run's volume): round 1 starts at the base all the same.
      await shOk(sandbox, `${git} checkout --quiet --force -B ${workBranch} ${baseCommit} && git clean -fdq`, { step: 'provisioning: moving the work branch to the base' });
    }
    if (input.atCommit) {
      // A fresh clone has only what its bundle brought (the snapshot, when there is one).
      const hasAt = cloned ? probe[2] === 'has-at' : (await sh(sandbox, `git cat-file -e ${input.atCommit}^{commit}`)).exitCode === 0;
      if (!hasAt) {
        // Commits on the work branch only append, so the latest snapshot contains every earlier head.
        const snapshot = await mirror.resolve(workSnapshotRef(key));
        if (!snapshot) throw ApplicationFailure.nonRetryable(`commit ${input.atCommit} of ${workBranch} is neither in the sandbox nor in the host mirror`, 'WorkLost');
        await putFile(sandbox, TRANSFER_DIR, 'work.bundle', await mirror.bundle([workSnapshotRef(key)]));
        await shOk(sandbox, `${git} fetch --quiet ${TRANSFER_DIR}/work.bundle "${workSnapshotRef(key)}:refs/cadenza/snapshot"`, { step: 'provisioning: bringing the work in' });
      }
      const head = cloned && hasAt ? probe.at(-1) : (await shOk(sandbox, 'git rev-parse HEAD', { step: 'provisioning: reading the head' })).trim();
      if (head !== input.atCommit) await shOk(sandbox, `${git} checkout --quiet --force -B ${workBranch} ${input.atCommit} && git clean -fdq`, { step: 'provisioning: moving the work branch' });
    }
    return { sandbox: handle.name, baseCommit, reattached: handle.reattached, restored };
  }

  /** `before_run`: before every agent session; a failure aborts the attempt (it is retried). */
  async function runBeforeRunHook(input: { workflowId: string; contract: ContractSettings }): Promise<void> {
    const key = runKey(input);
    const hook = await runHook(sandboxFor(deps, key, input.contract), key, input.contract, 'before_run', input.contract.config.hooks.beforeRun);
    if (!hook.ok) throw ApplicationFailure.retryable(`hooks.before_run failed:\n${hook.output}`, 'HookFailed');
  }

  /** `after_run`: after every agent session; failures are logged and ignored. */
  async function runAfterRunHook(input: { workflowId: string; contract: ContractSettings }): Promise<void> {
    const key = runKey(input);
    if (!(await sandboxExists(deps.docker, key))) return;
    await runHook(sandboxFor(deps, key, input.contract), key, input.contract, 'after_run', input.contract.config.hooks.afterRun).catch(() => undefined);
  }

  /** Removes container and workspace volume; `before_remove` runs first and may fail harmlessly. */
  async function removeSandbox(input: { workflowId: string; contract: ContractSettings }): Promise<{ removed: boolean }> {
    const key = runKey(input);
    if (await sandboxExists(deps.docker, key)) {
      await runHook(sandboxFor(deps, key, input.contract), key, input.contract, 'before_remove', input.contract.config.hooks.beforeRemove).catch(() => undefined);
    }
    const removed = await removeContainer(deps.docker, key);
    // The run is over: its snapshot on the remote is no longer needed (this host's mirror keeps it).
    await publishSnapshot(deps, deps.mirrors.get(input.contract.config.repo.url), key, undefined);
    return { removed: removed.container || removed.volume };
  }

  return { provisionSandbox, runBeforeRunHook, runAfterRunHook, removeSandbox };
}
