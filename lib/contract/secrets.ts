import { ContractError } from './errors.ts';
import type { SecretRef } from './types.ts';

/** `$NAME` exactly; anything else is a literal. */
const ENV_REF = /^\$([A-Za-z_][A-Za-z0-9_]*)$/;

export function envRefName(value: unknown): string | null {
  return typeof value === 'string' ? (ENV_REF.exec(value)?.[1] ?? null) : null;
}

/** Reads a secret at use time. Throws ContractError('missing_secret') naming the variable, never a value. */
export function resolveSecret(ref: SecretRef, env: NodeJS.ProcessEnv = process.env): string {
  const value = env[ref.env];
  if (value === undefined || value === '') {
    throw new ContractError('missing_secret', `environment variable ${ref.env} is not set or is empty`, {
      value: `$${ref.env}`,
      allowed: `a non-empty environment variable ${ref.env}`,
    });
  }
  return value;
}
