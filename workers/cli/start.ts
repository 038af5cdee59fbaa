/** `cadenza start`: starts one issue's run by hand. */
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { InfraError } from '../../infra/log.ts';
import { commentsForNewRun, startIssue } from '../../client/issues.ts';
import { createTrackerFactory } from '../../lib/tracker/index.ts';
import { addressOf, connect, contractFrom, defaultWorkflowFile, out, type Flags } from './common.ts';

/** Starts one issue's run by hand: no-op while a run is open; `--again` after an earlier run ended. */
export async function startOne(flags: Flags, identifier: string): Promise<void> {
  const contract = contractFrom((flags.workflow as string | undefined) ?? defaultWorkflowFile(), 'fix WORKFLOW.md; nothing was started.', { warn: true });
  const tracker = createTrackerFactory()(contract.config.tracker);
  const [issue] = await tracker.fetchIssuesByIds([identifier]).catch((error: Error) => {
    throw new InfraError(`cannot read the tracker: ${error.message}`, 'check the tracker settings in WORKFLOW.md.');
  });
  if (!issue) throw new InfraError(`the tracker has no issue ${identifier}.`, 'check the identifier (cadenza status lists the runs).');
  const { client, connection } = await connect(addressOf(flags));
  try {
    const handle = await startIssue(client, { issue, contract, again: Boolean(flags.again), comments: await commentsForNewRun(tracker, issue.id) });
    out(`${identifier}: ${handle.workflowId} is running`);
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) {
      throw new InfraError(`an earlier run of ${identifier} has ended and is not restarted by default.`, `run \`cadenza start ${identifier} --again\` to start a new run.`);
    }
    throw error;
  } finally {
    await connection.close();
  }
}
