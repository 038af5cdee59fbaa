/**
 * `npm run setup`: obtains and starts every real component Cadenza needs, idempotently.
 *
 *   tsx infra/setup.ts                 Temporal CLI, Docker engine, agent CLIs, sandbox image, workflow bundle
 *   tsx infra/setup.ts --for-tests     the same, and Chromium for the UI checks (tests start their own Temporal servers)
 *   tsx infra/setup.ts temporal-cli | docker | image | bundle
 *   tsx infra/setup.ts server start | stop | status
 */
import { loadWorkflowBundle } from '../workers/bundle.ts';
import { AGENT_CLIS, AGENT_CLIS_DIR, binaryOrReason, type AgentClis } from './agents.ts';
import { ensureChromium } from './browser.ts';
import { ensureDockerEngine } from './docker.ts';
import { ensureSandboxImage, isDefaultSandboxImage, type ImageResult } from './image.ts';
import { InfraError, runMain, say, step } from './log.ts';
import { VERSITYGW_VERSION, ensureVersitygw } from './s3.ts';
import { defaultServerOptions, ensureTemporalCli, startDevServer, stopDevServer, temporalAnswers } from './temporal.ts';

export async function obtainTemporalCli() {
  return step('Temporal CLI', ensureTemporalCli, (cli) => `${cli.version.split('\n')[0]} at ${cli.path} (from ${cli.source})`);
}

export async function obtainDockerEngine() {
  return step('Docker engine', ensureDockerEngine, (engine) => `${engine.started ? 'started' : 'found'} ${engine.version} at ${engine.host}`);
}

/**
 * The pinned agent CLIs (from the npm registry, cached) that the default image carries. One that
 * cannot be obtained is said and left out: the default runtime needs neither, and its runtime then
 * asks for an image that brings it.
 */
export async function obtainAgentClis(): Promise<AgentClis> {
  const clis: AgentClis = { obtained: [], missing: [] };
  for (const cli of AGENT_CLIS) {
    const outcome = await step(`${cli.name} ${cli.version} (agent.runtime ${cli.runtime})`, () => binaryOrReason(cli), (result) => (result instanceof InfraError
      ? [
        `NOT AVAILABLE: ${result.message}.`,
        `    What to do: ${result.hint}`,
        `    Until then Cadenza's default sandbox image is built without ${cli.name}, and agent.runtime ${cli.runtime} needs a sandbox image with ${cli.name} on PATH (sandbox.image in WORKFLOW.md).`,
      ].join('\n')
      : `${result.name} ${result.version} at ${result.path}`));
    if (outcome instanceof InfraError) clis.missing.push({ cli, error: outcome });
    else clis.obtained.push(outcome);
  }
  return clis;
}

/** Tests only: the approver's view in the Temporal UI is checked in headless Chromium. */
export async function obtainChromium() {
  return step('Chromium (UI checks)', ensureChromium, (browser) => `${browser.installed ? 'installed' : 'found'} ${browser.version} at ${browser.path}`);
}

/** The sandbox image; for the default one, the agent CLIs it carries are obtained first. */
export async function obtainSandboxImage(requested?: string, clis?: AgentClis): Promise<ImageResult> {
  if (isDefaultSandboxImage(requested) && !clis) clis = await obtainAgentClis();
  return step('Sandbox image', () => ensureSandboxImage(requested, clis), (image) => {
    const carried = image.agentClis.map((cli) => `${cli.name} ${cli.version}`).join(', ');
    return `${image.name} ${image.built ? 'built' : 'present'}${carried ? `, with ${carried} at ${AGENT_CLIS_DIR}` : ''}`;
  });
}

/** Tests only: versitygw, the real S3 server the shared artifact store is tested on (built from its pinned Go module). */
export async function obtainVersitygw() {
  return step(`versitygw v${VERSITYGW_VERSION} (S3 server for the shared-store tests)`, ensureVersitygw, (gw) => `${gw.source === 'go install' ? 'built' : 'found'} versitygw ${gw.version} at ${gw.path}`);
}

/** Workers load this instead of bundling the workflow code at every start. */
export async function prebuildWorkflowBundle() {
  // The bundler's own report (modules, sizes) only when something is wrong.
  const { DefaultLogger } = await import('@temporalio/worker');
  return step('Workflow bundle', () => loadWorkflowBundle(new DefaultLogger('WARN')), (loaded) => `${loaded.built ? 'built' : 'up to date'} at ${loaded.file}`);
}

export async function startServer() {
  const cli = await obtainTemporalCli();
  const options = defaultServerOptions(cli.path);
  return step(
    `Temporal dev server on ${options.port} (UI ${options.uiPort})`,
    () => startDevServer(options),
    (server) => `${server.reused ? 'already running' : 'started'} at ${server.address}, Web UI ${server.uiUrl}`,
  );
}

async function main(argv: string[]) {
  const [command = 'all', sub] = argv.filter((arg) => !arg.startsWith('--'));
  switch (command) {
    case 'all': {
      await obtainTemporalCli();
      await obtainDockerEngine();
      // Also for another image: one without the CLIs gets these copies put in.
      await obtainSandboxImage(undefined, await obtainAgentClis());
      if (argv.includes('--for-tests')) await obtainChromium();
      if (argv.includes('--for-tests')) await obtainVersitygw();
      await prebuildWorkflowBundle();
      say('Set-up complete.');
      return;
    }
    case 'temporal-cli':
      await obtainTemporalCli();
      return;
    case 'docker':
      await obtainDockerEngine();
      return;
    case 'image':
      await obtainDockerEngine();
      await obtainSandboxImage();
      return;
    case 'bundle':
      await prebuildWorkflowBundle();
      return;
    case 'server': {
      if (sub === 'start') await startServer();
      else if (sub === 'stop') {
        const options = defaultServerOptions('temporal');
        const stopped = await step('Stopping the Temporal dev server', () => stopDevServer(options.dir), (was) => (was ? 'stopped' : 'was not running'));
        void stopped;
      } else if (sub === 'status') {
        const options = defaultServerOptions('temporal');
        const address = `127.0.0.1:${options.port}`;
        say((await temporalAnswers(address)) ? `Temporal answers at ${address}` : `no Temporal server answers at ${address}`);
      } else throw new Error(`unknown server command "${sub}"; use start, stop or status`);
      return;
    }
    default:
      throw new Error(`unknown command "${command}"; use temporal-cli, docker, image, bundle or server start|stop|status`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await runMain(() => main(process.argv.slice(2)));
