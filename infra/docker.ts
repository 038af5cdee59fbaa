/**
 * The Docker engine: use whatever DOCKER_HOST or the default socket reaches; where none answers and we
 * are root, install Debian's docker.io and start dockerd without a bridge (sandboxes need no network).
 */
import { existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import path from 'node:path';
import Docker from 'dockerode';
import { InfraError, say } from './log.ts';
import { stateDir } from './paths.ts';
import { onPath, run, waitFor } from './process.ts';

const DEFAULT_SOCKET = '/var/run/docker.sock';

/** The engine address in the form the user would recognise. */
export function dockerHost(): string {
  return process.env.DOCKER_HOST ?? `unix://${DEFAULT_SOCKET}`;
}

/** A dockerode client for the configured engine (dockerode reads DOCKER_HOST itself). */
export function dockerClient(): Docker {
  return new Docker();
}

export async function engineAnswers(docker = dockerClient()): Promise<boolean> {
  try {
    await docker.ping();
    return true;
  } catch {
    return false;
  }
}

export interface EngineInfo {
  host: string;
  version: string;
  started: boolean;
}

export async function ensureDockerEngine(): Promise<EngineInfo> {
  const host = dockerHost();
  const docker = dockerClient();
  if (await engineAnswers(docker)) return { host, version: await engineVersion(docker), started: false };

  // We can only start an engine on a local unix socket.
  const socket = host.startsWith('unix://') ? host.slice('unix://'.length) : undefined;
  if (!socket) {
    throw new InfraError(
      `no Docker engine answers at DOCKER_HOST=${host}.`,
      'start that engine, or unset DOCKER_HOST so Cadenza uses (or starts) the local one.',
    );
  }
  if (process.getuid?.() !== 0) {
    throw new InfraError(
      `no Docker engine answers at ${host}, and starting one needs root.`,
      'start Docker (e.g. `sudo systemctl start docker`), or run this as root so Cadenza starts dockerd itself.',
    );
  }

  const dockerd = process.env.CADENZA_DOCKERD ?? (await onPath('dockerd')) ?? (await installDockerIo());
  const logDir = path.join(stateDir(), 'docker');
  mkdirSync(logDir, { recursive: true });
  const logFile = path.join(logDir, 'dockerd.log');
  const args = ['--bridge=none', '--iptables=false', '--ip-masq=false', '-H', `unix://${socket}`];
  if (socket !== DEFAULT_SOCKET) args.push('--pidfile', path.join(logDir, 'dockerd.pid'), '--exec-root', path.join(logDir, 'exec'));
  say(`    starting ${dockerd} ${args.join(' ')} (log: ${logFile})`);
  const log = openSync(logFile, 'a');
  const child = spawn(dockerd, args, { detached: true, stdio: ['ignore', log, log] });
  let exitCode: number | null = null;
  child.on('exit', (code) => (exitCode = code ?? 1));
  child.on('error', () => (exitCode = 127));
  child.unref();

  const up = await waitFor(() => engineAnswers(docker), 60_000, 250, () => exitCode !== null);
  if (!up) {
    if (exitCode === null) child.kill('SIGKILL');
    const tail = existsSync(logFile) ? readFileSync(logFile, 'utf8').trim().split('\n').slice(-6).join('\n') : '';
    throw new InfraError(
      `the Docker engine did not start${exitCode !== null ? ` (${dockerd} exited with code ${exitCode})` : ' within 60 s'}. Last log lines:\n${tail}`,
      `fix the cause in ${logFile}, or point DOCKER_HOST at a running Docker engine.`,
    );
  }
  return { host, version: await engineVersion(docker), started: true };
}

async function engineVersion(docker: Docker): Promise<string> {
  const version = await docker.version();
  return `${version.Version} (API ${version.ApiVersion})`;
}

async function installDockerIo(): Promise<string> {
  if (!(await onPath('apt-get'))) {
    throw new InfraError('no Docker engine is running and dockerd is not installed.', 'install Docker for your system and start it.');
  }
  say("    installing Debian's docker.io package (first time only)");
  await aptInstall(['docker.io']);
  const dockerd = await onPath('dockerd');
  if (!dockerd) throw new InfraError('docker.io installed but dockerd is not on PATH.', 'check the docker.io package installation.');
  return dockerd;
}

/** apt-get install, refreshing the package lists once if the first try cannot find the package. */
export async function aptInstall(packages: string[]): Promise<void> {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => run('apt-get', ['install', '-y', '--no-install-recommends', ...packages], { env });
  let result = await install();
  if (result.code !== 0) {
    await run('apt-get', ['update'], { env });
    result = await install();
  }
  if (result.code !== 0) {
    throw new InfraError(
      `apt-get install ${packages.join(' ')} failed:\n${result.stderr.trim().split('\n').slice(-5).join('\n')}`,
      'check that the Debian package mirror is reachable, then run this again.',
    );
  }
}
