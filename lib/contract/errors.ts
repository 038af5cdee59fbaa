export type ContractErrorCode =
  | 'missing_workflow_file'
  | 'workflow_parse_error'
  | 'workflow_front_matter_not_a_map'
  | 'template_parse_error'
  | 'template_render_error'
  | 'invalid_config'
  | 'missing_secret';

export interface ContractErrorDetails {
  /** Dotted config key, e.g. `proof.commands[1].timeout_ms`. */
  key?: string;
  /** The offending value; never a secret. */
  value?: unknown;
  /** What is allowed, human readable. */
  allowed?: string;
}

/** Every problem with WORKFLOW.md, under Symphony's error names plus `invalid_config` and `missing_secret`. */
export class ContractError extends Error {
  readonly code: ContractErrorCode;
  readonly key?: string;
  readonly value?: unknown;
  readonly allowed?: string;

  constructor(code: ContractErrorCode, message: string, details: ContractErrorDetails = {}) {
    super(message);
    this.name = 'ContractError';
    this.code = code;
    if (details.key !== undefined) this.key = details.key;
    if ('value' in details) this.value = details.value;
    if (details.allowed !== undefined) this.allowed = details.allowed;
  }
}
