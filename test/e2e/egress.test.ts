/**
 * Egress: sandboxes keep no network; what leaves one goes through Cadenza's relay, per phase, by
 * policy, and is recorded. A third-party-style project whose own `npm test` needs dev dependencies
 * from the npm registry installs them in setup, the agent works offline, the full `npm test` is the
 * proof, and it lands. Destinations outside the policy are refused at once, with the policy key.
 */
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { approve } from '../../client/issues.ts';
import { hostRegistry } from '../../lib/egress/registries.ts';
import type { EgressRecord } from '../../lib/egress/relay.ts';
import { finish, shell, write } from '../fixtures/scripts.ts';
import { World, sh } from '../helpers/world.ts';

const NPM_PROJECT = fileURLToPath(new URL('../fixtures/egress-npm', import.meta.url));
const PYPI_PROJECT = fileURLToPath(new URL('../fixtures/egress-pypi', import.meta.url));

/** Asks the phase's proxy for a tunnel to each destination and prints the first line of each answer and its message. */
const PROBE = [
  "const net = require('net');",
  'const proxy = new URL(process.env.HTTPS_PROXY);',
  'for (const target of process.argv.slice(2)) {',
  "  const socket = net.connect(Number(proxy.port), proxy.hostname, () => socket.write(`CONNECT ${target} HTTP/1.1\\r\\nHost: ${target}\\r\\n\\r\\n`));",
  "  let answer = '';",
  "  socket.on('data', (chunk) => { answer += chunk; if (answer.includes('\\r\\n\\r\\n') && !answer.startsWith('HTTP/1.1 403')) socket.destroy(); });",
  "  const done = () => console.log(`${target} => ${answer.split('\\r\\n')[0]} ${answer.split('\\r\\n\\r\\n')[1] || ''}`.trim());",
  "  socket.on('end', done); socket.on('close', () => answer || done());",
  "  socket.on('error', (error) => console.log(`${target} => error ${error.message}`));",
  '}',
  '',
].join('\n');

