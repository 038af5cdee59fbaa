/**
 * What a run's Docker objects, host-mirror refs and stored pointers are named after. Docker names are
 * global to an engine while workflow ids are unique only within a namespace, so runs of a contract with
 * a project id are keyed by namespace and workflow id. Runs started before project ids keep their
 * workflow id as key, so the sandbox and snapshots they already have are found again.
 */
import { Context } from '@temporalio/activity';
import type { ContractSettings } from '../lib/contract/index.ts';
import { scopedRunKey } from '../lib/sandbox/names.ts';

export function runKey(input: { workflowId: string; contract: ContractSettings }): string {
  if (!input.contract.config.project) return input.workflowId;
  return scopedRunKey(Context.current().info.namespace, input.workflowId);
}
