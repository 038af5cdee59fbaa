/**
 * Cadenza pushes only to branches it owns (RepoMirror.pushOwned), on real git: a bare remote, the
 * host mirror of it, and a person's clone pushing to the same remote.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { git, RepoMirror } from '../../lib/git.ts';

const PERSON = { GIT_AUTHOR_NAME: 'Alice', GIT_AUTHOR_EMAIL: 'alice@example.invalid', GIT_COMMITTER_NAME: 'Alice', GIT_COMMITTER_EMAIL: 'alice@example.invalid' };
const RECORD = 'refs/cadenza/run-1/pushed/feature/x';

let root: string;
let remote: string;
let clone: string;
let mirror: RepoMirror;
let base: string;

beforeEach(async () => {
  root = mkdtempSync(path.join(tmpdir(), 'cadenza-push-owned-'));
  remote = path.join(root, 'remote.git');
  clone = path.join(root, 'clone');
  await git(root, ['init', '--quiet', '--bare', '-b', 'main', remote]);
  await git(root, ['clone', '--quiet', remote, clone]);
  base = await personCommits('main', 'README.md', 'hello\n');
  mirror = new RepoMirror(path.join(root, 'mirrors'), remote);
  await mirror.refresh();
});

afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

/** A person commits `file` on `branch` (from main's tip when the branch is new) and pushes it. */
async function personCommits(branch: string, file: string, text: string): Promise<string> {
  await git(clone, ['fetch', '--quiet', 'origin']);
  const tip = async (name: string) => git(clone, ['rev-parse', '--verify', '--quiet', `refs/remotes/origin/${name}`], { allowFail: true });
  const start = (await tip(branch)) || (await tip('main'));
  if (start) await git(clone, ['checkout', '--quiet', '--detach', start]);
  writeFileSync(path.join(clone, file), text);
  await git(clone, ['add', file]);
  await git(clone, ['commit', '--quiet', '-m', `person: ${file}`], { env: PERSON });
  await git(clone, ['push', '--quiet', 'origin', `HEAD:refs/heads/${branch}`]);
  return git(clone, ['rev-parse', 'HEAD']);
}

/** A commit Cadenza makes in its mirror on top of `parent`. */
async function cadenzaCommit(parent: string, message: string): Promise<string> {
  return mirror.commitTree(await mirror.treeOf(parent), [parent], message);
}

const remoteTip = (branch: string) => git(remote, ['rev-parse', '--verify', '--quiet', `refs/heads/${branch}`], { allowFail: true });

describe('RepoMirror.pushOwned', () => {
  it('creates a branch that does not exist, records it, and a retry of the same push changes nothing', async () => {
    const work = await cadenzaCommit(base, 'work');
    expect(await mirror.pushOwned(work, 'feature/x', RECORD)).toEqual({ outcome: 'created' });
    expect(await remoteTip('feature/x')).toBe(work);
    expect(await mirror.resolve(RECORD)).toBe(work);
    expect(await mirror.pushOwned(work, 'feature/x', RECORD)).toEqual({ outcome: 'unchanged' });
    expect(await remoteTip('feature/x')).toBe(work);
  });

  it('moves its own branch anywhere, also backwards (a new run starts from the base again)', async () => {
    const first = await cadenzaCommit(base, 'round 1');
    await mirror.pushOwned(first, 'feature/x', RECORD);
    const rewritten = await cadenzaCommit(base, 'run 2');
    expect(await mirror.pushOwned(rewritten, 'feature/x', RECORD)).toEqual({ outcome: 'updated' });
    expect(await remoteTip('feature/x')).toBe(rewritten);
    expect(await mirror.resolve(RECORD)).toBe(rewritten);
  });

  it('leaves a person\'s branch alone', async () => {
    const theirs = await personCommits('feature/x', 'notes.md', 'my work\n');
    const work = await cadenzaCommit(base, 'work');
    expect(await mirror.pushOwned(work, 'feature/x', RECORD)).toEqual({ outcome: 'not_owned', tip: theirs });
    expect(await remoteTip('feature/x')).toBe(theirs);
    expect(await mirror.resolve(RECORD)).toBeUndefined();
  });

  it('a branch Cadenza pushed stops being its own once a person pushes to it', async () => {
    const first = await cadenzaCommit(base, 'work');
    await mirror.pushOwned(first, 'feature/x', RECORD);
    const theirs = await personCommits('feature/x', 'review.md', 'a fix on top\n');
    const next = await cadenzaCommit(base, 'another round');
    expect(await mirror.pushOwned(next, 'feature/x', RECORD)).toEqual({ outcome: 'not_owned', tip: theirs });
    expect(await remoteTip('feature/x')).toBe(theirs);
  });

  it('a push that went through but was not recorded (the worker died) is found on retry', async () => {
    const work = await cadenzaCommit(base, 'work');
    await mirror.pushOwned(work, 'feature/x', RECORD);
    await mirror.deleteRef(RECORD);
    expect(await mirror.pushOwned(work, 'feature/x', RECORD)).toEqual({ outcome: 'unchanged' });
    expect(await mirror.resolve(RECORD)).toBe(work);
  });

  it('is leased on the tip it saw: a person\'s push in between is not overwritten', async () => {
    const first = await cadenzaCommit(base, 'work');
    await mirror.pushOwned(first, 'feature/x', RECORD);
    // The ownership check sees Cadenza's commit; by the time of the push a person's is there.
    const stale = new RepoMirror(path.join(root, 'mirrors'), remote);
    stale.remoteTip = async () => first;
    const theirs = await personCommits('feature/x', 'race.md', 'mine\n');
    const next = await cadenzaCommit(base, 'another round');
    await expect(stale.pushOwned(next, 'feature/x', RECORD)).rejects.toThrow(/stale info|rejected/);
    expect(await remoteTip('feature/x')).toBe(theirs);
    expect(await mirror.resolve(RECORD)).toBe(first);

    // "Must not exist" is leased too.
    const absent = new RepoMirror(path.join(root, 'mirrors'), remote);
    absent.remoteTip = async () => undefined;
    const other = await personCommits('feature/y', 'y.md', 'y\n');
    await expect(absent.pushOwned(next, 'feature/y', 'refs/cadenza/run-1/pushed/feature/y')).rejects.toThrow(/stale info|rejected/);
    expect(await remoteTip('feature/y')).toBe(other);
  });
});
