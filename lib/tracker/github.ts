/** The GitHub tracker: the mapping (github/tracker.ts) over the REST client (github/client.ts). */
export { GitHubTracker, githubTrackerFromConfig, type GitHubTrackerOptions } from './github/tracker.ts';
export { DEFAULT_GITHUB_ENDPOINT, GitHubClient, nextLink, type GitHubClientOptions } from './github/client.ts';
