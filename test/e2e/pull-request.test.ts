/**
 * landing.strategy pull_request, with the GitHub tracker and with another tracker (pull requests in
 * landing.github.repository): the real GitHub code host talks to a local server speaking GitHub's REST
 * API; Temporal, Docker and git (a bare repo standing in for the GitHub repository's git remote) are
 * real. Cadenza pushes only to branches it owns: a person's branch the tracker names is left alone.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { approve, startIssue } from '../../client/issues.ts';
import { sandboxExists } from '../../lib/sandbox/container.ts';
import type { IssueWorkflowResult } from '../../workflows/definitions.ts';
import { startFakeGitHub, type FakeGitHub } from '../fakes/github-server.ts';
import { SHOUT } from '../fixtures/scripts.ts';
import { FAST, World, historyText, sh } from '../helpers/world.ts';

const TOKEN = 'ghp_pull_request_test_token';
let github: FakeGitHub;
let world: World;

beforeAll(async () => {
  const prefix = `pr${Date.now().toString(36)}`;
  github = await startFakeGitHub({ token: TOKEN, repository: `acme/${prefix}` });
  world = await World.create({
    env: { CADENZA_TEST_GITHUB_TOKEN: TOKEN },
    extraContract: [
      `tracker: { kind: github, endpoint: "${github.url}", api_key: $CADENZA_TEST_GITHUB_TOKEN, repository: acme/${prefix} }`,
      'landing: { strategy: pull_request, target_branch: main, require_approval: true }',
    ].join('\n'),
  });
});
afterAll(async () => {
  await world?.close();
  await github?.close();
});

/** A GitHub issue with the SHOUT script, started as the poller would start it. */
async function startGitHubIssue(title: string) {
  const number = github.addIssue({ title, body: 'Add a shout() helper.' });
  const [issue] = await world.wired.deps.tracker(world.contract.config.tracker).fetchIssuesByIds([String(number)]);
  writeFileSync(path.join(world.scripts, `${issue!.identifier}.json`), JSON.stringify({ turns: SHOUT }));
  await startIssue(world.client, { issue: issue!, contract: world.contract, taskQueue: world.taskQueue, timing: FAST });
  return { number, identifier: issue!.identifier, branch: `cadenza/${issue!.identifier}`, handle: world.handle(issue!.identifier) };
}

const remoteBranch = (branch: string) => sh(world.remote, `git rev-parse --verify --quiet refs/heads/${branch} || true`);

describe('landing.strategy pull_request on the GitHub tracker', () => {
  it('after approval pushes the work branch and opens one pull request into the target; the target is untouched and the issue waits in review', async () => {
    const mainBefore = await world.remoteLog();
    const { number, identifier, branch, handle } = await startGitHubIssue('Add shout');
    await world.run(async () => {
      await world.waitForPhase(handle, 'AwaitingApproval');
      expect(github.pullRequests()).toEqual([]);
      await approve(handle, 'alice', 'looks good');
      const result = (await handle.result()) as IssueWorkflowResult;

      expect(result.phase).toBe('Done');
      expect(result.landedCommit).toBeNull();
      const pulls = github.pullRequests();
      expect(pulls).toHaveLength(1);
      const pull = pulls[0]!;
      expect(result.pullRequest).toEqual({ number: pull.number, url: `https://github.com/${github.repository}/pull/${pull.number}`, branch });
      expect(pull).toMatchObject({ head: branch, base: 'main', state: 'open', title: `${identifier}: Add shout` });
      expect(pull.body).toContain('Approved for landing by alice');
      expect(pull.body).toContain(`Closes #${number}`);
      expect(pull.body).toContain(`Cadenza-Workflow: ${handle.workflowId}`);

      // The target branch is for people to merge into; the work is on the pushed branch.
      expect(await world.remoteLog()).toBe(mainBefore);
      const head = await remoteBranch(branch);
      expect(head).toMatch(/^[0-9a-f]{40}$/);
      expect(await sh(world.remote, `git show ${head}:src/shout.js`)).toContain('toUpperCase');

      const issue = github.issue(number);
      expect(issue.state).toBe('open');
      expect(issue.labels).toContain('state:Human Review');
      const workpad = issue.comments.map((comment) => comment.body).find((body) => body.includes('Cadenza workpad'));
      expect(workpad).toContain(`Opened pull request #${pull.number} for ${identifier}: ${result.pullRequest!.url}`);
      expect(workpad).toContain(`**Pull request:** ${result.pullRequest!.url}`);
      expect(await sandboxExists(world.docker, handle.workflowId)).toBe(false);
      // The token opened the pull request from the worker; history holds only its variable's name.
      const history = historyText(await handle.fetchHistory());
      expect(history).toContain('CADENZA_TEST_GITHUB_TOKEN');
      expect(history).not.toContain(TOKEN);
      await world.recordHistory(handle, 'pull-request-opened');
    });
  });

  it('a pull request already open for the branch (an earlier run) is reused and now shows the new work', async () => {
    const { identifier, branch, handle } = await startGitHubIssue('Add shout again');
    const earlier = github.addPullRequest({ title: `${identifier}: an earlier attempt`, head: branch, base: 'main' });
    await world.run(async () => {
      await world.waitForPhase(handle, 'AwaitingApproval');
      await approve(handle, 'bob');
      const result = (await handle.result()) as IssueWorkflowResult;
      expect(result.pullRequest?.number).toBe(earlier);
      expect(github.pullRequests().filter((pull) => pull.head === branch)).toHaveLength(1);
      expect(await sh(world.remote, `git show ${await remoteBranch(branch)}:src/shout.js`)).toContain('toUpperCase');
    });
  });
});

