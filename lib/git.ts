/**
 * Host-side git: a bare mirror of each remote (cached, so repeated runs fetch instead of clone),
 * bundles to carry history into a sandbox that has no network, and pushes to the landing target.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { run } from '../infra/process.ts';

export class GitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GitError';
  }
}

export async function git(cwd: string, args: string[], options: { allowFail?: boolean } = {}): Promise<string> {
  const result = await run('git', args, { cwd, env: { ...process.env, GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C' } });
  if (result.code !== 0 && !options.allowFail) {
    throw new GitError(`git ${args.join(' ')} failed in ${cwd}: ${result.stderr.trim() || result.stdout.trim()}`);
  }
  return result.code === 0 ? result.stdout.trim() : '';
}

/** One bare mirror per remote URL under `cacheDir`, fetched on demand. */
export class RepoMirror {
  readonly dir: string;
  private fetching: Promise<void> | undefined;

  constructor(cacheDir: string, readonly url: string) {
    const name = createHash('sha256').update(url).digest('hex').slice(0, 16);
    this.dir = path.join(cacheDir, `${name}.git`);
  }

  /** Brings the mirror up to date with the remote; concurrent callers share one fetch. */
  async refresh(): Promise<void> {
    this.fetching ??= this.doRefresh().finally(() => (this.fetching = undefined));
    return this.fetching;
  }

  private async doRefresh(): Promise<void> {
    if (!existsSync(path.join(this.dir, 'HEAD'))) {
      await mkdir(this.dir, { recursive: true });
      await git(this.dir, ['init', '--bare', '--quiet']);
      await git(this.dir, ['remote', 'add', 'origin', this.url]);
    }
    try {
      await git(this.dir, ['fetch', '--quiet', '--prune', 'origin', '+refs/heads/*:refs/heads/*']);
    } catch (error) {
      throw new GitError(`cannot fetch ${this.url}: ${(error as Error).message}`);
    }
  }

  async resolve(ref: string): Promise<string | undefined> {
    const sha = await git(this.dir, ['rev-parse', '--verify', '--quiet', `${ref}^{commit}`], { allowFail: true });
    return sha || undefined;
  }

  async isAncestor(commit: string, of: string): Promise<boolean> {
    const result = await run('git', ['merge-base', '--is-ancestor', commit, of], { cwd: this.dir });
    return result.code === 0;
  }

  /** A bundle file holding `refs` (and everything they need), as bytes. */
  async bundle(refs: string[]): Promise<Buffer> {
    const temp = await mkdtemp(path.join(path.dirname(this.dir), 'bundle-'));
    try {
      const file = path.join(temp, 'out.bundle');
      await git(this.dir, ['bundle', 'create', '--quiet', file, ...refs]);
      return await readFile(file);
    } finally {
      await rm(temp, { recursive: true, force: true });
    }
  }

  /** Fetches `sourceRef` out of bundle bytes into `targetRef` of the mirror. */
  async fetchBundle(bundle: Buffer, sourceRef: string, targetRef: string): Promise<string> {
    const temp = await mkdtemp(path.join(path.dirname(this.dir), 'bundle-'));
    try {
      const file = path.join(temp, 'in.bundle');
      await writeFile(file, bundle);
      await git(this.dir, ['fetch', '--quiet', file, `+${sourceRef}:${targetRef}`]);
      return (await this.resolve(targetRef))!;
    } finally {
      await rm(temp, { recursive: true, force: true });
    }
  }

  /** Fast-forward push of `commit` to `branch` on the remote. Rejected if the branch moved, unless `force` (for a branch Cadenza owns). */
  async push(commit: string, branch: string, { force = false } = {}): Promise<void> {
    await git(this.dir, ['push', '--quiet', 'origin', `${force ? '+' : ''}${commit}:refs/heads/${branch}`]);
    await git(this.dir, ['update-ref', `refs/heads/${branch}`, commit]);
  }

  /** The first commit on `branch` whose message carries `trailer`. */
  async findCommitWithTrailer(branch: string, trailer: string): Promise<string | undefined> {
    const sha = await git(this.dir, ['log', '--format=%H', '--fixed-strings', `--grep=${trailer}`, '-1', `refs/heads/${branch}`], { allowFail: true });
    return sha || undefined;
  }
}

/** Mirrors shared across activities of one worker. */
export class MirrorCache {
  private mirrors = new Map<string, RepoMirror>();
  constructor(readonly dir: string) {}
  get(url: string): RepoMirror {
    let mirror = this.mirrors.get(url);
    if (!mirror) this.mirrors.set(url, (mirror = new RepoMirror(this.dir, url)));
    return mirror;
  }
}
