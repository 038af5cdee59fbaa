/**
 * Symphony's keys that Cadenza reads differently: what a Symphony WORKFLOW.md says in its
 * codex.command and codex.* policies, and the warnings that say where Cadenza does something else.
 */
import type { CadenzaConfig } from './types.ts';

/** The words of a shell command line, quotes and backslashes resolved (no expansion). */
export function shellWords(command: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < command.length; i++) {
    const c = command[i]!;
    if (quote === "'") {
      if (c === "'") quote = null;
      else word += c;
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === '\\' && '"\\$`'.includes(command[i + 1] ?? '')) word += command[++i];
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < command.length) {
      word += command[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/**
 * The value a codex command line gives `key` with `-c` / `--config key=value` (the last one wins, as
 * in codex). Codex reads the value as TOML, and as a plain string when it is not TOML.
 */
export function codexConfigValue(command: string, key: string): string | null {
  const words = shellWords(command);
  let value: string | null = null;
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    const setting = word === '-c' || word === '--config' ? words[++i] : word.startsWith('--config=') ? word.slice('--config='.length) : null;
    const cut = setting?.indexOf('=') ?? -1;
    if (!setting || cut < 0 || setting.slice(0, cut).trim() !== key) continue;
    const raw = setting.slice(cut + 1).trim();
    value = /^"(.*)"$|^'(.*)'$/.exec(raw)?.slice(1).find((part) => part !== undefined) ?? raw;
  }
  return value;
}

/** The model Symphony's codex.command asks for, when the contract has no model.name. */
export function codexCommandModel(config: Pick<CadenzaConfig, 'agent'>): string | null {
  return config.agent.runtime === 'codex' && config.agent.codex ? codexConfigValue(config.agent.codex.command, 'model') : null;
}

const shown = (value: unknown) => (typeof value === 'string' ? value : JSON.stringify(value)).replace(/"(\w+)":/g, '$1: ').replace(/,/g, ', ');

/**
 * Warnings for Symphony keys Cadenza reads but does not apply as Symphony does, and the dotted keys
 * they cover (so they are not also reported as unknown).
 */
export function symphonyNotes(raw: Record<string, unknown>, config: CadenzaConfig): { warnings: string[]; handled: string[] } {
  const warnings: string[] = [];
  const handled: string[] = [];
  const section = (name: string) => (typeof raw[name] === 'object' && raw[name] !== null && !Array.isArray(raw[name]) ? raw[name] as Record<string, unknown> : {});
  const workspaceRoot = section('workspace').root;
  if (typeof workspaceRoot === 'string' && workspaceRoot.trim()) {
    warnings.push(`workspace.root (${workspaceRoot}) is not used: each issue's workspace is a Docker volume of its own, with the repository at /workspace/repo in the issue's sandbox; nothing is created under that folder`);
  }
  if (config.agent.runtime !== 'codex') return { warnings, handled };

  const codex = section('codex');
  const approval = codex.approval_policy;
  if (approval !== undefined && approval !== null) {
    handled.push('codex.approval_policy');
    if (approval !== 'never') {
      warnings.push(`codex.approval_policy (${shown(approval)}) is not applied: Cadenza runs codex unattended with approval_policy never and grants what it asks; the Docker sandbox is the boundary, and a person approves the landing instead`);
    }
  }
  const set = (['thread_sandbox', 'turn_sandbox_policy'] as const).filter((key) => codex[key] !== undefined && codex[key] !== null);
  handled.push(...set.map((key) => `codex.${key}`));
  // Codex's own full access is what Cadenza runs it with anyway.
  const policies = set.filter((key) => codex[key] !== 'danger-full-access' && (codex[key] as { type?: unknown }).type !== 'dangerFullAccess');
  if (policies.length) {
    const network = (codex.turn_sandbox_policy as { networkAccess?: unknown } | undefined)?.networkAccess === true;
    warnings.push(`${policies.map((key) => `codex.${key} (${shown(codex[key])})`).join(' and ')} ${policies.length > 1 ? 'are' : 'is'} not applied: codex runs with its own sandbox off (danger-full-access) inside Cadenza's Docker sandbox, which is the boundary (sandbox.*: no network, non-root, the workspace volume its only mount)`
      + `${network ? '; networkAccess is not granted: the agent\'s commands reach only what sandbox.egress.agent allows (none by default)' : ''}`);
  }
  const command = config.agent.codex?.command ?? '';
  const commandModel = codexConfigValue(command, 'model');
  if (commandModel !== null && commandModel !== config.model.name) {
    warnings.push(`codex.command sets model "${commandModel}" and model.name is "${config.model.name}": codex runs with model.name`);
  }
  const provider = codexConfigValue(command, 'model_provider');
  if (provider !== null) {
    warnings.push(`codex.command sets model_provider "${provider}": Cadenza replaces it with its model gateway (the worker's endpoint and key; the key never enters the sandbox)`);
  }
  return { warnings, handled };
}
