/**
 * The code host a contract names, for `landing.strategy: pull_request`. Today that is GitHub:
 * `landing.github` (its repository, endpoint and token reference, defaulted by the contract from a
 * GitHub tracker or a github.com repo.url), or, for contracts recorded before `landing.github`
 * existed, the GitHub tracker's own repository. Hosts are cached per configuration.
 */
import type { LandingConfig, PullRequestHostConfig, TrackerConfig } from '../contract/types.ts';
import { githubToken } from '../tracker/github/client.ts';
import { GitHubCodeHost } from './github.ts';
import type { CodeHost } from './types.ts';

export interface CodeHostConfig extends PullRequestHostConfig {
  kind: 'github';
}

/** Where pull requests go under this contract, or null when it names none. */
export function codeHostConfig(config: { tracker: TrackerConfig; landing: LandingConfig }): CodeHostConfig | null {
  const { tracker, landing } = config;
  if (landing.github) return { kind: 'github', ...landing.github };
  if (tracker.kind === 'github' && tracker.repository && tracker.apiKey) {
    return { kind: 'github', repository: tracker.repository, endpoint: tracker.endpoint, apiKey: tracker.apiKey };
  }
  return null;
}

export function createCodeHostFactory(options: { env?: NodeJS.ProcessEnv } = {}): (config: CodeHostConfig) => CodeHost {
  const cache = new Map<string, CodeHost>();
  return (config) => {
    const key = JSON.stringify([config.kind, config.repository, config.endpoint, config.apiKey.env]);
    let host = cache.get(key);
    if (!host) {
      const token = githubToken(config.apiKey, options.env ?? process.env, 'GitHub pull request host');
      host = new GitHubCodeHost({ token, repository: config.repository, endpoint: config.endpoint ?? undefined });
      cache.set(key, host);
    }
    return host;
  };
}

export type { CodeHost, IssueOfPullRequest, PullRequest, PullRequestRequest } from './types.ts';
export { GitHubCodeHost } from './github.ts';
