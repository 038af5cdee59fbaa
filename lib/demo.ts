/**
 * The demo that `npm start` runs: the textkit repository as a bare git remote, its issues in a local
 * tracker folder, the scripted model's scripts and the demo WORKFLOW.md, all under one folder.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { InfraError } from '../infra/log.ts';
import { projectRoot } from '../infra/paths.ts';
import { run } from '../infra/process.ts';

export interface SeededDemo {
  /** The folder holding remote.git, issues/, scripts/ and WORKFLOW.md. */
  dir: string;
  workflowFile: string;
  remote: string;
  /** False when an earlier seed was found and kept (issue state and landed commits stay). */
  seeded: boolean;
}

const demoSource = path.join(projectRoot, 'demo');

async function git(cwd: string, args: string[]): Promise<void> {
  const result = await run('git', args, { cwd });
  if (result.code !== 0) {
    throw new InfraError(`git ${args.join(' ')} failed in ${cwd}: ${result.stderr.trim()}`, 'check that git is installed and the state folder is writable.');
  }
}

/**
 * Seeds the demo into `targetDir`: demo/repo committed on `main` and cloned bare to remote.git, and
 * copies of demo/issues, demo/scripts and demo/WORKFLOW.md. Idempotent: when remote.git is already
 * there, nothing is touched.
 */
export async function seedDemo(targetDir: string): Promise<SeededDemo> {
  const dir = path.resolve(targetDir);
  const result = { dir, workflowFile: path.join(dir, 'WORKFLOW.md'), remote: path.join(dir, 'remote.git') };
  if (existsSync(result.remote)) return { ...result, seeded: false };

  mkdirSync(dir, { recursive: true });
  const work = mkdtempSync(path.join(dir, '.seed-'));
  const staged = path.join(dir, '.remote.git.partial');
  try {
    cpSync(path.join(demoSource, 'repo'), work, { recursive: true });
    await git(work, ['init', '-q', '-b', 'main']);
    await git(work, ['add', '-A']);
    await git(work, ['-c', 'user.name=Cadenza demo', '-c', 'user.email=demo@cadenza.invalid', 'commit', '-q', '-m', 'textkit: initial import']);
    rmSync(staged, { recursive: true, force: true });
    await git(dir, ['clone', '-q', '--bare', work, staged]);
    for (const name of ['issues', 'scripts']) {
      rmSync(path.join(dir, name), { recursive: true, force: true });
      cpSync(path.join(demoSource, name), path.join(dir, name), { recursive: true });
    }
    cpSync(path.join(demoSource, 'WORKFLOW.md'), result.workflowFile);
    // remote.git appears last, so an interrupted seed is redone rather than reused half-made.
    renameSync(staged, result.remote);
  } finally {
    rmSync(work, { recursive: true, force: true });
    rmSync(staged, { recursive: true, force: true });
  }
  return { ...result, seeded: true };
}
