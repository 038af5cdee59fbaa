/**
 * Long runs: a run with many rounds continues as new between rounds, so no single run's history
 * grows with the number of rounds or turns. The issue still lands once, from one workpad, with every
 * turn played exactly once across the chain of runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScriptTurn } from '../../lib/scripted-model/index.ts';
import { WORKPAD_MARKER, type IssueWorkflowResult } from '../../workflows/definitions.ts';
import { FAST, World, sh } from '../helpers/world.ts';

const ROUNDS = 10;
const TURNS_PER_ROUND = 5;
/** Bounds every run in the chain must stay under; one run holding all ten rounds has about 600 events. */
const MAX_EVENTS_PER_RUN = 200;
const MAX_BYTES_PER_RUN = 128 * 1024;

/** Each round writes a note and finishes; proof passes only once the last round writes READY. */
function script(): ScriptTurn[] {
  const turns: ScriptTurn[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const note = `notes/round-${round}.md`;
    turns.push(
      { tool_calls: [{ name: 'write_file', arguments: { path: note, content: `Round ${round}\n` } }] },
      { tool_calls: [{ name: 'list_files', arguments: { path: 'notes' } }] },
      { tool_calls: [{ name: 'read_file', arguments: { path: note } }] },
      round === ROUNDS
        ? { tool_calls: [{ name: 'write_file', arguments: { path: 'notes/READY', content: 'ready\n' } }] }
        : { tool_calls: [{ name: 'read_file', arguments: { path: 'package.json' } }] },
      { tool_calls: [{ name: 'finish', arguments: { summary: `Round ${round} written.` } }] },
    );
  }
  return turns;
}

describe('long runs', () => {
  let world: World;
  beforeAll(async () => {
    world = await World.create({
      extraContract: [
        'proof:',
        '  commands:',
        '    - { name: ready, run: "test -f notes/READY", timeout_ms: 20000 }',
        `  max_rounds: ${ROUNDS + 2}`,
        'landing: { strategy: merge, target_branch: main, require_approval: false }',
        'hooks: {}',
      ].join('\n'),
    });
  });
  afterAll(async () => world?.close());

  it(`a ${ROUNDS * TURNS_PER_ROUND}-turn run over ${ROUNDS} rounds continues as new and keeps every run's history small`, async () => {
    const id = world.id('long');
    await world.addIssue({ identifier: id, title: 'Write the notes' }, script());
    const result = await world.run(async () => {
      const handle = await world.start(id, { ...FAST, continueAsNewAfterEvents: 120 });
      const done = (await handle.result()) as IssueWorkflowResult;
      // The last run of the chain starts from carried state: a replay fixture for that path.
      await world.recordHistory(handle, 'continued-run');
      return done;
    });
    expect(result.phase).toBe('Done');
    expect(result.rounds).toBe(ROUNDS);

    // Every turn was asked once, in order, across all the runs of the chain.
    const turns = world.modelRequests.filter((request) => request.identifier === id).map((request) => request.turn);
    expect(turns).toEqual([...Array(ROUNDS * TURNS_PER_ROUND).keys()]);

    const runs = [];
    for await (const run of world.client.workflow.list({ query: `WorkflowId = '${world.handle(id).workflowId}'` })) runs.push(run);
    expect(runs.length).toBeGreaterThanOrEqual(3);
    expect(runs.filter((run) => run.status.name === 'CONTINUED_AS_NEW')).toHaveLength(runs.length - 1);
    for (const run of runs) {
      expect(run.historyLength, `events in run ${run.runId}`).toBeLessThanOrEqual(MAX_EVENTS_PER_RUN);
      expect(run.historySize ?? 0, `bytes in run ${run.runId}`).toBeLessThanOrEqual(MAX_BYTES_PER_RUN);
    }

    // One landing with every round's work, and one workpad whose log runs from the first round to the last.
    const tree = await sh(world.remote, 'git ls-tree --name-only -r main notes');
    expect(tree.split('\n').sort()).toEqual(['notes/READY', ...Array.from({ length: ROUNDS }, (_, i) => `notes/round-${i + 1}.md`)].sort());
    const subjects = (await sh(world.remote, 'git log --format=%s main')).split('\n');
    expect(subjects.filter((subject) => subject === `Land ${id}: Write the notes`)).toHaveLength(1);
    const workpads = (await world.tracker.listComments(id)).filter((comment) => comment.body.startsWith(WORKPAD_MARKER));
    expect(workpads).toHaveLength(1);
    expect(workpads[0]!.body).toContain(`Cadenza started working on ${id}`);
    for (let round = 1; round < ROUNDS; round++) expect(workpads[0]!.body).toContain(`Cadenza proof for round ${round}: FAILED`);
    expect(workpads[0]!.body).toContain(`Cadenza proof for round ${ROUNDS}: passed`);
    expect(workpads[0]!.body).toContain(`Landed ${id} as commit \`${result.landedCommit}\``);
  }, 600_000);
});
