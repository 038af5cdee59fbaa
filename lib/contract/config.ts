import { DEFAULT_MAX_ROUNDS } from '../../workflows/definitions.ts';
import { homedir, tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { DEFAULT_PROTECTED_PATHS } from '../proof/integrity.ts';
import { ContractError } from './errors.ts';
import { ECOSYSTEMS, EGRESS_PHASES, HOST_PATTERN, isEcosystem, type EgressConfig, type EgressPhase } from '../egress/policy.ts';
import { envRefName } from './secrets.ts';
import { codexCommandModel, symphonyNotes } from './symphony.ts';
import { derivedProjectId, PROJECT_ID, PROJECT_ID_ALLOWED } from './project.ts';
import type {
  AgentConfig, CadenzaConfig, HooksConfig, LandingConfig, ModelConfig, ProofCommand, PullRequestHostConfig, ReviewConfig, SandboxConfig, SecretRef, WatchConfig,
  TrackerConfig, TrackerKind,
} from './types.ts';

type Raw = Record<string, unknown>;
type Env = NodeJS.ProcessEnv;

const TRACKER_KINDS: readonly TrackerKind[] = ['local', 'linear', 'github', 'memory'];
const DEFAULT_TRACKER_KEY: Partial<Record<TrackerKind, string>> = { linear: 'LINEAR_API_KEY', github: 'GITHUB_TOKEN' };
const BRANCH = /^(?![-/])(?!.*\.\.)[A-Za-z0-9._/+-]+$/;
const BRANCH_ALLOWED = 'a git branch name (letters, digits, ".", "_", "-", "+", "/")';
const OWNER_NAME = /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/;
const CRON_FIELD = /^[A-Za-z0-9*,/?#LW-]+$/;

function isMap(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (isMap(v)) return 'a map';
  const s = JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

export function invalid(key: string, value: unknown, allowed: string, message?: string): never {
  throw new ContractError('invalid_config', message ?? `${key}: expected ${allowed}, got ${describe(value)}`, {
    key, value, allowed,
  });
}

/** `~` and `~/x` expand to the home folder; relative paths resolve against the WORKFLOW.md folder. */
function resolvePath(p: string, dir: string): string {
  const expanded = p === '~' ? homedir() : p.startsWith('~/') ? join(homedir(), p.slice(2)) : p;
  return isAbsolute(expanded) ? resolve(expanded) : resolve(dir, expanded);
}

function looksLikeUrl(s: string): boolean {
  return /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(s) || /^[^\s/@]+@[^\s/:]+:/.test(s);
}

/** Typed reads of one YAML map; `key` names are dotted from the root. A `null` value counts as absent (Symphony). */
class Section {
  /** `reads` collects every dotted key looked up (present or not), shared by the whole tree: what was never looked up is unknown. */
  constructor(readonly raw: Raw, readonly path: string, readonly env: Env, readonly reads: Set<string> = new Set()) {}

  key(name: string): string {
    return this.path ? `${this.path}.${name}` : name;
  }

  get(name: string): unknown {
    this.reads.add(this.key(name));
    const v = Object.hasOwn(this.raw, name) ? this.raw[name] : undefined;
    return v === null ? undefined : v;
  }

  section(name: string): Section {
    const v = this.get(name);
    if (v !== undefined && !isMap(v)) invalid(this.key(name), v, 'a map');
    return new Section(v ?? {}, this.key(name), this.env, this.reads);
  }

  /** A string, with a value that is exactly `$NAME` replaced by that environment variable. */
  string(name: string, fallback: string): string;
  string(name: string, fallback: null): string | null;
  string(name: string, fallback: string | null): string | null {
    const v = this.get(name);
    if (v === undefined) return fallback;
    return this.expand(this.key(name), v);
  }

  /** Optional string; blank counts as absent. */
  optional(name: string): string | null {
    const v = this.string(name, null);
    return v === null || v.trim() === '' ? null : v;
  }

  nonEmpty(name: string, fallback: string): string {
    const v = this.string(name, fallback);
    if (v.trim() === '') invalid(this.key(name), v, 'a non-empty string');
    return v;
  }

  required(name: string, allowed: string): string {
    const v = this.optional(name);
    if (v === null) invalid(this.key(name), this.get(name), `${allowed} (required)`);
    return v;
  }

  expand(key: string, v: unknown): string {
    if (typeof v !== 'string') invalid(key, v, 'a string');
    const ref = envRefName(v);
    if (ref === null) return v;
    const value = this.env[ref];
    if (value === undefined || value === '') {
      invalid(key, v, `a value, or $VAR naming a set, non-empty environment variable`,
        `${key}: environment variable ${ref} (from "${v}") is not set or is empty`);
    }
    return value;
  }

  int(name: string, fallback: number, min: number): number {
    const v = this.get(name);
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) invalid(this.key(name), v, `an integer >= ${min}`);
    return v;
  }

  bool(name: string, fallback: boolean): boolean {
    const v = this.get(name);
    if (v === undefined) return fallback;
    if (typeof v !== 'boolean') invalid(this.key(name), v, 'true or false');
    return v;
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T, allowedText?: string): T {
    const v = this.string(name, fallback);
    if (!(allowed as readonly string[]).includes(v)) {
      invalid(this.key(name), v, allowedText ?? `one of ${allowed.map((a) => `"${a}"`).join(', ')}`);
    }
    return v as T;
  }

  list(name: string, fallback: string[], nonEmptyList = false, items = 'non-empty strings'): string[] {
    const v = this.get(name);
    if (v === undefined) return [...fallback];
    const allowed = `a list of ${items}${nonEmptyList ? ' (at least one)' : ''}`;
    if (!Array.isArray(v) || (nonEmptyList && v.length === 0)) invalid(this.key(name), v, allowed);
    return v.map((item, i) => {
      const key = `${this.key(name)}[${i}]`;
      const s = this.expand(key, item);
      if (s.trim() === '') invalid(key, item, 'a non-empty string');
      return s;
    });
  }

  /** A `$VAR` reference; the variable is not read here. Literal secrets are refused and never echoed. */
  secret(name: string, fallback: SecretRef | null): SecretRef | null {
    const v = this.get(name);
    if (v === undefined) return fallback;
    const ref = envRefName(v);
    if (ref === null) {
      const allowed = '"$VAR", a reference to an environment variable (literal secrets are refused: the contract travels in workflow history)';
      throw new ContractError('invalid_config', `${this.key(name)}: expected ${allowed}, got a literal value (not shown)`, {
        key: this.key(name), allowed,
      });
    }
    return { env: ref };
  }
}

function tracker(s: Section, dir: string): TrackerConfig {
  const kind = s.oneOf('kind', TRACKER_KINDS, 'local');
  const defaultKey = DEFAULT_TRACKER_KEY[kind];
  // Symphony's generic layout keeps the adapter's settings under tracker.provider; they win over the
  // same keys directly under tracker.
  const provider = s.section('provider');
  const from = (name: string) => (provider.get(name) !== undefined ? provider : s);
  const apiKey = from('api_key').secret('api_key', defaultKey ? { env: defaultKey } : null);
  const projectSlug = from('project_slug').optional('project_slug');
  const repository = s.optional('repository');
  if (kind === 'linear' && projectSlug === null) {
    invalid(s.key('project_slug'), s.get('project_slug'), 'the Linear project slug (required when tracker.kind is "linear"; tracker.provider.project_slug in Symphony\'s layout)');
  }
  if (repository !== null && !OWNER_NAME.test(repository)) {
    invalid(s.key('repository'), repository, '"owner/name"');
  }
  if (kind === 'github' && repository === null) {
    invalid(s.key('repository'), s.get('repository'), '"owner/name" (required when tracker.kind is "github")');
  }
  if (apiKey && defaultKey) requireSecretSet(s, apiKey, `tracker.kind "${kind}" needs it`);
  return {
    kind,
    path: kind === 'local' ? resolvePath(s.nonEmpty('path', './issues'), dir) : null,
    endpoint: httpUrl(from('endpoint'), 'endpoint'),
    apiKey,
    projectSlug,
    repository,
    assignee: from('assignee').optional('assignee'),
    requiredLabels: s.list('required_labels', []).map((l) => l.toLowerCase()),
    activeStates: s.list('active_states', ['Todo', 'In Progress'], true),
    terminalStates: s.list('terminal_states', ['Closed', 'Cancelled', 'Canceled', 'Duplicate', 'Done']),
    inProgressState: s.nonEmpty('in_progress_state', 'In Progress'),
    reviewState: s.nonEmpty('review_state', 'Human Review'),
    doneState: s.nonEmpty('done_state', 'Done'),
  };
}

/** A secret the run will need must be set when the contract loads, not found missing mid-run. */
function requireSecretSet(s: Section, apiKey: SecretRef, why: string): void {
  const value = s.env[apiKey.env];
  if (value === undefined || value === '') {
    throw new ContractError('missing_secret',
      `${s.key('api_key')}: environment variable ${apiKey.env} is not set or is empty (${why})`,
      { key: s.key('api_key'), value: `$${apiKey.env}`, allowed: `a non-empty environment variable ${apiKey.env}` });
  }
}

function httpUrl(s: Section, name: string): string | null {
  const v = s.optional(name);
  if (v !== null && !/^https?:\/\/\S+$/.test(v)) invalid(s.key(name), v, 'an http(s) URL');
  if (v !== null) refuseCredentials(s.key(name), v);
  return v;
}

/**
 * A URL carrying a credential (a password, or a token as the user of an http(s) URL) is refused: the
 * contract travels in workflow history, and the URL reaches search attributes and tracker comments.
 * The value is never echoed; the error shows the URL without it.
 */
function refuseCredentials(key: string, value: string): void {
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/@\s]*)@/.exec(value);
  if (!match) return;
  const [, scheme, userinfo] = match as unknown as [string, string, string];
  const hasPassword = userinfo.includes(':');
  // A user name alone is no secret (ssh://git@host, https://x-access-token@host), unless it is a token.
  const tokenAsUser = /^https?$/i.test(scheme) && /^(gh[pousr]_|github_pat_|glpat-|xox[abp]-|sk-)|^[A-Za-z0-9_-]{32,}$/.test(userinfo);
  if (!hasPassword && !tokenAsUser) return;
  const shown = value.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/@\s]*@/, '$1');
  const allowed = 'a URL without credentials; give them to git on the worker (a credential helper, ~/.git-credentials or GIT_ASKPASS) or, for an API, as $VAR in api_key';
  throw new ContractError('invalid_config', `${key}: a credential in the URL is refused (it would reach workflow history, search attributes and comments); write it as ${shown} and ${allowed.slice(allowed.indexOf('give'))}`, { key, allowed });
}

