import { CommanderError } from 'commander';
import { EXIT, ExitError, type ExitCode } from '../errors.js';
import type { Output } from './output.js';

/** The exit code of commander's own "errors" (help, version, usage), which commander has already printed; undefined for any other error. */
export function commanderExitCode(error: unknown): ExitCode | undefined {
  if (!(error instanceof CommanderError)) return undefined;
  // Help and version are "errors" to commander; they have already printed.
  if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') return EXIT.ok;
  return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
}

/** The exit status reportError gives an error a command's body throws (ours carry theirs; anything else is a failure). */
export function exitCodeOf(error: unknown): ExitCode {
  return error instanceof ExitError ? error.code : EXIT.failure;
}

/** Errors that escape a command: usage errors from commander, or failures before a command's own output existed. */
export function reportError(out: Output, error: unknown): ExitCode {
  const commanderCode = commanderExitCode(error);
  if (commanderCode !== undefined) return commanderCode;
  if (error instanceof ExitError) {
    out.error(error.message);
    if (out.options.verbose && error.cause instanceof Error && error.cause.stack) out.io.stderr.write(`${error.cause.stack}\n`);
    return error.code;
  }
  const message = error instanceof Error ? error.message : String(error);
  out.error(`unexpected failure: ${message}${out.options.verbose ? '' : ' (run with --verbose for details)'}`);
  if (out.options.verbose && error instanceof Error && error.stack) out.io.stderr.write(`${error.stack}\n`);
  return EXIT.failure;
}
