/**
 * S3-compatible object storage for the shared artifact store: versitygw (a real S3 gateway on a POSIX
 * folder), pinned, built from its Go module into the project-local bin folder, and started on a free
 * loopback port with root credentials generated per start (never written to disk by Cadenza, passed
 * to the server in its environment, not its command line).
 *
 *   ensureVersitygw()      the binary: CADENZA_VERSITYGW_PATH, the cached build, or `go install`
 *   startS3Server({ dir }) a running server with one bucket; stop() ends it
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, closeSync, constants, existsSync, mkdirSync, openSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { S3ArtifactStore } from '../lib/artifacts-s3.ts';
import { InfraError, say } from './log.ts';
import { binDir } from './paths.ts';
import { onPath, run, waitFor } from './process.ts';
import { freePort } from './temporal.ts';

export const VERSITYGW_VERSION = '1.8.0';
const GO_PACKAGE = 'github.com/versity/versitygw/cmd/versitygw';
/** versitygw's go.mod asks for this Go. */
const GO_NEEDED = { major: 1, minor: 25 };

export interface Versitygw {
  path: string;
  version: string;
  source: 'CADENZA_VERSITYGW_PATH' | 'cache' | 'go install';
}

/**
 * Finds or builds versitygw v1.8.0: CADENZA_VERSITYGW_PATH, then the build in the project-local bin
 * folder (if it is that version), then `go install` of the pinned module (about a minute) with its
 * version stamped in, so `versitygw --version` says which it is.
 */