function schedule(s: Section): string | null {
  const v = s.optional('schedule');
  if (v === null) return null;
  const fields = v.trim().split(/\s+/);
  if (fields.length !== 5 || !fields.every((f) => CRON_FIELD.test(f))) {
    invalid('schedule', v, 'a 5-field cron expression (minute hour day-of-month month day-of-week), e.g. "*/5 * * * *"');
  }
  return fields.join(' ');
}

function hooks(s: Section): HooksConfig {
  return {
    afterCreate: s.optional('after_create'),
    beforeRun: s.optional('before_run'),
    afterRun: s.optional('after_run'),
    beforeRemove: s.optional('before_remove'),
    timeoutMs: s.int('timeout_ms', 60_000, 1),
  };
}

const AGENT_RUNTIMES = ['cadenza', 'codex', 'claude-code'] as const;

function agent(s: Section, codex: Section): AgentConfig {
  // Symphony keeps the two timeouts under `codex`; honour them when `agent` does not set its own.
  const timeout = (name: string, fallback: number, min: number): number =>
    s.get(name) === undefined ? codex.int(name, fallback, min) : s.int(name, fallback, min);
  // Symphony's codex.command selects the Codex runtime unless agent.runtime says otherwise.
  const codexCommand = codex.optional('command');
  const runtime = s.oneOf('runtime', AGENT_RUNTIMES, codexCommand ? 'codex' : 'cadenza',
    `one of ${AGENT_RUNTIMES.map((name) => `"${name}"`).join(', ')}`);
  if (runtime === 'codex' && codexCommand !== null && !/(^|\s)app-server(\s|$)/.test(codexCommand)) {
    invalid(codex.key('command'), codexCommand, 'a command that starts `codex app-server` (Cadenza speaks its JSON-RPC protocol and adds the model provider settings)');
  }
  return {
    ...(runtime === 'codex' ? { runtime, codex: { command: codexCommand ?? 'codex app-server', readTimeoutMs: codex.int('read_timeout_ms', 30_000, 1) } } : {}),
    ...(runtime === 'claude-code' ? { runtime } : {}),
    maxConcurrentAgents: s.int('max_concurrent_agents', 10, 1),
    maxTurns: s.int('max_turns', 20, 1),
    maxRounds: s.int('max_rounds', DEFAULT_MAX_ROUNDS, 1),
    maxRetryBackoffMs: s.int('max_retry_backoff_ms', 300_000, 1),
    maxConcurrentAgentsByState: byState(s.section('max_concurrent_agents_by_state')),
    turnTimeoutMs: timeout('turn_timeout_ms', 3_600_000, 1),
    stallTimeoutMs: timeout('stall_timeout_ms', 300_000, 0),
  };
}

