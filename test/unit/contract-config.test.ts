import { describe, it, expect } from 'vitest';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseContract, renderPrompt, resolveSecret, type Contract } from '../../lib/contract/index.ts';
import { DEFAULT_PROTECTED_PATHS } from '../../lib/proof/integrity.ts';
import { catchContractError } from '../helpers/contract-error.ts';

const FILE = '/proj/WORKFLOW.md';

/** The one proof command the tests' contracts have, unless they give a proof section of their own. */
const TESTS = 'proof: { commands: [{ name: tests, run: npm test }] }';
const TESTS_CONFIG = { name: 'tests', run: 'npm test', timeoutMs: 600_000, required: true };

function parse(yaml: string, env: NodeJS.ProcessEnv = {}): Contract {
  const withProof = /^proof:/m.test(yaml) ? yaml : `${yaml}\n${TESTS}`;
  return parseContract(`---\n${withProof}\n---\nWork on {{ issue.identifier }}.`, FILE, env);
}

/** Front matter with the one required key plus the given YAML. */
function withRepo(yaml: string, env: NodeJS.ProcessEnv = {}): Contract {
  return parse(`repo:\n  url: ./repo\n${yaml}`, env);
}

const catchError = catchContractError;

describe('config defaults', () => {
  it('fills every default', () => {
    const { config } = withRepo('');
    expect(config).toEqual({
      project: { id: expect.stringMatching(/^repo-[0-9a-f]{8}$/) },
      worker: { maxSandboxes: null },
      tracker: {
        kind: 'local',
        path: '/proj/issues',
        endpoint: null,
        apiKey: null,
        projectSlug: null,
        repository: null,
        assignee: null,
        requiredLabels: [],
        activeStates: ['Todo', 'In Progress'],
        terminalStates: ['Closed', 'Cancelled', 'Canceled', 'Duplicate', 'Done'],
        inProgressState: 'In Progress',
        reviewState: 'Human Review',
        doneState: 'Done',
      },
      polling: { intervalMs: 30_000 },
      schedule: null,
      workspace: { root: join(tmpdir(), 'cadenza_workspaces') },
      hooks: { afterCreate: null, beforeRun: null, afterRun: null, beforeRemove: null, timeoutMs: 60_000 },
      agent: {
        maxConcurrentAgents: 10,
        maxTurns: 20,
        maxRounds: 10,
        maxRetryBackoffMs: 300_000,
        maxConcurrentAgentsByState: {},
        turnTimeoutMs: 3_600_000,
        stallTimeoutMs: 300_000,
      },
      repo: { url: '/proj/repo', baseBranch: 'main' },
      sandbox: { image: 'cadenza-sandbox:latest', cpus: 1, memoryMb: 1024, pidsLimit: 256, network: 'none', user: 'agent', egress: { setup: null, agent: 'none', checks: 'none' } },
      model: { name: 'gpt-4.1', baseUrl: null, apiKey: { env: 'OPENAI_API_KEY' }, maxOutputTokens: 4096, budgetTokens: 2_000_000 },
      proof: { commands: [TESTS_CONFIG], maxRounds: 3, protectedPaths: [...DEFAULT_PROTECTED_PATHS], onProtectedChange: 'flag', baseTests: true },
      landing: { strategy: 'merge', targetBranch: 'main', requireApproval: true, approvalTimeoutMs: 604_800_000 },
    });
  });

  it('null values and empty sections count as absent', () => {
    const { config } = withRepo('polling:\nagent:\n  max_turns: null\nhooks: {}');
    expect(config.polling.intervalMs).toBe(30_000);
    expect(config.agent.maxTurns).toBe(20);
  });

  it('ignores unknown keys at every level', () => {
    const { config } = withRepo([
      'server: { port: 4000 }',
      'tracker:\n  kind: local\n  flavour: vanilla',
      'agent:\n  max_turns: 5\n  temperature: hot',
      'proof:\n  commands:\n    - { name: test, run: npm test, retries: 9 }',
    ].join('\n'));
    expect(config.agent.maxTurns).toBe(5);
    expect(config.proof.commands).toEqual([{ name: 'test', run: 'npm test', timeoutMs: 600_000, required: true }]);
    expect(JSON.stringify(config)).not.toMatch(/flavour|temperature|retries|4000/);
  });

  it('landing.target_branch follows repo.base_branch', () => {
    const { config } = parse('repo: { url: ./r, base_branch: develop }');
    expect(config.landing.targetBranch).toBe('develop');
  });

  it('takes Symphony codex.* timeouts when agent.* does not set them', () => {
    expect(withRepo('codex: { stall_timeout_ms: 0, turn_timeout_ms: 1000 }').config.agent).toMatchObject({
      stallTimeoutMs: 0, turnTimeoutMs: 1000,
    });
    expect(withRepo('codex: { turn_timeout_ms: 1000 }\nagent: { turn_timeout_ms: 2000 }').config.agent.turnTimeoutMs).toBe(2000);
  });
});

