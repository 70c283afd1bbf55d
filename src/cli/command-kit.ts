// What every command's module under ./commands/ shares: running an action with its Output, its span and its
// exit code, opening the database or reading the config for it, and the flags several commands take.
import path from 'node:path';
import { Option, type Command } from 'commander';
import type { Clock } from '../clock.js';
import { withInvocation } from '../command-line.js';
import type { CommandContext, ContextOptions, GlobalOptions, readConfigOnly } from '../commands/context.js';
import type { RunTracing } from '../commands/monitoring.js';
import { EXIT, ExitError, usageError, type ExitCode } from '../errors.js';
import type { EXPIRED_REMINDER } from '../expirations/after-expiry.js';
import { EVENT_TYPES } from '../webhooks/event-types.js';
import type { Io, Output } from './output.js';
import { exitCodeOf, reportError } from './report-error.js';
import { packageVersion } from './version.js';

// The after-expiry reminder, written out so that declaring the program loads none of the rules (its type says it is the same).
const REMINDER_TYPE: typeof EXPIRED_REMINDER = 'license.expired_reminder';
// Botble's three events and the after-expiry reminder.
export const NOTICE_TYPES = [...EVENT_TYPES, REMINDER_TYPE] as const;

// The settings commands (and status) must work whatever is stored: they are how a bad row is seen and fixed.
export const TOLERANT: ContextOptions = { tolerateInvalidSettings: true };

interface GlobalFlags {
  config?: string;
  json?: boolean;
  quiet?: boolean;
  color?: boolean;
  verbose?: boolean;
}

/** What the program needs from its caller, and where an action leaves the exit code it decided on (commander returns no action result). */
export interface Session {
  io: Io;
  /** Where "now" comes from when no --now is given: the system clock, or a test's. */
  clock: Clock;
  /** Aborted by bin/ on SIGINT/SIGTERM. */
  stop: AbortSignal;
  invocation: { exitCode: ExitCode };
}

/** An action's body: prints through `out`, returns its exit code (none: 0). */
type ActionBody<T> = (subject: T, out: Output) => Promise<ExitCode | void>;

export interface CommandKit extends Omit<Session, 'invocation'> {
  /** Runs one action with its own Output; its errors are reported with that Output's --json/--quiet. */
  act: (command: Command, fn: (out: Output, flags: GlobalFlags) => Promise<ExitCode | void>) => Promise<void>;
  /** An action that needs the config and the database. */
  /**
   * `unopened`: told the exit status (before the error is printed) when the command fails before its body runs (the
   * config, the database, or its stored settings could not be used), with the options the context was opened with
   * and how long the attempt took (a server that does not answer takes up to its connect timeout).
   */
  withDatabase: (
    command: Command,
    fn: ActionBody<CommandContext>,
    contextOptions?: ContextOptions,
    unopened?: (exitCode: ExitCode, globals: GlobalOptions, out: Output, error: unknown, durationMs: number) => Promise<void>,
  ) => Promise<void>;
  /** The config, and an existing database read-only for its settings (creates no file); its warnings printed. */
  readConfig: (out: Output, flags: GlobalFlags) => ReturnType<typeof readConfigOnly>;
  /** The running command's span (OpenTelemetry, when OTEL_* asks for it): process-expirations hangs its child spans on it. */
  tracing: () => RunTracing | undefined;
  /** While a delivery run works, a first signal says what happens next (bin/ exits on a second one); returns the clean-up. */
  announceStop: (out: Output) => () => void;
}

/** The action's Output; loaded here, not at start-up: `--help` and `--version` never print through one (nor load chalk). */
async function outputFor(io: Io, command: Command): Promise<{ out: Output; flags: GlobalFlags }> {
  const { Output } = await import('./output.js');
  const flags = command.optsWithGlobals<GlobalFlags>();
  const out = new Output(io, { json: Boolean(flags.json), quiet: Boolean(flags.quiet), color: flags.color !== false, verbose: Boolean(flags.verbose) });
  return { out, flags };
}

