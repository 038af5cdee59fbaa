/**
 * The artifact store: transcripts, logs, diffs and reports live here, content-addressed, and
 * workflow history carries only their references. A local folder by default.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile, stat } from 'node:fs/promises';
import path from 'node:path';

export interface StoredArtifact {
  ref: string;
  kind: string;
  bytes: number;
}

export class ArtifactStore {
  constructor(readonly root: string) {}

  private objectPath(ref: string): string {
    const match = /^sha256:([0-9a-f]{64})$/.exec(ref);
    if (!match) throw new Error(`not an artifact reference: ${ref}`);
    const hex = match[1]!;
    return path.join(this.root, 'objects', hex.slice(0, 2), hex.slice(2));
  }

  /** Stores content once; the same content always gets the same reference. */
  async put(content: string | Buffer, kind: string): Promise<StoredArtifact> {
    const bytes = typeof content === 'string' ? Buffer.from(content) : content;
    const ref = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    const file = this.objectPath(ref);
    const exists = await stat(file).then(() => true, () => false);
    if (!exists) await atomicWrite(file, bytes);
    return { ref, kind, bytes: bytes.length };
  }

  putJson(value: unknown, kind: string): Promise<StoredArtifact> {
    return this.put(JSON.stringify(value, null, 2), kind);
  }

  async get(ref: string): Promise<Buffer> {
    return readFile(this.objectPath(ref));
  }

  async getText(ref: string): Promise<string> {
    return (await this.get(ref)).toString('utf8');
  }

  async getJson<T>(ref: string): Promise<T> {
    return JSON.parse(await this.getText(ref)) as T;
  }

  /** Absolute path of a stored artifact, for people following a link from the tracker. */
  pathOf(ref: string): string {
    return this.objectPath(ref);
  }

  /** Named, mutable pointers (e.g. the latest checkpoint of an agent session). */
  async setPointer(name: string, value: unknown): Promise<void> {
    await atomicWrite(this.pointerPath(name), Buffer.from(JSON.stringify(value)));
  }

  async getPointer<T>(name: string): Promise<T | undefined> {
    try {
      return JSON.parse(await readFile(this.pointerPath(name), 'utf8')) as T;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  private pointerPath(name: string): string {
    return path.join(this.root, 'pointers', `${name.replace(/[^A-Za-z0-9._-]/g, '_')}.json`);
  }
}

async function atomicWrite(file: string, bytes: Buffer): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  await writeFile(temp, bytes);
  await rename(temp, file);
}