describe('project identity', () => {
  const linear = (slug: string, repo: string) => parse(`tracker: { kind: linear, project_slug: ${slug}, api_key: $KEY }\nrepo: { url: ${repo} }`, { KEY: 'k' }).config.project!.id;

  it('derives the id from tracker and repository: readable, stable, and apart for two projects', () => {
    expect(linear('alpha', 'https://github.com/acme/web.git')).toMatch(/^web-[0-9a-f]{8}$/);
    expect(linear('alpha', 'https://github.com/acme/web.git')).toBe(linear('alpha', 'https://github.com/acme/web.git'));
    // Same issue identifiers in two Linear projects, or one project landing to two repositories: two ids.
    expect(linear('alpha', 'https://github.com/acme/web.git')).not.toBe(linear('beta', 'https://github.com/acme/web.git'));
    expect(linear('alpha', 'https://github.com/acme/web.git')).not.toBe(linear('alpha', 'https://github.com/other/web.git'));
    // Two installations of the demo: local trackers and repositories in different folders.
    const local = (dir: string) => parseContract(`---\nrepo: { url: ./repo }\n${TESTS}\n---\n`, `${dir}/WORKFLOW.md`, {}).config.project!.id;
    expect(local('/home/a/cadenza/demo')).not.toBe(local('/home/b/cadenza/demo'));
  });

  it('reads worker.max_sandboxes, and Symphony\'s worker.max_concurrent_agents_per_host as the same', () => {
    expect(withRepo('worker: { max_sandboxes: 3 }').config.worker).toEqual({ maxSandboxes: 3 });
    expect(withRepo('worker: { max_concurrent_agents_per_host: 2 }').config.worker).toEqual({ maxSandboxes: 2 });
    const error = catchError(() => withRepo('worker: { max_sandboxes: 0 }'));
    expect(error.key).toBe('worker.max_sandboxes');
    expect(error.message).toContain('an integer >= 1');
  });

  it('takes project.id as given, and refuses one that cannot name workflows and containers', () => {
    expect(withRepo('project: { id: shop-frontend }').config.project).toEqual({ id: 'shop-frontend' });
    const error = catchError(() => withRepo('project: { id: "Shop Frontend!" }'));
    expect(error.key).toBe('project.id');
    expect(error.message).toContain('lower-case letters, digits and "-"');
    expect(error.message).toContain('Shop Frontend!');
  });
});

describe('paths', () => {
  it('resolves workspace.root: ~, relative and absolute', () => {
    expect(withRepo('workspace: { root: ~/ws }').config.workspace.root).toBe(join(homedir(), 'ws'));
    expect(withRepo('workspace: { root: ws }').config.workspace.root).toBe('/proj/ws');
    expect(withRepo('workspace: { root: /var/ws/ }').config.workspace.root).toBe('/var/ws');
  });

  it('resolves a repo path but keeps URLs', () => {
    for (const url of ['https://github.com/acme/app.git', 'ssh://git@host/acme/app.git', 'git@github.com:acme/app.git', 'file:///srv/app.git']) {
      expect(parse(`repo: { url: "${url}" }`).config.repo.url).toBe(url);
    }
    expect(parse('repo: { url: ../remote.git }').config.repo.url).toBe('/remote.git');
    expect(parse('repo: { url: ~/src/app }').config.repo.url).toBe(join(homedir(), 'src/app'));
  });

  it('the local tracker folder resolves against the WORKFLOW.md folder; other kinds have none', () => {
    expect(withRepo('tracker: { path: ./tickets }').config.tracker.path).toBe('/proj/tickets');
    expect(withRepo('tracker: { kind: memory, path: ./tickets }').config.tracker.path).toBeNull();
  });
});

