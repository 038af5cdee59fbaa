/** Shared checks for the chaos tests: waiting, the model request log, and "landed exactly once". */
import { existsSync, readFileSync } from 'node:fs';
import { expect } from 'vitest';
import type { WorkflowHandle } from '@temporalio/client';
import type Docker from 'dockerode';
import { dockerClient } from '../../infra/docker.ts';
import { sandboxExists } from '../../lib/sandbox/container.ts';
import { volumeName } from '../../lib/sandbox/names.ts';
import { WORKPAD_MARKER, type IssueWorkflowResult } from '../../workflows/definitions.ts';
import { runKeyOf, sh, type World } from './world.ts';

const defaultDocker = dockerClient();

export async function waitUntil(probe: () => Promise<boolean> | boolean, what: string, timeoutMs = 120_000, intervalMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(`timed out waiting until ${what}`);
}

export async function volumeExists(workflowId: string, docker: Docker = defaultDocker): Promise<boolean> {
  return docker.getVolume(volumeName(runKeyOf(workflowId))).inspect().then(
    () => true,
    (error: { statusCode?: number }) => {
      if (error.statusCode === 404) return false;
      throw error;
    },
  );
}

export interface LoggedRequest {
  at: string;
  identifier: string | null;
  turn: number;
}

/** Every request the scripted model logged to `file` for issue `identifier`, oldest first. */
export function loggedRequests(file: string, identifier: string): LoggedRequest[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as LoggedRequest)
    .filter((entry) => entry.identifier === identifier);
}

/** The run ended Done, landed once, kept one workpad comment, moved the issue to Done and left no sandbox (on the world's engine). */
export async function expectLandedExactlyOnce(world: World, handle: WorkflowHandle, id: string, title: string): Promise<IssueWorkflowResult> {
  const result = (await handle.result()) as IssueWorkflowResult;
  expect(result.phase).toBe('Done');

  const subjects = (await sh(world.remote, 'git log --format=%s main')).split('\n');
  expect(subjects.filter((subject) => subject === `Land ${id}: ${title}`)).toHaveLength(1);
  expect(result.landedCommit).toBe(await sh(world.remote, 'git rev-parse main'));

  const workpads = (await world.tracker.listComments(id)).filter((comment) => comment.body.startsWith(WORKPAD_MARKER));
  expect(workpads).toHaveLength(1);
  expect(workpads[0]!.body).toContain(`Landed ${id} as commit \`${result.landedCommit}\``);
  expect((await world.tracker.fetchIssuesByIds([id]))[0]!.state).toBe('Done');

  expect(await sandboxExists(world.docker, runKeyOf(handle.workflowId))).toBe(false);
  expect(await volumeExists(handle.workflowId, world.docker)).toBe(false);
  return result;
}

/** Retried attempts of the agent session, from history: attempt number and why the one before ended. */
export async function retriedSessionAttempts(handle: WorkflowHandle): Promise<Array<{ attempt: number; lastFailure: string }>> {
  const history = await handle.fetchHistory();
  const scheduled = new Map<string, string>();
  const retried: Array<{ attempt: number; lastFailure: string }> = [];
  for (const event of history.events ?? []) {
    const type = event.activityTaskScheduledEventAttributes?.activityType?.name;
    if (type) scheduled.set(String(event.eventId), type);
    const started = event.activityTaskStartedEventAttributes;
    if (started && scheduled.get(String(started.scheduledEventId)) === 'runAgentSession' && (started.attempt ?? 1) > 1) {
      retried.push({ attempt: started.attempt!, lastFailure: started.lastFailure?.message ?? '' });
    }
  }
  return retried;
}
