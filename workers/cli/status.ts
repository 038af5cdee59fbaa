/** `cadenza status` (the table of runs, or one issue in full) and `cadenza list`. */
import type { Client, Connection } from '@temporalio/client';
import { issueStatus } from '../../client/issues.ts';
import { issueKey, phaseKey, type IssueStatus, type IssueWorkflowResult } from '../../workflows/definitions.ts';
import { progressNoteLines, reviewLines } from './progress.ts';
import { addressOf, cadenzaCommand, connect, errorText, locateRun, oneLine, out, table, runConfig, when, withWorker, type Flags, type RunConfig } from './common.ts';

export async function status(flags: Flags, identifier: string | undefined): Promise<void> {
  const address = addressOf(flags);
  const config = runConfig(flags);
  const { client, connection } = await connect(address);
  try {
    if (identifier) await issueStatusOf(client, connection, config, identifier, address);
    else await statusTable(client, connection);
  } finally {
    await connection.close();
  }
}

async function statusTable(client: Client, connection: Connection): Promise<void> {
  const rows: string[][] = [];
  for await (const info of client.workflow.list({ query: "WorkflowType = 'issueWorkflow'" })) {
    const identifier = info.typedSearchAttributes.get(issueKey) ?? info.workflowId;
    const phase = info.typedSearchAttributes.get(phaseKey) ?? '?';
    const run = info.status.name.toLowerCase();
    if (info.status.name !== 'RUNNING') {
      rows.push([identifier, phase, '-', '-', '-', '-', run, '-']);
      continue;
    }
    const handle = client.workflow.getHandle(info.workflowId, info.runId);
    const status = await withWorker(connection, 5_000, () => issueStatus(handle)).catch(() => null);
    if (!status) rows.push([identifier, phase, '?', '?', '?', '?', run, 'no worker answered the status query (is `npx cadenza up` running?)']);
    else rows.push([identifier, status.phase, String(status.round), String(status.turns), String(status.tokens.total), status.model ?? '-', run, oneLine(status.lastError)]);
    if (rows.length >= 200) break;
  }
  if (rows.length === 0) {
    out('No issue workflows yet. `npx cadenza up` starts one per ready issue.');
    return;
  }
  table(['ISSUE', 'PHASE', 'ROUND', 'TURNS', 'TOKENS', 'MODEL', 'RUN', 'LAST ERROR'], rows);
}

