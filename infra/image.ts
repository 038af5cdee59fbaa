/**
 * The sandbox image, built without pulling anything: debootstrap a Debian minbase with git, Node.js,
 * npm and Python (with venv), `docker import` it, then a small build on top (non-root user, workspace
 * folder, the pinned agent CLIs infra/agents.ts obtained at /opt/cadenza/bin).
 */
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { spawn } from 'node:child_process';
import path from 'node:path';
import type Docker from 'dockerode';
import { pack, type Pack } from 'tar-stream';
import { ensureAgentClis, type AgentBinary, type AgentClis } from './agents.ts';
import { aptInstall, dockerClient } from './docker.ts';
import { InfraError, say } from './log.ts';
import { stateDir } from './paths.ts';
import { onPath, run } from './process.ts';

export const DEFAULT_SANDBOX_IMAGE = 'cadenza-sandbox:latest';
const SUITE = 'bookworm';
// debootstrap's own resolver cannot satisfy npm's dependency alternatives, so npm is installed by
// apt inside the new root afterwards.
// python3-venv: Python projects set up a virtual environment and install from PyPI through the egress relay.
const BASE_PACKAGES = ['git', 'nodejs', 'ca-certificates', 'procps', 'patch', 'python3', 'python3-venv'];
const CHROOT_PACKAGES = ['npm'];
const dockerfile = readFileSync(new URL('./sandbox/Dockerfile', import.meta.url), 'utf8');
/** The build context's folder of agent CLIs, which the Dockerfile copies to /opt/cadenza/bin. */
const AGENT_CLIS_CONTEXT = 'agent-clis';

const baseTag = `cadenza-base:${SUITE}-${createHash('sha256').update([...BASE_PACKAGES, ...CHROOT_PACKAGES].join(',')).digest('hex').slice(0, 12)}`;

/** Tags change whenever the recipe does (the CLIs' versions included), so an existing image is only reused if it is current. */
function sandboxTag(clis: AgentBinary[]): string {
  const versions = clis.map((cli) => `${cli.name}@${cli.version}`).sort().join(',');
  const recipeHash = createHash('sha256').update(SUITE).update([...BASE_PACKAGES, ...CHROOT_PACKAGES].join(',')).update(dockerfile).update(versions).digest('hex').slice(0, 12);
  return `cadenza-sandbox:${recipeHash}`;
}

export async function imageExists(docker: Docker, name: string): Promise<boolean> {
  try {
    await docker.getImage(name).inspect();
    return true;
  } catch {
    return false;
  }
}

export interface ImageResult {
  name: string;
  built: boolean;
  /** The pinned agent CLIs the default image carries; none for another image. */
  agentClis: AgentBinary[];
}

/** True when `requested` (or CADENZA_SANDBOX_IMAGE) means Cadenza's default image, the one infra builds. */
export function isDefaultSandboxImage(requested = process.env.CADENZA_SANDBOX_IMAGE): boolean {
  return !requested || requested === DEFAULT_SANDBOX_IMAGE;
}

/**
 * Makes sure the sandbox image is there. With `requested` (or CADENZA_SANDBOX_IMAGE) naming another
 * image, that image must already exist or be pullable; nothing is built for it. The default image
 * carries the agent CLIs in `clis` (obtained here when not given); one that could not be obtained is
 * left out, and the image is rebuilt once it can be.
 */
export async function ensureSandboxImage(requested = process.env.CADENZA_SANDBOX_IMAGE, clis?: AgentClis): Promise<ImageResult> {
  const docker = dockerClient();
  if (requested && !isDefaultSandboxImage(requested)) {
    if (await imageExists(docker, requested)) return { name: requested, built: false, agentClis: [] };
    try {
      await follow(docker, await docker.pull(requested));
      return { name: requested, built: false, agentClis: [] };
    } catch (error) {
      throw new InfraError(
        `the sandbox image ${requested} is not in the Docker engine and could not be pulled (${(error as Error).message.split('\n')[0]}).`,
        `load it (docker load / docker build), or unset CADENZA_SANDBOX_IMAGE to use Cadenza's default image ${DEFAULT_SANDBOX_IMAGE}.`,
      );
    }
  }
  if (!clis) {
    clis = await ensureAgentClis();
    for (const { cli, error } of clis.missing) say(`    without ${cli.name} ${cli.version}: ${error.message}`);
  }
  const agentClis = clis.obtained;
  const tag = sandboxTag(agentClis);
  if (await imageExists(docker, tag)) {
    await docker.getImage(tag).tag({ repo: 'cadenza-sandbox', tag: 'latest' });
    return { name: DEFAULT_SANDBOX_IMAGE, built: false, agentClis };
  }
  if (!(await imageExists(docker, baseTag))) await importBase(docker);
  say(`    building ${tag} on ${baseTag}${agentClis.length ? ` with ${agentClis.map((cli) => `${cli.name} ${cli.version}`).join(', ')}` : ''}`);
  await follow(docker, await docker.buildImage(buildContext(agentClis) as unknown as NodeJS.ReadableStream, { t: tag, buildargs: { BASE: baseTag } }));
  await docker.getImage(tag).tag({ repo: 'cadenza-sandbox', tag: 'latest' });
  return { name: DEFAULT_SANDBOX_IMAGE, built: true, agentClis };
}

