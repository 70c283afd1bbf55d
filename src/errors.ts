/** The exit codes of the contract (docs/contract.md, "Exit codes"). */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  abandoned: 3,
  /** Finished, nothing abandoned, but deliveries wait on a failing receiver (deferred or parked). */
  waiting: 4,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** An error that ends the command with a chosen exit code and a message meant for the user. */
export class ExitError extends Error {
  readonly code: ExitCode;

  constructor(code: ExitCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ExitError';
    this.code = code;
  }
}

/** Bad usage, configuration, setting or input file: exit 2, nothing written. */
export function usageError(message: string, options?: { cause?: unknown }): ExitError {
  return new ExitError(EXIT.usage, message, options);
}
