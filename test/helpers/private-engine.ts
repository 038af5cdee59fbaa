/**
 * A private Docker engine for tests that stop or crash "the" engine: its own dockerd, and the
 * containerd that dockerd manages, on their own socket, data root and exec root under one short temp
 * folder. The shared engine (DOCKER_HOST or /var/run/docker.sock) is never touched. Linux and root only.
 *
 * Nothing may outlive the test: `close()` (and, if the test process is ended by a signal or exits
 * without it, a synchronous teardown) kills every process of the engine, its containers included,
 * unmounts what it left mounted and deletes the folder. A later `PrivateEngine.start()` also removes
 * engines whose owning process died without any of that (SIGKILL).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Docker from 'dockerode';
import { onPath } from '../../infra/process.ts';

/** Short on purpose: unix socket paths (containerd's lives under the exec root) are limited to 107 bytes. */
const BASE = '/tmp';
const PREFIX = 'cadenza-engine-';

export type EngineStop = 'SIGKILL' | 'SIGTERM';

export class PrivateEngine {
  readonly dir: string;
  readonly socket: string;
  /** For DOCKER_HOST. */
  readonly host: string;
  readonly docker: Docker;
  readonly dataRoot: string;
  readonly execRoot: string;
  readonly logFile: string;
  private child: ChildProcess | undefined;
  private closed = false;
  private readonly onExit = () => teardownSync(this.dir);
  private readonly onSignal = (signal: NodeJS.Signals) => {
    teardownSync(this.dir);
    this.unhook();
    process.kill(process.pid, signal);
  };

  private constructor(private readonly dockerd: string) {
    this.dir = mkdtempSync(path.join(BASE, PREFIX));
    this.socket = path.join(this.dir, 'docker.sock');
    this.host = `unix://${this.socket}`;
    this.dataRoot = path.join(this.dir, 'data');
    this.execRoot = path.join(this.dir, 'x');
    this.logFile = path.join(this.dir, 'dockerd.log');
    this.docker = new Docker({ socketPath: this.socket });
    writeFileSync(path.join(this.dir, 'owner'), String(process.pid));
    // An empty config file, so the host's /etc/docker/daemon.json does not apply.
    writeFileSync(path.join(this.dir, 'daemon.json'), '{}\n');
  }

