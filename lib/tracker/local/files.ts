/**
 * The local tracker's store: a folder with one Markdown file per issue, `<folder>/<IDENTIFIER>.md`,
 * YAML front matter for the fields and the body as the description. This module reads, lists and
 * writes those files (a per-file in-process queue, atomic replacement by temp file + rename) and
 * reports IO and format failures as TrackerErrors; what the keys mean is the tracker's (tracker.ts).
 */
import { promises as fsp, type Stats } from 'node:fs';
import * as nodePath from 'node:path';
import * as YAML from 'yaml';
import { TrackerError } from '../types.ts';

export interface IssueFileFields {
  identifier: string;
  title: string;
  description?: string | null;
  state: string;
  priority?: number | null;
  labels?: string[];
  blocked_by?: string[];
  /** The branch the work goes on (a person's, say); absent = Cadenza's own `cadenza/<identifier>`. */
  branch_name?: string | null;
}

const IDENTIFIER_PATTERN = /^[A-Za-z0-9._-]+$/;
const REQUIRED_KEYS = ['identifier', 'title', 'state'] as const;
const DEFAULT_AUTHOR = 'cadenza';
const YAML_OUT: YAML.ToStringOptions = { lineWidth: 0 };

/**
 * `<identifier>.md`. Throws for identifiers that could name a path outside the folder (anything
 * outside [A-Za-z0-9._-]) and for a leading dot (hidden files, which listings skip).
 */
export function issueFileName(identifier: string): string {
  if (typeof identifier !== 'string' || !IDENTIFIER_PATTERN.test(identifier) || identifier.startsWith('.')) {
    throw new TrackerError(
      'tracker_invalid_data',
      `invalid issue identifier ${JSON.stringify(identifier)}: use only letters, digits, '.', '_' and '-' (not starting with '.')`,
    );
  }
  return `${identifier}.md`;
}

/** Writes (or overwrites) one issue file, e.g. to seed demo issues. Returns its absolute path. */
export async function writeIssueFile(folder: string, fields: IssueFileFields): Promise<string> {
  const path = nodePath.join(nodePath.resolve(folder), issueFileName(fields.identifier));
  for (const key of ['title', 'state'] as const) {
    if (typeof fields[key] !== 'string' || fields[key].trim() === '') {
      throw new TrackerError('tracker_invalid_data', `issue ${fields.identifier}: '${key}' must be a non-empty string`);
    }
  }
  const priority = fields.priority ?? null;
  if (priority !== null && !isPriority(priority)) {
    throw new TrackerError('tracker_invalid_data', `issue ${fields.identifier}: priority must be 1..4, got ${priority}`);
  }
  const blockedBy = fields.blocked_by ?? [];
  blockedBy.forEach(issueFileName);

  const stamp = new Date().toISOString();
  const data: Record<string, unknown> = { identifier: fields.identifier, title: fields.title, state: fields.state };
  if (priority !== null) data.priority = priority;
  if (fields.branch_name?.trim()) data.branch_name = fields.branch_name.trim();
  data.labels = (fields.labels ?? []).map((label) => label.toLowerCase());
  data.blocked_by = blockedBy;
  data.created_at = stamp;
  data.updated_at = stamp;
  const description = fields.description?.trim() ? `\n${fields.description.trimEnd()}\n` : '';

  await fsp.mkdir(nodePath.dirname(path), { recursive: true });
  await withFileLock(path, () => writeAtomic(path, render(new YAML.Document(data), description)));
  return path;
}

/** A parsed issue file whose required keys are present. */
export interface IssueRecord {
  path: string;
  doc: YAML.Document;
  data: Record<string, unknown>;
  /** Raw text after the closing front-matter delimiter, written back unchanged. */
  body: string;
  stat: Stats;
  identifier: string;
  title: string;
  state: string;
}

export type Loaded = { ok: true; record: IssueRecord } | { ok: false; error: TrackerError };

/** The issue files of one folder. */
export class IssueFolder {
  readonly folder: string;

  constructor(folder: string, private readonly now: () => Date = () => new Date()) {
    this.folder = nodePath.resolve(folder);
  }

  async listFileNames(): Promise<string[]> {
    let names: string[];
    try {
      names = await fsp.readdir(this.folder);
    } catch (error) {
      throw new TrackerError('tracker_unavailable', `cannot read local tracker folder ${this.folder}: ${errorMessage(error)}`);
    }
    return names.filter((name) => name.endsWith('.md') && !name.startsWith('.') && name.length > 3).sort();
  }

  /**
   * null when no file exists for `identifier`; IO failures other than "missing" throw. With `byId`,
   * a file whose identifier differs only in case (case-insensitive file systems) counts as missing.
   */
  async load(identifier: string, byId = true): Promise<Loaded | null> {
    const path = nodePath.join(this.folder, issueFileName(identifier));
    let text: string;
    let stat: Stats;
    try {
      const handle = await fsp.open(path, 'r');
      try {
        stat = await handle.stat();
        text = await handle.readFile('utf8');
      } finally {
        await handle.close();
      }
    } catch (error) {
      if (isMissing(error)) return null;
      throw new TrackerError('tracker_unavailable', `cannot read ${path}: ${errorMessage(error)}`);
    }
    try {
      return { ok: true, record: parseIssueFile(path, text, stat, identifier, byId) };
    } catch (error) {
      if (error instanceof TrackerError && error.code === 'tracker_not_found') return null;
      if (error instanceof TrackerError) return { ok: false, error };
      throw error;
    }
  }

