/**
 * Symphony's own WORKFLOW.md (test/fixtures/symphony) runs under Cadenza with only what Cadenza's
 * errors ask for added: the repository to land to (a local bare repository here), the git clone
 * taken out of hooks.after_create, and a proof command. Everything else is Symphony's: the
 * tracker.provider layout, its states (Merging, Rework), workspace.root, the remaining hooks, its
 * codex.command with its --config flags, approval and sandbox policies, no `model:` section, and its
 * Liquid prompt. The poll Schedule finds the issue in the fake Linear (Linear's GraphQL, the real
 * @linear/sdk), the real codex runs in the sandbox against the scripted model, the proof passes, a
 * person approves, it lands, and Linear sees the states and the workpad Cadenza writes.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { approve, issueStatus, reject } from '../../client/issues.ts';
import { CODEX_VERSION } from '../../infra/agents.ts';
import { ContractError, loadContract } from '../../lib/contract/index.ts';
import { MANAGED_LABEL, ROLE_LABEL, WORKFLOW_LABEL } from '../../lib/sandbox/names.ts';
import type { ScriptTurn } from '../../lib/scripted-model/index.ts';
import { startFakeLinear, type FakeLinear } from '../fakes/linear-server.ts';
import { EMPTY_TEXT_COMMAND, SHOUT_FILES_COMMAND } from '../fixtures/scripts.ts';
import { World, historyText } from '../helpers/world.ts';

const SYMPHONY = readFileSync(path.join(import.meta.dirname, '..', 'fixtures', 'symphony', 'WORKFLOW.md'), 'utf8');
const PROJECT_SLUG = 'symphony-0c79b11b75ea';
const LINEAR_KEY = 'lin_api_symphony_e2e_DO_NOT_LEAK';
const MODEL_KEY = 'sk-symphony-e2e-0123456789-DO-NOT-LEAK';
/** Symphony's team: its status map (WORKFLOW.md's prompt) plus Linear's closing states. */
const TEAM_STATES = ['Backlog', 'Todo', 'In Progress', 'Human Review', 'Merging', 'Rework', 'Done', 'Closed', 'Canceled', 'Duplicate'];

const exec = (cmd: string): ScriptTurn => ({ tool_calls: [{ name: 'exec_command', arguments: { cmd, tty: false, yield_time_ms: 20_000 } }] });
/** Round 1, then (turn 3 on, the same codex thread continued with the feedback) the reviewer's request in round 2. */
const SHOUT_BY_CODEX: ScriptTurn[] = [
  exec(SHOUT_FILES_COMMAND),
  exec('npm test 2>&1 | tail -8'),
  { say: 'Added shout() with a test; npm test passes.' },
  exec(EMPTY_TEXT_COMMAND),
  exec('npm test 2>&1 | tail -8'),
  { say: "shout('') is empty now; npm test passes." },
];

/** Loads the text as WORKFLOW.md at `file`; returns the refusal, or null when it loads. */
function refusal(file: string, text: string, env: NodeJS.ProcessEnv): ContractError | null {
  writeFileSync(file, text);
  try {
    loadContract(file, env);
    return null;
  } catch (error) {
    expect(error).toBeInstanceOf(ContractError);
    return error as ContractError;
  }
}

/** Front-matter lines pasted right after the opening `---`, as a person would. */
const withLines = (text: string, ...lines: string[]) => text.replace(/^---\n/, `---\n${lines.join('\n')}\n`);

