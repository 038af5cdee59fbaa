/**
 * A proof check in a fresh checker container: the exact commit, checked out from a bundle of the host
 * mirror (never the agent's container or working tree), the contract's setup hook run again, then the
 * check itself, with the sandbox's limits and no network. The container is removed afterwards, so
 * whatever the check leaves running ends with it (and is reported).
 */
import type Docker from 'dockerode';
import type { PhaseEgress } from '../egress/relay.ts';
import { runningProcesses, type SandboxLimits } from './container.ts';
import type { ExecResult } from './exec.ts';
import { CADENZA_DIR, prepareFreshContainer, withFreshContainer, type FreshOptions } from './fresh.ts';
import { capStopped, type StoppedProcess } from './leftovers.ts';
import { REPO_DIR, getFile, sh } from './workspace.ts';

const HOOK_OUTPUT_LIMIT = 2048;
const CHECKOUT_FAILED = 'cadenza-checkout-failed';
const CHECKOUT_FAILED_EXIT = 97;

export interface CheckerInput {
  runKey: string;
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
  /** Runs `body` with a phase's egress (proxy settings, refusals told in the output) around the setup and the check. */
  egress: EgressScope;
}

export type EgressScope = <T>(phase: 'setup' | 'checks', container: string, body: (egress: PhaseEgress) => Promise<T>) => Promise<T>;

export interface CheckerResult {
  result: ExecResult;
  /** Set when the setup hook failed, so the check did not run. */
  setupFailure: string | null;
  leftRunning: StoppedProcess[];
  /** Test reports the check wrote (by path in the repository), up to REPORTS_KEPT files under REPORT_MAX_BYTES each. */
  reports: Array<{ path: string; content: Buffer }>;
}

const REPORTS_KEPT = 20;
const REPORT_MAX_BYTES = 1024 * 1024;
/** Where the check's exec lists the reports it finds, for reading through the engine afterwards. */
const REPORT_LIST = '/workspace/.cadenza-reports';
/** Where projects usually write test reports: files there that the check wrote are kept as evidence. */
const FIND_REPORTS = [
  `find . \\( -path ./node_modules -o -path ./.git \\) -prune -o -type f -newer "$CADENZA_CHECK_MARK" -size -${REPORT_MAX_BYTES / 1024}k`,
  `\\( -name 'junit*.xml' -o -name 'TEST-*.xml' -o -path './reports/*' -o -path './test-results/*' -o -path './coverage/coverage-summary.json' \\) -print`,
  `| head -${REPORTS_KEPT} > ${REPORT_LIST}`,
].join(' ');

const checkerOptions = (runKey: string, limits: SandboxLimits): FreshOptions => ({ runKey, role: 'checker', limits, user: limits.user });

/** Starts `count` checker containers ahead of the checks that will use them (they start nothing else). */
export function prepareCheckers(docker: Docker, runKey: string, limits: SandboxLimits, count: number): void {
  for (let i = 0; i < count; i++) prepareFreshContainer(docker, checkerOptions(runKey, limits));
}

export async function runInChecker(docker: Docker, input: CheckerInput): Promise<CheckerResult> {
  return withFreshContainer(docker, { ...checkerOptions(input.runKey, input.limits), files: { 'check.bundle': input.bundle } }, async (box) => {
    const mark = `/tmp/cadenza-check-started`;
    const env = { CADENZA_CHECK_BRANCH: input.branch, CADENZA_CHECK_COMMIT: input.commit, CADENZA_CHECK_REF: input.bundleRef, CADENZA_CHECK_MARK: mark };
    const checkout = [
      `git init --quiet "${REPO_DIR}"`,
      `cd "${REPO_DIR}"`,
      `git fetch --quiet --update-head-ok ${CADENZA_DIR}/check.bundle "+$CADENZA_CHECK_REF:refs/heads/$CADENZA_CHECK_BRANCH"`,
      'git checkout --quiet "$CADENZA_CHECK_BRANCH"',
      '[ "$(git rev-parse HEAD)" = "$CADENZA_CHECK_COMMIT" ]',
    ].join(' && ');
    const checkoutFailed = (said: string) => new Error(`checking out ${input.commit.slice(0, 12)} in a checker container failed: ${said.trim().split('\n').filter((line) => !line.includes(CHECKOUT_FAILED)).at(-1) ?? 'no output'}`);
    const container = docker.getContainer(box.container);
    // What the setup started (services the checks need) is not the check's leftover.
    let beforeCheck = new Set<string>();
    // The check runs in a subshell, so that whatever it does (`exit` included) its reports are listed after it.
    let script = `touch "$CADENZA_CHECK_MARK"\n(\n${input.command}\n)\ncadenza_exit=$?\n${FIND_REPORTS} 2>/dev/null\nexit $cadenza_exit`;
    if (input.setup) {
      const checkedOut = await sh(box, checkout, { workdir: '/', timeoutMs: 300_000, env });
      if (checkedOut.exitCode !== 0) throw checkoutFailed(checkedOut.stderr || checkedOut.stdout);
      const setup = await input.egress('setup', box.container, async (egress) => {
        await egress.ready();
        const ran = await sh(box, input.setup!, { timeoutMs: input.setupTimeoutMs, env: egress.env });
        return { ...ran, stderr: ran.stderr + egress.notes(ran.stdout + ran.stderr) };
      });
      if (setup.exitCode !== 0) {
        const output = `${setup.stdout}${setup.stderr}`.slice(-HOOK_OUTPUT_LIMIT);
        return { result: setup, setupFailure: `hooks.after_create failed in the checker container (exit ${setup.exitCode}${setup.timedOut ? ', timed out' : ''}):\n${output}`, leftRunning: [], reports: [] };
      }
      beforeCheck = new Set((await runningProcesses(container, 'check')).map((process) => process.pid));
    } else {
      // Nothing to set up: the checkout and the check share one exec.
      script = `{ ${checkout}; } || { echo "${CHECKOUT_FAILED}" >&2; exit ${CHECKOUT_FAILED_EXIT}; }\n${script}`;
    }
    const result = await input.egress('checks', box.container, async (egress) => {
      await egress.ready();
      const ran = await sh(box, script, { timeoutMs: input.timeoutMs, maxOutputBytes: 1024 * 1024, env: { ...egress.env, ...env }, workdir: input.setup ? REPO_DIR : '/' });
      return { ...ran, stderr: ran.stderr + egress.notes(ran.stdout + ran.stderr) };
    });
    if (result.exitCode === CHECKOUT_FAILED_EXIT && result.stderr.includes(CHECKOUT_FAILED)) throw checkoutFailed(result.stderr);
    const leftRunning = capStopped((await runningProcesses(container, 'check')).filter((process) => !beforeCheck.has(process.pid)).map(({ startedBy, command }) => ({ startedBy, command })));
    const listed = await getFile(box, REPORT_LIST).then((list) => list.toString('utf8').split('\n').filter(Boolean), () => []);
    const reports = [];
    for (const file of listed) {
      const content = await getFile(box, `${REPO_DIR}/${file.replace(/^\.\//, '')}`).catch(() => null);
      if (content) reports.push({ path: file.replace(/^\.\//, ''), content: content.subarray(0, REPORT_MAX_BYTES) });
    }
    return { result, setupFailure: null, leftRunning, reports };
  });
}
