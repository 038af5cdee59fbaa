import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalTracker, issueFileName, writeIssueFile } from '../../lib/tracker/local.ts';
import { TrackerError } from '../../lib/tracker/types.ts';

let folder: string;
let warnings: string[];
let tracker: LocalTracker;
const fixedNow = new Date('2025-03-01T12:00:00.000Z');

beforeEach(() => {
  folder = mkdtempSync(join(tmpdir(), 'cadenza-local-tracker-'));
  warnings = [];
  tracker = new LocalTracker(folder, { onWarning: (msg) => warnings.push(msg), now: () => fixedNow });
});

afterEach(() => {
  rmSync(folder, { recursive: true, force: true });
});

function write(name: string, text: string): string {
  const path = join(folder, name);
  writeFileSync(path, text);
  return path;
}

async function expectTrackerError(promise: Promise<unknown>, code: TrackerError['code'], ...fragments: string[]) {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TrackerError);
  expect((error as TrackerError).code).toBe(code);
  for (const fragment of fragments) expect((error as TrackerError).message).toContain(fragment);
}

const handWritten = `---
identifier: CAD-1
title: Add a health endpoint
state: Todo
priority: 2
labels: [Backend, API]
blocked_by: [CAD-2, CAD-404]
created_at: 2025-01-02T03:04:05Z
updated_at: "2025-01-03T00:00:00.000Z"
branch_name: cad-1-health
owner: alice # unknown key, kept on write
comments:
  - id: c-1
    author: alice
    body: first thoughts
    created_at: 2025-01-02T04:00:00Z
---

Expose \`GET /health\`.

- returns 200
`;

describe('reading', () => {
  it('parses a hand-written file into the normalized issue', async () => {
    write('CAD-1.md', handWritten);
    write('CAD-2.md', '---\nidentifier: CAD-2\ntitle: Blocker\nstate: In Progress\n---\n');
    const [issue] = await tracker.fetchIssuesByIds(['CAD-1']);
    expect(issue).toEqual({
      id: 'CAD-1',
      identifier: 'CAD-1',
      title: 'Add a health endpoint',
      description: 'Expose `GET /health`.\n\n- returns 200',
      priority: 2,
      state: 'Todo',
      branch_name: 'cad-1-health',
      url: `file://${join(folder, 'CAD-1.md')}`,
      labels: ['backend', 'api'],
      blocked_by: [
        { id: 'CAD-2', identifier: 'CAD-2', state: 'In Progress' },
        { id: 'CAD-404', identifier: 'CAD-404', state: 'Unknown' },
      ],
      created_at: '2025-01-02T03:04:05.000Z',
      updated_at: '2025-01-03T00:00:00.000Z',
    });
    expect(warnings).toEqual([]);
  });

  it('fills defaults for missing optional keys', async () => {
    const path = write('CAD-3.md', '---\nidentifier: CAD-3\ntitle: Minimal\nstate: Todo\nurl: https://example.test/3\n---\n\n');
    const [issue] = await tracker.fetchIssuesByIds(['CAD-3']);
    expect(issue).toMatchObject({
      description: null,
      priority: null,
      branch_name: null,
      labels: [],
      blocked_by: [],
      url: 'https://example.test/3',
    });
    expect(Number.isNaN(Date.parse(issue!.created_at))).toBe(false);
    expect(issue!.updated_at).toBe(statSync(path).mtime.toISOString());
    expect(await tracker.listComments('CAD-3')).toEqual([]);
  });

  it('filters by state case-insensitively', async () => {
    await writeIssueFile(folder, { identifier: 'A-1', title: 'one', state: 'Todo' });
    await writeIssueFile(folder, { identifier: 'A-2', title: 'two', state: 'in progress' });
    await writeIssueFile(folder, { identifier: 'A-3', title: 'three', state: 'Done' });
    const active = await tracker.fetchIssuesByStates(['todo', 'In Progress']);
    expect(active.map((issue) => issue.identifier)).toEqual(['A-1', 'A-2']);
    expect((await tracker.fetchIssuesByStates(['DONE'])).map((issue) => issue.identifier)).toEqual(['A-3']);
    expect(await tracker.fetchIssuesByStates([])).toEqual([]);
  });

  it('resolves blocked_by to the blockers current states', async () => {
    await writeIssueFile(folder, { identifier: 'B-1', title: 'blocked', state: 'Todo', blocked_by: ['B-2', 'B-3', 'B-9'] });
    await writeIssueFile(folder, { identifier: 'B-2', title: 'blocker', state: 'Done' });
    await writeIssueFile(folder, { identifier: 'B-3', title: 'blocker', state: 'In Progress' });
    const [fromList] = await tracker.fetchIssuesByStates(['todo']);
    const expected = [
      { id: 'B-2', identifier: 'B-2', state: 'Done' },
      { id: 'B-3', identifier: 'B-3', state: 'In Progress' },
      { id: 'B-9', identifier: 'B-9', state: 'Unknown' },
    ];
    expect(fromList!.blocked_by).toEqual(expected);
    await tracker.setState('B-3', 'Done');
    const [fromIds] = await tracker.fetchIssuesByIds(['B-1']);
    expect(fromIds!.blocked_by[1]).toEqual({ id: 'B-3', identifier: 'B-3', state: 'Done' });
  });

  it('returns only the issues found, in the order asked', async () => {
    await writeIssueFile(folder, { identifier: 'C-1', title: 'one', state: 'Todo' });
    await writeIssueFile(folder, { identifier: 'C-2', title: 'two', state: 'Todo' });
    const issues = await tracker.fetchIssuesByIds(['C-2', 'C-404', 'C-1']);
    expect(issues.map((issue) => issue.id)).toEqual(['C-2', 'C-1']);
  });
});

