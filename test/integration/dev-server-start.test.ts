/**
 * Starting the dev server when another program takes one of its ports mid-start: the CLI binds more
 * ports than the frontend and UI (HTTP, metrics, internal ones it picks), and loses such a race with
 * "address already in use". The start is tried again, and only an unrelated failure is reported.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { freePort, startDevServer, stopDevServer, temporalAnswers } from '../../infra/temporal.ts';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) {
    await stopDevServer(dir);
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A stand-in for the CLI that fails its first `failures` starts the given way, then runs the real one. */
function flakyCli(dir: string, failures: number, failWith: string): string {
  const script = path.join(dir, 'temporal');
  const count = path.join(dir, 'starts');
  writeFileSync(script, [
    '#!/bin/sh',
    `n=$(cat "${count}" 2>/dev/null || echo 0); echo $((n + 1)) > "${count}"`,
    `if [ "$n" -lt ${failures} ]; then printf '%s\\n' "${failWith}" 'goroutine 1 [running]:' 'main.main()' >&2; exit 2; fi`,
    `exec "${inject('temporalCli')}" "$@"`,
  ].join('\n'));
  chmodSync(script, 0o755);
  return script;
}

describe('starting the Temporal dev server', () => {
  it('tries again when it lost a port to another program while starting, and comes up', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cadenza-start-'));
    dirs.push(dir);
    const cli = flakyCli(dir, 2, 'panic: listen tcp 127.0.0.1:41234: bind: address already in use');
    const server = await startDevServer({ cli, dir, port: await freePort(), uiPort: await freePort() });
    expect(server.reused).toBe(false);
    expect(await temporalAnswers(server.address)).toBe(true);
  }, 120_000);

  it('reports any other early exit at once, with the error line from above the stack trace', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cadenza-start-'));
    dirs.push(dir);
    const cli = flakyCli(dir, 5, 'panic: unable to open database file: out of memory (14)');
    const error = await startDevServer({ cli, dir, port: await freePort(), uiPort: await freePort() }).then(() => null, (e: Error) => e);
    expect(error?.message).toContain('(it exited with code 2)');
    expect(error?.message).toContain('Errors in the log:\npanic: unable to open database file: out of memory (14)');
    expect(readFileSync(path.join(dir, 'starts'), 'utf8').trim()).toBe('1'); // not tried again
  }, 60_000);
});
