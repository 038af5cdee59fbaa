/**
 * Benchmark 1, overhead: one trivial issue through the whole issue workflow on the scripted model
 * (provision, five agent turns, proof `npm test`, landing without approval), against a plain script
 * that does the same Docker, git and test steps directly, with no Temporal, in the same run.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { dockerClient } from '../infra/docker.ts';
import { git } from '../lib/git.ts';
import { ensureSandbox, removeSandbox } from '../lib/sandbox/container.ts';
import { containerName } from '../lib/sandbox/names.ts';
import { REPO_DIR, TRANSFER_DIR, getFile, putFile, sh, shOk, type Sandbox } from '../lib/sandbox/workspace.ts';
import type { ProofCheck } from '../workflows/definitions.ts';
import { envInt, fmtMs, mean, median, table, writeResult, type BenchContext, type BenchOutcome } from './lib/common.ts';
import { OTHER, sumByLabel } from './lib/history.ts';
import { runIssue, withInProcessWorker, type IssueRun } from './lib/inprocess.ts';
import { sweepSandboxes } from './lib/sandboxes.ts';
import { BenchWorld, trivialFiles, trivialScript } from './lib/world.ts';

export const BASELINE_STEPS = [
  'create container',
  'bundle in',
  'clone',
  'agent file ops',
  'npm test',
  'commit',
  'merge',
  'bundle out',
  'push',
  'remove container',
] as const;
type BaselineStep = (typeof BASELINE_STEPS)[number];

export interface BaselineRun {
  wallMs: number;
  steps: Record<BaselineStep, number>;
}

/** Which baseline steps do the work of each Cadenza activity (everything else has no counterpart). */
const COUNTERPART: Record<string, BaselineStep[]> = {
  'activity provisionSandbox': ['create container', 'bundle in', 'clone'],
  'activity runAgentSession': ['agent file ops'],
  'activity commitWork': ['commit'],
  'activity runProofCheck': ['npm test'],
  'activity landChange': ['merge', 'bundle out', 'push'],
  'activity removeSandbox': ['remove container'],
};

/**
 * The same work without Cadenza: a container with the contract's limits (the same library call), the
 * repository in as a git bundle, a clone, the agent's file reads and writes as plain execs, npm test,
 * a commit, a merge into main, a bundle out, a push to the bare remote, and the container removed.
 */
export async function baselineRun(world: BenchWorld, remote: string, identifier: string): Promise<BaselineRun> {
  const docker = dockerClient();
  const workflowId = `bench-baseline-${identifier}`;
  const limits = world.contract.config.sandbox;
  const box: Sandbox = { docker, container: containerName(workflowId), user: limits.user };
  const steps = Object.fromEntries(BASELINE_STEPS.map((step) => [step, 0])) as Record<BaselineStep, number>;
  const step = async <T>(name: BaselineStep, work: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    try {
      return await work();
    } finally {
      steps[name] += performance.now() - started;
    }
  };
  const scratch = await mkdtemp(path.join(world.root, 'baseline-'));
  const started = performance.now();
  try {
    await step('create container', () => ensureSandbox(docker, workflowId, limits));
    await step('bundle in', async () => {
      await git(remote, ['bundle', 'create', '--quiet', path.join(scratch, 'base.bundle'), 'main']);
      await shOk(box, `mkdir -p ${TRANSFER_DIR}/out`, { workdir: '/' });
      await putFile(box, TRANSFER_DIR, 'base.bundle', await readFile(path.join(scratch, 'base.bundle')));
    });
    await step('clone', () =>
      shOk(box, `git clone --quiet --branch main ${TRANSFER_DIR}/base.bundle ${REPO_DIR} && cd ${REPO_DIR} && git checkout --quiet -b work`, { workdir: '/', timeoutMs: 300_000 }),
    );
    await step('agent file ops', async () => {
      await shOk(box, 'git ls-files --cached --others --exclude-standard -- . | head -500');
      await shOk(box, 'cat -- src/index.js');
      for (const file of trivialFiles(identifier)) {
        await shOk(box, 'mkdir -p -- "$(dirname -- "$F")" && cat > "$F"', { env: { F: `${REPO_DIR}/${file.path}` }, stdin: file.content });
      }
    });
    await step('npm test', async () => {
      const result = await sh(box, 'npm test', { timeoutMs: 600_000 });
      if (result.exitCode !== 0) throw new Error(`baseline npm test failed:\n${result.stdout}\n${result.stderr}`);
    });
    await step('commit', () => shOk(box, `git add -A && git -c user.name=Baseline -c user.email=baseline@example.invalid commit --quiet -m "${identifier}: baseline change"`));
    await step('merge', () => shOk(box, `git checkout --quiet main && git -c user.name=Baseline -c user.email=baseline@example.invalid merge --quiet --no-ff -m "Land ${identifier}" work`));
    const bundle = await step('bundle out', async () => {
      await shOk(box, `git bundle create --quiet ${TRANSFER_DIR}/out/landing.bundle main`);
      return getFile(box, `${TRANSFER_DIR}/out/landing.bundle`);
    });
    await step('push', async () => {
      const bare = path.join(scratch, 'push.git');
      await git(scratch, ['init', '--bare', '--quiet', bare]);
      await writeFile(path.join(scratch, 'landing.bundle'), bundle);
      await git(bare, ['fetch', '--quiet', path.join(scratch, 'landing.bundle'), '+refs/heads/main:refs/heads/landing']);
      await git(bare, ['push', '--quiet', remote, 'refs/heads/landing:refs/heads/main']);
    });
    await step('remove container', () => removeSandbox(docker, workflowId));
    return { wallMs: performance.now() - started, steps };
  } finally {
    await removeSandbox(docker, workflowId).catch(() => undefined);
    await rm(scratch, { recursive: true, force: true });
  }
}

