/**
 * GitHub's REST API (v3, version 2022-11-28) for one repository, over Node's fetch: requests,
 * Link pagination, and GitHub's answers mapped to TrackerError with stable codes (rate limits with
 * how long GitHub asked to wait). Used by the GitHub tracker (issues) and the GitHub code host (pull
 * requests); what the JSON means is theirs to say.
 *
 * The token is sent only to the configured endpoint's origin (pagination pointing elsewhere is not
 * followed) and never appears in an error message.
 */
import { ContractError } from '../../contract/errors.ts';
import { resolveSecret } from '../../contract/secrets.ts';
import type { SecretRef } from '../../contract/types.ts';
import { TrackerError } from '../types.ts';

export const DEFAULT_GITHUB_ENDPOINT = 'https://api.github.com';
const API_VERSION = '2022-11-28';
const DEFAULT_PAGE_SIZE = 100;
const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_PAGES = 10_000;
const REPOSITORY_PATTERN = /^([A-Za-z0-9_.-]+)\/([A-Za-z0-9_.-]+)$/;

export interface GitHubClientOptions {
  token: string;
  /** `owner/name`. */
  repository: string;
  /** REST API root; default https://api.github.com (GitHub Enterprise Server: https://HOST/api/v3). */
  endpoint?: string;
  /** Items per list request, 1..100; default 100. */
  pageSize?: number;
  /** Per-request timeout; default 30000. */
  timeoutMs?: number;
  /** Who needs the token, for the empty-token error ("GitHub tracker"). */
  user?: string;
}

export interface Reply {
  status: number;
  headers: Headers;
  data: unknown;
}

/** What to do with a 404: `null` = return null; a function = build the error (may run more requests). */
export type On404 = null | (() => Promise<TrackerError>);

export interface SendOptions {
  body?: unknown;
  /** Error statuses returned as a reply (for the caller to read GitHub's body) instead of thrown. */
  accept?: readonly number[];
}

export class GitHubClient {
  readonly repository: string;
  readonly owner: string;
  readonly name: string;
  readonly endpoint: string;
  readonly pageSize: number;
  private readonly token: string;
  private readonly origin: string;
  private readonly timeoutMs: number;

  /** `validate` runs after the repository and token are checked, before the endpoint is (the order errors are reported in). */
  constructor(options: GitHubClientOptions, validate?: () => void) {
    const match = REPOSITORY_PATTERN.exec(options.repository ?? '');
    if (!match) {
      throw new TrackerError('tracker_invalid_data', `GitHub repository must be "owner/name", got ${JSON.stringify(options.repository)}`);
    }
    if (typeof options.token !== 'string' || options.token.trim() === '') {
      throw new TrackerError('tracker_auth_failed', `${options.user ?? 'GitHub tracker'} needs a non-empty API token`);
    }
    validate?.();
    const endpoint = (options.endpoint ?? DEFAULT_GITHUB_ENDPOINT).replace(/\/+$/, '');
    let origin: string;
    try {
      const url = new URL(endpoint);
      if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('not http(s)');
      origin = url.origin;
    } catch {
      throw new TrackerError('tracker_invalid_data', `GitHub endpoint must be an http(s) URL, got ${JSON.stringify(options.endpoint)}`);
    }
    const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 100) {
      throw new TrackerError('tracker_invalid_data', `GitHub page size must be an integer 1..100, got ${pageSize}`);
    }
    this.owner = match[1] as string;
    this.name = match[2] as string;
    this.repository = `${this.owner}/${this.name}`;
    this.endpoint = endpoint;
    this.origin = origin;
    this.token = options.token;
    this.pageSize = pageSize;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** The repository's API URL, with `path` ("/issues/42") appended. */
  repoUrl(path = ''): string {
    return `${this.endpoint}/repos/${encodeURIComponent(this.owner)}/${encodeURIComponent(this.name)}${path}`;
  }

  /** `owner/name#42`, for messages. */
  ref(number: number): string {
    return `${this.repository}#${number}`;
  }

  repositoryNotFound(): TrackerError {
    return new TrackerError('tracker_not_found', `GitHub repository ${this.repository} does not exist or the token cannot see it`);
  }

  /** Throws tracker_not_found for the repository when it is the repository that is missing. */
  async assertRepositoryVisible(): Promise<void> {
    await this.send('GET', this.repoUrl(), `reading repository ${this.repository}`, {
      on404: () => Promise.resolve(this.repositoryNotFound()),
    });
  }

