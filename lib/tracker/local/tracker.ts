/**
 * The local tracker, Cadenza's embedded default: the issue files of a folder (files.ts) mapped to
 * Cadenza's issues and comments. People edit these files by hand, so reading is forgiving about
 * optional keys (a bad value is ignored with a warning).
 */
import * as nodePath from 'node:path';
import * as YAML from 'yaml';
import { TrackerError, type BlockerRef, type Issue, type TrackerAdapter, type TrackerComment } from '../types.ts';
import { IssueFolder, errorMessage, fileCreatedAt, isPlainObject, isPriority, scalarString, toIso, type IssueRecord, type Loaded } from './files.ts';

export interface LocalTrackerOptions {
  /** Soft problems (unreadable or invalid files skipped in listings, ignored bad values). */
  onWarning?: (msg: string) => void;
  now?: () => Date;
}

const DEFAULT_AUTHOR = 'cadenza';

export class LocalTracker implements TrackerAdapter {
  readonly kind = 'local';
  private readonly files: IssueFolder;
  private readonly warn: (msg: string) => void;
  private readonly now: () => Date;

  constructor(folder: string, options: LocalTrackerOptions = {}) {
    this.warn = options.onWarning ?? ((msg) => process.stderr.write(`cadenza: local tracker: ${msg}\n`));
    this.now = options.now ?? (() => new Date());
    this.files = new IssueFolder(folder, this.now);
  }

  get folder(): string {
    return this.files.folder;
  }

  async fetchIssuesByStates(states: string[]): Promise<Issue[]> {
    const wanted = new Set(states.map(normalizeState));
    if (wanted.size === 0) return [];
    // Keyed by file-name stem, which for a valid file is its identifier.
    const loaded = new Map<string, Loaded>();
    for (const name of await this.files.listFileNames()) {
      const stem = name.slice(0, -'.md'.length);
      try {
        const result = await this.files.load(stem, false);
        if (result) loaded.set(stem, result);
      } catch (error) {
        this.warn(`skipping ${nodePath.join(this.folder, name)}: ${errorMessage(error)}`);
      }
    }
    const issues: Issue[] = [];
    const blockerStates = new Map<string, Promise<string>>();
    for (const [identifier, result] of loaded) {
      blockerStates.set(identifier, Promise.resolve(result.ok ? result.record.state : 'Unknown'));
    }
    for (const result of loaded.values()) {
      if (!result.ok) {
        this.warn(`skipping invalid issue file: ${result.error.message}`);
        continue;
      }
      if (!wanted.has(normalizeState(result.record.state))) continue;
      issues.push(await this.toIssue(result.record, blockerStates));
    }
    return issues;
  }

  /** Only the issues found, in the order of `ids`; an invalid file for a requested id throws. */
  async fetchIssuesByIds(ids: string[]): Promise<Issue[]> {
    const issues: Issue[] = [];
    const blockerStates = new Map<string, Promise<string>>();
    for (const id of new Set(ids)) {
      const result = await this.files.load(id);
      if (!result) continue;
      if (!result.ok) throw result.error;
      issues.push(await this.toIssue(result.record, blockerStates));
    }
    return issues;
  }

  async setState(issueId: string, state: string): Promise<void> {
    if (typeof state !== 'string' || state.trim() === '') {
      throw new TrackerError('tracker_invalid_data', `cannot set issue ${issueId} to an empty state`);
    }
    await this.files.update(issueId, (record) => {
      record.doc.set('state', state);
    });
  }

  async addComment(issueId: string, body: string, author: string = DEFAULT_AUTHOR): Promise<TrackerComment> {
    return this.files.update(issueId, (record) => {
      const existing = this.readComments(record);
      const comment: TrackerComment = {
        id: nextCommentId(existing),
        author,
        body,
        created_at: this.now().toISOString(),
      };
      const node = record.doc.get('comments', true);
      if (YAML.isSeq(node)) node.add(record.doc.createNode(comment));
      else record.doc.set('comments', record.doc.createNode([comment]));
      return comment;
    });
  }

  async updateComment(issueId: string, commentId: string, body: string): Promise<void> {
    await this.files.update(issueId, (record) => {
      const comments = this.readComments(record);
      const index = comments.findIndex((comment) => comment.id === commentId);
      const current = comments[index];
      if (!current) {
        throw new TrackerError('tracker_not_found', `comment ${commentId} not found on issue ${issueId} (${record.path})`);
      }
      if (YAML.isMap(record.doc.getIn(['comments', index], true))) {
        record.doc.setIn(['comments', index, 'body'], body);
        // A hand-written comment without an id gets its effective id persisted.
        if (!record.doc.hasIn(['comments', index, 'id'])) record.doc.setIn(['comments', index, 'id'], current.id);
      } else {
        record.doc.setIn(['comments', index], record.doc.createNode({ ...current, body }));
      }
    });
  }