/** Cadenza runs of the trivial issue on one in-process worker; `between` runs after each (warm-ups included). */
export async function cadenzaRuns(ctx: BenchContext, world: BenchWorld, count: number, tag: string, between?: (index: number) => Promise<void>): Promise<IssueRun[]> {
  const runs: IssueRun[] = [];
  await withInProcessWorker(ctx.temporalAddress, world, `${ctx.prefix}-${tag}`, async (worker) => {
    for (let index = 0; index < count; index++) {
      const identifier = `${ctx.prefix}-${tag}${index}`;
      await world.addIssue(identifier, `Bench ${tag} ${index}`, trivialScript(identifier));
      const run = await runIssue(worker, world, world.contract, identifier);
      if (run.result?.phase !== 'Done') throw new Error(`${identifier} ended ${run.result?.phase ?? 'with an error'}: ${run.error ?? ''}`);
      ctx.log(`  cadenza ${identifier}: ${fmtMs(run.wallMs)} (first turn ${fmtMs(run.firstTurnMs ?? NaN)})`);
      runs.push(run);
      await between?.(index);
    }
  });
  return runs;
}

/** Mean per run of each breakdown label over [start, result] (means, so the rows add up to the mean wall time). */
export function breakdown(runs: IssueRun[], window: (run: IssueRun) => [number, number]) {
  const labels = new Map<string, number[]>();
  const counts = new Map<string, number[]>();
  runs.forEach((run, index) => {
    const [from, to] = window(run);
    const sums = sumByLabel(run.timeline.segments, from, to);
    for (const [label, ms] of sums.ms) {
      if (!labels.has(label)) labels.set(label, new Array(runs.length).fill(0));
      labels.get(label)![index] = ms;
    }
    for (const [label, count] of sums.counts) {
      if (!counts.has(label)) counts.set(label, new Array(runs.length).fill(0));
      counts.get(label)![index] = count;
    }
  });
  return [...labels.entries()].map(([label, values]) => ({ label, meanMs: mean(values), medianMs: median(values), count: mean(counts.get(label) ?? [0]) }));
}

export function checkDurations(runs: IssueRun[], activity: string): number[] {
  return runs.flatMap((run) =>
    run.timeline.results
      .filter((outcome) => outcome.activity === activity)
      .flatMap((outcome) => {
        const value = outcome.result as { durationMs?: number; checks?: ProofCheck[] } | undefined;
        if (value?.checks) return value.checks.map((check) => check.durationMs);
        return typeof value?.durationMs === 'number' ? [value.durationMs] : [];
      }),
  );
}