describe('invalid files', () => {
  it('skips them in listings with a warning and throws for them by id', async () => {
    await writeIssueFile(folder, { identifier: 'D-1', title: 'fine', state: 'Todo' });
    write('D-2.md', '---\nidentifier: D-2\nstate: Todo\n---\nno title\n');
    write('D-3.md', 'just some notes, no front matter\n');
    write('D-4.md', '---\nidentifier: D-4\ntitle: [unclosed\nstate: Todo\n---\n');
    write('D-5.md', '---\nidentifier: OTHER-5\ntitle: wrong name\nstate: Todo\n---\n');
    write('notes.txt', 'ignored: not an issue file');

    const issues = await tracker.fetchIssuesByStates(['Todo']);
    expect(issues.map((issue) => issue.identifier)).toEqual(['D-1']);
    expect(warnings).toHaveLength(4);
    expect(warnings[0]).toContain(join(folder, 'D-2.md'));
    expect(warnings[0]).toContain("'title'");
    expect(warnings[1]).toContain('D-3.md');
    expect(warnings[2]).toContain('D-4.md');
    expect(warnings[3]).toContain('OTHER-5');

    await expectTrackerError(tracker.fetchIssuesByIds(['D-2']), 'tracker_invalid_data', join(folder, 'D-2.md'), "'title'");
    await expectTrackerError(tracker.fetchIssuesByIds(['D-3']), 'tracker_invalid_data', 'D-3.md', 'front matter');
    await expectTrackerError(tracker.setState('D-2', 'Done'), 'tracker_invalid_data', "'title'");
  });

  it('names every missing required key', async () => {
    write('E-1.md', '---\ntitle: ""\n---\n');
    await expectTrackerError(tracker.fetchIssuesByIds(['E-1']), 'tracker_invalid_data', "'identifier', 'title', 'state'");
  });

  it('ignores bad optional values with a warning', async () => {
    write('E-2.md', '---\nidentifier: E-2\ntitle: t\nstate: Todo\npriority: high\ncreated_at: yesterday\n---\n');
    const [issue] = await tracker.fetchIssuesByIds(['E-2']);
    expect(issue!.priority).toBeNull();
    expect(Number.isNaN(Date.parse(issue!.created_at))).toBe(false);
    expect(warnings.join('\n')).toMatch(/priority[\s\S]*created_at/);
  });
});

