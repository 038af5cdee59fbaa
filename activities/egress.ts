/**
 * Egress for the activities: the run's policy resolved on this worker, a relay around each phase's
 * commands, and the record of every connection kept in the artifact store for the proof.
 */
import type Docker from 'dockerode';
import { git } from '../lib/git.ts';
import type { ContractSettings } from '../lib/contract/index.ts';
import { detectEcosystems, isEcosystem, policyKey, resolveEgress, type EgressPhase, type Ecosystem, type Registry, type ResolvedEgress } from '../lib/egress/policy.ts';
import { hostCaBundle, hostRegistry } from '../lib/egress/registries.ts';
import type { ModelGateway } from '../lib/egress/model-gateway.ts';
import { proxyEnv, relayEnv, relayPort, startRelay, type EgressRecord, type PhaseEgress, type RelaySession } from '../lib/egress/relay.ts';
import { sandboxKey } from '../lib/sandbox/names.ts';
import type { ActivityDeps } from './deps.ts';

/** Where connections go when a phase may reach nothing: a closed loopback port, so clients fail at once instead of waiting on DNS. */
const CLOSED_PROXY = 'http://127.0.0.1:9';

const egressPointer = (runKey: string) => `egress-${sandboxKey(runKey)}`;

/** The run's egress policy on this worker: ecosystems detected in the base branch, registries as this worker's package managers have them. */
export async function runEgress(deps: ActivityDeps, contract: ContractSettings): Promise<ResolvedEgress> {
  const { egress } = contract.config.sandbox;
  if (!egress) return resolveEgress({ setup: 'none', agent: 'none', checks: 'none' }, [], () => ({ hosts: [], env: {} }), null);
  const mirror = deps.mirrors.get(contract.config.repo.url);
  const detected = egress.setup === null
    ? detectEcosystems((await git(mirror.dir, ['ls-tree', '--name-only', `refs/heads/${contract.config.repo.baseBranch}`], { allowFail: true })).split('\n'))
    : [];
  const named = new Set<Ecosystem>([...detected, ...[egress.setup ?? [], egress.agent, egress.checks].flatMap((entries) => (entries === 'none' ? [] : entries)).filter(isEcosystem)]);
  const registries = new Map<Ecosystem, Registry | Error>();
  for (const ecosystem of named) registries.set(ecosystem, await hostRegistry(ecosystem).catch((error: Error) => error));
  const lookup = (ecosystem: Ecosystem): Registry => {
    const found = registries.get(ecosystem);
    if (found instanceof Error || !found) throw found ?? new Error(`the ${ecosystem} registry is unknown`);
    return found;
  };
  const anyAllowed = [egress.setup === null ? detected : egress.setup, egress.agent, egress.checks].some((entries) => entries !== 'none' && entries.length > 0);
  return resolveEgress(egress, detected, lookup, anyAllowed ? await hostCaBundle() : null);
}

/**
 * Runs `body` with the phase's egress: a relay when the phase may reach something (or with `relay`
 * always, so that each refusal is answered, told and logged), else proxy settings that fail at once.
 * The relay starts while `body` begins (its port is known up front) and its records join the run's log.
 */
export async function withEgress<T>(
  deps: ActivityDeps, docker: Docker, container: string, runKey: string, phase: EgressPhase, policy: ResolvedEgress, body: (egress: PhaseEgress) => Promise<T>,
  { relay: always = false, model }: { relay?: boolean; model?: ModelGateway } = {},
): Promise<T> {
  if (policy.phases[phase].hosts === 'none' && !always && !model) {
    const note = `[cadenza] nothing may leave the sandbox during ${phase} (${policyKey(phase)} is none); connections through the proxy ${CLOSED_PROXY} are refused. To allow a destination, list it in ${policyKey(phase)} in WORKFLOW.md.`;
    return body({
      env: { ...proxyEnv(CLOSED_PROXY), npm_config_fetch_retries: '0', PIP_RETRIES: '0' },
      ready: async () => undefined,
      notes: (output) => (output.includes('127.0.0.1:9') ? `\n${note}\n` : ''),
    });
  }
  const port = relayPort();
  // With a model gateway (an agent CLI in the sandbox), the model endpoint is a destination too.
  const starting = startRelay(docker, container, phase, policy, port, model ? { model } : {});
  starting.catch(() => undefined);
  let relay: RelaySession | undefined;
  try {
    return await body({
      env: relayEnv(port, policy),
      ready: async () => {
        relay ??= await starting;
      },
      notes: () => {
        const refused = relay?.takeRefusals() ?? [];
        return refused.length ? `\n${refused.map((line) => `[cadenza] ${line}`).join('\n')}\n` : '';
      },
    });
  } finally {
    const started = await starting.catch(() => undefined);
    if (started) await recordEgress(deps, runKey, await started.stop());
  }
}

async function recordEgress(deps: ActivityDeps, runKey: string, records: EgressRecord[]): Promise<void> {
  if (!records.length) return;
  const known = (await deps.artifacts.getPointer<EgressRecord[]>(egressPointer(runKey))) ?? [];
  await deps.artifacts.setPointer(egressPointer(runKey), [...known, ...records]);
}

export async function clearEgressLog(deps: ActivityDeps, runKey: string): Promise<void> {
  if (await deps.artifacts.getPointer(egressPointer(runKey))) await deps.artifacts.setPointer(egressPointer(runKey), []);
}

/** Every connection of the run so far, oldest first. */
export async function egressLog(deps: ActivityDeps, runKey: string): Promise<EgressRecord[]> {
  return (await deps.artifacts.getPointer<EgressRecord[]>(egressPointer(runKey))) ?? [];
}