async function issueStatusOf(client: Client, connection: Connection, config: RunConfig | null, identifier: string, address: string): Promise<void> {
  const handle = await locateRun(client, config, identifier, address);
  const description = await handle.describe();
  const run = description.status.name;
  const status = await withWorker(connection, run === 'RUNNING' ? 10_000 : 3_000, () => issueStatus(handle)).catch((error: unknown) => {
    if (run === 'RUNNING') throw error;
    return null;
  });
  out(`${identifier}  ${status?.title ?? (description.memo?.title as string | undefined) ?? ''}`);
  out(`  workflow    ${handle.workflowId} (${run.toLowerCase()}, started ${when(description.startTime)}${description.closeTime ? `, closed ${when(description.closeTime)}` : ''})`);
  if (!status) {
    // A closed run with no worker to answer the query: what its result and search attributes say.
    out(`  phase       ${description.typedSearchAttributes.get(phaseKey) ?? '?'}`);
    const result = await handle.result().then((r) => r as IssueWorkflowResult, (error: Error) => error);
    if (result instanceof Error) out(`  last error  ${oneLine(errorText(result), 200)}`);
    else {
      out(`  round       ${result.rounds}${result.turns !== undefined ? `\n  turns       ${result.turns}` : ''}`);
      out(`  tokens      ${result.tokens.total} (input ${result.tokens.input}, output ${result.tokens.output})`);
      if (result.model) out(`  model       ${result.model}`);
      if (result.headCommit) out(`  approved    ${result.headCommit}`);
      out(`  landed      ${result.landedCommit ?? '-'}`);
      if (result.revertCommit) out(`  reverted    by ${result.revertCommit}`);
      if (result.pullRequest) out(`  pull req.   #${result.pullRequest.number} ${result.pullRequest.url}`);
    }
    return;
  }
  out(`  phase       ${status.phase}, round ${status.round} (session attempt ${status.attempt})`);
  out(`  turns       ${status.turns}`);
  out(`  tokens      ${status.tokens.total} (input ${status.tokens.input}, output ${status.tokens.output})`);
  out(`  model       ${status.model ?? '-'}`);
  out(`  sandbox     ${status.sandbox ?? '-'}${status.host ? ` on host ${status.host}` : ''}`);
  out(`  last error  ${status.lastError ?? '-'}`);
  out(`  decision    ${status.decision ? `${status.decision.kind} by ${status.decision.by}${status.decision.text ? `: ${oneLine(status.decision.text)}` : ''}` : '-'}`);
  out(`  landed      ${status.landedCommit ?? '-'}`);
  if (status.pullRequest) out(`  pull req.   #${status.pullRequest.number} ${status.pullRequest.url} (from ${status.pullRequest.branch})`);
  if (status.proof.length === 0) out('  proof       none yet');
  for (const proof of status.proof) {
    out(`  proof round ${proof.round}: ${proof.passed ? 'passed' : 'FAILED'} at commit ${proof.headCommit}`);
    for (const warning of proof.integrity ?? []) out(`    TEST INTEGRITY: ${warning}`);
    for (const check of proof.checks) {
      const verdict = check.passed ? 'passed' : check.timedOut ? 'timed out' : 'failed';
      out(`    check ${check.name}${check.required ? '' : ' (optional)'}: ${verdict}, exit ${check.exitCode}, ${(check.durationMs / 1000).toFixed(1)}s, output ${check.output.ref}`);
    }
    const changes = proof.changes?.map((change) => `${change.status} ${change.from ? `${change.from} -> ` : ''}${change.path}${change.note ? ` (${change.note})` : ''}`) ?? proof.changedFiles;
    out(`    changed files: ${changes.join(', ') || 'none'}`);
    out(`    diff ${proof.diff.ref}, walkthrough ${proof.walkthrough.ref}`);
    for (const line of reviewLines(proof)) out(line);
  }
  for (const line of watchLines(status)) out(line);
  if (status.reviewTokens) out(`  reviewer    ${status.reviewTokens.total} tokens in all (review.budget_tokens is its own)`);
  for (const line of await progressNoteLines(status)) out(line);
  if (status.phase === 'AwaitingApproval') {
    const cadenza = cadenzaCommand(address);
    out(`  waiting for a decision on ${status.watch?.revert ? `the revert ${status.headCommit}` : status.headCommit ?? 'the head above'}:`);
    out(`    ${cadenza} approve ${identifier} --by YOUR-NAME${status.headCommit ? ` --commit ${status.headCommit.slice(0, 12)}` : ''}`);
    out(`    ${cadenza} reject ${identifier} --by YOUR-NAME --feedback "what to change"`);
  }
}

export async function list(flags: Flags): Promise<void> {
  const { client, connection } = await connect(addressOf(flags));
  try {
    const rows: string[][] = [];
    for await (const info of client.workflow.list({ query: "WorkflowType = 'issueWorkflow'" })) {
      rows.push([
        info.workflowId,
        info.typedSearchAttributes.get(issueKey) ?? '-',
        info.typedSearchAttributes.get(phaseKey) ?? '-',
        info.status.name.toLowerCase(),
        when(info.startTime),
        when(info.closeTime),
      ]);
      if (rows.length >= 200) break;
    }
    if (rows.length === 0) out('No issue workflows yet. `npx cadenza up` starts one per ready issue.');
    else table(['WORKFLOW ID', 'ISSUE', 'PHASE', 'STATUS', 'STARTED', 'CLOSED'], rows);
  } finally {
    await connection.close();
  }
}

/** The post-merge watch: how often it ran, what it found, and the revert. */
function watchLines(status: IssueStatus): string[] {
  const watch = status.watch;
  if (!watch) return [];
  const verdict = { passed: 'passed', regression: 'REGRESSION', failing_before: 'failing, and failing before the landing too', null: 'running' }[watch.verdict ?? 'null'];
  const lines = [`  watch       ${watch.commit}: ${verdict}, ${watch.runs} pass${watch.runs === 1 ? '' : 'es'}${watch.until ? `, until ${new Date(watch.until).toISOString()}` : ''}`];
  for (const check of [...watch.checks, ...watch.parentChecks]) {
    lines.push(`    check ${check.name} on ${check.commit.slice(0, 12)}${check.commit === watch.parent ? ' (before the landing)' : ''}: ${check.passed ? 'passed' : 'failed'}, exit ${check.exitCode}, output ${check.output.ref}`);
  }
  const revert = watch.revert;
  if (revert) lines.push(`  revert      ${revert.commit ?? '-'}: ${revert.outcome.replace(/_/g, ' ')}${revert.by ? ` (${revert.by})` : ''}${revert.pullRequest ? ` ${revert.pullRequest.url}` : ''}${revert.conflicts?.length ? ` in ${revert.conflicts.join(', ')}` : ''}`);
  return lines;
}
