import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** The checkout this code runs from. */
export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Where Cadenza keeps its local state (server database, logs, artifacts, demo data). */
export function stateDir(): string {
  return path.resolve(process.env.CADENZA_STATE_DIR ?? path.join(projectRoot, '.cadenza'));
}

/** Project-local folder for tools infra obtains (the Temporal CLI). */
export const binDir = path.join(projectRoot, '.cadenza', 'bin');
