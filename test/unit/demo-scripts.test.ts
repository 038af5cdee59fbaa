/**
 * The demo that `npm start` seeds (demo/): the issue files parse, the contract loads and renders for
 * every issue, and every scripted-model script, replayed call by call against a real git copy of
 * demo/repo, leaves the tests failing or passing exactly where the demo says it does.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadContract, renderPrompt } from '../../lib/contract/index.ts';
import { findIdentifier } from '../../lib/scripted-model/protocol.ts';
import { loadScript, type Script, type ScriptToolCall } from '../../lib/scripted-model/script.ts';
import { LocalTracker } from '../../lib/tracker/local.ts';
import type { Issue } from '../../lib/tracker/types.ts';

const demoDir = fileURLToPath(new URL('../../demo/', import.meta.url));
const repoSource = join(demoDir, 'repo');
const issuesDir = join(demoDir, 'issues');
const scriptsDir = join(demoDir, 'scripts');
const workflowFile = join(demoDir, 'WORKFLOW.md');

/** Per issue: whether `node --test` passes after each round, and the files the issue changes. */
const EXPECTED: Record<string, { title: string; rounds: boolean[]; changed: string[]; blockedBy: string[] }> = {
  'DEMO-1': { title: 'Add slugify', rounds: [true], changed: ['src/index.js', 'test/slugify.test.js'], blockedBy: [] },
  'DEMO-2': { title: 'Fix titleCase', rounds: [false, true], changed: ['src/index.js', 'test/title-case.test.js'], blockedBy: [] },
  'DEMO-3': { title: 'Add truncate', rounds: [true], changed: ['src/index.js', 'test/truncate.test.js'], blockedBy: [] },
  'DEMO-4': { title: 'Document the API in README', rounds: [true], changed: ['README.md'], blockedBy: ['DEMO-1'] },
};
const IDS = Object.keys(EXPECTED);
const TOOLS = ['run_shell', 'read_file', 'write_file', 'apply_patch', 'list_files', 'search_files', 'finish'];

// Child processes must not inherit anything that would make `node --test` report to a parent runner.
const childEnv: NodeJS.ProcessEnv = { ...process.env, CI: 'true' };
delete childEnv.NODE_OPTIONS;
delete childEnv.NODE_TEST_CONTEXT;

let tmp: string;
/** A git repository holding demo/repo as its first commit on `main`. */
let origin: string;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'cadenza-demo-'));
  origin = join(tmp, 'origin');
  cpSync(repoSource, origin, { recursive: true });
  git(origin, 'init', '-q', '-b', 'main');
  git(origin, 'add', '-A');
  git(origin, 'commit', '-q', '-m', 'textkit: initial import');
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

function git(cwd: string, ...args: string[]): string {
  const result = spawnSync('git', ['-c', 'user.name=Demo Test', '-c', 'user.email=demo@cadenza.invalid', ...args], {
    cwd,
    encoding: 'utf8',
    env: childEnv,
  });
  if (result.status !== 0) throw new Error(`git ${args.join(' ')} failed (${result.status}): ${result.stderr}${result.stdout}`);
  return result.stdout;
}

function nodeTest(cwd: string): { ok: boolean; output: string } {
  const result = spawnSync(process.execPath, ['--test'], { cwd, encoding: 'utf8', env: childEnv, timeout: 60_000 });
  return { ok: result.status === 0, output: `${result.stdout}${result.stderr}` };
}

function clone(name: string, ref = 'main'): string {
  const dir = join(tmp, name);
  git(tmp, 'clone', '-q', origin, dir);
  git(dir, 'checkout', '-q', ref);
  return dir;
}

async function script(identifier: string): Promise<Script> {
  const loaded = await loadScript(scriptsDir, identifier);
  if (!loaded) throw new Error(`no script for ${identifier} in ${scriptsDir}`);
  return loaded.script;
}

/** The tool calls of a script, split into rounds at each `finish` call. */
function rounds(s: Script): ScriptToolCall[][] {
  const out: ScriptToolCall[][] = [];
  let current: ScriptToolCall[] = [];
  s.turns.forEach((turn, t) => {
    const calls = turn.tool_calls ?? [];
    calls.forEach((call, i) => {
      if (call.name === 'finish' && (calls.length !== 1 || i !== 0)) {
        throw new Error(`turns[${t}]: finish must be the only tool call of its turn`);
      }
      current.push(call);
      if (call.name === 'finish') {
        out.push(current);
        current = [];
      }
    });
  });
  if (current.length > 0) throw new Error('the script does not end with a finish call');
  return out;
}

