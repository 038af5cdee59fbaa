/**
 * Symphony's own WORKFLOW.md, as a Symphony user brings it: its generic tracker layout
 * (tracker.provider.*) is read, what Cadenza needs and Symphony does not have is asked for by name,
 * and with exactly that added the file loads, its prompt untouched.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ContractError, parseContract, renderPrompt } from '../../lib/contract/index.ts';

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
    const prompt = await renderPrompt(contract, {
      issue: { id: 'i1', identifier: 'SYM-1', title: 'T', description: null, priority: null, state: 'Todo', branch_name: null, url: 'https://linear.app/x', labels: [], blocked_by: [], created_at: '2026-07-20T00:00:00Z', updated_at: '2026-07-20T00:00:00Z' },
      attempt: null,
    });
    expect(prompt).toContain('You are working on a Linear ticket `SYM-1`');
    // Keys only Symphony reads are kept and named; the clone left in the hook is pointed out.
    const warnings = (contract.warnings ?? []).join('\n');
    expect(warnings).toContain('codex.thread_sandbox is not a key Cadenza reads here');
    expect(warnings).toContain('hooks.after_create runs git clone https://github.com/openai/symphony, but the workspace already holds the checkout');
    expect(warnings).not.toContain('tracker.provider.project_slug');
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
