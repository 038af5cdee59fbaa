/**
 * Headless Chromium for the UI checks: Debian's `chromium` package, installed with apt when missing
 * (tests only; Cadenza itself never needs a browser). CHROMIUM_PATH points at another binary.
 */
import { accessSync, constants } from 'node:fs';
import { aptInstall } from './docker.ts';
import { InfraError } from './log.ts';
import { onPath, run } from './process.ts';

export interface Browser {
  path: string;
  version: string;
  installed: boolean;
}

export async function ensureChromium(): Promise<Browser> {
  const explicit = process.env.CHROMIUM_PATH;
  if (explicit) {
    try {
      accessSync(explicit, constants.X_OK);
    } catch {
      throw new InfraError(`CHROMIUM_PATH=${explicit} is not an executable file.`, 'point CHROMIUM_PATH at a Chromium binary, or unset it to use Debian\'s chromium package.');
    }
    return { path: explicit, version: await versionOf(explicit), installed: false };
  }
  const found = await onPath('chromium');
  if (found) return { path: found, version: await versionOf(found), installed: false };
  if (!(await onPath('apt-get'))) {
    throw new InfraError('Chromium is not installed and there is no apt-get to install it.', 'install Chromium and set CHROMIUM_PATH to its binary.');
  }
  await aptInstall(['chromium']);
  const installed = await onPath('chromium');
  if (!installed) throw new InfraError('apt-get installed chromium, but no chromium binary is on PATH.', 'set CHROMIUM_PATH to the Chromium binary.');
  return { path: installed, version: await versionOf(installed), installed: true };
}

async function versionOf(binary: string): Promise<string> {
  const result = await run(binary, ['--version']);
  return result.stdout.trim() || 'unknown version';
}

/** Flags for a headless Chromium on a machine with no route out: no background connections, no GPU. */
export const HEADLESS_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
];
