/**
 * The package registries this worker's own package managers are configured with, read at run time
 * (npm's and pip's configuration, `go env`, apt's sources, cargo's and maven's settings), so a
 * sandbox reaches exactly the registries the worker does and no registry host is written into
 * Cadenza. Read once per worker process.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { run } from '../../infra/process.ts';
import type { Ecosystem, Registry } from './policy.ts';

const hostOf = (url: string): string | null => {
  try {
    return new URL(url.replace(/^sparse\+/, '')).hostname.toLowerCase() || null;
  } catch {
    return null;
  }
};

async function output(command: string, args: string[]): Promise<string | null> {
  const result = await run(command, args, { env: { ...process.env, NO_COLOR: '1' } }).catch(() => null);
  return result && result.code === 0 ? result.stdout.trim() : null;
}

function unique(hosts: Array<string | null>): string[] {
  return [...new Set(hosts.filter((host): host is string => Boolean(host)))];
}

async function npm(): Promise<Registry> {
  const registry = await output('npm', ['config', 'get', 'registry']);
  const host = registry && hostOf(registry);
  if (!host) throw new Error('npm is not installed on this worker or has no registry configured (npm config get registry)');
  return { hosts: [host], env: { npm_config_registry: registry! } };
}

async function pypi(): Promise<Registry> {
  const configured = process.env.PIP_INDEX_URL ?? (await output('pip', ['config', 'get', 'global.index-url'])) ?? (await output('python3', ['-m', 'pip', 'config', 'get', 'global.index-url']));
  if (configured && hostOf(configured)) {
    const extra = process.env.PIP_EXTRA_INDEX_URL ?? (await output('pip', ['config', 'get', 'global.extra-index-url']));
    return { hosts: unique([hostOf(configured), ...(extra ?? '').split(/\s+/).map(hostOf)]), env: { PIP_INDEX_URL: configured } };
  }
  // pip's own defaults, read from the pip installed here.
  const defaults = await output('python3', ['-c', 'from pip._internal.models.index import PyPI; print(PyPI.url); print(PyPI.file_storage_domain)']);
  if (!defaults) throw new Error('pip is not installed on this worker (python3 -m pip), so the PyPI registry it uses cannot be read');
  const [index = '', files = ''] = defaults.split('\n');
  return { hosts: unique([hostOf(index), files.trim().toLowerCase()]), env: {} };
}

async function go(): Promise<Registry> {
  const values = await output('go', ['env', 'GOPROXY', 'GOSUMDB']);
  if (!values) throw new Error('go is not installed on this worker, so the module proxy it uses cannot be read (go env GOPROXY)');
  const [proxy = '', sumdb = ''] = values.split('\n');
  const proxies = proxy.split(/[,|]/).filter((entry) => entry && entry !== 'direct' && entry !== 'off');
  // GOSUMDB is "name", "name+key" or "name+key url"; without a url, the name is the host.
  const [name = '', url] = sumdb.split(' ');
  const sumHost = sumdb === 'off' || !sumdb ? null : url ? hostOf(url) : name.split('+')[0]!;
  return { hosts: unique([...proxies.map(hostOf), sumHost]), env: { GOPROXY: proxies.join(',') || 'off', ...(sumdb ? { GOSUMDB: sumdb } : {}) } };
}

function debian(): Registry {
  const files = ['/etc/apt/sources.list', ...(existsSync('/etc/apt/sources.list.d') ? readdirSync('/etc/apt/sources.list.d').map((name) => path.join('/etc/apt/sources.list.d', name)) : [])]
    .filter((file) => /\.(list|sources)$/.test(file) && existsSync(file));
  const urls = files.flatMap((file) => {
    const text = readFileSync(file, 'utf8');
    return file.endsWith('.sources')
      ? [...text.matchAll(/^URIs:\s*(.+)$/gm)].flatMap((match) => match[1]!.split(/\s+/))
      : [...text.matchAll(/^\s*deb(?:-src)?\s+(?:\[[^\]]*\]\s+)?(\S+)/gm)].map((match) => match[1]!);
  });
  const hosts = unique(urls.map(hostOf));
  if (!hosts.length) throw new Error('this worker has no apt sources (/etc/apt/sources.list, /etc/apt/sources.list.d)');
  return { hosts, env: {} };
}

function crates(): Registry {
  const cargoHome = process.env.CARGO_HOME ?? path.join(homedir(), '.cargo');
  const text = ['config.toml', 'config'].map((name) => path.join(cargoHome, name)).filter(existsSync).map((file) => readFileSync(file, 'utf8')).join('\n');
  const hosts = unique([...text.matchAll(/^\s*(?:registry|index)\s*=\s*"([^"]+)"/gm)].map((match) => hostOf(match[1]!)));
  if (!hosts.length) throw new Error(`no crates registry is configured in this worker's cargo configuration (${cargoHome}/config.toml: a [source] or [registries] entry); name its hosts instead of "crates"`);
  return { hosts, env: {} };
}

async function maven(): Promise<Registry> {
  const settings = path.join(homedir(), '.m2', 'settings.xml');
  const mirrors = existsSync(settings) ? [...readFileSync(settings, 'utf8').matchAll(/<mirror>[\s\S]*?<url>([^<]+)<\/url>/g)].map((match) => hostOf(match[1]!)) : [];
  if (mirrors.length) return { hosts: unique(mirrors), env: {} };
  // Maven's central repository, as the super POM of the maven installed here names it.
  const version = await output('mvn', ['-v']);
  const home = version && /Maven home:\s*(.+)/.exec(version)?.[1]?.trim();
  const jar = home && existsSync(path.join(home, 'lib')) ? readdirSync(path.join(home, 'lib')).find((name) => name.startsWith('maven-model-builder-')) : undefined;
  const pom = jar && (await output('python3', ['-c', 'import sys, zipfile; print(zipfile.ZipFile(sys.argv[1]).read("org/apache/maven/model/pom-4.0.0.xml").decode())', path.join(home!, 'lib', jar)]));
  const central = pom ? /<url>([^<]+)<\/url>/.exec(pom)?.[1] : undefined;
  if (!central || !hostOf(central)) throw new Error('maven is not installed on this worker and ~/.m2/settings.xml names no mirror, so the maven repository it uses cannot be read');
  return { hosts: [hostOf(central)!], env: {} };
}

const readers: Record<Ecosystem, () => Registry | Promise<Registry>> = { npm, pypi, go, debian, crates, maven };
const cache = new Map<Ecosystem, Promise<Registry>>();

/** The worker's registry for `ecosystem` (rejected with the reason it cannot be read). */
export function hostRegistry(ecosystem: Ecosystem): Promise<Registry> {
  let found = cache.get(ecosystem);
  if (!found) cache.set(ecosystem, (found = Promise.resolve().then(() => readers[ecosystem]())));
  return found;
}

let caBundle: Promise<Buffer | null> | undefined;

/** The CA bundle this worker's package managers verify TLS with (pip's or npm's setting, else the system's); read once. */
export function hostCaBundle(): Promise<Buffer | null> {
  caBundle ??= readCaBundle();
  return caBundle;
}

async function readCaBundle(): Promise<Buffer | null> {
  const candidates = [
    process.env.CADENZA_EGRESS_CA,
    await output('pip', ['config', 'get', 'global.cert']),
    await output('npm', ['config', 'get', 'cafile']),
    process.env.SSL_CERT_FILE,
    '/etc/ssl/certs/ca-certificates.crt',
  ];
  const file = candidates.find((candidate) => candidate && candidate !== 'null' && candidate !== 'undefined' && existsSync(candidate));
  return file ? readFileSync(file) : null;
}