  /** All items of a list, following `Link: <…>; rel="next"` until there is none. null on404 = []. */
  async paginate(firstUrl: string, what: string, on404: On404): Promise<unknown[]> {
    const items: unknown[] = [];
    const seen = new Set<string>();
    let url: string | null = firstUrl;
    while (url !== null) {
      if (seen.has(url) || seen.size >= MAX_PAGES) {
        throw new TrackerError('tracker_invalid_data', `GitHub pagination loops while ${what} (page ${seen.size + 1})`);
      }
      seen.add(url);
      const reply = await this.send('GET', url, what, { on404, on410: on404 === null ? null : undefined });
      if (reply === null) return [];
      if (!Array.isArray(reply.data)) {
        throw new TrackerError('tracker_invalid_data', `GitHub returned a non-list while ${what}`);
      }
      items.push(...reply.data);
      url = nextLink(reply.headers.get('link'));
      if (url !== null && !this.sameOrigin(url)) {
        throw new TrackerError('tracker_invalid_data', `GitHub pagination points away from ${this.origin} while ${what}; not following it`);
      }
    }
    return items;
  }

  /** One request; `what` ("reading issue acme/web#4") goes into every error. */
  send(method: string, url: string, what: string, opts: SendOptions & { on404: null; on410?: null }): Promise<Reply | null>;
  send(method: string, url: string, what: string, opts: SendOptions & { on404: () => Promise<TrackerError>; on410?: undefined }): Promise<Reply>;
  send(method: string, url: string, what: string, opts: SendOptions & { on404: On404; on410?: null }): Promise<Reply | null>;
  async send(method: string, url: string, what: string, opts: SendOptions & { on404: On404; on410?: null }): Promise<Reply | null> {
    const headers: Record<string, string> = {
      Authorization: `Bearer ${this.token}`,
      Accept: 'application/vnd.github+json',
      'X-GitHub-Api-Version': API_VERSION,
      'User-Agent': 'cadenza',
    };
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        signal: AbortSignal.timeout(this.timeoutMs),
        redirect: 'follow',
      });
      text = await response.text();
    } catch (error) {
      const reason = isTimeout(error) ? `no answer within ${this.timeoutMs} ms` : describeNetworkError(error);
      throw new TrackerError('tracker_unavailable', this.redact(`cannot reach GitHub at ${this.endpoint} while ${what}: ${reason}`));
    }
    let data: unknown = null;
    if (text.trim() !== '') {
      try {
        data = JSON.parse(text);
      } catch {
        if (response.ok) {
          throw new TrackerError('tracker_unavailable', `GitHub answered ${response.status} with a body that is not JSON while ${what}`);
        }
      }
    }
    if (response.ok || opts.accept?.includes(response.status)) return { status: response.status, headers: response.headers, data };
    if (response.status === 404 || (response.status === 410 && opts.on410 === null)) {
      if (opts.on404 === null) return null;
      throw await opts.on404();
    }
    throw this.httpError(response, data, what);
  }

  /** `text` with the token taken out. */
  redact(text: string): string {
    return this.token.length >= 4 ? text.split(this.token).join('[redacted]') : text;
  }

  private sameOrigin(url: string): boolean {
    try {
      return new URL(url).origin === this.origin;
    } catch {
      return false;
    }
  }

  private httpError(response: Response, data: unknown, what: string): TrackerError {
    const status = response.status;
    const message = isObject(data) && typeof data.message === 'string' ? data.message : response.statusText;
    const headers = response.headers;
    const remaining = headers.get('x-ratelimit-remaining');
    const retryAfter = headers.get('retry-after');
    const says = (code: TrackerError['code'], text: string) => new TrackerError(code, this.redact(text));

    if (status === 401) {
      return says('tracker_auth_failed', `GitHub rejected the API token while ${what} (401 ${message}); check the token and that it has not expired`);
    }
    if (
      status === 429 ||
      (status === 403 && (remaining === '0' || retryAfter !== null || /rate limit/i.test(message)))
    ) {
      const kind = remaining === '0' ? 'rate limit' : 'secondary rate limit';
      return new TrackerError('tracker_rate_limited', this.redact(`GitHub API ${kind} exceeded while ${what}; ${resetHint(headers)}`), waitMs(headers));
    }
    if (status === 403) {
      return says('tracker_auth_failed', `GitHub refused access while ${what} (403 ${message}); the token lacks permission for ${this.repository}`);
    }
    if (status === 404 || status === 410) {
      return says('tracker_not_found', `GitHub answered ${status} ${message} while ${what}`);
    }
    if (status === 422 || (status >= 400 && status < 500)) {
      return says('tracker_invalid_data', `GitHub rejected the request while ${what} (${status} ${message}${validationDetails(data)})`);
    }
    return says('tracker_unavailable', `GitHub answered ${status} ${message} while ${what}; try again later`);
  }
}

