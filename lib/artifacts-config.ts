/**
 * Which artifact store a worker (or `cadenza show`) uses, from its environment:
 *
 *   CADENZA_STORE         unset: the folder <state>/artifacts (the embedded default)
 *                         s3://BUCKET[/PREFIX]: S3-compatible object storage shared by every worker
 *                         /absolute/folder or file:///absolute/folder: another folder
 *   CADENZA_S3_ENDPOINT   the S3-compatible server (http[s]://host[:port]); unset: AWS S3
 *   CADENZA_S3_REGION     (or AWS_REGION, AWS_DEFAULT_REGION; default us-east-1)
 *   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN): the credentials
 *
 * A bad value fails with an error that names the variable, what was wrong and what is allowed. The
 * credentials are read here and handed to the S3 client only: they are in no description, log line,
 * error message or workflow input.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { InfraError } from '../infra/log.ts';
import { FolderArtifactStore, type ArtifactStore } from './artifacts.ts';
import { S3ArtifactStore } from './artifacts-s3.ts';

export type StoreConfig =
  | { kind: 'folder'; root: string }
  | {
    kind: 's3';
    bucket: string;
    /** '' or ending in '/'. */
    prefix: string;
    endpoint?: string;
    region: string;
    credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  };

const ALLOWED = 's3://BUCKET[/PREFIX] (S3-compatible storage every worker reaches), an absolute folder path or file:///FOLDER, or nothing (unset) for the folder <state>/artifacts';

/** Hides `user:password@` in a value before it is echoed in an error. */
const shown = (value: string) => value.replace(/\/\/[^/@]*@/, '//***@');

export function storeConfigFrom(env: NodeJS.ProcessEnv, stateDirectory: string): StoreConfig {
  const value = (env.CADENZA_STORE ?? '').trim();
  const endpoint = (env.CADENZA_S3_ENDPOINT ?? '').trim();
  if (endpoint && !value.startsWith('s3://')) {
    throw new InfraError(
      `CADENZA_S3_ENDPOINT is set (${shown(endpoint)}) but CADENZA_STORE is ${value ? `"${shown(value)}"` : 'not set'}, so the S3 server would not be used.`,
      'set CADENZA_STORE=s3://BUCKET[/PREFIX] to keep artifacts there, or unset CADENZA_S3_ENDPOINT to use the local folder.',
    );
  }
  if (!value) return { kind: 'folder', root: path.join(stateDirectory, 'artifacts') };
  if (value.startsWith('file://')) {
    let root: string;
    try {
      root = fileURLToPath(value);
    } catch (error) {
      throw new InfraError(`CADENZA_STORE="${shown(value)}" is not a usable file URL (${(error as Error).message}).`, `use file:///ABSOLUTE/FOLDER; allowed are ${ALLOWED}.`);
    }
    return { kind: 'folder', root };
  }
  if (value.startsWith('/')) return { kind: 'folder', root: path.resolve(value) };
  if (!value.startsWith('s3://')) {
    const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(value)?.[1];
    throw new InfraError(
      `CADENZA_STORE="${shown(value)}" is not a store Cadenza knows${scheme ? ` (scheme ${scheme}:)` : ' (a relative path)'}.`,
      `set CADENZA_STORE to ${ALLOWED}.`,
    );
  }
  return s3Config(value, endpoint, env);
}

function s3Config(value: string, endpoint: string, env: NodeJS.ProcessEnv): StoreConfig {
  const rest = value.slice('s3://'.length);
  if (/[?#@]/.test(rest)) {
    throw new InfraError(
      `CADENZA_STORE="${shown(value)}" has a query, a fragment or credentials in it; an s3:// store is only a bucket and a key prefix.`,
      'set CADENZA_STORE=s3://BUCKET[/PREFIX], the server in CADENZA_S3_ENDPOINT and the credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.',
    );
  }
  const [bucket = '', ...parts] = rest.split('/');
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) || bucket.includes('..')) {
    throw new InfraError(
      `CADENZA_STORE="${value}" names the bucket "${bucket}", which is not a valid S3 bucket name.`,
      'a bucket name is 3 to 63 characters: lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit (s3://BUCKET[/PREFIX]).',
    );
  }
  const segments = parts.filter(Boolean);
  if (segments.some((segment) => segment === '.' || segment === '..')) {
    throw new InfraError(`CADENZA_STORE="${value}" has "." or ".." in its key prefix.`, 'use a plain prefix such as s3://BUCKET/cadenza/production.');
  }
  const prefix = segments.length ? `${segments.join('/')}/` : '';

  let url: URL | undefined;
  if (endpoint) {
    try {
      url = new URL(endpoint);
    } catch {
      throw new InfraError(`CADENZA_S3_ENDPOINT="${shown(endpoint)}" is not a URL.`, 'set it to the S3 server\'s address, e.g. http://127.0.0.1:7070 or https://s3.example.com, or unset it for AWS S3.');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new InfraError(`CADENZA_S3_ENDPOINT="${shown(endpoint)}" is a ${url.protocol} URL.`, 'use an http:// or https:// address of the S3 server.');
    }
    if (url.username || url.password) {
      throw new InfraError('CADENZA_S3_ENDPOINT carries credentials (user:password@) in the URL.', 'put them in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY and leave the endpoint as http[s]://host[:port].');
    }
    if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) {
      throw new InfraError(`CADENZA_S3_ENDPOINT="${endpoint}" has a path or query.`, 'give only http[s]://host[:port]; the bucket and prefix go in CADENZA_STORE.');
    }
  }

  const accessKeyId = env.AWS_ACCESS_KEY_ID?.trim() ?? '';
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY?.trim() ?? '';
  const missing = [!accessKeyId && 'AWS_ACCESS_KEY_ID', !secretAccessKey && 'AWS_SECRET_ACCESS_KEY'].filter(Boolean);
  if (missing.length) {
    throw new InfraError(
      `CADENZA_STORE=${value} needs credentials, and ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} not set.`,
      'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the worker\'s environment (and AWS_SESSION_TOKEN for temporary credentials).',
    );
  }
  const region = (env.CADENZA_S3_REGION || env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1').trim();
  if (!/^[a-z0-9-]+$/.test(region)) {
    throw new InfraError(`the S3 region "${region}" (CADENZA_S3_REGION, AWS_REGION or AWS_DEFAULT_REGION) is not a region name.`, 'use a name such as us-east-1.');
  }
  const sessionToken = env.AWS_SESSION_TOKEN?.trim();
  return {
    kind: 's3',
    bucket,
    prefix,
    ...(url ? { endpoint: url.origin } : {}),
    region,
    credentials: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) },
  };
}

/** One line for logs and `cadenza up`: where artifacts go (no credentials). */
export function describeStore(config: StoreConfig): string {
  if (config.kind === 'folder') return `the folder ${config.root}`;
  return `s3://${config.bucket}/${config.prefix} at ${config.endpoint ?? `AWS S3 (${config.region})`}`;
}

export function openArtifactStore(config: StoreConfig): ArtifactStore {
  if (config.kind === 'folder') return new FolderArtifactStore(config.root);
  const { bucket, prefix, endpoint, region, credentials } = config;
  return new S3ArtifactStore({ bucket, prefix, endpoint, region, credentials });
}
