/**
 * Proof of work, outside the agent's control: Cadenza commits what the agent left, runs the
 * contract's checks as their own activities, and stores the evidence (outputs, diff, changed files,
 * tokens, a walkthrough) in the artifact store. History keeps references only.
 */
import type { Contract, ProofCommand } from '../lib/contract/index.ts';
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
  contract: Contract;
  identifier: string;
  title: string;
  round: number;
  summary: string;
}

export function createProofActivities(deps: ActivityDeps) {
  const asRef = (stored: { ref: string; kind: string; bytes: number }): ArtifactRef => ({ ref: stored.ref, kind: stored.kind, bytes: stored.bytes });

  /**
   * Commits whatever the agent changed on the work branch (hooks disabled, fixed identity) and exports
   * the branch to the host mirror, so a lost sandbox can be rebuilt from it.
   */
  async function commitWork(input: CommitInput): Promise<{ headCommit: string; committed: boolean }> {
    const sandbox = sandboxFor(deps, input.workflowId, input.contract);
    const message = `${input.identifier}: ${input.title} (round ${input.round})\n\n${input.summary}\n\nCadenza-Workflow: ${input.workflowId}`;
    const status = await shOk(sandbox, 'git status --porcelain');
    let committed = false;
    if (status.trim()) {
      await shOk(sandbox, 'git add -A && git -c core.hooksPath=/dev/null -c user.name="Cadenza Agent" -c user.email=agent@cadenza.invalid commit --quiet --no-verify -F -', { stdin: message });
      committed = true;
    }
    const headCommit = (await shOk(sandbox, 'git rev-parse HEAD')).trim();
    const mirror = deps.mirrors.get(input.contract.config.repo.url);
    if (!(await mirror.resolve(headCommit)) || (await mirror.resolve(workSnapshotRef(input.workflowId))) !== headCommit) {
      await shOk(sandbox, `git bundle create --quiet ${TRANSFER_DIR}/out/work.bundle HEAD`);
      await mirror.fetchBundle(await getFile(sandbox, `${TRANSFER_DIR}/out/work.bundle`), 'HEAD', workSnapshotRef(input.workflowId));
    }
    return { headCommit, committed };
  }

  async function runProofCheck(input: { workflowId: string; contract: Contract; command: ProofCommand; label?: string }): Promise<ProofCheck> {
    const sandbox = sandboxFor(deps, input.workflowId, input.contract);
    const mark = `${TRANSFER_DIR}/out/check-started`;
    await shOk(sandbox, 'touch "$MARK"', { env: { MARK: mark } });
    const result = await sh(sandbox, input.command.run, { timeoutMs: input.command.timeoutMs, maxOutputBytes: 1024 * 1024 });
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
    contract: Contract;
    identifier: string;
    title: string;
    round: number;
    baseCommit: string;
    headCommit: string;
    checks: ProofCheck[];
    agentSummary: string;
    tokens: TokenUsage;
    model: string;
  }): Promise<ProofResult> {
    const sandbox = sandboxFor(deps, input.workflowId, input.contract);
    const range = `${input.baseCommit}..${input.headCommit}`;
    const diff = await sh(sandbox, `git diff ${range}`, { maxOutputBytes: DIFF_LIMIT });
    const changedFiles = (await shOk(sandbox, `git diff --name-only ${range}`)).split('\n').filter(Boolean);
    const stat = (await shOk(sandbox, `git diff --stat ${range}`)).trimEnd();
    const log = (await shOk(sandbox, `git log --format='%h %s' ${range}`)).trimEnd();
    const passed = input.checks.every((check) => check.passed || !check.required);
    // What the checks wrote (reports, build output) is evidence, not part of the change: back to the commit.
    await shOk(sandbox, 'git checkout --quiet -- . && git clean -fdq');

    const storedDiff = await deps.artifacts.put(diff.stdout, 'diff');
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
    };
  }

  /** The proof summary text, for the tracker comment (kept out of history). */
  async function readArtifactText(input: { ref: string }): Promise<string> {
    return deps.artifacts.getText(input.ref);
  }

  return { commitWork, runProofCheck, collectEvidence, readArtifactText };
}
