/**
 * Symphony's own WORKFLOW.md, as a Symphony user brings it: its generic tracker layout
 * (tracker.provider.*) is read, what Cadenza needs and Symphony does not have is asked for by name,
 * and with exactly that added the file loads, its prompt untouched.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { sessionPrompt } from '../../activities/runtimes/common.ts';
import type { AgentSessionInput } from '../../activities/agent.ts';
import { ContractError, parseContract, renderPrompt, type Contract } from '../../lib/contract/index.ts';
import { codexConfigValue, shellWords } from '../../lib/contract/symphony.ts';
import type { Issue } from '../../lib/tracker/types.ts';

const FILE = path.join(import.meta.dirname, '..', 'fixtures', 'symphony', 'WORKFLOW.md');
const symphony = readFileSync(FILE, 'utf8');
const env = { LINEAR_API_KEY: 'lin_api_test' };

function refusal(text: string): ContractError {
  try {
    parseContract(text, FILE, env);
  } catch (error) {
    expect(error).toBeInstanceOf(ContractError);
    return error as ContractError;
  }
  throw new Error('expected the contract to be refused');
}

const ISSUE: Issue = {
  id: 'i1', identifier: 'SYM-1', title: 'T', description: null, priority: null, state: 'Todo', branch_name: null, url: 'https://linear.app/x',
  labels: [], blocked_by: [], created_at: '2026-07-20T00:00:00Z', updated_at: '2026-07-20T00:00:00Z',
};

/** Adds front-matter lines right after the opening `---`, the way a person would paste them. */
const withLines = (text: string, ...lines: string[]) => text.replace(/^---\n/, `---\n${lines.join('\n')}\n`);

