/**
 * The scripts the scripted model replays: one file per issue, `<scriptsDir>/<identifier>.json`
 * (or `.yaml` / `.yml`), shaped `{ turns: [ { say?, tool_calls?: [{ name, arguments }], delay_ms? } ] }`.
 * Other sessions of the same issue have their own turns beside the coding agent's, under their name:
 * `{ turns: [...], reviewer: { turns: [...] } }` for Cadenza's reviewer (a request saying
 * `Cadenza session: reviewer`). Each session counts its turns in its own conversation.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';

export interface ScriptToolCall {
  name: string;
  /** Sent JSON-encoded. A string is sent verbatim, so a script can feed the agent malformed arguments. */
  arguments: Record<string, unknown> | string;
}

export interface ScriptTurn {
  /** Assistant text content. */
  say?: string;
  tool_calls?: ScriptToolCall[];
  /** Sleep this long before answering (stall tests). */
  delay_ms?: number;
}

/** Sessions other than the coding agent's, each with turns of its own in the script. */
export const SESSIONS = ['reviewer'] as const;
export type SessionName = (typeof SESSIONS)[number];

export interface Script {
  turns: ScriptTurn[];
  /** The reviewer's turns (absent: the script has none). */
  reviewer?: { turns: ScriptTurn[] };
}

/** A script file exists but does not have the documented shape. */
export class ScriptError extends Error {
  constructor(file: string, problem: string) {
    super(`invalid script ${file}: ${problem}`);
    this.name = 'ScriptError';
  }
}

const extensions = ['.json', '.yaml', '.yml'] as const;

/** Identifiers become file names, so anything that could leave scriptsDir never matches a script. */
const safeIdentifier = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

/**
 * Loads the script for an issue. Returns null when the identifier has no script file;
 * throws ScriptError when the file exists but is malformed.
 */
export async function loadScript(scriptsDir: string, identifier: string): Promise<{ file: string; script: Script } | null> {
  if (!safeIdentifier.test(identifier)) return null;
  for (const ext of extensions) {
    const file = path.join(scriptsDir, `${identifier}${ext}`);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw error;
    }
    let value: unknown;
    try {
      value = ext === '.json' ? JSON.parse(text) : parseYaml(text);
    } catch (error) {
      throw new ScriptError(file, error instanceof Error ? error.message : String(error));
    }
    return { file, script: parseScript(value, file) };
  }
  return null;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Checks a decoded script against the documented shape; `source` names it in errors. */
export function parseScript(value: unknown, source: string): Script {
  const fail = (problem: string): never => {
    throw new ScriptError(source, problem);
  };
  if (!isObject(value) || !Array.isArray(value.turns)) return fail('expected an object with a "turns" array');
  const script: Script = { turns: parseTurns(value.turns, 'turns', fail) };
  for (const session of SESSIONS) {
    const section = value[session];
    if (section === undefined) continue;
    if (!isObject(section) || !Array.isArray(section.turns)) return fail(`"${session}" must be an object with a "turns" array`);
    script[session] = { turns: parseTurns(section.turns, `${session}.turns`, fail) };
  }
  return script;
}

function parseTurns(list: unknown[], path: string, fail: (problem: string) => never): ScriptTurn[] {
  return list.map((turn: unknown, t): ScriptTurn => {
    const at = `${path}[${t}]`;
    if (!isObject(turn)) return fail(`${at} must be an object`);
    const unknownKeys = Object.keys(turn).filter((key) => !['say', 'tool_calls', 'delay_ms'].includes(key));
    if (unknownKeys.length > 0) fail(`${at} has unknown field(s) ${unknownKeys.join(', ')}`);
    const result: ScriptTurn = {};
    if (turn.say !== undefined) {
      if (typeof turn.say !== 'string') fail(`${at}.say must be a string`);
      result.say = turn.say as string;
    }
    if (turn.delay_ms !== undefined) {
      const delay = turn.delay_ms;
      if (typeof delay !== 'number' || !Number.isFinite(delay) || delay < 0) fail(`${at}.delay_ms must be a non-negative number`);
      result.delay_ms = delay as number;
    }
    if (turn.tool_calls !== undefined) {
      if (!Array.isArray(turn.tool_calls)) return fail(`${at}.tool_calls must be an array`);
      result.tool_calls = turn.tool_calls.map((call: unknown, i): ScriptToolCall => {
        const callAt = `${at}.tool_calls[${i}]`;
        if (!isObject(call)) return fail(`${callAt} must be an object`);
        if (typeof call.name !== 'string' || call.name === '') return fail(`${callAt}.name must be a non-empty string`);
        const args = call.arguments ?? {};
        if (!isObject(args) && typeof args !== 'string') return fail(`${callAt}.arguments must be an object`);
        return { name: call.name, arguments: args };
      });
    }
    return result;
  });
}
