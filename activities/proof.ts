/**
 * Proof of work, outside the agent's control: Cadenza commits what the agent left, runs the
 * contract's checks as their own activities, and stores the evidence (outputs, diff, changed files,
 * tokens, a walkthrough) in the artifact store. History keeps references only.
 */
import { randomUUID } from 'node:crypto';
import type { ContractSettings, ProofCommand } from '../lib/contract/index.ts';
import { STOP_LEFTOVERS_SCRIPT, startedByEnv, takeStoppedProcesses, type StoppedProcess } from '../lib/sandbox/leftovers.ts';
import { TRANSFER_DIR, getFile, sh, shOk } from '../lib/sandbox/workspace.ts';
import type { ArtifactRef, ProofCheck, ProofResult, TokenUsage } from '../workflows/definitions.ts';
import type { ActivityDeps } from './deps.ts';
import { sandboxFor, workSnapshotRef } from './sandbox.ts';

const EXCERPT_LINES = 40;
const REPORT_LIMIT = 1024 * 1024;
/** Where projects usually write test reports; files there that a check wrote are kept as evidence. */
const REPORT_FIND = [
  `find . \\( -path ./node_modules -o -path ./.git \\) -prune -o -type f -newer "$MARK"`,
  `\\( -name 'junit*.xml' -o -name 'TEST-*.xml' -o -path './reports/*' -o -path './test-results/*' -o -path './coverage/coverage-summary.json' \\) -print`,
].join(' ');
const DIFF_LIMIT = 8 * 1024 * 1024;

function excerpt(text: string): string {
  const lines = text.trimEnd().split('\n');
  return lines.slice(-EXCERPT_LINES).join('\n').slice(-4000);
}

export interface CommitInput {
  workflowId: string;
  contract: ContractSettings;
  identifier: string;
  title: string;
  round: number;
  summary: string;
}

