import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { dockerClient } from '../../infra/docker.ts';
import { approve, issueStatus, reject } from '../../client/issues.ts';
import { containerName, volumeName } from '../../lib/sandbox/names.ts';
import { approveLandingSignal, rejectLandingSignal, trackerUpdateSignal } from '../../workflows/definitions.ts';
import { startFlakyProxy, type FlakyProxy } from '../fakes/flaky-proxy.ts';
import { World, historyText, runKeyOf, sh } from '../helpers/world.ts';
import { SHOUT } from '../fixtures/scripts.ts';

const docker = dockerClient();
const gone = async (workflowId: string) => {
  const container = await docker.getContainer(containerName(runKeyOf(workflowId))).inspect().then(() => false, () => true);
  const volume = await docker.getVolume(volumeName(runKeyOf(workflowId))).inspect().then(() => false, () => true);
  return container && volume;
};

describe('the issue workflow on the real Temporal server, Docker engine and git', () => {
  const SECRET = 'sk-cadenza-test-0123456789-DO-NOT-LEAK';
  let world: World;

  beforeAll(async () => {
    // The worker holds a model key (pointed at the scripted model's wire protocol) and the contract
    // refers to a secret by $VAR: neither value may reach workflow history.
    world = await World.create({ modelKey: SECRET, env: { CADENZA_TEST_SECRET: SECRET }, extraContract: 'model: { api_key: $CADENZA_TEST_SECRET }' });
  });
  afterAll(async () => world?.close());

  it('goes from Todo to a landed commit only after approveLanding, with tracker comments, and removes the sandbox', async () => {
    const id = world.id('shout');
    await world.addIssue({ identifier: id, title: 'Add shout' }, SHOUT);
    const before = await world.remoteLog();
    await world.run(async () => {
      const handle = await world.start(id);
      const waiting = await world.waitForPhase(handle, 'AwaitingApproval');
      expect(waiting.proof).toHaveLength(1);
      expect(waiting.proof[0]!.passed).toBe(true);
      expect(waiting.proof[0]!.changedFiles.sort()).toEqual(['src/shout.js', 'test/shout.test.js']);
      // The tracker write follows the phase change by a moment.
      await world.waitUntil(async () => (await world.tracker.fetchIssuesByIds([id]))[0]!.state === 'Human Review', 'the issue is in review', 10_000);
      // Nothing lands while the run waits for a person.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(await world.remoteLog()).toBe(before);

      // A second start while it runs is a no-op: same run.
      const again = await world.start(id);
      expect((await again.describe()).runId).toBe((await handle.describe()).runId);

      await approve(handle, 'alice', 'ship it');
      const result = await handle.result();
      expect(result.phase).toBe('Done');
      expect(result.landedCommit).toMatch(/^[0-9a-f]{40}$/);

      const log = await world.remoteLog();
      expect(log.split('\n')[0]).toBe(`${result.landedCommit} Land ${id}: Add shout`);
      expect(log).toContain('Approved-by: alice');
      expect(await world.tracker.fetchIssuesByIds([id]).then(([issue]) => issue!.state)).toBe('Done');
      const comments = (await world.tracker.listComments(id)).map((c) => c.body);
      expect(comments[0]).toContain(`Cadenza started working on ${id}`);
      expect(comments.some((body) => body.includes('Cadenza proof for round 1: passed'))).toBe(true);
      expect(comments.at(-1)).toContain(`Landed ${id} as commit \`${result.landedCommit}\``);
      expect(await gone(handle.workflowId)).toBe(true);

      await world.recordHistory(handle, 'issue-approved-and-landed');
      const history = await handle.fetchHistory();
      expect(historyText(history)).not.toContain(SECRET);
      expect(historyText(history)).toContain('CADENZA_TEST_SECRET'); // the reference is there, the value is not

      // The UI names the run after its issue and labels the steps that repeat.
      expect(await (await handle.describe()).staticSummary()).toBe(`${id}: Add shout`);
      const summaries = (history.events ?? [])
        .filter((event) => event.activityTaskScheduledEventAttributes && event.userMetadata?.summary?.data)
        .map((event) => JSON.parse(Buffer.from(event.userMetadata!.summary!.data!).toString('utf8')));
      expect(summaries).toEqual([
        'Placing the run on a worker host', 'Round 1: agent session', 'Round 1: proof check tests', 'Round 1: merge into main',
        expect.stringMatching(/^Telling open runs whose work [0-9a-f]{12} touches/),
      ]);
    });
  });
});

