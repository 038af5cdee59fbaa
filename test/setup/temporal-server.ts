/**
 * One real Temporal dev server per test run, from the CLI binary infra obtained, on free ports and
 * with a throw-away database. Tests reach it through `inject('temporalAddress')`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { ensureTemporalCli, freePort, startDevServer } from '../../infra/temporal.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    temporalUiUrl: string;
    temporalCli: string;
  }
}

export default async function setup(project: TestProject) {
  const cli = await ensureTemporalCli();
  const dir = mkdtempSync(path.join(tmpdir(), 'cadenza-test-temporal-'));
  const server = await startDevServer({ cli: cli.path, dir, port: await freePort(), uiPort: await freePort() });
  project.provide('temporalAddress', server.address);
  project.provide('temporalUiUrl', server.uiUrl);
  project.provide('temporalCli', cli.path);
  return async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  };
}