export function commandKit(session: Session): CommandKit {
  const { io, stop, clock } = session;
  let tracing: RunTracing | undefined;

  const act: CommandKit['act'] = async (command, fn) => {
    const { out, flags } = await outputFor(io, command);
    // Without OTEL_* this loads no OpenTelemetry module: planTracing decides from the environment alone.
    const { startTracing } = await import('../monitoring/tracing.js');
    const tracer = await startTracing(io.env, { version: packageVersion(), consoleStream: io.stderr });
    // An exporter or protocol that cannot be served: one warning, and the command runs as ever.
    for (const warning of tracer.warnings) out.warn(warning);
    const names: string[] = [];
    for (let at: Command | null = command; at?.parent; at = at.parent) names.unshift(at.name());
    tracing = { enabled: tracer.enabled, run: tracer.startRun(names.join(' ')) };
    let errorType: string | undefined;
    try {
      // Hints this command prints carry its -c, so the command they suggest reaches the same database.
      const configFile = flags.config === undefined ? undefined : path.resolve(io.cwd, flags.config);
      session.invocation.exitCode = (await withInvocation({ configFile }, () => fn(out, flags))) ?? EXIT.ok;
    } catch (error) {
      errorType = errorTypeOf(error);
      session.invocation.exitCode = reportError(out, error);
    } finally {
      tracing.run.end(session.invocation.exitCode, errorType);
      // Bounded (2 s): a collector that is down costs a warning, never the exit status.
      const { warning } = await tracer.shutdown();
      if (warning) out.warn(warning.replace(/^warning: /, ''));
    }
  };

  return {
    io,
    stop,
    clock,
    act,
    withDatabase: (command, fn, contextOptions = {}, unopened) =>
      act(command, async (out, flags) => {
        const { withContext } = await import('../commands/context.js');
        const globals = { config: flags.config, cwd: io.cwd, env: io.env };
        let opened = false;
        const started = performance.now();
        try {
          return await withContext(
            globals,
            (context) => {
              opened = true;
              for (const warning of context.warnings) out.warn(warning);
              return fn(context, out);
            },
            { ...contextOptions, onWarning: (warning) => out.warn(warning) },
          );
        } catch (error) {
          if (!opened && unopened) await unopened(exitCodeOf(error), globals, out, error, performance.now() - started);
          throw error;
        }
      }),
    readConfig: async (out, flags) => {
      const { readConfigOnly } = await import('../commands/context.js');
      const context = await readConfigOnly({ config: flags.config, cwd: io.cwd, env: io.env });
      for (const warning of context.warnings) out.warn(warning);
      return context;
    },
    tracing: () => tracing,
    announceStop: (out) => {
      const onAbort = () =>
        out.warn(`${String(stop.reason ?? 'signal')} received: finishing the attempts in flight, then stopping (send it again to quit at once).`);
      stop.addEventListener('abort', onAbort, { once: true });
      return () => stop.removeEventListener('abort', onAbort);
    },
  };
}

/** `error.type` of a command that failed by throwing: the exit code's name for ours (usage, failure), the class name otherwise. */
function errorTypeOf(error: unknown): string | undefined {
  if (error instanceof ExitError) return Object.entries(EXIT).find(([, code]) => code === error.code)?.[0] ?? String(error.code);
  return error instanceof Error ? error.name : typeof error;
}

/**
 * LICENSE_MANAGER_LEASE_MS shortens the delivery lease for tests that pause or kill a run and must see its
 * claims lapse in seconds; it is not meant for production, where the 60 s default applies.
 */
export function leaseFromEnv(env: NodeJS.ProcessEnv): number | undefined {
  const text = env.LICENSE_MANAGER_LEASE_MS;
  if (text === undefined || text === '') return undefined;
  if (!/^\d+$/.test(text) || Number(text) < 300 || Number(text) > 3_600_000) {
    throw usageError(`LICENSE_MANAGER_LEASE_MS is "${text}": expected a whole number of milliseconds from 300 to 3600000 (or leave it unset).`);
  }
  return Number(text);
}

/** The progress bar for a delivery run; no callback at all off a terminal (counting what is claimable costs a query). */
export function deliveryProgress(out: Output, label: string) {
  const bar = out.progress(label);
  const onProgress = bar.enabled
    ? ({ done, total, delivered, waiting, abandoned }: { done: number; total: number; delivered: number; waiting: number; abandoned: number }) =>
        bar.update(done, total, `${delivered} delivered, ${waiting} waiting to retry, ${abandoned} abandoned`)
    : undefined;
  return { onProgress, end: () => bar.end() };
}

/** `--secret-env <name>`: the secret from the environment, so it is not in the arguments every `ps` shows. */
export function secretEnvOption(description: string): Option {
  return new Option('--secret-env <name>', `${description} (keeps it out of ps)`).conflicts('secret');
}