describe('landing.strategy pull_request with another tracker', () => {
  it('opens the pull request in landing.github.repository and names the issue; the local issue waits in review with the link', async () => {
    const repository = `acme/other${Date.now().toString(36)}`;
    const host = await startFakeGitHub({ token: TOKEN, repository });
    const local = await World.create({
      env: { CADENZA_TEST_GITHUB_TOKEN: TOKEN },
      extraContract: `landing: { strategy: pull_request, require_approval: false, github: { repository: ${repository}, endpoint: "${host.url}", api_key: $CADENZA_TEST_GITHUB_TOKEN } }`,
    });
    try {
      const id = local.id('pr');
      await local.addIssue({ identifier: id, title: 'Add shout' }, SHOUT);
      const mainBefore = await local.remoteLog();
      await local.run(async () => {
        const handle = await local.start(id);
        const result = (await handle.result()) as IssueWorkflowResult;
        const pulls = host.pullRequests();
        expect(pulls).toHaveLength(1);
        expect(result.pullRequest).toEqual({ number: pulls[0]!.number, url: `https://github.com/${repository}/pull/${pulls[0]!.number}`, branch: `cadenza/${id}` });
        expect(pulls[0]!.body).toContain(`Issue: ${id} (local)`);
        expect(pulls[0]!.body).toContain('Opened without approval (landing.require_approval: false)');
        expect(pulls[0]!.body).not.toContain('Closes #');
        expect(await local.remoteLog()).toBe(mainBefore);
        const [issue] = await local.tracker.fetchIssuesByIds([id]);
        expect(issue!.state).toBe('Human Review');
        expect((await local.tracker.listComments(id)).map((c) => c.body).join('\n')).toContain(`Opened pull request #${pulls[0]!.number} for ${id}`);
      });
    } finally {
      await local.close();
      await host.close();
    }
  });
});

