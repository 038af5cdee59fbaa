/**
 * The artifact store on S3-compatible object storage, for installations with several workers: every
 * worker reaches the same objects and pointers. Objects are `<prefix>objects/ab/cdef...`, pointers
 * `<prefix>pointers/<name>.json`; a pointer's version is its ETag, and compare-and-set is a
 * conditional PutObject (`If-None-Match: *` to create, `If-Match: <etag>` to replace), which the
 * server decides atomically.
 */
import { randomUUID } from 'node:crypto';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  type PutObjectCommandInput,
} from '@aws-sdk/client-s3';
import { InfraError } from '../infra/log.ts';
import { BaseArtifactStore, contentRef, objectKey, pointerFile, type PointerRead, type PointerWrite, type StoredArtifact } from './artifacts.ts';

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix inside the bucket ('' or ending in '/'). */
  prefix: string;
  /** An S3-compatible server (path-style requests); absent: AWS S3 in `region`. */
  endpoint?: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

/** A failure of the store that names what to do (a missing bucket, refused credentials, no server). */
export class ArtifactStoreError extends InfraError {
  override name = 'ArtifactStoreError';
}

export class S3ArtifactStore extends BaseArtifactStore {
  readonly location: string;
  private readonly client: S3Client;

  constructor(private readonly options: S3StoreOptions) {
    super();
    this.location = `s3://${options.bucket}/${options.prefix}`;
    this.client = new S3Client({
      region: options.region,
      credentials: options.credentials,
      ...(options.endpoint ? { endpoint: options.endpoint, forcePathStyle: true } : {}),
      // Checksums only where S3 requires them: not every S3-compatible server takes the newer ones.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 4,
      requestHandler: { connectionTimeout: 5_000, requestTimeout: 60_000 },
    });
  }

  /** Where the server is, for logs: the endpoint, or AWS S3 and the region. */
  get server(): string {
    return this.options.endpoint ?? `AWS S3 (${this.options.region})`;
  }

  private key(relative: string): string {
    return `${this.options.prefix}${relative}`;
  }

  async put(content: string | Buffer, kind: string): Promise<StoredArtifact> {
    const bytes = typeof content === 'string' ? Buffer.from(content) : content;
    const ref = contentRef(bytes);
    // Content-addressed: an object already there holds these very bytes, so "already there" is success.
    await this.conditionalPut({ Key: this.key(objectKey(ref)), Body: bytes, IfNoneMatch: '*' });
    return { ref, kind, bytes: bytes.length };
  }

  async get(ref: string): Promise<Buffer> {
    const found = await this.getObject(this.key(objectKey(ref)));
    if (!found) throw new Error(`the artifact ${ref} is not in ${this.location} (${this.server})`);
    return found.body;
  }

  pathOf(ref: string): string {
    return `s3://${this.options.bucket}/${this.key(objectKey(ref))}`;
  }

  async setPointer(name: string, value: unknown): Promise<void> {
    await this.send(() => this.client.send(new PutObjectCommand({ Bucket: this.options.bucket, Key: this.pointerKey(name), Body: JSON.stringify(value), ContentType: 'application/json' })));
  }

  async readPointer<T>(name: string): Promise<PointerRead<T> | undefined> {
    const found = await this.getObject(this.pointerKey(name));
    return found && { value: JSON.parse(found.body.toString('utf8')) as T, version: found.etag };
  }

  async compareAndSetPointer(name: string, value: unknown, expected: string | null): Promise<PointerWrite> {
    return this.conditionalPut({
      Key: this.pointerKey(name),
      Body: JSON.stringify(value),
      ContentType: 'application/json',
      ...(expected === null ? { IfNoneMatch: '*' } : { IfMatch: expected }),
    });
  }

