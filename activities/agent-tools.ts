/**
 * The agent's tools. Each runs inside the sandbox; file paths are confined to the repository.
 * A tool failure becomes a message to the agent, never an activity failure.
 */
import type OpenAI from 'openai';
import { WorkspaceError, inWorkspace, readWorkspaceFile, sh, writeWorkspaceFile, type Sandbox } from '../lib/sandbox/workspace.ts';
import type { PhaseEgress } from '../lib/egress/relay.ts';

const SHELL_DEFAULT_TIMEOUT_MS = 120_000;
const SHELL_MAX_TIMEOUT_MS = 600_000;
const TOOL_OUTPUT_LIMIT = 16 * 1024;

type FunctionTool = OpenAI.Chat.Completions.ChatCompletionFunctionTool;

const tool = (name: string, description: string, properties: Record<string, unknown>, required: string[]): FunctionTool => ({
  type: 'function',
  function: { name, description, parameters: { type: 'object', properties, required, additionalProperties: false } },
});

export const AGENT_TOOLS: FunctionTool[] = [
  tool('run_shell', 'Run a shell command (sh -c) in the repository root. No network. Returns exit code and output.', {
    command: { type: 'string' },
    timeout_ms: { type: 'integer', description: `default ${SHELL_DEFAULT_TIMEOUT_MS}, at most ${SHELL_MAX_TIMEOUT_MS}` },
  }, ['command']),
  tool('read_file', 'Read a text file. Paths are relative to the repository root.', { path: { type: 'string' } }, ['path']),
  tool('write_file', 'Create or replace a file with the given content (parent folders are created).', {
    path: { type: 'string' },
    content: { type: 'string' },
  }, ['path', 'content']),
  tool('apply_patch', 'Apply a unified diff (as produced by git diff) to the repository.', { patch: { type: 'string' } }, ['patch']),
  tool('list_files', 'List files under a folder of the repository (tracked and untracked, not ignored).', { path: { type: 'string' } }, []),
  tool('search_files', 'Search file contents for a regular expression; returns file:line:text.', {
    pattern: { type: 'string' },
    path: { type: 'string' },
  }, ['pattern']),
  tool('finish', 'End this working session with a summary of what was changed and how it was verified.', { summary: { type: 'string' } }, ['summary']),
];

export type ToolOutcome = { content: string; finished?: { summary: string } };

function cap(text: string): string {
  return text.length > TOOL_OUTPUT_LIMIT ? `…(first ${text.length - TOOL_OUTPUT_LIMIT} characters cut)\n${text.slice(-TOOL_OUTPUT_LIMIT)}` : text;
}

function requireString(args: Record<string, unknown>, key: string): string {
  const value = args[key];
  if (typeof value !== 'string') throw new WorkspaceError(`argument "${key}" must be a string`);
  return value;
}

/** `egress`: the agent phase's proxy settings, and how a command's output tells of refused connections. */
export async function runTool(sandbox: Sandbox, name: string, rawArguments: string, egress?: PhaseEgress): Promise<ToolOutcome> {
  let args: Record<string, unknown>;
  try {
    args = rawArguments.trim() ? (JSON.parse(rawArguments) as Record<string, unknown>) : {};
    if (typeof args !== 'object' || args === null || Array.isArray(args)) throw new Error('not an object');
  } catch {
    return { content: `error: the arguments of ${name} must be a JSON object; got ${JSON.stringify(rawArguments.slice(0, 200))}` };
  }
  try {
    switch (name) {
      case 'run_shell': {
        const timeout = Math.min(typeof args.timeout_ms === 'number' ? args.timeout_ms : SHELL_DEFAULT_TIMEOUT_MS, SHELL_MAX_TIMEOUT_MS);
        await egress?.ready();
        const result = await sh(sandbox, requireString(args, 'command'), { timeoutMs: timeout, maxOutputBytes: TOOL_OUTPUT_LIMIT, env: egress?.env });
        const stderr = result.stderr + (egress?.notes(result.stdout + result.stderr) ?? '');
        return {
          content: cap(`exit code ${result.exitCode}${result.timedOut ? ' (timed out)' : ''}\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${stderr}`),
        };
      }
      case 'read_file':
        return { content: cap(await readWorkspaceFile(sandbox, requireString(args, 'path'))) };
      case 'write_file': {
        const bytes = await writeWorkspaceFile(sandbox, requireString(args, 'path'), requireString(args, 'content'));
        return { content: `wrote ${bytes} bytes to ${args.path}` };
      }
      case 'apply_patch': {
        const result = await sh(sandbox, 'git apply --whitespace=nowarn --recount -', { stdin: requireString(args, 'patch') });
        if (result.exitCode !== 0) return { content: `error: the patch did not apply:\n${cap(result.stderr || result.stdout)}` };
        const stat = await sh(sandbox, 'git status --short');
        return { content: `patch applied\n${cap(stat.stdout)}` };
      }
      case 'list_files': {
        const folder = typeof args.path === 'string' && args.path ? args.path : '.';
        const result = await inWorkspace(sandbox, folder, 'git ls-files --cached --others --exclude-standard -- "$F" | head -500');
        return { content: cap(result.stdout || '(no files)') };
      }
      case 'search_files': {
        const folder = typeof args.path === 'string' && args.path ? args.path : '.';
        const result = await inWorkspace(sandbox, folder, 'git grep -n -I --untracked -E -e "$PATTERN" -- "$F" | head -200', { env: { PATTERN: requireString(args, 'pattern') } });
        return { content: cap(result.stdout || '(no matches)') };
      }
      case 'finish': {
        const summary = requireString(args, 'summary');
        return { content: 'session finished', finished: { summary } };
      }
      default:
        return { content: `error: unknown tool "${name}"; available: ${AGENT_TOOLS.map((t) => t.function.name).join(', ')}` };
    }
  } catch (error) {
    if (error instanceof WorkspaceError) return { content: `error: ${error.message}` };
    throw error;
  }
}
