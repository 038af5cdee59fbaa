/** All of Cadenza's activities, built from their dependencies. The worker registers this object. */
import { Context } from '@temporalio/activity';
import { createAgentActivities } from './agent.ts';
import type { ActivityDeps } from './deps.ts';
import { createHostActivities } from './hosts.ts';
import { createImpactActivities } from './impact.ts';
import { createLandingActivities } from './landing.ts';
import { createPollerActivities } from './poller.ts';
import { createProgressActivities } from './progress.ts';
import { createProofActivities } from './proof.ts';
import { createReviewActivities } from './review.ts';
import { createSandboxActivities } from './sandbox.ts';
import { createTrackerActivities } from './tracker.ts';
import { createWatchActivities } from './watch.ts';

/**
 * Keeps an activity heartbeating while it runs, so a worker that dies mid-activity is noticed within
 * the heartbeat timeout instead of the whole start-to-close timeout.
 */
function heartbeating<A extends unknown[], R>(activity: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  return async (...args) => {
    const context = Context.current();
    const every = context.info.heartbeatTimeoutMs ? Math.max(200, context.info.heartbeatTimeoutMs / 3) : undefined;
    const timer = every ? setInterval(() => context.heartbeat(), every) : undefined;
    try {
      return await activity(...args);
    } finally {
      clearInterval(timer);
    }
  };
}

function allHeartbeating<T extends Record<string, (...args: never[]) => Promise<unknown>>>(activities: T): T {
  return Object.fromEntries(Object.entries(activities).map(([name, fn]) => [name, heartbeating(fn as (...args: unknown[]) => Promise<unknown>)])) as unknown as T;
}

export function createActivities(deps: ActivityDeps) {
  const proof = createProofActivities(deps);
  return {
    ...allHeartbeating({
      ...createSandboxActivities(deps),
      ...proof,
      ...createLandingActivities(deps, proof),
      ...createWatchActivities(deps, proof),
      ...createTrackerActivities(deps),
      ...createProgressActivities(deps),
      // The reviewer's session heartbeats with its turns too; a model request that hangs times out on its own.
      ...createReviewActivities(deps),
      ...createPollerActivities(deps),
      ...createHostActivities(deps),
      ...createImpactActivities(deps),
    }),
    // The agent session heartbeats per turn itself (with its progress as details).
    ...createAgentActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
export type { ActivityDeps } from './deps.ts';
