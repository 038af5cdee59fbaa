/** Builds the tracker adapter a contract names. Adapters are cached per configuration. */
import type { TrackerConfig } from '../contract/index.ts';
import { LocalTracker } from './local.ts';
import { TrackerError, type TrackerAdapter } from './types.ts';

export function createTrackerFactory(options: { onWarning?: (message: string) => void } = {}): (config: TrackerConfig) => TrackerAdapter {
  const cache = new Map<string, TrackerAdapter>();
  return (config) => {
    const key = JSON.stringify([config.kind, config.path, config.endpoint, config.projectSlug, config.repository]);
    let adapter = cache.get(key);
    if (!adapter) {
      if (config.kind !== 'local' || !config.path) {
        throw new TrackerError('tracker_invalid_data', `tracker.kind ${config.kind} is not available in this build; use tracker.kind: local`);
      }
      adapter = new LocalTracker(config.path, { onWarning: options.onWarning });
      cache.set(key, adapter);
    }
    return adapter;
  };
}

export type { Issue, TrackerAdapter, TrackerComment } from './types.ts';
export { TrackerError } from './types.ts';
