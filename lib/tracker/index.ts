/** Builds the tracker adapter a contract names. Adapters are cached per configuration. */
import type { TrackerConfig } from '../contract/index.ts';
import { githubTrackerFromConfig } from './github/tracker.ts';
import { linearTrackerFromConfig } from './linear/tracker.ts';
import { LocalTracker } from './local/tracker.ts';
import { TrackerError, type TrackerAdapter } from './types.ts';

export function createTrackerFactory(options: { onWarning?: (message: string) => void; env?: NodeJS.ProcessEnv } = {}): (config: TrackerConfig) => TrackerAdapter {
  const cache = new Map<string, TrackerAdapter>();
  const build = (config: TrackerConfig): TrackerAdapter => {
    switch (config.kind) {
      case 'local':
        return new LocalTracker(config.path!, { onWarning: options.onWarning });
      case 'github':
        return githubTrackerFromConfig(config, options.env);
      case 'linear':
        return linearTrackerFromConfig(config, options.env);
      default:
        throw new TrackerError('tracker_invalid_data', `tracker.kind ${config.kind} is not available in this build; use local, linear or github`);
    }
  };
  return (config) => {
    const key = JSON.stringify([config.kind, config.path, config.endpoint, config.apiKey, config.projectSlug, config.repository]);
    let adapter = cache.get(key);
    if (!adapter) cache.set(key, (adapter = build(config)));
    return adapter;
  };
}

export type { Issue, TrackerAdapter, TrackerComment } from './types.ts';
export { TrackerError } from './types.ts';
