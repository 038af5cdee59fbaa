/**
 * Upgrading the worker fleet without breaking runs in flight (Temporal Worker Deployments, pinned
 * runs): a run started on build A keeps every workflow task and activity on A's workers after build B
 * became current, up to its landing, while new runs start on B; a restarted A does not take the
 * current version back; a run moved explicitly goes where it was moved. Both builds poll the same task
 * queues on the same host (a rolling upgrade: the new worker next to the old one until it drains).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkflowHandle } from '@temporalio/client';
import { decodeVersioningBehavior } from '@temporalio/common';
import type { NativeConnection } from '@temporalio/worker';
import { approve } from '../../client/issues.ts';
import { connectWorker, plaintextSettings } from '../../client/connection.ts';
import { createCadenzaWorker, type CadenzaWorker } from '../../workers/worker.ts';
import { finish, write } from '../fixtures/scripts.ts';
import { World } from '../helpers/world.ts';

const PINNED = 'PINNED';

/** What describe() says about a run's version: behavior, build and any override. */
async function versionOf(handle: WorkflowHandle) {
  const info = (await handle.describe()).raw.workflowExecutionInfo?.versioningInfo;
  return {
    behavior: decodeVersioningBehavior(info?.behavior) ?? null,
    buildId: info?.deploymentVersion?.buildId ?? null,
    deploymentName: info?.deploymentVersion?.deploymentName ?? null,
    overriddenTo: info?.versioningOverride?.pinned?.version?.buildId ?? null,
  };
}

/** The build each completed workflow task and each started activity ran on, with the event's time. */
async function tasksOf(handle: WorkflowHandle) {
  const history = await handle.fetchHistory();
  const tasks: Array<{ kind: 'workflow' | 'activity'; buildId: string | null; at: number }> = [];
  for (const event of history.events ?? []) {
    const at = Number(event.eventTime?.seconds ?? 0) * 1000 + Math.floor((event.eventTime?.nanos ?? 0) / 1e6);
    if (event.workflowTaskCompletedEventAttributes) tasks.push({ kind: 'workflow', buildId: event.workflowTaskCompletedEventAttributes.deploymentVersion?.buildId ?? null, at });
    if (event.activityTaskStartedEventAttributes) tasks.push({ kind: 'activity', buildId: event.activityTaskStartedEventAttributes.workerVersion?.buildId ?? null, at });
  }
  return tasks;
}

