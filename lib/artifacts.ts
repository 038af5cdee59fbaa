/**
 * The artifact store: transcripts, logs, diffs and reports live here, content-addressed, and
 * workflow history carries only their references. Named mutable pointers beside them hold what a
 * later attempt or poll needs to find again (checkpoints, thread ids, egress records, leases).
 *
 * Two implementations with one interface: a local folder (the embedded default, one host) and
 * S3-compatible object storage (lib/artifacts-s3.ts), which every worker of an installation reaches.
 * lib/artifacts-config.ts chooses between them from the worker's environment.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { isAlive } from '../infra/process.ts';

export interface StoredArtifact {
  ref: string;
  kind: string;
  bytes: number;
}

/** A pointer's value and the version it was read at (what compareAndSetPointer compares against). */
export interface PointerRead<T> {
  value: T;
  version: string;
}

/** The outcome of a conditional pointer write: `written: false` when another writer got there first. */
export type PointerWrite = { written: true; version: string } | { written: false };

export interface ArtifactStore {
  /** Where the store is, for people and logs (a folder, or s3://bucket/prefix); never credentials. */
  readonly location: string;
  /** Stores content once; the same content always gets the same reference (`sha256:<hex>`). */
  put(content: string | Buffer, kind: string): Promise<StoredArtifact>;
  putJson(value: unknown, kind: string): Promise<StoredArtifact>;
  get(ref: string): Promise<Buffer>;
  getText(ref: string): Promise<string>;
  getJson<T>(ref: string): Promise<T>;
  /** Where a stored artifact is, for people following a link from the tracker (a path, or s3://bucket/key). */
  pathOf(ref: string): string;
  /** Named, mutable pointers (e.g. the latest checkpoint of an agent session); last writer wins. */
  setPointer(name: string, value: unknown): Promise<void>;
  getPointer<T>(name: string): Promise<T | undefined>;
  /** A pointer with its version, for a compare-and-set. */
  readPointer<T>(name: string): Promise<PointerRead<T> | undefined>;
  /**
   * Writes the pointer only if it is still at `expected` (`null`: only if it does not exist yet).
   * Of several writers racing from the same version, exactly one is written.
   */
  compareAndSetPointer(name: string, value: unknown, expected: string | null): Promise<PointerWrite>;
  /** Checks that the store can be reached (a worker calls it once at start). */
  verify(): Promise<void>;
  /** Lets go of connections (the worker's close). */
  close(): void;
}

/** The hex of a reference, or an error naming what is not a reference. */
export function refHex(ref: string): string {
  const match = /^sha256:([0-9a-f]{64})$/.exec(ref);
  if (!match) throw new Error(`not an artifact reference: ${ref}`);
  return match[1]!;
}

/** Where an object lives under a store's root: objects/ab/cdef... */
export const objectKey = (ref: string) => {
  const hex = refHex(ref);
  return `objects/${hex.slice(0, 2)}/${hex.slice(2)}`;
};

/** A pointer's name as a file or key name (the same in every store). */
export const pointerFile = (name: string) => `${name.replace(/[^A-Za-z0-9._-]/g, '_')}.json`;

export const contentRef = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** What both stores derive from put/get. */
export abstract class BaseArtifactStore implements ArtifactStore {
  abstract readonly location: string;
  abstract put(content: string | Buffer, kind: string): Promise<StoredArtifact>;
  abstract get(ref: string): Promise<Buffer>;
  abstract pathOf(ref: string): string;
  abstract setPointer(name: string, value: unknown): Promise<void>;
  abstract readPointer<T>(name: string): Promise<PointerRead<T> | undefined>;
  abstract compareAndSetPointer(name: string, value: unknown, expected: string | null): Promise<PointerWrite>;
  abstract verify(): Promise<void>;

  close(): void {}

  putJson(value: unknown, kind: string): Promise<StoredArtifact> {
    return this.put(JSON.stringify(value, null, 2), kind);
  }

  async getText(ref: string): Promise<string> {
    return (await this.get(ref)).toString('utf8');
  }