describe('secrets and $VAR', () => {
  const linear = 'tracker: { kind: linear, project_slug: web }';

  it('linear defaults to $LINEAR_API_KEY and keeps only a reference', () => {
    const contract = withRepo(linear, { LINEAR_API_KEY: 'lin_secret_value' });
    expect(contract.config.tracker.apiKey).toEqual({ env: 'LINEAR_API_KEY' });
    expect(JSON.stringify(contract)).not.toContain('lin_secret_value');
    expect(resolveSecret(contract.config.tracker.apiKey!, { LINEAR_API_KEY: 'lin_secret_value' })).toBe('lin_secret_value');
  });

  it('an explicit $VAR secret stays a reference', () => {
    const env = { MY_TRACKER_KEY: 'tracker-secret-123', MY_MODEL_KEY: 'model-secret-456' };
    const contract = withRepo(
      'tracker: { kind: github, repository: acme/app, api_key: $MY_TRACKER_KEY }\nmodel: { api_key: $MY_MODEL_KEY }', env);
    expect(contract.config.tracker.apiKey).toEqual({ env: 'MY_TRACKER_KEY' });
    expect(contract.config.model.apiKey).toEqual({ env: 'MY_MODEL_KEY' });
    const json = JSON.stringify(contract);
    expect(json).not.toContain('tracker-secret-123');
    expect(json).not.toContain('model-secret-456');
    expect(JSON.parse(json)).toEqual(contract);
  });

  it('github defaults to $GITHUB_TOKEN', () => {
    expect(withRepo('tracker: { kind: github, repository: acme/app }', { GITHUB_TOKEN: 't' }).config.tracker.apiKey)
      .toEqual({ env: 'GITHUB_TOKEN' });
  });

  it.each([
    ['unset', {}],
    ['empty', { LINEAR_API_KEY: '' }],
  ])('tracker key %s => missing_secret naming the variable', (_what, env) => {
    const err = catchError(() => withRepo(linear, env));
    expect(err.code).toBe('missing_secret');
    expect(err.key).toBe('tracker.api_key');
    expect(err.message).toContain('LINEAR_API_KEY');
  });

  it('a missing model key is fine (the scripted model runs)', () => {
    expect(withRepo('model: { api_key: $NOT_SET_ANYWHERE }').config.model.apiKey).toEqual({ env: 'NOT_SET_ANYWHERE' });
  });

  it('refuses a literal secret without echoing it', () => {
    const err = catchError(() => withRepo('model: { api_key: sk-literal-secret }'));
    expect(err.code).toBe('invalid_config');
    expect(err.key).toBe('model.api_key');
    expect(err.value).toBeUndefined();
    expect(err.allowed).toContain('$VAR');
    expect(err.message).not.toContain('sk-literal-secret');
  });

  it('resolveSecret throws missing_secret for unset or empty', () => {
    for (const env of [{}, { X: '' }]) {
      const err = catchError(() => resolveSecret({ env: 'X' }, env));
      expect(err.code).toBe('missing_secret');
      expect(err.message).toContain('X');
    }
  });

  it('other string keys read $VAR at load time', () => {
    const { config } = parse('repo: { url: $REPO_URL, base_branch: $BASE }\nhooks: { before_run: $SETUP }', {
      REPO_URL: 'https://git.example/app.git', BASE: 'trunk', SETUP: 'make deps',
    });
    expect(config.repo).toEqual({ url: 'https://git.example/app.git', baseBranch: 'trunk' });
    expect(config.hooks.beforeRun).toBe('make deps');
    // Only an exact `$NAME` is a reference.
    expect(withRepo('hooks: { before_run: "echo $HOME" }').config.hooks.beforeRun).toBe('echo $HOME');
  });

  it('an unset $VAR in another key => invalid_config naming the variable', () => {
    const err = catchError(() => parse('repo: { url: $REPO_URL }', { REPO_URL: '' }));
    expect(err.code).toBe('invalid_config');
    expect(err.key).toBe('repo.url');
    expect(err.value).toBe('$REPO_URL');
    expect(err.message).toContain('REPO_URL');
  });
});