function args(call: ScriptToolCall): Record<string, unknown> {
  if (typeof call.arguments === 'string') throw new Error(`${call.name}: the demo scripts send arguments as objects`);
  return call.arguments;
}

function stringArg(call: ScriptToolCall, key: string, optional = false): string | undefined {
  const value = args(call)[key];
  if (value === undefined && optional) return undefined;
  if (typeof value !== 'string' || value === '') throw new Error(`${call.name}: '${key}' must be a non-empty string`);
  return value;
}

/** A repository-relative path, checked to stay inside the repository. */
function inside(repo: string, path: string): string {
  if (isAbsolute(path)) throw new Error(`path ${path} must be relative to the repository root`);
  const full = resolve(repo, path);
  const rel = relative(repo, full);
  if (rel.startsWith('..') || isAbsolute(rel)) throw new Error(`path ${path} leaves the repository`);
  return full;
}

function filesUnder(dir: string): string[] {
  if (statSync(dir).isFile()) return [dir];
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.name !== '.git' && entry.name !== 'node_modules')
    .flatMap((entry) => (entry.isDirectory() ? filesUnder(join(dir, entry.name)) : [join(dir, entry.name)]));
}

/** Commands that only look (tests, git status/diff/log): replays that skip shell runs skip just these. */
function isReadOnly(command: string): boolean {
  return command.split('&&').every((part) => /^\s*(npm test|node --test|git (status|diff|log)\b[^;|&>]*)\s*$/.test(part));
}

interface ShellRun {
  command: string;
  code: number | null;
  output: string;
}

/**
 * Does what the agent's tools would do with one call: writes and patches change the repository,
 * shell commands run for real, and reads and searches must find what they look for.
 */
function simulate(repo: string, call: ScriptToolCall, shell: ShellRun[], runShell: boolean): void {
  switch (call.name) {
    case 'read_file': {
      const path = stringArg(call, 'path')!;
      expect(existsSync(inside(repo, path)) && statSync(inside(repo, path)).isFile(), `read_file ${path} exists`).toBe(true);
      return;
    }
    case 'list_files': {
      const path = stringArg(call, 'path', true) ?? '.';
      expect(statSync(inside(repo, path)).isDirectory(), `list_files ${path} is a folder`).toBe(true);
      return;
    }
    case 'search_files': {
      const pattern = stringArg(call, 'pattern')!;
      const path = stringArg(call, 'path', true) ?? '.';
      inside(repo, path);
      // As the tool searches: an extended regular expression over tracked and untracked files.
      const result = spawnSync('git', ['grep', '-n', '-I', '--untracked', '-E', '-e', pattern, '--', path], { cwd: repo, encoding: 'utf8', env: childEnv });
      expect(result.status, `search_files ${JSON.stringify(pattern)} in ${path} finds something`).toBe(0);
      return;
    }
    case 'write_file': {
      const path = inside(repo, stringArg(call, 'path')!);
      const content = args(call).content;
      if (typeof content !== 'string') throw new Error('write_file: content must be a string');
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, content);
      return;
    }
    case 'apply_patch': {
      const patch = stringArg(call, 'patch')!;
      // A correct unified diff: it applies as is (hunk counts and all), not only with the tool's --recount.
      const check = spawnSync('git', ['apply', '--check', '-'], { cwd: repo, input: patch, encoding: 'utf8', env: childEnv });
      expect(check.status, `git apply --check: ${check.stderr}`).toBe(0);
      const result = spawnSync('git', ['apply', '--whitespace=nowarn', '--recount', '-'], { cwd: repo, input: patch, encoding: 'utf8', env: childEnv });
      expect(result.status, `git apply: ${result.stderr}`).toBe(0);
      return;
    }
    case 'run_shell': {
      const command = stringArg(call, 'command')!;
      const timeout = args(call).timeout_ms;
      if (timeout !== undefined) expect(typeof timeout === 'number' && timeout > 0, 'run_shell timeout_ms').toBe(true);
      if (!runShell && isReadOnly(command)) return;
      const result = spawnSync('sh', ['-c', command], { cwd: repo, encoding: 'utf8', env: childEnv, timeout: 60_000 });
      shell.push({ command, code: result.status, output: `${result.stdout}${result.stderr}` });
      return;
    }
    case 'finish': {
      expect(stringArg(call, 'summary')!.length).toBeGreaterThan(10);
      return;
    }
    default:
      throw new Error(`unknown tool ${call.name} (the agent has ${TOOLS.join(', ')})`);
  }
}

