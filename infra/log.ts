/**
 * How infra talks to the person running it: each step says what it does and how long it took,
 * and a failure ends with one clear message that says what to do (never a stack trace).
 */

/** A failure the user can act on. `hint` says what to do about it. */
export class InfraError extends Error {
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
    this.name = 'InfraError';
  }
}

const quiet = () => process.env.CADENZA_QUIET === '1';

export function say(line: string): void {
  if (!quiet()) process.stderr.write(`${line}\n`);
}

/** Runs one named step, printing its start and its duration. */
export async function step<T>(what: string, run: () => Promise<T>, done?: (result: T) => string): Promise<T> {
  const started = performance.now();
  say(`==> ${what}`);
  const result = await run();
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  say(`    ${done ? done(result) : 'done'} (${seconds}s)`);
  return result;
}

/** Entry-point wrapper: an InfraError becomes one readable message and exit code 1. */
export async function runMain(main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (error) {
    if (error instanceof InfraError) {
      process.stderr.write(`\ncadenza: ${error.message}\n  what to do: ${error.hint}\n`);
    } else {
      const message = error instanceof Error ? error.message : String(error);
      process.stderr.write(`\ncadenza: unexpected failure: ${message}\n`);
      if (process.env.CADENZA_DEBUG === '1' && error instanceof Error) process.stderr.write(`${error.stack}\n`);
    }
    process.exit(1);
  }
}
