/**
 * Proof of work, decided on the host: the agent's work comes out of its sandbox only as git objects
 * (checked into Cadenza's mirror), every check runs in a fresh checker container on the exact commit,
 * and the evidence (diff, changed files with their status, test integrity) is computed by Cadenza's
 * own git in the mirror. The artifact store keeps outputs and texts; history keeps references.
 */
import { ApplicationFailure } from '@temporalio/activity';
import type { ContractSettings, ProofCommand } from '../lib/contract/index.ts';
import { describeChange, parseRawDiff, type FileChange } from '../lib/proof/changes.ts';
import { DEFAULT_PROTECTED_PATHS, countTests, packageJsonWithScriptsOf, protectedPattern } from '../lib/proof/integrity.ts';
import { prepareCheckers, runInChecker } from '../lib/sandbox/checker.ts';
import { stopSandboxProcesses } from '../lib/sandbox/container.ts';
import { ExportError, exportWork } from '../lib/sandbox/export.ts';
import type { StoppedProcess } from '../lib/sandbox/leftovers.ts';
import { sandboxKey } from '../lib/sandbox/names.ts';
import type { ArtifactRef, ProofCheck, ProofResult, TokenUsage } from '../workflows/definitions.ts';
import type { ActivityDeps } from './deps.ts';
import { egressLog, runEgress, withEgress } from './egress.ts';
import type { EgressRecord } from '../lib/egress/relay.ts';
import { publishSnapshot, workSnapshotRef } from './sandbox.ts';
import { runKey } from './run-key.ts';

const EXCERPT_LINES = 40;
const DIFF_LIMIT = 8 * 1024 * 1024;
/** History carries at most this many changed files per round; the walkthrough has them all. */
const CHANGES_IN_HISTORY = 200;

function excerpt(text: string): string {
  const lines = text.trimEnd().split('\n');
  return lines.slice(-EXCERPT_LINES).join('\n').slice(-4000);
}

const checkRef = (runKey: string) => `refs/cadenza/${sandboxKey(runKey)}/check`;
const startRef = (runKey: string) => `refs/cadenza/${sandboxKey(runKey)}/start`;

/** The protected paths a change touches (a rename counts by either name), with the pattern that protects each. */
export function protectedChanges(changes: FileChange[], patterns: readonly string[]): Array<FileChange & { pattern: string }> {
  return changes.flatMap((change) => {
    const pattern = protectedPattern(change.path, patterns) ?? (change.from ? protectedPattern(change.from, patterns) : null);
    return pattern ? [{ ...change, pattern }] : [];
  });
}

/** One line per phase and destination: connections, bytes, and what was refused. */
export function egressSummary(records: EgressRecord[]): string[] {
  const groups = new Map<string, { phase: string; destination: string; allowed: boolean; count: number; bytes: number; reason: string }>();
  for (const record of records) {
    const key = `${record.phase} ${record.destination} ${record.allowed}`;
    const group = groups.get(key) ?? { phase: record.phase, destination: record.destination, allowed: record.allowed, count: 0, bytes: 0, reason: record.reason };
    group.count += 1;
    group.bytes += record.bytesIn + record.bytesOut;
    groups.set(key, group);
  }
  return [...groups.values()].map((group) => group.allowed
    ? `${group.phase}: ${group.destination}, ${group.count} connection(s), ${(group.bytes / 1024).toFixed(0)} KiB (${group.reason})`
    : `${group.phase}: REFUSED ${group.destination}, ${group.count} attempt(s) (${group.reason})`);
}

export interface CommitInput {
  workflowId: string;
  contract: ContractSettings;
  identifier: string;
  title: string;
  round: number;
  summary: string;
  /** Where this round's sandbox started: the work must descend from it (absent in runs from before). */
  roundStart?: string;
  /** The run's base, for the test-integrity paths (absent in runs from before). */
  baseCommit?: string;
}

export interface CommitResult {
  headCommit: string;
  committed: boolean;
  stoppedProcesses: StoppedProcess[];
  /** Protected paths the work changed, modified or deleted (not added), against the run's base. */
  protectedChanged?: string[];
}