describe('proof integrity keys', () => {
  it('a given protected_paths list replaces the defaults; "defaults" stands for all of them', () => {
    const own = withRepo('proof: { protected_paths: ["src/golden/**", "*.snap"], commands: [{ name: tests, run: npm test }] }').config.proof;
    expect(own.protectedPaths).toEqual(['src/golden/**', '*.snap']);
    const extended = withRepo('proof: { protected_paths: [defaults, "src/golden/**", defaults], commands: [{ name: tests, run: npm test }] }').config.proof;
    expect(extended.protectedPaths).toEqual([...DEFAULT_PROTECTED_PATHS, 'src/golden/**']);
    expect(withRepo('proof: { protected_paths: [], commands: [{ name: tests, run: npm test }] }').config.proof.protectedPaths).toEqual([]);
  });

  it('reads on_protected_change and base_tests', () => {
    const { proof } = withRepo('proof: { on_protected_change: reject, base_tests: false, commands: [{ name: tests, run: npm test }] }').config;
    expect(proof).toMatchObject({ onProtectedChange: 'reject', baseTests: false });
  });
});

describe('sandbox.egress', () => {
  it('defaults: setup gets the ecosystems the repository uses (detected at run time), agent and checks none', () => {
    expect(withRepo('').config.sandbox.egress).toEqual({ setup: null, agent: 'none', checks: 'none' });
  });

  it('reads none or a list of ecosystems and host patterns per phase', () => {
    const { egress } = withRepo('sandbox: { egress: { setup: [npm, pypi, "files.example.org"], agent: none, checks: ["*.example.org:8443"] } }').config.sandbox;
    expect(egress).toEqual({ setup: ['npm', 'pypi', 'files.example.org'], agent: 'none', checks: ['*.example.org:8443'] });
  });
});

