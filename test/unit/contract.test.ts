import { describe, it, expect, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadContract, parseContract, renderPrompt, DEFAULT_PROMPT } from '../../lib/contract/index.ts';
import { splitWorkflowFile } from '../../lib/contract/workflow-file.ts';
import type { Issue } from '../../lib/tracker/types.ts';
import { catchContractError } from '../helpers/contract-error.ts';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cadenza-contract-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function writeWorkflow(text: string): string {
  const file = join(tempDir(), 'WORKFLOW.md');
  writeFileSync(file, text);
  return file;
}

const catchError = catchContractError;

const issue: Issue = {
  id: 'id-7',
  identifier: 'CAD-7',
  title: 'Fix the parser',
  description: 'It breaks on tabs.',
  priority: 1,
  state: 'Todo',
  branch_name: 'cad-7-fix-parser',
  url: 'https://tracker.example/CAD-7',
  labels: ['bug', 'parser'],
  blocked_by: [{ id: 'id-6', identifier: 'CAD-6', state: 'Done' }],
  created_at: '2026-03-01T10:00:00.000Z',
  updated_at: '2026-03-02T10:00:00.000Z',
};

describe('WORKFLOW.md file', () => {
  it('splits YAML front matter from the trimmed prompt body', () => {
    const file = writeWorkflow('---\nrepo:\n  url: ./repo\nproof:\n  commands: [{ name: tests, run: npm test }]\n---\n\n  Work on {{ issue.identifier }}.  \n\n');
    const contract = loadContract(file, {});
    expect(contract.path).toBe(file);
    expect(contract.dir).toBe(join(file, '..'));
    expect(contract.promptTemplate).toBe('Work on {{ issue.identifier }}.');
    expect(contract.config.repo.url).toBe(join(contract.dir, 'repo'));
  });

  it('treats a file without front matter as empty config and whole body', () => {
    const split = splitWorkflowFile('Just a prompt.\n---\nnot: front matter\n', 'W.md');
    expect(split.raw).toEqual({});
    expect(split.body).toBe('Just a prompt.\n---\nnot: front matter');
    // Empty config means repo.url, which Cadenza requires, is missing.
    const err = catchError(() => parseContract('Just a prompt.', '/x/WORKFLOW.md', {}));
    expect(err.code).toBe('invalid_config');
    expect(err.key).toBe('repo.url');
  });

  it('handles CRLF line endings and an empty front matter block', () => {
    const split = splitWorkflowFile('---\r\n---\r\nBody\r\n', 'W.md');
    expect(split.raw).toEqual({});
    expect(split.body).toBe('Body');
  });

  it('uses the built-in prompt when the body is empty', async () => {
    const contract = parseContract('---\nrepo: { url: ./r }\nproof: { allow_no_checks: true }\n---\n\n   \n', '/x/WORKFLOW.md', {});
    expect(contract.promptTemplate).toBe(DEFAULT_PROMPT);
    const text = await renderPrompt(contract, { issue, attempt: null });
    expect(text).toContain('CAD-7');
    expect(text).toContain('Fix the parser');
    expect(text).toContain('It breaks on tabs.');
    const noDescription = await renderPrompt(contract, { issue: { ...issue, description: null }, attempt: null });
    expect(noDescription).toContain('No description provided.');
  });

  it('missing file => missing_workflow_file', () => {
    const err = catchError(() => loadContract(join(tempDir(), 'nope', 'WORKFLOW.md'), {}));
    expect(err.code).toBe('missing_workflow_file');
    expect(err.message).toContain('ENOENT');
  });

  it('bad YAML => workflow_parse_error with the file line', () => {
    const err = catchError(() => parseContract('---\nrepo:\n  url: x\n  bad: [1, 2\n---\nBody', 'W.md', {}));
    expect(err.code).toBe('workflow_parse_error');
    expect(err.message).toMatch(/^W\.md:\d+: invalid YAML front matter/);
    const dup = catchError(() => parseContract('---\nrepo: { url: x }\nrepo: { url: y }\n---\n', 'W.md', {}));
    expect(dup.code).toBe('workflow_parse_error');
    expect(dup.message).toContain('W.md:3:');
  });

  it.each([
    ['a list', '- a\n- b'],
    ['a string', 'just text'],
    ['a number', '42'],
  ])('front matter that is %s => workflow_front_matter_not_a_map', (_what, yaml) => {
    const err = catchError(() => parseContract(`---\n${yaml}\n---\nBody`, 'W.md', {}));
    expect(err.code).toBe('workflow_front_matter_not_a_map');
    expect(err.allowed).toContain('map');
  });

  it('an unclosed front matter block is all front matter (Symphony)', () => {
    const split = splitWorkflowFile('---\nrepo:\n  url: x\n', 'W.md');
    expect(split.raw).toEqual({ repo: { url: 'x' } });
    expect(split.body).toBe('');
  });
});

