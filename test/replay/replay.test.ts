/**
 * Replay safety: histories of real runs, saved as fixtures, are replayed against the current workflow
 * code. A change that would break running workflows (non-determinism) fails here, in CI.
 * Record new ones after a workflow change (keeping the old ones; see README, "Changing workflow code safely"):
 * CADENZA_RECORD_HISTORIES=/tmp/histories npx vitest run test/e2e/issue-workflow.test.ts test/e2e/long-run.test.ts
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import { cadenzaWorkflowBundle } from '../../workers/worker.ts';

const folder = fileURLToPath(new URL('../fixtures/histories', import.meta.url));
const fixtures = readdirSync(folder).filter((name) => name.endsWith('.json')).sort();

describe('saved histories replay against the current workflow code', () => {
  it('has fixtures to replay', () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(4);
  });

  it.each(fixtures)('%s replays without non-determinism', async (name) => {
    const history = historyFromJSON(JSON.parse(readFileSync(path.join(folder, name), 'utf8')));
    expect(history.events?.length).toBeGreaterThan(10);
    await Worker.runReplayHistory({ workflowBundle: await cadenzaWorkflowBundle() }, history, name);
  });
});
