import type { EgressConfig } from '../egress/policy.ts';
/**
 * The validated contract. Plain data only (strings, numbers, booleans, null, arrays, objects):
 * it travels as workflow input, so it must survive JSON unchanged and never hold a secret value.
 */

/** A `$VAR` reference; the value is read from the environment only at use time (resolveSecret). */
export interface SecretRef {
  env: string;
}

export type TrackerKind = 'local' | 'linear' | 'github' | 'memory';

export interface TrackerConfig {
  kind: TrackerKind;
  /** Folder of issue files, absolute (local tracker only; null otherwise). */
  path: string | null;
  endpoint: string | null;
  apiKey: SecretRef | null;
  projectSlug: string | null;
  /** `owner/name` (github). */
  repository: string | null;
  assignee: string | null;
  /** Lower-cased. */
  requiredLabels: string[];
  activeStates: string[];
  terminalStates: string[];
  inProgressState: string;
  reviewState: string;
  doneState: string;
}

export interface HooksConfig {
  afterCreate: string | null;
  beforeRun: string | null;
  afterRun: string | null;
  beforeRemove: string | null;
  timeoutMs: number;
}

export interface AgentConfig {
  /** Who runs the session: Cadenza's own tool loop (absent), or an agent CLI inside the sandbox. */
  runtime?: 'cadenza' | 'codex' | 'claude-code';
  /** With runtime codex: the command that starts `codex app-server` in the sandbox (Symphony's codex.command). */
  codex?: { command: string; readTimeoutMs?: number };
  maxConcurrentAgents: number;
  maxTurns: number;
  /** Rounds a run may take in all, whatever starts them (failed proofs, rejections, conflicts); absent in contracts from before: 10. */
  maxRounds?: number;
  maxRetryBackoffMs: number;
  /** Keys lower-cased. */
  maxConcurrentAgentsByState: Record<string, number>;
  turnTimeoutMs: number;
  /** 0 disables stall detection (Symphony). */
  stallTimeoutMs: number;
}

export interface SandboxConfig {
  image: string;
  cpus: number;
  memoryMb: number;
  pidsLimit: number;
  network: 'none';
  user: string;
  /** What may leave the sandbox, per phase (absent in contracts recorded before egress existed: none everywhere). */
  egress?: EgressConfig;
}

export interface ModelConfig {
  name: string;
  baseUrl: string | null;
  /** Never checked at load: an unset key means the scripted model runs. */
  apiKey: SecretRef | null;
  maxOutputTokens: number;
  /** Per issue. */
  budgetTokens: number;
}

export interface ProofCommand {
  name: string;
  run: string;
  timeoutMs: number;
  required: boolean;
}

/** The three integrity keys are absent from contracts recorded before them: consumers apply the defaults. */
export interface ProofConfig {
  commands: ProofCommand[];
  maxRounds: number;
  /** Said explicitly in WORKFLOW.md: no command is required, so work lands unchecked. */
  allowNoChecks?: boolean;
  /** Globs of files whose change could weaken the proof (tests, manifests, CI); `defaults` already expanded. */
  protectedPaths?: string[];
  /** What a change to a protected path does to the run; default `flag`. */
  onProtectedChange?: 'flag' | 'reject';
  /** Whether the base revision's tests also run against the new code; default true. */
  baseTests?: boolean;
}

/** Where `landing.strategy: pull_request` opens pull requests; the token stays a reference. */
export interface PullRequestHostConfig {
  /** `owner/name` on GitHub. */
  repository: string;
  /** The GitHub REST API; null = https://api.github.com. */
  endpoint: string | null;
  apiKey: SecretRef;
}

export interface LandingConfig {
  strategy: 'merge' | 'pull_request';
  /** Set with `pull_request` only (contracts from before it have none: the GitHub tracker's repository is used). */
  github?: PullRequestHostConfig | null;
  targetBranch: string;
  requireApproval: boolean;
  approvalTimeoutMs: number;
}

/**
 * `review:`: a separate, read-only reviewer session after the required checks pass. Absent when the
 * contract has no `review:` section (and in contracts from before it existed): no reviewer.
 */
export interface ReviewConfig {
  /** The reviewer's model (default: model.name), through the worker's model client. */
  model: string;
  /** Extra instructions for the reviewer (plain text), after Cadenza's own. */
  prompt: string | null;
  /** true: "request_changes" sends the round back to the coding agent with the comments; false: the verdict is shown only. */
  required: boolean;
  /** Model requests per review session. */
  maxTurns: number;
  /** Tokens all of a run's review sessions may use together (apart from model.budget_tokens). */
  budgetTokens: number;
  maxOutputTokens: number;
}

/**
 * `watch:`: checks run on the target branch after a `merge` landing, on the landed commit, in fresh
 * checker containers: once, or every `everyMs` for `windowMs`. A check that fails on the landed commit
 * but passed on its first parent is a regression: Cadenza prepares a revert (approved like a landing),
 * reopens the issue with the evidence and says so on the workpad. Absent: no watch.
 */
export interface WatchConfig {
  /** Every one must pass; `required` is always true. */
  commands: ProofCommand[];
  /** Run the checks again this often (null: once, right after landing). */
  everyMs: number | null;
  /** For this long after landing (0 with everyMs null). */
  windowMs: number;
  /** How a regression is reverted: a commit on the target, or a pull request (landing.github). */
  revert: 'commit' | 'pull_request';
  /** The tracker state a regressed issue is moved back to (default: the first active state). */
  reopenState: string;
}

export interface CadenzaConfig {
  /**
   * Which project this is (WORKFLOW.md's `project.id`, else derived from tracker and repository): part
   * of workflow, schedule and Docker names. Absent in contracts of runs started before it existed;
   * those keep their names.
   */
  project?: { id: string };
  /** Where runs go: `max_sandboxes` per worker host (null = no limit). Absent in contracts from before. */
  worker?: { maxSandboxes: number | null };
  tracker: TrackerConfig;
  polling: { intervalMs: number };
  /** 5-field cron expression for the tracker poll; null = poll every polling.intervalMs. */
  schedule: string | null;
  workspace: { root: string };
  hooks: HooksConfig;
  agent: AgentConfig;
  /** url is a remote URL, or an absolute path when WORKFLOW.md gave a path. */
  repo: { url: string; baseBranch: string };
  sandbox: SandboxConfig;
  model: ModelConfig;
  proof: ProofConfig;
  landing: LandingConfig;
  /** The reviewer (WORKFLOW.md's `review:`); absent: none. */
  review?: ReviewConfig;
  /** The post-merge watch (WORKFLOW.md's `watch:`); absent: none. */
  watch?: WatchConfig;
}

export interface Contract {
  /** Absolute path of WORKFLOW.md. */
  path: string;
  /** Its folder; relative paths in the config were resolved against it. */
  dir: string;
  /** Liquid template; the built-in default when the file's body is empty. */
  promptTemplate: string;
  config: CadenzaConfig;
  /** Keys in the front matter Cadenza does not read (kept, for Symphony compatibility), with the nearest known key. */
  warnings?: string[];
}

/**
 * What every step but the agent session gets of a contract: its configuration, without the prompt
 * template and file paths, so workflow history does not repeat them in each activity's input.
 */
export type ContractSettings = Pick<Contract, 'config'>;