describe('prompt template', () => {
  const head = '---\nrepo: { url: ./r }\nproof: { commands: [{ name: tests, run: npm test }] }\n---\n';

  it('renders issue fields, iterables and attempt', async () => {
    const template = [
      '{{ issue.identifier }}: {{ issue.title }} (p{{ issue.priority }}, {{ issue.state }})',
      'Labels:{% for l in issue.labels %} {{ l }}{% endfor %}',
      'Blocked by:{% for b in issue.blocked_by %} {{ b.identifier }}={{ b.state }}{% endfor %}',
      'Branch {{ issue.branch_name }} at {{ issue.url }}, created {{ issue.created_at }}',
      '{% if attempt %}Retry attempt {{ attempt }}.{% else %}First run.{% endif %}',
    ].join('\n');
    const contract = parseContract(head + template, '/x/WORKFLOW.md', {});
    const first = await renderPrompt(contract, { issue, attempt: null });
    expect(first).toBe([
      'CAD-7: Fix the parser (p1, Todo)',
      'Labels: bug parser',
      'Blocked by: CAD-6=Done',
      'Branch cad-7-fix-parser at https://tracker.example/CAD-7, created 2026-03-01T10:00:00.000Z',
      'First run.',
    ].join('\n'));
    const retry = await renderPrompt(contract, { issue, attempt: 3 });
    expect(retry.split('\n').at(-1)).toBe('Retry attempt 3.');
  });

  it('refuses an unknown variable at load with template_render_error naming it and its file line', () => {
    const err = catchError(() => parseContract(`${head}\nHello\n{{ issue.assignee_name }}`, 'W.md', {}));
    expect(err.code).toBe('template_render_error');
    expect(err.message).toContain('issue.assignee_name');
    expect(err.message).toContain('W.md:7:');
    expect(err.value).toBe('issue.assignee_name');
  });

  it('refuses an unknown variable that only the retry branch uses', () => {
    const err = catchError(() => parseContract(`${head}{% if attempt %}{{ previous_error }}{% endif %}`, 'W.md', {}));
    expect(err.code).toBe('template_render_error');
    expect(err.message).toContain('previous_error');
  });

  it('refuses an unknown filter at load with template_render_error', () => {
    const err = catchError(() => parseContract(`${head}{{ issue.title | shout }}`, 'W.md', {}));
    expect(err.code).toBe('template_render_error');
    expect(err.message).toContain('shout');
  });

  it('accepts known filters', async () => {
    const contract = parseContract(`${head}{{ issue.title | upcase }} {{ issue.labels | join: "," }}`, 'W.md', {});
    expect(await renderPrompt(contract, { issue, attempt: null })).toBe('FIX THE PARSER bug,parser');
  });

  it('syntax errors => template_parse_error', () => {
    for (const body of ['{% if issue.title %}never closed', '{{ issue.title', '{% frobnicate %}']) {
      const err = catchError(() => parseContract(head + body, 'W.md', {}));
      expect(err.code).toBe('template_parse_error');
      expect(err.message).toContain('W.md:5:');
    }
  });

  it('does not read files through include', () => {
    const err = catchError(() => parseContract(`${head}{% include "/etc/passwd" %}`, 'W.md', {}));
    expect(err.code).toBe('template_render_error');
  });

  it('renderPrompt rejects an unknown field of a hand-built contract with template_render_error', async () => {
    await expect(renderPrompt({ promptTemplate: '{{ issue.nope }}' }, { issue, attempt: null })).rejects.toMatchObject({
      code: 'template_render_error',
    });
  });
});
