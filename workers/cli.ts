/**
 * The `cadenza` command (`npx cadenza <command>`, `npm start` runs `up`).
 *
 *   up [--workflow PATH] [--exit-when-done]   set everything up, start the ready issues' workflows,
 *                                             run a worker in the foreground and print phase changes
 *   status [IDENTIFIER]                       issue workflows and their progress; one issue in full
 *   approve IDENTIFIER --by NAME [--comment TEXT] [--commit SHA]
 *   reject IDENTIFIER --by NAME --feedback TEXT
 *   list                                      open and recent issue workflows
 *   down                                      stop the Temporal dev server `up` started
 *
 * This file is the entry point (usage, argument parsing, dispatch); each command is a module in
 * workers/cli/ (up, status with list, decide for approve/reject, start, show, schedule, down), and
 * what they share is workers/cli/common.ts.
 *
 * Progress goes to stderr (infra/log.ts); results, instructions and phase changes to stdout. Every
 * failure ends with one clear message and exit code 1; a usage mistake with the usage and exit code 2.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runMain } from '../infra/log.ts';
import { decide } from './cli/decide.ts';
import { down } from './cli/down.ts';
import { OPTIONS, UsageError, out, stringFlag, type Flag, type Flags } from './cli/common.ts';
import { SCHEDULE_ACTIONS, scheduleCommand } from './cli/schedule.ts';
import { EVIDENCE, showEvidence } from './cli/show.ts';
import { startOne } from './cli/start.ts';
import { list, status } from './cli/status.ts';
import { up } from './cli/up.ts';

const USAGE = `usage: cadenza <command> [options]

commands:
  up [--workflow PATH] [--exit-when-done]
        set up Temporal, Docker and the sandbox image, seed the demo (without --workflow), start a
        workflow per ready issue and run a worker until Ctrl-C (--exit-when-done: until they close)
  status [IDENTIFIER]                            all issue workflows, or one issue in full
  approve IDENTIFIER --by NAME [--comment TEXT] [--commit SHA]  let a run waiting in AwaitingApproval land (--commit: refused unless it is the head shown in the proof)
  reject IDENTIFIER --by NAME --feedback TEXT    send it back for another round with feedback
  start IDENTIFIER [--again]                     start an issue's run now (--again: after an earlier run ended)
  show IDENTIFIER [walkthrough|diff|checks|egress|summary]
                                                 print the latest proof's evidence from the artifact store (default walkthrough)
  list                                           open and recent issue workflows
  schedule [list|pause|resume|delete] [SCHEDULE-ID] [--reason TEXT]
                                                 the tracker poll schedules; pause/resume/delete the one of
                                                 --workflow (or the id given); open runs are not touched
  down                                           stop the Temporal dev server that up started

options:
  --workflow PATH     the contract (default <state>/demo/WORKFLOW.md; state: CADENZA_STATE_DIR or .cadenza)
  --address HOST:PORT the Temporal frontend (default CADENZA_TEMPORAL_ADDRESS, else 127.0.0.1:CADENZA_TEMPORAL_PORT or 7233)

environment (a Temporal cluster or Temporal Cloud; see README, "Production Temporal"):
  CADENZA_NAMESPACE, CADENZA_TEMPORAL_TLS_CERT and CADENZA_TEMPORAL_TLS_KEY (client certificate),
  CADENZA_TEMPORAL_TLS_CA, CADENZA_TEMPORAL_TLS_SERVER_NAME, CADENZA_TEMPORAL_API_KEY, CADENZA_TEMPORAL_TLS
`;
const COMMANDS: Record<string, { flags: Flag[]; positionals: [min: number, max: number] }> = {
  up: { flags: ['workflow', 'address', 'exit-when-done'], positionals: [0, 0] },
  status: { flags: ['workflow', 'address'], positionals: [0, 1] },
  approve: { flags: ['workflow', 'address', 'by', 'comment', 'commit'], positionals: [1, 1] },
  reject: { flags: ['workflow', 'address', 'by', 'feedback'], positionals: [1, 1] },
  start: { flags: ['workflow', 'address', 'again'], positionals: [1, 1] },
  show: { flags: ['workflow', 'address'], positionals: [1, 2] },
  list: { flags: ['workflow', 'address'], positionals: [0, 0] },
  schedule: { flags: ['workflow', 'address', 'reason'], positionals: [0, 2] },
  down: { flags: [], positionals: [0, 0] },
};

function parse(argv: string[]): { command: string; flags: Flags; args: string[] } {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    const message = (error as Error).message;
    const option = /'(-[^' ]+)/.exec(message)?.[1];
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new UsageError(`unknown option ${option}`);
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') throw new UsageError(`option ${option} needs a value`);
    throw new UsageError(message);
  }
  const flags = parsed.values as Flags;
  const [command, ...args] = parsed.positionals;
  if (flags.help) return { command: 'help', flags, args };
  if (!command) throw new UsageError('no command given');
  const spec = COMMANDS[command];
  if (!spec) throw new UsageError(`unknown command "${command}"`);
  for (const flag of Object.keys(flags) as Flag[]) {
    if (!spec.flags.includes(flag)) throw new UsageError(`${command} does not take --${flag}`);
  }
  const [min, max] = spec.positionals;
  if (command === 'schedule') {
    if (args[0] !== undefined && !(SCHEDULE_ACTIONS as readonly string[]).includes(args[0])) throw new UsageError(`schedule: unknown action "${args[0]}"; choose one of ${SCHEDULE_ACTIONS.join(', ')}`);
    if (args[0] === 'list' && args.length > 1) throw new UsageError('schedule list takes no schedule id');
    if (flags.reason !== undefined && args[0] !== 'pause' && args[0] !== 'resume') throw new UsageError('--reason goes with schedule pause or schedule resume');
    return { command, flags, args };
  }
  if (args.length < min) throw new UsageError(`${command} needs an issue identifier, e.g. cadenza ${command} DEMO-1`);
  if (args.length > max) throw new UsageError(`${command} takes ${max === 0 ? 'no arguments' : 'one issue identifier'}, got: ${args.join(' ')}`);
  return { command, flags, args };
}

async function main(argv: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parse(argv);
    if (parsed.command === 'approve' || parsed.command === 'reject') {
      stringFlag(parsed.flags, 'by', parsed.command, 'NAME (who decides)');
      if (parsed.command === 'reject') stringFlag(parsed.flags, 'feedback', 'reject', 'TEXT (what the agent should change)');
    }
    const evidence = parsed.command === 'show' ? parsed.args[1] : undefined;
    if (evidence !== undefined && !(EVIDENCE as readonly string[]).includes(evidence)) {
      throw new UsageError(`show: unknown evidence "${evidence}"; choose one of ${EVIDENCE.join(', ')}`);
    }
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`cadenza: ${error.message}\n\n${USAGE}`);
    process.exit(2);
  }
  const { command, flags, args } = parsed;
  switch (command) {
    case 'help':
      out(USAGE);
      return;
    case 'up':
      return up(flags);
    case 'status':
      return status(flags, args[0]);
    case 'approve':
    case 'reject':
      return decide(command, flags, args[0]!);
    case 'start':
      return startOne(flags, args[0]!);
    case 'list':
      return list(flags);
    case 'show':
      return showEvidence(flags, args[0]!, args[1]);
    case 'schedule':
      return scheduleCommand(flags, (args[0] ?? 'list') as (typeof SCHEDULE_ACTIONS)[number], args[1]);
    case 'down':
      return down();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  await runMain(() => main(process.argv.slice(2)));
  // gRPC channels and the native runtime may hold the event loop open after a command is done.
  process.exit(process.exitCode ?? 0);
}
