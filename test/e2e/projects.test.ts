/**
 * Project identity: two projects with the same issue identifiers, each from its own installation
 * (state folder, worker, repository, tracker), on one Temporal namespace and one Docker engine. Each
 * lands its own work and nothing crosses. A run started before project ids keeps its id to the end.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ScheduleNotFoundError } from '@temporalio/client';
import { approve, findIssueRun, startIssue } from '../../client/issues.ts';
import { legacyPollScheduleId } from '../../client/schedule.ts';
import { containerName } from '../../lib/sandbox/names.ts';
import { legacyIssueWorkflowId } from '../../workflows/definitions.ts';
import { finish, write } from '../fixtures/scripts.ts';
import { FAST, World, runKeyOf, sh } from '../helpers/world.ts';

/** The agent writes which project it worked in, then finishes. */
const signs = (project: string) => [write('OWNER.md', `Written for ${project}.\n`), finish(`Signed OWNER.md for ${project}.`)];

describe('two projects on one namespace and one Docker engine', () => {
  let alpha: World;
  let beta: World;
  beforeAll(async () => {
    [alpha, beta] = await Promise.all([World.create(), World.create()]);
  });
  afterAll(async () => {
    await alpha?.close();
    await beta?.close();
  });

  it('run the same issue identifier side by side; each lands only its own work in its own repository', async () => {
    const identifier = `${alpha.prefix}-1`;
    await alpha.addIssue({ identifier, title: 'Sign for alpha' }, signs('alpha'));
    await beta.addIssue({ identifier, title: 'Sign for beta' }, signs('beta'));
    await alpha.run(() => beta.run(async () => {
      const [first, second] = [await alpha.start(identifier), await beta.start(identifier)];
      // Two runs, each named by its project.
      expect(first.workflowId).not.toBe(second.workflowId);
      expect(first.workflowId).toBe(`cadenza-${alpha.contract.config.project!.id}-${identifier}`);
      await Promise.all([alpha.waitForPhase(first, 'AwaitingApproval'), beta.waitForPhase(second, 'AwaitingApproval')]);
      // Two sandboxes on the one engine, both running, neither the name a run from before project ids had.
      const names = await Promise.all([first, second].map(async (handle) => (await alpha.docker.getContainer(containerName(runKeyOf(handle.workflowId))).inspect()).Name));
      expect(new Set(names).size).toBe(2);
      await expect(alpha.docker.getContainer(containerName(legacyIssueWorkflowId('local', identifier))).inspect()).rejects.toMatchObject({ statusCode: 404 });

      await approve(first, 'alice');
      await approve(second, 'bob');
      const [landedAlpha, landedBeta] = [await first.result(), await second.result()];
      expect([landedAlpha.phase, landedBeta.phase]).toEqual(['Done', 'Done']);
      expect(await sh(alpha.remote, 'git show main:OWNER.md')).toBe('Written for alpha.');
      expect(await sh(beta.remote, 'git show main:OWNER.md')).toBe('Written for beta.');
      // Each remote holds its own landing only.
      expect(await sh(alpha.remote, `git cat-file -t ${landedBeta.landedCommit}`).catch(() => 'missing')).toBe('missing');
      expect(await sh(beta.remote, `git cat-file -t ${landedAlpha.landedCommit}`).catch(() => 'missing')).toBe('missing');
    }));
  });

  it('a run started before project ids keeps its id: the poller neither starts a second run nor loses it, and approving finds it', async () => {
    const identifier = alpha.id('legacy');
    const issue = await alpha.addIssue({ identifier, title: 'Sign again' }, signs('the old run'));
    // As a worker of the previous release started it: a contract without a project.
    const { project: _dropped, ...before } = alpha.contract.config;
    await alpha.run(async () => {
      const old = await startIssue(alpha.client, { issue, contract: { ...alpha.contract, config: before }, taskQueue: alpha.taskQueue, timing: FAST });
      expect(old.workflowId).toBe(legacyIssueWorkflowId('local', identifier));
      await alpha.waitForPhase(old, 'AwaitingApproval');
      // Its sandbox has the name it always had (stopped while it waits for approval).
      expect((await alpha.docker.getContainer(containerName(old.workflowId)).inspect()).Name).toBe(`/${containerName(old.workflowId)}`);

      // Starting the issue with today's contract (as the poller and `cadenza start` do) gives the open run.
      const again = await startIssue(alpha.client, { issue, contract: alpha.contract, taskQueue: alpha.taskQueue, timing: FAST });
      expect(again.workflowId).toBe(old.workflowId);
      await alpha.schedulePolls();
      await alpha.waitUntil(async () => (await alpha.pollResults()).length > 0, 'a poll');
      const [polled] = await alpha.pollResults();
      expect(polled!.started).toEqual([]);
      const open: string[] = [];
      for await (const run of alpha.client.workflow.list({ query: `CadenzaIssue = '${identifier}' AND ExecutionStatus = 'Running'` })) open.push(run.workflowId);
      expect(open).toEqual([old.workflowId]);

      const found = await findIssueRun(alpha.client, alpha.contract.config, identifier);
      expect(found.workflowId).toBe(old.workflowId);
      expect((await alpha.cli(['approve', identifier, '--by', 'carol'])).stdout).toContain(`${identifier}:`);
      expect((await old.result()).phase).toBe('Done');
      expect(await sh(alpha.remote, 'git show main:OWNER.md')).toBe('Written for the old run.');
    });
  });

  it("up replaces a poll schedule of the old id by the project's, paused if it was paused", async () => {
    const legacyId = legacyPollScheduleId(beta.contract.path);
    await beta.client.schedule.create({
      scheduleId: legacyId,
      spec: { intervals: [{ every: '1 hour' }] },
      action: { type: 'startWorkflow', workflowType: 'pollerWorkflow', workflowId: `${legacyId}-run`, taskQueue: beta.taskQueue, args: [{ workflowFile: beta.contract.path, taskQueue: beta.taskQueue }] },
      state: { paused: true, note: 'tracker maintenance' },
    });
    const scheduleId = await beta.schedulePolls();
    expect(scheduleId).toBe(`cadenza-poll-${beta.contract.config.project!.id}`);
    await expect(beta.client.schedule.getHandle(legacyId).describe()).rejects.toBeInstanceOf(ScheduleNotFoundError);
    const replaced = await beta.client.schedule.getHandle(scheduleId).describe();
    expect(replaced.state).toMatchObject({ paused: true, note: 'tracker maintenance' });
  });
});
