/**
 * The reviewer's contract section, its read-only tools on a real git mirror, and the progress note's
 * text: pure or on a local git repository only (the end-to-end runs are in test/e2e/reviewer.test.ts).
 */
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseContract } from '../../lib/contract/index.ts';
import { RepoMirror } from '../../lib/git.ts';
import { FULL_ROUNDS, appendEntry, checkOutputTail, noteExcerpt, primeWithNote, renderEntry } from '../../lib/progress-note.ts';
import { ReviewToolError, parseSubmission, runReviewTool } from '../../lib/review.ts';
import { run } from '../../infra/process.ts';
import { catchContractError } from '../helpers/contract-error.ts';

async function sh(cwd: string, command: string): Promise<void> {
  const result = await run('sh', ['-c', command], { cwd });
  if (result.code !== 0) throw new Error(`${command} failed: ${result.stderr}`);
}

const contract = (yaml: string) =>
  parseContract(`---\nrepo: { url: ./repo }\nmodel: { name: gpt-test, max_output_tokens: 2048 }\nproof: { commands: [{ name: tests, run: npm test }] }\n${yaml}\n---\nWork.`, '/proj/WORKFLOW.md', {});

const contractError = (yaml: string) => catchContractError(() => contract(yaml));

describe('review: in WORKFLOW.md', () => {
  it('is absent without a review: section, and review: {} is a reviewer with the defaults', () => {
    expect(contract('').config.review).toBeUndefined();
    expect(contract('review: {}').config.review).toEqual({ model: 'gpt-test', prompt: null, required: false, maxTurns: 10, budgetTokens: 200_000, maxOutputTokens: 2048 });
  });

  it('reads model, prompt, required and its own bounds', () => {
    const { review } = contract('review: { model: gpt-review, prompt: "Check the edge cases.", required: true, max_turns: 4, budget_tokens: 5000, max_output_tokens: 512 }').config;
    expect(review).toEqual({ model: 'gpt-review', prompt: 'Check the edge cases.', required: true, maxTurns: 4, budgetTokens: 5000, maxOutputTokens: 512 });
  });

  it('refuses bad values naming the key, the value and what is allowed', () => {
    expect(contractError('review: true').message).toBe('review: expected a map, got true');
    expect(contractError('review: { required: "yes" }').message).toBe('review.required: expected true or false, got "yes"');
    expect(contractError('review: { max_turns: 0 }').message).toBe('review.max_turns: expected an integer >= 1, got 0');
    expect(contractError('review: { budget_tokens: 1.5 }').key).toBe('review.budget_tokens');
    expect(contractError('review: { model: "" }').message).toBe('review.model: expected a non-empty string, got ""');
    expect(contractError('review: { prompt: [a] }').message).toBe('review.prompt: expected a string, got a list');
  });

  it('names an unknown review key with the nearest one', () => {
    expect(contract('review: { requird: true }').warnings).toContain('/proj/WORKFLOW.md: review.requird is not a key Cadenza reads here; it is kept and ignored. Did you mean review.required?');
  });
});

