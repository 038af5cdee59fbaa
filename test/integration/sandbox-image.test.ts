import { afterAll, describe, expect, it } from 'vitest';
import { AGENT_CLIS_DIR, CLAUDE_CODE_VERSION, CODEX_VERSION } from '../../infra/agents.ts';
import { dockerClient } from '../../infra/docker.ts';
import { DEFAULT_SANDBOX_IMAGE } from '../../infra/image.ts';
import { ensureSandbox, removeSandbox } from '../../lib/sandbox/container.ts';
import { execInSandbox } from '../../lib/sandbox/exec.ts';
import { containerName } from '../../lib/sandbox/names.ts';

const docker = dockerClient();
const workflowId = `test/sandbox-image/${process.pid}-${Date.now()}`;
const limits = { image: DEFAULT_SANDBOX_IMAGE, cpus: 1, memoryMb: 256, pidsLimit: 64, user: 'agent' };
const sh = (command: string, timeoutMs = 20_000) => execInSandbox(docker, containerName(workflowId), { command, timeoutMs });

describe('the default sandbox image on the real Docker engine', () => {
  afterAll(async () => {
    await removeSandbox(docker, workflowId);
  });

  it('runs git and node as a non-root user in the workspace', async () => {
    const sandbox = await ensureSandbox(docker, workflowId, limits);
    expect(sandbox.reattached).toBe(false);
    expect(sandbox.freshVolume).toBe(true);
    const result = await sh('id -u; id -un; pwd; git --version; node --version; npm --version');
    expect(result.exitCode).toBe(0);
    const [uid, user, cwd, git, node] = result.stdout.trim().split('\n');
    expect(uid).not.toBe('0');
    expect(user).toBe('agent');
    expect(cwd).toBe('/workspace');
    expect(git).toMatch(/^git version \d+\./);
    expect(node).toMatch(/^v\d+\./);
  });

  it('carries the pinned codex and claude on PATH, root\'s, and they run as the agent with no network', async () => {
    const info = await docker.getContainer(containerName(workflowId)).inspect();
    expect(info.HostConfig.NetworkMode).toBe('none');
    const found = await sh('id -un; command -v codex; command -v claude; test -w /opt/cadenza/bin || echo read-only');
    expect(found.stdout.trim().split('\n')).toEqual(['agent', `${AGENT_CLIS_DIR}/codex`, `${AGENT_CLIS_DIR}/claude`, 'read-only']);
    const versions = await sh('codex --version && claude --version', 60_000);
    console.log(`default image ${DEFAULT_SANDBOX_IMAGE}:\n${versions.stdout.trim()}`);
    expect(versions.exitCode).toBe(0);
    expect(versions.stdout.trim().split('\n')).toEqual([`codex-cli ${CODEX_VERSION}`, `${CLAUDE_CODE_VERSION} (Claude Code)`]);
  });

  it('has no network: only loopback, and connecting out fails', async () => {
    const interfaces = await sh('ls /sys/class/net');
    expect(interfaces.stdout.trim().split(/\s+/)).toEqual(['lo']);
    const connect = await sh(
      `node -e "require('net').connect(443, '1.1.1.1').on('connect', () => process.exit(0)).on('error', (e) => { console.log(e.code); process.exit(3); })"`,
    );
    expect(connect.exitCode).toBe(3);
    expect(connect.stdout).toMatch(/ENETUNREACH|EHOSTUNREACH|ECONNREFUSED/);
  });

  it('enforces the memory and pids limits it was given', async () => {
    const info = await docker.getContainer(containerName(workflowId)).inspect();
    expect(info.HostConfig.Memory).toBe(256 * 1024 * 1024);
    expect(info.HostConfig.PidsLimit).toBe(64);
    expect(info.HostConfig.NetworkMode).toBe('none');
    expect(info.HostConfig.CapDrop).toContain('ALL');
    const seen = await sh('cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max; cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes');
    expect(seen.stdout.trim().split('\n')).toEqual(['64', String(256 * 1024 * 1024)]);
    // More processes than the limit allows cannot be started; the ones that did expire by themselves.
    const forks = await sh('for i in $(seq 1 80); do sleep 2 & done; wait', 10_000);
    expect(forks.stdout + forks.stderr).toMatch(/cannot fork|Resource temporarily unavailable/i);
    await new Promise((resolve) => setTimeout(resolve, 2500));
  });

  it('kills a command at its timeout and caps its output', async () => {
    const slow = await sh('echo before; sleep 30; echo after', 1_000);
    expect(slow.timedOut).toBe(true);
    expect(slow.stdout).toContain('before');
    expect(slow.stdout).not.toContain('after');
    const loud = await execInSandbox(docker, containerName(workflowId), { command: 'seq 1 100000', timeoutMs: 20_000, maxOutputBytes: 1000 });
    expect(loud.truncated).toBe(true);
    expect(loud.stdout.length).toBeLessThanOrEqual(1000);
    expect(loud.stdout.trim().endsWith('100000')).toBe(true);
  });

  it('re-attaches to the same container and removes everything on request', async () => {
    const again = await ensureSandbox(docker, workflowId, limits);
    expect(again.reattached).toBe(true);
    expect(await removeSandbox(docker, workflowId)).toEqual({ container: true, volume: true });
    await expect(docker.getContainer(containerName(workflowId)).inspect()).rejects.toThrow();
  });
});