  async listComments(issueId: string): Promise<TrackerComment[]> {
    return this.readComments(await this.files.require(issueId));
  }

  private async toIssue(record: IssueRecord, blockerStates: Map<string, Promise<string>>): Promise<Issue> {
    const { data, path } = record;
    const blockedBy: BlockerRef[] = [];
    for (const identifier of uniqueStrings(stringList(data.blocked_by, 'blocked_by', path, this.warn))) {
      let state = blockerStates.get(identifier);
      if (!state) {
        state = this.blockerState(identifier, path);
        blockerStates.set(identifier, state);
      }
      blockedBy.push({ id: identifier, identifier, state: await state });
    }
    let priority: number | null = null;
    if (data.priority !== undefined && data.priority !== null && data.priority !== '') {
      const value = typeof data.priority === 'string' ? Number(data.priority) : data.priority;
      if (isPriority(value)) priority = value;
      else this.warn(`${path}: ignoring priority ${JSON.stringify(data.priority)} (expected 1..4)`);
    }
    const description = record.body.replace(/^(?:[ \t]*\r?\n)+/, '').trimEnd();
    return {
      id: record.identifier,
      identifier: record.identifier,
      title: record.title,
      description: description === '' ? null : description,
      priority,
      state: record.state,
      branch_name: optionalString(data.branch_name),
      url: optionalString(data.url) ?? `file://${path}`,
      labels: uniqueStrings(stringList(data.labels, 'labels', path, this.warn).map((label) => label.toLowerCase())),
      blocked_by: blockedBy,
      created_at: this.timestamp(data.created_at, 'created_at', path, fileCreatedAt(record.stat)),
      updated_at: this.timestamp(data.updated_at, 'updated_at', path, record.stat.mtime.toISOString()),
    };
  }

  private async blockerState(identifier: string, referencedFrom: string): Promise<string> {
    try {
      const result = await this.files.load(identifier);
      if (result?.ok) return result.record.state;
      if (result) this.warn(`${referencedFrom}: blocker ${identifier} is unreadable: ${result.error.message}`);
    } catch (error) {
      this.warn(`${referencedFrom}: blocker ${JSON.stringify(identifier)}: ${errorMessage(error)}`);
    }
    return 'Unknown';
  }

  private timestamp(value: unknown, key: string, path: string, fallback: string): string {
    if (value === undefined || value === null || value === '') return fallback;
    const iso = toIso(value);
    if (iso === null) this.warn(`${path}: ignoring ${key} ${JSON.stringify(String(value))} (not an ISO-8601 date)`);
    return iso ?? fallback;
  }

  private readComments(record: IssueRecord): TrackerComment[] {
    const raw = record.data.comments;
    if (raw === undefined || raw === null) return [];
    if (!Array.isArray(raw)) {
      throw new TrackerError('tracker_invalid_data', `${record.path}: 'comments' must be a list`);
    }
    const fallbackTime = fileCreatedAt(record.stat);
    return raw.map((item: unknown, index): TrackerComment => {
      const entry: Record<string, unknown> = isPlainObject(item) ? item : { body: item };
      return {
        id: scalarString(entry.id) ?? `c-${index + 1}`,
        author: scalarString(entry.author) ?? 'unknown',
        body: scalarString(entry.body) ?? '',
        created_at: toIso(entry.created_at) ?? fallbackTime,
      };
    });
  }
}

function nextCommentId(comments: TrackerComment[]): string {
  let highest = comments.length;
  for (const { id } of comments) {
    const match = /^c-(\d+)$/.exec(id);
    if (match) highest = Math.max(highest, Number(match[1]));
  }
  return `c-${highest + 1}`;
}

function normalizeState(state: string): string {
  return state.trim().toLowerCase();
}

function optionalString(value: unknown): string | null {
  const text = scalarString(value)?.trim();
  return text ? text : null;
}

/** A list of scalars; a single scalar counts as a one-element list. */
function stringList(value: unknown, key: string, path: string, warn: (msg: string) => void): string[] {
  if (value === undefined || value === null) return [];
  const items = Array.isArray(value) ? value : [value];
  const out: string[] = [];
  for (const item of items) {
    const text = scalarString(item)?.trim();
    if (text) out.push(text);
    else if (text === undefined) warn(`${path}: ignoring a non-text entry in '${key}'`);
  }
  return out;
}

function uniqueStrings(values: string[]): string[] {
  return [...new Set(values)];
}

