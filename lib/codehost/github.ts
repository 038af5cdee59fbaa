/**
 * GitHub as the code host: pull requests of one repository, over the same REST client as the GitHub
 * tracker. Pull requests are opened from a branch of the same repository; an open one for the same
 * head and base is reused (looked up first, and again when GitHub answers that it already exists), so
 * a retried landing opens exactly one.
 */
import { TrackerError } from '../tracker/types.ts';
import { GitHubClient, isObject, validationDetails, validationFields, type GitHubClientOptions } from '../tracker/github/client.ts';
import type { CodeHost, IssueOfPullRequest, PullRequest, PullRequestRequest } from './types.ts';

export type GitHubCodeHostOptions = Omit<GitHubClientOptions, 'user'>;

export class GitHubCodeHost implements CodeHost {
  readonly kind = 'github';
  private readonly client: GitHubClient;

  constructor(options: GitHubCodeHostOptions) {
    this.client = new GitHubClient({ ...options, user: 'GitHub pull request host' });
  }

  get repository(): string {
    return this.client.repository;
  }

  get endpoint(): string {
    return this.client.endpoint;
  }

  /**
   * Opens a pull request from `head` into `base` (branches of this repository), or returns the open
   * one that already exists for them (`created: false`), also when another opener wins a race.
   */
  async openPullRequest(request: PullRequestRequest): Promise<PullRequest> {
    const { head, base, title, body } = this.pullRequestInput(request);
    const existing = await this.findOpenPullRequest(head, base);
    if (existing !== null) return existing;

    const repository = this.repository;
    const branches = `from ${head} into ${base} in GitHub repository ${repository}`;
    const what = `opening a pull request ${branches}`;
    const reply = await this.client.send('POST', this.client.repoUrl('/pulls'), what, {
      body: { title, head, base, body },
      on404: async () => {
        await this.client.assertRepositoryVisible();
        return new TrackerError(
          'tracker_auth_failed',
          `GitHub answered 404 while ${what} although the repository is visible; the token likely lacks permission to open pull requests (Pull requests: write)`,
        );
      },
      accept: [422],
    });
    if (reply.status !== 422) return toPullRequest(reply.data, repository, true);

    const message = isObject(reply.data) && typeof reply.data.message === 'string' ? reply.data.message : 'Unprocessable Entity';
    const details = validationDetails(reply.data);
    if (alreadyExists(reply.data)) {
      // Someone else opened it between the lookup and the create.
      const raced = await this.findOpenPullRequest(head, base);
      if (raced !== null) return raced;
      throw new TrackerError(
        'tracker_invalid_data',
        this.client.redact(`GitHub says a pull request ${branches} already exists (422 ${message}${details}) but lists no open one for that head and base`),
      );
    }
    const fields = validationFields(reply.data);
    const hint = [
      fields.includes('head') ? `; check that branch ${JSON.stringify(head)} exists in ${repository} (was it pushed?)` : '',
      fields.includes('base') ? `; check that base branch ${JSON.stringify(base)} exists in ${repository}` : '',
    ].join('');
    throw new TrackerError('tracker_invalid_data', this.client.redact(`GitHub refused to open a pull request ${branches} (422 ${message}${details})${hint}`));
  }

  /** The open pull request from `head` (of this repository's owner) into `base`, or null. */
  async findOpenPullRequest(head: string, base: string): Promise<PullRequest | null> {
    const { owner, repository } = this.client;
    const params = new URLSearchParams({ state: 'open', head: `${owner}:${head}`, base, per_page: String(this.client.pageSize) });
    const items = await this.client.paginate(
      this.client.repoUrl(`/pulls?${params}`),
      `looking for an open pull request from ${head} into ${base} in ${repository}`,
      () => Promise.resolve(this.client.repositoryNotFound()),
    );
    const label = `${owner}:${head}`.toLowerCase();
    for (const item of items) {
      if (!isObject(item)) throw new TrackerError('tracker_invalid_data', `GitHub returned something that is not a pull request for ${repository}`);
      // GitHub ignores a head filter it cannot parse; check rather than trust it.
      const itemHead = isObject(item.head) ? item.head : {};
      const itemBase = isObject(item.base) ? item.base : {};
      if (itemHead.ref !== head || itemBase.ref !== base) continue;
      if (typeof itemHead.label === 'string' && itemHead.label.toLowerCase() !== label) continue;
      if (item.state !== undefined && item.state !== 'open') continue;
      return toPullRequest(item, repository, false);
    }
    return null;
  }

  /** An issue of this same repository is closed by the merge (`Closes #N`); any other is named. */
  issueLine({ tracker, id, identifier }: IssueOfPullRequest): string {
    const sameRepository = tracker.kind === 'github' && tracker.repository?.toLowerCase() === this.repository.toLowerCase();
    return sameRepository && id && /^\d+$/.test(id) ? `Closes #${id}` : `Issue: ${identifier} (${tracker.kind})`;
  }

  /** Checks a pull request request before anything is sent. */
  private pullRequestInput(request: PullRequestRequest): { head: string; base: string; title: string; body: string } {
    const refuse = (why: string) =>
      new TrackerError('tracker_invalid_data', this.client.redact(`cannot open a pull request in GitHub repository ${this.repository}: ${why}`));
    if (!isObject(request)) throw refuse('no request given');
    const branch = (field: 'head' | 'base', value: unknown): string => {
      if (typeof value !== 'string' || value.trim() === '') throw refuse(`${field} branch is empty`);
      if (value.includes(':')) {
        throw refuse(`${field} branch ${JSON.stringify(value)} contains ":"; give the branch name alone (the repository owner is added)`);
      }
      if (/\s/.test(value)) throw refuse(`${field} branch ${JSON.stringify(value)} contains whitespace, which no branch name has`);
      return value;
    };
    const head = branch('head', request.head);
    const base = branch('base', request.base);
    if (head === base) throw refuse(`head and base are the same branch ${JSON.stringify(head)}`);
    if (typeof request.title !== 'string' || request.title.trim() === '') throw refuse('title is empty');
    if (typeof request.body !== 'string') throw refuse('body must be a string');
    return { head, base, title: request.title, body: request.body };
  }
}

/** GitHub's 422 for a pull request whose head and base already have an open one. */
function alreadyExists(data: unknown): boolean {
  if (!isObject(data) || !Array.isArray(data.errors)) return false;
  return data.errors.some(
    (e: unknown) =>
      (typeof e === 'string' && /pull request already exists/i.test(e)) ||
      (isObject(e) && typeof e.message === 'string' && /pull request already exists/i.test(e.message)),
  );
}

function toPullRequest(value: unknown, repository: string, created: boolean): PullRequest {
  if (!isObject(value) || typeof value.number !== 'number' || !Number.isInteger(value.number) || typeof value.html_url !== 'string') {
    throw new TrackerError('tracker_invalid_data', `GitHub returned something that is not a pull request for ${repository}`);
  }
  return { number: value.number, url: value.html_url, created };
}
