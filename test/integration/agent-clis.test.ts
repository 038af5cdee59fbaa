/**
 * How an agent CLI runtime finds its CLI in a sandbox, on the real Docker engine: the default image
 * carries the pinned codex, so nothing is copied into the container; an image without one (a
 * contract's own) gets the pinned copy put in; an image that brings its own is used as is; and when
 * there is none and the pinned copy cannot be had, the failure says what is missing and how to bring it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApplicationFailure } from '@temporalio/activity';
import type Docker from 'dockerode';
import { pack } from 'tar-stream';
import { AGENT_CLIS_DIR, AgentCliUnavailable, CODEX_VERSION, ensureCodex } from '../../infra/agents.ts';
import { dockerClient } from '../../infra/docker.ts';
import { DEFAULT_SANDBOX_IMAGE } from '../../infra/image.ts';
import { agentBinaryIn } from '../../activities/runtimes/common.ts';
import { ensureSandbox, removeSandbox } from '../../lib/sandbox/container.ts';
import { execInSandbox } from '../../lib/sandbox/exec.ts';
import { containerName } from '../../lib/sandbox/names.ts';
import { changesUnderAgentClisDir } from '../helpers/agent-clis.ts';

const docker = dockerClient();
const run = `${process.pid}-${Date.now()}`;
/** Third-party-style images, built offline on the default one: without any agent CLI, and with a codex of their own. */
const WITHOUT_CLIS = `cadenza-test-without-clis:${run}`;
const OWN_CODEX = `cadenza-test-own-codex:${run}`;
const workflowIds: string[] = [];

async function buildImage(tag: string, dockerfile: string): Promise<void> {
  const context = pack();
  context.entry({ name: 'Dockerfile' }, dockerfile);
  context.finalize();
  const stream = await docker.buildImage(context as unknown as NodeJS.ReadableStream, { t: tag });
  await new Promise<void>((resolve, reject) => docker.modem.followProgress(stream, (error: Error | null, events: Array<{ error?: string }>) => {
    const failed = events?.find((event) => event.error);
    if (error || failed) reject(error ?? new Error(failed!.error));
    else resolve();
  }));
}

async function sandboxOn(image: string): Promise<string> {
  const workflowId = `test/agent-clis/${run}-${workflowIds.length}`;
  workflowIds.push(workflowId);
  await ensureSandbox(docker, workflowId, { image, cpus: 1, memoryMb: 512, pidsLimit: 64, user: 'agent' });
  return containerName(workflowId);
}

const changesUnderOptCadenza = (container: string) => changesUnderAgentClisDir(docker, container);

function recordingDeps(): { deps: { docker: Docker; log: (line: string) => void }; lines: string[] } {
  const lines: string[] = [];
  return { deps: { docker, log: (line) => lines.push(line) }, lines };
}

const mustNotFetch = () => Promise.reject(new Error('the pinned codex was asked for although the sandbox has one'));

describe('agent CLIs in the sandbox on the real Docker engine', () => {
  beforeAll(async () => {
    await buildImage(WITHOUT_CLIS, `FROM ${DEFAULT_SANDBOX_IMAGE}\nUSER root\nRUN rm -rf /opt/cadenza\nUSER agent\n`);
    await buildImage(OWN_CODEX, `FROM ${WITHOUT_CLIS}\nUSER root\nRUN printf '#!/bin/sh\\necho own-codex 9.9.9\\n' > /usr/local/bin/codex && chmod 755 /usr/local/bin/codex\nUSER agent\n`);
  });

  afterAll(async () => {
    for (const workflowId of workflowIds) await removeSandbox(docker, workflowId);
    for (const image of [OWN_CODEX, WITHOUT_CLIS]) await docker.getImage(image).remove().catch(() => undefined);
  });

  it('uses the codex the default image carries: nothing is fetched or copied into the container', async () => {
    const container = await sandboxOn(DEFAULT_SANDBOX_IMAGE);
    const { deps, lines } = recordingDeps();
    expect(await agentBinaryIn(deps, container, 'codex', mustNotFetch)).toBe(`${AGENT_CLIS_DIR}/codex`);
    expect(lines).toEqual([]);
    expect(await changesUnderOptCadenza(container)).toEqual([]);
  });

  it('puts the pinned codex into a sandbox whose image has none, where the agent runs it', async () => {
    const container = await sandboxOn(WITHOUT_CLIS);
    const { deps, lines } = recordingDeps();
    expect(await agentBinaryIn(deps, container, 'codex', ensureCodex)).toBe(`${AGENT_CLIS_DIR}/codex`);
    expect(lines).toEqual([expect.stringMatching(new RegExp(`the image ${WITHOUT_CLIS} has no codex on PATH; copying Cadenza's pinned codex ${CODEX_VERSION} to /opt/cadenza/bin \\(\\d+ MB\\)`))]);
    expect(await changesUnderOptCadenza(container)).toContain(`${AGENT_CLIS_DIR}/codex`);
    const version = await execInSandbox(docker, container, { command: `${AGENT_CLIS_DIR}/codex --version`, timeoutMs: 60_000 });
    expect(version.stdout.trim()).toBe(`codex-cli ${CODEX_VERSION}`);
    // Found again on the next session: not copied twice.
    expect(await agentBinaryIn(deps, container, 'codex', mustNotFetch)).toBe(`${AGENT_CLIS_DIR}/codex`);
    expect(lines).toHaveLength(1);
  });

  it('uses a codex the image brings on PATH as is', async () => {
    const container = await sandboxOn(OWN_CODEX);
    const { deps, lines } = recordingDeps();
    expect(await agentBinaryIn(deps, container, 'codex', mustNotFetch)).toBe('/usr/local/bin/codex');
    expect(lines).toEqual([]);
    expect(await changesUnderOptCadenza(container)).toEqual([]);
  });

  it('fails, not retried, naming the image, the missing CLI and how to bring one, when the pinned copy cannot be had', async () => {
    const container = await sandboxOn(WITHOUT_CLIS);
    const unavailable = () => Promise.reject(new AgentCliUnavailable('Cadenza fetches codex for linux-x64 only; this worker is linux-arm64', 'run the worker on linux-x64', true));
    const failure = await agentBinaryIn(recordingDeps().deps, container, 'codex', unavailable).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect((failure as ApplicationFailure).nonRetryable).toBe(true);
    expect((failure as ApplicationFailure).type).toBe('AgentCliMissing');
    expect((failure as ApplicationFailure).message).toBe(
      `agent.runtime codex needs codex in the sandbox, and there is none: the image ${WITHOUT_CLIS} has no codex on PATH, `
      + `and Cadenza's pinned codex ${CODEX_VERSION} is not available on this worker (Cadenza fetches codex for linux-x64 only; this worker is linux-arm64). `
      + 'Use a sandbox image that brings codex on PATH (sandbox.image in WORKFLOW.md), or run `npm run setup` where the pinned codex can be fetched: Cadenza\'s default image then carries it',
    );
    expect(await changesUnderOptCadenza(container)).toEqual([]);
  });
});
