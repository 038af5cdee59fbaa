import { expect } from 'vitest';
import { ContractError } from '../../lib/contract/index.ts';

/** The ContractError `load` throws (failing the test when it throws something else, or nothing). */
export function catchContractError(load: () => unknown): ContractError {
  try {
    load();
  } catch (error) {
    expect(error).toBeInstanceOf(ContractError);
    return error as ContractError;
  }
  throw new Error('expected a ContractError');
}
