/**
 * A worker configured with the shared S3 store (CADENZA_STORE=s3://..., CADENZA_S3_ENDPOINT and the
 * credentials in its environment) keeps a whole run's artifacts, checkpoints and session lease in
 * the bucket, on a real S3 server (versitygw, started here on a free port), and nothing in its state
 * folder. Another worker, or `cadenza show` on another machine, reads them from there.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../infra/paths.ts';
import { run } from '../../infra/process.ts';
import { startS3Server, type S3Server } from '../../infra/s3.ts';
import { openArtifactStore, storeConfigFrom } from '../../lib/artifacts-config.ts';
import { createDeps } from '../../workers/worker.ts';
import { statusQuery } from '../../workflows/definitions.ts';
import { SHOUT } from '../fixtures/scripts.ts';
import { World, historyText } from '../helpers/world.ts';

describe('a worker on the shared S3 store', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cadenza-s3-e2e-'));
  let server: S3Server;
  let world: World;

  beforeAll(async () => {
    server = await startS3Server({ dir });
    world = await World.create({ env: server.env('installation/e2e'), extraContract: 'landing: { strategy: merge, target_branch: main, require_approval: false }' });
  });
  afterAll(async () => {
    await world?.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('says which store it uses, without the credentials', async () => {
    const lines: string[] = [];
    const state = mkdtempSync(path.join(dir, 'state-'));
    const wired = await createDeps({ stateDir: state, scriptsDir: world.scripts, env: { ...process.env, OPENAI_API_KEY: '', ...server.env('installation/e2e') }, log: (line) => lines.push(line) });
    await wired.close();
    expect(lines).toContain(`artifacts: s3://cadenza/installation/e2e/ at ${server.endpoint}`);
    expect(lines.join('\n')).not.toContain(server.credentials.secretAccessKey);
    expect(lines.join('\n')).not.toContain(server.credentials.accessKeyId);
  });

  it('keeps the run\'s proof, transcript checkpoints and session lease in the bucket, and none in its state folder', async () => {
    const id = world.id('shared');
    await world.addIssue({ identifier: id, title: 'Add shout' }, SHOUT);
    await world.run(async () => {
      const handle = await world.start(id);
      const result = await handle.result();
      expect(result.phase).toBe('Done');
      const status = await handle.query(statusQuery);
      const proof = status.proof.at(-1)!;
      expect(proof.passed).toBe(true);

      // Another worker (its own client, the same environment) reads the evidence from the bucket.
      const other = openArtifactStore(storeConfigFrom(server.env('installation/e2e'), mkdtempSync(path.join(dir, 'other-'))));
      try {
        expect(await other.getText(proof.diff.ref)).toContain('+export function shout(text) {');
        expect(await other.getText(proof.checks[0]!.output.ref)).toMatch(/pass|ok/i);
        const summary = await other.getText(proof.summary.ref);
        // The link people follow from the tracker names the object in the bucket.
        const hex = proof.walkthrough.ref.slice('sha256:'.length);
        expect(summary).toContain(`Walkthrough: s3://cadenza/installation/e2e/objects/${hex.slice(0, 2)}/${hex.slice(2)}`);
      } finally {
        other.close();
      }

      // On the server itself: objects, the round's checkpoint and the session's lease, taken by attempt 1.
      const bucket = path.join(server.dataDir, 'cadenza', 'installation', 'e2e');
      expect(readdirSync(path.join(bucket, 'objects')).length).toBeGreaterThan(3);
      const pointers = readdirSync(path.join(bucket, 'pointers'));
      const checkpoint = pointers.find((name) => name.endsWith('-round-1.json'));
      const lease = pointers.find((name) => name.endsWith('-round-1-lease.json'));
      expect(checkpoint).toBeDefined();
      expect(JSON.parse(readFileSync(path.join(bucket, 'pointers', checkpoint!), 'utf8'))).toMatchObject({ turns: SHOUT.length, summary: 'Added shout() with a test; npm test passes.' });
      expect(JSON.parse(readFileSync(path.join(bucket, 'pointers', lease!), 'utf8'))).toMatchObject({ attempt: 1, holder: expect.stringMatching(/:\d+:/) });
      // Nothing went to the local folder.
      expect(existsSync(path.join(world.state, 'artifacts'))).toBe(false);

      // `cadenza show` on a machine without the worker's state folder, with the store in its environment.
      const shown = await run(path.join(projectRoot, 'node_modules/.bin/tsx'), ['workers/cli.ts', 'show', id, 'diff', '--workflow', world.workflowFile], {
        cwd: projectRoot,
        env: { ...process.env, ...server.env('installation/e2e'), CADENZA_STATE_DIR: mkdtempSync(path.join(dir, 'empty-state-')), CADENZA_TEMPORAL_ADDRESS: world.temporalAddress, OPENAI_API_KEY: '' },
      });
      expect(shown.stderr).not.toContain('cadenza:');
      expect(shown.stdout).toContain('+export function shout(text) {');

      // The credentials never reach workflow history.
      const history = historyText(await handle.fetchHistory());
      expect(history).not.toContain(server.credentials.secretAccessKey);
      expect(history).not.toContain(server.credentials.accessKeyId);
    });
  });
});
