/**
 * The agent CLIs Cadenza can run inside a sandbox, obtained offline from the npm registry the
 * machine's npm is configured for (their packages ship platform binaries), pinned, and cached under
 * `.cadenza/agents/`. Nothing here knows a registry's address: `npm pack` asks npm's own config.
 */
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { InfraError } from './log.ts';
import { binDir } from './paths.ts';
import { run } from './process.ts';

/** Codex's version, pinned: its app-server protocol is what Cadenza speaks. */
export const CODEX_VERSION = '0.171.0';
/** Claude Code's version, pinned: its stream-json mode is what Cadenza speaks. */
export const CLAUDE_CODE_VERSION = '2.1.332';

/**
 * Where Cadenza's copies of the CLIs live in a sandbox: in the default image (on PATH; the path is
 * also in infra/sandbox/Dockerfile), or put there when an image has none. Root's, read-only to the agent.
 */
export const AGENT_CLIS_DIR = '/opt/cadenza/bin';

export interface AgentBinary {
  name: string;
  version: string;
  path: string;
}

/** A pinned agent CLI: the command a runtime runs and how infra obtains Cadenza's copy of it. */
export interface AgentCli {
  name: 'codex' | 'claude';
  version: string;
  /** The agent.runtime that runs it. */
  runtime: 'codex' | 'claude-code';
  ensure: () => Promise<AgentBinary>;
}

/** Why a pinned CLI could not be obtained; `permanent` when trying again on this worker cannot help. */
export class AgentCliUnavailable extends InfraError {
  constructor(message: string, hint: string, readonly permanent: boolean) {
    super(message, hint);
    this.name = 'AgentCliUnavailable';
  }
}

const agentsDir = path.join(path.dirname(binDir), 'agents');

/** The Linux x64 `codex` binary (a static musl build) from `@openai/codex@<version>-linux-x64`. */
export function ensureCodex(): Promise<AgentBinary> {
  return ensureFromNpm('codex', CODEX_VERSION, `@openai/codex@${CODEX_VERSION}-linux-x64`, 'package/vendor/x86_64-unknown-linux-musl/bin/codex');
}

/** The Linux x64 (glibc) `claude` binary from `@anthropic-ai/claude-code-linux-x64@<version>`. */
export function ensureClaudeCode(): Promise<AgentBinary> {
  return ensureFromNpm('claude', CLAUDE_CODE_VERSION, `@anthropic-ai/claude-code-linux-x64@${CLAUDE_CODE_VERSION}`, 'package/claude');
}

export const CODEX: AgentCli = { name: 'codex', version: CODEX_VERSION, runtime: 'codex', ensure: ensureCodex };
export const CLAUDE_CODE: AgentCli = { name: 'claude', version: CLAUDE_CODE_VERSION, runtime: 'claude-code', ensure: ensureClaudeCode };
export const AGENT_CLIS: readonly AgentCli[] = [CODEX, CLAUDE_CODE];

export interface AgentClis {
  obtained: AgentBinary[];
  missing: Array<{ cli: AgentCli; error: InfraError }>;
}

/** The CLI's cached binary (fetched if need be), or the InfraError that says why it cannot be had. */
export async function binaryOrReason(cli: AgentCli): Promise<AgentBinary | InfraError> {
  try {
    return await cli.ensure();
  } catch (error) {
    if (error instanceof InfraError) return error;
    throw error;
  }
}

/** Every pinned CLI this worker can obtain; one it cannot is reported with the reason, not thrown. */
export async function ensureAgentClis(): Promise<AgentClis> {
  const clis: AgentClis = { obtained: [], missing: [] };
  for (const cli of AGENT_CLIS) {
    const outcome = await binaryOrReason(cli);
    if (outcome instanceof InfraError) clis.missing.push({ cli, error: outcome });
    else clis.obtained.push(outcome);
  }
  return clis;
}

/** One binary out of an npm package, fetched with `npm pack` (npm's own registry config) and cached. */
async function ensureFromNpm(name: string, version: string, spec: string, member: string): Promise<AgentBinary> {
  const dir = path.join(agentsDir, `${name}-${version}`);
  const binary = path.join(dir, name);
  if (existsSync(binary)) return { name, version, path: binary };
  if (process.arch !== 'x64') {
    throw new AgentCliUnavailable(`Cadenza fetches ${name} for linux-x64 only; this worker is ${process.platform}-${process.arch}`, `run the worker on linux-x64, or use a sandbox image that brings ${name} on PATH (sandbox.image).`, true);
  }
  const work = path.join(agentsDir, `.${name}-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    const packed = await run('npm', ['pack', spec, '--pack-destination', work, '--silent'], { cwd: work }).catch((error: Error) => {
      throw new AgentCliUnavailable(`npm could not be started to fetch ${spec} (${error.message})`, 'install npm on this worker.', false);
    });
    const tarball = packed.stdout.trim().split('\n').at(-1);
    if (packed.code !== 0 || !tarball) {
      throw new AgentCliUnavailable(`npm pack ${spec} failed: ${packed.stderr.trim().split('\n').slice(-3).join(' ')}`, 'check that npm reaches its registry (npm config get registry).', false);
    }
    const extracted = await run('tar', ['-xzf', path.join(work, tarball), '-C', work, member]);
    if (extracted.code !== 0) throw new AgentCliUnavailable(`the ${spec} package has no ${member}: ${extracted.stderr.trim()}`, `pin another ${name} version in infra/agents.ts.`, true);
    mkdirSync(dir, { recursive: true });
    renameSync(path.join(work, member), binary);
    return { name, version, path: binary };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
