/**
 * The Temporal CLI and its dev server: how Cadenza obtains the binary and runs the embedded server.
 */
import { existsSync, accessSync, closeSync, constants, mkdirSync, openSync, readFileSync, statSync, writeFileSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { plaintextSettings, type TemporalSettings } from '../client/connection.ts';
import { CADENZA_SEARCH_ATTRIBUTES } from '../client/search-attributes.ts';
import { InfraError, say } from './log.ts';
import { binDir, stateDir } from './paths.ts';
import { isAlive, onPath, run, sleep, waitFor } from './process.ts';

export const TEMPORAL_CLI_VERSION = '1.5.1';
const GO_MODULE = `github.com/temporalio/cli/cmd/temporal@v${TEMPORAL_CLI_VERSION}`;

/** Cadenza's custom search attributes, registered on the dev server at start (workers add them elsewhere). */
export const SEARCH_ATTRIBUTES: Record<string, string> = Object.fromEntries(CADENZA_SEARCH_ATTRIBUTES.map((attribute) => [attribute.name, attribute.type]));

export interface TemporalCli {
  path: string;
  version: string;
  source: 'TEMPORAL_CLI_PATH' | 'PATH' | 'cache' | 'go install' | 'release archive';
}

/**
 * Finds or obtains the Temporal CLI: TEMPORAL_CLI_PATH, then `temporal` on PATH, then the project-local
 * bin folder, then `go install` (Go >= 1.25), then the official release archive.
 */
export async function ensureTemporalCli(): Promise<TemporalCli> {
  const explicit = process.env.TEMPORAL_CLI_PATH;
  if (explicit) {
    if (!isExecutable(explicit)) {
      throw new InfraError(
        `TEMPORAL_CLI_PATH=${explicit} is not an executable file.`,
        'point TEMPORAL_CLI_PATH at a temporal binary, or unset it so Cadenza finds or builds one itself.',
      );
    }
    return { path: explicit, version: await cliVersion(explicit), source: 'TEMPORAL_CLI_PATH' };
  }
  const local = path.join(binDir, 'temporal');
  if (isExecutable(local)) return { path: local, version: await cliVersion(local), source: 'cache' };
  const onSystemPath = await onPath('temporal');
  if (onSystemPath) return { path: onSystemPath, version: await cliVersion(onSystemPath), source: 'PATH' };

  mkdirSync(binDir, { recursive: true });
  const go = await goVersion();
  if (go && (go.major > 1 || (go.major === 1 && go.minor >= 25))) {
    say(`    building the Temporal CLI v${TEMPORAL_CLI_VERSION} with go ${go.major}.${go.minor} (first time only, a few minutes; progress every 15 s)`);
    // go -v names each package as it compiles it: the count and the latest name are the progress.
    const started = Date.now();
    let compiled = 0;
    let latest = 'fetching modules';
    const ticker = setInterval(() => say(`    ... ${Math.round((Date.now() - started) / 1000)} s: ${compiled} packages compiled (latest: ${latest})`), 15_000);
    const built = await run('go', ['install', '-v', GO_MODULE], {
      env: { ...process.env, GOBIN: binDir },
      onStderrLine: (line) => {
        if (/^go: downloading /.test(line)) latest = line.slice(4);
        else if (!/\s/.test(line.trim())) {
          compiled += 1;
          latest = line.trim();
        }
      },
    }).finally(() => clearInterval(ticker));
    if (built.code !== 0 || !isExecutable(local)) {
      throw new InfraError(
        `go install ${GO_MODULE} failed:\n${built.stderr.trim().split('\n').slice(-8).join('\n')}`,
        'check that the Go module proxy is reachable (GOPROXY), or set TEMPORAL_CLI_PATH to a temporal binary.',
      );
    }
    return { path: local, version: await cliVersion(local), source: 'go install' };
  }
  await downloadRelease(local);
  return { path: local, version: await cliVersion(local), source: 'release archive' };
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function cliVersion(cli: string): Promise<string> {
  const result = await run(cli, ['--version']).catch((error: Error) => ({ code: 1, stdout: '', stderr: error.message }));
  if (result.code !== 0) {
    throw new InfraError(`${cli} --version failed: ${result.stderr.trim()}`, 'make sure the file is a working temporal CLI binary.');
  }
  return result.stdout.trim();
}

async function goVersion(): Promise<{ major: number; minor: number } | undefined> {
  if (!(await onPath('go'))) return undefined;
  const result = await run('go', ['env', 'GOVERSION']);
  const match = /go(\d+)\.(\d+)/.exec(result.stdout);
  return match ? { major: Number(match[1]), minor: Number(match[2]) } : undefined;
}

/** For machines with internet and no Go: the official release archive. */
async function downloadRelease(target: string): Promise<void> {
  const arch = process.arch === 'arm64' ? 'arm64' : 'amd64';
  const url = `https://temporal.download/cli/archive/v${TEMPORAL_CLI_VERSION}?platform=${process.platform}&arch=${arch}`;
  say(`    no Go >= 1.25 found; downloading ${url}`);
  const archive = path.join(binDir, 'temporal.tar.gz');
  try {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    writeFileSync(archive, Buffer.from(await response.arrayBuffer()));
  } catch (error) {
    throw new InfraError(
      `could not download the Temporal CLI (${(error as Error).message}).`,
      'install Go >= 1.25 (Cadenza then builds the CLI with go install), or set TEMPORAL_CLI_PATH to a temporal binary.',
    );
  }
  const unpacked = await run('tar', ['-xzf', archive, '-C', binDir, 'temporal']);
  rmSync(archive, { force: true });
  if (unpacked.code !== 0 || !isExecutable(target)) {
    throw new InfraError(`the Temporal CLI archive did not unpack: ${unpacked.stderr.trim()}`, 'set TEMPORAL_CLI_PATH to a temporal binary.');
  }
}

export interface DevServerOptions {
  cli: string;
  /** Folder holding the database file, the log and the pid file. */
  dir: string;
  ip?: string;
  port: number;
  uiPort: number;
  namespace?: string;
  /** Keep running after this process exits (the `npm start` server); tests keep it attached. */
  detached?: boolean;
  /** Register Cadenza's search attributes at start (default true; false: a server as bare as a new cluster's namespace). */
  searchAttributes?: boolean;
}

export interface DevServer {
  address: string;
  uiUrl: string;
  namespace: string;
  pid: number;
  reused: boolean;
  stop(): Promise<void>;
}

/** True when a Temporal frontend answers on `address` (plaintext), or as the settings say (TLS, API key). */
export async function temporalAnswers(target: string | TemporalSettings, timeoutMs = 1500): Promise<boolean> {
  const settings = typeof target === 'string' ? plaintextSettings(target) : target;
  try {
    const connection = await Connection.connect(settings.connectionOptions({ connectTimeout: timeoutMs }));
    try {
      await connection.workflowService.getSystemInfo({});
      return true;
    } finally {
      await connection.close();
    }
  } catch {
    return false;
  }
}

export function portIsFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/** A port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts `temporal server start-dev` with its database under `dir` and Cadenza's search attributes,
 * and waits until it answers. If a Temporal server already answers on the port, it is reused.
 */
export async function startDevServer(options: DevServerOptions): Promise<DevServer> {
  const ip = options.ip ?? '127.0.0.1';
  const namespace = options.namespace ?? 'default';
  const address = `${ip}:${options.port}`;
  const uiUrl = `http://${ip}:${options.uiPort}`;
  const pidFile = path.join(options.dir, 'temporal.pid');

  if (await temporalAnswers(address)) {
    const pid = Number(existsSync(pidFile) ? readFileSync(pidFile, 'utf8') : 0);
    return { address, uiUrl, namespace, pid, reused: true, stop: () => stopByPid(pid) };
  }
  mkdirSync(options.dir, { recursive: true });
  const logFile = path.join(options.dir, 'temporal.log');
  // The dev server binds more ports than the two we choose (HTTP, metrics, and internal ones it picks
  // itself). Another program can take one of them between choosing and binding; such a start fails
  // with "address already in use" and is tried again, with new ports for all but frontend and UI.
  for (let attempt = 1; ; attempt++) {
    await requireFreePorts(options, ip);
    const logStart = existsSync(logFile) ? statSync(logFile).size : 0;
    const args = [
      'server', 'start-dev',
      '--ip', ip,
      '--port', String(options.port),
      '--ui-port', String(options.uiPort),
      '--http-port', String(await freePort()),
      '--metrics-port', String(await freePort()),
      '--db-filename', path.join(options.dir, 'temporal.db'),
      '--namespace', namespace,
      '--log-level', 'warn',
      ...(options.searchAttributes === false ? [] : Object.entries(SEARCH_ATTRIBUTES).flatMap(([name, type]) => ['--search-attribute', `${name}=${type}`])),
    ];
    const log = openSync(logFile, 'a');
    const child = spawn(options.cli, args, { detached: options.detached ?? false, stdio: ['ignore', log, log] });
    closeSync(log);
    if (options.detached) child.unref();
    let exited: number | null = null;
    child.on('exit', (code) => (exited = code ?? 1));
    const pid = child.pid ?? 0;
    writeFileSync(pidFile, String(pid));

    const up = await waitFor(() => temporalAnswers(address, 1000), 60_000, 300, () => exited !== null);
    if (up) return { address, uiUrl, namespace, pid, reused: false, stop: () => stopByPid(pid) };
    child.kill('SIGKILL');
    const output = readFileSync(logFile).subarray(logStart).toString('utf8');
    if (exited !== null && PORT_CLASH.test(output) && attempt < START_ATTEMPTS) {
      say(`    the Temporal dev server lost a port to another program while starting (attempt ${attempt} of ${START_ATTEMPTS}); trying again`);
      continue;
    }
    throw new InfraError(
      `the Temporal dev server did not come up on ${address}${exited !== null ? ` (it exited with code ${exited})` : ''}.\n${whatTheLogSays(output)}`,
      `read ${logFile}; if the database file is damaged, move ${path.join(options.dir, 'temporal.db')} away and start again.`,
    );
  }
}

const START_ATTEMPTS = 3;
const PORT_CLASH = /address already in use/;

/** The frontend and UI ports are the caller's choice: if a program holds one, say so rather than retry. */
async function requireFreePorts(options: DevServerOptions, ip: string): Promise<void> {
  for (const [what, port] of [
    ['Temporal frontend', options.port],
    ['Temporal Web UI', options.uiPort],
  ] as const) {
    if (!(await portIsFree(port, ip))) {
      throw new InfraError(
        `port ${port} (${what}) is already in use by another program, and no Temporal server answers there.`,
        `stop the program on port ${port} (see: ss -ltnp 'sport = :${port}'), or choose other ports with CADENZA_TEMPORAL_PORT / CADENZA_TEMPORAL_UI_PORT.`,
      );
    }
  }
}

/** The log's own error lines (a Go panic puts them above a long stack trace), then its last lines. */
function whatTheLogSays(output: string): string {
  const lines = output.trim().split('\n');
  const errors = lines.filter((line) => /^panic:|^Error:|level=(ERROR|FATAL)|"level":"(error|fatal)"|address already in use/.test(line)).slice(0, 5);
  const tail = lines.slice(-10);
  return [...(errors.length ? ['Errors in the log:', ...errors] : []), 'Last log lines:', ...tail].join('\n');
}

/** Stops the server started from `dir` (SIGTERM, then SIGKILL after 10 s). */
export async function stopDevServer(dir: string): Promise<boolean> {
  const pidFile = path.join(dir, 'temporal.pid');
  if (!existsSync(pidFile)) return false;
  const pid = Number(readFileSync(pidFile, 'utf8'));
  const wasRunning = pid > 0 && isAlive(pid);
  await stopByPid(pid);
  rmSync(pidFile, { force: true });
  return wasRunning;
}

async function stopByPid(pid: number): Promise<void> {
  if (!pid || !isAlive(pid)) return;
  process.kill(pid, 'SIGTERM');
  if (await waitFor(async () => !isAlive(pid), 10_000, 100)) return;
  process.kill(pid, 'SIGKILL');
  await sleep(100);
}

/** Where `npm start` runs its server, overridable for a second install on one machine. */
export function defaultServerOptions(cli: string): DevServerOptions {
  return {
    cli,
    dir: path.join(stateDir(), 'temporal'),
    port: Number(process.env.CADENZA_TEMPORAL_PORT ?? 7233),
    uiPort: Number(process.env.CADENZA_TEMPORAL_UI_PORT ?? 8233),
    // A namespace other than default (CADENZA_NAMESPACE) is created with the server.
    namespace: process.env.CADENZA_NAMESPACE?.trim() || undefined,
    detached: true,
  };
}