export function createProofActivities(deps: ActivityDeps) {
  const asRef = (stored: { ref: string; kind: string; bytes: number }): ArtifactRef => ({ ref: stored.ref, kind: stored.kind, bytes: stored.bytes });
  const protectedPaths = (contract: ContractSettings) => contract.config.proof.protectedPaths ?? DEFAULT_PROTECTED_PATHS;
  const limitsOf = (contract: ContractSettings) => contract.config.sandbox;

  /**
   * Ends the session for good (the agent's container is killed: nothing it started survives), then
   * takes the work out as git objects through a fresh exporter container and checks them into the
   * host mirror. Cadenza commits what the agent left uncommitted; nothing of the agent's runs.
   */
  async function commitWork(input: CommitInput): Promise<CommitResult> {
    const { contract, workflowId } = input;
    const key = runKey(input);
    const mirror = deps.mirrors.get(contract.config.repo.url);
    // The exporter is prepared while the sandbox is being stopped, and starts once it has.
    const stopping = stopSandboxProcesses(deps.docker, key);
    stopping.catch(() => undefined);
    const roundStart = input.roundStart ?? (await mirror.resolve(workSnapshotRef(key))) ?? (await mirror.resolve(`refs/heads/${contract.config.repo.baseBranch}`));
    if (!roundStart) throw ApplicationFailure.nonRetryable(`commitWork: the round's start is not in the host mirror of ${contract.config.repo.url}`, 'WorkLost');
    const message = `${input.identifier}: ${input.title} (round ${input.round})\n\n${input.summary}\n\nCadenza-Workflow: ${workflowId}`;
    let exported;
    try {
      exported = await exportWork(deps.docker, {
        runKey: key, limits: limitsOf(contract), roundStart, startRef: startRef(key), message,
        startBundle: () => mirror.bundleCommit(roundStart, startRef(key)),
        startAfter: stopping,
      });
    } catch (error) {
      if (error instanceof ExportError) throw ApplicationFailure.nonRetryable(`commitWork: ${error.message}`, 'WorkRejected');
      throw error;
    }
    // The checks of this round start without waiting for a container (on this worker; elsewhere they make their own).
    prepareCheckers(deps.docker, key, limitsOf(contract), Math.min(contract.config.proof.commands.length, 3));
    const stoppedProcesses = await stopping;
    if (stoppedProcesses.length) deps.log?.(`${input.identifier}: stopped ${stoppedProcesses.length} process(es) the agent left running: ${stoppedProcesses.map((p) => p.command).join('; ')}`);
    let headCommit = roundStart;
    if (exported.bundle) {
      try {
        headCommit = await mirror.fetchBundle(exported.bundle, 'refs/cadenza/work', workSnapshotRef(key));
      } catch (error) {
        throw ApplicationFailure.nonRetryable(`commitWork: the host refused the agent's git objects: ${(error as Error).message.split('\n')[0]}`, 'WorkRejected');
      }
      if (headCommit !== exported.head || !(await mirror.isAncestor(roundStart, headCommit))) {
        throw ApplicationFailure.nonRetryable(`commitWork: the exported work ${exported.head.slice(0, 12)} does not descend from the round's start ${roundStart.slice(0, 12)}`, 'WorkRejected');
      }
    } else {
      await mirror.setRef(workSnapshotRef(key), roundStart);
    }
    await publishSnapshot(deps, mirror, key, headCommit);
    let protectedChanged: string[] | undefined;
    if (input.baseCommit) {
      protectedChanged = protectedChanges(parseRawDiff(await mirror.rawChanges(input.baseCommit, headCommit)), protectedPaths(contract)).filter((change) => change.status !== 'added').map((change) => change.from ?? change.path);
    }
    return { headCommit, committed: exported.committed, stoppedProcesses, ...(protectedChanged ? { protectedChanged } : {}) };
  }

  async function checkCommit(input: { workflowId: string; contract: ContractSettings; command: ProofCommand; label?: string; commit: string; workBranch?: string }): Promise<ProofCheck> {
    const { contract, command } = input;
    const key = runKey(input);
    const mirror = deps.mirrors.get(contract.config.repo.url);
    const policy = await runEgress(deps, contract);
    const checked = await runInChecker(deps.docker, {
      runKey: key,
      limits: limitsOf(contract),
      bundle: await mirror.bundleCommit(input.commit, checkRef(key)),
      bundleRef: checkRef(key),
      commit: input.commit,
      branch: input.workBranch ?? 'cadenza/check',
      setup: contract.config.hooks.afterCreate,
      setupTimeoutMs: contract.config.hooks.timeoutMs,
      command: command.run,
      timeoutMs: command.timeoutMs,
      egress: async (phase, container, body) => withEgress(deps, deps.docker, container, key, phase, policy, body),
    });
    const { result } = checked;
    const reports: Array<ArtifactRef & { path: string }> = [];
    for (const report of checked.reports) reports.push({ ...asRef(await deps.artifacts.put(report.content, `report:${report.path}`)), path: report.path });
    const report = [
      `$ ${command.run}`,
      `commit: ${input.commit}`,
      ...(checked.setupFailure ? [checked.setupFailure, '(the check did not run)'] : []),
      `exit code: ${result.exitCode}${result.timedOut ? ` (timed out after ${checked.setupFailure ? contract.config.hooks.timeoutMs : command.timeoutMs} ms)` : ''}`,
      `duration: ${result.durationMs} ms${result.truncated ? '\n(output truncated to its last 1 MiB per stream)' : ''}`,
      '--- stdout ---',
      result.stdout,
      '--- stderr ---',
      result.stderr,
    ].join('\n');
    const stored = await deps.artifacts.put(report, `check:${input.label ?? command.name}`);
    const tests = checked.setupFailure ? null : countTests(`${result.stdout}\n${result.stderr}`);
    return {
      name: command.name,
      required: command.required,
      passed: !checked.setupFailure && result.exitCode === 0 && !result.timedOut,
      exitCode: result.exitCode,
      timedOut: result.timedOut,
      durationMs: result.durationMs,
      output: asRef(stored),
      excerpt: excerpt(checked.setupFailure ?? `${result.stdout}\n${result.stderr}`),
      reports,
      commit: input.commit,
      ...(tests ? { tests } : {}),
      ...(checked.leftRunning.length ? { leftRunning: checked.leftRunning } : {}),
    };
  }

  /** One proof check in a fresh checker container on `commit` (runs from before name none: the work snapshot). */
  async function runProofCheck(input: { workflowId: string; contract: ContractSettings; command: ProofCommand; label?: string; commit?: string; workBranch?: string }): Promise<ProofCheck> {
    const mirror = deps.mirrors.get(input.contract.config.repo.url);
    const commit = input.commit ?? (await mirror.resolve(workSnapshotRef(runKey(input))));
    if (!commit) throw ApplicationFailure.nonRetryable(`runProofCheck: no commit to check for ${input.workflowId}`, 'WorkLost');
    return checkCommit({ ...input, commit });
  }

  /**
   * The base revision's own tests on the new code: the head's tree with the protected files the work
   * modified or deleted put back as the base had them (a package.json keeps the head's dependencies but
   * the base's scripts), then every required check on it.
   */
  async function runBaseTests(input: { workflowId: string; contract: ContractSettings; baseCommit: string; headCommit: string; protectedChanged: string[]; workBranch?: string }): Promise<ProofCheck[]> {
    const mirror = deps.mirrors.get(input.contract.config.repo.url);
    const files: Record<string, { from: string } | { text: string }> = {};
    for (const file of input.protectedChanged) {
      const [head, base] = file === 'package.json' || file.endsWith('/package.json') ? await Promise.all([mirror.show(input.headCommit, file), mirror.show(input.baseCommit, file)]) : [null, null];
      const merged = head !== null && base !== null ? packageJsonWithScriptsOf(head, base) : null;
      files[file] = merged !== null ? { text: merged } : { from: input.baseCommit };
    }
    const commit = await mirror.commitWithFiles(input.headCommit, files, "Cadenza: the base revision's tests on the new code");
    const checks: ProofCheck[] = [];
    for (const command of input.contract.config.proof.commands.filter((c) => c.required)) {
      checks.push(await checkCommit({ ...input, command, commit, label: `${command.name} (base tests)` }));
    }
    return checks;
  }

  async function collectEvidence(input: {
    workflowId: string;
    contract: ContractSettings;
    identifier: string;
    title: string;
    round: number;
    baseCommit: string;
    headCommit: string;
    checks: ProofCheck[];
    agentSummary: string;
    tokens: TokenUsage;
    model: string;
    /** What commitWork stopped when the session ended. */
    stoppedBeforeChecks?: StoppedProcess[];
    /** The base revision's tests on the new code (when the work changed protected paths). */
    baseTests?: ProofCheck[];
  }): Promise<ProofResult> {
    const { contract } = input;
    const mirror = deps.mirrors.get(contract.config.repo.url);
    const evidence = await mirror.evidence(input.baseCommit, input.headCommit);
    const changes = parseRawDiff(evidence.raw);
    const changedFiles = changes.map((change) => change.path);
    const stoppedProcesses = [...(input.stoppedBeforeChecks ?? []), ...input.checks.flatMap((check) => check.leftRunning ?? [])];
    const stoppedLines = stoppedProcesses.map((p) => `- \`${p.command.replaceAll('`', "'")}\`, left running by ${p.startedBy === 'agent' ? 'the agent' : 'a check'}`);
    const passedChecks = input.checks.every((check) => check.passed || !check.required);

    // Test integrity, first in everything the approver reads.
    const touched = protectedChanges(changes, protectedPaths(contract));
    const integrity: string[] = [
      ...touched.map((change) => `${describeChange(change)}: a protected path (\`${change.pattern}\` in proof.protected_paths)`),
      ...input.checks.filter((check) => check.passed && check.tests && check.tests.failed > 0)
        .map((check) => `\`${check.name}\` passed (exit 0) but its output reports ${check.tests!.failed} failing test(s) of ${check.tests!.total}`),
      ...(input.baseTests ?? []).filter((check) => !check.passed)
        .map((check) => `the base revision's tests fail on the new code: \`${check.name}\` exited ${check.exitCode}${check.timedOut ? ' (timed out)' : ''} (output ${check.output.ref})`),
      ...(input.baseTests ?? []).flatMap((base) => {
        const head = input.checks.find((check) => check.name === base.name);
        return head?.tests && base.tests && head.tests.total < base.tests.total
          ? [`fewer tests: \`${base.name}\` ran ${head.tests.total} test(s) on the change, ${base.tests.total} with the base's test files`]
          : [];
      }),
    ];
    const rejectProtected = contract.config.proof.onProtectedChange === 'reject' && touched.length > 0;
    const passed = passedChecks && changes.length > 0 && !rejectProtected;

    const diffText = evidence.diff.length > DIFF_LIMIT ? `${evidence.diff.slice(0, DIFF_LIMIT)}\n[cadenza] diff cut at ${DIFF_LIMIT} bytes of ${evidence.diff.length}\n` : evidence.diff;
    const storedDiff = await deps.artifacts.put(diffText, 'diff');
    // What left the sandboxes so far in this run, by phase: every connection through the relay.
    const egress = await egressLog(deps, runKey(input));
    const storedEgress = egress.length ? await deps.artifacts.putJson(egress, 'egress') : null;
    const egressLines = egressSummary(egress);
    const checkLine = (check: ProofCheck) =>
      `- ${check.passed ? 'PASS' : 'FAIL'} \`${check.name}\`${check.required ? '' : ' (optional)'}: exit ${check.exitCode}${check.timedOut ? ', timed out' : ''}, ${(check.durationMs / 1000).toFixed(1)} s` +
      `${check.tests ? `, ${check.tests.total} tests (${check.tests.failed} failed)` : ''} (output ${check.output.ref})` +
      (check.reports?.length ? `; reports: ${check.reports.map((report) => `${report.path} (${report.ref})`).join(', ')}` : '');
    const checkLines = input.checks.map(checkLine);
    const integrityLines = integrity.map((line) => `- ${line}`);
    const walkthrough = [
      `# ${input.identifier}: ${input.title}, round ${input.round}`,
      '',
      ...(integrity.length ? ['## Test integrity: read this first', ...integrityLines, ''] : []),
      `Head commit: \`${input.headCommit}\` (base \`${input.baseCommit}\`)`,
      '',
      '## What the agent says it did',
      input.agentSummary,
      '',
      '## What changed (computed by Cadenza on its own copy of the commits)',
      changes.length ? changes.map((change) => `- ${describeChange(change)}`).join('\n') : 'No files changed.',
      '',
      changes.length ? '```\n' + evidence.stat + '\n```' : '',
      '',
      evidence.log ? `Commits on the work branch:\n\`\`\`\n${evidence.log}\n\`\`\`` : '',
      '',
      '## Checks Cadenza ran (each in a fresh container on the head commit, not the agent\'s sandbox)',
      ...(checkLines.length ? checkLines : ['- (no proof commands configured)']),
      '',
      ...(input.baseTests?.length ? ["## The base revision's tests on the new code", ...input.baseTests.map(checkLine), ''] : []),
      ...(stoppedLines.length ? ['## Processes Cadenza stopped', ...stoppedLines, ''] : []),
      '## Egress (everything that left a sandbox, through Cadenza\'s relay)',
      ...(egressLines.length ? egressLines.map((line) => `- ${line}`) : ['- nothing']),
      ...(storedEgress ? [`Full log: ${storedEgress.ref}`] : []),
      '',
      `## Cost\n${input.tokens.total} tokens (${input.tokens.input} in, ${input.tokens.output} out) on ${input.model}.`,
      '',
      `Full diff: ${storedDiff.ref}`,
    ].join('\n');
    const storedWalkthrough = await deps.artifacts.put(walkthrough, 'walkthrough');
    const shownChanges = changes.slice(0, 50).map((change) => `\`${describeChange(change)}\``).join(', ');
    const summary = [
      `**Cadenza proof for round ${input.round}: ${passed ? 'passed' : 'FAILED'}**${rejectProtected ? ' (protected paths changed; proof.on_protected_change is reject)' : ''}`,
      '',
      ...(integrity.length ? ['**Test integrity warnings:**', ...integrityLines, ''] : []),
      `Head commit: \`${input.headCommit}\``,
      ...checkLines,
      ...(input.baseTests?.length ? ["Base revision's tests on the new code:", ...input.baseTests.map(checkLine)] : []),
      '',
      `Changed files (${changes.length}): ${shownChanges || 'none'}${changes.length > 50 ? ', ...' : ''}`,
      ...(changes.length ? ['```', evidence.stat.split('\n').at(-1)!.trim(), '```'] : []),
      ...(stoppedProcesses.length ? [`Stopped ${stoppedProcesses.length} process(es) left running (see the walkthrough)`] : []),
      `Egress: ${egressLines.length ? egressLines.join('; ') : 'nothing left the sandbox'}`,
      `Tokens: ${input.tokens.total} · model: ${input.model}`,
      `Walkthrough: ${deps.artifacts.pathOf(storedWalkthrough.ref)}`,
    ].join('\n');
    const storedSummary = await deps.artifacts.put(summary, 'proof-summary');
    return {
      round: input.round,
      passed,
      checks: input.checks,
      headCommit: input.headCommit,
      changedFiles: changedFiles.slice(0, CHANGES_IN_HISTORY),
      changes: changes.slice(0, CHANGES_IN_HISTORY),
      ...(changes.length > CHANGES_IN_HISTORY ? { changedFilesTotal: changes.length } : {}),
      ...(integrity.length ? { integrity } : {}),
      ...(rejectProtected ? { rejectedProtected: touched.map((change) => describeChange(change)).slice(0, 50) } : {}),
      ...(input.baseTests?.length ? { baseTests: input.baseTests } : {}),
      diff: asRef(storedDiff),
      ...(changes.length ? { diffstat: evidence.stat.split('\n').at(-1)!.trim() } : {}),
      ...(storedEgress ? { egress: { log: asRef(storedEgress), allowed: egress.filter((r) => r.allowed).length, refused: egress.filter((r) => !r.allowed).length } } : {}),
      walkthrough: asRef(storedWalkthrough),
      summary: asRef(storedSummary),
      ...(stoppedProcesses.length ? { stoppedProcesses } : {}),
    };
  }

  /** The proof summary text, for the tracker comment (kept out of history). */
  async function readArtifactText(input: { ref: string }): Promise<string> {
    return deps.artifacts.getText(input.ref);
  }

  return { commitWork, runProofCheck, runBaseTests, collectEvidence, readArtifactText };
}
