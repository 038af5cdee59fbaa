/** The Linear tracker: the mapping (linear/tracker.ts) over the SDK-based client (linear/client.ts). */
export { DEFAULT_LINEAR_API_KEY_ENV, LinearTracker, linearTrackerFromConfig, type LinearTrackerOptions } from './linear/tracker.ts';
export { DEFAULT_LINEAR_ENDPOINT, LinearApi, type LinearApiOptions } from './linear/client.ts';
export { LINEAR_OPERATIONS } from './linear/queries.ts';