describe("Symphony's own WORKFLOW.md, end to end", () => {
  let world: World | undefined;
  let linear: FakeLinear | undefined;
  afterAll(async () => {
    await world?.close();
    await linear?.close();
  });

  it('runs with what the errors ask for: polled from Linear, codex in the sandbox, proof, a rejected round, approval, landing, Linear updated', async () => {
    linear = await startFakeLinear({ apiKey: LINEAR_KEY, projectSlug: PROJECT_SLUG, teamStates: TEAM_STATES });
    world = await World.create({ modelKey: MODEL_KEY, env: { LINEAR_API_KEY: LINEAR_KEY } });
    const env = world.wired.deps.env!;

    // Linear itself is the local fake: the one line no error asked for (Symphony's own key for it).
    const symphony = SYMPHONY.replace(`    project_slug: "${PROJECT_SLUG}"\n`, `$&    endpoint: "${linear.url}"\n`);
    expect(symphony).not.toBe(SYMPHONY);

    // 1. The repository: the error names the clone in after_create and says what to add.
    const noRepo = refusal(world.workflowFile, symphony, env)!;
    expect(noRepo.message).toContain('Add\n  repo: { url: https://github.com/openai/symphony, base_branch: main }\nand take the git clone out of hooks.after_create');
    const cloneLine = '    git clone --depth 1 https://github.com/openai/symphony .\n';
    expect(symphony).toContain(cloneLine);
    const withRepo = withLines(symphony, 'repo: { url: ./remote.git, base_branch: main }').replace(cloneLine, '');

    // 2. The proof: the error gives the line; npm test is this repository's test command.
    const noProof = refusal(world.workflowFile, withRepo, env)!;
    expect(noProof.message).toContain('Add one, e.g. "proof: { commands: [{ name: tests, run: npm test }] }"');
    const runnable = withLines(withRepo, 'proof: { commands: [{ name: tests, run: npm test }] }');
    expect(refusal(world.workflowFile, runnable, env)).toBeNull();
    world.contract = loadContract(world.workflowFile, env);
    // The prompt is Symphony's, unchanged.
    expect(world.contract.promptTemplate).toBe(SYMPHONY.slice(SYMPHONY.indexOf('\n---\n', 4) + 5).trim());

    const id = world.id('1');
    linear.addIssue({ identifier: id, title: 'Add shout', description: 'Add shout(text): the text in capitals with "!".', state: 'Todo', priority: 2 });
    writeFileSync(path.join(world.scripts, `${id}.json`), JSON.stringify({ turns: SHOUT_BY_CODEX }));

    await world.run(async () => {
      await world!.schedulePolls();
      const handle = world!.handle(id);
      const waiting = await world!.waitForPhase(handle, 'AwaitingApproval', 300_000);
      // The model codex.command asks for (--config 'model="gpt-5.5"'), through the real codex.
      expect(waiting.model).toBe(`codex ${CODEX_VERSION} (gpt-5.5)`);
      expect(waiting.proof[0]!.passed).toBe(true);
      expect(waiting.proof[0]!.changedFiles.sort()).toEqual(['src/shout.js', 'test/shout.test.js']);
      const requests = world!.modelRequests.filter((request) => request.identifier === id);
      expect(requests.map((request) => [request.wire, request.model, request.turn])).toEqual([['responses', 'gpt-5.5', 0], ['responses', 'gpt-5.5', 1], ['responses', 'gpt-5.5', 2]]);
      // Symphony's Liquid prompt, first run: attempt is null, so no follow-up context.
      const prompt = requests[0]!.lastUserMessage!;
      expect(prompt).toContain(`You are working on a Linear ticket \`${id}\``);
      // Cadenza moved the issue to In Progress when the work started: the prompt says where it is now.
      expect(prompt).toContain('Title: Add shout\nCurrent status: In Progress');
      expect(prompt).toContain('Add shout(text): the text in capitals with "!".');
      expect(prompt).not.toContain('Follow-up context');
      expect(requests[2]!.lastUserMessage).toMatch(/# fail 0/);
      // Linear: moved to Human Review with the proof on the workpad.
      expect(linear!.issue(id).state).toBe('Human Review');
      expect(linear!.issue(id).comments.map((comment) => comment.body).join('\n')).toContain('Cadenza proof for round 1: passed');

      // A reviewer asks for more: round 2 is a follow-up attempt in Symphony's prompt, on the same workspace.
      await reject(handle, 'bob', "shout('') should be empty, not \"!\"");
      await world!.waitUntil(async () => {
        const status = await issueStatus(handle);
        if (status.phase === 'Failed') throw new Error(`the run failed: ${status.lastError}`);
        return status.round === 2 && status.phase === 'AwaitingApproval';
      }, 'round 2 awaits approval', 300_000);
      // Round 2 continues round 1's codex thread: its requests carry round 1's three answers.
      const round2 = world!.modelRequests.filter((request) => request.identifier === id).slice(3);
      expect(round2.map((request) => request.turn)).toEqual([3, 4, 5]);
      expect(round2[0]!.lastUserMessage).toContain('This is follow-up attempt #1.');
      expect(round2[0]!.lastUserMessage).toContain("shout('') should be empty");
      // Back in In Progress after the rejection (it was in Human Review), not as it was at dispatch.
      expect(round2[0]!.lastUserMessage).toContain('Title: Add shout\nCurrent status: In Progress');
      // Its npm test ran the new test too.
      const passes = (output: string | null) => Number(/# pass (\d+)\n# fail 0\n/.exec(output ?? '')?.[1]);
      expect(passes(round2[2]!.lastUserMessage)).toBe(passes(requests[2]!.lastUserMessage) + 1);

      await approve(handle, 'alice');
      const result = await handle.result();
      expect(result.phase).toBe('Done');
      expect(await world!.remoteLog()).toContain(`Land ${id}: Add shout`);
      const issue = linear!.issue(id);
      expect(issue.stateHistory).toEqual(['Todo', 'In Progress', 'Human Review', 'In Progress', 'Human Review', 'Done']);
      // One workpad comment, kept up to date.
      expect(issue.comments).toHaveLength(1);
      expect(issue.comments[0]!.body).toContain('Landing rejected by bob');
      expect(issue.comments[0]!.body).toContain(`Landed ${id} as commit`);
      expect((await issueStatus(handle)).phase).toBe('Done');
      // before_remove (`cd elixir && ...`) fails here, harmlessly: the sandbox is gone all the same.
      const sandboxes = await world!.docker.listContainers({ all: true, filters: { label: [MANAGED_LABEL, `${ROLE_LABEL}=sandbox`] } });
      expect(sandboxes.filter((container) => container.Labels[WORKFLOW_LABEL]?.endsWith(handle.workflowId))).toEqual([]);

      // The poll Schedule started it, once; what Cadenza does not do Symphony's way is in its warnings.
      const polls = await world!.pollResults();
      expect(polls.flatMap((poll) => poll.started)).toEqual([id]);
      const warnings = polls.at(-1)!.contractWarnings!.join('\n');
      expect(warnings).toContain('workspace.root');
      expect(warnings).toContain('codex.turn_sandbox_policy');
      expect(warnings).toContain('codex.thread_sandbox');
      expect(warnings).not.toContain('codex.approval_policy');

      const history = historyText(await handle.fetchHistory());
      expect(history).not.toContain(LINEAR_KEY);
      expect(history).not.toContain(MODEL_KEY);
    });
  });
});