/** Replays every round of an issue's script in `repo`; returns what happened after each round. */
/** With `runShell` false, read-only commands are skipped (faster); anything else still runs. */
async function replay(repo: string, identifier: string, runShell = true): Promise<{ tests: { ok: boolean; output: string }; shell: ShellRun[] }[]> {
  const results = [];
  for (const calls of rounds(await script(identifier))) {
    const shell: ShellRun[] = [];
    for (const call of calls) simulate(repo, call, shell, runShell);
    results.push({ tests: nodeTest(repo), shell });
  }
  return results;
}

function changedFiles(repo: string, base: string): string[] {
  git(repo, 'add', '-A');
  return git(repo, 'diff', '--cached', '--name-only', base).split('\n').filter(Boolean).sort();
}

describe('demo repository', () => {
  it('is a dependency-free package whose tests pass with node --test', () => {
    const pkg = JSON.parse(readFileSync(join(repoSource, 'package.json'), 'utf8')) as Record<string, unknown>;
    expect(pkg.type).toBe('module');
    expect(pkg.scripts).toEqual({ test: 'node --test' });
    expect(pkg.dependencies).toBeUndefined();
    expect(pkg.devDependencies).toBeUndefined();
    expect(nodeTest(origin).ok).toBe(true);
  });

  it('has the titleCase bug the demo fixes, and no test for it', async () => {
    const mod = (await import(join(repoSource, 'src', 'index.js'))) as { titleCase: (s: string) => string };
    expect(mod.titleCase('hello world')).toBe('Hello world');
    expect(readFileSync(join(repoSource, 'test', 'index.test.js'), 'utf8')).not.toContain('titleCase');
  });
});

describe('demo issues and contract', () => {
  let issues: Issue[];
  const warnings: string[] = [];

  beforeAll(async () => {
    const tracker = new LocalTracker(issuesDir, { onWarning: (msg) => warnings.push(msg) });
    issues = await tracker.fetchIssuesByStates(['Todo']);
  });

  it('every issue file parses with the local tracker', async () => {
    expect(warnings).toEqual([]);
    expect(issues.map((issue) => issue.identifier).sort()).toEqual(IDS);
    expect(readdirSync(issuesDir).filter((name) => name.endsWith('.md')).sort()).toEqual(IDS.map((id) => `${id}.md`));
    for (const issue of issues) {
      const expected = EXPECTED[issue.identifier]!;
      expect(issue.title).toBe(expected.title);
      expect(issue.state).toBe('Todo');
      expect(issue.priority).toBeGreaterThanOrEqual(1);
      expect(issue.priority).toBeLessThanOrEqual(4);
      expect(issue.labels.length).toBeGreaterThan(0);
      expect(issue.description?.length ?? 0).toBeGreaterThan(40);
      expect(issue.blocked_by).toEqual(expected.blockedBy.map((id) => ({ id, identifier: id, state: 'Todo' })));
    }
    const tracker = new LocalTracker(issuesDir, { onWarning: (msg) => warnings.push(msg) });
    expect((await tracker.fetchIssuesByIds(['DEMO-4'])).map((issue) => issue.title)).toEqual(['Document the API in README']);
  });

  it('WORKFLOW.md loads with the demo settings', () => {
    const { config } = loadContract(workflowFile, {});
    expect(config.tracker).toMatchObject({ kind: 'local', path: issuesDir });
    expect(config.polling.intervalMs).toBe(5000);
    expect(config.repo).toEqual({ url: join(demoDir, 'remote.git'), baseBranch: 'main' });
    expect(config.sandbox).toMatchObject({ image: 'cadenza-sandbox:latest', memoryMb: 512, pidsLimit: 256, network: 'none' });
    expect(config.agent.maxTurns).toBe(12);
    expect(config.proof).toMatchObject({
      commands: [{ name: 'tests', run: 'npm test', timeoutMs: 120_000, required: true }],
      maxRounds: 3,
      onProtectedChange: 'flag',
      baseTests: true,
    });
    expect(config.landing).toMatchObject({ strategy: 'merge', targetBranch: 'main', requireApproval: true });
    expect(config.hooks).toMatchObject({ afterCreate: 'git log --oneline -1', beforeRun: 'node --version' });
  });

  it('the prompt renders for every issue and names it so the scripted model finds its script', async () => {
    const contract = loadContract(workflowFile, {});
    for (const issue of issues) {
      for (const attempt of [null, 2]) {
        const prompt = await renderPrompt(contract, { issue, attempt });
        expect(prompt).toContain(issue.title);
        expect(prompt).toContain(issue.description!);
        expect(prompt).toContain(issue.labels.join(', '));
        expect(prompt.includes('attempt 2')).toBe(attempt === 2);
        expect(findIdentifier([{ role: 'user', content: prompt }])).toBe(issue.identifier);
      }
    }
  });

  it('every issue has a script, and every script fits the contract limits', async () => {
    const { config } = loadContract(workflowFile, {});
    const scriptFiles = readdirSync(scriptsDir).filter((name) => name.endsWith('.json')).sort();
    expect(scriptFiles).toEqual(IDS.map((id) => `${id}.json`));
    for (const id of IDS) {
      const s = await script(id);
      expect(s.turns.length).toBeLessThanOrEqual(config.agent.maxTurns);
      const split = rounds(s);
      expect(split.length).toBe(EXPECTED[id]!.rounds.length);
      expect(split.length).toBeLessThanOrEqual(config.proof.maxRounds);
      for (const call of split.flat()) expect(TOOLS).toContain(call.name);
    }
  });
});