const writeFile = (path: string, content: string) => ({ name: 'write_file', arguments: { path, content } });
const finish = (summary: string) => ({ tool_calls: [{ name: 'finish', arguments: { summary } }] });
const DOUBLE_TEST = "import test from 'node:test';\nimport assert from 'node:assert/strict';\nimport { double } from '../src/double.js';\n\ntest('double', () => assert.equal(double(21), 42));\n";

describe('rounds: failed proof, rejection, cancellation, confinement', () => {
  let world: World;
  beforeAll(async () => (world = await World.create()));
  afterAll(async () => world?.close());

  it('never lands a change whose tests fail; the agent gets the failure, fixes it, and waits for approval; cancelling removes the sandbox', async () => {
    const id = world.id('double');
    await world.addIssue({ identifier: id, title: 'Add double' }, [
      { tool_calls: [writeFile('src/double.js', 'export const double = (n) => n * 3;\n'), writeFile('test/double.test.js', DOUBLE_TEST)] },
      finish('Added double().'),
      // Round 2 starts with the failure in the conversation.
      { tool_calls: [{ name: 'run_shell', arguments: { command: 'npm test 2>&1 | tail -20' } }] },
      { tool_calls: [writeFile('src/double.js', 'export const double = (n) => n * 2;\n')] },
      finish('Fixed double() to multiply by two; npm test passes.'),
    ]);
    const before = await world.remoteLog();
    await world.run(async () => {
      const handle = await world.start(id);
      const waiting = await world.waitForPhase(handle, 'AwaitingApproval');
      expect(waiting.round).toBe(2);
      expect(waiting.proof.map((proof) => proof.passed)).toEqual([false, true]);
      expect(waiting.proof[0]!.checks[0]).toMatchObject({ name: 'tests', passed: false });
      expect(waiting.proof[0]!.checks[0]!.exitCode).not.toBe(0);

      // The second round's prompt carried the failing check's output.
      const round2 = world.modelRequests.find((request) => request.lastUserMessage?.includes('Cadenza ran the required checks after round 1'));
      expect(round2?.lastUserMessage).toMatch(/Check `tests` exited with [1-9]/);
      expect(round2?.lastUserMessage).toMatch(/42/); // the assertion that failed
      const comments = (await world.tracker.listComments(id)).map((c) => c.body);
      expect(comments.some((body) => body.includes('Cadenza proof for round 1: FAILED'))).toBe(true);
      expect(await world.remoteLog()).toBe(before);

      await handle.cancel();
      await expect(handle.result()).rejects.toThrow();
      const final = await handle.query('status').catch(() => undefined);
      expect((final as { phase?: string } | undefined)?.phase ?? 'Cancelled').toBe('Cancelled');
      expect((await handle.describe()).status.name).toBe('CANCELLED');
      expect(await gone(handle.workflowId)).toBe(true);
      expect((await world.tracker.listComments(id)).at(-1)!.body).toContain('was cancelled');
      expect(await world.remoteLog()).toBe(before);
      await world.recordHistory(handle, 'issue-failed-proof-fixed-then-cancelled');
    });
  });

  it('rejectLanding runs another round whose prompt carries the feedback, then lands after approval', async () => {
    const id = world.id('shout2');
    await world.addIssue({ identifier: id, title: 'Add shout' }, [
      ...SHOUT,
      { tool_calls: [writeFile('src/shout.js', "export function shout(text) {\n  return `${text.toUpperCase()}!!`;\n}\n"), writeFile('test/shout.test.js', "import test from 'node:test';\nimport assert from 'node:assert/strict';\nimport { shout } from '../src/shout.js';\n\ntest('shout', () => assert.equal(shout('hi'), 'HI!!'));\n")] },
      finish('Now two exclamation marks, as asked.'),
    ]);
    await world.run(async () => {
      const handle = await world.start(id);
      await world.waitForPhase(handle, 'AwaitingApproval');
      expect(await reject(handle, 'bob', 'Please use two exclamation marks.')).toContain('rejected by bob');
      await world.waitForPhase(handle, 'Working');
      const second = await world.waitForPhase(handle, 'AwaitingApproval');
      expect(second.round).toBe(2);
      const feedbackRequest = world.modelRequests.find((request) => request.lastUserMessage?.includes('Please use two exclamation marks.'));
      expect(feedbackRequest?.lastUserMessage).toContain('A reviewer (bob) rejected landing');
      await approve(handle, 'carol');
      const result = await handle.result();
      expect(result.phase).toBe('Done');
      expect(await sh(world.remote, 'git show main:src/shout.js')).toContain('!!');
      expect((await world.tracker.listComments(id)).some((c) => c.body.includes('Landing rejected by bob'))).toBe(true);
      await world.recordHistory(handle, 'issue-rejected-then-landed');
    });
  });

  it('confines the agent to the workspace: ../ and symlinks out fail with a tool error and the run goes on; decisions outside AwaitingApproval are refused', async () => {
    const id = world.id('escape');
    await world.addIssue({ identifier: id, title: 'Try to escape' }, [
      { delay_ms: 4000, tool_calls: [{ name: 'read_file', arguments: { path: '../../../etc/passwd' } }] },
      { tool_calls: [writeFile('../escaped.txt', 'out')] },
      { tool_calls: [{ name: 'run_shell', arguments: { command: 'ln -s /etc/passwd passwd-link && ln -s / root-link' } }] },
      { tool_calls: [{ name: 'read_file', arguments: { path: 'passwd-link' } }, writeFile('root-link/tmp/pwned', 'x')] },
      { tool_calls: [writeFile('notes.txt', 'stayed inside\n'), { name: 'run_shell', arguments: { command: 'rm passwd-link root-link' } }] },
      { tool_calls: [writeFile('src/../.git/hooks/pre-commit', 'exit 0')] },
      finish('Wrote notes.txt.'),
    ]);
    await world.run(async () => {
      const handle = await world.start(id);
      await world.waitForPhase(handle, 'Working');
      // Not waiting for approval yet: the Update validator refuses, the signal is recorded and ignored.
      await expect(approve(handle, 'mallory')).rejects.toThrow(WorkflowUpdateFailedError);
      await expect(approve(handle, 'mallory')).rejects.toMatchObject({ cause: { message: expect.stringContaining('only accepted while the run is in AwaitingApproval; it is in Working') } });
      // A malformed tracker update (sent by hand) is recorded and ignored; the run goes on.
      await handle.signal(trackerUpdateSignal, { state: 42, comments: 'none' } as never);
      await world.waitUntil(async () => Boolean((await issueStatus(handle)).lastError?.startsWith('trackerUpdate expects')), 'the bad tracker update is recorded', 10_000);
      await handle.signal(approveLandingSignal, { by: 'mallory' });
      await handle.signal(rejectLandingSignal, { by: 'mallory' } as never);
      await world.waitUntil(async () => /rejectLanding needs "feedback"|ignored/.test((await issueStatus(handle)).lastError ?? ''), 'the mistimed decisions are recorded', 10_000);

      // Once the run has moved on, the error no longer describes it and is cleared.
      const waiting = await world.waitForPhase(handle, 'AwaitingApproval');
      expect(waiting.lastError).toBeNull();
      expect(waiting.proof.at(-1)!.changedFiles).toContain('notes.txt');
      const tools = world.transcriptOf(handle.workflowId, 1).filter((message) => message.role === 'tool').map((message) => String(message.content));
      expect(tools[0]).toMatch(/^error: path "..\/..\/..\/etc\/passwd" resolves to \/etc\/passwd, which is outside the workspace/);
      expect(tools[1]).toMatch(/^error: path "..\/escaped.txt" resolves to \/workspace\/escaped.txt, which is outside the workspace/);
      expect(tools[3]).toMatch(/^error: path "passwd-link" resolves to \/etc\/passwd, which is outside/);
      expect(tools[4]).toMatch(/^error: path "root-link\/tmp\/pwned" resolves to \/tmp\/pwned, which is outside/);
      expect(tools[5]).toContain('wrote 14 bytes to notes.txt');
      expect(tools[7]).toMatch(/^error: path "src\/..\/.git\/hooks\/pre-commit" is inside .git, which the agent may not touch directly/);

      // A bad payload is refused by the validator with what is missing.
      await expect(approve(handle, '')).rejects.toMatchObject({ cause: { message: expect.stringContaining('approveLanding needs "by"') } });
      await handle.cancel();
    });
  });

  it('fails after proof.max_rounds failed rounds, lands nothing and keeps the evidence', async () => {
    const id = world.id('broken');
    await world.addIssue({ identifier: id, title: 'Add double badly' }, [
      { tool_calls: [writeFile('src/double.js', 'export const double = (n) => n + 2;\n'), writeFile('test/double.test.js', DOUBLE_TEST)] },
      finish('Added double().'),
    ]);
    const before = await world.remoteLog();
    await world.run(async () => {
      const handle = await world.start(id);
      await expect(handle.result()).rejects.toMatchObject({ cause: { type: 'ProofFailed' } });
      const status = await issueStatus(handle);
      expect(status.phase).toBe('Failed');
      expect(status.proof.map((proof) => proof.passed)).toEqual([false, false, false]);
      // Evidence survives the failure: each round's check output and walkthrough are in the artifact store.
      const output = await world.wired.deps.artifacts.getText(status.proof[0]!.checks[0]!.output.ref);
      expect(output).toContain('$ npm test');
      expect(await world.wired.deps.artifacts.getText(status.proof[2]!.walkthrough.ref)).toContain('FAIL `tests`');
      expect((await world.tracker.listComments(id)).at(-1)!.body).toContain('failed: proof failed in 3 rounds');
      expect(await world.remoteLog()).toBe(before);
      expect(await gone(handle.workflowId)).toBe(true);
      await world.recordHistory(handle, 'issue-failed-after-max-rounds');
    });
  });
});

