// src/cli: the commander program, flag parsing, printing and exit codes (the only place that prints); imported only by bin/.
import { systemClock, type Clock } from '../clock.js';
import { EXIT, type ExitCode } from '../errors.js';
import type { Io, OutputOptions } from './output.js';
import { packageVersion } from './version.js';

const DEFAULT_OUTPUT: OutputOptions = { json: false, quiet: false, color: true, verbose: false };

/**
 * Runs the CLI and returns its exit code. bin/ owns the process: it turns signals into `stop` and the
 * returned code into the exit status. `clock` is where "now" comes from when no --now is given: the
 * system's, or a test's.
 */
export async function main(
  argv: string[],
  io: Io = { stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() },
  clock: Clock = systemClock,
  stop: AbortSignal = new AbortController().signal,
): Promise<ExitCode> {
  const invocation = { exitCode: EXIT.ok as ExitCode };
  // commander prints the version as plain text; a script asking for --json gets a JSON document instead.
  const args = argv.slice(2);
  if (args.includes('--json') && (args.includes('--version') || args.includes('-V'))) {
    io.stdout.write(`${JSON.stringify({ version: packageVersion() })}\n`);
    return EXIT.ok;
  }
  // `--version` alone needs no program: commander, the commands and their flag parsers are not loaded for it.
  if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
    io.stdout.write(`${packageVersion()}\n`);
    return EXIT.ok;
  }
  try {
    const { buildProgram } = await import('./program.js');
    const program = buildProgram({ io, clock, stop, invocation });
    await program.parseAsync(argv);
    return invocation.exitCode;
  } catch (error) {
    const { commanderExitCode, reportError } = await import('./report-error.js');
    // `--help` ends here too (commander has printed it): no Output, so no chalk, for it.
    const commanderCode = commanderExitCode(error);
    if (commanderCode !== undefined) return commanderCode;
    const { Output } = await import('./output.js');
    return reportError(new Output(io, DEFAULT_OUTPUT), error);
  }
}
