/**
 * Linear's GraphQL API through the official SDK's own GraphQL client (`LinearClient#client.rawRequest`):
 * the SDK supplies the auth header and turns HTTP and GraphQL failures into its typed errors, which
 * are mapped here to TrackerError codes (rate limits with how long Linear asked to wait). Requests
 * time out, and `first`/`after` pagination is followed to the last page. No message ever contains the
 * API key. What the documents ask for, and what the answers mean, is the tracker's (tracker.ts).
 */
import {
  AuthenticationLinearError,
  ForbiddenLinearError,
  InternalLinearError,
  LinearClient,
  LinearError,
  NetworkLinearError,
  RatelimitedLinearError,
} from '@linear/sdk';
import { TrackerError } from '../types.ts';

export const DEFAULT_LINEAR_ENDPOINT = 'https://api.linear.app/graphql';
const DEFAULT_PAGE_SIZE = 50;
/** Linear's largest page. */
export const MAX_PAGE_SIZE = 250;
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
const MAX_DETAIL_CHARS = 500;

export interface LinearApiOptions {
  /** A personal API key (sent raw in `Authorization`, as Linear expects). Never logged. */
  apiKey: string;
  /** The GraphQL endpoint (the SDK's apiUrl); default https://api.linear.app/graphql. */
  endpoint?: string;
  /** Items per page, 1..250; default 50. */
  pageSize?: number;
  /** Per-request timeout; default 30 s. */
  requestTimeoutMs?: number;
}

export interface PageInfo {
  hasNextPage?: boolean | null;
  endCursor?: string | null;
}

export interface Connection<T> {
  nodes?: (T | null)[] | null;
  pageInfo?: PageInfo | null;
}

export type Variables = Record<string, unknown>;

export class LinearApi {
  readonly endpoint: string;
  readonly pageSize: number;
  // ECMAScript-private: never shown by util.inspect or JSON.stringify (the client holds the key).
  readonly #client: LinearClient;
  readonly #apiKey: string;
  readonly #timeoutMs: number;

  /** `validate` runs after the key is checked, before the page size is (the order errors are reported in). */
  constructor(options: LinearApiOptions, validate?: () => void) {
    if (typeof options.apiKey !== 'string' || options.apiKey.trim() === '') {
      throw new TrackerError('tracker_auth_failed', 'Linear API key is missing or empty');
    }
    validate?.();
    const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE_SIZE) {
      throw new TrackerError('tracker_invalid_data', `Linear page size must be an integer 1..${MAX_PAGE_SIZE}, got ${pageSize}`);
    }
    const timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw new TrackerError('tracker_invalid_data', `Linear request timeout must be a positive number of ms, got ${timeoutMs}`);
    }
    this.#apiKey = options.apiKey;
    this.endpoint = options.endpoint ?? DEFAULT_LINEAR_ENDPOINT;
    this.pageSize = pageSize;
    this.#timeoutMs = timeoutMs;
    try {
      this.#client = new LinearClient({ apiKey: options.apiKey, apiUrl: this.endpoint });
    } catch (error) {
      throw new TrackerError(
        'tracker_invalid_data',
        `invalid Linear endpoint ${JSON.stringify(this.endpoint)}: ${this.redact(errorMessage(error))}`,
      );
    }
  }

  /** Follows `pageInfo { hasNextPage endCursor }` with `first`/`after` until the last page. */
  async paginate<T>(
    operation: string,
    query: string,
    variables: Variables,
    connectionOf: (data: unknown) => Connection<T> | null | undefined,
    subject?: string,
  ): Promise<T[]> {
    const nodes: T[] = [];
    const seen = new Set<string>();
    let after: string | null = null;
    for (;;) {
      const data = await this.request(operation, query, { ...variables, first: this.pageSize, after }, subject);
      const connection = connectionOf(data);
      if (!connection || !Array.isArray(connection.nodes)) {
        throw new TrackerError('tracker_invalid_data', `Linear ${operation} returned no connection nodes`);
      }
      for (const node of connection.nodes) if (node) nodes.push(node);
      if (connection.pageInfo?.hasNextPage !== true) return nodes;
      const cursor = connection.pageInfo.endCursor;
      if (typeof cursor !== 'string' || cursor === '') {
        throw new TrackerError('tracker_invalid_data', `Linear ${operation} reported another page without an end cursor`);
      }
      if (seen.has(cursor)) {
        throw new TrackerError('tracker_invalid_data', `Linear ${operation} returned the same page cursor twice`);
      }
      seen.add(cursor);
      after = cursor;
    }
  }

  /** The `data` of one named document; `subject` ("issue <id>", say) names what was asked for in not-found errors. */
  async request(operation: string, query: string, variables: Variables, subject?: string): Promise<unknown> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new TrackerError('tracker_unavailable', `Linear ${operation} timed out after ${this.#timeoutMs} ms (${this.endpoint})`)),
        this.#timeoutMs,
      );
    });
    try {
      const response = await Promise.race([this.#client.client.rawRequest<unknown, Variables>(query, variables), timeout]);
      if (response.data === undefined || response.data === null) {
        throw new TrackerError('tracker_invalid_data', `Linear ${operation} returned no data`);
      }
      return response.data;
    } catch (error) {
      throw this.toTrackerError(error, operation, subject);
    } finally {
      clearTimeout(timer);
    }
  }

  private toTrackerError(error: unknown, operation: string, subject?: string): TrackerError {
    if (error instanceof TrackerError) return error;
    if (!(error instanceof LinearError)) {
      // fetch itself failed: DNS, refused connection, reset, TLS.
      return new TrackerError('tracker_unavailable', `Linear ${operation} failed: cannot reach ${this.endpoint}: ${this.detail(errorMessage(error, true))}`);
    }
    const status = error.status;
    const rawErrors = error.raw?.response?.errors ?? [];
    const codes = rawErrors.map((raw) => rawCode(raw));
    const types: unknown[] = rawErrors.map((raw) => raw?.extensions?.type);
    const detail = this.detail(error.message);
    const http = status ? ` (HTTP ${status})` : '';

    if (error instanceof RatelimitedLinearError || status === 429 || codes.includes('RATELIMITED')) {
      const { hint, waitMs } = rateLimitHint(error);
      return new TrackerError('tracker_rate_limited', `Linear API rate limit exceeded during ${operation}${http}${hint}: ${detail}`, waitMs);
    }
    const authTyped = types.includes('authentication error') || types.includes('forbidden') || codes.includes('AUTHENTICATION_ERROR') || codes.includes('FORBIDDEN');
    if (
      status === 401 ||
      status === 403 ||
      authTyped ||
      ((error instanceof AuthenticationLinearError || error instanceof ForbiddenLinearError) && rawErrors.length > 0)
    ) {
      return new TrackerError('tracker_auth_failed', `Linear rejected the API key during ${operation}${http}: ${detail}`);
    }
    if (rawErrors.some((raw) => typeof raw?.message === 'string' && raw.message.startsWith('Entity not found'))) {
      return new TrackerError('tracker_not_found', `Linear ${subject ?? 'entity'} not found (${operation}): ${detail}`);
    }
    if (error instanceof InternalLinearError || error instanceof NetworkLinearError || (status !== undefined && status >= 500)) {
      return new TrackerError('tracker_unavailable', `Linear API unavailable during ${operation}${http}: ${detail}`);
    }
    return new TrackerError('tracker_unavailable', `Linear API error during ${operation}${http}: ${detail}`);
  }

  private detail(message: string): string {
    const text = this.redact(message).replace(/\s+/g, ' ').trim() || 'no details';
    return text.length > MAX_DETAIL_CHARS ? `${text.slice(0, MAX_DETAIL_CHARS)}…` : text;
  }

  private redact(text: string): string {
    return text.split(this.#apiKey).join('[redacted]');
  }
}

/** `data.key`, or undefined when data is not an object. */
export function field<T>(data: unknown, key: string): T | null | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  return (data as Record<string, unknown>)[key] as T | null | undefined;
}

