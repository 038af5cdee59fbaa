/**
 * Where a run's time goes, from its workflow history: each event carries the server's timestamp, so
 * the run splits into sequential segments: workflow tasks waiting for a worker and being processed,
 * activities waiting for a worker (scheduled -> started) and running (started -> closed).
 */
import { defaultPayloadConverter } from '@temporalio/common';

type Obj = Record<string, unknown>;

export type SegmentKind = 'client-start' | 'wft-queue' | 'wft-run' | 'activity-queue' | 'activity-run' | 'result-delivery';

export interface Segment {
  kind: SegmentKind;
  /** Activity type for activity segments. */
  activity?: string;
  attempt?: number;
  start: number;
  end: number;
}

export interface ActivityOutcome {
  activity: string;
  result: unknown;
}

export interface HistoryTimeline {
  startedAt: number;
  closedAt: number | null;
  segments: Segment[];
  /** Decoded results of completed activities, in order. */
  results: ActivityOutcome[];
}

const num = (value: unknown): number => (value === null || value === undefined ? 0 : Number(String(value)));
const timeOf = (event: Obj): number => {
  const ts = event.eventTime as { seconds?: unknown; nanos?: unknown } | null | undefined;
  return ts ? num(ts.seconds) * 1000 + num(ts.nanos) / 1e6 : NaN;
};
const attributes = (event: Obj, key: string): Obj | null => (event[key] as Obj | null | undefined) ?? null;

function decode(result: unknown): unknown {
  const payloads = (result as { payloads?: unknown[] } | null | undefined)?.payloads;
  if (!payloads?.length) return undefined;
  try {
    return defaultPayloadConverter.fromPayload(payloads[0] as never);
  } catch {
    return undefined;
  }
}

/**
 * The timeline of one run. `clientStart` / `clientResult` (epoch ms, taken by the caller around the
 * start call and when `result()` returned) add the client's own two segments.
 */