describe('invalid_config', () => {
  const cases: [string, string, string, unknown, string][] = [
    // [front matter (after repo), key, allowed contains, value, message]
    ['proof: { max_rounds: three }', 'proof.max_rounds', 'an integer >= 1', 'three',
      'proof.max_rounds: expected an integer >= 1, got "three"'],
    ['proof: { max_rounds: 0 }', 'proof.max_rounds', 'an integer >= 1', 0, ''],
    ['tracker: { kind: jira }', 'tracker.kind', '"local", "linear", "github", "memory"', 'jira', ''],
    ['tracker: { required_labels: bug }', 'tracker.required_labels', 'a list', 'bug', ''],
    ['tracker: { active_states: [] }', 'tracker.active_states', 'at least one', [], ''],
    ['tracker: { terminal_states: [Done, 3] }', 'tracker.terminal_states[1]', 'a string', 3, ''],
    ['tracker: { kind: github, repository: acme }', 'tracker.repository', 'owner/name', 'acme', ''],
    ['tracker: { endpoint: ftp://x }', 'tracker.endpoint', 'http(s) URL', 'ftp://x', ''],
    ['polling: { interval_ms: 500 }', 'polling.interval_ms', 'an integer >= 1000', 500, ''],
    ['polling: { interval_ms: 1500.5 }', 'polling.interval_ms', 'an integer >= 1000', 1500.5, ''],
    ['polling: 5', 'polling', 'a map', 5, ''],
    ['schedule: "*/5 * * *"', 'schedule', '5-field cron', '*/5 * * *', ''],
    ['hooks: { after_create: [a, b] }', 'hooks.after_create', 'a string', ['a', 'b'], ''],
    ['hooks: { timeout_ms: "60s" }', 'hooks.timeout_ms', 'an integer >= 1', '60s', ''],
    ['agent: { max_concurrent_agents: -1 }', 'agent.max_concurrent_agents', 'an integer >= 1', -1, ''],
    ['agent: { max_concurrent_agents_by_state: { Todo: 0 } }', 'agent.max_concurrent_agents_by_state.Todo', 'an integer >= 1', 0, ''],
    ['agent: { max_concurrent_agents_by_state: { "In Progress": x } }', 'agent.max_concurrent_agents_by_state["In Progress"]', 'an integer >= 1', 'x', ''],
    ['agent: { max_concurrent_agents_by_state: { Todo: 1, todo: 2 } }', 'agent.max_concurrent_agents_by_state.todo', 'case-insensitive', 'todo', ''],
    ['agent: { stall_timeout_ms: -5 }', 'agent.stall_timeout_ms', 'an integer >= 0', -5, ''],
    ['sandbox: { network: bridge }', 'sandbox.network', 'the only supported value', 'bridge', ''],
    ['sandbox: { cpus: 0 }', 'sandbox.cpus', 'a number > 0', 0, ''],
    ['sandbox: { memory_mb: 32 }', 'sandbox.memory_mb', 'an integer >= 64', 32, ''],
    ['sandbox: { pids_limit: 8 }', 'sandbox.pids_limit', 'an integer >= 16', 8, ''],
    ['sandbox: { user: root }', 'sandbox.user', 'non-root', 'root', ''],
    ['sandbox: { user: "0:0" }', 'sandbox.user', 'non-root', '0:0', ''],
    ['model: { base_url: localhost:8080 }', 'model.base_url', 'http(s) URL', 'localhost:8080', ''],
    ['model: { budget_tokens: 1e99 }', 'model.budget_tokens', 'an integer >= 1', 1e99, ''],
    ['proof: { commands: { name: x } }', 'proof.commands', 'a list', { name: 'x' }, ''],
    ['proof: { commands: [npm test] }', 'proof.commands[0]', 'a map', 'npm test', ''],
    ['proof: { commands: [{ name: t, run: a }, { run: b }] }', 'proof.commands[1].name', 'required', undefined, ''],
    ['proof: { commands: [{ name: t }] }', 'proof.commands[0].run', 'required', undefined, ''],
    ['proof: { commands: [{ name: t, run: a }, { name: t, run: b }] }', 'proof.commands[1].name', 'not used by another', 't', ''],
    ['proof: { commands: [{ name: t, run: a }, { name: u, run: b, timeout_ms: 1s }] }', 'proof.commands[1].timeout_ms', 'an integer >= 1', '1s', ''],
    ['proof: { commands: [{ name: t, run: a, required: "yes" }] }', 'proof.commands[0].required', 'true or false', 'yes', ''],
    ['proof: { protected_paths: defaults }', 'proof.protected_paths', 'a list of glob patterns, or "defaults"', 'defaults',
      'proof.protected_paths: expected a list of glob patterns, or "defaults" for the built-in ones, got "defaults"'],
    ['proof: { protected_paths: [defaults, ""] }', 'proof.protected_paths[1]', 'a non-empty string', '', ''],
    ['proof: { protected_paths: [test/, 3] }', 'proof.protected_paths[1]', 'a string', 3, ''],
    ['proof: { on_protected_change: warn }', 'proof.on_protected_change', '"flag", "reject"', 'warn',
      'proof.on_protected_change: expected one of "flag", "reject", got "warn"'],
    ['proof: { base_tests: yes }', 'proof.base_tests', 'true or false', 'yes', ''],
    ['sandbox: { egress: { setup: npm } }', 'sandbox.egress.setup', '"none" or a list of package ecosystems', 'npm', ''],
    ['sandbox: { egress: { agent: [rubygems] } }', 'sandbox.egress.agent[0]', 'npm, pypi, crates, go, maven, debian', 'rubygems', ''],
    ['sandbox: { egress: { checks: ["http://example.org/"] } }', 'sandbox.egress.checks[0]', 'host patterns', 'http://example.org/', ''],
    ['sandbox: { egress: { install: [npm] } }', 'sandbox.egress.install', 'setup, agent, checks', ['npm'],
      'sandbox.egress.install: unknown phase; the phases are setup, agent, checks'],
    ['landing: { strategy: rebase }', 'landing.strategy', '"merge", "pull_request"', 'rebase', ''],
    ['landing: { require_approval: no }', 'landing.require_approval', 'true or false', 'no', ''],
    ['landing: { target_branch: "--force" }', 'landing.target_branch', 'git branch name', '--force', ''],
    ['landing: { approval_timeout_ms: 0 }', 'landing.approval_timeout_ms', 'an integer >= 1', 0, ''],
  ];

  it.each(cases)('%s => %s', (yaml, key, allowed, value, message) => {
    const err = catchError(() => withRepo(yaml, { GITHUB_TOKEN: 't' }));
    expect(err.code).toBe('invalid_config');
    expect(err.key).toBe(key);
    expect(err.allowed).toContain(allowed);
    expect(err.value).toEqual(value);
    expect(err.message.startsWith(`${key}: `)).toBe(true);
    if (message) expect(err.message).toBe(message);
  });

  it('repo.url is required', () => {
    const err = catchError(() => parse('repo: { base_branch: main }'));
    expect(err).toMatchObject({ code: 'invalid_config', key: 'repo.url' });
    expect(err.allowed).toContain('required');
  });

  it('linear needs project_slug', () => {
    const err = catchError(() => parse('repo: { url: r }\ntracker: { kind: linear }', { LINEAR_API_KEY: 'k' }));
    expect(err).toMatchObject({ code: 'invalid_config', key: 'tracker.project_slug' });
  });

  it('github needs repository', () => {
    const err = catchError(() => parse('repo: { url: r }\ntracker: { kind: github }', { GITHUB_TOKEN: 'k' }));
    expect(err).toMatchObject({ code: 'invalid_config', key: 'tracker.repository' });
  });

  describe('landing.strategy pull_request: where the pull request is opened', () => {
    it('in the GitHub tracker\'s repository, with its endpoint and token', () => {
      const { config } = withRepo('tracker: { kind: github, repository: acme/web, endpoint: "http://127.0.0.1:9/api", api_key: $GH }\nlanding: { strategy: pull_request }', { GH: 't' });
      expect(config.landing.github).toEqual({ repository: 'acme/web', endpoint: 'http://127.0.0.1:9/api', apiKey: { env: 'GH' } });
    });

    it.each([
      ['git@github.com:acme/web-app.git'],
      ['https://github.com/acme/web-app.git'],
      ['https://x-access-token@github.com/acme/web-app'],
      ['ssh://git@github.com/acme/web-app.git'],
    ])('with another tracker, in the github.com repository repo.url %s points at, with $GITHUB_TOKEN', (url) => {
      const { config } = parse(`repo: { url: "${url}" }\nlanding: { strategy: pull_request }`, { GITHUB_TOKEN: 't' });
      expect(config.landing.github).toEqual({ repository: 'acme/web-app', endpoint: null, apiKey: { env: 'GITHUB_TOKEN' } });
    });

    it('landing.github says where, over both', () => {
      const { config } = parse('repo: { url: "git@github.com:acme/web-app.git" }\nlanding: { strategy: pull_request, github: { repository: acme/fork, endpoint: "https://ghe.example.com/api/v3", api_key: $GHE_TOKEN } }', { GHE_TOKEN: 't' });
      expect(config.landing.github).toEqual({ repository: 'acme/fork', endpoint: 'https://ghe.example.com/api/v3', apiKey: { env: 'GHE_TOKEN' } });
      expect(withRepo('landing: { strategy: merge }').config.landing.github).toBeUndefined();
    });

    it('is refused at start when there is no GitHub repository to open it in, or no token', () => {
      const nowhere = catchError(() => withRepo('landing: { strategy: pull_request }', { GITHUB_TOKEN: 't' }));
      expect(nowhere).toMatchObject({ code: 'invalid_config', key: 'landing.github.repository' });
      expect(nowhere.message).toContain('unless tracker.kind is "github" or repo.url is a github.com URL');
      const badName = catchError(() => withRepo('landing: { strategy: pull_request, github: { repository: acme } }', { GITHUB_TOKEN: 't' }));
      expect(badName).toMatchObject({ code: 'invalid_config', key: 'landing.github.repository', value: 'acme' });
      const noToken = catchError(() => parse('repo: { url: "git@github.com:acme/web-app.git" }\nlanding: { strategy: pull_request }', {}));
      expect(noToken).toMatchObject({ code: 'missing_secret', key: 'landing.github.api_key' });
      expect(noToken.message).toBe('landing.github.api_key: environment variable GITHUB_TOKEN is not set or is empty (landing.strategy "pull_request" opens pull requests in acme/web-app with it)');
    });
  });

  it('accepts a valid 5-field cron and normalizes spacing', () => {
    expect(withRepo('schedule: "*/5   *  * * 1-5"').config.schedule).toBe('*/5 * * * 1-5');
  });
});