  async getJson<T>(ref: string): Promise<T> {
    return JSON.parse(await this.getText(ref)) as T;
  }

  async getPointer<T>(name: string): Promise<T | undefined> {
    return (await this.readPointer<T>(name))?.value;
  }
}

/**
 * The local folder: `objects/ab/cdef...` and `pointers/<name>.json` under `root`. Pointer writes take
 * a lock file beside the pointer (held for the moment of one write), so a compare-and-set is atomic
 * between the processes of one host; a lock left by a process that died is broken.
 */
export class FolderArtifactStore extends BaseArtifactStore {
  constructor(readonly root: string) {
    super();
  }

  get location(): string {
    return this.root;
  }

  private objectPath(ref: string): string {
    return path.join(this.root, ...objectKey(ref).split('/'));
  }

  async put(content: string | Buffer, kind: string): Promise<StoredArtifact> {
    const bytes = typeof content === 'string' ? Buffer.from(content) : content;
    const ref = contentRef(bytes);
    const file = this.objectPath(ref);
    const exists = await stat(file).then(() => true, () => false);
    if (!exists) await atomicWrite(file, bytes);
    return { ref, kind, bytes: bytes.length };
  }

  async get(ref: string): Promise<Buffer> {
    return readFile(this.objectPath(ref));
  }

  /** Absolute path of a stored artifact. */
  pathOf(ref: string): string {
    return this.objectPath(ref);
  }

  async setPointer(name: string, value: unknown): Promise<void> {
    const file = this.pointerPath(name);
    await withLock(file, () => atomicWrite(file, Buffer.from(JSON.stringify(value))));
  }

  async readPointer<T>(name: string): Promise<PointerRead<T> | undefined> {
    const bytes = await readIfThere(this.pointerPath(name));
    return bytes && { value: JSON.parse(bytes.toString('utf8')) as T, version: contentRef(bytes) };
  }

  async compareAndSetPointer(name: string, value: unknown, expected: string | null): Promise<PointerWrite> {
    const file = this.pointerPath(name);
    const bytes = Buffer.from(JSON.stringify(value));
    return withLock(file, async () => {
      const current = await readIfThere(file);
      const version = current ? contentRef(current) : null;
      if (version !== expected) return { written: false };
      await atomicWrite(file, bytes);
      return { written: true, version: contentRef(bytes) };
    });
  }

  async verify(): Promise<void> {
    await mkdir(path.join(this.root, 'pointers'), { recursive: true });
  }

  private pointerPath(name: string): string {
    return path.join(this.root, 'pointers', pointerFile(name));
  }
}

async function readIfThere(file: string): Promise<Buffer | undefined> {
  try {
    return await readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

async function atomicWrite(file: string, bytes: Buffer): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  await writeFile(temp, bytes);
  await rename(temp, file);
}

/** How long a pointer write waits for another process's lock (each holds it for one small write). */
const LOCK_WAIT_MS = 30_000;

async function withLock<T>(file: string, body: () => Promise<T>): Promise<T> {
  const lock = `${file}.lock`;
  await mkdir(path.dirname(file), { recursive: true });
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (let wait = 1; ; wait = Math.min(wait * 2, 50)) {
    try {
      const handle = await open(lock, 'wx');
      await handle.writeFile(String(process.pid)).finally(() => handle.close());
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    // A holder that died (a killed worker) never lets go: its lock is broken.
    const holder = Number((await readIfThere(lock))?.toString('utf8') || 0);
    if (holder > 0 && holder !== process.pid && !isAlive(holder)) {
      await unlink(lock).catch(() => undefined);
      continue;
    }
    if (Date.now() > deadline) {
      throw new Error(`the pointer ${file} stayed locked by process ${holder || '(unknown)'} for ${LOCK_WAIT_MS / 1000} s; if no Cadenza process runs, remove ${lock}`);
    }
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
  try {
    return await body();
  } finally {
    await unlink(lock).catch(() => undefined);
  }
}
