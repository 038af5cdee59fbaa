/**
 * `npm run setup`: obtains and starts every real component Cadenza needs, idempotently.
 *
 *   tsx infra/setup.ts                 Temporal CLI, Docker engine, sandbox image, workflow bundle
 *   tsx infra/setup.ts --for-tests     the same, and Chromium for the UI checks (tests start their own Temporal servers)
 *   tsx infra/setup.ts temporal-cli | docker | image | bundle
 *   tsx infra/setup.ts server start | stop | status
 */
import { loadWorkflowBundle } from '../workers/bundle.ts';
import { ensureClaudeCode, ensureCodex } from './agents.ts';
import { ensureChromium } from './browser.ts';
import { ensureDockerEngine } from './docker.ts';
import { ensureSandboxImage } from './image.ts';
import { runMain, say, step } from './log.ts';
import { defaultServerOptions, ensureTemporalCli, startDevServer, stopDevServer, temporalAnswers } from './temporal.ts';

export async function obtainTemporalCli() {
  return step('Temporal CLI', ensureTemporalCli, (cli) => `${cli.version.split('\n')[0]} at ${cli.path} (from ${cli.source})`);
}

export async function obtainDockerEngine() {
  return step('Docker engine', ensureDockerEngine, (engine) => `${engine.started ? 'started' : 'found'} ${engine.version} at ${engine.host}`);
}

/** The pinned Codex binary the codex runtime puts in sandboxes (from the npm registry, cached). */
export async function obtainCodex() {
  return step('Codex (agent.runtime codex)', ensureCodex, (codex) => `codex ${codex.version} at ${codex.path}`);
}

/** The pinned Claude Code binary the claude-code runtime puts in sandboxes. */
export async function obtainClaudeCode() {
  return step('Claude Code (agent.runtime claude-code)', ensureClaudeCode, (claude) => `claude ${claude.version} at ${claude.path}`);
}

/** Tests only: the approver's view in the Temporal UI is checked in headless Chromium. */
export async function obtainChromium() {
  return step('Chromium (UI checks)', ensureChromium, (browser) => `${browser.installed ? 'installed' : 'found'} ${browser.version} at ${browser.path}`);
}

export async function obtainSandboxImage(requested?: string) {
  return step('Sandbox image', () => ensureSandboxImage(requested), (image) => `${image.name} ${image.built ? 'built' : 'present'}`);
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
      await obtainSandboxImage();
      if (argv.includes('--for-tests')) {
        await obtainChromium();
        await obtainCodex();
        await obtainClaudeCode();
      }
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