/**
 * The token a contract names: `apiKey` (a `$VAR`), falling back to GITHUB_TOKEN. Throws
 * tracker_auth_failed naming the variables tried (never a value); `user` says who needs it.
 */
export function githubToken(apiKey: SecretRef | null | undefined, env: NodeJS.ProcessEnv, user = 'GitHub tracker'): string {
  let token: string | undefined;
  const tried: string[] = [];
  if (apiKey) {
    tried.push(apiKey.env);
    try {
      token = resolveSecret(apiKey, env);
    } catch (error) {
      if (!(error instanceof ContractError)) throw error;
    }
  }
  if (token === undefined && !tried.includes('GITHUB_TOKEN')) {
    tried.push('GITHUB_TOKEN');
    const value = env.GITHUB_TOKEN;
    if (value !== undefined && value !== '') token = value;
  }
  if (token === undefined) {
    const which = tried.length > 1 ? `neither ${tried.join(' nor ')} is set` : `environment variable ${tried[0]} is not set`;
    throw new TrackerError('tracker_auth_failed', `${user} needs an API token: ${which} (or it is empty)`);
  }
  return token;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The `rel="next"` target of a Link header, or null. */
export function nextLink(header: string | null): string | null {
  if (!header) return null;
  for (const part of header.split(/,(?=\s*<)/)) {
    const match = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (!match) continue;
    const rels = /\brel\s*=\s*"?([^";]*)"?/i.exec(match[2] as string)?.[1]?.split(/\s+/) ?? [];
    if (rels.includes('next')) return match[1] as string;
  }
  return null;
}

/** ": <each of GitHub's validation errors>", or "" when it gave none. */
export function validationDetails(data: unknown): string {
  if (!isObject(data) || !Array.isArray(data.errors)) return '';
  const parts = data.errors
    .map((e: unknown) => {
      if (typeof e === 'string') return e;
      if (!isObject(e)) return null;
      if (typeof e.message === 'string') return e.message;
      return [e.resource, e.field, e.code].filter((x) => typeof x === 'string').join(' ');
    })
    .filter((p): p is string => !!p);
  return parts.length > 0 ? `: ${parts.join('; ')}` : '';
}

/** The fields GitHub's validation errors name (`head`, `base`, …). */
export function validationFields(data: unknown): string[] {
  if (!isObject(data) || !Array.isArray(data.errors)) return [];
  return data.errors.flatMap((e: unknown) => (isObject(e) && typeof e.field === 'string' ? [e.field] : []));
}

/** How long GitHub asked us to wait: Retry-After (seconds or a date), else the rate limit's reset time. */
function waitMs(headers: Headers): number | undefined {
  const retryAfter = headers.get('retry-after')?.trim();
  if (retryAfter) {
    const seconds = Number(retryAfter);
    if (Number.isFinite(seconds) && seconds >= 0) return Math.ceil(seconds * 1000);
    const date = new Date(retryAfter).getTime();
    if (!Number.isNaN(date)) return Math.max(0, date - Date.now());
  }
  const reset = Number(headers.get('x-ratelimit-reset'));
  if (headers.get('x-ratelimit-reset') !== null && Number.isFinite(reset) && reset > 0) return Math.max(0, reset * 1000 - Date.now());
  return undefined;
}

function resetHint(headers: Headers): string {
  const retryAfter = headers.get('retry-after');
  if (retryAfter !== null && retryAfter.trim() !== '') {
    const seconds = Number(retryAfter);
    if (Number.isFinite(seconds) && seconds >= 0) {
      return `retry after ${Math.ceil(seconds)} s (at ${new Date(Date.now() + seconds * 1000).toISOString()})`;
    }
    const date = new Date(retryAfter);
    if (!Number.isNaN(date.getTime())) return `retry after ${date.toISOString()}`;
  }
  const reset = Number(headers.get('x-ratelimit-reset'));
  if (headers.get('x-ratelimit-reset') !== null && Number.isFinite(reset) && reset > 0) {
    const wait = Math.max(0, Math.ceil(reset - Date.now() / 1000));
    return `the limit resets at ${new Date(reset * 1000).toISOString()} (in ${wait} s)`;
  }
  return 'retry in a minute or more (GitHub did not say when the limit resets)';
}

function isTimeout(error: unknown): boolean {
  return error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError');
}

function describeNetworkError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = (error as Error & { cause?: unknown }).cause;
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return `${error.message} (${code ? `${code}: ` : ''}${cause.message})`;
  }
  return error.message;
}