describe('landing.strategy pull_request when the tracker names a branch', () => {
  /** A person's branch on the remote, from main, with a commit of theirs; returns its tip. */
  async function personBranch(remote: string, branch: string): Promise<string> {
    const clone = mkdtempSync(path.join(tmpdir(), 'cadenza-person-'));
    try {
      await sh(clone, `git clone -q ${remote} . && git checkout -q -b ${branch}`);
      writeFileSync(path.join(clone, 'NOTES.md'), 'Alice: started on shout, do not lose this.\n');
      await sh(clone, `git add NOTES.md && git -c user.name=Alice -c user.email=alice@example.invalid commit -qm "Alice: notes on shout" && git push -q origin ${branch}`);
      return await sh(clone, 'git rev-parse HEAD');
    } finally {
      rmSync(clone, { recursive: true, force: true });
    }
  }

  it('a person\'s existing branch keeps their commit; the work goes to cadenza/<ID> and the pull request comes from there, also on re-runs', async () => {
    const repository = `acme/named${Date.now().toString(36)}`;
    const host = await startFakeGitHub({ token: TOKEN, repository });
    const local = await World.create({
      env: { CADENZA_TEST_GITHUB_TOKEN: TOKEN },
      extraContract: `landing: { strategy: pull_request, require_approval: false, github: { repository: ${repository}, endpoint: "${host.url}", api_key: $CADENZA_TEST_GITHUB_TOKEN } }`,
    });
    try {
      const id = local.id('named');
      const named = `alice/${id}-shout`;
      const own = `cadenza/${id}`;
      const theirs = await personBranch(local.remote, named);
      const issue = await local.addIssue({ identifier: id, title: 'Add shout', branch_name: named }, SHOUT);
      expect(issue.branch_name).toBe(named);
      const mainBefore = await local.remoteLog();
      await local.run(async () => {
        const result = (await (await local.start(id)).result()) as IssueWorkflowResult;
        expect(result.phase).toBe('Done');

        // The person's branch is exactly as they left it.
        expect(await remoteBranchOf(local, named)).toBe(theirs);
        expect(await local.remoteLog()).toBe(mainBefore);

        // The pull request is from Cadenza's own branch, which holds what landed.
        const pulls = host.pullRequests();
        expect(pulls).toHaveLength(1);
        const pull = pulls[0]!;
        expect(pull).toMatchObject({ head: own, base: 'main', state: 'open' });
        expect(result.pullRequest).toEqual({ number: pull.number, url: `https://github.com/${repository}/pull/${pull.number}`, branch: own });
        expect(pull.body).toContain(`The issue names branch \`${named}\`, which is someone else's`);
        const head = await remoteBranchOf(local, own);
        expect(head).toBe(result.headCommit);
        expect(await sh(local.remote, `git show ${head}:src/shout.js`)).toContain('toUpperCase');
        expect(await sh(local.remote, `git ls-tree --name-only ${head}`)).not.toContain('NOTES.md');
        const comments = (await local.tracker.listComments(id)).map((c) => c.body).join('\n');
        expect(comments).toContain(`Opened pull request #${pull.number} for ${id}: ${result.pullRequest!.url} (\`${own}\` into \`main\``);
        // The workpad names the branch the work is on, and says why it is not the issue's.
        expect(comments).toContain(`**Branch:** \`${own}\``);
        expect(comments).toContain(`so Cadenza left it alone and pushed the work to its own branch \`${own}\``);

        // A re-run starts from the base again: Cadenza's own branch moves to the new work (it is
        // Cadenza's), the same pull request shows it, and the person's branch is still untouched.
        const [again] = await local.tracker.fetchIssuesByIds([id]);
        const second = (await (await startIssue(local.client, { issue: again!, contract: local.contract, taskQueue: local.taskQueue, timing: FAST, again: true })).result()) as IssueWorkflowResult;
        expect(second.pullRequest).toEqual(result.pullRequest);
        expect(host.pullRequests()).toHaveLength(1);
        expect(await remoteBranchOf(local, own)).toBe(second.headCommit);
        // Not a fast-forward: the re-run's work does not descend from the first run's.
        expect(await sh(local.remote, `git merge-base --is-ancestor ${result.headCommit} ${second.headCommit} && echo forward || echo rewound`)).toBe('rewound');
        expect(await remoteBranchOf(local, named)).toBe(theirs);

        // A run whose earlier landing predates the record of what Cadenza pushed (an upgrade):
        // the approved head of that landing still makes Cadenza's own branch its own.
        const mirror = local.wired.deps.mirrors.get(local.contract.config.repo.url);
        await sh(mirror.dir, 'git for-each-ref --format="%(refname)" refs/cadenza | grep /pushed/ | xargs -r -n1 git update-ref -d');
        const third = (await (await startIssue(local.client, { issue: again!, contract: local.contract, taskQueue: local.taskQueue, timing: FAST, again: true })).result()) as IssueWorkflowResult;
        expect(third.pullRequest).toEqual(result.pullRequest);
        expect(await remoteBranchOf(local, own)).toBe(third.headCommit);
        expect(await remoteBranchOf(local, named)).toBe(theirs);
      });
    } finally {
      await local.close();
      await host.close();
    }
  });
});

function remoteBranchOf(world: World, branch: string): Promise<string> {
  return sh(world.remote, `git rev-parse --verify --quiet refs/heads/${branch} || true`);
}

