import { parse as parseYaml, YAMLParseError } from 'yaml';
import { ContractError } from './errors.ts';

export interface WorkflowFile {
  /** The front matter as parsed; `{}` when there is none. */
  raw: Record<string, unknown>;
  /** The prompt body, trimmed. */
  body: string;
  /** 1-based file line where the trimmed body starts (for template error positions). */
  bodyLine: number;
}

/**
 * Symphony's split: a first line `---` opens YAML front matter that runs to the next `---` line
 * (or to the end of the file when never closed); everything after it is the prompt body.
 */
export function splitWorkflowFile(text: string, file: string): WorkflowFile {
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);
  let front: string[] = [];
  let bodyStart = 0;
  if (lines[0]?.trimEnd() === '---') {
    const close = lines.findIndex((line, i) => i > 0 && line.trimEnd() === '---');
    front = close === -1 ? lines.slice(1) : lines.slice(1, close);
    bodyStart = close === -1 ? lines.length : close + 1;
  }
  const rest = lines.slice(bodyStart).join('\n');
  const body = rest.trim();
  const leading = rest.slice(0, rest.length - rest.trimStart().length);
  const bodyLine = bodyStart + 1 + (leading.match(/\n/g)?.length ?? 0);
  return { raw: parseFrontMatter(front.join('\n'), file), body, bodyLine };
}

function parseFrontMatter(yaml: string, file: string): Record<string, unknown> {
  if (yaml.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = parseYaml(yaml);
  } catch (err) {
    if (err instanceof YAMLParseError) {
      // Front matter starts on the file's second line.
      const line = (err.linePos?.[0].line ?? 0) + 1;
      const reason = (err.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
      throw new ContractError('workflow_parse_error', `${file}:${line}: invalid YAML front matter: ${reason}`);
    }
    throw new ContractError('workflow_parse_error', `${file}: invalid YAML front matter: ${String(err)}`);
  }
  if (parsed === null || parsed === undefined) return {}; // only comments
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ContractError(
      'workflow_front_matter_not_a_map',
      `${file}: the front matter must be a YAML map of settings, got ${Array.isArray(parsed) ? 'a list' : `a ${typeof parsed}`}`,
      { allowed: 'a YAML map (key: value lines)' },
    );
  }
  return parsed as Record<string, unknown>;
}