describe('agent sessions: resume from checkpoint, token budget', () => {
  it('a failed attempt is retried and continues from its last checkpointed turn, repeating no completed turn', async () => {
    let proxy: FlakyProxy | undefined;
    // openai retries twice, so requests 3, 4 and 5 failing = the session's third turn fails its attempt.
    const world = await World.create({ modelKey: 'sk-flaky', wrapModelUrl: async (url) => (proxy = await startFlakyProxy(url, new Set([3, 4, 5]))).url });
    try {
      const id = world.id('resume');
      await world.addIssue({ identifier: id, title: 'Add shout' }, SHOUT);
      await world.run(async () => {
        const handle = await world.start(id);
        const waiting = await world.waitForPhase(handle, 'AwaitingApproval');
        expect(proxy!.failed).toBe(3);
        expect(waiting.attempt).toBe(2);
        expect(waiting.turns).toBe(SHOUT.length);
        expect(world.modelRequests.map((request) => request.turn)).toEqual([0, 1, 2, 3]);
        await handle.cancel();
        await handle.result().catch(() => undefined);
        await world.recordHistory(handle, 'issue-agent-retried-then-cancelled');
      });
    } finally {
      await world.close();
      await proxy?.close();
    }
  });

  it('stops at model.budget_tokens with a clear, non-retried failure', async () => {
    const world = await World.create({ extraContract: 'model: { budget_tokens: 900 }' });
    try {
      const id = world.id('budget');
      await world.addIssue({ identifier: id, title: 'Add shout' }, SHOUT);
      await world.run(async () => {
        const handle = await world.start(id);
        await expect(handle.result()).rejects.toMatchObject({ cause: { cause: { type: 'BudgetExhausted' } } });
        const status = await issueStatus(handle);
        expect(status.phase).toBe('Failed');
        expect(status.lastError).toMatch(/token budget exhausted: \d+ of model.budget_tokens 900 used/);
        expect(world.modelRequests.length).toBeLessThan(SHOUT.length);
      });
    } finally {
      await world.close();
    }
  });
});

