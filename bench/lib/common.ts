/**
 * What every benchmark shares: statistics, tables, result files, environment knobs, and a cleanup
 * registry so an interrupted run still removes its containers, worker processes and server.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../infra/paths.ts';
import { run } from '../../infra/process.ts';

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export const resultsDir = path.join(projectRoot, 'bench', 'results');

/** What a benchmark is given by the runner. */
export interface BenchContext {
  temporalAddress: string;
  /** Identifiers, task queues and container labels of this bench run start with it. */
  prefix: string;
  /** Measured runs per benchmark (BENCH_RUNS). */
  runs: number;
  log(line: string): void;
  /** Data one benchmark leaves for another in the same invocation (first-turn reuses overhead's runs). */
  shared: Map<string, unknown>;
}

/** One line of the final pass/fail table. */
export interface Target {
  benchmark: string;
  target: string;
  measured: string;
  pass: boolean | null;
}

export interface BenchOutcome {
  targets: Target[];
}

export function envInt(name: string, fallback: number, min = 1): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min) throw new Error(`${name}=${raw}: expected an integer >= ${min}`);
  return value;
}

export function envList(name: string, fallback: number[]): number[] {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const values = raw.split(',').map((part) => Number(part.trim()));
  if (values.some((value) => !Number.isSafeInteger(value) || value < 1)) throw new Error(`${name}=${raw}: expected a comma-separated list of integers >= 1`);
  return values;
}

export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Nearest-rank percentile (with few samples, p95 is the largest one). */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function mean(values: number[]): number {
  return values.length ? values.reduce((sum, value) => sum + value, 0) / values.length : NaN;
}

export const fmtMs = (value: number) => (Number.isFinite(value) ? `${Math.round(value)} ms` : 'n/a');
export const fmtS = (value: number) => (Number.isFinite(value) ? `${(value / 1000).toFixed(2)} s` : 'n/a');
export const fmtMiB = (bytes: number) => (Number.isFinite(bytes) ? `${(bytes / 1024 / 1024).toFixed(0)} MiB` : 'n/a');

/** A plain-text table with aligned columns (numbers right-aligned). */
export function table(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = [headers, ...rows.map((row) => row.map((cell) => String(cell)))];
  const widths = headers.map((_, column) => Math.max(...cells.map((row) => (row[column] ?? '').length)));
  const numeric = headers.map((_, column) => rows.length > 0 && rows.every((row) => /^[-+]?[\d.,]+( ?(ms|s|MiB|x|%))?$|^n\/a$/.test(String(row[column] ?? ''))));
  const line = (row: string[]) => row.map((cell, column) => (numeric[column] ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!))).join('  ').trimEnd();
  return [line(headers), widths.map((width) => '-'.repeat(width)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

export function writeResult(name: string, data: unknown): string {
  mkdirSync(resultsDir, { recursive: true });
  const file = path.join(resultsDir, `${name}.json`);
  writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
  return file;
}

export async function sh(cwd: string, command: string): Promise<string> {
  const result = await run('sh', ['-c', command], { cwd });
  if (result.code !== 0) throw new Error(`${command} failed in ${cwd}: ${result.stderr.trim() || result.stdout.trim()}`);
  return result.stdout.trim();
}

/** Waits until `probe` is true; throws after `timeoutMs`. */
export async function waitUntil(probe: () => boolean | Promise<boolean>, what: string, timeoutMs: number, intervalMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
}

const cleanups = new Set<() => Promise<void>>();

/** Registers something to undo if the bench is interrupted; call the returned function once it is done. */
export function onCleanup(cleanup: () => Promise<void>): () => void {
  cleanups.add(cleanup);
  return () => cleanups.delete(cleanup);
}

/** Runs every registered cleanup (newest first), each at most once. */
export async function runCleanups(): Promise<void> {
  const pending = [...cleanups].reverse();
  cleanups.clear();
  for (const cleanup of pending) await cleanup().catch((error: Error) => console.error(`[bench] cleanup failed: ${error.message}`));
}