  /**
   * The bucket answers to these credentials (HeadBucket), and the server honours conditional writes:
   * a server that ignored If-None-Match would write both probes, and leases would not hold.
   */
  async verify(): Promise<void> {
    await this.send(() => this.client.send(new HeadBucketCommand({ Bucket: this.options.bucket })));
    const probe = { Key: this.key(`probes/conditional-write-${randomUUID()}.json`), Body: '{}', IfNoneMatch: '*' };
    const first = await this.conditionalPut(probe);
    const second = await this.conditionalPut(probe);
    await this.send(() => this.client.send(new DeleteObjectCommand({ Bucket: this.options.bucket, Key: probe.Key })));
    if (!first.written || second.written) {
      throw new ArtifactStoreError(
        `the S3 server at ${this.server} does not honour If-None-Match on PutObject (a second create of ${probe.Key} ${second.written ? 'was written too' : 'was refused, and so was the first'}).`,
        'use an S3-compatible server that supports conditional PutObject (AWS S3, versitygw >= 1.8.0); leases cannot be made safe without it.',
      );
    }
  }

  /** Tests and infra/s3.ts: creates the bucket (a server of our own starts empty). */
  async createBucket(): Promise<void> {
    await this.send(() => this.client.send(new CreateBucketCommand({ Bucket: this.options.bucket })));
  }

  override close(): void {
    this.client.destroy();
  }

  private pointerKey(name: string): string {
    return this.key(`pointers/${pointerFile(name)}`);
  }

  private async getObject(key: string): Promise<{ body: Buffer; etag: string } | undefined> {
    try {
      const response = await this.client.send(new GetObjectCommand({ Bucket: this.options.bucket, Key: key }));
      const body = Buffer.from(await response.Body!.transformToByteArray());
      return { body, etag: response.ETag ?? '' };
    } catch (error) {
      if (statusOf(error) === 404 && (error as Error).name !== 'NoSuchBucket') return undefined;
      throw this.explain(error);
    }
  }

  /**
   * A PutObject with If-None-Match or If-Match. The server refuses it with 412 when the condition does
   * not hold, 409 when a concurrent conditional write to the key won, and 404 for If-Match on a key
   * that is gone: each means another writer got there first.
   */
  private async conditionalPut(input: Omit<PutObjectCommandInput, 'Bucket'>): Promise<PointerWrite> {
    try {
      const response = await this.client.send(new PutObjectCommand({ Bucket: this.options.bucket, ...input }));
      return { written: true, version: response.ETag ?? '' };
    } catch (error) {
      const status = statusOf(error);
      if (status === 412 || status === 409 || (status === 404 && input.IfMatch !== undefined && (error as Error).name !== 'NoSuchBucket')) return { written: false };
      if (status === 501) {
        throw new ArtifactStoreError(
          `the S3 server at ${this.server} does not support conditional writes (If-None-Match / If-Match on PutObject): ${(error as Error).message}`,
          'use an S3-compatible server that supports conditional PutObject (AWS S3, versitygw >= 1.8.0); leases cannot be made safe without it.',
        );
      }
      throw this.explain(error);
    }
  }

  private async send<T>(request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (error) {
      throw this.explain(error);
    }
  }

  /** What a failed request means for the person running the worker (never the credentials themselves). */
  private explain(error: unknown): Error {
    if (error instanceof ArtifactStoreError) return error;
    const status = statusOf(error);
    const name = (error as Error).name;
    const where = `${this.location} at ${this.server}`;
    if (name === 'NoSuchBucket' || (status === 404 && name === 'NotFound')) {
      return new ArtifactStoreError(`the bucket ${this.options.bucket} does not exist (${where}).`, `create the bucket ${this.options.bucket}, or set CADENZA_STORE to one that exists.`);
    }
    if (status === 403 || name === 'InvalidAccessKeyId' || name === 'SignatureDoesNotMatch' || name === 'AccessDenied') {
      return new ArtifactStoreError(
        `the S3 server refused the credentials for ${where} (${status ?? name}).`,
        'check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the worker\'s environment, and that they may read and write the bucket.',
      );
    }
    if (!(error instanceof S3ServiceException)) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'ECONNRESET' || code === 'ETIMEDOUT' || name === 'TimeoutError') {
        return new ArtifactStoreError(`no S3 server answers at ${this.server} (${code ?? name}) for ${this.location}.`, 'start the S3 server or correct CADENZA_S3_ENDPOINT.');
      }
    }
    return error instanceof Error ? error : new Error(String(error));
  }
}

function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}