describe('a realistic WORKFLOW.md', () => {
  const text = `---
# Cadenza contract for the web app
tracker:
  kind: linear
  project_slug: web-app
  assignee: me
  required_labels: [Agent, Backend]
  active_states: [Todo, In Progress, Rework]
  review_state: In Review
polling:
  interval_ms: 15000
schedule: "*/2 * * * *"
workspace:
  root: ~/cadenza/ws
hooks:
  after_create: |
    npm ci
  before_run: git fetch --all
  timeout_ms: 120000
agent:
  max_concurrent_agents: 4
  max_turns: 12
  max_concurrent_agents_by_state:
    In Progress: 2
    rework: 1
repo:
  url: git@github.com:acme/web-app.git
  base_branch: develop
sandbox:
  image: acme/web-sandbox:2
  cpus: 2.5
  memory_mb: 4096
  pids_limit: 512
model:
  name: gpt-4.1-mini
  base_url: http://localhost:11434/v1
  api_key: $ACME_OPENAI_KEY
  budget_tokens: 500000
proof:
  max_rounds: 2
  commands:
    - name: typecheck
      run: npx tsc --noEmit
      timeout_ms: 120000
    - name: test
      run: npm test
    - name: lint
      run: npm run lint
      required: false
landing:
  strategy: merge
  require_approval: true
  approval_timeout_ms: 86400000
observability:
  dashboard_enabled: true
---

You are working on {{ issue.identifier }}: {{ issue.title }}.

{% if issue.description %}{{ issue.description }}{% endif %}

{% if issue.labels.size > 0 %}Labels: {{ issue.labels | join: ", " }}{% endif %}
{% for b in issue.blocked_by %}- blocked by {{ b.identifier }} ({{ b.state }})
{% endfor %}
{% if attempt %}This is attempt {{ attempt }}; read the workpad first.{% endif %}
`;

  it('loads and renders', async () => {
    const env = { LINEAR_API_KEY: 'lin_live_abc', ACME_OPENAI_KEY: 'sk-live-def' };
    const contract = parseContract(text, '/repos/web/WORKFLOW.md', env);
    const { config } = contract;
    expect(config.tracker).toMatchObject({
      kind: 'linear', projectSlug: 'web-app', assignee: 'me', apiKey: { env: 'LINEAR_API_KEY' },
      requiredLabels: ['agent', 'backend'], activeStates: ['Todo', 'In Progress', 'Rework'],
      reviewState: 'In Review', path: null,
    });
    expect(config.schedule).toBe('*/2 * * * *');
    expect(config.polling.intervalMs).toBe(15_000);
    expect(config.workspace.root).toBe(join(homedir(), 'cadenza/ws'));
    expect(config.hooks).toEqual({ afterCreate: 'npm ci\n', beforeRun: 'git fetch --all', afterRun: null, beforeRemove: null, timeoutMs: 120_000 });
    expect(config.agent.maxConcurrentAgentsByState).toEqual({ 'in progress': 2, rework: 1 });
    expect(config.repo).toEqual({ url: 'git@github.com:acme/web-app.git', baseBranch: 'develop' });
    expect(config.sandbox).toEqual({ image: 'acme/web-sandbox:2', cpus: 2.5, memoryMb: 4096, pidsLimit: 512, network: 'none', user: 'agent', egress: { setup: null, agent: 'none', checks: 'none' } });
    expect(config.model).toEqual({
      name: 'gpt-4.1-mini', baseUrl: 'http://localhost:11434/v1', apiKey: { env: 'ACME_OPENAI_KEY' },
      maxOutputTokens: 4096, budgetTokens: 500_000,
    });
    expect(config.proof.commands.map((c) => [c.name, c.timeoutMs, c.required])).toEqual([
      ['typecheck', 120_000, true], ['test', 600_000, true], ['lint', 600_000, false],
    ]);
    expect(config.landing).toEqual({ strategy: 'merge', targetBranch: 'develop', requireApproval: true, approvalTimeoutMs: 86_400_000 });
    const json = JSON.stringify(contract);
    expect(json).not.toContain('lin_live_abc');
    expect(json).not.toContain('sk-live-def');
    const prompt = await renderPrompt(contract, {
      issue: {
        id: 'u1', identifier: 'WEB-12', title: 'Add dark mode', description: 'Use CSS variables.', priority: 2,
        state: 'Rework', branch_name: null, url: null, labels: ['agent', 'ui'],
        blocked_by: [{ id: 'u0', identifier: 'WEB-11', state: 'Done' }],
        created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-01T00:00:00Z',
      },
      attempt: 2,
    });
    expect(prompt).toContain('You are working on WEB-12: Add dark mode.');
    expect(prompt).toContain('Use CSS variables.');
    expect(prompt).toContain('Labels: agent, ui');
    expect(prompt).toContain('- blocked by WEB-11 (Done)');
    expect(prompt).toContain('This is attempt 2; read the workpad first.');
  });
});

