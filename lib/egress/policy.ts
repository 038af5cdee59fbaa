/**
 * Egress policy: what may leave a sandbox, per phase. `setup` is the hooks (after_create, before_run,
 * and after_create again in each checker), `agent` the agent's session, `checks` the proof checks.
 * Each is `none` or a list of destinations: a host pattern (`host`, `*.domain`, either with `:port`)
 * or a package ecosystem, which resolves at run time to the registry this worker's own package
 * manager is configured with (see registries.ts). No registry host is written here.
 */
export const EGRESS_PHASES = ['setup', 'agent', 'checks'] as const;
export type EgressPhase = (typeof EGRESS_PHASES)[number];

export const ECOSYSTEMS = ['npm', 'pypi', 'crates', 'go', 'maven', 'debian'] as const;
export type Ecosystem = (typeof ECOSYSTEMS)[number];

/** As WORKFLOW.md says it; `setup: null` = the ecosystems the repository uses (detected from its manifests). */
export interface EgressConfig {
  setup: string[] | 'none' | null;
  agent: string[] | 'none';
  checks: string[] | 'none';
}

export const DEFAULT_EGRESS: EgressConfig = { setup: null, agent: 'none', checks: 'none' };

export const policyKey = (phase: EgressPhase) => `sandbox.egress.${phase}`;

export const isEcosystem = (value: string): value is Ecosystem => (ECOSYSTEMS as readonly string[]).includes(value);

/** A host pattern as the relay matches it: a dotted name (or localhost), `*.` for any subdomain, `:port` optional. */
export const HOST_PATTERN = /^(?:(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+|localhost)(:\d{1,5})?$/i;

/** Which ecosystems a repository uses, from the manifest names at its root. */
export function detectEcosystems(rootFiles: string[]): Ecosystem[] {
  const has = (test: (name: string) => boolean) => rootFiles.some(test);
  const found: Ecosystem[] = [];
  if (has((name) => name === 'package.json')) found.push('npm');
  if (has((name) => /^requirements.*\.txt$/.test(name) || ['pyproject.toml', 'setup.py', 'setup.cfg', 'Pipfile'].includes(name))) found.push('pypi');
  if (has((name) => name === 'Cargo.toml')) found.push('crates');
  if (has((name) => name === 'go.mod')) found.push('go');
  if (has((name) => ['pom.xml', 'build.gradle', 'build.gradle.kts'].includes(name))) found.push('maven');
  return found;
}

/** A registry as this worker's package manager is configured with it. */
export interface Registry {
  hosts: string[];
  /** What the sandbox's package manager needs to use the same registry (e.g. npm_config_registry). */
  env: Record<string, string>;
}

export interface ResolvedRule {
  hosts: string[] | 'none';
  /** The policy as written, for messages. */
  describe: string;
  /** Which written entry a matched host entry came from (`npm (registry.example)`). */
  labelOf(entry: string): string;
}

export interface ResolvedEgress {
  phases: Record<EgressPhase, ResolvedRule>;
  /** Registry settings for the sandbox's package managers (for every ecosystem the policy names). */
  sandboxEnv: Record<string, string>;
  /** The worker's CA bundle, so TLS through the relay verifies as it does on the worker. */
  caBundle: Buffer | null;
}

export class EgressPolicyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EgressPolicyError';
  }
}

/** Resolves the written policy against this worker's registries. */
export function resolveEgress(
  config: EgressConfig | undefined,
  detected: Ecosystem[],
  registries: (ecosystem: Ecosystem) => Registry,
  caBundle: Buffer | null,
): ResolvedEgress {
  const written = config ?? DEFAULT_EGRESS;
  const sandboxEnv: Record<string, string> = {};
  const rule = (phase: EgressPhase): ResolvedRule => {
    const entries = phase === 'setup' && written.setup === null ? detected : written[phase];
    const describe = phase === 'setup' && written.setup === null ? `the detected ecosystems [${detected.join(', ') || 'none'}]` : entries === 'none' ? 'none' : `[${(entries as string[]).join(', ')}]`;
    if (entries === 'none' || entries === null) return { hosts: 'none', describe, labelOf: (entry) => entry };
    const labels = new Map<string, string>();
    for (const entry of entries) {
      if (!isEcosystem(entry)) {
        labels.set(entry.toLowerCase(), entry);
        continue;
      }
      let registry: Registry;
      try {
        registry = registries(entry);
      } catch (error) {
        throw new EgressPolicyError(`${policyKey(phase)}: ${(error as Error).message}`);
      }
      Object.assign(sandboxEnv, registry.env);
      for (const host of registry.hosts) labels.set(host, `${entry} (${host})`);
    }
    return { hosts: [...labels.keys()], describe, labelOf: (entry) => labels.get(entry) ?? entry };
  };
  return { phases: { setup: rule('setup'), agent: rule('agent'), checks: rule('checks') }, sandboxEnv, caBundle };
}
