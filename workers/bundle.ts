/**
 * The workflow bundle, built once and reused: `npm run setup` (or the first worker that finds none)
 * writes it to .cadenza/build/, and every later worker start loads it instead of bundling again, as
 * long as the workflow sources it was built from are unchanged. A stale or missing bundle is rebuilt.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode, type Logger, type WorkflowBundle } from '@temporalio/worker';
import { projectRoot } from '../infra/paths.ts';

export const workflowsPath = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

/** Where the prebuilt bundle lives; CADENZA_WORKFLOW_BUNDLE moves it. */
export function bundleFile(): string {
  return path.resolve(process.env.CADENZA_WORKFLOW_BUNDLE ?? path.join(projectRoot, '.cadenza', 'build', 'workflow-bundle.js'));
}

/** Everything workflow code can import from this repository, and the SDK version that bundles it. */
const SOURCE_DIRS = ['workflows', 'lib'];

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(entries.map(async (entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  }));
  return nested.flat();
}

/** A fingerprint of the sources a bundle is built from: any change to them means a new bundle. */
export async function workflowSourceHash(): Promise<string> {
  const hash = createHash('sha256');
  const sdk = JSON.parse(await readFile(path.join(projectRoot, 'node_modules', '@temporalio', 'workflow', 'package.json'), 'utf8')) as { version: string };
  hash.update(`@temporalio/workflow ${sdk.version}\n`);
  const files = (await Promise.all(SOURCE_DIRS.map((dir) => sourceFiles(path.join(projectRoot, dir))))).flat().sort();
  for (const file of files) {
    hash.update(`${path.relative(projectRoot, file)}\n`);
    hash.update(await readFile(file));
  }
  return hash.digest('hex');
}

export interface LoadedBundle {
  bundle: WorkflowBundle;
  file: string;
  /** True when this call had to bundle (nothing prebuilt, or the sources changed since). */
  built: boolean;
}

/** The prebuilt bundle when it matches the sources; otherwise bundles now and saves it for next time. */
export async function loadWorkflowBundle(logger?: Logger): Promise<LoadedBundle> {
  const file = bundleFile();
  const hashFile = `${file}.sha256`;
  const sources = await workflowSourceHash();
  const builtFrom = await readFile(hashFile, 'utf8').catch(() => null);
  if (builtFrom?.trim() === sources) {
    const code = await readFile(file, 'utf8').catch(() => null);
    if (code) return { bundle: { code }, file, built: false };
  }
  const { code } = await bundleWorkflowCode({ workflowsPath, logger });
  // Written beside and renamed, so a worker starting at the same moment never reads half a bundle.
  await mkdir(path.dirname(file), { recursive: true });
  const partial = `${file}.${process.pid}.partial`;
  await writeFile(partial, code);
  await rename(partial, file);
  await writeFile(`${hashFile}.${process.pid}.partial`, sources);
  await rename(`${hashFile}.${process.pid}.partial`, hashFile);
  return { bundle: { code }, file, built: true };
}
