/**
 * Two worker hosts against one Temporal server: each its own Docker engine and state folder (the
 * second a private engine, as the Docker-restart chaos test uses). Runs are placed on a host with
 * room (`worker.max_sandboxes`) and every sandbox step of a run goes to that host's task queue.
 */
import path from 'node:path';
import { NativeConnection } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerClient } from '../../infra/docker.ts';
import { statusQuery, type IssueStatus } from '../../workflows/definitions.ts';
import { createCadenzaWorker, createDeps, type WorkerDeps } from '../../workers/worker.ts';
import { finish, write } from '../fixtures/scripts.ts';
import { PrivateEngine } from '../helpers/private-engine.ts';
import { World, sh } from '../helpers/world.ts';

const CONTRACT = [
  'worker: { max_sandboxes: 1 }',
  'landing: { strategy: merge, target_branch: main, require_approval: false }',
].join('\n');

/** The agent adds one file of its own (so two landings never conflict) and finishes. */
const adds = (file: string) => [write(file, `Added on some host: ${file}\n`), finish(`Added ${file}.`)];

describe('two worker hosts, one Temporal server', () => {
  let engine: PrivateEngine;
  let world: World;
  let second: WorkerDeps;
  let native: NativeConnection;

  beforeAll(async () => {
    engine = await PrivateEngine.start();
    world = await World.create({ extraContract: CONTRACT });
    await engine.loadImage(dockerClient(), world.contract.config.sandbox.image);
    // The second host: its own engine and state folder, the same model scripts and task queue.
    second = await createDeps({ stateDir: path.join(world.root, 'host-b'), scriptsDir: world.scripts, env: { ...process.env, OPENAI_API_KEY: '' }, log: () => {}, temporalAddress: world.temporalAddress });
    second.deps.docker = engine.docker;
    native = await NativeConnection.connect({ address: world.temporalAddress });
  }, 240_000);

  afterAll(async () => {
    await world?.close();
    await native?.close();
    await second?.close();
    await engine?.close();
  });

  it('places runs on hosts with room and keeps each run on its host to the end; each lands once', async () => {
    const ids = [world.id('one'), world.id('two'), world.id('three')];
    for (const id of ids) await world.addIssue({ identifier: id, title: `Add ${id}` }, adds(`docs/${id}.md`));
    const hostB = await createCadenzaWorker({ connection: native, deps: second.deps, taskQueue: world.taskQueue });
    const statuses = await world.run(() => hostB.runUntil(async () => {
      const handles = await Promise.all(ids.map((id) => world.start(id)));
      const results = await Promise.all(handles.map((handle) => handle.result()));
      expect(results.map((result) => result.phase)).toEqual(['Done', 'Done', 'Done']);
      await world.recordHistory(handles[0]!, 'hosts-placed-and-landed');
      return Promise.all(handles.map((handle) => handle.query(statusQuery) as Promise<IssueStatus>));
    }));
    // One sandbox per host at a time: the runs spread over both hosts.
    const hosts = statuses.map((status) => status.host);
    expect(new Set(hosts).size).toBe(2);
    expect(hosts.every((host) => typeof host === 'string' && host.length > 0)).toBe(true);
    // Each landed once, with its own file.
    const log = await world.remoteLog();
    for (const id of ids) {
      expect(log.match(new RegExp(`Cadenza-Workflow: \\S+-${id}\\b`, 'g'))?.length ?? 0).toBeGreaterThan(0);
      expect(await sh(world.remote, `git show main:docs/${id}.md`)).toContain(id);
    }
    const landings = log.split('\n').filter((line) => / Merge /.test(line) || /^[0-9a-f]{40} Land/.test(line));
    expect(landings.length).toBeLessThanOrEqual(ids.length);
    // Nothing is left on either engine.
    expect(await engine.docker.listContainers({ all: true })).toEqual([]);
  }, 300_000);
});
