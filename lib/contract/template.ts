import { Liquid, LiquidError, type Template } from 'liquidjs';
import type { Issue } from '../tracker/types.ts';
import { ContractError } from './errors.ts';

/** Used when WORKFLOW.md has no prompt body. */
export const DEFAULT_PROMPT = `You are working on an issue from the tracker.

Issue {{ issue.identifier }}: {{ issue.title }}

{% if issue.description %}{{ issue.description }}{% else %}No description provided.{% endif %}`;

export interface PromptVars {
  issue: Issue;
  /** null on the first run, an integer on retries and later rounds. */
  attempt: number | null;
}

// Strict like Symphony: an unknown variable or filter is an error. `templates: {}` keeps
// include/render/layout off the file system.
const engine = new Liquid({ strictVariables: true, strictFilters: true, templates: {} });

/** A filled-in issue that every field of the template can be checked against at load time. */
const SAMPLE_ISSUE: Issue = {
  id: 'sample-id',
  identifier: 'SAMPLE-1',
  title: 'Sample issue',
  description: 'Sample description.',
  priority: 2,
  state: 'Todo',
  branch_name: 'sample-1-branch',
  url: 'https://tracker.example/SAMPLE-1',
  labels: ['sample'],
  blocked_by: [{ id: 'blocker-id', identifier: 'SAMPLE-0', state: 'Done' }],
  created_at: '2026-01-01T00:00:00.000Z',
  updated_at: '2026-01-02T00:00:00.000Z',
};

interface Where {
  file?: string;
  /** File line of the template's first line. */
  firstLine?: number;
}

/** Parses the template and renders it against a sample issue with attempt null and 1. Throws ContractError. */
export function checkTemplate(source: string, where: Where = {}): void {
  const tpl = parse(source, where);
  for (const attempt of [null, 1]) {
    try {
      engine.renderSync(tpl, { issue: SAMPLE_ISSUE, attempt });
    } catch (err) {
      throw toContractError('template_render_error', err, where);
    }
  }
}

const cache = new Map<string, Template[]>();

export async function renderPrompt(contract: { promptTemplate: string }, vars: PromptVars): Promise<string> {
  const source = contract.promptTemplate;
  let tpl = cache.get(source);
  if (!tpl) {
    tpl = parse(source, {});
    if (cache.size >= 32) cache.clear();
    cache.set(source, tpl);
  }
  try {
    return await engine.render(tpl, { issue: vars.issue, attempt: vars.attempt });
  } catch (err) {
    throw toContractError('template_render_error', err, {});
  }
}

function parse(source: string, where: Where): Template[] {
  try {
    return engine.parse(source);
  } catch (err) {
    // liquidjs refuses unknown filters while parsing; Symphony calls that a render error.
    const code = /undefined filter/.test(messageOf(err)) ? 'template_render_error' : 'template_parse_error';
    throw toContractError(code, err, where);
  }
}

function messageOf(err: unknown): string {
  if (err instanceof LiquidError) return err.originalError?.message ?? err.message;
  return err instanceof Error ? err.message : String(err);
}

function toContractError(code: 'template_parse_error' | 'template_render_error', err: unknown, where: Where): ContractError {
  let reason = messageOf(err);
  let position = '';
  const full = err instanceof Error ? err.message : '';
  const m = /, line:(\d+), col:(\d+)$/.exec(full.split('\n')[0] ?? '');
  reason = reason.replace(/, line:\d+, col:\d+$/, '');
  if (m) position = `${Number(m[1]) + (where.firstLine ?? 1) - 1}:${m[2]}`;
  const prefix = where.file ? `${where.file}:${position ? `${position}:` : ''} ` : position ? `line ${position}: ` : '';
  const label = code === 'template_parse_error' ? 'prompt template does not parse' : 'prompt template does not render';
  // The unknown variable or filter name, e.g. `issue.nope`.
  const name = /^undefined (?:variable|filter): (.+)$/.exec(reason)?.[1];
  return new ContractError(code, `${prefix}${label}: ${reason}`, name ? { value: name } : {});
}