  /** Starts a new engine (removing ones that earlier test processes left behind). */
  static async start(): Promise<PrivateEngine> {
    if (process.platform !== 'linux' || process.getuid?.() !== 0) throw new Error('a private Docker engine needs Linux and root');
    const dockerd = process.env.CADENZA_DOCKERD ?? (await onPath('dockerd'));
    if (!dockerd) throw new Error('dockerd is not on PATH; the private engine cannot start');
    sweepAbandoned();
    const engine = new PrivateEngine(dockerd);
    process.once('exit', engine.onExit);
    process.once('SIGINT', engine.onSignal);
    process.once('SIGTERM', engine.onSignal);
    try {
      await engine.launch();
    } catch (error) {
      await engine.close();
      throw error;
    }
    return engine;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The pid containerd (started by this engine's dockerd) wrote, if it did. */
  containerdPid(): number | undefined {
    return readPid(path.join(this.execRoot, 'containerd', 'containerd.pid'));
  }

  /** Starts dockerd on this engine's folders and waits until it answers. */
  private async launch(timeoutMs = 60_000): Promise<void> {
    if (this.closed) throw new Error('the private engine is closed');
    const args = [
      '--config-file', path.join(this.dir, 'daemon.json'),
      '--host', this.host,
      '--data-root', this.dataRoot,
      '--exec-root', this.execRoot,
      '--pidfile', path.join(this.dir, 'dockerd.pid'),
      '--bridge=none', '--iptables=false', '--ip-masq=false',
    ];
    const log = openSync(this.logFile, 'a');
    // Its own process group: a Ctrl-C on the test run reaches the teardown, not dockerd directly.
    const child = spawn(this.dockerd, args, { detached: true, stdio: ['ignore', log, log] });
    closeSync(log);
    this.child = child;
    let exited: string | undefined;
    child.once('exit', (code, signal) => (exited = signal ?? `code ${code}`));
    child.once('error', (error) => (exited = error.message));
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && exited === undefined) {
      if (await this.docker.ping().then(() => true, () => false)) return;
      await sleep(100);
    }
    const tail = readFileSync(this.logFile, 'utf8').trim().split('\n').slice(-8).join('\n');
    throw new Error(`the private dockerd ${exited === undefined ? `did not answer within ${timeoutMs} ms` : `exited (${exited})`}; ${this.logFile} ends:\n${tail}`);
  }

  /**
   * Stops the engine. SIGKILL: a crash that takes the whole engine down at once, dockerd, its
   * containerd, the shims and every container process. SIGTERM: dockerd's own shutdown (it stops the
   * containers). Data root and volumes stay, for `start()`.
   */
  async stop(how: EngineStop): Promise<void> {
    if (how === 'SIGKILL') {
      killAll(this.dir, 'SIGKILL');
    } else if (this.child?.pid) {
      signal(this.child.pid, 'SIGTERM');
      const stopped = await waitUntilGone([this.child.pid], 30_000);
      if (!stopped) killAll(this.dir, 'SIGKILL');
    }
    const gone = await waitUntilGone(processesOf(this.dir), 15_000);
    if (!gone) throw new Error(`processes of the private engine in ${this.dir} survived SIGKILL: ${processesOf(this.dir).join(', ')}`);
    // A dead engine's pid files would make the next dockerd refuse to start, or take a dead
    // containerd (a zombie not yet reaped) for a live one.
    rmSync(path.join(this.dir, 'dockerd.pid'), { force: true });
    rmSync(path.join(this.execRoot, 'containerd', 'containerd.pid'), { force: true });
    this.child = undefined;
  }

  /** Starts dockerd again on the same data root (after `stop`). */
  async start(): Promise<void> {
    if (this.child) throw new Error('the private engine is already running');
    await this.launch();
  }

  /** Copies an image from another engine (`docker save | docker load`, streamed). */
  async loadImage(from: Docker, image: string): Promise<void> {
    const archive = await from.getImage(image).get();
    const response = await this.docker.loadImage(archive, { quiet: true });
    await new Promise<void>((resolve, reject) => {
      this.docker.modem.followProgress(response, (error: Error | null, events: Array<{ error?: string }>) => {
        const failed = error?.message ?? events.find((event) => event.error)?.error;
        if (failed) reject(new Error(`loading ${image} into the private engine failed: ${failed}`));
        else resolve();
      });
    });
    await this.docker.getImage(image).inspect().catch((error: Error) => {
      throw new Error(`${image} is not in the private engine after loading it: ${error.message}`);
    });
  }

  /** Kills everything, unmounts and deletes the folder. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.child?.pid) {
      // A polite stop first, so the engine cleans up after itself; then whatever is left goes.
      signal(this.child.pid, 'SIGTERM');
      await waitUntilGone([this.child.pid], 20_000);
    }
    teardownSync(this.dir);
    this.unhook();
  }

  private unhook() {
    process.off('exit', this.onExit);
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function readPid(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function signal(pid: number, name: NodeJS.Signals) {
  try {
    process.kill(pid, name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

interface ProcessInfo {
  pid: number;
  ppid: number;
  state: string;
  cmdline: string;
}

function processes(): ProcessInfo[] {
  const found: ProcessInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...; comm may contain spaces and parentheses.
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
      found.push({ pid: Number(entry), ppid: Number(ppid), state: state!, cmdline });
    } catch {
      // It exited while we looked.
    }
  }
  return found;
}

/**
 * Live (not zombie) processes of the engine in `dir`: everything whose command line names the folder
 * (dockerd, containerd, the containerd shims), and the container processes under the shims.
 */
function processesOf(dir: string): number[] {
  const all = processes().filter((info) => info.state !== 'Z');
  const own = new Set(all.filter((info) => info.cmdline.includes(`${dir}/`) || info.cmdline.includes(`${dir} `)).map((info) => info.pid));
  // Container processes (docker-init and what it runs) descend from the shims.
  let grew = true;
  while (grew) {
    grew = false;
    for (const info of all) {
      if (!own.has(info.pid) && own.has(info.ppid)) {
        own.add(info.pid);
        grew = true;
      }
    }
  }
  own.delete(process.pid);
  return [...own];
}

function killAll(dir: string, name: NodeJS.Signals) {
  // Twice: a shim that was forking a container when we looked leaves a child the first pass missed.
  for (let pass = 0; pass < 2; pass++) for (const pid of processesOf(dir)) signal(pid, name);
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function waitUntilGone(pids: number[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!pids.some(alive)) return true;
    await sleep(50);
  }
  return !pids.some(alive);
}

function sleepSync(ms: number) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Mount points at or under `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((point): point is string => !!point)
    .map((point) => point.replace(/\\([0-7]{3})/g, (_match, octal: string) => String.fromCharCode(parseInt(octal, 8))))
    .filter((point) => point === dir || point.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/**
 * Synchronous, so it can run from an `exit` handler: SIGKILL every process of the engine, wait for
 * them, unmount what is mounted under the folder, remove the cgroups its containers left and the folder.
 */
function teardownSync(dir: string) {
  if (!existsSync(dir)) return;
  const deadline = Date.now() + 10_000;
  for (;;) {
    const left = processesOf(dir);
    if (left.length === 0 || Date.now() > deadline) break;
    for (const pid of left) signal(pid, 'SIGKILL');
    sleepSync(50);
  }
  for (const point of mountsUnder(dir)) {
    try {
      execFileSync('umount', ['-l', point], { stdio: 'ignore' });
    } catch {
      // Already gone.
    }
  }
  removeContainerCgroups(path.join(dir, 'data', 'containers'));
  rmSync(dir, { recursive: true, force: true });
}

/** cgroup v1 with the cgroupfs driver keeps an empty `docker/<id>` per controller after a crash. */
function removeContainerCgroups(containers: string) {
  let ids: string[];
  try {
    ids = readdirSync(containers);
  } catch {
    return;
  }
  let controllers: string[];
  try {
    controllers = readdirSync('/sys/fs/cgroup');
  } catch {
    return;
  }
  for (const id of ids) {
    for (const controller of controllers) {
      try {
        rmdirSync(path.join('/sys/fs/cgroup', controller, 'docker', id));
      } catch {
        // Not there, or not empty (then its processes are not ours to touch).
      }
    }
  }
}

/** Engines whose test process died without closing them (SIGKILL, a crash). */
function sweepAbandoned() {
  let entries: string[];
  try {
    entries = readdirSync(BASE).filter((name) => name.startsWith(PREFIX));
  } catch {
    return;
  }
  for (const name of entries) {
    const dir = path.join(BASE, name);
    const owner = readPid(path.join(dir, 'owner'));
    if (owner !== undefined && owner !== process.pid && !alive(owner)) teardownSync(dir);
  }
}