export async function ensureVersitygw(): Promise<Versitygw> {
  const explicit = process.env.CADENZA_VERSITYGW_PATH;
  if (explicit) {
    if (!isExecutable(explicit)) {
      throw new InfraError(`CADENZA_VERSITYGW_PATH=${explicit} is not an executable file.`, 'point it at a versitygw binary, or unset it so Cadenza builds the pinned one.');
    }
    return { path: explicit, version: await versionOf(explicit), source: 'CADENZA_VERSITYGW_PATH' };
  }
  const local = path.join(binDir, 'versitygw');
  if (isExecutable(local)) {
    const version = await versionOf(local).catch(() => '');
    if (version === `v${VERSITYGW_VERSION}`) return { path: local, version, source: 'cache' };
  }
  const go = await goVersion();
  if (!go || go.major < GO_NEEDED.major || (go.major === GO_NEEDED.major && go.minor < GO_NEEDED.minor)) {
    throw new InfraError(
      `versitygw v${VERSITYGW_VERSION} (the S3 server the shared-store tests run) is built with Go >= ${GO_NEEDED.major}.${GO_NEEDED.minor}, and ${go ? `go ${go.major}.${go.minor}` : 'no go'} is on PATH.`,
      `install Go >= ${GO_NEEDED.major}.${GO_NEEDED.minor}, or set CADENZA_VERSITYGW_PATH to a versitygw v${VERSITYGW_VERSION} binary.`,
    );
  }
  mkdirSync(binDir, { recursive: true });
  say(`    building versitygw v${VERSITYGW_VERSION} with go ${go.major}.${go.minor} (first time only, about a minute; progress every 15 s)`);
  const started = Date.now();
  let compiled = 0;
  let latest = 'fetching modules';
  const ticker = setInterval(() => say(`    ... ${Math.round((Date.now() - started) / 1000)} s: ${compiled} packages compiled (latest: ${latest})`), 15_000);
  const built = await run('go', ['install', '-v', `-ldflags=-X main.Version=v${VERSITYGW_VERSION}`, `${GO_PACKAGE}@v${VERSITYGW_VERSION}`], {
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
      `go install ${GO_PACKAGE}@v${VERSITYGW_VERSION} failed:\n${built.stderr.trim().split('\n').slice(-8).join('\n')}`,
      'check that the Go module proxy is reachable (GOPROXY), or set CADENZA_VERSITYGW_PATH to a versitygw binary.',
    );
  }
  return { path: local, version: await versionOf(local), source: 'go install' };
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** `versitygw --version` prints "Version  : v1.8.0" (stamped at build; "git" when built without it). */
async function versionOf(binary: string): Promise<string> {
  const result = await run(binary, ['--version']).catch((error: Error) => ({ code: 1, stdout: '', stderr: error.message }));
  const version = /^Version\s*:\s*(\S+)/m.exec(result.stdout)?.[1];
  if (result.code !== 0 || !version) throw new InfraError(`${binary} --version failed: ${result.stderr.trim() || result.stdout.trim()}`, 'make sure the file is a working versitygw binary.');
  return version;
}

async function goVersion(): Promise<{ major: number; minor: number } | undefined> {
  if (!(await onPath('go'))) return undefined;
  const result = await run('go', ['env', 'GOVERSION']);
  const match = /go(\d+)\.(\d+)/.exec(result.stdout);
  return match ? { major: Number(match[1]), minor: Number(match[2]) } : undefined;
}

export interface S3Server {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  bucket: string;
  region: string;
  /** The root credentials of this start (random; the server has no others). */
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** The folder the objects live in (one subfolder per bucket). */
  dataDir: string;
  pid: number;
  /**
   * A worker's environment for this server: CADENZA_STORE=s3://BUCKET/PREFIX, CADENZA_S3_ENDPOINT and
   * the credentials (lib/artifacts-config.ts reads them).
   */
  env(prefix?: string): NodeJS.ProcessEnv;
  /** Ends the server (SIGTERM, then SIGKILL after 10 s); the folder stays for the caller to remove. */
  stop(): Promise<void>;
}

export interface S3ServerOptions {
  /** Holds the data folder and the server's log. */
  dir: string;
  /** The bucket created at start (default: cadenza). */
  bucket?: string;
  /** A versitygw binary (default: ensureVersitygw()). */
  binary?: string;
}

const START_ATTEMPTS = 3;

/** Starts versitygw on a free loopback port with a POSIX folder backend, creates the bucket, and waits until it answers. */
export async function startS3Server(options: S3ServerOptions): Promise<S3Server> {
  const binary = options.binary ?? (await ensureVersitygw()).path;
  const bucket = options.bucket ?? 'cadenza';
  const region = 'us-east-1';
  const dataDir = path.join(options.dir, 'data');
  const logFile = path.join(options.dir, 'versitygw.log');
  mkdirSync(dataDir, { recursive: true });
  const credentials = { accessKeyId: `cadenza${randomBytes(8).toString('hex')}`, secretAccessKey: randomBytes(30).toString('base64url') };

  // The port is free when chosen; another program can take it before versitygw binds it, and such a
  // start is tried again on another port.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const endpoint = `http://127.0.0.1:${port}`;
    const logStart = existsSync(logFile) ? statSync(logFile).size : 0;
    const log = openSync(logFile, 'a');
    const child = spawn(binary, ['--port', `127.0.0.1:${port}`, '--region', region, '--quiet', '--health', '/health', 'posix', dataDir], {
      env: { ...process.env, ROOT_ACCESS_KEY_ID: credentials.accessKeyId, ROOT_SECRET_ACCESS_KEY: credentials.secretAccessKey },
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    let exited: number | null = null;
    const gone = new Promise<void>((resolve) => child.on('exit', (code) => {
      exited = code ?? 1;
      resolve();
    }));
    child.on('error', () => undefined);
    const health = async () => (await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) })).ok;
    const up = await waitFor(health, 30_000, 100, () => exited !== null);
    const stop = async () => {
      if (exited !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await gone.finally(() => clearTimeout(timer));
    };
    if (!up) {
      await stop();
      const output = readFileSync(logFile).subarray(logStart).toString('utf8');
      if (/address already in use/.test(output) && attempt < START_ATTEMPTS) {
        say(`    versitygw lost its port to another program while starting (attempt ${attempt} of ${START_ATTEMPTS}); trying again`);
        continue;
      }
      throw new InfraError(
        `versitygw did not come up on ${endpoint}${exited !== null ? ` (it exited with code ${exited})` : ''}. Its log says:\n${output.trim().split('\n').slice(-10).join('\n')}`,
        `read ${logFile}; versitygw needs a folder on a filesystem with extended attributes (${dataDir}).`,
      );
    }
    const store = new S3ArtifactStore({ bucket, prefix: '', endpoint, region, credentials });
    try {
      await store.createBucket();
    } catch (error) {
      await stop();
      throw error;
    } finally {
      store.close();
    }
    return {
      endpoint,
      bucket,
      region,
      credentials,
      dataDir,
      pid: child.pid ?? 0,
      env: (prefix = '') => ({
        CADENZA_STORE: `s3://${bucket}${prefix ? `/${prefix.replace(/^\/+|\/+$/g, '')}` : ''}`,
        CADENZA_S3_ENDPOINT: endpoint,
        CADENZA_S3_REGION: region,
        AWS_ACCESS_KEY_ID: credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      }),
      stop,
    };
  }
}