describe('proof evidence', () => {
  it('keeps the test reports a check writes, next to its output, by reference', async () => {
    const world = await World.create({
      extraContract: [
        'proof:',
        '  commands:',
        String.raw`    - { name: tests, run: 'npm test && mkdir -p reports && printf "<testsuites tests=\"5\" failures=\"0\"/>" > reports/junit.xml', timeout_ms: 120000 }`,
      ].join('\n'),
    });
    try {
      const id = world.id('reports');
      await world.addIssue({ identifier: id, title: 'Add shout' }, SHOUT);
      await world.run(async () => {
        const handle = await world.start(id);
        const waiting = await world.waitForPhase(handle, 'AwaitingApproval');
        const check = waiting.proof[0]!.checks[0]!;
        expect(check.reports?.map((report) => report.path)).toEqual(['reports/junit.xml']);
        expect(await world.wired.deps.artifacts.getText(check.reports![0]!.ref)).toBe('<testsuites tests="5" failures="0"/>');
        expect(await world.wired.deps.artifacts.getText(waiting.proof[0]!.walkthrough.ref)).toContain('reports: reports/junit.xml');
        await handle.cancel();
      });
    } finally {
      await world.close();
    }
  });

  it('stops what the agent and the checks leave running: a server the agent left does not hold the port the tests need', async () => {
    const PORT = 4321;
    const listen = `require('net').createServer().listen(${PORT}, '127.0.0.1')`;
    const world = await World.create({
      extraContract: [
        'proof:',
        '  commands:',
        '    - { name: tests, run: npm test, timeout_ms: 120000 }',
        "    - { name: watcher, run: 'nohup sleep 600 >/dev/null 2>&1 &' }",
      ].join('\n'),
    });
    try {
      const id = world.id('leftovers');
      await world.addIssue({ identifier: id, title: 'Serve on a port' }, [
        // The agent starts a server in the background and never stops it.
        { tool_calls: [{ name: 'run_shell', arguments: { command: `nohup node -e "${listen}" >/dev/null 2>&1 &` } }] },
        {
          tool_calls: [
            { name: 'write_file', arguments: { path: 'src/port.js', content: `export const PORT = ${PORT};\n` } },
            {
              name: 'write_file',
              arguments: {
                path: 'test/port.test.js',
                content: "import test from 'node:test';\nimport net from 'node:net';\nimport { PORT } from '../src/port.js';\n\n" +
                  "test('the port is free', async () => {\n  const server = net.createServer();\n  await new Promise((resolve, reject) => { server.once('error', reject); server.listen(PORT, '127.0.0.1', resolve); });\n  server.close();\n});\n",
              },
            },
          ],
        },
        { tool_calls: [{ name: 'finish', arguments: { summary: 'Serves on a port.' } }] },
      ]);
      await world.run(async () => {
        const handle = await world.start(id);
        const waiting = await world.waitForPhase(handle, 'AwaitingApproval');
        const proof = waiting.proof[0]!;
        expect(proof.checks.map((check) => [check.name, check.passed])).toEqual([['tests', true], ['watcher', true]]);
        expect(proof.stoppedProcesses).toEqual([
          { startedBy: 'agent', command: `node -e ${listen}` },
          { startedBy: 'check', command: 'sleep 600' },
        ]);
        const walkthrough = await world.wired.deps.artifacts.getText(proof.walkthrough.ref);
        expect(walkthrough).toContain(`## Processes Cadenza stopped\n- \`node -e ${listen}\`, left running by the agent\n- \`sleep 600\`, left running by a check`);
        // Nothing the agent started runs on while the run waits: its sandbox was stopped when the session
        // ended, and each check ran in a container of its own that is gone.
        expect((await docker.getContainer(containerName(runKeyOf(handle.workflowId))).inspect()).State.Running).toBe(false);
        const roles = async () => (await docker.listContainers({ all: true, filters: { label: [`dev.cadenza.workflow-id=${runKeyOf(handle.workflowId)}`] } })).map((container) => container.Labels['dev.cadenza.role']);
        await world.waitUntil(async () => (await roles()).join() === 'sandbox', 'the checker and exporter containers are removed', 10_000);
        await handle.cancel();
      });
    } finally {
      await world.close();
    }
  });
});
