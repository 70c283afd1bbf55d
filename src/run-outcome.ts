import { EXIT, ExitError, type ExitCode } from './errors.js';

/** How a run that sends ended: the status its `runs` row keeps, beside its exit code. */
type RunEnd = 'succeeded' | 'waiting' | 'abandoned' | 'stopped' | 'failed' | 'refused';

export interface RunOutcome {
  status: RunEnd;
  exitCode: ExitCode;
}

/** The exit code of a run that succeeded: what "the last successful run" of the metrics is read by. */
export const SUCCEEDED_EXIT_CODE: ExitCode = EXIT.ok;

/**
 * The contract's rule for any run that sends, the one place it is decided (the CLI's exit status and the
 * `runs` row take it from here): due deliveries left locked is 1 (failed), stopped early 1, anything
 * abandoned 3, deliveries waiting on a failing receiver (deferred or parked) 4; 3 wins over 4.
 */
export function runOutcome(counts: { abandoned: number; waiting?: number; stopped?: boolean; locked?: number }): RunOutcome {
  if ((counts.locked ?? 0) > 0) return { status: 'failed', exitCode: EXIT.failure };
  if (counts.stopped) return { status: 'stopped', exitCode: EXIT.failure };
  if (counts.abandoned > 0) return { status: 'abandoned', exitCode: EXIT.abandoned };
  return (counts.waiting ?? 0) > 0 ? { status: 'waiting', exitCode: EXIT.waiting } : { status: 'succeeded', exitCode: SUCCEEDED_EXIT_CODE };
}

/**
 * Whether a run with this exit code got to its end, as runOutcome decides: succeeded (0), abandoned deliveries (3) or
 * left some waiting (4). Any other code, or none, is a run that failed, stopped early or refused to start.
 */
export function ranToTheEnd(exitCode: number | null): boolean {
  return exitCode === SUCCEEDED_EXIT_CODE || exitCode === EXIT.abandoned || exitCode === EXIT.waiting;
}

/** A run that refused to start (nothing written): the code its refusal carries, 2 (a usage or configuration problem) for any other error. */
export function refusedRunOutcome(refusal: unknown): RunOutcome {
  return { status: 'refused', exitCode: refusal instanceof ExitError ? refusal.code : EXIT.usage };
}

/**
 * The exit code of a usage or configuration problem, which a run meets before it writes (a refused run ends on it):
 * a run that ended with it is not one the rules were applied at.
 */
export const NOTHING_WRITTEN_EXIT_CODE: ExitCode = EXIT.usage;

/** A run that threw: the code its error carries (a usage or configuration problem is 2), any other failure 1. */
export function failedRunOutcome(failure: unknown): RunOutcome {
  return { status: 'failed', exitCode: failure instanceof ExitError ? failure.code : EXIT.failure };
}