function rawCode(raw: unknown): string | undefined {
  const code = (raw as { extensions?: { code?: unknown } } | null)?.extensions?.code;
  return typeof code === 'string' ? code : undefined;
}

/** "; retry after 60 s" / "; requests reset at <ISO>" and how long that is, from the SDK's parsed rate-limit headers. */
function rateLimitHint(error: LinearError): { hint: string; waitMs?: number } {
  const headers = error.raw?.response?.headers;
  const header = (name: string): number | undefined => {
    const value = headers instanceof Headers ? headers.get(name) : undefined;
    const parsed = value === undefined || value === null || value === '' ? Number.NaN : Number(value);
    return Number.isFinite(parsed) ? parsed : undefined;
  };
  const limited = error instanceof RatelimitedLinearError ? error : undefined;
  const retryAfter = limited?.retryAfter ?? header('retry-after');
  const requestsReset = limited?.requestsResetAt ?? header('x-ratelimit-requests-reset');
  const complexityReset = limited?.complexityResetAt ?? header('x-ratelimit-complexity-reset');
  const parts: string[] = [];
  let waitMs: number | undefined;
  if (retryAfter !== undefined) {
    parts.push(`retry after ${retryAfter} s`);
    waitMs = Math.max(0, Math.ceil(retryAfter * 1000));
  }
  const reset = requestsReset ?? complexityReset;
  if (reset !== undefined) {
    // Linear sends epoch milliseconds; accept seconds too.
    const ms = reset > 1e12 ? reset : reset * 1000;
    parts.push(`${requestsReset !== undefined ? 'requests' : 'complexity'} budget resets at ${new Date(ms).toISOString()}`);
    waitMs ??= Math.max(0, ms - Date.now());
  }
  return { hint: parts.length > 0 ? `; ${parts.join(', ')}` : '', ...(waitMs !== undefined ? { waitMs } : {}) };
}

function errorMessage(error: unknown, withCause = false): string {
  if (!(error instanceof Error)) return String(error);
  const cause = withCause && error.cause instanceof Error ? ` (${error.cause.message})` : '';
  return `${error.message}${cause}`;
}