describe('demo scripts replayed against the demo repository', () => {
  it.each(IDS)('%s changes what it should and leaves the tests as the demo expects', { timeout: 60_000 }, async (id) => {
    const expected = EXPECTED[id]!;
    const repo = clone(`work-${id}`);
    // An issue starts once its blockers have landed: replay them first.
    for (const blocker of expected.blockedBy) {
      await replay(repo, blocker, false);
      git(repo, 'add', '-A');
      git(repo, 'commit', '-q', '-m', `${blocker} (landed)`);
    }
    const base = git(repo, 'rev-parse', 'HEAD').trim();

    const results = await replay(repo, id);
    expect(results.map((r) => r.tests.ok), results.map((r) => r.tests.output).join('\n')).toEqual(expected.rounds);
    results.forEach((result, round) => {
      // Where the agent ran the tests last in a passing round, it saw them pass too.
      const last = result.shell.at(-1);
      if (expected.rounds[round] && last) expect(last.code, `${last.command}\n${last.output}`).toBe(0);
    });
    if (id === 'DEMO-2') {
      expect(results[0]!.tests.output).toContain("Don'T Stop Me Now");
      expect(results[1]!.shell[0]?.code).not.toBe(0); // round 2 first reproduces the failure
    }
    expect(changedFiles(repo, base)).toEqual([...expected.changed].sort());
  });

  it('the finished work uses only Node built-ins and relative imports (the sandbox has no network)', async () => {
    const repo = clone('work-imports');
    for (const id of IDS) await replay(repo, id, false);
    for (const file of filesUnder(repo).filter((f) => f.endsWith('.js'))) {
      for (const [, specifier] of readFileSync(file, 'utf8').matchAll(/from\s+['"]([^'"]+)['"]/g)) {
        expect(specifier, `${file} imports ${specifier}`).toMatch(/^(node:|\.\.?\/)/);
      }
    }
  });

  it.each([
    ['DEMO-1', 'DEMO-2', 'DEMO-3', 'DEMO-4'],
    ['DEMO-3', 'DEMO-2', 'DEMO-1', 'DEMO-4'],
  ])('the branches land without conflicts in the order %s, %s, %s, %s', { timeout: 60_000 }, async (...order) => {
    const repo = clone(`land-${order.join('-')}`);
    const base = git(repo, 'rev-parse', 'HEAD').trim();
    for (const id of order) {
      // DEMO-1..3 start together from the initial main; DEMO-4 starts from main once DEMO-1 landed.
      git(repo, 'checkout', '-q', '-b', `cadenza/${id}`, EXPECTED[id]!.blockedBy.length > 0 ? 'main' : base);
      await replay(repo, id, false);
      git(repo, 'add', '-A');
      git(repo, 'commit', '-q', '-m', id);
      git(repo, 'checkout', '-q', 'main');
      git(repo, 'merge', '-q', '--no-ff', '--no-edit', `cadenza/${id}`);
    }
    const result = nodeTest(repo);
    expect(result.ok, result.output).toBe(true);
    const mod = (await import(join(repo, 'src', 'index.js'))) as Record<string, (...a: unknown[]) => unknown>;
    expect(Object.keys(mod).sort()).toEqual(['capitalize', 'slugify', 'titleCase', 'truncate', 'wordCount']);
    expect(mod.titleCase!("don't stop me now")).toBe("Don't Stop Me Now");
    expect(readFileSync(join(repo, 'README.md'), 'utf8')).toContain('## API');
  });
});
