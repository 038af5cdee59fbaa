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

export interface AgentBinary {
  name: string;
  version: string;
  path: string;
}

const agentsDir = path.join(path.dirname(binDir), 'agents');

/** The Linux x64 `codex` binary (a static musl build) from `@openai/codex@<version>-linux-x64`. */
export async function ensureCodex(): Promise<AgentBinary> {
  const dir = path.join(agentsDir, `codex-${CODEX_VERSION}`);
  const binary = path.join(dir, 'codex');
  if (existsSync(binary)) return { name: 'codex', version: CODEX_VERSION, path: binary };
  if (process.arch !== 'x64') throw new InfraError(`Cadenza fetches Codex for linux-x64 only; this worker is ${process.platform}-${process.arch}.`, 'bring codex in the sandbox image (sandbox.image) instead.');
  const work = path.join(agentsDir, `.codex-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    const spec = `@openai/codex@${CODEX_VERSION}-linux-x64`;
    const packed = await run('npm', ['pack', spec, '--pack-destination', work, '--silent'], { cwd: work });
    const tarball = packed.stdout.trim().split('\n').at(-1);
    if (packed.code !== 0 || !tarball) {
      throw new InfraError(`npm pack ${spec} failed: ${packed.stderr.trim().split('\n').slice(-3).join(' ')}`, 'check that npm reaches its registry (npm config get registry).');
    }
    const member = 'package/vendor/x86_64-unknown-linux-musl/bin/codex';
    const extracted = await run('tar', ['-xzf', path.join(work, tarball), '-C', work, member]);
    if (extracted.code !== 0) throw new InfraError(`the ${spec} package has no ${member}: ${extracted.stderr.trim()}`, `pin another Codex version in infra/agents.ts.`);
    mkdirSync(dir, { recursive: true });
    renameSync(path.join(work, member), binary);
    return { name: 'codex', version: CODEX_VERSION, path: binary };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
