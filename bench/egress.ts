/**
 * Egress: installing a project's dependencies through the relay (a fresh container of the sandbox
 * image, no network, `npm install` with the setup phase's proxy settings, every connection carried
 * over the Docker API to the worker) against the same install on the host, alternating, each with an
 * empty npm cache. Reports the ratio of the medians and the relay's own start-up.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pack } from 'tar-stream';
import { dockerClient } from '../infra/docker.ts';
import { DEFAULT_SANDBOX_IMAGE } from '../infra/image.ts';
import { run } from '../infra/process.ts';
import { resolveEgress } from '../lib/egress/policy.ts';
import { hostCaBundle, hostRegistry } from '../lib/egress/registries.ts';
import { startRelay } from '../lib/egress/relay.ts';
import { withFreshContainer } from '../lib/sandbox/fresh.ts';
import { sh } from '../lib/sandbox/workspace.ts';
import { envInt, fmtMs, mean, median, table, writeResult, type BenchContext, type BenchOutcome } from './lib/common.ts';

const PROJECT = fileURLToPath(new URL('../test/fixtures/egress-npm', import.meta.url));
const INSTALL = 'npm install --no-audit --no-fund --loglevel=error';

export async function egress(ctx: BenchContext): Promise<BenchOutcome> {
  const docker = dockerClient();
  const npm = await hostRegistry('npm');
  const policy = resolveEgress({ setup: ['npm'], agent: 'none', checks: 'none' }, [], () => npm, await hostCaBundle());
  const limits = { image: process.env.CADENZA_SANDBOX_IMAGE ?? DEFAULT_SANDBOX_IMAGE, cpus: 1, memoryMb: 1024, pidsLimit: 256, user: 'agent' };
  const host: number[] = [];
  const relayed: number[] = [];
  const relayStart: number[] = [];
  const bytes: number[] = [];

  const onHost = async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cadenza-bench-egress-'));
    try {
      cpSync(PROJECT, dir, { recursive: true });
      const started = performance.now();
      const result = await run('sh', ['-c', `${INSTALL} --cache "${dir}/.npm-cache"`], { cwd: dir });
      if (result.code !== 0) throw new Error(`npm install on the host failed: ${result.stderr}`);
      return performance.now() - started;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  const throughRelay = async () => {
    const archive = pack();
    for (const folder of ['repo', 'repo/src', 'repo/test']) archive.entry({ name: folder, type: 'directory', mode: 0o755, uid: 1000, gid: 1000 });
    for (const file of ['package.json', 'src/index.js', 'test/index.js']) archive.entry({ name: `repo/${file}`, uid: 1000, gid: 1000 }, readFileSync(path.join(PROJECT, file)));
    archive.finalize();
    return withFreshContainer(docker, { runKey: `${ctx.prefix}-egress`, role: 'checker', limits, user: 'agent' }, async (box) => {
      await docker.getContainer(box.container).putArchive(archive as unknown as NodeJS.ReadableStream, { path: '/workspace' });
      const relayStarted = performance.now();
      const relay = await startRelay(docker, box.container, 'setup', policy);
      relayStart.push(performance.now() - relayStarted);
      const started = performance.now();
      const result = await sh(box, INSTALL, { env: relay.env, timeoutMs: 300_000, workdir: '/workspace/repo' });
      const elapsed = performance.now() - started;
      const records = await relay.stop();
      if (result.exitCode !== 0) throw new Error(`npm install through the relay failed: ${result.stderr.slice(-500)}`);
      bytes.push(records.reduce((sum, record) => sum + record.bytesIn, 0));
      return elapsed;
    });
  };

  const warmup = envInt('BENCH_WARMUP', 1, 0);
  for (let i = 0; i < warmup + ctx.runs; i++) {
    const [h, r] = [await onHost(), await throughRelay()];
    ctx.log(`  ${i < warmup ? 'warm-up' : `run ${i - warmup + 1}`}: host ${fmtMs(h)}, through the relay ${fmtMs(r)}`);
    if (i < warmup) continue;
    host.push(h);
    relayed.push(r);
  }
  const ratio = median(relayed) / median(host);
  console.log('\n== egress: npm install of a small project, through the relay vs on the host (empty caches) ==');
  console.log(table(['', 'median', 'mean', 'runs'], [
    ['on the host', fmtMs(median(host)), fmtMs(mean(host)), host.length],
    ['in a sandbox through the relay', fmtMs(median(relayed)), fmtMs(mean(relayed)), relayed.length],
    ['relay start-up (before the install)', fmtMs(median(relayStart)), fmtMs(mean(relayStart)), relayStart.length],
    ['ratio (medians)', `${ratio.toFixed(2)}x`, '', ''],
  ]));
  console.log(`bytes received through the relay per install: ${Math.round(median(bytes) / 1024)} KiB`);
  writeResult('egress', { host, relayed, relayStart, bytes, ratio });
  return { targets: [{ benchmark: 'egress', target: 'install through the relay / on the host (medians), reported', measured: `${ratio.toFixed(2)}x (${fmtMs(median(relayed))} vs ${fmtMs(median(host))})`, pass: null }] };
}
