/** `cadenza show`: the latest proof's evidence from the artifact store. */
import { InfraError } from '../../infra/log.ts';
import { stateDir } from '../../infra/paths.ts';
import { issueStatus } from '../../client/issues.ts';
import { describeStore, openArtifactStore, storeConfigFrom } from '../../lib/artifacts-config.ts';
import type { IssueStatus } from '../../workflows/definitions.ts';
import { addressOf, connect, locateRun, out, table, runConfig, withWorker, type Flags } from './common.ts';

export const EVIDENCE = ['walkthrough', 'diff', 'checks', 'egress', 'summary'] as const;

/** Prints the latest proof's evidence from this machine's artifact store (the worker's state folder). */
export async function showEvidence(flags: Flags, identifier: string, what = 'walkthrough'): Promise<void> {
  // The worker's store: its folder, or the shared one CADENZA_STORE names (the same environment as the worker's).
  const config = storeConfigFrom(process.env, stateDir());
  const address = addressOf(flags);
  const { client, connection } = await connect(address);
  let status: IssueStatus;
  try {
    const handle = await locateRun(client, runConfig(flags), identifier, address);
    status = await withWorker(connection, 10_000, () => issueStatus(handle));
  } finally {
    await connection.close();
  }
  const proof = status.proof.at(-1);
  if (!proof) throw new InfraError(`${identifier} has no proof yet (phase ${status.phase}, round ${status.round}).`, `wait for Verifying to finish; \`npx cadenza status ${identifier}\` shows where it is.`);
  const artifacts = openArtifactStore(config);
  const text = async (ref: string) => artifacts.getText(ref).catch((error: Error) => {
    if (error instanceof InfraError) throw error;
    throw new InfraError(
      `the artifact ${ref} is not in ${describeStore(config)}.`,
      config.kind === 'folder'
        ? 'run `cadenza show` where the worker keeps its state, or set CADENZA_STATE_DIR to that folder (or CADENZA_STORE to the store the workers use).'
        : 'set CADENZA_STORE, CADENZA_S3_ENDPOINT and the credentials as the workers have them.',
    );
  });
  if (what === 'walkthrough') out(await text(proof.walkthrough.ref));
  if (what === 'summary') out(await text(proof.summary.ref));
  if (what === 'diff') out(await text(proof.diff.ref));
  if (what === 'checks') {
    for (const check of [...proof.checks, ...(proof.baseTests ?? [])]) out(`=== ${check.name}: ${check.passed ? 'passed' : 'FAILED'} (exit ${check.exitCode})\n${await text(check.output.ref)}`);
  }
  if (what === 'egress') {
    if (!proof.egress) {
      out('Nothing left the sandboxes of this run.');
      return;
    }
    const records = JSON.parse(await text(proof.egress.log.ref)) as Array<{ phase: string; destination: string; allowed: boolean; reason: string; bytesIn: number; bytesOut: number }>;
    table(['PHASE', 'DESTINATION', 'DECISION', 'BYTES IN', 'BYTES OUT', 'WHY'], records.map((r) => [r.phase, r.destination, r.allowed ? 'allowed' : 'REFUSED', String(r.bytesIn), String(r.bytesOut), r.reason]));
  }
}
