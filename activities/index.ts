/** All of Cadenza's activities, built from their dependencies. The worker registers this object. */
import { createAgentActivities } from './agent.ts';
import type { ActivityDeps } from './deps.ts';
import { createLandingActivities } from './landing.ts';
import { createPollerActivities } from './poller.ts';
import { createProofActivities } from './proof.ts';
import { createSandboxActivities } from './sandbox.ts';
import { createTrackerActivities } from './tracker.ts';

export function createActivities(deps: ActivityDeps) {
  const proof = createProofActivities(deps);
  return {
    ...createSandboxActivities(deps),
    ...createAgentActivities(deps),
    ...proof,
    ...createLandingActivities(deps, proof),
    ...createTrackerActivities(deps),
    ...createPollerActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
export type { ActivityDeps } from './deps.ts';