function byState(s: Section): Record<string, number> {
  const entries: [string, number][] = [];
  for (const name of Object.keys(s.raw)) {
    const state = name.trim().toLowerCase();
    const key = /^[A-Za-z0-9_]+$/.test(name) ? s.key(name) : `${s.path}[${JSON.stringify(name)}]`;
    if (state === '') invalid(key, name, 'a non-blank state name');
    if (entries.some(([seen]) => seen === state)) {
      invalid(key, name, 'each state once (state names are case-insensitive)');
    }
    const v = s.raw[name];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) invalid(key, v, 'an integer >= 1');
    entries.push([state, v]);
  }
  return Object.fromEntries(entries);
}

/** `git clone [options] URL [dir]` in a hook: the repository a Symphony workflow works in. */
export function clonedRepository(hook: unknown): string | null {
  if (typeof hook !== 'string') return null;
  const words = /(?:^|[;&|\n]\s*)git\s+clone\s+([^\n;&|]+)/.exec(hook)?.[1]?.trim().split(/\s+/) ?? [];
  const withValue = new Set(['--depth', '-b', '--branch', '-o', '--origin', '--reference', '--filter', '-c', '--config', '-j', '--jobs']);
  for (let i = 0; i < words.length; i++) {
    if (withValue.has(words[i]!)) i++;
    else if (!words[i]!.startsWith('-')) return words[i]!.replace(/^["']|["']$/g, '');
  }
  return null;
}

function repo(s: Section, dir: string, afterCreate: unknown): CadenzaConfig['repo'] {
  if (s.optional('url') === null) {
    // Symphony has no repo: its after_create hook clones one. Cadenza clones, proves and lands itself.
    const cloned = clonedRepository(afterCreate);
    const allowed = 'a git URL or a path to a git repository (required)';
    const add = `repo: { url: ${cloned ?? '<git URL or path>'}, base_branch: main }`;
    throw new ContractError('invalid_config', cloned
      ? `repo.url is missing: Cadenza needs the repository it works in and lands to. hooks.after_create clones ${cloned} (Symphony's way); Cadenza clones it itself. Add\n  ${add}\nand take the git clone out of hooks.after_create (the workspace already holds the checkout)`
      : `repo.url is missing: Cadenza needs the repository it works in and lands to. Add\n  ${add}`, { key: 'repo.url', allowed });
  }
  const url = s.required('url', 'a git URL or a path to a git repository');
  refuseCredentials(s.key('url'), url);
  return {
    url: looksLikeUrl(url) ? url : resolvePath(url, dir),
    baseBranch: branch(s, 'base_branch', 'main'),
  };
}

function project(s: Section, trackerConfig: TrackerConfig, repoUrl: string): { id: string } {
  const id = s.optional('id');
  if (id === null) return { id: derivedProjectId(trackerConfig, repoUrl) };
  if (!PROJECT_ID.test(id)) invalid(s.key('id'), id, PROJECT_ID_ALLOWED);
  return { id };
}

/** Symphony's `worker.max_concurrent_agents_per_host` means the same as `max_sandboxes`. */
function workerSection(s: Section): { maxSandboxes: number | null } {
  const name = s.get('max_sandboxes') === undefined && s.get('max_concurrent_agents_per_host') !== undefined ? 'max_concurrent_agents_per_host' : 'max_sandboxes';
  return { maxSandboxes: s.get(name) === undefined ? null : s.int(name, 1, 1) };
}

function branch(s: Section, name: string, fallback: string): string {
  const v = s.string(name, fallback);
  if (!BRANCH.test(v)) invalid(s.key(name), v, BRANCH_ALLOWED);
  return v;
}

function sandbox(s: Section): SandboxConfig {
  const image = s.nonEmpty('image', 'cadenza-sandbox:latest');
  if (/\s/.test(image)) invalid(s.key('image'), image, 'a Docker image reference');
  const cpus = s.get('cpus') ?? 1;
  if (typeof cpus !== 'number' || !Number.isFinite(cpus) || cpus <= 0) invalid(s.key('cpus'), cpus, 'a number > 0');
  const user = s.nonEmpty('user', 'agent');
  const account = user.split(':')[0]?.trim();
  if (account === 'root' || account === '0') {
    invalid(s.key('user'), user, 'a non-root user name or uid (the sandbox never runs as root)');
  }
  return {
    image,
    cpus,
    memoryMb: s.int('memory_mb', 1024, 64),
    pidsLimit: s.int('pids_limit', 256, 16),
    network: s.oneOf('network', ['none'] as const, 'none', '"none" (the only supported value: sandboxes never get a network)'),
    user,
    egress: egress(s.section('egress')),
  };
}

/** `sandbox.egress`: per phase, `none` or a list of package ecosystems and host patterns. */
function egress(s: Section): EgressConfig {
  const phase = (name: EgressPhase): string[] | 'none' | null => {
    const value = s.get(name);
    if (value === undefined) return name === 'setup' ? null : 'none';
    if (value === 'none') return 'none';
    const allowed = `"none" or a list of package ecosystems (${ECOSYSTEMS.join(', ')}) and host patterns (host, *.domain, optionally :port)`;
    if (!Array.isArray(value)) invalid(s.key(name), value, allowed);
    return (value as unknown[]).map((entry, i) => {
      if (typeof entry !== 'string' || !(isEcosystem(entry) || HOST_PATTERN.test(entry))) invalid(`${s.key(name)}[${i}]`, entry, allowed);
      return entry as string;
    });
  };
  for (const key of Object.keys(s.raw)) {
    if (!(EGRESS_PHASES as readonly string[]).includes(key)) invalid(s.key(key), s.raw[key], `one of the phases ${EGRESS_PHASES.join(', ')}`, `${s.key(key)}: unknown phase; the phases are ${EGRESS_PHASES.join(', ')}`);
  }
  return { setup: phase('setup'), agent: phase('agent') as string[] | 'none', checks: phase('checks') as string[] | 'none' };
}

function model(s: Section, defaultName: string): ModelConfig {
  return {
    name: s.nonEmpty('name', defaultName),
    baseUrl: httpUrl(s, 'base_url'),
    apiKey: s.secret('api_key', { env: 'OPENAI_API_KEY' }),
    maxOutputTokens: s.int('max_output_tokens', 4096, 1),
    budgetTokens: s.int('budget_tokens', 2_000_000, 1),
  };
}

/**
 * `review:` (optional): a read-only reviewer after the required checks pass. Its bounds are its own:
 * model requests per review and a token budget apart from model.budget_tokens.
 */
function review(s: Section, modelConfig: ModelConfig): ReviewConfig {
  return {
    model: s.nonEmpty('model', modelConfig.name),
    prompt: s.optional('prompt'),
    required: s.bool('required', false),
    maxTurns: s.int('max_turns', 10, 1),
    budgetTokens: s.int('budget_tokens', 200_000, 1),
    maxOutputTokens: s.int('max_output_tokens', modelConfig.maxOutputTokens, 1),
  };
}

/** A list of check commands (`proof.commands`, `watch.commands`); `required` is read only where it means something. */
function commandList(s: Section, what: string, readRequired: boolean): ProofCommand[] {
  const raw = s.get('commands') ?? [];
  if (!Array.isArray(raw)) invalid(s.key('commands'), raw, `a list of { name, run, timeout_ms${readRequired ? ', required' : ''} }`);
  const commands = raw.map((item: unknown, i): ProofCommand => {
    const key = `${s.key('commands')}[${i}]`;
    if (!isMap(item)) invalid(key, item, 'a map with name and run');
    const c = new Section(item, key, s.env, s.reads);
    return {
      name: c.required('name', 'a name for the check'),
      run: c.required('run', 'the shell command to run'),
      timeoutMs: c.int('timeout_ms', 600_000, 1),
      required: readRequired ? c.bool('required', true) : true,
    };
  });
  commands.forEach((c, i) => {
    if (commands.findIndex((o) => o.name === c.name) !== i) {
      invalid(`${s.key('commands')}[${i}].name`, c.name, `a name not used by another ${what} command`);
    }
  });
  return commands;
}

/**
 * `watch:` (optional): checks on the landed commit after a merge landing, once or every `every_ms` for
 * `window_ms`; a regression is reverted by `revert` (commit or pull_request) and the issue reopened.
 */
function watch(s: Section, landingSection: Section, trackerConfig: TrackerConfig): WatchConfig {
  const strategy = landingSection.get('strategy') ?? 'merge';
  if (strategy !== 'merge') {
    invalid(s.path, s.raw, 'a watch only with landing.strategy merge',
      'watch: runs on the commit a merge landing pushed to the target; with landing.strategy pull_request people merge the pull request, so there is no landed commit for Cadenza to watch. Remove watch: or land with strategy merge');
  }
  const commands = commandList(s, 'watch', false);
  if (!commands.length) invalid(s.key('commands'), s.get('commands'), 'at least one { name, run } to run on the landed commit', 'watch.commands: a watch needs at least one command to run on the landed commit, e.g. "watch: { commands: [{ name: integration, run: npm run test:integration }] }"');
  const everyMs = s.get('every_ms') === undefined ? null : s.int('every_ms', 0, 1000);
  const windowMs = s.get('window_ms') === undefined ? 0 : s.int('window_ms', 0, 1000);
  if (everyMs === null && windowMs) invalid(s.key('every_ms'), undefined, 'how often to run the checks within watch.window_ms (milliseconds, at least 1000)', `watch.window_ms is set but watch.every_ms is not: say how often to run the checks within the window, e.g. every_ms: 3600000; or remove window_ms to run them once`);
  if (everyMs !== null && windowMs < everyMs) invalid(s.key('window_ms'), s.get('window_ms'), `how long to keep watching after landing, at least watch.every_ms (${everyMs})`);
  const reopenState = s.nonEmpty('reopen_state', trackerConfig.activeStates[0] ?? 'Todo');
  if (!trackerConfig.activeStates.some((state) => state.toLowerCase() === reopenState.toLowerCase())) {
    invalid(s.key('reopen_state'), reopenState, `one of tracker.active_states (${trackerConfig.activeStates.join(', ')}), so the reopened issue is worked on again`);
  }
  return { commands, everyMs, windowMs, revert: s.oneOf('revert', ['commit', 'pull_request'] as const, 'commit'), reopenState };
}

function proof(s: Section): CadenzaConfig['proof'] {
  const commands = commandList(s, 'proof', true);
  const allowNoChecks = s.bool('allow_no_checks', false);
  return {
    commands,
    ...(allowNoChecks ? { allowNoChecks } : {}),
    maxRounds: s.int('max_rounds', 3, 1),
    protectedPaths: protectedPaths(s),
    onProtectedChange: s.oneOf('on_protected_change', ['flag', 'reject'] as const, 'flag'),
    baseTests: s.bool('base_tests', true),
  };
}

/** Checked last, so a contract's other mistakes are reported first. */
function requireProof(proofConfig: CadenzaConfig['proof']): void {
  if (proofConfig.commands.some((command) => command.required) || proofConfig.allowNoChecks) return;
  invalid('proof.commands', undefined, 'at least one command with required: true (the proof a person approves); to land work no command has checked, say so with proof.allow_no_checks: true',
    `proof.commands: ${proofConfig.commands.length ? 'no command is required' : 'no proof command is given'}, so nothing would be proven before a person approves. Add one, e.g. "proof: { commands: [{ name: tests, run: npm test }] }", or set proof.allow_no_checks: true to land unchecked work deliberately`);
}

/** The entry `defaults` stands for DEFAULT_PROTECTED_PATHS, so a list can extend them. */
function protectedPaths(s: Section): string[] {
  const patterns = s.list('protected_paths', ['defaults'], false, 'glob patterns, or "defaults" for the built-in ones');
  return [...new Set(patterns.flatMap((p) => p === 'defaults' ? DEFAULT_PROTECTED_PATHS : [p]))];
}

const GITHUB_REMOTE = /^(?:https?:\/\/(?:[^@/\s]+@)?github\.com\/|git@github\.com:|ssh:\/\/git@github\.com\/)([A-Za-z0-9_.-]+)\/([A-Za-z0-9_.-]+?)(?:\.git)?\/?$/;

/**
 * Where pull requests go: `landing.github.repository`, else the GitHub tracker's repository, else the
 * github.com repository `repo.url` points at. Endpoint and token follow the same order (the token's
 * default is $GITHUB_TOKEN), and the token must be set, so a run never fails for it at landing.
 */
function pullRequestHost(s: Section, trackerConfig: TrackerConfig, repoUrl: string): PullRequestHostConfig {
  const fromTracker = trackerConfig.kind === 'github' ? trackerConfig : null;
  const fromRemote = GITHUB_REMOTE.exec(repoUrl);
  const repository = s.optional('repository') ?? fromTracker?.repository ?? (fromRemote ? `${fromRemote[1]}/${fromRemote[2]}` : null);
  if (repository === null) {
    invalid(s.key('repository'), s.get('repository'),
      '"owner/name" of the GitHub repository to open pull requests in (needed with landing.strategy "pull_request" unless tracker.kind is "github" or repo.url is a github.com URL)');
  }
  if (!OWNER_NAME.test(repository)) invalid(s.key('repository'), repository, '"owner/name"');
  const endpoint = httpUrl(s, 'endpoint') ?? fromTracker?.endpoint ?? null;
  const apiKey = s.secret('api_key', fromTracker?.apiKey ?? { env: 'GITHUB_TOKEN' })!;
  requireSecretSet(s, apiKey, `landing.strategy "pull_request" opens pull requests in ${repository} with it`);
  return { repository, endpoint, apiKey };
}

function landing(s: Section, baseBranch: string, trackerConfig: TrackerConfig, repoUrl: string, revertsByPullRequest: boolean): LandingConfig {
  const strategy = s.oneOf('strategy', ['merge', 'pull_request'] as const, 'merge');
  return {
    strategy,
    ...(strategy === 'pull_request' || revertsByPullRequest ? { github: pullRequestHost(s.section('github'), trackerConfig, repoUrl) } : {}),
    targetBranch: branch(s, 'target_branch', baseBranch),
    requireApproval: s.bool('require_approval', true),
    approvalTimeoutMs: s.int('approval_timeout_ms', 604_800_000, 1),
  };
}

/** Validates the front matter once. Known keys with bad values throw invalid_config. */
export function buildConfig(raw: Raw, dir: string, env: Env = process.env): CadenzaConfig {
  return buildConfigWithWarnings(raw, dir, env).config;
}

/**
 * Also reports the keys Cadenza never looked at: kept (a Symphony WORKFLOW.md carries keys of its own),
 * but named, with the nearest key Cadenza reads there ("did you mean agent.max_turns?").
 */
export function buildConfigWithWarnings(raw: Raw, dir: string, env: Env = process.env): { config: CadenzaConfig; warnings: string[] } {
  const reads = new Set<string>();
  const config = buildSections(new Section(raw, '', env, reads), dir);
  const symphony = symphonyNotes(raw, config);
  for (const key of symphony.handled) reads.add(key);
  const warnings = [...unknownKeys(raw, '', reads).map((key) => unknownKeyWarning(key, reads)), ...symphony.warnings];
  const cloned = clonedRepository(config.hooks.afterCreate);
  if (cloned) {
    warnings.push(`hooks.after_create runs git clone ${cloned}, but the workspace already holds the checkout of repo.url (Cadenza clones it itself); take the clone out of the hook`);
  }
  return { config, warnings };
}

/** Keys present in `value` under `path` that nothing read, descending only into maps whose children were read. */
function unknownKeys(value: Raw, path: string, reads: Set<string>): string[] {
  const found: string[] = [];
  const childrenRead = (prefix: string) => [...reads].some((read) => read.startsWith(`${prefix}.`));
  for (const [name, child] of Object.entries(value)) {
    const key = path ? `${path}.${name}` : name;
    if (!reads.has(key)) {
      found.push(key);
    } else if (isMap(child) && childrenRead(key)) {
      found.push(...unknownKeys(child, key, reads));
    } else if (Array.isArray(child)) {
      child.forEach((item, i) => {
        if (isMap(item) && childrenRead(`${key}[${i}]`)) found.push(...unknownKeys(item, `${key}[${i}]`, reads));
      });
    }
  }
  return found;
}

function unknownKeyWarning(key: string, reads: Set<string>): string {
  const cut = key.lastIndexOf('.');
  const parent = cut < 0 ? '' : key.slice(0, cut);
  const name = key.slice(cut + 1);
  const siblings = [...reads].filter((read) => (read.lastIndexOf('.') < 0 ? '' : read.slice(0, read.lastIndexOf('.'))) === parent).map((read) => read.slice(read.lastIndexOf('.') + 1));
  const nearest = siblings
    .map((sibling) => ({ sibling, distance: editDistance(name.toLowerCase(), sibling.toLowerCase()) }))
    .filter(({ distance, sibling }) => distance <= Math.max(2, Math.floor(sibling.length / 4)))
    .sort((a, b) => a.distance - b.distance)[0];
  return `${key} is not a key Cadenza reads here; it is kept and ignored${nearest ? `. Did you mean ${parent ? `${parent}.` : ''}${nearest.sibling}?` : ''}`;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = current;
  }
  return previous[b.length]!;
}

function buildSections(root: Section, dir: string): CadenzaConfig {
  const trackerConfig = tracker(root.section('tracker'), dir);
  const polling = { intervalMs: root.section('polling').int('interval_ms', 30_000, 1000) };
  const scheduleConfig = schedule(root);
  const workspace = root.section('workspace');
  const workspaceRoot = resolvePath(workspace.nonEmpty('root', join(tmpdir(), 'cadenza_workspaces')), dir);
  const hooksConfig = hooks(root.section('hooks'));
  const agentConfig = agent(root.section('agent'), root.section('codex'));
  const repoConfig = repo(root.section('repo'), dir, root.section('hooks').get('after_create'));
  const config: CadenzaConfig = {
    project: project(root.section('project'), trackerConfig, repoConfig.url),
    worker: workerSection(root.section('worker')),
    tracker: trackerConfig,
    polling,
    schedule: scheduleConfig,
    workspace: { root: workspaceRoot },
    hooks: hooksConfig,
    agent: agentConfig,
    repo: repoConfig,
    sandbox: sandbox(root.section('sandbox')),
    // Without model.name, the model Symphony's codex.command names (--config model=...).
    model: model(root.section('model'), codexCommandModel({ agent: agentConfig }) ?? 'gpt-4.1'),
    proof: proof(root.section('proof')),
    landing: landing(root.section('landing'), repoConfig.baseBranch, trackerConfig, repoConfig.url, root.section('watch').get('revert') === 'pull_request'),
  };
  // `review: {}` asks for a reviewer with the defaults; no `review:` section (or `review:` with nothing, YAML's null) for none.
  if (root.get('review') !== undefined) config.review = review(root.section('review'), config.model);
  if (root.get('watch') !== undefined) config.watch = watch(root.section('watch'), root.section('landing'), trackerConfig);
  requireProof(config.proof);
  return config;
}
