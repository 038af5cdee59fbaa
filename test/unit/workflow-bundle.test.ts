import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadWorkflowBundle } from '../../workers/bundle.ts';

describe('the prebuilt workflow bundle', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cadenza-bundle-'));
  const file = path.join(dir, 'build', 'workflow-bundle.js');
  const previous = process.env.CADENZA_WORKFLOW_BUNDLE;
  process.env.CADENZA_WORKFLOW_BUNDLE = file;
  afterAll(() => {
    if (previous === undefined) delete process.env.CADENZA_WORKFLOW_BUNDLE;
    else process.env.CADENZA_WORKFLOW_BUNDLE = previous;
    rmSync(dir, { recursive: true, force: true });
  });

  it('is built once, then loaded as it is while the workflow sources are unchanged', async () => {
    const first = await loadWorkflowBundle();
    expect(first.built).toBe(true);
    expect(first.file).toBe(file);
    const code = readFileSync(file, 'utf8');
    expect(code).toContain('issueWorkflow');

    const second = await loadWorkflowBundle();
    expect(second.built).toBe(false);
    expect((second.bundle as { code: string }).code).toBe(code);
  }, 120_000);

  it('is rebuilt when it was built from other sources', async () => {
    await loadWorkflowBundle();
    writeFileSync(`${file}.sha256`, 'built-from-older-sources');
    writeFileSync(file, '/* stale */');
    const loaded = await loadWorkflowBundle();
    expect(loaded.built).toBe(true);
    expect(readFileSync(file, 'utf8')).toContain('issueWorkflow');
  }, 120_000);
});
