/**
 * Impact notices across hosts, on real git and the real Temporal server: the landing host's mirror has
 * never seen the open runs' work (their sandboxes are on another host), so their snapshots come from
 * the git remote, where every host publishes them (refs/cadenza/<key>/work). The run whose snapshot
 * shares a file with the landed change is signalled; the run on other files is not; the landing host's
 * own refs are left as they were.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client, Connection, WorkflowHandle } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createImpactActivities } from '../../activities/impact.ts';
import type { ActivityDeps } from '../../activities/deps.ts';
import { workSnapshotRef } from '../../activities/sandbox.ts';
import type { ContractSettings } from '../../lib/contract/index.ts';
import { MirrorCache } from '../../lib/git.ts';
import { scopedRunKey } from '../../lib/sandbox/names.ts';
import { issueWorkflowId, repoKey } from '../../workflows/definitions.ts';
import { historyText, sh } from '../helpers/world.ts';
import { testClient, uniqueQueue } from '../helpers/temporal.ts';

describe('impact notices for runs on other hosts', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'cadenza-impact-'));
  const remote = path.join(root, 'remote.git');
  const work = path.join(root, 'work');
  let client: Client;
  let connection: Connection;
  const handles: WorkflowHandle[] = [];
  beforeAll(async () => ({ client, connection } = await testClient()));
  afterAll(async () => {
    for (const handle of handles) await handle.terminate('test over').catch(() => undefined);
    await connection?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it("reads the open runs' snapshots from the remote and tells the one whose work shares a file", async () => {
    const git = 'git -c user.name=T -c user.email=t@example.invalid';
    const commit = async (file: string, content: string, message: string) => {
      writeFileSync(path.join(work, file), content);
      await sh(work, `${git} add -A && ${git} commit -qm "${message}" && git rev-parse HEAD`);
      return sh(work, 'git rev-parse HEAD');
    };
    await sh(root, `git init -q -b main work && mkdir work/src work/docs && git init -q --bare ${remote}`);
    await commit('src/index.js', 'export const a = 1;\n\nexport const b = 2;\n', 'base');
    await sh(work, `git remote add origin ${remote} && git push -q origin main`);
    const config = { project: { id: `impact-${Date.now().toString(36)}` }, tracker: { kind: 'local' }, repo: { url: remote, baseBranch: 'main' }, landing: { targetBranch: 'main' } };
    const contract = { config } as unknown as ContractSettings;
    const [same, other] = ['same', 'other'].map((name) => issueWorkflowId(config as never, name)) as [string, string];

    // Another host's runs: their work is only on the remote, under their snapshot refs.
    await sh(work, 'git checkout -q -b same main');
    const sameWork = await commit('src/index.js', 'export const a = 10;\n\nexport const b = 2;\n', 'same: a is 10');
    await sh(work, 'git checkout -q -b other main');
    const otherWork = await commit('docs/usage.md', '# Usage\n', 'other: docs');
    for (const [id, sha] of [[same, sameWork], [other, otherWork]] as const) await sh(work, `git push -q origin ${sha}:${workSnapshotRef(scopedRunKey('default', id))}`);
    // The landing: a merge onto main changing the end of the same file.
    await sh(work, 'git checkout -q -b landed main');
    await commit('src/index.js', 'export const a = 1;\n\nexport const b = 20;\n', 'landed: b is 20');
    await sh(work, `git checkout -q main && ${git} merge -q --no-ff -m "Land T-first" landed && git push -q origin main`);
    const landedCommit = await sh(work, 'git rev-parse HEAD');

    // Both runs are open (on a task queue no worker serves: they only need to exist and take signals).
    const taskQueue = uniqueQueue('impact');
    for (const workflowId of [same, other]) {
      handles.push(await client.workflow.start('issueWorkflow', { workflowId, taskQueue, args: [{}], typedSearchAttributes: [{ key: repoKey, value: remote }] }));
    }
    const query = `WorkflowType = 'issueWorkflow' AND ExecutionStatus = 'Running' AND CadenzaRepo = '${remote}'`;
    // The landing host lists open runs from visibility, which follows a start by a moment: poll until it shows both.
    const deadline = Date.now() + 30_000;
    for (let listed = 0; listed < 2; await new Promise((resolve) => setTimeout(resolve, 100))) {
      if (Date.now() > deadline) throw new Error('visibility never listed both runs');
      listed = 0;
      for await (const _ of client.workflow.list({ query })) listed++;
    }

    // The landing host: a mirror that never saw the runs' work.
    const mirrors = new MirrorCache(path.join(root, 'landing-host-mirrors'));
    await mirrors.get(remote).refresh();
    const deps = { mirrors, temporal: async () => client, log: () => {} } as unknown as ActivityDeps;
    const { noticeImpact } = createImpactActivities(deps);
    const result = await new MockActivityEnvironment({ namespace: 'default' }).run(noticeImpact, { workflowId: issueWorkflowId(config as never, 'first'), contract, identifier: 'T-first', title: 'b is 20', landedCommit });

    expect(result).toEqual({ checked: 2, withoutSnapshot: [], told: [{ identifier: 'same', workflowId: same, files: ['src/index.js'], symbols: 0 }] });
    const told = historyText((await client.workflow.getHandle(same).fetchHistory()).events);
    expect(told).toContain('impactNotice');
    expect(told).toContain(landedCommit);
    expect(historyText((await client.workflow.getHandle(other).fetchHistory()).events)).not.toContain('impactNotice');
    // The landing host's own snapshot refs are untouched, and its scratch copies are gone.
    expect(await sh(mirrors.get(remote).dir, 'git for-each-ref --format="%(refname)" refs/cadenza refs/cadenza-impact')).toBe('');
  });
});