export function timeline(history: { events?: unknown[] | null }, clientStart?: number, clientResult?: number): HistoryTimeline {
  const events = (history.events ?? []) as Obj[];
  const segments: Segment[] = [];
  const results: ActivityOutcome[] = [];
  const wftScheduled = new Map<number, number>();
  const wftStarted = new Map<number, number>();
  const activityScheduled = new Map<number, { name: string; at: number }>();
  const activityStarted = new Map<number, { name: string; at: number; attempt: number }>();
  let startedAt = NaN;
  let closedAt: number | null = null;

  for (const event of events) {
    const id = num(event.eventId);
    const at = timeOf(event);
    let attrs: Obj | null;
    if (attributes(event, 'workflowExecutionStartedEventAttributes')) startedAt = at;
    else if (attributes(event, 'workflowTaskScheduledEventAttributes')) wftScheduled.set(id, at);
    else if ((attrs = attributes(event, 'workflowTaskStartedEventAttributes'))) {
      const scheduled = wftScheduled.get(num(attrs.scheduledEventId));
      if (scheduled !== undefined) segments.push({ kind: 'wft-queue', start: scheduled, end: at });
      wftStarted.set(id, at);
    } else if (
      (attrs = attributes(event, 'workflowTaskCompletedEventAttributes') ?? attributes(event, 'workflowTaskFailedEventAttributes') ?? attributes(event, 'workflowTaskTimedOutEventAttributes'))
    ) {
      const started = wftStarted.get(num(attrs.startedEventId));
      if (started !== undefined) segments.push({ kind: 'wft-run', start: started, end: at });
      else {
        // A workflow task that timed out before it started (schedule-to-start, e.g. a dead sticky worker).
        const scheduled = wftScheduled.get(num(attrs.scheduledEventId));
        if (scheduled !== undefined) segments.push({ kind: 'wft-queue', start: scheduled, end: at });
      }
    } else if ((attrs = attributes(event, 'activityTaskScheduledEventAttributes'))) {
      activityScheduled.set(id, { name: String((attrs.activityType as Obj | null)?.name ?? '?'), at });
    } else if ((attrs = attributes(event, 'activityTaskStartedEventAttributes'))) {
      const scheduled = activityScheduled.get(num(attrs.scheduledEventId));
      const attempt = num(attrs.attempt) || 1;
      if (scheduled) {
        // With retries, "scheduled" is the first attempt's; the wait then includes the failed attempts and backoff.
        segments.push({ kind: 'activity-queue', activity: scheduled.name, attempt, start: scheduled.at, end: at });
        activityStarted.set(id, { name: scheduled.name, at, attempt });
      }
    } else if (
      (attrs =
        attributes(event, 'activityTaskCompletedEventAttributes') ??
        attributes(event, 'activityTaskFailedEventAttributes') ??
        attributes(event, 'activityTaskTimedOutEventAttributes') ??
        attributes(event, 'activityTaskCanceledEventAttributes'))
    ) {
      const started = activityStarted.get(num(attrs.startedEventId));
      const scheduled = activityScheduled.get(num(attrs.scheduledEventId));
      if (started) segments.push({ kind: 'activity-run', activity: started.name, attempt: started.attempt, start: started.at, end: at });
      else if (scheduled) segments.push({ kind: 'activity-queue', activity: scheduled.name, start: scheduled.at, end: at });
      if (attributes(event, 'activityTaskCompletedEventAttributes') && scheduled) results.push({ activity: scheduled.name, result: decode(attrs.result) });
    } else if (
      attributes(event, 'workflowExecutionCompletedEventAttributes') ??
      attributes(event, 'workflowExecutionFailedEventAttributes') ??
      attributes(event, 'workflowExecutionTerminatedEventAttributes') ??
      attributes(event, 'workflowExecutionCanceledEventAttributes') ??
      attributes(event, 'workflowExecutionTimedOutEventAttributes')
    ) {
      closedAt = at;
    }
  }
  if (clientStart !== undefined && Number.isFinite(startedAt)) segments.unshift({ kind: 'client-start', start: clientStart, end: startedAt });
  if (clientResult !== undefined && closedAt !== null) segments.push({ kind: 'result-delivery', start: closedAt, end: clientResult });
  return { startedAt, closedAt, segments, results };
}

export const LABELS: Record<SegmentKind, string> = {
  'client-start': 'client start call -> WorkflowExecutionStarted',
  'wft-queue': 'workflow tasks: scheduled -> started (queueing)',
  'wft-run': 'workflow tasks: started -> completed (worker processing)',
  'activity-queue': 'activities: scheduled -> started (queueing)',
  'activity-run': 'activity',
  'result-delivery': 'WorkflowExecutionCompleted -> client has the result',
};

export const OTHER = 'gaps between events (not covered by any segment)';

/** A label per segment: activity run time is kept per activity type. */
export function labelOf(segment: Segment): string {
  return segment.kind === 'activity-run' ? `activity ${segment.activity}` : LABELS[segment.kind];
}

/**
 * Milliseconds per label inside the window [from, to] (segments are clipped to it), plus the part of
 * the window no segment covers, and how many segments each label had.
 */
export function sumByLabel(segments: Segment[], from: number, to: number): { ms: Map<string, number>; counts: Map<string, number> } {
  const ms = new Map<string, number>();
  const counts = new Map<string, number>();
  let covered = 0;
  for (const segment of segments) {
    const start = Math.max(from, segment.start);
    const end = Math.min(to, segment.end);
    if (end <= start && !(segment.start >= from && segment.end <= to)) continue;
    const length = Math.max(0, end - start);
    const label = labelOf(segment);
    ms.set(label, (ms.get(label) ?? 0) + length);
    counts.set(label, (counts.get(label) ?? 0) + 1);
    covered += length;
  }
  ms.set(OTHER, Math.max(0, to - from - covered));
  return { ms, counts };
}