describe("Symphony's own WORKFLOW.md", () => {
  it('asks for the repository by name, from the clone in its after_create hook', () => {
    const error = refusal(symphony);
    expect(error.key).toBe('repo.url');
    expect(error.message).toContain('hooks.after_create clones https://github.com/openai/symphony');
    expect(error.message).toContain('Add\n  repo: { url: https://github.com/openai/symphony, base_branch: main }');
  });

  it('then asks for a proof, and with both it loads: provider layout read, prompt kept, Symphony-only keys named', async () => {
    const repoLine = 'repo: { url: https://github.com/openai/symphony, base_branch: main }';
    const noProof = refusal(withLines(symphony, repoLine));
    expect(noProof.key).toBe('proof.commands');
    expect(noProof.message).toContain('proof: { commands: [{ name: tests, run: npm test }] }');

    const contract = parseContract(withLines(symphony, repoLine, 'proof: { commands: [{ name: tests, run: cd elixir && mix test }] }'), FILE, env);
    const { tracker, agent, polling } = contract.config;
    expect(tracker).toMatchObject({ kind: 'linear', projectSlug: 'symphony-0c79b11b75ea', apiKey: { env: 'LINEAR_API_KEY' } });
    expect(tracker.activeStates).toEqual(['Todo', 'In Progress', 'Merging', 'Rework']);
    // Its codex.command selects the Codex runtime.
    expect(agent).toMatchObject({ maxConcurrentAgents: 10, maxTurns: 20, runtime: 'codex', codex: { command: expect.stringMatching(/^codex .* app-server$/) } });
    expect(polling.intervalMs).toBe(5000);
    expect(contract.promptTemplate).toBe(symphony.slice(symphony.indexOf('\n---\n', 4) + 5).trim());
    const prompt = await renderPrompt(contract, { issue: ISSUE, attempt: null });
    expect(prompt).toContain('You are working on a Linear ticket `SYM-1`');
    // No model section: the model is the one its codex.command names.
    expect(contract.config.model.name).toBe('gpt-5.5');
    // What Cadenza does not apply as Symphony does is said, once per thing; the clone left in the hook is pointed out.
    const warnings = contract.warnings ?? [];
    expect(warnings).toContain(`${FILE}: workspace.root (~/code/symphony-workspaces) is not used: each issue's workspace is a Docker volume of its own, with the repository at /workspace/repo in the issue's sandbox; nothing is created under that folder`);
    expect(warnings).toContain(`${FILE}: codex.thread_sandbox (workspace-write) and codex.turn_sandbox_policy ({type: "workspaceWrite", networkAccess: true}) are not applied: `
      + "codex runs with its own sandbox off (danger-full-access) inside Cadenza's Docker sandbox, which is the boundary (sandbox.*: no network, non-root, the workspace volume its only mount); "
      + "networkAccess is not granted: the agent's commands reach only what sandbox.egress.agent allows (none by default)");
    expect(warnings.join('\n')).toContain('hooks.after_create runs git clone https://github.com/openai/symphony, but the workspace already holds the checkout');
    // approval_policy never is what Cadenza does; nothing is reported twice or as unknown.
    expect(warnings.join('\n')).not.toMatch(/approval_policy|is not a key Cadenza reads|tracker\.provider\.project_slug/);
    expect(warnings).toHaveLength(3);
  });

  it("reads codex.command's --config settings as codex does, and says where Cadenza's own settings win", () => {
    expect(shellWords(`codex --config 'model="gpt-5.5"' -c "a=\\"b c\\"" x\\ y app-server`)).toEqual(['codex', '--config', 'model="gpt-5.5"', '-c', 'a="b c"', 'x y', 'app-server']);
    expect(codexConfigValue(`codex --config 'model="gpt-5.5"' app-server`, 'model')).toBe('gpt-5.5');
    expect(codexConfigValue('codex -c model=o3 app-server -c model=gpt-5', 'model')).toBe('gpt-5');
    expect(codexConfigValue("codex --config=model='o4-mini' app-server", 'model')).toBe('o4-mini');
    expect(codexConfigValue('codex -c model_reasoning_effort=xhigh app-server', 'model')).toBeNull();

    const load = (front: string) => parseContract(['---', 'repo: { url: ./r }', 'proof: { commands: [{ name: tests, run: npm test }] }', front, '---', 'Work.'].join('\n'), FILE, env);
    const both = load(`model: { name: gpt-4.1 }\ncodex: { command: "codex -c model=o3 -c model_provider=azure app-server", approval_policy: on-request }`);
    expect(both.config.model.name).toBe('gpt-4.1');
    expect(both.warnings).toEqual([
      `${FILE}: codex.approval_policy (on-request) is not applied: Cadenza runs codex unattended with approval_policy never and grants what it asks; the Docker sandbox is the boundary, and a person approves the landing instead`,
      `${FILE}: codex.command sets model "o3" and model.name is "gpt-4.1": codex runs with model.name`,
      `${FILE}: codex.command sets model_provider "azure": Cadenza replaces it with its model gateway (the worker's endpoint and key; the key never enters the sandbox)`,
    ]);
    // Codex's own full access is what Cadenza runs anyway: nothing to say.
    expect(load('codex: { command: codex app-server, thread_sandbox: danger-full-access, turn_sandbox_policy: { type: dangerFullAccess } }').warnings).toBeUndefined();
    // Not the codex runtime: codex.* is not read at all, and said so key by key.
    expect(load('agent: { runtime: cadenza }\ncodex: { command: codex app-server, thread_sandbox: workspace-write }').warnings).toEqual([
      `${FILE}: codex.thread_sandbox is not a key Cadenza reads here; it is kept and ignored`,
    ]);
  });

  it('renders its {% if attempt %} block for every session after the first: a retry, or a later round on the same workspace', async () => {
    const repoLine = 'repo: { url: https://github.com/openai/symphony, base_branch: main }';
    const contract: Contract = parseContract(withLines(symphony, repoLine, 'proof: { commands: [{ name: tests, run: npm test }] }'), FILE, env);
    const prompt = (round: number, attempt: number) => new MockActivityEnvironment({ attempt }).run(
      () => sessionPrompt(Context.current(), { contract, issue: ISSUE, round, feedback: null } as unknown as AgentSessionInput),
    );
    expect(await prompt(1, 1)).not.toContain('Follow-up context');
    expect(await prompt(1, 2)).toContain('This is follow-up attempt #1.');
    expect(await prompt(2, 1)).toContain('This is follow-up attempt #1.');
    expect(await prompt(3, 2)).toContain('This is follow-up attempt #3.');
  });

  it('tracker.provider keys win over the same keys directly under tracker', () => {
    const text = [
      '---',
      'tracker: { kind: linear, project_slug: old, provider: { project_slug: new, api_key: $OTHER_KEY } }',
      'repo: { url: ./r }',
      'proof: { commands: [{ name: tests, run: npm test }] }',
      '---',
      'Work.',
    ].join('\n');
    const { config } = parseContract(text, FILE, { OTHER_KEY: 'x' });
    expect(config.tracker).toMatchObject({ projectSlug: 'new', apiKey: { env: 'OTHER_KEY' } });
  });
});