/** The Dockerfile and the agent CLIs' binaries, streamed from the cache (a few hundred MB each). */
function buildContext(clis: AgentBinary[]): Pack {
  const context = pack();
  context.entry({ name: 'Dockerfile' }, dockerfile);
  context.entry({ name: `${AGENT_CLIS_CONTEXT}/`, type: 'directory', mode: 0o755 });
  const addBinary = (cli: AgentBinary) => new Promise<void>((resolve, reject) => {
    const entry = context.entry({ name: `${AGENT_CLIS_CONTEXT}/${cli.name}`, mode: 0o755, size: statSync(cli.path).size }, (error) => (error ? reject(error) : resolve()));
    createReadStream(cli.path).on('error', reject).pipe(entry);
  });
  void (async () => {
    for (const cli of clis) await addBinary(cli);
    context.finalize();
  })().catch((error: Error) => context.destroy(error));
  return context;
}

async function importBase(docker: Docker): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new InfraError(`the base image ${baseTag} is missing and building it with debootstrap needs root.`, 'run `npm run setup` as root once, or set CADENZA_SANDBOX_IMAGE to an image you have.');
  }
  if (!(await onPath('debootstrap'))) {
    say('    installing debootstrap (first time only)');
    await aptInstall(['debootstrap']);
  }
  const work = path.join(stateDir(), 'image-build');
  mkdirSync(work, { recursive: true });
  const rootfs = mkdtempSync(path.join(work, 'rootfs-'));
  const mirror = process.env.CADENZA_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';
  try {
    say(`    debootstrap --variant=minbase ${SUITE} with ${BASE_PACKAGES.join(', ')} from ${mirror} (a few minutes, first time only)`);
    const bootstrap = await run('debootstrap', ['--variant=minbase', `--include=${BASE_PACKAGES.join(',')}`, SUITE, rootfs, mirror]);
    if (bootstrap.code !== 0) {
      throw new InfraError(
        `debootstrap failed:\n${(bootstrap.stdout + bootstrap.stderr).trim().split('\n').slice(-6).join('\n')}`,
        'check that the Debian mirror is reachable (set CADENZA_DEBIAN_MIRROR to another), or set CADENZA_SANDBOX_IMAGE to an image you have.',
      );
    }
    say(`    apt-get install ${CHROOT_PACKAGES.join(' ')} inside the new root`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const update = await run('chroot', [rootfs, 'apt-get', 'update'], { env });
    const install = update.code === 0 ? await run('chroot', [rootfs, 'apt-get', 'install', '-y', '--no-install-recommends', ...CHROOT_PACKAGES], { env }) : update;
    if (install.code !== 0) {
      throw new InfraError(
        `installing ${CHROOT_PACKAGES.join(' ')} in the sandbox root failed:\n${(install.stdout + install.stderr).trim().split('\n').slice(-6).join('\n')}`,
        'check that the Debian mirror is reachable, or set CADENZA_SANDBOX_IMAGE to an image you have.',
      );
    }
    await run('sh', ['-c', `rm -rf "${rootfs}"/var/cache/apt/archives/*.deb "${rootfs}"/var/lib/apt/lists/*`]);
    say(`    docker import as ${baseTag}`);
    const tar = spawn('tar', ['-C', rootfs, '-c', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const [repo, tag] = baseTag.split(':') as [string, string];
    await follow(docker, await docker.importImage(tar.stdout, { repo, tag }));
  } finally {
    rmSync(rootfs, { recursive: true, force: true });
  }
}

/** Waits for a Docker progress stream and turns an error event into an exception. */
function follow(docker: Docker, stream: NodeJS.ReadableStream): Promise<void> {
  return new Promise((resolve, reject) => {
    docker.modem.followProgress(stream, (error: Error | null, events: Array<{ error?: string; errorDetail?: { message: string } }>) => {
      const failed = events?.find((event) => event.error || event.errorDetail);
      if (error) reject(error);
      else if (failed) reject(new Error(failed.errorDetail?.message ?? failed.error));
      else resolve();
    });
  });
}