describe('writing', () => {
  it('setState and addComment keep the description and unknown keys', async () => {
    const path = write('CAD-1.md', handWritten);
    await tracker.setState('CAD-1', 'In Progress');
    const added = await tracker.addComment('CAD-1', 'Plan:\n- step one\n- step two');
    expect(added).toEqual({ id: 'c-2', author: 'cadenza', body: 'Plan:\n- step one\n- step two', created_at: fixedNow.toISOString() });
    const byHuman = await tracker.addComment('CAD-1', 'looks good', 'bob');
    expect(byHuman).toMatchObject({ id: 'c-3', author: 'bob' });

    const text = readFileSync(path, 'utf8');
    expect(text).toContain('owner: alice # unknown key, kept on write');
    expect(text.endsWith('\n\nExpose `GET /health`.\n\n- returns 200\n')).toBe(true);

    const [issue] = await tracker.fetchIssuesByIds(['CAD-1']);
    expect(issue).toMatchObject({
      state: 'In Progress',
      description: 'Expose `GET /health`.\n\n- returns 200',
      labels: ['backend', 'api'],
      priority: 2,
      created_at: '2025-01-02T03:04:05.000Z',
      updated_at: fixedNow.toISOString(),
    });
    expect(await tracker.listComments('CAD-1')).toEqual([
      { id: 'c-1', author: 'alice', body: 'first thoughts', created_at: '2025-01-02T04:00:00.000Z' },
      added,
      byHuman,
    ]);
    expect(readdirSync(folder)).toEqual(['CAD-1.md']);
  });

  it('updateComment replaces the body of one comment', async () => {
    write('CAD-1.md', handWritten);
    const workpad = await tracker.addComment('CAD-1', 'workpad v1');
    await tracker.updateComment('CAD-1', workpad.id, 'workpad v2');
    const comments = await tracker.listComments('CAD-1');
    expect(comments.map((c) => c.body)).toEqual(['first thoughts', 'workpad v2']);
    expect(comments[1]).toEqual({ ...workpad, body: 'workpad v2' });
    await expectTrackerError(tracker.updateComment('CAD-1', 'c-99', 'x'), 'tracker_not_found', 'c-99', 'CAD-1');
  });

  it('pins a defaulted created_at when it first writes the file', async () => {
    write('F-1.md', '---\nidentifier: F-1\ntitle: t\nstate: Todo\n---\nbody\n');
    const [before] = await tracker.fetchIssuesByIds(['F-1']);
    await tracker.setState('F-1', 'Done');
    const [after] = await tracker.fetchIssuesByIds(['F-1']);
    expect(after!.created_at).toBe(before!.created_at);
    expect(after!.description).toBe('body');
  });

  it('keeps all of 20 concurrent comments on one issue', async () => {
    await writeIssueFile(folder, { identifier: 'G-1', title: 'busy', state: 'Todo', description: 'keep me' });
    const bodies = Array.from({ length: 20 }, (_, i) => `comment ${i}`);
    const added = await Promise.all([
      ...bodies.map((body) => tracker.addComment('G-1', body)),
      tracker.setState('G-1', 'In Progress'),
    ]);
    const comments = await tracker.listComments('G-1');
    expect(comments.map((c) => c.body)).toEqual(bodies);
    expect(new Set(comments.map((c) => c.id)).size).toBe(20);
    expect(comments.map((c) => c.id)).toEqual(added.slice(0, 20).map((c) => (c as { id: string }).id));
    const [issue] = await tracker.fetchIssuesByIds(['G-1']);
    expect(issue).toMatchObject({ state: 'In Progress', description: 'keep me' });
    expect(readdirSync(folder)).toEqual(['G-1.md']);
  });

  it('serializes writes across tracker instances on the same folder', async () => {
    await writeIssueFile(folder, { identifier: 'G-2', title: 'shared', state: 'Todo' });
    const other = new LocalTracker(folder);
    await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? tracker : other).addComment('G-2', `n${i}`)));
    expect(await tracker.listComments('G-2')).toHaveLength(10);
  });

  it('writeIssueFile seeds a file the tracker reads back', async () => {
    const path = await writeIssueFile(join(folder, 'nested'), {
      identifier: 'S-1',
      title: 'Seeded: demo',
      description: 'Do the thing.',
      state: 'Todo',
      priority: 1,
      labels: ['Demo'],
      blocked_by: ['S-0'],
    });
    expect(path).toBe(join(folder, 'nested', 'S-1.md'));
    const seeded = new LocalTracker(join(folder, 'nested'));
    const [issue] = await seeded.fetchIssuesByIds(['S-1']);
    expect(issue).toMatchObject({
      title: 'Seeded: demo',
      description: 'Do the thing.',
      priority: 1,
      labels: ['demo'],
      blocked_by: [{ id: 'S-0', identifier: 'S-0', state: 'Unknown' }],
    });
    await expectTrackerError(writeIssueFile(folder, { identifier: 'S-2', title: 't', state: 'Todo', priority: 7 }), 'tracker_invalid_data', 'priority');
  });
});

describe('identifiers and errors', () => {
  it('refuses identifiers that could escape the folder', async () => {
    expect(issueFileName('CAD-1.v2_x')).toBe('CAD-1.v2_x.md');
    for (const bad of ['../evil', 'a/b', 'a\\b', '', '.hidden', 'sp ace', '/etc/passwd']) {
      expect(() => issueFileName(bad)).toThrow(TrackerError);
    }
    await expectTrackerError(writeIssueFile(folder, { identifier: '../escape', title: 't', state: 'Todo' }), 'tracker_invalid_data', '../escape');
    await expectTrackerError(tracker.setState('../../etc/passwd', 'Done'), 'tracker_invalid_data');
    await expectTrackerError(tracker.fetchIssuesByIds(['../x']), 'tracker_invalid_data');
    expect(readdirSync(join(folder, '..')).some((name) => name === 'escape.md')).toBe(false);
  });

  it('reports an unknown issue id on writes with the id and the folder', async () => {
    for (const write of [
      () => tracker.setState('NOPE-1', 'Done'),
      () => tracker.addComment('NOPE-1', 'hi'),
      () => tracker.updateComment('NOPE-1', 'c-1', 'hi'),
      () => tracker.listComments('NOPE-1'),
    ]) {
      await expectTrackerError(write(), 'tracker_not_found', 'NOPE-1', folder);
    }
    expect(readdirSync(folder)).toEqual([]);
  });

  it('reports a missing folder as unavailable when listing', async () => {
    const missing = new LocalTracker(join(folder, 'does-not-exist'));
    await expectTrackerError(missing.fetchIssuesByStates(['Todo']), 'tracker_unavailable', 'does-not-exist');
    expect(await missing.fetchIssuesByIds(['X-1'])).toEqual([]);
  });
});
