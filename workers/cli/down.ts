/** `cadenza down`: stops the Temporal dev server that `up` started. */
import { step } from '../../infra/log.ts';
import { defaultServerOptions, stopDevServer } from '../../infra/temporal.ts';

export async function down(): Promise<void> {
  const { dir } = defaultServerOptions('temporal');
  await step('Stopping the Temporal dev server', () => stopDevServer(dir), (was) =>
    was ? `stopped (its database stays in ${dir}; npm start brings it back)` : `none was running from ${dir}`);
}
