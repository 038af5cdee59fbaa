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

/**
 * Environment for git on what the agent produced: no system or user configuration (no external diff,
 * textconv or pager a worker host may have set), only the mirror's own, which Cadenza wrote.
 */
const HERMETIC = { GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_ATTR_NOSYSTEM: '1' };

export async function git(cwd: string, args: string[], options: { allowFail?: boolean; hermetic?: boolean; env?: Record<string, string> } = {}): Promise<string> {
  const result = await run('git', args, { cwd, env: { ...process.env, GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C', ...(options.hermetic ? HERMETIC : {}), ...options.env } });
  if (result.code !== 0 && !options.allowFail) {
    throw new GitError(`git ${args.join(' ')} failed in ${cwd}: ${result.stderr.trim() || result.stdout.trim()}`);
  }
  return result.code === 0 ? result.stdout.trim() : '';
}

/** What `RepoMirror.pushOwned` did: created, moved or left (already there) Cadenza's branch, or found someone else's. */
export type OwnedPush = { outcome: 'created' | 'updated' | 'unchanged' } | { outcome: 'not_owned'; tip: string };

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

  /**
   * Fetches `sourceRef` out of bundle bytes into `targetRef` of the mirror. Every object is checked
   * (fsck) on the way in, so a malformed or mislabelled object from a sandbox is refused.
   */
  async fetchBundle(bundle: Buffer, sourceRef: string, targetRef: string): Promise<string> {
    const temp = await mkdtemp(path.join(path.dirname(this.dir), 'bundle-'));
    try {
      const file = path.join(temp, 'in.bundle');
      await writeFile(file, bundle);
      await git(this.dir, ['-c', 'fetch.fsckObjects=true', '-c', 'transfer.fsckObjects=true', 'fetch', '--quiet', '--no-write-fetch-head', file, `+${sourceRef}:${targetRef}`], { hermetic: true });
      return (await this.resolve(targetRef))!;
    } finally {
      await rm(temp, { recursive: true, force: true });
    }
  }

  /** Fast-forward push of `commit` to `branch` on the remote; rejected if the branch moved. */
  async push(commit: string, branch: string): Promise<void> {
    await git(this.dir, ['push', '--quiet', 'origin', `${commit}:refs/heads/${branch}`]);
    await git(this.dir, ['update-ref', `refs/heads/${branch}`, commit]);
  }

  /**
   * Pushes `commit` to `branch` on the remote, rewinding it if need be, but only if the branch is
   * Cadenza's: it does not exist there, or it is at the commit Cadenza last pushed there (recorded at
   * `record`, a ref of this mirror), or it is at `commit` already (a retry whose record was lost).
   * The push is leased on the tip seen (`--force-with-lease`; none = must not exist), so a push by
   * anyone else in between fails the push instead of being overwritten. A branch at any other commit
   * is someone else's and is not touched: `not_owned` with its tip.
   */
  async pushOwned(commit: string, branch: string, record: string): Promise<OwnedPush> {
    const ref = `refs/heads/${branch}`;
    const tip = await this.remoteTip(ref);
    if (tip !== undefined && tip !== commit && tip !== (await this.resolve(record))) return { outcome: 'not_owned', tip };
    if (tip !== commit) {
      await git(this.dir, ['push', '--quiet', `--force-with-lease=${ref}:${tip ?? ''}`, 'origin', `${commit}:${ref}`]);
    }
    await this.setRef(record, commit);
    await this.setRef(ref, commit);
    return { outcome: tip === commit ? 'unchanged' : tip === undefined ? 'created' : 'updated' };
  }

  /** Where `ref` is on the remote now (not in the mirror's last fetch), or undefined when it does not exist. */
  async remoteTip(ref: string): Promise<string | undefined> {
    let out: string;
    try {
      out = await git(this.dir, ['ls-remote', 'origin', ref]);
    } catch (error) {
      throw new GitError(`cannot read ${ref} of ${this.url}: ${(error as Error).message}`);
    }
    for (const line of out.split('\n')) {
      const [sha, name] = line.split('\t');
      if (name === ref && sha) return sha;
    }
    return undefined;
  }

  async setRef(ref: string, commit: string): Promise<void> {
    await git(this.dir, ['update-ref', ref, commit]);
  }

  async deleteRef(ref: string): Promise<void> {
    await git(this.dir, ['update-ref', '-d', ref], { allowFail: true });
  }

  /**
   * Copies a ref of this mirror (a work snapshot under refs/cadenza/) to the remote, replacing what it
   * held, so another host can rebuild from it; with `commit` undefined, deletes it there.
   */
  async publishRef(ref: string, commit: string | undefined): Promise<void> {
    try {
      await git(this.dir, ['push', '--quiet', '--force', 'origin', commit ? `${commit}:${ref}` : `:${ref}`]);
    } catch (error) {
      throw new GitError(`cannot ${commit ? 'push' : 'delete'} ${ref} on ${this.url}: ${(error as Error).message}`);
    }
  }

  /** Fetches one ref from the remote into the same ref here; undefined when the remote has none. */
  async fetchRef(ref: string): Promise<string | undefined> {
    if ((await this.remoteTip(ref)) === undefined) return undefined;
    await git(this.dir, ['fetch', '--quiet', 'origin', `+${ref}:${ref}`]);
    return this.resolve(ref);
  }

  /** A bundle of exactly `commit` (and its history), under `ref` in the bundle. */
  async bundleCommit(commit: string, ref: string): Promise<Buffer> {
    await this.setRef(ref, commit);
    return this.bundle([ref]);
  }

  /**
   * What changed from `base` to `head`, seen by Cadenza's own git: no external diff, no textconv, no
   * configuration or attributes from the agent's repository.
   */
  async evidence(base: string, head: string): Promise<{ diff: string; stat: string; raw: string; log: string }> {
    const [diff, stat, raw, log] = await Promise.all([
      this.plainDiff(['--binary', base, head]),
      this.plainDiff(['--stat=200', base, head]),
      this.rawChanges(base, head),
      git(this.dir, ['log', '--no-color', '--format=%h %s', `${base}..${head}`], { hermetic: true }),
    ]);
    return { diff, stat, raw, log };
  }

  /** The changed paths with modes and status (`git diff --raw -z`), for lib/proof/changes.ts. */
  rawChanges(base: string, head: string): Promise<string> {
    return this.plainDiff(['--raw', '-z', '--no-abbrev', base, head]);
  }

  private plainDiff(args: string[]): Promise<string> {
    return git(this.dir, ['diff', '--no-ext-diff', '--no-textconv', '--no-color', '-M', ...args], { hermetic: true });
  }

  /**
   * Merges `head` into `target` without a work tree (git merge-tree): the merged tree, or the
   * conflicted paths. Nothing of the agent's runs: it is object arithmetic in the mirror.
   */
  async mergeTree(target: string, head: string): Promise<{ tree: string; conflicts: string[] }> {
    const result = await run('git', ['merge-tree', '--write-tree', '--name-only', '--no-messages', target, head], { cwd: this.dir, env: { ...process.env, LC_ALL: 'C', ...HERMETIC } });
    const lines = result.stdout.split('\n').filter(Boolean);
    if (result.code === 0) return { tree: lines[0]!, conflicts: [] };
    if (result.code === 1) return { tree: lines[0]!, conflicts: lines.slice(1) };
    throw new GitError(`git merge-tree ${target} ${head} failed in ${this.dir}: ${result.stderr.trim()}`);
  }

  /** A commit of `tree` with exactly these parents, made by Cadenza. */
  async commitTree(tree: string, parents: string[], message: string): Promise<string> {
    const temp = await mkdtemp(path.join(path.dirname(this.dir), 'message-'));
    try {
      const file = path.join(temp, 'message');
      await writeFile(file, message);
      const identity = { GIT_AUTHOR_NAME: 'Cadenza', GIT_AUTHOR_EMAIL: 'cadenza@cadenza.invalid', GIT_COMMITTER_NAME: 'Cadenza', GIT_COMMITTER_EMAIL: 'cadenza@cadenza.invalid' };
      return await git(this.dir, ['commit-tree', tree, ...parents.flatMap((parent) => ['-p', parent]), '-F', file], { hermetic: true, env: identity });
    } finally {
      await rm(temp, { recursive: true, force: true });
    }
  }

  /** The first parent of `commit` (for a landing's merge commit: the target as it was before). */
  async firstParent(commit: string): Promise<string> {
    return git(this.dir, ['rev-parse', `${commit}^1`], { hermetic: true });
  }

  /**
   * What reverting `commit` against its first parent on top of `onto` gives (`git revert -m 1`, as
   * object arithmetic): merge-tree of `onto` with a commit that holds the first parent's tree on top of
   * `commit`, so `commit` is the merge base. `onto` must contain `commit`.
   */
  async revertTree(commit: string, onto: string): Promise<{ tree: string; conflicts: string[] }> {
    const before = await this.treeOf(await this.firstParent(commit));
    if (onto === commit) return { tree: before, conflicts: [] };
    const undo = await this.commitTree(before, [commit], `Cadenza: undo ${commit}`);
    return this.mergeTree(onto, undo);
  }

  async treeOf(commit: string): Promise<string> {
    return git(this.dir, ['rev-parse', `${commit}^{tree}`]);
  }

  /** The content of `file` at `commit`, or null where it does not exist. */
  async show(commit: string, file: string): Promise<string | null> {
    const result = await run('git', ['cat-file', 'blob', `${commit}:${file}`], { cwd: this.dir, env: { ...process.env, ...HERMETIC } });
    return result.code === 0 ? result.stdout : null;
  }

  /**
   * A commit on top of `head` whose tree is `head`'s with some files replaced: a path mapped to a
   * commit takes that commit's version (or is removed where it has none), one mapped to text gets it.
   */
  async commitWithFiles(head: string, files: Record<string, { from: string } | { text: string }>, message: string): Promise<string> {
    const temp = await mkdtemp(path.join(path.dirname(this.dir), 'index-'));
    try {
      const env = { GIT_INDEX_FILE: path.join(temp, 'index') };
      await git(this.dir, ['read-tree', head], { hermetic: true, env });
      for (const [file, source] of Object.entries(files)) {
        if ('text' in source) {
          const blobFile = path.join(temp, 'blob');
          await writeFile(blobFile, source.text);
          const blob = await git(this.dir, ['hash-object', '-w', '--no-filters', blobFile], { hermetic: true });
          await git(this.dir, ['update-index', '--add', '--cacheinfo', `100644,${blob},${file}`], { hermetic: true, env });
          continue;
        }
        const entry = await git(this.dir, ['ls-tree', source.from, '--', file], { hermetic: true });
        const match = /^(\d+) blob ([0-9a-f]+)\t/.exec(entry);
        if (match) await git(this.dir, ['update-index', '--add', '--cacheinfo', `${match[1]},${match[2]},${file}`], { hermetic: true, env });
        else await git(this.dir, ['update-index', '--force-remove', '--', file], { hermetic: true, env });
      }
      const tree = await git(this.dir, ['write-tree'], { hermetic: true, env });
      return await this.commitTree(tree, [head], message);
    } finally {
      await rm(temp, { recursive: true, force: true });
    }
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
