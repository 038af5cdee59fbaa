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

export interface AgentBinary {
  name: string;
  version: string;
  path: string;
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

/** One binary out of an npm package, fetched with `npm pack` (npm's own registry config) and cached. */
async function ensureFromNpm(name: string, version: string, spec: string, member: string): Promise<AgentBinary> {
  const dir = path.join(agentsDir, `${name}-${version}`);
  const binary = path.join(dir, name);
  if (existsSync(binary)) return { name, version, path: binary };
  if (process.arch !== 'x64') throw new InfraError(`Cadenza fetches ${name} for linux-x64 only; this worker is ${process.platform}-${process.arch}.`, `bring ${name} in the sandbox image (sandbox.image) instead.`);
  const work = path.join(agentsDir, `.${name}-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    const packed = await run('npm', ['pack', spec, '--pack-destination', work, '--silent'], { cwd: work });
    const tarball = packed.stdout.trim().split('\n').at(-1);
    if (packed.code !== 0 || !tarball) {
      throw new InfraError(`npm pack ${spec} failed: ${packed.stderr.trim().split('\n').slice(-3).join(' ')}`, 'check that npm reaches its registry (npm config get registry).');
    }
    const extracted = await run('tar', ['-xzf', path.join(work, tarball), '-C', work, member]);
    if (extracted.code !== 0) throw new InfraError(`the ${spec} package has no ${member}: ${extracted.stderr.trim()}`, `pin another ${name} version in infra/agents.ts.`);
    mkdirSync(dir, { recursive: true });
    renameSync(path.join(work, member), binary);
    return { name, version, path: binary };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
