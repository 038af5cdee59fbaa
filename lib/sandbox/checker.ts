/**
 * A proof check in a fresh checker container: the exact commit, checked out from a bundle of the host
 * mirror (never the agent's container or working tree), the contract's setup hook run again, then the
 * check itself, with the sandbox's limits and no network. The container is removed afterwards, so
 * whatever the check leaves running ends with it (and is reported).
 */
import type Docker from 'dockerode';
import { runningProcesses, type SandboxLimits } from './container.ts';
import type { ExecResult } from './exec.ts';
import { CADENZA_DIR, withFreshContainer } from './fresh.ts';
import { capStopped, type StoppedProcess } from './leftovers.ts';
import { REPO_DIR, sh } from './workspace.ts';

const HOOK_OUTPUT_LIMIT = 2048;

export interface CheckerInput {
  workflowId: string;
  limits: SandboxLimits;
  /** A bundle holding the commit under `bundleRef`. */
  bundle: Buffer;
  bundleRef: string;
  commit: string;
  branch: string;
  /** `hooks.after_create`: what the checks need set up in a new workspace (e.g. installing dependencies). */
  setup: string | null;
  setupTimeoutMs: number;
  command: string;
  timeoutMs: number;
  /** Collects files the check wrote (test reports) before the container goes; `mark` is a file touched just before the check. */
  collect?: (box: Parameters<Parameters<typeof withFreshContainer>[2]>[0], mark: string) => Promise<void>;
}

export interface CheckerResult {
  result: ExecResult;
  /** Set when the setup hook failed, so the check did not run. */
  setupFailure: string | null;
  leftRunning: StoppedProcess[];
}

export async function runInChecker(docker: Docker, input: CheckerInput): Promise<CheckerResult> {
  return withFreshContainer(docker, { workflowId: input.workflowId, role: 'checker', limits: input.limits, user: input.limits.user, files: { 'check.bundle': input.bundle } }, async (box) => {
    const mark = `/tmp/cadenza-check-started`;
    const checkout = await sh(box, [
      'set -e',
      `git init --quiet "${REPO_DIR}"`,
      `cd "${REPO_DIR}"`,
      `git fetch --quiet --update-head-ok ${CADENZA_DIR}/check.bundle "+$BUNDLE_REF:refs/heads/$BRANCH"`,
      'git checkout --quiet "$BRANCH"',
      '[ "$(git rev-parse HEAD)" = "$COMMIT" ]',
    ].join('\n'), { workdir: '/', timeoutMs: 300_000, env: { BRANCH: input.branch, COMMIT: input.commit, BUNDLE_REF: input.bundleRef } });
    if (checkout.exitCode !== 0) throw new Error(`checking out ${input.commit.slice(0, 12)} in a checker container failed: ${(checkout.stderr || checkout.stdout).trim().split('\n').at(-1)}`);
    if (input.setup) {
      const setup = await sh(box, input.setup, { timeoutMs: input.setupTimeoutMs });
      if (setup.exitCode !== 0) {
        const output = `${setup.stdout}${setup.stderr}`.slice(-HOOK_OUTPUT_LIMIT);
        return { result: setup, setupFailure: `hooks.after_create failed in the checker container (exit ${setup.exitCode}${setup.timedOut ? ', timed out' : ''}):\n${output}`, leftRunning: [] };
      }
    }
    const container = docker.getContainer(box.container);
    // What the setup started (services the checks need) is not the check's leftover.
    const beforeCheck = new Set((await runningProcesses(container, 'check')).map((process) => process.pid));
    await sh(box, `touch ${mark}`);
    const result = await sh(box, input.command, { timeoutMs: input.timeoutMs, maxOutputBytes: 1024 * 1024 });
    const leftRunning = capStopped((await runningProcesses(container, 'check')).filter((process) => !beforeCheck.has(process.pid)).map(({ startedBy, command }) => ({ startedBy, command })));
    await input.collect?.(box, mark);
    return { result, setupFailure: null, leftRunning };
  });
}
