/**
 * Worker versioning: every worker runs as one version (deployment name and build id) of a Temporal
 * Worker Deployment, so a fleet upgrades without breaking runs in flight. Runs are pinned by default:
 * a run stays on the build that started it (its workflow tasks and its activities, host queues
 * included) until it ends or is moved explicitly (`temporal workflow update-options`); new runs go to
 * the deployment's current version. A build the deployment has never seen becomes current when its
 * first worker starts; a known build (a restart, an old build kept running to drain its runs, a build
 * an operator rolled back from) never moves the current version.
 *
 *   CADENZA_VERSIONING       pinned (default) | auto-upgrade (runs move to the current version at their
 *                            next task; the workflow code must then replay their histories) | off (unversioned)
 *   CADENZA_BUILD_ID         this worker's build id (default: bundle-<hash of the workflow bundle's content>)
 *   CADENZA_DEPLOYMENT_NAME  the Worker Deployment (default: the task queue, `cadenza`)
 *   CADENZA_PROMOTE          new (default: a new build becomes current at its first start) | manual
 *                            (an operator does it: temporal worker deployment set-current-version)
 */
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import type { NativeConnection } from '@temporalio/worker';
import type { VersioningBehavior, WorkerDeploymentVersion } from '@temporalio/common';
import { InfraError } from '../infra/log.ts';

export const VERSIONING_ENV = {
  mode: 'CADENZA_VERSIONING',
  buildId: 'CADENZA_BUILD_ID',
  deploymentName: 'CADENZA_DEPLOYMENT_NAME',
  promote: 'CADENZA_PROMOTE',
} as const;

export type VersioningMode = 'pinned' | 'auto-upgrade' | 'off';

export interface VersioningOptions {
  mode: VersioningMode;
  /** Default: derived from the workflow bundle (buildIdOf). */
  buildId?: string;
  /** Default: the worker's task queue. */
  deploymentName?: string;
  /** `new`: a build the deployment has not seen becomes current when its worker starts; `manual`: never by Cadenza. */
  promote: 'new' | 'manual';
}

/** What this worker runs as, and what it found and did at start. */
export interface WorkerVersionInfo {
  mode: VersioningMode;
  deploymentName?: string;
  buildId: string;
  /** This start made the build the deployment's current version. */
  promoted: boolean;
  /** The deployment's current build after start (undefined: unversioned workers are current). */
  currentBuildId?: string;
}

/** Reads the versioning variables; a value that cannot work is refused naming the variable and what is allowed. */
export function versioningFromEnv(env: NodeJS.ProcessEnv = process.env): VersioningOptions {
  const value = (name: string) => env[name]?.trim() || undefined;
  const mode = (value(VERSIONING_ENV.mode) ?? 'pinned').toLowerCase();
  if (!['pinned', 'auto-upgrade', 'off'].includes(mode)) {
    throw new InfraError(`${VERSIONING_ENV.mode} is ${JSON.stringify(env[VERSIONING_ENV.mode])}.`, `set it to pinned (the default: a run stays on the build that started it), auto-upgrade (runs move to the current build at their next task) or off (unversioned workers).`);
  }
  const promote = (value(VERSIONING_ENV.promote) ?? 'new').toLowerCase();
  if (!['new', 'manual'].includes(promote)) {
    throw new InfraError(`${VERSIONING_ENV.promote} is ${JSON.stringify(env[VERSIONING_ENV.promote])}.`, 'set it to new (the default: a build the deployment has not seen becomes current when its worker starts) or manual (you make a build current with temporal worker deployment set-current-version).');
  }
  const buildId = value(VERSIONING_ENV.buildId);
  if (buildId !== undefined && (buildId.length > 255 || /\s/.test(buildId))) {
    throw new InfraError(`${VERSIONING_ENV.buildId} is ${JSON.stringify(buildId.slice(0, 80))}.`, 'set it to at most 255 characters without white space, the same on every worker of one build (a release tag or a commit id), or unset it to derive one from the workflow code.');
  }
  const deploymentName = value(VERSIONING_ENV.deploymentName);
  if (deploymentName !== undefined && (/[\s.:]/.test(deploymentName) || deploymentName.length > 255)) {
    throw new InfraError(`${VERSIONING_ENV.deploymentName} is ${JSON.stringify(deploymentName.slice(0, 80))}.`, 'set it to a name without white space, dots or colons (every worker of one installation uses the same), or unset it to use the task queue.');
  }
  return { mode: mode as VersioningMode, promote: promote as 'new' | 'manual', ...(buildId ? { buildId } : {}), ...(deploymentName ? { deploymentName } : {}) };
}

/** The build id of a workflow bundle: the same code gives the same id on every host. */
export function buildIdOf(bundleCode: string): string {
  return `bundle-${createHash('sha256').update(bundleCode).digest('hex').slice(0, 16)}`;
}

/** A deployment name from the task queue (which may hold characters a deployment name may not). */
export function deploymentNameOf(taskQueue: string): string {
  return taskQueue.replace(/[\s.:]+/g, '-');
}

export const behaviorOf = (mode: VersioningMode): VersioningBehavior => (mode === 'auto-upgrade' ? 'AUTO_UPGRADE' : 'PINNED');