describe("the reviewer's tools read Cadenza's mirror at the commit, and nothing else", () => {
  let root: string;
  let mirror: RepoMirror;
  let head: string;
  beforeAll(async () => {
    root = mkdtempSync(path.join(tmpdir(), 'cadenza-review-'));
    const work = path.join(root, 'work');
    mkdirSync(path.join(work, 'src'), { recursive: true });
    writeFileSync(path.join(work, 'src', 'shout.js'), 'export function shout(text) {\n  return `${text.toUpperCase()}!`;\n}\n');
    writeFileSync(path.join(work, 'README.md'), '# textkit\n');
    await sh(work, 'git init -q -b main && git add -A && git -c user.name=T -c user.email=t@example.invalid commit -qm one');
    await sh(root, 'git clone -q --bare work remote.git');
    mirror = new RepoMirror(path.join(root, 'mirrors'), path.join(root, 'remote.git'));
    await mirror.refresh();
    head = (await mirror.resolve('refs/heads/main'))!;
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('reads files with line numbers, lists and searches them', async () => {
    expect(await runReviewTool(mirror, head, 'read_file', { path: 'src/shout.js' })).toBe('1: export function shout(text) {\n2:   return `${text.toUpperCase()}!`;\n3: }');
    expect(await runReviewTool(mirror, head, 'read_file', { path: './src/shout.js', start_line: 2, end_line: 2 })).toBe('2:   return `${text.toUpperCase()}!`;');
    expect((await runReviewTool(mirror, head, 'list_files', {})).split('\n')).toEqual(['README.md', 'src/shout.js']);
    expect(await runReviewTool(mirror, head, 'search_files', { pattern: 'toUpper' })).toBe('src/shout.js:2:  return `${text.toUpperCase()}!`;');
  });

  it('has no way to write, and refuses paths outside the repository', async () => {
    await expect(runReviewTool(mirror, head, 'write_file', { path: 'x', content: 'y' })).rejects.toThrow(/unknown tool write_file.*read-only/);
    await expect(runReviewTool(mirror, head, 'run_shell', { command: 'rm -rf /' })).rejects.toBeInstanceOf(ReviewToolError);
    await expect(runReviewTool(mirror, head, 'read_file', { path: '../remote.git/config' })).rejects.toThrow(/inside the repository/);
    await expect(runReviewTool(mirror, head, 'list_files', { path: '--output=/tmp/x' })).rejects.toThrow(/inside the repository/);
  });

  it("checks the verdict and each line comment against the commit's files", async () => {
    const ok = await parseSubmission(mirror, head, { verdict: 'request_changes', summary: ' Empty text. ', comments: [{ file: 'src/shout.js', line: 2, text: 'shout("") should be ""' }] });
    expect(ok).toEqual({ verdict: 'request_changes', summary: 'Empty text.', comments: [{ file: 'src/shout.js', line: 2, text: 'shout("") should be ""' }] });
    await expect(parseSubmission(mirror, head, { verdict: 'lgtm', summary: '' })).rejects.toThrow('"verdict" must be "approve" or "request_changes"');
    await expect(parseSubmission(mirror, head, { verdict: 'approve', summary: '', comments: [{ file: 'src/nope.js', line: 1, text: 'x' }] })).rejects.toThrow('comments[0].file: src/nope.js is not a file of commit');
    await expect(parseSubmission(mirror, head, { verdict: 'approve', summary: '', comments: [{ file: 'src/shout.js', line: 9, text: 'x' }] })).rejects.toThrow('comments[0].line: src/shout.js has 3 lines');
    await expect(parseSubmission(mirror, head, { verdict: 'approve', summary: '', comments: [{ file: 'src/shout.js', line: 1, text: ' ' }] })).rejects.toThrow('comments[0].text must be a non-empty string');
  });
});

describe('the progress note', () => {
  const issue = { identifier: 'ENG-7', title: 'Add shout' };
  const failed = { name: 'tests', required: true, passed: false, exitCode: 1, timedOut: false, output: 'sha256:x' };
  const report = '$ npm test\ncommit: abc\nexit code: 1\nduration: 10 ms\n--- stdout ---\nok 1 - a\nnot ok 2 - shout of nothing\n  expected: ""\n--- stderr ---\nnpm ERR! Test failed.\n';

  it("quotes what a failed check said, without the report's header: the first failure, then the runner's totals", () => {
    expect(checkOutputTail(report)).toBe('ok 1 - a\nnot ok 2 - shout of nothing\n  expected: ""\nnpm ERR! Test failed.');
    const tap = [
      '$ npm test', 'exit code: 1', '--- stdout ---', '> node --test', 'TAP version 13', '# Subtest: double', 'not ok 1 - double', '  ---', '  duration_ms: 1.2',
      '  error: |-', '    Expected values to be strictly equal:', '    ', '    63 !== 42', "  code: 'ERR_ASSERTION'", '  stack: |-', '    at file:///w/test/double.test.js:5:29',
      '  ...', '# Subtest: capitalize', 'ok 2 - capitalize', '1..2', '# tests 2', '# pass 1', '# fail 1', '--- stderr ---', '',
    ].join('\n');
    expect(checkOutputTail(tap, 6)).toBe(['not ok 1 - double', '  ---', '  duration_ms: 1.2', '  error: |-', '    Expected values to be strictly equal:', '    63 !== 42', '[...]'].join('\n'));
    expect(checkOutputTail(tap)).toContain('    63 !== 42');
  });

  it('says what a round tried, how it ended, what the checks, the reviewer and people said', () => {
    const section = renderEntry({
      round: 1, outcome: 'the proof failed (tests exited 1)', tried: 'Added shout().', head: 'a'.repeat(40), changed: ['src/shout.js'], changedTotal: 1,
      checks: [failed, { ...failed, name: 'lint', passed: true, exitCode: 0 }],
      review: { verdict: 'request_changes', required: true, summary: 'Handle empty text.', comments: [{ file: 'src/shout.js', line: 2, text: 'shout("") must be ""' }] },
      people: [{ by: 'alice', text: 'Mind empty strings.', kind: 'comment' }, { by: 'bob', text: 'Two marks, please.', kind: 'rejection' }],
    }, { tests: checkOutputTail(report) });
    expect(section).toBe([
      '## Round 1: the proof failed (tests exited 1)',
      '- alice commented before this round: "Mind empty strings."',
      '- Tried: Added shout().',
      '- Work: head `aaaaaaaaaaaa`; changed `src/shout.js`',
      '- Checks: FAILED `tests` (exit 1), passed `lint`',
      "  The end of `tests`'s output:",
      '  ```',
      '  ok 1 - a',
      '  not ok 2 - shout of nothing',
      '    expected: ""',
      '  npm ERR! Test failed.',
      '  ```',
      '- The reviewer requested changes (required): Handle empty text.',
      '  - `src/shout.js:2`: shout("") must be ""',
      '- bob rejected landing: "Two marks, please."',
    ].join('\n'));
  });

  it('keeps every round in order, replaces a round written again, and shrinks the oldest beyond the limit', () => {
    let note: string | null = null;
    for (let round = 1; round <= FULL_ROUNDS + 2; round++) {
      note = appendEntry(note, issue, renderEntry({ round, outcome: `outcome ${round}`, tried: `attempt ${round}` }));
    }
    note = appendEntry(note, issue, renderEntry({ round: FULL_ROUNDS + 2, outcome: 'written again', tried: 'the same round' }));
    expect(note.startsWith('# Progress note: ENG-7: Add shout\n')).toBe(true);
    expect(note).toContain('## Earlier rounds\n- Round 1: outcome 1. Tried: attempt 1\n- Round 2: outcome 2. Tried: attempt 2\n');
    expect([...note.matchAll(/^## Round (\d+)/gm)].map((m) => Number(m[1]))).toEqual([3, 4, 5, 6, 7, 8]);
    expect(note).toContain('## Round 8: written again\n- Tried: the same round');
    expect(note).not.toContain('outcome 8');
    expect(noteExcerpt(note)).toBe('Round 8: written again. Tried: the same round');
    const said = appendEntry(null, issue, renderEntry({
      round: 2, outcome: 'landing rejected by bob', tried: 'Renamed it.', head: 'b'.repeat(40), changed: ['a.js'],
      review: { verdict: 'approve', required: false, summary: 'Fine.', comments: [] }, people: [{ by: 'bob', text: 'Two marks.', kind: 'rejection' }],
    }));
    expect(noteExcerpt(said)).toBe('Round 2: landing rejected by bob. Tried: Renamed it. The reviewer approved: Fine. bob rejected landing: "Two marks."');
  });

  it('goes in front of the feedback a session starts with', () => {
    const note = appendEntry(null, issue, renderEntry({ round: 1, outcome: 'the proof failed' }));
    const primed = primeWithNote(note, 'Fix the tests.');
    expect(primed.startsWith("Cadenza's progress note for this issue follows")).toBe(true);
    expect(primed).toContain('## Round 1: the proof failed');
    expect(primed.endsWith('---\n\nFix the tests.')).toBe(true);
  });
});