export async function overhead(ctx: BenchContext): Promise<BenchOutcome> {
  const warmup = envInt('BENCH_WARMUP', 1, 0);
  const world = await BenchWorld.create('overhead');
  const baselineRemote = await world.createRemote('baseline');
  const docker = dockerClient();
  ctx.log(`overhead: ${warmup} warm-up + ${ctx.runs} measured runs each, Cadenza and baseline alternating`);
  const baseline: BaselineRun[] = [];
  try {
    const total = warmup + ctx.runs;
    const all = await cadenzaRuns(ctx, world, total, 'o', async (index) => {
      const run = await baselineRun(world, baselineRemote, `${ctx.prefix}-b${index}`);
      ctx.log(`  baseline ${ctx.prefix}-b${index}: ${fmtMs(run.wallMs)}`);
      baseline.push(run);
    });
    const runs = all.slice(warmup);
    const base = baseline.slice(warmup);
    ctx.shared.set('cadenzaRuns', runs);

    const cadenzaMedian = median(runs.map((run) => run.wallMs));
    const baselineMedian = median(base.map((run) => run.wallMs));
    const ratio = cadenzaMedian / baselineMedian;

    const rows = breakdown(runs, (run) => [run.startedAt, run.finishedAt]);
    const baseMean = (steps: BaselineStep[]) => steps.reduce((sum, name) => sum + mean(base.map((run) => run.steps[name])), 0);
    const order = (label: string) => {
      const known = ['client start', 'workflow tasks: scheduled', 'workflow tasks: started', 'activities: scheduled'];
      const at = known.findIndex((prefix) => label.startsWith(prefix));
      if (at >= 0) return at;
      if (label === OTHER) return 98;
      if (label.startsWith('WorkflowExecutionCompleted')) return 97;
      return 10;
    };
    rows.sort((a, b) => order(a.label) - order(b.label) || b.meanMs - a.meanMs);
    const breakdownRows = rows.map((row) => {
      const counterpart = COUNTERPART[row.label];
      const baseMs = counterpart ? baseMean(counterpart) : 0;
      return { ...row, counterpart: counterpart?.join(' + ') ?? '-', baselineMs: baseMs, extraMs: row.meanMs - baseMs };
    });
    const meanCadenza = mean(runs.map((run) => run.wallMs));
    const meanBaseline = mean(base.map((run) => run.wallMs));

    const proofTest = checkDurations(runs, 'runProofCheck');
    const mergedTest = checkDurations(runs, 'landChange');
    const baselineTest = base.map((run) => run.steps['npm test']);

    console.log('\n== overhead: one trivial issue, Cadenza vs a plain script (same Docker, git and test steps) ==');
    console.log(table(['', 'median', 'mean', 'runs'], [
      ['Cadenza (start -> result)', fmtMs(cadenzaMedian), fmtMs(meanCadenza), runs.length],
      ['baseline script', fmtMs(baselineMedian), fmtMs(meanBaseline), base.length],
      ['ratio (medians)', `${ratio.toFixed(2)}x`, `${(meanCadenza / meanBaseline).toFixed(2)}x`, ''],
    ]));
    console.log('\nWhere Cadenza\'s time goes (mean per run, from history event timestamps; rows add up to the mean wall time):');
    console.log(table(['segment', 'count', 'Cadenza', 'baseline counterpart', 'baseline', 'extra'], breakdownRows.map((row) => [
      row.label, row.count.toFixed(0), fmtMs(row.meanMs), row.counterpart, row.counterpart === '-' ? '-' : fmtMs(row.baselineMs), fmtMs(row.extraMs),
    ])));
    console.log(table(['npm test exec (same command)', 'mean', 'runs'], [
      ['baseline: once', fmtMs(mean(baselineTest)), baselineTest.length],
      ['Cadenza proof check (runProofCheck)', fmtMs(mean(proofTest)), proofTest.length],
      ['Cadenza again on the merged tree (inside landChange)', fmtMs(mean(mergedTest)), mergedTest.length],
    ]));
    console.log(table(['baseline step', 'mean'], BASELINE_STEPS.map((name) => [name, fmtMs(mean(base.map((run) => run.steps[name])))])));

    const file = writeResult('overhead', {
      measuredAt: new Date().toISOString(),
      runs: runs.length,
      warmup,
      cadenza: { medianMs: cadenzaMedian, meanMs: meanCadenza, wallMs: runs.map((run) => run.wallMs) },
      baseline: { medianMs: baselineMedian, meanMs: meanBaseline, wallMs: base.map((run) => run.wallMs), steps: base.map((run) => run.steps) },
      ratio,
      breakdown: breakdownRows,
      npmTest: { baselineMs: baselineTest, proofCheckMs: proofTest, mergedTreeCheckMs: mergedTest },
      perRun: runs.map((run) => ({ identifier: run.identifier, wallMs: run.wallMs, firstTurnMs: run.firstTurnMs, segments: run.timeline.segments })),
    });
    ctx.log(`overhead: wrote ${file}`);
    return { targets: [{ benchmark: 'overhead', target: 'Cadenza / baseline (medians) <= 1.3', measured: `${ratio.toFixed(2)}x (${fmtMs(cadenzaMedian)} vs ${fmtMs(baselineMedian)})`, pass: ratio <= 1.3 }] };
  } finally {
    await sweepSandboxes(docker, ctx.prefix).catch(() => undefined);
    world.close();
  }
}