const grpcCode = (error: unknown) => (error as { code?: number }).code;
const message = (error: unknown) => (error instanceof Error ? error.message : String(error));
const NOT_FOUND = 5;
const UNIMPLEMENTED = 12;

function unsupported(error: unknown): boolean {
  return grpcCode(error) === UNIMPLEMENTED || /not (enabled|supported)|disabled|unimplemented|unknown method/i.test(message(error));
}

interface Deployment {
  known: Set<string>;
  currentBuildId?: string;
}

async function describeDeployment(connection: NativeConnection, namespace: string, deploymentName: string): Promise<Deployment | null> {
  try {
    const { workerDeploymentInfo: info } = await connection.workflowService.describeWorkerDeployment({ namespace, deploymentName });
    return {
      known: new Set((info?.versionSummaries ?? []).map((summary) => summary.deploymentVersion?.buildId ?? '').filter(Boolean)),
      currentBuildId: info?.routingConfig?.currentDeploymentVersion?.buildId || undefined,
    };
  } catch (error) {
    if (grpcCode(error) === NOT_FOUND) return null;
    throw error;
  }
}

/**
 * Before the workers are created: what the deployment knows. With versioning off, refuses to start
 * an unversioned worker that would get no work because the deployment has a current version.
 */
export async function inspectDeployment(connection: NativeConnection, namespace: string, version: WorkerDeploymentVersion, mode: VersioningMode): Promise<Deployment | null> {
  let deployment: Deployment | null;
  try {
    deployment = await describeDeployment(connection, namespace, version.deploymentName);
  } catch (error) {
    if (mode === 'off') return null;
    if (unsupported(error)) {
      throw new InfraError(
        `this Temporal server does not offer Worker Deployments (worker versioning), which ${VERSIONING_ENV.mode}=${mode} needs: ${message(error)}`,
        `use Temporal Server >= 1.28 (or Temporal Cloud) with Worker Deployments enabled, or set ${VERSIONING_ENV.mode}=off to run unversioned workers (then workflow changes must stay replay-compatible: patched()).`,
      );
    }
    throw new InfraError(`could not describe the Worker Deployment ${version.deploymentName} on namespace ${namespace}: ${message(error)}`, `the worker needs to read Worker Deployments on namespace ${namespace} (or set ${VERSIONING_ENV.mode}=off).`);
  }
  if (mode === 'off' && deployment?.currentBuildId) {
    throw new InfraError(
      `${VERSIONING_ENV.mode}=off, but the Worker Deployment ${version.deploymentName} routes this task queue to its current build ${deployment.currentBuildId}: an unversioned worker would get no work.`,
      `unset ${VERSIONING_ENV.mode} to run as a version, or hand the task queue back to unversioned workers first: temporal worker deployment set-current-version --namespace ${namespace} --deployment-name ${version.deploymentName} --unversioned`,
    );
  }
  return deployment;
}

/**
 * After the workers are created (so the version is sure to get pollers): a build the deployment has
 * never seen becomes current (with `promote: new`). The host queues of other hosts are not polled by a
 * new build until each host is upgraded, so missing task queues do not hold the change back.
 */
export async function settleVersion(connection: NativeConnection, namespace: string, version: WorkerDeploymentVersion, options: VersioningOptions, before: Deployment | null): Promise<WorkerVersionInfo> {
  const info: WorkerVersionInfo = { mode: options.mode, deploymentName: version.deploymentName, buildId: version.buildId, promoted: false, currentBuildId: before?.currentBuildId };
  const isNew = !before?.known.has(version.buildId);
  if (!isNew || options.promote === 'manual' || before?.currentBuildId === version.buildId) return info;
  try {
    await connection.workflowService.setWorkerDeploymentCurrentVersion({
      namespace,
      deploymentName: version.deploymentName,
      buildId: version.buildId,
      allowNoPollers: true,
      ignoreMissingTaskQueues: true,
      identity: `cadenza-worker@${hostname()}`,
    });
  } catch (error) {
    // Another worker of the same build, starting at the same moment, may have done it.
    const after = await describeDeployment(connection, namespace, version.deploymentName).catch(() => null);
    if (after?.currentBuildId === version.buildId) return { ...info, currentBuildId: version.buildId };
    throw new InfraError(
      `could not make build ${version.buildId} the current version of the Worker Deployment ${version.deploymentName}: ${message(error)}`,
      `make it current by hand (temporal worker deployment set-current-version --namespace ${namespace} --deployment-name ${version.deploymentName} --build-id ${version.buildId}) and set ${VERSIONING_ENV.promote}=manual, or give the worker's identity permission to manage Worker Deployments.`,
    );
  }
  return { ...info, promoted: true, currentBuildId: version.buildId };
}

/** One line for logs: which version this worker is, and whether new runs come to it. */
export function describeVersion(info: WorkerVersionInfo): string {
  if (info.mode === 'off') return 'unversioned worker (CADENZA_VERSIONING=off)';
  const what = `build ${info.buildId} of Worker Deployment ${info.deploymentName} (${info.mode === 'pinned' ? 'runs pinned to the build that started them' : 'runs auto-upgrade'})`;
  if (info.promoted) return `${what}; made current now: new runs start on it`;
  if (info.currentBuildId === info.buildId) return `${what}; current: new runs start on it`;
  return `${what}; not current (current: ${info.currentBuildId ?? 'unversioned workers'}): it serves the runs pinned to it`;
}
