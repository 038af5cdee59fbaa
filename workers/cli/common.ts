/**
 * What the `cadenza` commands share: the flags, output helpers, the connection to Temporal (with a
 * deadline for calls a worker must answer), loading the contract, and the hints that name commands
 * as a person types them here.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Client, Connection, WorkflowHandle } from '@temporalio/client';
import { clientOf, connectClient, temporalSettings, TemporalSettings } from '../../client/connection.ts';
import { findIssueRun, statusOf } from '../../client/issues.ts';
import { InfraError } from '../../infra/log.ts';
import { binDir, stateDir } from '../../infra/paths.ts';
import { ContractError, loadContract, type CadenzaConfig, type Contract } from '../../lib/contract/index.ts';
import type { issueWorkflow } from '../../workflows/issue.ts';

/** A mistake in how the command was called: printed with the usage, exit code 2. */
export class UsageError extends Error {}

export const OPTIONS = {
  workflow: { type: 'string' },
  address: { type: 'string' },
  by: { type: 'string' },
  comment: { type: 'string' },
  feedback: { type: 'string' },
  'exit-when-done': { type: 'boolean' },
  again: { type: 'boolean' },
  commit: { type: 'string' },
  reason: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;
export type Flag = keyof typeof OPTIONS;
export type Flags = Partial<Record<Flag, string | boolean>>;

export const out = (line = '') => process.stdout.write(`${line}\n`);
export const demoDir = () => path.join(stateDir(), 'demo');
export const defaultWorkflowFile = () => path.join(demoDir(), 'WORKFLOW.md');

/** `npx cadenza` as a person must type it to reach `address` (the flag only when it is not the default). */
export function cadenzaCommand(address: string): string {
  return address === '127.0.0.1:7233' ? 'npx cadenza' : `npx cadenza --address ${address}`;
}

/**
 * The Temporal CLI as a person can run it here: its path unless `temporal` is on PATH, the address
 * unless default, and the namespace and TLS files when set (the API key as a reference to its variable).
 */
export function temporalCommand(address: string): string {
  const onPath = (process.env.PATH ?? '').split(path.delimiter).some((dir) => dir && existsSync(path.join(dir, 'temporal')));
  const local = path.join(binDir, 'temporal');
  const binary = process.env.TEMPORAL_CLI_PATH ?? (onPath || !existsSync(local) ? 'temporal' : path.relative(process.cwd(), local) || local);
  // A relative path runs only with a ./ in front (".cadenza/bin/temporal" would be looked up on PATH).
  const shown = binary.includes('/') && !path.isAbsolute(binary) && !binary.startsWith('./') && !binary.startsWith('../') ? `./${binary}` : binary;
  const flags = address === '127.0.0.1:7233' || address === 'localhost:7233' ? [] : ['--address', address];
  return [shown, ...flags, ...temporalSettings().temporalCliFlags()].join(' ');
}

export function addressOf(flags: Flags): string {
  return (flags.address as string | undefined) ?? temporalSettings().address;
}

export function stringFlag(flags: Flags, flag: 'by' | 'comment' | 'feedback', command: string, what: string): string {
  const value = flags[flag];
  if (typeof value !== 'string' || value.trim() === '') throw new UsageError(`${command} needs --${flag} ${what}`);
  return value;
}

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Loads WORKFLOW.md; a ContractError becomes one message naming code, key, value and what is allowed. */
export function contractFrom(file: string, hint: string, options: { warn?: boolean } = {}): Contract {
  try {
    const contract = loadContract(file);
    // Keys Cadenza does not read: named where a run starts (up, start), not on every status call.
    if (options.warn) for (const warning of contract.warnings ?? []) process.stderr.write(`warning: ${warning}\n`);
    return contract;
  } catch (error) {
    if (!(error instanceof ContractError)) throw error;
    const details = [
      error.key !== undefined ? `key: ${error.key}` : '',
      error.value !== undefined ? `value: ${show(error.value)}` : '',
      error.allowed !== undefined ? `allowed: ${error.allowed}` : '',
    ].filter(Boolean);
    throw new InfraError(`${path.resolve(file)} is not a valid contract [${error.code}]: ${error.message}${details.length ? ` (${details.join('; ')})` : ''}`, hint);
  }
}

/** The tracker kind workflow ids are derived from: the contract's, or `local` for the demo not yet seeded. */
/** What names an issue's run: its project and tracker. */
export type RunConfig = Pick<CadenzaConfig, 'project' | 'tracker'>;

/** The contract's project and tracker; null when there is no WORKFLOW.md (and none was named). */
export function runConfig(flags: Flags): RunConfig | null {
  const file = (flags.workflow as string | undefined) ?? defaultWorkflowFile();
  if (!flags.workflow && !existsSync(file)) return null;
  return contractFrom(file, 'fix the file, or pass --workflow with the contract your runs were started from.').config;
}

/**
 * The issue's run, which must exist: by the contract's project (or the id runs had before), or with no
 * contract, the issue's open (else latest) run found by its CadenzaIssue search attribute.
 */
export async function locateRun(client: Client, config: RunConfig | null, identifier: string, address: string): Promise<WorkflowHandle<typeof issueWorkflow>> {
  if (config) {
    const handle = await findIssueRun(client, config, identifier);
    if ((await statusOf(handle)) === null) throw notFound(identifier, handle.workflowId, address);
    return handle;
  }
  let latest: { workflowId: string; running: boolean; start: number } | undefined;
  for await (const run of client.workflow.list({ query: `WorkflowType = 'issueWorkflow' AND CadenzaIssue = '${identifier.replace(/'/g, "\\'")}'` })) {
    const candidate = { workflowId: run.workflowId, running: run.status.name === 'RUNNING', start: run.startTime.getTime() };
    if (!latest || (candidate.running && !latest.running) || (candidate.running === latest.running && candidate.start > latest.start)) latest = candidate;
  }
  if (!latest) throw notFound(identifier, null, address, `searched by issue: there is no WORKFLOW.md at ${defaultWorkflowFile()} to name its project; pass --workflow`);
  return client.workflow.getHandle(latest.workflowId);
}

/**
 * A client on Temporal: at `address` with the environment's namespace, TLS and API key (client/connection.ts),
 * or with the settings given. A refusal (no server, TLS, credentials, namespace) is one message saying which setting to look at.
 */
export async function connect(target: string | TemporalSettings): Promise<{ client: Client; connection: Connection }> {
  const settings = target instanceof TemporalSettings ? target : temporalSettings().withAddress(target);
  const connection = await connectClient(settings, { connectTimeoutMs: 5_000 });
  return { client: clientOf(connection, settings), connection };
}

/** Runs calls that need a worker (queries, updates) with a deadline, so a missing worker does not hang. */
export async function withWorker<T>(connection: Connection, ms: number, call: () => Promise<T>): Promise<T> {
  try {
    return await connection.withDeadline(Date.now() + ms, call);
  } catch (error) {
    if (/deadline|DEADLINE_EXCEEDED|timed out|timeout/i.test(errorText(error))) {
      throw new InfraError(`no worker answered within ${ms / 1000} s.`, 'start one with `npx cadenza up` (it runs a worker in the foreground), then try again.');
    }
    throw error;
  }
}

export function errorText(error: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = error; e instanceof Error && parts.length < 5; e = (e as { cause?: unknown }).cause) parts.push(e.message);
  return parts.join(': ');
}

export function notFound(identifier: string, workflowId: string | null, address: string, note?: string): InfraError {
  return new InfraError(`no workflow${workflowId ? ` ${workflowId}` : ''} for issue ${identifier} on ${address}${note ? ` (${note})` : ''}.`, 'see the runs with `npx cadenza list`; `npx cadenza up` starts a workflow for each ready issue.');
}

export function table(header: string[], rows: string[][]): void {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] ?? '').length)));
  for (const row of [header, ...rows]) out(row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd());
}

export const short = (sha: string | null | undefined) => (sha ? sha.slice(0, 10) : '-');
export const when = (date: Date | undefined) => (date ? date.toISOString().replace('T', ' ').slice(0, 19) : '-');
export const oneLine = (text: string | null | undefined, max = 80) => {
  const line = (text ?? '').replace(/\s+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max - 3)}...` : line || '-';
};