  async require(issueId: string): Promise<IssueRecord> {
    const result = await this.load(issueId);
    if (!result) {
      throw new TrackerError(
        'tracker_not_found',
        `issue ${issueId} not found in local tracker folder ${this.folder} (no file ${issueFileName(issueId)})`,
      );
    }
    if (!result.ok) throw result.error;
    return result.record;
  }

  /** Read-modify-write of one issue file under its lock; bumps updated_at (and pins a defaulted created_at). */
  async update<T>(issueId: string, change: (record: IssueRecord) => T): Promise<T> {
    const path = nodePath.join(this.folder, issueFileName(issueId));
    return withFileLock(path, async () => {
      const record = await this.require(issueId);
      const result = change(record);
      // The rename gives the file a new birth time, so a defaulted created_at is pinned now.
      if (toIso(record.data.created_at) === null) record.doc.set('created_at', fileCreatedAt(record.stat));
      record.doc.set('updated_at', this.now().toISOString());
      await writeAtomic(path, render(record.doc, record.body));
      return result;
    });
  }
}

/** Splits and validates one file; `expected` is the identifier taken from the file name. */
function parseIssueFile(path: string, text: string, stat: Stats, expected: string, byId: boolean): IssueRecord {
  const parts = splitFrontMatter(text);
  if (!parts) {
    throw new TrackerError(
      'tracker_invalid_data',
      `${path}: no YAML front matter between '---' lines (missing required keys ${REQUIRED_KEYS.join(', ')})`,
    );
  }
  const doc = YAML.parseDocument(parts.yaml);
  if (doc.errors.length > 0) {
    throw new TrackerError('tracker_invalid_data', `${path}: invalid YAML front matter: ${doc.errors[0]?.message}`);
  }
  const data: unknown = doc.contents === null ? {} : doc.toJS();
  if (!isPlainObject(data)) {
    throw new TrackerError('tracker_invalid_data', `${path}: front matter must be a mapping of keys to values`);
  }
  const missing = REQUIRED_KEYS.filter((key) => {
    const value = scalarString(data[key]);
    return value === null || value.trim() === '';
  });
  if (missing.length > 0) {
    const keys = missing.map((key) => `'${key}'`).join(', ');
    throw new TrackerError('tracker_invalid_data', `${path}: missing required key${missing.length > 1 ? 's' : ''} ${keys}`);
  }
  const identifier = scalarString(data.identifier) as string;
  if (identifier !== expected) {
    // On a case-insensitive file system `abc-1` opens ABC-1.md: that is not the issue asked for.
    if (byId && identifier.toLowerCase() === expected.toLowerCase()) {
      throw new TrackerError('tracker_not_found', `${path}: identifier is ${identifier}, not ${expected}`);
    }
    throw new TrackerError(
      'tracker_invalid_data',
      `${path}: identifier ${JSON.stringify(identifier)} does not match the file name (expected ${JSON.stringify(expected)})`,
    );
  }
  return {
    path,
    doc,
    data,
    body: parts.body,
    stat,
    identifier,
    title: scalarString(data.title) as string,
    state: scalarString(data.state) as string,
  };
}

function splitFrontMatter(text: string): { yaml: string; body: string } | null {
  const source = text.replace(/^\uFEFF/, '');
  const open = /^(?:[ \t]*\r?\n)*---[ \t]*\r?\n/.exec(source);
  if (!open) return null;
  const rest = source.slice(open[0].length);
  const close = /^(?:---|\.\.\.)[ \t]*(?:\r?\n|$)/m.exec(rest);
  if (!close) return null;
  return { yaml: rest.slice(0, close.index), body: rest.slice(close.index + close[0].length) };
}

function render(doc: YAML.Document, body: string): string {
  return `---\n${doc.toString(YAML_OUT)}---\n${body}`;
}

let tempCounter = 0;

/** Temp file in the same folder (so rename is atomic), flushed, then renamed over the target. */
async function writeAtomic(path: string, content: string): Promise<void> {
  const temp = nodePath.join(nodePath.dirname(path), `.${nodePath.basename(path)}.${process.pid}.${++tempCounter}.tmp`);
  try {
    const handle = await fsp.open(temp, 'wx');
    try {
      await handle.writeFile(content, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fsp.rename(temp, path);
  } catch (error) {
    await fsp.rm(temp, { force: true }).catch(() => undefined);
    throw new TrackerError('tracker_unavailable', `cannot write ${path}: ${errorMessage(error)}`);
  }
}

/** Per-file promise queue: writes to one file in this process run one after another. */
const fileLocks = new Map<string, Promise<void>>();

async function withFileLock<T>(path: string, run: () => Promise<T>): Promise<T> {
  const previous = fileLocks.get(path) ?? Promise.resolve();
  const result = previous.then(run);
  const tail = result.then(
    () => undefined,
    () => undefined,
  );
  fileLocks.set(path, tail);
  try {
    return await result;
  } finally {
    if (fileLocks.get(path) === tail) fileLocks.delete(path);
  }
}

export function isPriority(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 4;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

export function scalarString(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value instanceof Date && !Number.isNaN(value.getTime())) return value.toISOString();
  return null;
}

export function toIso(value: unknown): string | null {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (typeof value !== 'string' || value.trim() === '') return null;
  const date = new Date(value.trim());
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

/** Birth time where the file system records it, else mtime. */
export function fileCreatedAt(stat: Stats): string {
  const born = stat.birthtimeMs > 0 && stat.birthtimeMs <= stat.mtimeMs ? stat.birthtime : stat.mtime;
  return born.toISOString();
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
