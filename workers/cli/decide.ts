/** `cadenza approve` and `cadenza reject`: the landing decision, sent to the run as an Update. */
import { WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { InfraError } from '../../infra/log.ts';
import { approve, reject } from '../../client/issues.ts';
import { phaseKey } from '../../workflows/definitions.ts';
import { addressOf, connect, errorText, locateRun, notFound, out, stringFlag, runConfig, withWorker, type Flags } from './common.ts';

export async function decide(kind: 'approve' | 'reject', flags: Flags, identifier: string): Promise<void> {
  const by = stringFlag(flags, 'by', kind, 'NAME (who decides)');
  const feedback = kind === 'reject' ? stringFlag(flags, 'feedback', kind, 'TEXT (what the agent should change)') : undefined;
  const address = addressOf(flags);
  const config = runConfig(flags);
  const { client, connection } = await connect(address);
  const handle = await locateRun(client, config, identifier, address);
  try {
    const answer = await withWorker(connection, 30_000, () =>
      kind === 'approve' ? approve(handle, by, flags.comment as string | undefined, flags.commit as string | undefined) : reject(handle, by, feedback!));
    out(`${identifier}: ${answer}`);
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) {
      // Updates only reach running workflows: a run that has ended is reported as not found.
      const ended = await handle.describe().catch(() => null);
      if (!ended) throw notFound(identifier, handle.workflowId, address);
      const phase = ended.typedSearchAttributes.get(phaseKey);
      throw new InfraError(
        `the run ${handle.workflowId} has already ended (${ended.status.name.toLowerCase()}${phase ? `, phase ${phase}` : ''}); there is nothing to ${kind}.`,
        `see how it ended with \`npx cadenza status ${identifier}\`.`,
      );
    }
    if (error instanceof WorkflowUpdateFailedError) {
      throw new InfraError(error.cause?.message ?? error.message, `see where the run is with \`npx cadenza status ${identifier}\`.`);
    }
    if (/already completed|workflow execution already/i.test(errorText(error))) {
      throw new InfraError(`the run ${handle.workflowId} has already ended; there is nothing to ${kind}.`, `see how it ended with \`npx cadenza status ${identifier}\`.`);
    }
    throw error;
  } finally {
    await connection.close();
  }
}
