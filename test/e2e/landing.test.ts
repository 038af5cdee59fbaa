/**
 * Landing when the target branch moved while the run waited for approval: a change elsewhere is
 * merged and the required checks run again on the merged tree; a conflicting change stops landing,
 * and the next round's agent gets the conflicted files, brings its branch up to date, and lands.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { approve } from '../../client/issues.ts';
import { WORKPAD_MARKER } from '../../workflows/definitions.ts';
import { SHOUT } from '../fixtures/scripts.ts';
import { World, historyText, sh } from '../helpers/world.ts';

describe('landing onto a target that moved', () => {
  // A world per case: each lands shout() on its own remote.
  let world: World;
  beforeEach(async () => {
    world = await World.create();
  });
  afterEach(async () => world?.close());

  it('merges a change made elsewhere, runs the required checks again on the merged tree, and lands both', async () => {
    const id = world.id('moved');
    await world.addIssue({ identifier: id, title: 'Add shout' }, SHOUT);
    await world.run(async () => {
      const handle = await world.start(id);
      await world.waitForPhase(handle, 'AwaitingApproval');
      const other = await world.pushToMain('docs/other.md', 'Landed by someone else.\n');
      await approve(handle, 'alice');
      const result = await handle.result();
      expect(result.phase).toBe('Done');

      // The landing merge sits on top of the other change and carries both.
      expect(await sh(world.remote, `git rev-parse ${result.landedCommit}^1`)).toBe(other);
      expect(await sh(world.remote, 'git ls-tree --name-only -r main')).toMatch(/docs\/other\.md[\s\S]*src\/shout\.js/);
      // The checks ran again, on the merged tree: their output is kept under its own label.
      expect(historyText((await handle.fetchHistory()).events)).toContain('check:tests (merged)');
    });
  });

  it('stops at a merge conflict, gives the agent the conflicted files, and lands once the agent resolved them', async () => {
    const id = world.id('conflict');
    const resolve = 'git -c user.name=Agent -c user.email=agent@example.invalid merge --no-edit -X ours refs/remotes/origin/main && npm test';
    await world.addIssue({ identifier: id, title: 'Add shout' }, [
      ...SHOUT,
      { tool_calls: [{ name: 'run_shell', arguments: { command: resolve } }] },
      { tool_calls: [{ name: 'finish', arguments: { summary: 'Merged main into the work branch, keeping my shout().' } }] },
    ]);
    await world.run(async () => {
      const handle = await world.start(id);
      await world.waitForPhase(handle, 'AwaitingApproval');
      await world.pushToMain('src/shout.js', 'export const shout = (text) => text;\n');
      await approve(handle, 'alice');

      // Landing stops, nothing lands, and round 2's prompt names the conflicted file.
      const second = await world.waitForPhase(handle, 'AwaitingApproval');
      expect(second.round).toBe(2);
      const feedback = world.modelRequests.find((request) => request.identifier === id && request.lastUserMessage?.includes('merge conflicts'));
      expect(feedback?.lastUserMessage).toContain('src/shout.js');
      expect(await sh(world.remote, 'git log --format=%s main')).not.toContain(`Land ${id}`);

      await approve(handle, 'bob');
      const result = await handle.result();
      expect(result.phase).toBe('Done');
      expect(result.rounds).toBe(2);
      expect(await sh(world.remote, 'git show main:src/shout.js')).toContain('toUpperCase');
      const workpad = (await world.tracker.listComments(id)).find((comment) => comment.body.startsWith(WORKPAD_MARKER));
      expect(workpad?.body).toContain('Landing stopped: merge conflict');
      expect(workpad?.body).toContain(`Landed ${id} as commit \`${result.landedCommit}\``);
    });
  });
});