describe('egress through the relay', () => {
  it('a project whose npm test needs its dev dependencies: setup installs them from the registry this worker uses, the agent works offline, the full npm test proves it, and it lands', async () => {
    const world = await World.create({
      seed: NPM_PROJECT,
      extraContract: [
        'hooks: { after_create: "npm install --no-audit --no-fund", timeout_ms: 240000 }',
        'proof:\n  commands:\n    - { name: tests, run: npm test, timeout_ms: 120000 }',
      ].join('\n'),
    });
    try {
      const registry = (await hostRegistry('npm')).hosts[0]!;
      const id = world.id('npm');
      const TRIPLE = "const isNumber = require('is-number');\n\nexports.double = (value) => (isNumber(value) ? Number(value) * 2 : NaN);\nexports.triple = (value) => (isNumber(value) ? Number(value) * 3 : NaN);\n";
      const TRIPLE_TEST = "const { test } = require('uvu');\nconst assert = require('uvu/assert');\nconst { triple } = require('../src/index.js');\n\ntest('triples', () => assert.is(triple(2), 6));\n\ntest.run();\n";
      await world.addIssue({ identifier: id, title: 'Add triple' }, [
        // The agent has no network: installing another package is refused at once, saying why.
        shell('npm install left-pad --no-audit --no-fund 2>&1 | tail -5'),
        write('src/index.js', TRIPLE),
        write('test/triple.js', TRIPLE_TEST),
        shell('npm test 2>&1 | tail -5'),
        finish('Added triple() with a test; npm test passes offline with the installed dev dependencies.'),
      ]);
      await world.run(async () => {
        const handle = await world.start(id);
        const waiting = await world.waitForPhase(handle, 'AwaitingApproval', 300_000);
        const proof = waiting.proof.at(-1)!;
        expect(proof.checks[0]).toMatchObject({ name: 'tests', passed: true, tests: { total: 3, failed: 0 } });

        const tools = world.transcriptOf(handle.workflowId, 1).filter((message) => message.role === 'tool').map((message) => String(message.content));
        expect(tools[0]).toMatch(/^exit code 0/); // the pipe's tail; npm itself failed:
        expect(tools[0]).toContain('sandbox.egress.agent is none');
        expect(tools[3]).toContain('Total:     3');

        // The log: setup reached exactly the worker's npm registry (in the agent's sandbox and in the
        // checker); the agent's attempt was refused; nothing else left.
        const log = await world.wired.deps.artifacts.getJson<EgressRecord[]>(proof.egress!.log.ref);
        expect(new Set(log.map((record) => `${record.phase} ${record.destination} ${record.allowed}`))).toEqual(new Set([`setup ${registry}:443 true`, `agent ${registry}:443 false`]));
        expect(log.filter((record) => record.allowed).every((record) => record.reason === `allowed by npm (${registry})`)).toBe(true);
        expect(log.reduce((sum, record) => sum + record.bytesIn, 0)).toBeGreaterThan(10_000);
        const walkthrough = await world.wired.deps.artifacts.getText(proof.walkthrough.ref);
        expect(walkthrough).toContain(`- setup: ${registry}:443,`);

        await approve(handle, 'alice');
        expect((await handle.result()).phase).toBe('Done');
        expect(await sh(world.remote, 'git show main:src/index.js')).toContain('exports.triple');
        // Installed dependencies are never part of the work.
        expect(await sh(world.remote, 'git ls-tree -r --name-only main')).not.toContain('node_modules');
      });
      // With no worker running, `cadenza status` reads the finished run's full figures from its result.
      const status = await world.cli(['status', id]);
      expect(status.stdout).toMatch(/turns\s+5\n/);
      expect(status.stdout).toMatch(/tokens\s+\d+ \(input \d+, output \d+\)/);
      expect(status.stdout).toContain('model       scripted (gpt-4.1)');
      expect(status.stdout).toMatch(/approved\s+[0-9a-f]{40}\n\s+landed\s+[0-9a-f]{40}/);
    } finally {
      await world.close();
    }
  }, 400_000);

  it('a Python project: setup creates a virtual environment and installs pytest from the PyPI this worker uses, the agent works offline, pytest proves it, and it lands', async () => {
    const world = await World.create({
      seed: PYPI_PROJECT,
      extraContract: [
        'hooks: { after_create: "python3 -m venv .venv && .venv/bin/pip install --disable-pip-version-check -q -r requirements.txt", timeout_ms: 240000 }',
        'proof:\n  commands:\n    - { name: tests, run: .venv/bin/pytest -q, timeout_ms: 120000 }',
      ].join('\n'),
    });
    try {
      const pypiHosts = (await hostRegistry('pypi')).hosts;
      const id = world.id('pypi');
      await world.addIssue({ identifier: id, title: 'Add triple' }, [
        shell('.venv/bin/pip install --disable-pip-version-check --retries 0 requests 2>&1 | tail -3'),
        write('mathkit.py', '"""A third-party-style Python library whose own tests need pytest from PyPI."""\n\n\ndef double(value):\n    return value * 2\n\n\ndef triple(value):\n    return value * 3\n'),
        write('tests/test_triple.py', 'from mathkit import triple\n\n\ndef test_triple():\n    assert triple(2) == 6\n'),
        finish('Added triple() with a test.'),
      ]);
      await world.run(async () => {
        const handle = await world.start(id);
        const waiting = await world.waitForPhase(handle, 'AwaitingApproval', 300_000);
        const proof = waiting.proof.at(-1)!;
        expect(proof.checks[0]).toMatchObject({ name: 'tests', passed: true, tests: { framework: 'pytest', total: 2, failed: 0 } });
        const tools = world.transcriptOf(handle.workflowId, 1).filter((message) => message.role === 'tool').map((message) => String(message.content));
        expect(tools[0]).toContain('during agent: sandbox.egress.agent is none');
        const log = await world.wired.deps.artifacts.getJson<EgressRecord[]>(proof.egress!.log.ref);
        const allowed = new Set(log.filter((record) => record.allowed).map((record) => `${record.phase} ${record.destination.replace(/:443$/, '')}`));
        expect([...allowed].every((entry) => pypiHosts.some((host) => entry === `setup ${host}`))).toBe(true);
        expect(allowed.size).toBeGreaterThan(0);
        await approve(handle, 'alice');
        expect((await handle.result()).phase).toBe('Done');
        expect(await sh(world.remote, 'git show main:mathkit.py')).toContain('def triple');
      });
    } finally {
      await world.close();
    }
  }, 400_000);

  describe('refusals', () => {
    let world: World;
    let hostService: net.Server;
    let hostServicePort = 0;
    let hostServiceConnections = 0;
    beforeAll(async () => {
      // A service on the worker's loopback: no sandbox may reach it, whatever the policy says.
      hostService = net.createServer((socket) => {
        hostServiceConnections += 1;
        socket.end('secret\n');
      });
      await new Promise<void>((resolve) => hostService.listen(0, '127.0.0.1', resolve));
      hostServicePort = (hostService.address() as net.AddressInfo).port;
      world = await World.create({
        extraContract: [
          `sandbox: { memory_mb: 512, pids_limit: 256, egress: { setup: [npm], agent: none, checks: ["localhost:${hostServicePort}"] } }`,
          'hooks: { after_create: "npm view is-number version && (npm view left-pad version --registry=https://example.com/ || true)" }',
          'proof:',
          '  commands:',
          '    - { name: tests, run: npm test, timeout_ms: 120000 }',
          `    - { name: probe, run: "node probe.cjs localhost:${hostServicePort} example.com:443", required: false }`,
        ].join('\n'),
      });
    });
    afterAll(async () => {
      await world?.close();
      await new Promise((resolve) => hostService.close(resolve));
    });

    it('refuses what the policy does not list in every phase, at once and saying which key to change; the host\'s loopback is out of reach even when listed', async () => {
      const registry = (await hostRegistry('npm')).hosts[0]!;
      const id = world.id('refused');
      await world.addIssue({ identifier: id, title: 'Probe the network' }, [
        write('probe.cjs', PROBE),
        shell(`node probe.cjs ${registry}:443`),
        finish('Added a network probe.'),
      ]);
      await world.run(async () => {
        const handle = await world.start(id);
        const waiting = await world.waitForPhase(handle, 'AwaitingApproval');
        const proof = waiting.proof.at(-1)!;

        // Agent phase (none): not even the registry; the output says which key would allow it.
        const tools = world.transcriptOf(handle.workflowId, 1).filter((message) => message.role === 'tool').map((message) => String(message.content));
        expect(tools[1]).toContain(`${registry}:443 => HTTP/1.1 403 Forbidden Cadenza refused egress to ${registry}:443 during agent: sandbox.egress.agent is none`);
        expect(tools[1]).toContain(`[cadenza] Cadenza refused egress to ${registry}:443 during agent`);

        // Checks phase: the listed loopback destination and an unlisted one are both refused with 403 and the reason.
        const probe = await world.wired.deps.artifacts.getText(proof.checks[1]!.output.ref);
        expect(probe).toContain(`localhost:${hostServicePort} => HTTP/1.1 403 Forbidden Cadenza refused egress to localhost:${hostServicePort} during checks: it resolves to a loopback or private address`);
        expect(probe).toContain('example.com:443 => HTTP/1.1 403 Forbidden Cadenza refused egress to example.com:443 during checks: not an allowed destination. To allow it, add it to sandbox.egress.checks in WORKFLOW.md');
        expect(hostServiceConnections).toBe(0);

        const log = await world.wired.deps.artifacts.getJson<EgressRecord[]>(proof.egress!.log.ref);
        const seen = new Set(log.map((record) => `${record.phase} ${record.destination} ${record.allowed ? 'allowed' : 'refused'}`));
        expect(seen).toEqual(new Set([
          `setup ${registry}:443 allowed`,
          `agent ${registry}:443 refused`,
          'setup example.com:443 refused',
          `checks localhost:${hostServicePort} refused`,
          'checks example.com:443 refused',
        ]));
        expect(proof.egress).toMatchObject({ refused: expect.any(Number), allowed: expect.any(Number) });
        const summary = await world.wired.deps.artifacts.getText(proof.summary.ref);
        expect(summary).toContain('setup: REFUSED example.com:443');
        const shown = await world.cli(['show', id, 'egress']);
        expect(shown.stdout).toMatch(/PHASE\s+DESTINATION\s+DECISION/);
        expect(shown.stdout).toMatch(new RegExp(`checks\\s+localhost:${hostServicePort}\\s+REFUSED`));
        await handle.cancel();
      });
    });
  });
});