export function createProofActivities(deps: ActivityDeps) {
  const asRef = (stored: { ref: string; kind: string; bytes: number }): ArtifactRef => ({ ref: stored.ref, kind: stored.kind, bytes: stored.bytes });

  /**
   * Stops what the agent's commands left running (so nothing changes the tree or holds a port while it
   * is committed and proven), commits whatever the agent changed on the work branch (hooks disabled,
   * fixed identity) and exports the branch to the host mirror, so a lost sandbox can be rebuilt from it.
   */
  async function commitWork(input: CommitInput): Promise<{ headCommit: string; committed: boolean; stoppedProcesses: StoppedProcess[] }> {
    const sandbox = sandboxFor(deps, input.workflowId, input.contract);
    const message = `${input.identifier}: ${input.title} (round ${input.round})\n\n${input.summary}\n\nCadenza-Workflow: ${input.workflowId}`;
    const mirror = deps.mirrors.get(input.contract.config.repo.url);
    const snapshot = (await mirror.resolve(workSnapshotRef(input.workflowId))) ?? 'none';
    // One exec: stop leftovers, commit if anything changed, report the head, bundle it unless the mirror has it already.
    const output = await shOk(sandbox, [
      'set -e',
      STOP_LEFTOVERS_SCRIPT,
      'git add -A',
      'if git diff --cached --quiet; then echo unchanged; else git -c core.hooksPath=/dev/null -c user.name="Cadenza Agent" -c user.email=agent@cadenza.invalid commit --quiet --no-verify -F -; echo committed; fi',
      'HEAD_COMMIT=$(git rev-parse HEAD)',
      'echo "$HEAD_COMMIT"',
      `if [ "$HEAD_COMMIT" != "$SNAPSHOT" ]; then git bundle create --quiet ${TRANSFER_DIR}/out/work.bundle HEAD; echo bundled; fi`,
    ].join('\n'), { stdin: message, env: { SNAPSHOT: snapshot } });
    const { stopped, rest: out } = takeStoppedProcesses(output);
    if (stopped.length) deps.log?.(`${input.identifier}: stopped ${stopped.length} process(es) left running before the proof: ${stopped.map((p) => p.command).join('; ')}`);
    const [outcome, headCommit, bundled] = out.trim().split('\n');
    if (!headCommit || !/^[0-9a-f]{40}$/.test(headCommit)) throw new Error(`commitWork could not read the work branch head: ${out.trim()}`);
    if (bundled === 'bundled') {
      await mirror.fetchBundle(await getFile(sandbox, `${TRANSFER_DIR}/out/work.bundle`), 'HEAD', workSnapshotRef(input.workflowId));
    }
    return { headCommit, committed: outcome === 'committed', stoppedProcesses: stopped };
  }

  async function runProofCheck(input: { workflowId: string; contract: ContractSettings; command: ProofCommand; label?: string }): Promise<ProofCheck> {
    const sandbox = sandboxFor(deps, input.workflowId, input.contract);
    const mark = `${TRANSFER_DIR}/out/check-started`;
    await shOk(sandbox, 'touch "$MARK"', { env: { MARK: mark } });
    const result = await sh(sandbox, input.command.run, { timeoutMs: input.command.timeoutMs, maxOutputBytes: 1024 * 1024, env: startedByEnv('check') });
    const reports = [];
    const written = (await sh(sandbox, `${REPORT_FIND} | head -20`, { env: { MARK: mark } })).stdout.split('\n').filter(Boolean);
    for (const file of written) {
      const content = await sh(sandbox, 'head -c ' + REPORT_LIMIT + ' -- "$F"', { env: { F: file }, maxOutputBytes: REPORT_LIMIT });
      const stored = await deps.artifacts.put(content.stdout, `report:${file.replace(/^\.\//, '')}`);
      reports.push({ ...asRef(stored), path: file.replace(/^\.\//, '') });
    }
    const report = [
      `$ ${input.command.run}`,
      `exit code: ${result.exitCode}${result.timedOut ? ` (timed out after ${input.command.timeoutMs} ms)` : ''}`,
      `duration: ${result.durationMs} ms${result.truncated ? '\n(output truncated to its last 1 MiB per stream)' : ''}`,
      '--- stdout ---',
      result.stdout,
      '--- stderr ---',
      result.stderr,
    ].join('\n');
    const stored = await deps.artifacts.put(report, `check:${input.label ?? input.command.name}`);
    return {
      name: input.command.name,
      required: input.command.required,
      passed: result.exitCode === 0 && !result.timedOut,
      exitCode: result.exitCode,
      timedOut: result.timedOut,
      durationMs: result.durationMs,
      output: asRef(stored),
      excerpt: excerpt(`${result.stdout}\n${result.stderr}`),
      reports,
    };
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
    /** What commitWork stopped before the checks (absent in runs from before it did). */
    stoppedBeforeChecks?: StoppedProcess[];
  }): Promise<ProofResult> {
    const sandbox = sandboxFor(deps, input.workflowId, input.contract);
    // One exec for the whole picture, sections split by a line no diff can contain. The diff comes
    // first: if it overflows the limit its start is cut, never the small sections after it. Then
    // what the checks wrote (reports, build output), which is evidence, not part of the change, goes,
    // after what the checks left running is stopped, so nothing writes to the tree once it is clean.
    const separator = `@@cadenza-evidence-${randomUUID()}@@`;
    const out = await shOk(sandbox, [
      'set -e',
      'git diff "$RANGE"',
      'printf "\\n%s\\n" "$SEP"; git diff --name-only "$RANGE"',
      'printf "\\n%s\\n" "$SEP"; git diff --stat "$RANGE"',
      'printf "\\n%s\\n" "$SEP"; git log --format="%h %s" "$RANGE"',
      'printf "\\n%s\\n" "$SEP"',
      STOP_LEFTOVERS_SCRIPT,
      'git checkout --quiet -- . && git clean -fdq',
    ].join('\n'), { env: { RANGE: `${input.baseCommit}..${input.headCommit}`, SEP: separator }, maxOutputBytes: DIFF_LIMIT });
    const sections = out.split(`\n${separator}\n`);
    if (sections.length !== 5) throw new Error(`collectEvidence could not read git's output (${sections.length} sections)`);
    const [diffText, names, statText, logText, stoppedText] = sections as [string, string, string, string, string];
    const stoppedProcesses = [...(input.stoppedBeforeChecks ?? []), ...takeStoppedProcesses(stoppedText).stopped];
    const stoppedLines = stoppedProcesses.map((p) => `- \`${p.command.replaceAll('`', "'")}\`, left running by ${p.startedBy === 'agent' ? 'the agent' : 'a check'}`);
    const changedFiles = names.split('\n').filter(Boolean);
    const stat = statText.trimEnd();
    const log = logText.trimEnd();
    const passed = input.checks.every((check) => check.passed || !check.required);

    const storedDiff = await deps.artifacts.put(diffText, 'diff');
    const checkLines = input.checks.map(
      (check) =>
        `- ${check.passed ? 'PASS' : 'FAIL'} \`${check.name}\`${check.required ? '' : ' (optional)'}: exit ${check.exitCode}${check.timedOut ? ', timed out' : ''}, ${(check.durationMs / 1000).toFixed(1)} s (output ${check.output.ref})` +
        (check.reports?.length ? `; reports: ${check.reports.map((report) => `${report.path} (${report.ref})`).join(', ')}` : ''),
    );
    const walkthrough = [
      `# ${input.identifier}: ${input.title}, round ${input.round}`,
      '',
      '## What the agent says it did',
      input.agentSummary,
      '',
      '## What changed',
      changedFiles.length ? '```\n' + stat + '\n```' : 'No files changed.',
      '',
      log ? `Commits on the work branch:\n\`\`\`\n${log}\n\`\`\`` : '',
      '',
      '## Checks Cadenza ran (not the agent)',
      ...(checkLines.length ? checkLines : ['- (no proof commands configured)']),
      '',
      ...(stoppedLines.length ? ['## Processes Cadenza stopped', ...stoppedLines, ''] : []),
      `## Cost\n${input.tokens.total} tokens (${input.tokens.input} in, ${input.tokens.output} out) on ${input.model}.`,
      '',
      `Full diff: ${storedDiff.ref}`,
    ].join('\n');
    const storedWalkthrough = await deps.artifacts.put(walkthrough, 'walkthrough');
    const summary = [
      `**Cadenza proof for round ${input.round}: ${passed ? 'passed' : 'FAILED'}**`,
      '',
      ...checkLines,
      '',
      `Changed files (${changedFiles.length}): ${changedFiles.map((file) => `\`${file}\``).join(', ') || 'none'}`,
      ...(stoppedProcesses.length ? [`Stopped ${stoppedProcesses.length} process(es) left running (see the walkthrough)`] : []),
      `Head commit: \`${input.headCommit.slice(0, 12)}\` · tokens: ${input.tokens.total} · model: ${input.model}`,
      `Walkthrough: ${deps.artifacts.pathOf(storedWalkthrough.ref)}`,
    ].join('\n');
    const storedSummary = await deps.artifacts.put(summary, 'proof-summary');
    return {
      round: input.round,
      passed: passed && changedFiles.length > 0,
      checks: input.checks,
      headCommit: input.headCommit,
      changedFiles,
      diff: asRef(storedDiff),
      walkthrough: asRef(storedWalkthrough),
      summary: asRef(storedSummary),
      ...(stoppedProcesses.length ? { stoppedProcesses } : {}),
    };
  }

  /** The proof summary text, for the tracker comment (kept out of history). */
  async function readArtifactText(input: { ref: string }): Promise<string> {
    return deps.artifacts.getText(input.ref);
  }

  return { commitWork, runProofCheck, collectEvidence, readArtifactText };
}