describe('worker versioning: two builds of the worker', () => {
  let world: World;
  let native: NativeConnection;
  const running: Array<{ worker: CadenzaWorker; done: Promise<void> }> = [];
  const suffix = Date.now().toString(36);
  const buildA = `a-${suffix}`;
  const buildB = `b-${suffix}`;

  beforeAll(async () => {
    world = await World.create();
    native = await connectWorker(plaintextSettings(world.temporalAddress));
  });
  afterAll(async () => {
    for (const { worker } of running) worker.shutdown();
    await Promise.all(running.map(({ done }) => done.catch(() => undefined)));
    await world?.close();
    await native?.close();
  });

  const startBuild = async (buildId: string) => {
    const worker = await createCadenzaWorker({ connection: native, deps: world.wired.deps, taskQueue: world.taskQueue, versioning: { mode: 'pinned', promote: 'new', buildId } });
    running.push({ worker, done: worker.run() });
    return worker;
  };

  it('a run started on build A stays on A up to its landing while new runs start on B; a run moved explicitly follows', async () => {
    const first = world.id('first');
    const second = world.id('second');
    await world.addIssue({ identifier: first, title: 'Started on build A' }, [write('docs/first.md', 'first\n'), finish('Added docs/first.md.')]);
    await world.addIssue({ identifier: second, title: 'Started on build B' }, [write('docs/second.md', 'second\n'), finish('Added docs/second.md.')]);

    // Build A: new to the deployment (named after the task queue), so it becomes current.
    const a = await startBuild(buildA);
    expect(a.version).toMatchObject({ mode: 'pinned', deploymentName: world.taskQueue, buildId: buildA, promoted: true, currentBuildId: buildA });
    const one = await world.start(first);
    await world.waitForPhase(one, 'AwaitingApproval');
    expect(await versionOf(one)).toEqual({ behavior: PINNED, buildId: buildA, deploymentName: world.taskQueue, overriddenTo: null });

    // Build B starts next to A: new, so it becomes current.
    const b = await startBuild(buildB);
    expect(b.version).toMatchObject({ buildId: buildB, promoted: true, currentBuildId: buildB });
    const deployment = await native.workflowService.describeWorkerDeployment({ namespace: 'default', deploymentName: world.taskQueue });
    expect(deployment.workerDeploymentInfo?.routingConfig?.currentDeploymentVersion?.buildId).toBe(buildB);
    const promotedAt = Date.now();

    // A restarted worker of build A serves its pinned runs and leaves B current.
    // (Its own connection, as a process of its own would have: one connection takes one worker per queue and build.)
    const restarted = await connectWorker(plaintextSettings(world.temporalAddress));
    try {
      const again = await createCadenzaWorker({ connection: restarted, deps: world.wired.deps, taskQueue: world.taskQueue, versioning: { mode: 'pinned', promote: 'new', buildId: buildA } });
      expect(again.version).toMatchObject({ buildId: buildA, promoted: false, currentBuildId: buildB });
      await again.runUntil(async () => undefined);
    } finally {
      await restarted.close();
    }

    // A new run starts on B.
    const two = await world.start(second);
    await world.waitUntil(async () => (await versionOf(two)).buildId !== null, 'the second run completes its first workflow task');
    expect(await versionOf(two)).toEqual({ behavior: PINNED, buildId: buildB, deploymentName: world.taskQueue, overriddenTo: null });

    // The first run, approved now, lands on A: every workflow task and activity after B became current ran on A.
    await approve(one, 'alice');
    expect((await one.result()).phase).toBe('Done');
    expect(await versionOf(one)).toMatchObject({ behavior: PINNED, buildId: buildA });
    const firstTasks = await tasksOf(one);
    const afterPromotion = firstTasks.filter((task) => task.at >= promotedAt);
    expect(afterPromotion.filter((task) => task.kind === 'workflow').length).toBeGreaterThan(1);
    expect(afterPromotion.filter((task) => task.kind === 'activity').length).toBeGreaterThan(1);
    expect(firstTasks.filter((task) => task.kind === 'workflow').every((task) => task.buildId === buildA)).toBe(true);
    expect(afterPromotion.filter((task) => task.kind === 'activity').map((task) => task.buildId)).toEqual(afterPromotion.filter((task) => task.kind === 'activity').map(() => buildA));
    expect(await world.remoteLog()).toContain('docs/first.md');

    // Moved explicitly (temporal workflow update-options --versioning-override-behavior pinned ...): the second run's next tasks run on A.
    const movedAt = Date.now();
    await world.client.workflowService.updateWorkflowExecutionOptions({
      namespace: 'default',
      workflowExecution: { workflowId: two.workflowId },
      workflowExecutionOptions: { versioningOverride: { pinned: { behavior: 1, version: { deploymentName: world.taskQueue, buildId: buildA } } } },
      updateMask: { paths: ['versioning_override'] },
    });
    expect(await versionOf(two)).toMatchObject({ overriddenTo: buildA });
    await two.cancel();
    await two.result().catch(() => undefined);
    const secondTasks = await tasksOf(two);
    const beforeMove = secondTasks.filter((task) => task.kind === 'workflow' && task.at < movedAt);
    const afterMove = secondTasks.filter((task) => task.kind === 'workflow' && task.at >= movedAt);
    expect(beforeMove.length).toBeGreaterThan(0);
    expect(beforeMove.every((task) => task.buildId === buildB)).toBe(true);
    expect(afterMove.length).toBeGreaterThan(0);
    expect(afterMove.every((task) => task.buildId === buildA)).toBe(true);
  });
});
