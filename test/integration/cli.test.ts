/**
 * The `cadenza` CLI refusing bad input: a malformed WORKFLOW.md stops `up` with the contract's error
 * code before any workflow starts; decisions on missing runs or without --by are refused clearly.
 * `up` honours CADENZA_TEMPORAL_ADDRESS, so it runs against the test server instead of starting one.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Client, type Connection } from '@temporalio/client';
import { projectRoot } from '../../infra/paths.ts';
import { run } from '../../infra/process.ts';
import { writeIssueFile } from '../../lib/tracker/local.ts';
import { testClient } from '../helpers/temporal.ts';

const root = mkdtempSync(path.join(tmpdir(), 'cadenza-cli-'));
/** Unique per run, so the "no workflow was started" checks cannot see another run's workflows. */
const prefix = `CLI${Date.now().toString(36).toUpperCase()}`;

async function cadenza(args: string[]) {
  const result = await run(path.join(projectRoot, 'node_modules/.bin/tsx'), ['workers/cli.ts', ...args], {
    cwd: projectRoot,
    env: {
      ...process.env,
      CADENZA_STATE_DIR: path.join(root, 'state'),
      CADENZA_TEMPORAL_ADDRESS: inject('temporalAddress'),
      OPENAI_API_KEY: '',
    },
  });
  return { code: result.code, stdout: result.stdout, stderr: result.stderr, output: result.stdout + result.stderr };
}

function expectNoStackTrace(output: string) {
  expect(output).not.toMatch(/\n\s+at .+:\d+:\d+\)?/);
  expect(output).not.toContain('unexpected failure');
}

const VALID_FRONT = ['tracker: { kind: local, path: ./issues }', 'repo: { url: ./remote.git, base_branch: main }', 'proof: { commands: [{ name: tests, run: npm test }] }'];

const MALFORMED: Array<{ name: string; code: string; lines: string[]; expect: string[] }> = [
  {
    name: 'bad YAML',
    code: 'workflow_parse_error',
    lines: ['---', ...VALID_FRONT, 'agent: { max_turns: [1, 2', '---', 'Issue {{ issue.identifier }}'],
    expect: ['invalid YAML front matter'],
  },
  {
    name: 'front matter that is not a map',
    code: 'workflow_front_matter_not_a_map',
    lines: ['---', '- tracker', '- repo', '---', 'Issue {{ issue.identifier }}'],
    expect: ['got a list', 'allowed: a YAML map'],
  },
  {
    name: 'a proof with no required command',
    code: 'invalid_config',
    lines: ['---', ...VALID_FRONT.slice(0, 2), 'proof: { max_rounds: 2 }', '---', 'Issue {{ issue.identifier }}'],
    expect: ['proof.commands: no proof command is given', 'proof.allow_no_checks: true'],
  },
  {
    name: 'an unknown template variable',
    code: 'template_render_error',
    lines: ['---', ...VALID_FRONT, '---', 'Issue {{ issue.identifier }}: {{ issue.nonsense }}'],
    expect: ['issue.nonsense'],
  },
  {
    name: 'a value of the wrong type',
    code: 'invalid_config',
    lines: ['---', ...VALID_FRONT, 'agent: { max_turns: "many" }', '---', 'Issue {{ issue.identifier }}'],
    expect: ['key: agent.max_turns', 'value: "many"', 'allowed: an integer >= 1'],
  },
];

describe('cadenza CLI', () => {
  let client: Client;
  let connection: Connection;

  beforeAll(async () => {
    ({ client, connection } = await testClient());
  });
  afterAll(async () => {
    await connection?.close();
    rmSync(root, { recursive: true, force: true });
  });

  describe('up refuses a malformed WORKFLOW.md with its error code, exit 1, and starts nothing', () => {
    MALFORMED.forEach((testCase, index) => {
      it(testCase.name, async () => {
        const dir = path.join(root, `contract-${index}`);
        const identifier = `${prefix}-${index}`;
        mkdirSync(dir, { recursive: true });
        // A ready issue: with a valid contract, up would start a workflow for it.
        await writeIssueFile(path.join(dir, 'issues'), { identifier, title: 'Ready', state: 'Todo' });
        const file = path.join(dir, 'WORKFLOW.md');
        writeFileSync(file, `${testCase.lines.join('\n')}\n`);

        const { code, output, stderr } = await cadenza(['up', '--workflow', file]);

        expect(code, output).toBe(1);
        expect(stderr).toContain(`[${testCase.code}]`);
        expect(stderr).toContain(file);
        for (const text of testCase.expect) expect(stderr).toContain(text);
        expect(stderr).toContain('no workflow was started');
        // One message: a single "cadenza:" line and its hint.
        expect(stderr.match(/^cadenza: /gm)).toHaveLength(1);
        expectNoStackTrace(output);
        // It stopped before the worker and before any issue.
        expect(output).not.toContain('Worker on task queue');
        const started = [];
        for await (const run of client.workflow.list({ query: `CadenzaIssue = '${identifier}'` })) started.push(run.workflowId);
        expect(started).toEqual([]);
      });
    });
  });

  it('approve on an issue without a workflow says so, exit 1', async () => {
    const identifier = `${prefix}-none`;
    const { code, output, stderr } = await cadenza(['approve', identifier, '--by', 'tester']);
    expect(code, output).toBe(1);
    // No WORKFLOW.md names a project here: the run is looked for by its issue.
    expect(stderr).toContain(`cadenza: no workflow for issue ${identifier} on ${inject('temporalAddress')} (searched by issue: there is no WORKFLOW.md at`);
    expect(stderr).toContain('npx cadenza list');
    expectNoStackTrace(output);
  });

  it('approve without --by is a usage error naming --by, exit 2', async () => {
    const { code, stderr } = await cadenza(['approve', 'DEMO-1']);
    expect(code).toBe(2);
    expect(stderr).toContain('approve needs --by NAME');
    expect(stderr).toContain('usage: cadenza <command>');
  });

  it('reject without --feedback, an unknown command and an unknown flag are usage errors, exit 2', async () => {
    const rejected = await cadenza(['reject', 'DEMO-1', '--by', 'tester']);
    expect(rejected.code).toBe(2);
    expect(rejected.stderr).toContain('reject needs --feedback TEXT');
    const unknown = await cadenza(['launch']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "launch"');
    const flag = await cadenza(['status', '--verbose']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain('unknown option --verbose');
    expect(flag.stderr).toContain('usage: cadenza <command>');
  });
});
