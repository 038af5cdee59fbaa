import { describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { run } from '../../infra/process.ts';
import { projectRoot } from '../../infra/paths.ts';

/** Runs an infra command the way a user would and returns what they would see. */
async function infra(args: string[], env: Record<string, string>) {
  const result = await run(path.join(projectRoot, 'node_modules/.bin/tsx'), ['infra/setup.ts', ...args], {
    cwd: projectRoot,
    env: { ...process.env, ...env },
  });
  return { code: result.code, output: result.stdout + result.stderr };
}

function expectOneClearMessage(output: string) {
  expect(output).toMatch(/what to do: /);
  expect(output).not.toMatch(/\n\s+at .+\(.*:\d+:\d+\)/); // no stack trace
}

describe('infra refuses bad input with one clear message', () => {
  it('an unknown TEMPORAL_CLI_PATH', async () => {
    const { code, output } = await infra(['temporal-cli'], { TEMPORAL_CLI_PATH: '/nonexistent/temporal' });
    expect(code).toBe(1);
    expect(output).toContain('TEMPORAL_CLI_PATH=/nonexistent/temporal is not an executable file');
    expectOneClearMessage(output);
  });

  it('a Docker engine that cannot start', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cadenza-dockerd-'));
    const brokenDockerd = path.join(dir, 'dockerd');
    writeFileSync(brokenDockerd, '#!/bin/sh\necho "failed to start daemon: pretend the storage driver is broken" >&2\nexit 1\n');
    chmodSync(brokenDockerd, 0o755);
    const { code, output } = await infra(['docker'], {
      DOCKER_HOST: `unix://${dir}/docker.sock`,
      CADENZA_DOCKERD: brokenDockerd,
      CADENZA_STATE_DIR: dir,
    });
    expect(code).toBe(1);
    expect(output).toContain('the Docker engine did not start');
    expect(output).toContain('pretend the storage driver is broken');
    expectOneClearMessage(output);
  });

  it('a Temporal port already in use by another program', async () => {
    const squatter = net.createServer();
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    const port = (squatter.address() as net.AddressInfo).port;
    try {
      const dir = mkdtempSync(path.join(tmpdir(), 'cadenza-port-'));
      const { code, output } = await infra(['server', 'start'], { CADENZA_TEMPORAL_PORT: String(port), CADENZA_STATE_DIR: dir });
      expect(code).toBe(1);
      expect(output).toContain(`port ${port} (Temporal frontend) is already in use by another program`);
      expectOneClearMessage(output);
    } finally {
      squatter.close();
    }
  });
});