describe('what a contract must say, and what it says that Cadenza does not read', () => {
  it('names unknown keys with the nearest known one, and keeps them', () => {
    const contract = withRepo('agent: { max_turnz: 5, max_turns: 7 }\nhooks: { timout_ms: 1000 }\ncodex: { service_tier: fast }\nserver: { port: 4000 }');
    expect(contract.config.agent.maxTurns).toBe(7);
    expect(contract.warnings).toEqual([
      `${FILE}: hooks.timout_ms is not a key Cadenza reads here; it is kept and ignored. Did you mean hooks.timeout_ms?`,
      `${FILE}: agent.max_turnz is not a key Cadenza reads here; it is kept and ignored. Did you mean agent.max_turns?`,
      `${FILE}: codex.service_tier is not a key Cadenza reads here; it is kept and ignored`,
      `${FILE}: server is not a key Cadenza reads here; it is kept and ignored`,
    ].sort((a, b) => contract.warnings!.indexOf(a) - contract.warnings!.indexOf(b)));
    expect(contract.warnings).toHaveLength(4);
    // Inside list items too.
    const listed = withRepo('proof: { commands: [{ name: tests, run: npm test, timout_ms: 5 }] }');
    expect(listed.warnings).toEqual([`${FILE}: proof.commands[0].timout_ms is not a key Cadenza reads here; it is kept and ignored. Did you mean proof.commands[0].timeout_ms?`]);
    expect(withRepo('').warnings).toBeUndefined();
  });

  it('refuses a proof with no required command unless it says so', () => {
    const none = catchError(() => parse('repo: { url: ./repo }\nproof: { max_rounds: 2 }'));
    expect(none.key).toBe('proof.commands');
    expect(none.message).toContain('no proof command is given');
    expect(none.message).toContain('proof.allow_no_checks: true');
    const optional = catchError(() => parse('repo: { url: ./repo }\nproof: { commands: [{ name: lint, run: npm run lint, required: false }] }'));
    expect(optional.message).toContain('no command is required');
    const explicit = parse('repo: { url: ./repo }\nproof: { allow_no_checks: true }');
    expect(explicit.config.proof).toMatchObject({ commands: [], allowNoChecks: true });
  });

  it.each([
    ['https://alice:s3cret-pass@git.example.com/acme/app.git', 's3cret-pass', 'https://git.example.com/acme/app.git'],
    ['https://ghp_abcdefghijklmnopqrstuvwxyz0123456789@github.com/acme/app', 'ghp_abcdefghijklmnopqrstuvwxyz0123456789', 'https://github.com/acme/app'],
    ['ssh://git:hunter2@git.example.com/acme/app.git', 'hunter2', 'ssh://git.example.com/acme/app.git'],
  ])('refuses credentials in repo.url (%s) without echoing them', (url, secret, shown) => {
    const error = catchError(() => parse(`repo: { url: "${url}" }`));
    expect(error.key).toBe('repo.url');
    expect(error.message).toContain(`write it as ${shown}`);
    expect(JSON.stringify({ message: error.message, value: error.value, allowed: error.allowed })).not.toContain(secret);
  });

  it('accepts a user name that is no secret', () => {
    expect(withRepo('').config.repo.url).toBe('/proj/repo');
    expect(parse('repo: { url: "ssh://git@github.com/acme/app.git" }').config.repo.url).toBe('ssh://git@github.com/acme/app.git');
    expect(parse('repo: { url: "https://x-access-token@github.com/acme/app" }').config.repo.url).toBe('https://x-access-token@github.com/acme/app');
  });
});
