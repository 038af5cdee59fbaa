import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { buildConfigWithWarnings } from './config.ts';
import { ContractError } from './errors.ts';
import { checkTemplate, DEFAULT_PROMPT } from './template.ts';
import type { Contract } from './types.ts';
import { splitWorkflowFile } from './workflow-file.ts';

export { ContractError } from './errors.ts';
export type { ContractErrorCode } from './errors.ts';
export { resolveSecret } from './secrets.ts';
export { renderPrompt, DEFAULT_PROMPT } from './template.ts';
export type { PromptVars } from './template.ts';
export type * from './types.ts';

/** Reads, parses and validates WORKFLOW.md once. Throws ContractError. */
export function loadContract(file: string, env: NodeJS.ProcessEnv = process.env): Contract {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new ContractError('missing_workflow_file', `${file}: cannot read the workflow file (${reason})`, { value: file });
  }
  return parseContract(text, file, env);
}

/** Parses and validates WORKFLOW.md text; `file` locates relative paths and names the file in errors. */
export function parseContract(text: string, file: string, env: NodeJS.ProcessEnv = process.env): Contract {
  const path = resolve(file);
  const dir = dirname(path);
  const { raw, body, bodyLine } = splitWorkflowFile(text, file);
  const { config, warnings } = buildConfigWithWarnings(raw, dir, env);
  const promptTemplate = body === '' ? DEFAULT_PROMPT : body;
  checkTemplate(promptTemplate, body === '' ? {} : { file, firstLine: bodyLine });
  return { path, dir, promptTemplate, config, ...(warnings.length ? { warnings: warnings.map((warning) => `${file}: ${warning}`) } : {}) };
}
