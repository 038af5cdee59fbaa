/**
 * Symphony's dispatch rules as a pure function: which candidate issues start now, which wait and why.
 * Eligible: has id/identifier/title/state; state active and not terminal; every required label; not
 * already running or closed; a Todo issue with a non-terminal blocker waits; a global slot and a
 * per-state slot are free. Order: priority 1..4 (unset = 5), then oldest, then identifier.
 */
import type { TrackerConfig, AgentConfig } from './contract/index.ts';
import type { Issue } from './tracker/types.ts';

export interface RunningIssue {
  identifier: string;
  /** The issue's tracker state (for per-state limits). */
  state: string;
}

export interface DispatchPlan {
  start: Issue[];
  waiting: Array<{ identifier: string; reason: string }>;
}

const lower = (value: string) => value.toLowerCase();

export function dispatchOrder(a: Issue, b: Issue): number {
  const priority = (issue: Issue) => (issue.priority && issue.priority >= 1 && issue.priority <= 4 ? issue.priority : 5);
  return priority(a) - priority(b) || a.created_at.localeCompare(b.created_at) || a.identifier.localeCompare(b.identifier);
}

/** Why an issue may not start regardless of capacity, or null if it may. */
export function ineligibility(issue: Issue, tracker: TrackerConfig): string | null {
  if (!issue.id || !issue.identifier || !issue.title || !issue.state) return 'missing id, identifier, title or state';
  const state = lower(issue.state);
  if (tracker.terminalStates.map(lower).includes(state)) return `state ${issue.state} is terminal`;
  if (!tracker.activeStates.map(lower).includes(state)) return `state ${issue.state} is not active`;
  const missing = tracker.requiredLabels.filter((label) => !issue.labels.includes(lower(label)));
  if (missing.length) return `missing required label${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`;
  if (state === 'todo') {
    const open = issue.blocked_by.filter((blocker) => !tracker.terminalStates.map(lower).includes(lower(blocker.state)));
    if (open.length) return `blocked by ${open.map((blocker) => `${blocker.identifier} (${blocker.state})`).join(', ')}`;
  }
  return null;
}

export function planDispatch(input: {
  candidates: Issue[];
  running: RunningIssue[];
  /** Identifiers that must not start (already running, or a closed run that is not restarted). */
  excluded: Map<string, string>;
  tracker: TrackerConfig;
  agent: AgentConfig;
}): DispatchPlan {
  const { tracker, agent } = input;
  const plan: DispatchPlan = { start: [], waiting: [] };
  const perState = new Map<string, number>();
  for (const run of input.running) perState.set(lower(run.state), (perState.get(lower(run.state)) ?? 0) + 1);
  let running = input.running.length;

  for (const issue of [...input.candidates].sort(dispatchOrder)) {
    const excluded = input.excluded.get(issue.identifier);
    if (excluded) {
      if (excluded !== 'running') plan.waiting.push({ identifier: issue.identifier, reason: excluded });
      continue;
    }
    const reason = ineligibility(issue, tracker);
    if (reason) {
      plan.waiting.push({ identifier: issue.identifier, reason });
      continue;
    }
    const state = lower(issue.state);
    const stateLimit = agent.maxConcurrentAgentsByState[state];
    if (running >= agent.maxConcurrentAgents) {
      plan.waiting.push({ identifier: issue.identifier, reason: `all ${agent.maxConcurrentAgents} agent slots are busy (agent.max_concurrent_agents)` });
      continue;
    }
    if (stateLimit !== undefined && (perState.get(state) ?? 0) >= stateLimit) {
      plan.waiting.push({ identifier: issue.identifier, reason: `${stateLimit} ${issue.state} issues already running (agent.max_concurrent_agents_by_state)` });
      continue;
    }
    plan.start.push(issue);
    running += 1;
    perState.set(state, (perState.get(state) ?? 0) + 1);
  }
  return plan;
}
