/**
 * A throw-away world for one benchmark (the bench's own copy of test/helpers/world.ts, without
 * vitest): bare git remotes made from demo/repo, a local tracker folder, scripts for the scripted
 * model, and a WORKFLOW.md whose contract every run of the benchmark uses.
 */
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { projectRoot } from '../../infra/paths.ts';
import { loadContract, type Contract } from '../../lib/contract/index.ts';
import type { ScriptTurn } from '../../lib/scripted-model/index.ts';
import { LocalTracker, writeIssueFile } from '../../lib/tracker/local.ts';
import type { Issue } from '../../lib/tracker/types.ts';
import { onCleanup, sh } from './common.ts';

/** The contract of a trivial issue: one required check, landing without a person. */
export const BENCH_CONTRACT = [
  'tracker: { kind: local, path: ./issues }',
  'repo: { url: ./remote.git, base_branch: main }',
  'sandbox: { image: cadenza-sandbox:latest, cpus: 1, memory_mb: 512, pids_limit: 256 }',
  'agent: { max_turns: 12 }',
  'proof:\n  commands:\n    - { name: tests, run: npm test, timeout_ms: 600000 }\n  max_rounds: 3',
  'landing: { strategy: merge, target_branch: main, require_approval: false }',
];

export class BenchWorld {
  readonly root: string;
  readonly issues: string;
  readonly scripts: string;
  readonly state: string;
  readonly workflowFile: string;
  readonly seed: string;
  readonly tracker: LocalTracker;
  contract!: Contract;
  private readonly forget: () => void;

  private constructor(readonly name: string) {
    this.root = mkdtempSync(path.join(tmpdir(), `cadenza-bench-${name}-`));
    this.issues = path.join(this.root, 'issues');
    this.scripts = path.join(this.root, 'scripts');
    this.state = path.join(this.root, 'state');
    this.workflowFile = path.join(this.root, 'WORKFLOW.md');
    this.seed = path.join(this.root, 'seed');
    this.tracker = new LocalTracker(this.issues, { onWarning: () => {} });
    this.forget = onCleanup(async () => rmSync(this.root, { recursive: true, force: true }));
  }

  /** `overrides` replace the default contract lines with the same top-level key. */
  static async create(name: string, overrides: string[] = []): Promise<BenchWorld> {
    const world = new BenchWorld(name);
    cpSync(path.join(projectRoot, 'demo', 'repo'), world.seed, { recursive: true });
    await sh(world.seed, 'git init -q -b main && git add -A && git -c user.name=Seed -c user.email=seed@example.invalid commit -qm "textkit: initial import"');
    await world.createRemote('remote');
    const keyOf = (line: string) => line.slice(0, line.indexOf(':'));
    const replaced = new Set(overrides.map(keyOf));
    const lines = [...BENCH_CONTRACT.filter((line) => !replaced.has(keyOf(line))), ...overrides];
    writeFileSync(world.workflowFile, ['---', ...lines, '---', 'Issue {{ issue.identifier }}: {{ issue.title }}', '', '{{ issue.description }}', ''].join('\n'));
    mkdirSync(world.scripts, { recursive: true });
    world.contract = loadContract(world.workflowFile, { ...process.env, OPENAI_API_KEY: '', OPENAI_BASE_URL: '' });
    return world;
  }

  /** A new bare remote `<name>.git` holding the seed commit; returns its path. */
  async createRemote(name: string): Promise<string> {
    const remote = path.join(this.root, `${name}.git`);
    await sh(this.root, `git clone -q --bare seed ${remote}`);
    return remote;
  }

  /** The world's contract with another repo.url (each issue of the concurrency benchmark has its own remote). */
  contractWithRemote(remote: string): Contract {
    return { ...this.contract, config: { ...this.contract.config, repo: { ...this.contract.config.repo, url: remote } } };
  }

  async addIssue(identifier: string, title: string, turns: ScriptTurn[]): Promise<Issue> {
    await writeIssueFile(this.issues, { identifier, title, state: 'Todo', description: 'A trivial change for the benchmark.' });
    writeFileSync(path.join(this.scripts, `${identifier}.json`), JSON.stringify({ turns }, null, 2));
    const [issue] = await this.tracker.fetchIssuesByIds([identifier]);
    if (!issue) throw new Error(`issue ${identifier} was written but cannot be read back`);
    return issue;
  }

  close(): void {
    this.forget();
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** A JavaScript identifier derived from an issue identifier, so every run writes its own files. */
export function functionName(identifier: string): string {
  return `bench${identifier.replace(/[^A-Za-z0-9]/g, '')}`;
}

/** The two files a trivial issue adds: a function and its test. */
export function trivialFiles(identifier: string): Array<{ path: string; content: string }> {
  const fn = functionName(identifier);
  return [
    { path: `src/${fn}.js`, content: `export function ${fn}(text) {\n  return \`\${text}!\`;\n}\n` },
    {
      path: `test/${fn}.test.js`,
      content: `import test from 'node:test';\nimport assert from 'node:assert/strict';\nimport { ${fn} } from '../src/${fn}.js';\n\ntest('${fn}', () => assert.equal(${fn}('hi'), 'hi!'));\n`,
    },
  ];
}

/**
 * The scripted agent of a trivial issue: look around, read a file, write a function and its test,
 * finish. `delayMs` slows the middle turns (the resume benchmark kills the worker during them).
 */
export function trivialScript(identifier: string, delayMs = 0): ScriptTurn[] {
  const [source, test] = trivialFiles(identifier);
  const delay = delayMs ? { delay_ms: delayMs } : {};
  return [
    { tool_calls: [{ name: 'list_files', arguments: { path: '.' } }] },
    { ...delay, tool_calls: [{ name: 'read_file', arguments: { path: 'src/index.js' } }] },
    { ...delay, tool_calls: [{ name: 'write_file', arguments: { path: source!.path, content: source!.content } }] },
    { ...delay, tool_calls: [{ name: 'write_file', arguments: { path: test!.path, content: test!.content } }] },
    { tool_calls: [{ name: 'finish', arguments: { summary: `Added ${functionName(identifier)}() with a test.` } }] },
  ];
}
