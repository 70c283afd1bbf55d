import path from 'node:path';
import { Command, Option } from 'commander';
import type { CommandContext, ContextOptions, GlobalOptions } from '../commands/context.js';
import type { TestEventContext } from '../commands/send-test-event.js';
import { EXIT, ExitError, runExitCode, usageError, type ExitCode } from '../errors.js';
import type { RunTracing } from '../commands/monitoring.js';
import type { DeliveryStatus } from '../commands/deliveries.js';
import { EXPIRED_REMINDER } from '../expirations/after-expiry.js';
import { LICENSE_STATUSES } from '../expirations/license-status.js';
import { EVENT_TYPES } from '../webhooks/event-types.js';
import { plural } from '../plural.js';
import { examples, IMPORT_HELP, SETTINGS_HELP } from './help.js';
import { reportError } from './report-error.js';
import {
  calendarDate,
  deliveryIds,
  endpointEvents,
  endpointHeader,
  endpointMaxInFlight,
  endpointSigning,
  collectSecret,
  givenSecret,
  givenSecrets,
  isoDate,
  keepPrevious,
  listenHost,
  pastDuration,
  runInstant,
  wholeNumber,
} from './options.js';
import type { Io, Output } from './output.js';
import { packageVersion } from './version.js';
import { commandLine, withInvocation } from '../command-line.js';

// Botble's three events and the after-expiry reminder.
const NOTICE_TYPES = [...EVENT_TYPES, EXPIRED_REMINDER] as const;
const DELIVERY_STATUSES: readonly DeliveryStatus[] = ['pending', 'delivering', 'delivered', 'deferred', 'parked', 'superseded', 'abandoned'];

// Rows shown by `deliveries list` when no --limit is given.
const DEFAULT_LIST_LIMIT = 50;
const MAX_LIMIT = 1_000_000_000;
const MAX_DAYS = 36_500;

interface GlobalFlags {
  config?: string;
  json?: boolean;
  quiet?: boolean;
  color?: boolean;
  verbose?: boolean;
}

/** What the program needs from its caller, and where an action leaves the exit code it decided on. */
export interface Session {
  io: Io;
  /** Aborted by bin/ on SIGINT/SIGTERM. */
  stop: AbortSignal;
  invocation: { exitCode: ExitCode };
}

/**
 * LICENSE_MANAGER_LEASE_MS shortens the delivery lease for tests that pause or kill a run and must see its
 * claims lapse in seconds; it is not meant for production, where the 60 s default applies.
 */
function leaseFromEnv(env: NodeJS.ProcessEnv): number | undefined {
  const text = env.LICENSE_MANAGER_LEASE_MS;
  if (text === undefined || text === '') return undefined;
  if (!/^\d+$/.test(text) || Number(text) < 300 || Number(text) > 3_600_000) {
    throw usageError(`LICENSE_MANAGER_LEASE_MS is "${text}": expected a whole number of milliseconds from 300 to 3600000 (or leave it unset).`);
  }
  return Number(text);
}

/** The action's Output; loaded here, not at start-up: `--help` and `--version` never print through one (nor load chalk). */
async function outputFor(io: Io, command: Command): Promise<{ out: Output; flags: GlobalFlags }> {
  const { Output } = await import('./output.js');
  const flags = command.optsWithGlobals<GlobalFlags>();
  const out = new Output(io, { json: Boolean(flags.json), quiet: Boolean(flags.quiet), color: flags.color !== false, verbose: Boolean(flags.verbose) });
  return { out, flags };
}

/** The commander program: flags and help only; each action calls one command function and one printer. */
export function buildProgram(session: Session): Command {
  const { io, stop } = session;

  /** The running command's span (OpenTelemetry, when OTEL_* asks for it): process-expirations hangs its child spans on it. */
  let tracing: RunTracing | undefined;

  /** Runs one action with its own Output; its errors are reported with that Output's --json/--quiet. */
  const act = async (command: Command, fn: (out: Output, flags: GlobalFlags) => Promise<ExitCode | void>): Promise<void> => {
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

  /** An action that needs the config and the database. */
  const withDatabase = (command: Command, fn: (context: CommandContext, out: Output) => Promise<ExitCode | void>, contextOptions: ContextOptions = {}) =>
    act(command, async (out, flags) => {
      const { withContext } = await import('../commands/context.js');
      const globals: GlobalOptions = { config: flags.config, cwd: io.cwd, env: io.env };
      return withContext(
        globals,
        (context) => {
          for (const warning of context.warnings) out.warn(warning);
          return fn(context, out);
        },
        { ...contextOptions, onWarning: (warning) => out.warn(warning) },
      );
    });
  // The settings commands (and status) must work whatever is stored: they are how a bad row is seen and fixed.
  const tolerant: ContextOptions = { tolerateInvalidSettings: true };

  /** While a delivery run works, a first signal says what happens next (bin/ exits on a second one). */
  const announceStop = (out: Output) => {
    const onAbort = () =>
      out.warn(`${String(stop.reason ?? 'signal')} received: finishing the attempts in flight, then stopping (send it again to quit at once).`);
    stop.addEventListener('abort', onAbort, { once: true });
    return () => stop.removeEventListener('abort', onAbort);
  };

  const program = new Command('license-manager')
    .description('Sends signed webhooks for expiring, expired and past-update-support licenses.')
    .version(packageVersion(), '-V, --version')
    .option('-c, --config <file>', 'use this config file instead of looking for one in the current directory')
    .option('--json', 'machine-readable output on stdout, and nothing else there')
    .option('-q, --quiet', 'print nothing on success (problems still go to stderr)')
    .option('--no-color', 'no colour (NO_COLOR is honoured too)')
    .option('--verbose', 'show stack traces of unexpected errors')
    .showHelpAfterError('(add --help for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    });

  program
    .command('process-expirations')
    .description('find expiring, expired and past-update-support licenses and send their webhooks (the cron job)')
    .addOption(new Option('--now <iso>', 'apply the rules at this instant instead of the current time (UTC)').argParser(runInstant))
    .option('--dry-run', 'print the events that would be sent; change nothing')
    .addOption(
      new Option(
        '--mark-sent-through <date>',
        "send nothing: record as sent what Botble's own cron job sent when it last ran on this day (once, when switching from it)",
      )
        .argParser(calendarDate)
        .conflicts('announceSince'),
    )
    .addOption(
      new Option(
        '--announce-since <date>',
        'this run only: announce expiries (and update-support ends) from this date on, even those older than lookbackDays, that were never announced (after an outage longer than lookbackDays)',
      ).argParser(calendarDate),
    )
    .addHelpText(
      'after',
      examples(
        'license-manager process-expirations                 # the daily cron job',
        'license-manager process-expirations --dry-run       # what would be sent, changing nothing',
        'license-manager process-expirations --now 2025-01-15T08:00:00Z --json',
        "license-manager process-expirations --mark-sent-through 2025-01-14 --dry-run   # Botble's job last ran on the 14th",
        'license-manager process-expirations --announce-since 2025-01-02 --dry-run   # expiries a long outage left unannounced',
      ) +
        '\n\nExit status: 0 all sent; 3 a delivery was abandoned; 4 nothing abandoned, but deliveries wait on a failing receiver' +
        '\n(deferred to a later run until webhooks.retryWindowHours, or parked after a 410 Gone); 1 failed or stopped early.' +
        '\nDeferred deliveries that are due go first, one attempt each per run (see "Retries across runs" in the README).',
    )
    .action((options: { now?: Date; dryRun?: boolean; markSentThrough?: string; announceSince?: string }, command: Command) =>
      withDatabase(command, async (context, out) => {
        if (options.markSentThrough !== undefined) {
          const { markSent } = await import('../commands/mark-sent.js');
          const { printMarkSent } = await import('./format.js');
          const result = await markSent(context, {
            through: options.markSentThrough,
            now: options.now,
            dryRun: options.dryRun,
            onWarning: (text) => out.warn(text),
          });
          if (out.options.json) out.json({ database: context.databaseFile, ...result });
          else printMarkSent(out, result);
          return EXIT.ok;
        }
        const { lockedMessage, processExpirations, waitingCount } = await import('../commands/process-expirations.js');
        const { webhookTarget } = await import('../commands/context.js');
        const { printProcessExpirations, printAbandoned, printDisabledButDue, printExpiredWithoutEvent, printNoLicenses, printPlan, printWaiting } =
          await import('./format.js');
        const { runMonitor } = await import('../commands/monitoring.js');
        const progress = deliveryProgress(out, 'delivering');
        const stopAnnounced = announceStop(out);
        const result = await processExpirations(context, {
          monitor: runMonitor(context, { version: packageVersion(), onWarning: (text) => out.warn(text) }),
          tracing,
          now: options.now,
          dryRun: options.dryRun,
          announceSince: options.announceSince,
          leaseMs: leaseFromEnv(io.env),
          stop,
          onWarning: (text) => out.warn(text),
          onPlan: (plan) => printPlan(out, plan, Boolean(options.dryRun), webhookTarget(context)),
          onProgress: progress.onProgress,
        }).finally(() => {
          progress.end();
          stopAnnounced();
        });
        if (out.options.json) out.json({ database: context.databaseFile, ...result });
        else printProcessExpirations(out, result, context.databaseFile);
        printNoLicenses(out, result, context.databaseFile);
        printDisabledButDue(out, result);
        printExpiredWithoutEvent(out, result);
        printAbandoned(out, result.abandonedDeliveries, result.abandoned);
        printWaiting(out, result);
        if (stop.aborted) out.warn(`stopped early: left ${plural(result.left, 'delivery')} pending for the next run (nothing is lost).`);
        if (result.locked > 0) out.warn(lockedMessage(result.locked));
        return runExitCode({ abandoned: result.abandoned, waiting: waitingCount(result), stopped: stop.aborted, locked: result.locked });
      }),
    );

  program
    .command('send-test-event')
    .description('send one sample event now and show what was sent and what came back')
    .option('--url <url>', 'send here instead of the configured webhook URL')
    .option('--secret <secret>', 'sign with this secret instead of the configured one')
    .addOption(secretEnvOption('sign with the secret in this environment variable instead'))
    .addOption(new Option('--event <type>', 'event type').choices(NOTICE_TYPES).default('license.expiring'))
    .option('--license <code>', 'use this license from the database instead of the sample payload')
    .option('--endpoint <name>', 'send to this endpoint, with its URL, secret, headers and signing (see "endpoints list")')
    .addHelpText(
      'after',
      examples(
        'license-manager send-test-event --url https://abc123.ngrok.io/webhook --secret s3cret',
        'license-manager send-test-event --url https://abc123.ngrok.io/webhook --secret-env RECEIVER_SECRET   # not visible in ps',
        'license-manager send-test-event --event license.expired --license LIC-0001',
        'license-manager send-test-event --event license.expired_reminder --license LIC-0001',
      ),
    )
    .action(
      (
        options: { url?: string; secret?: string; secretEnv?: string; event: (typeof NOTICE_TYPES)[number]; license?: string; endpoint?: string },
        command: Command,
      ) => {
        const send = async (context: TestEventContext, out: Output) => {
          const { sendTestEvent } = await import('../commands/send-test-event.js');
          const { printTestEvent } = await import('./format.js');
          const result = await sendTestEvent(context, { ...options, secret: givenSecret(options, io.env) });
          if (out.options.json) out.json(result);
          else printTestEvent(out, result);
          const abandoned = result.delivery.status === 'delivered' ? 0 : 1;
          if (abandoned && out.options.quiet && !out.options.json) out.warn(`test event not delivered: ${result.delivery.lastError ?? 'unknown error'}`);
          return runExitCode({ abandoned });
        };
        // The sample event to a given --url needs no database: none is created, an existing one is only read (its settings).
        if (options.url === undefined || options.license !== undefined || options.endpoint !== undefined) return withDatabase(command, send);
        return act(command, async (out, flags) => {
          const { readConfigOnly } = await import('../commands/context.js');
          const context = await readConfigOnly({ config: flags.config, cwd: io.cwd, env: io.env });
          for (const warning of context.warnings) out.warn(warning);
          return send(context, out);
        });
      },
    );

  const settings = program.command('settings').description('view and change operator settings (stored in the database)').addHelpText('after', SETTINGS_HELP);
  settings
    .command('list')
    .description("each setting's effective value and where it came from")
    .addHelpText('after', examples('license-manager settings list', 'license-manager settings list --json'))
    .action((_options: unknown, command: Command) =>
      withDatabase(
        command,
        async (context, out) => {
          const { settingsList, unknownProducts } = await import('../commands/settings.js');
          const { printSettings, typedSetting } = await import('./format.js');
          const list = settingsList(context);
          for (const warning of await unknownProducts(context)) out.warn(warning);
          if (out.options.json) out.json(list.map(typedSetting));
          else printSettings(out, list);
        },
        tolerant,
      ),
    );
  settings
    .command('get <key>')
    .description("print one setting's effective value")
    .option('--reveal', 'print the webhook secret itself instead of ******** (to copy it into your receiver)')
    .addHelpText(
      'after',
      examples('license-manager settings get webhook-url', 'license-manager settings get warning-days', 'license-manager settings get webhook-secret --reveal'),
    )
    .action((key: string, options: { reveal?: boolean }, command: Command) =>
      withDatabase(
        command,
        async (context, out) => {
          const { settingsGet } = await import('../commands/settings.js');
          const { typedSetting } = await import('./format.js');
          const setting = settingsGet(context, key, options);
          if (out.options.json) out.json(typedSetting(setting));
          else out.result(setting.value ?? '');
          if (setting.invalid)
            out.warn(
              `the stored ${setting.key} is invalid and not used (${setting.invalid}); fix it with "${commandLine(`settings set ${setting.key} <value>`)}".`,
            );
        },
        tolerant,
      ),
    );
  settings
    .command('set <key> <value>')
    .description('validate and store a setting; a value of - is read from standard input (keeps the secret out of ps and the shell history)')
    .addHelpText(
      'after',
      examples(
        'license-manager settings set webhook-url https://example.com/webhooks/licenses',
        'license-manager settings set warning-days 14,7,1',
        'license-manager settings set after-expiry-days 3,14           # license.expired_reminder 3 and 14 days after the expiry date',
        'license-manager settings set product:PROD-001:warning-days 30,7,1',
        'license-manager settings set product:FREE-TIER:enabled false  # no notices for this product',
        'openssl rand -hex 32 | license-manager settings set webhook-secret -',
      ),
    )
    .action((key: string, value: string, _options: unknown, command: Command) =>
      withDatabase(
        command,
        async (context, out) => {
          const { settingsSet } = await import('../commands/settings.js');
          const given = value === '-' ? await valueFromStdin(io, key, stop) : value;
          const change = await settingsSet(context, key, given, new Date());
          if (out.options.json) out.json(change);
          else out.info(`${change.key} = ${change.stored}`);
          if (change.shadowedBy) out.warn(`${change.shadowedBy} is set and overrides the stored ${change.key} until it is unset.`);
          for (const warning of change.warnings ?? []) out.warn(warning);
        },
        tolerant,
      ),
    );
  settings
    .command('unset <key>')
    .description('remove a stored setting (the config file or default applies again)')
    .addHelpText('after', examples('license-manager settings unset webhook-url'))
    .action((key: string, _options: unknown, command: Command) =>
      withDatabase(
        command,
        async (context, out) => {
          const { settingsUnset } = await import('../commands/settings.js');
          const change = await settingsUnset(context, key);
          if (out.options.json) out.json(change);
          else out.info(change.removed ? `${change.key} unset` : `${change.key} was not set in the database; nothing changed`);
        },
        tolerant,
      ),
    );

  const licenses = program
    .command('licenses')
    .description('load or view licenses')
    .addHelpText(
      'after',
      examples(
        'license-manager licenses import examples/licenses.csv     # JSON array, NDJSON or CSV',
        'license-manager licenses list --expiring-within 30',
        'license-manager licenses show LIC-0001',
        'license-manager licenses forecast --days 14',
      ),
    );
  licenses
    .command('import <file>')
    .description('upsert licenses by license_code from a JSON array, NDJSON or CSV file: all rows or none (creates the SQLite database when missing)')
    .addHelpText(
      'after',
      `${examples('license-manager licenses import examples/licenses.csv', 'license-manager licenses import export.ndjson')}\n${IMPORT_HELP}`,
    )
    .action(async (file: string, _options: unknown, command: Command) => {
      // An unreadable file is said before the database is opened, so a failed import creates no database.
      const { checkImportFile } = await import('../import/import-file.js');
      const checked = await checkImportFile(path.resolve(io.cwd, file), { given: file, cwd: io.cwd }).then(
        () => undefined,
        (error: unknown) => error,
      );
      if (checked !== undefined) return act(command, () => Promise.reject(checked));
      return withDatabase(
        command,
        async (context, out) => {
          const { importLicenses } = await import('../commands/licenses.js');
          const { printImport } = await import('./format.js');
          const result = await importLicenses(context, file, new Date(), io.cwd);
          if (out.options.json) out.json(result);
          else printImport(out, result);
        },
        { createDatabase: true },
      );
    });
  licenses
    .command('list')
    .description('list licenses')
    .addHelpText('after', examples('license-manager licenses list --status active', 'license-manager licenses list --expiring-within 30 --json'))
    .addOption(new Option('--status <status>', 'only this status').choices(LICENSE_STATUSES))
    .addOption(
      new Option(
        '--expiring-within <days>',
        'only licenses whose expiry is still ahead and at most this many calendar days after today in the business time zone, as process-expirations counts them (0: later today)',
      ).argParser(wholeNumber(0, MAX_DAYS)),
    )
    .addOption(new Option('--limit <n>', 'at most this many').argParser(wholeNumber(1, MAX_LIMIT)))
    .addOption(new Option('--now <iso>', 'measure --expiring-within from this instant (and its date in the business time zone)').argParser(runInstant))
    .action((options: { status?: (typeof LICENSE_STATUSES)[number]; expiringWithin?: number; limit?: number; now?: Date }, command: Command) =>
      withDatabase(command, async (context, out) => {
        const { listLicenses } = await import('../commands/licenses.js');
        const { printLicenses } = await import('./format.js');
        const rows = await listLicenses(context, {
          status: options.status,
          expiringWithinDays: options.expiringWithin,
          limit: options.limit,
          now: options.now ?? new Date(),
        });
        if (out.options.json) return out.json(rows);
        // Importing is the advice only when there is nothing at all, and only where licenses are imported.
        const empty = rows.length === 0 && !(await context.licenses.hasAny(context.db));
        const none = !empty
          ? 'No licenses match.'
          : context.licenses.kind === 'botble'
            ? `No licenses in ${context.licenses.description}.`
            : `No licenses in ${context.databaseFile} yet. Load some with "${commandLine('licenses import <file>')}".`;
        printLicenses(out, rows, none);
      }),
    );

  licenses
    .command('show <code>')
    .description('one license: its dates, status, product schedule, the notices sent (when, outcome) and those still to come with their dates')
    .addOption(new Option('--now <iso>', 'list the notices to come from this instant instead of the current time').argParser(runInstant))
    .addHelpText('after', examples('license-manager licenses show LIC-0001', 'license-manager licenses show LIC-0001 --json'))
    .action((code: string, options: { now?: Date }, command: Command) =>
      withDatabase(command, async (context, out) => {
        const { licensesShow } = await import('../commands/reminders.js');
        const { printLicenseShow } = await import('./reminders-format.js');
        const result = await licensesShow(context, code, options.now ?? new Date());
        if (out.options.json) out.json(result);
        else printLicenseShow(out, result);
      }),
    );
  licenses
    .command('forecast')
    .description(
      'how many notices of each type the daily runs would send on each coming day, as a bar chart (the same rules as process-expirations; changes nothing)',
    )
    .addOption(new Option('--days <n>', 'how many days (default 30)').argParser(wholeNumber(1, 366)))
    .addOption(new Option('--from <date>', 'the first day, in the business time zone (default: today there)').argParser(calendarDate))
    .option('--product <id>', "only this product's licenses (Botble mode: the product's reference id)")
    .option('--warning-days <days>', 'forecast with these warning days instead of the warning-days setting, e.g. 30,7,1 (nothing is changed)')
    .addOption(new Option('--now <iso>', 'forecast from the date of this instant in the business time zone').argParser(runInstant))
    .addHelpText(
      'after',
      examples(
        'license-manager licenses forecast                       # the next 30 days',
        'license-manager licenses forecast --from 2025-03-01 --days 14 --product PROD-001',
        'license-manager licenses forecast --warning-days 30,7,1   # what a warning-days change would do, changing nothing',
        'license-manager licenses forecast --json                # { "days": [ { "date": "YYYY-MM-DD", "counts": { ... } } ] }',
      ),
    )
    .action((options: { days?: number; from?: string; product?: string; warningDays?: string; now?: Date }, command: Command) =>
      withDatabase(command, async (context, out) => {
        const { licensesForecast } = await import('../commands/reminders.js');
        const { printForecast } = await import('./reminders-format.js');
        const result = await licensesForecast(context, { ...options, now: options.now ?? new Date() });
        for (const warning of result.warnings) out.warn(warning);
        if (out.options.json) out.json({ days: result.days });
        else printForecast(out, result, options.warningDays);
      }),
    );

  const endpoints = program
    .command('endpoints')
    .description('the receivers beside default (webhooks.url/secret): list, add, change, enable, disable, remove, rotate their secret')
    .addHelpText(
      'after',
      examples(
        'license-manager endpoints list',
        'license-manager endpoints add crm --url https://crm.example.com/hooks --secret s3cret --events license.expired',
      ),
    );
  endpoints
    .command('list')
    .description('every endpoint, where it is defined (default, config file or database) and its deliveries by status')
    .addHelpText('after', examples('license-manager endpoints list', 'license-manager endpoints list --json'))
    .action((_options: unknown, command: Command) =>
      withDatabase(command, async (context, out) => {
        const { endpointsList } = await import('../commands/endpoints.js');
        const { printEndpoints } = await import('./format.js');
        const list = await endpointsList(context, new Date());
        if (out.options.json) out.json(list);
        else printEndpoints(out, list);
      }),
    );
  endpoints
    .command('show <name>')
    .description('one endpoint: every field (secrets and header values masked) and its deliveries by status')
    .addHelpText('after', examples('license-manager endpoints show crm'))
    .action((name: string, _options: unknown, command: Command) =>
      withDatabase(command, async (context, out) => {
        const { endpointsShow } = await import('../commands/endpoints.js');
        const { printEndpoint } = await import('./format.js');
        const endpoint = await endpointsShow(context, name, new Date());
        if (out.options.json) out.json(endpoint);
        else printEndpoint(out, endpoint);
      }),
    );
  interface EndpointFlags {
    url?: string;
    secret?: string | false;
    events?: string[];
    allEvents?: boolean;
    header?: Record<string, string>;
    headers?: false;
    maxInFlight?: number;
    signing?: string;
    disabled?: boolean;
  }
  const endpointInput = (flags: EndpointFlags) => ({
    url: flags.url,
    secret: flags.secret === false ? null : flags.secret,
    events: flags.allEvents ? null : flags.events,
    headers: flags.headers === false ? {} : flags.header,
    maxInFlight: flags.maxInFlight,
    signing: flags.signing,
    ...(flags.disabled ? { enabled: false } : {}),
  });
  const endpointFields = (command: Command) =>
    command
      .option('--url <url>', 'where its events are POSTed (http: or https:)')
      .option('--secret <secret>', 'its HMAC key; a whsec_<base64> secret is decoded for Standard Webhooks')
      .addOption(
        new Option('--events <types>', `the event types it takes, comma-separated (${EVENT_TYPES.join(', ')}); every type when left out`).argParser(
          endpointEvents,
        ),
      )
      .addOption(new Option('--header <"Name: value">', 'an extra request header (repeatable), e.g. a gateway API key').argParser(endpointHeader))
      .addOption(new Option('--max-in-flight <n>', "attempts in flight at once to it (the run's concurrency when left out)").argParser(endpointMaxInFlight))
      .addOption(new Option('--signing <scheme>', 'botble (X-Webhook-Signature, default), standard (Standard Webhooks) or both').argParser(endpointSigning));
  endpointFields(endpoints.command('add <name>').description('add an endpoint (stored in the database); it receives the events recorded from now on'))
    .option('--disabled', 'add it disabled: its deliveries are parked until "endpoints enable"')
    .addHelpText(
      'after',
      examples(
        'license-manager endpoints add crm --url https://crm.example.com/hooks --secret s3cret --events license.expired',
        'license-manager endpoints add chat --url https://chat.example.com/in/abc --signing standard --secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw --header "X-Api-Key: k-123"',
      ),
    )
    .action((name: string, flags: EndpointFlags, command: Command) =>
      withDatabase(command, async (context, out) => {
        const { endpointsAdd } = await import('../commands/endpoints.js');
        const { printEndpoint } = await import('./format.js');
        const change = await endpointsAdd(context, name, endpointInput(flags), new Date());
        if (out.options.json) out.json(change.endpoint);
        else {
          out.info(`Added endpoint ${name}; it receives the events recorded from now on.`);
          printEndpoint(out, change.endpoint);
        }
      }),
    );
  endpointFields(
    endpoints
      .command('update <name>')
      .description('change a stored endpoint (the fields given; a new --secret replaces the old one at once, see rotate-secret)'),
  )
    .option('--no-secret', 'remove its secret (requests go unsigned)')
    .option('--all-events', 'take every event type again')
    .option('--no-headers', 'remove its extra headers (--header replaces them all)')
    .addHelpText(
      'after',
      examples(
        'license-manager endpoints update crm --events license.expired,license.expiring',
        'license-manager endpoints update crm --header "X-Api-Key: new-key"',
      ),
    )
    .action((name: string, flags: EndpointFlags, command: Command) =>
      withDatabase(command, async (context, out) => {
        const { endpointsUpdate } = await import('../commands/endpoints.js');
        const { printEndpoint } = await import('./format.js');
        if (flags.events && flags.allEvents) throw usageError('Give --events or --all-events, not both.');
        if (flags.header && flags.headers === false) throw usageError('Give --header or --no-headers, not both.');
        const change = await endpointsUpdate(context, name, endpointInput(flags), new Date());
        if (out.options.json) out.json(change.endpoint);
        else {
          out.info(`Updated endpoint ${name}.`);
          printEndpoint(out, change.endpoint);
        }
      }),
    );
  endpoints
    .command('enable <name>')
    .description('enable an endpoint: its parked deliveries go out with the next run')
    .option('--discard-parked', 'drop its parked deliveries instead (says how many)')
    .addHelpText('after', examples('license-manager endpoints enable crm', 'license-manager endpoints enable crm --discard-parked'))
    .action((name: string, flags: { discardParked?: boolean }, command: Command) =>
      withDatabase(command, async (context, out) => {
        const { endpointsSetEnabled } = await import('../commands/endpoints.js');
        const result = await endpointsSetEnabled(context, name, true, new Date(), flags);
        if (out.options.json) out.json(result);
        else {
          out.info(`Enabled endpoint ${name}.`);
          if (result.discarded > 0) out.info(`Dropped ${result.discarded} parked ${result.discarded === 1 ? 'delivery' : 'deliveries'}.`);
          if (result.parked > 0)
            out.info(
              `${result.parked} parked ${result.parked === 1 ? 'delivery' : 'deliveries'} go${result.parked === 1 ? 'es' : ''} out with the next process-expirations.`,
            );
        }
      }),
    );
  endpoints
    .command('disable <name>')
    .description('disable an endpoint: its deliveries are parked (kept, not sent) until it is enabled again')
    .addHelpText('after', examples('license-manager endpoints disable crm'))
    .action((name: string, _options: unknown, command: Command) =>
      withDatabase(command, async (context, out) => {
        const { endpointsSetEnabled } = await import('../commands/endpoints.js');
        const result = await endpointsSetEnabled(context, name, false, new Date());
        if (out.options.json) out.json(result);
        else
          out.info(
            `Disabled endpoint ${name}${result.parked > 0 ? `; ${result.parked} undelivered ${result.parked === 1 ? 'delivery' : 'deliveries'} parked` : ''}.`,
          );
      }),
    );
  endpoints
    .command('remove <name>')
    .description('remove a stored endpoint; with undelivered deliveries only with --force (they are dropped; delivered ones stay in the log)')
    .option('--force', 'remove it even though undelivered deliveries are dropped')
    .addHelpText('after', examples('license-manager endpoints remove crm', 'license-manager endpoints remove crm --force'))
    .action((name: string, flags: { force?: boolean }, command: Command) =>
      withDatabase(command, async (context, out) => {
        const { endpointsRemove } = await import('../commands/endpoints.js');
        const result = await endpointsRemove(context, name, new Date(), flags);
        if (out.options.json) out.json(result);
        else
          out.info(
            `Removed endpoint ${name}${result.dropped > 0 ? `; dropped ${result.dropped} undelivered ${result.dropped === 1 ? 'delivery' : 'deliveries'}` : ''}.`,
          );
      }),
    );
  endpoints
    .command('rotate-secret <name>')
    .description('make a new secret current (generated from 32 random bytes unless given; printed once); the old one stays valid for --keep-previous')
    .option('--secret <secret>', 'the new secret (generated when left out)')
    .addOption(
      new Option(
        '--keep-previous <duration>',
        'how long the old secret stays valid: 24h (default), 90m, 7d, 3600s; 0 revokes every earlier secret at once',
      ).argParser(keepPrevious),
    )
    .addHelpText(
      'after',
      examples('license-manager endpoints rotate-secret crm', 'license-manager endpoints rotate-secret crm --keep-previous 0   # a leaked secret'),
    )
    .action((name: string, flags: { secret?: string; keepPrevious?: number }, command: Command) =>
      withDatabase(command, async (context, out) => {
        const { endpointsRotateSecret } = await import('../commands/endpoints.js');
        const result = await endpointsRotateSecret(context, name, new Date(), { secret: flags.secret, keepPreviousMs: flags.keepPrevious });
        if (out.options.json) out.json(result);
        else {
          out.result(result.secret);
          out.info(
            result.previousValidUntil
              ? `This is the new secret of ${name}, shown once. The old one stays valid until ${result.previousValidUntil}: update the receiver before then.`
              : `This is the new secret of ${name}, shown once. Every earlier secret is revoked now.`,
          );
        }
      }),
    );

  const deliveries = program
    .command('deliveries')
    .description('the delivery log, re-sending, and statistics per endpoint')
    .addHelpText(
      'after',
      examples(
        'license-manager deliveries list --status abandoned',
        'license-manager deliveries show 42',
        'license-manager deliveries retry --abandoned --dry-run',
        'license-manager deliveries stats --since 24h',
      ),
    );
  deliveries
    .command('list')
    .description('deliveries, newest first')
    .addHelpText(
      'after',
      examples(
        'license-manager deliveries list --status abandoned',
        'license-manager deliveries list --status deferred   # waiting for a later run: next attempt and reason',
        'license-manager deliveries list --license LIC-0003 --since 2025-01-01',
      ),
    )
    .addOption(
      new Option('--status <status>', 'only this status (deferred: waits for a later run; parked: its endpoint is disabled)').choices(DELIVERY_STATUSES),
    )
    .addOption(new Option('--event <type>', 'only this event type').choices(NOTICE_TYPES))
    .option('--license <code>', 'only this license')
    .option('--endpoint <name>', 'only deliveries to this endpoint (see "endpoints list")')
    .addOption(new Option('--since <iso>', 'only deliveries recorded at or after this time').argParser(isoDate))
    .addOption(
      new Option('--limit <n>', `at most this many (default ${DEFAULT_LIST_LIMIT} in text; every row with --json)`).argParser(wholeNumber(1, MAX_LIMIT)),
    )
    .addOption(new Option('--all', 'every matching row').conflicts('limit'))
    .action(
      (
        options: {
          status?: DeliveryStatus;
          event?: (typeof NOTICE_TYPES)[number];
          license?: string;
          endpoint?: string;
          since?: Date;
          limit?: number;
          all?: boolean;
        },
        command: Command,
      ) =>
        withDatabase(command, async (context, out) => {
          const { deliveriesList } = await import('../commands/deliveries.js');
          const { printDeliveries } = await import('./format.js');
          // A script reading --json gets every row unless it asks for fewer; a terminal gets a screenful and is told so.
          const limit = options.all ? undefined : (options.limit ?? (out.options.json ? undefined : DEFAULT_LIST_LIMIT));
          const list = await deliveriesList(context, {
            status: options.status,
            eventType: options.event,
            licenseCode: options.license,
            endpoint: options.endpoint,
            since: options.since,
            limit,
          });
          if (out.options.json) out.json(list.rows);
          else printDeliveries(out, list);
        }),
    );
  deliveries
    .command('show')
    .description('the body sent and every attempt of one delivery')
    .argument('<id>', 'delivery id', (text: string) => deliveryIds(text)[0]!)
    .addHelpText('after', examples('license-manager deliveries show 42'))
    .action((id: number, _options: unknown, command: Command) =>
      withDatabase(command, async (context, out) => {
        const { deliveriesShow } = await import('../commands/deliveries.js');
        const { printDelivery } = await import('./format.js');
        const found = await deliveriesShow(context, id);
        if (out.options.json) out.json(found);
        else printDelivery(out, found);
      }),
    );
  deliveries
    .command('retry')
    .description(
      're-send abandoned deliveries, deferred ones now (by id), or delivered and superseded ones with --force (same event id and body, current URL and secret, full retry policy); each license is read again first, and a notice it contradicts now is superseded, not sent',
    )
    .argument('[ids...]', 'delivery ids', deliveryIds)
    .option('--abandoned', 'every abandoned delivery')
    .option('--endpoint <name>', 'with --abandoned: only those to this endpoint')
    .option(
      '--force',
      'with ids: re-send delivered ones too (a receiver that answered 2xx and lost the event), and superseded ones, without reading their licenses again',
    )
    .addOption(new Option('--since <iso>', 'with --abandoned: only those recorded at or after this time').argParser(isoDate))
    .option('--dry-run', 'show what would be re-sent')
    .addHelpText(
      'after',
      examples(
        'license-manager deliveries retry 41 42',
        'license-manager deliveries retry 57   # a deferred one: now, not at its next attempt time',
        'license-manager deliveries retry --abandoned --since 2025-01-14 --dry-run',
        'license-manager deliveries retry 17 --force   # delivered, but lost by the receiver',
        'license-manager deliveries retry 23 --force   # superseded (see "deliveries show 23"), to be sent anyway',
      ),
    )
    .action(
      (ids: number[] | undefined, options: { abandoned?: boolean; endpoint?: string; force?: boolean; since?: Date; dryRun?: boolean }, command: Command) =>
        withDatabase(command, async (context, out) => {
          const { deliveriesRetry } = await import('../commands/deliveries.js');
          const { printRetry, printAbandoned, printWaiting } = await import('./format.js');
          const progress = deliveryProgress(out, 're-sending');
          const stopAnnounced = announceStop(out);
          const result = await deliveriesRetry(context, {
            ids: ids ?? [],
            ...options,
            leaseMs: leaseFromEnv(io.env),
            stop,
            onProgress: progress.onProgress,
            onWarning: (text) => out.warn(text),
          }).finally(() => {
            progress.end();
            stopAnnounced();
          });
          if (out.options.json) out.json(result);
          else printRetry(out, result);
          printAbandoned(out, result.abandonedDeliveries, result.abandoned);
          // What this re-send deferred or parked (its receiver still fails), said as a run says it.
          if (result.deferred + result.parked > 0) printWaiting(out, result);
          if (stop.aborted)
            out.warn(
              `stopped early: left ${plural(result.left, 'delivery')} to re-send (run the same retry again; released ones go out with the next process-expirations).`,
            );
          return runExitCode({ abandoned: result.abandoned, waiting: result.deferred + result.parked, stopped: stop.aborted });
        }),
    );

  deliveries
    .command('stats')
    .description(
      'per endpoint: success rate, attempts, median and 95th percentile response time, error classes, last success, consecutive failures, what still waits',
    )
    .addOption(
      new Option('--since <duration>', 'only attempts of the last 30m, 24h, 7d or 4w count towards rates, times and errors (default: all)').argParser(
        pastDuration,
      ),
    )
    .option('--endpoint <name>', 'only this endpoint (see "endpoints list")')
    .addHelpText(
      'after',
      examples(
        'license-manager deliveries stats',
        'license-manager deliveries stats --since 24h --endpoint crm',
        'license-manager deliveries stats --since 7d --json',
      ),
    )
    .action((options: { since?: number; endpoint?: string }, command: Command) =>
      withDatabase(command, async (context, out) => {
        const { deliveriesStats } = await import('../commands/deliveries-stats.js');
        const { printDeliveriesStats } = await import('./format.js');
        const now = new Date();
        const stats = await deliveriesStats(context, {
          now,
          endpoint: options.endpoint,
          since: options.since === undefined ? undefined : new Date(now.getTime() - options.since),
        });
        if (out.options.json) out.json(stats);
        else printDeliveriesStats(out, stats);
      }),
    );

  program
    .command('listen')
    .description('a local receiver that prints each webhook and whether its signature verifies (pair with ngrok or send-test-event --url)')
    .addOption(new Option('--port <port>', 'port to listen on (0 picks a free one)').argParser(wholeNumber(0, 65535)).default(8000))
    .addOption(new Option('--host <host>', 'address to listen on').argParser(listenHost).default('127.0.0.1'))
    .option(
      '--secret <secret>',
      'check signatures with this secret (default: the configured one); repeat it to accept several (a rotation: new and old)',
      collectSecret,
    )
    .addOption(secretEnvOption('check signatures with the secret in this environment variable'))
    .addOption(
      new Option('--respond <status>', 'answer every request with this HTTP status, e.g. 500 to rehearse retries (with a secret, a bad signature gets 401)')
        .argParser(wholeNumber(200, 599))
        .default(200),
    )
    .addOption(new Option('--max-body <bytes>', 'answer 413 to bodies larger than this (default 1048576)').argParser(wholeNumber(1, 2 ** 31)))
    .addOption(
      new Option('--max-connections <n>', 'open connections at most; at the limit the oldest is closed for each new one (default 100)').argParser(
        wholeNumber(1, 10_000),
      ),
    )
    .addHelpText(
      'after',
      `${examples(
        'license-manager listen --secret s3cret                  # then, in another terminal:',
        'license-manager send-test-event --url http://127.0.0.1:8000/webhook --secret s3cret',
        'RECEIVER_SECRET=s3cret license-manager listen --secret-env RECEIVER_SECRET   # not visible in ps',
        'ngrok http 8000                                         # to receive from another machine',
        'license-manager listen --respond 503                    # rehearse retries',
        'license-manager listen --port 0 --json                  # first line: {"listening":"http://127.0.0.1:<port>/",...}',
      )}\nA development tool, not a production receiver: a client that takes over 10 s to send its headers or 30 s for the\nwhole request is cut off, and at most --max-connections are open at once.\n`,
    )
    .action(
      (
        options: { port: number; host: string; secret?: string[]; secretEnv?: string; respond: number; maxBody?: number; maxConnections?: number },
        command: Command,
      ) =>
        act(command, async (out, flags) => {
          // The config, and an existing database read-only: a receiver creates no files.
          const { readConfigOnly } = await import('../commands/context.js');
          const context = await readConfigOnly({ config: flags.config, cwd: io.cwd, env: io.env });
          for (const warning of context.warnings) out.warn(warning);
          const { listen } = await import('../commands/listen.js');
          const { printReceivedWebhook } = await import('./format.js');
          const [secret = null, ...moreSecrets] =
            givenSecrets(options, io.env) ?? (context.config.webhooks.secret === null ? [] : [context.config.webhooks.secret]);
          const listener = await listen({ ...options, secret, moreSecrets, onNotice: (text) => out.warn(text) }, (request) =>
            printReceivedWebhook(out, request),
          ).catch((error: unknown) => {
            throw unusableHost(options.host, error);
          });
          // A script learns the address (with --port 0, the port) from the first line, before any request.
          if (out.options.json) io.stdout.write(`${JSON.stringify({ listening: listener.url, signaturesChecked: Boolean(secret) })}\n`);
          else out.result(`listening on ${listener.url} (Ctrl-C to stop)${secret ? '' : ' - no secret set, signatures are not checked'}`);
          // Ctrl-C is how `listen` is meant to end: exit 0, no warning.
          await new Promise<void>((resolve) => (stop.aborted ? resolve() : stop.addEventListener('abort', () => resolve(), { once: true })));
          await listener.close();
        }),
    );

  program
    .command('verify')
    .description('check a webhook signature, and say why it fails (re-serialised body, sha256= prefix, ...)')
    .option(
      '--secret <secret>',
      'the webhook secret (default: the configured one, as listen uses); repeat it to try several (says which matched)',
      collectSecret,
    )
    .addOption(secretEnvOption('the webhook secret is in this environment variable'))
    .option('--signature <value>', 'the X-Webhook-Signature value the receiver got, or the webhook-signature one (v1,<base64>, with --id and --timestamp)')
    .option('--id <webhook-id>', 'Standard Webhooks: the webhook-id header')
    .option('--timestamp <seconds>', 'Standard Webhooks: the webhook-timestamp header')
    .option('--file <body>', 'the raw body as received, a regular file (default: standard input)')
    .addOption(new Option('--max-body <bytes>', 'refuse bodies larger than this (default 1048576)').argParser(wholeNumber(1, 2 ** 31)))
    .addHelpText(
      'after',
      examples(
        'license-manager verify --secret s3cret --signature 5d41402a... --file body.json',
        'pbpaste | license-manager verify --secret s3cret --signature 5d41402a...',
        'license-manager -c /etc/license-manager/config.json verify --signature 5d41402a... --file body.json   # the configured secret',
      ),
    )
    .action(
      (
        options: { secret?: string[]; secretEnv?: string; signature?: string; id?: string; timestamp?: string; file?: string; maxBody?: number },
        command: Command,
      ) =>
        act(command, async (out, flags) => {
          const { verifyCommand } = await import('../commands/verify.js');
          const configuredSecret = async () => {
            // The secret listen would use: env, settings (an existing database, read-only), config file.
            const { readConfigOnly } = await import('../commands/context.js');
            const context = await readConfigOnly({ config: flags.config, cwd: io.cwd, env: io.env });
            for (const warning of context.warnings) out.warn(warning);
            return context.config.webhooks.secret;
          };
          const secrets = givenSecrets(options, io.env);
          const result = await verifyCommand({ ...options, secrets }, { stdin: () => io.stdin ?? process.stdin, configuredSecret, stop, cwd: io.cwd });
          // One secret and Botble's header: what verify always said; otherwise which scheme and which secret matched.
          const named = (secrets?.length ?? 1) > 1 || result.scheme === 'standard';
          const { scheme, secret, ...plain } = result;
          if (out.options.json) out.json(named ? result : plain);
          else if (result.valid)
            out.info(out.paint.green(named ? `valid (${scheme === 'standard' ? 'Standard Webhooks' : 'X-Webhook-Signature'}, secret ${secret})` : 'valid'));
          else out.io.stderr.write(`${out.errPaint.red('invalid')}: ${result.explanation}\n`);
          // Like grep: 1 means "checked, and it does not match".
          return result.valid ? EXIT.ok : EXIT.failure;
        }),
    );

  program
    .command('status')
    .description(
      'is this installation working? config, database, webhook target, counts, the last runs; exit 0 ok, 3 deliveries abandoned and not re-sent, 1 the last run failed, stopped or refused to start, 2 the config or database cannot be used (or does not exist)',
    )
    .addOption(new Option('--now <iso>', 'judge the last run as of this instant instead of the current time').argParser(runInstant))
    .addOption(
      new Option(
        '--format <format>',
        'text (the default), json (as --json) or prometheus (the metrics monitoring.textfile holds, in the Prometheus text format)',
      ).choices(['text', 'json', 'prometheus']),
    )
    .addHelpText(
      'after',
      examples(
        'license-manager -c /etc/license-manager/config.json status',
        'license-manager status --json',
        'license-manager status --format prometheus   # the license_manager_* metrics on stdout; the exit status as ever',
        'license-manager status --quiet || alert   # monitoring: 1 when the cron job failed, stopped or refused, 3 while deliveries are abandoned, 2 when the config or database is unusable',
      ),
    )
    .action((options: { now?: Date; format?: 'text' | 'json' | 'prometheus' }, command: Command) =>
      withDatabase(
        command,
        async (context, out) => {
          if (options.format === 'prometheus' && out.options.json)
            throw usageError('Give --json or --format prometheus, not both: they are two formats of stdout.');
          const { status } = await import('../commands/status.js');
          const { expiredWithoutEventText, heldByGoneRunsText, printStatus } = await import('./format.js');
          const now = options.now ?? new Date();
          const result = await status(context, { now });
          if (options.format === 'prometheus') {
            const { metricsText } = await import('../commands/monitoring.js');
            // The same text as the textfile; the reason for a non-zero exit still reaches stderr.
            io.stdout.write(await metricsText(context, packageVersion(), now));
            if (result.health.exitCode !== EXIT.ok) out.warn(result.health.reason);
            return result.health.exitCode;
          }
          if (out.options.json || options.format === 'json') out.json(result);
          else printStatus(out, result);
          if (result.health.exitCode !== EXIT.ok && out.options.quiet) out.warn(result.health.reason);
          // Lost notices leave the exit code alone (the job works) but reach cron's mail under --quiet.
          if (result.expiredWithoutEvent && out.options.quiet) out.warn(expiredWithoutEventText(result.expiredWithoutEvent));
          if (result.heldByGoneRuns > 0 && out.options.quiet) out.warn(heldByGoneRunsText(result.heldByGoneRuns));
          return result.health.exitCode;
        },
        tolerant,
      ),
    );

  program
    .command('migrate')
    .description('bring the database schema up to date (on SQLite other commands do this on their own; on PostgreSQL or MySQL only migrate does)')
    .addHelpText(
      'after',
      examples(
        'license-manager migrate',
        'LICENSE_MANAGER_DB=/var/lib/license-manager/db.sqlite license-manager migrate',
        "LICENSE_MANAGER_DB='postgres://app:secret@db:5432/licenses' license-manager migrate   # creates the tables on a server",
      ),
    )
    .action((_options: unknown, command: Command) =>
      withDatabase(
        command,
        async (context, out) => {
          const applied = context.migrationsApplied;
          if (out.options.json) out.json({ database: context.databaseFile, applied, upToDate: true });
          else if (applied.length === 0) out.info(`Database ${context.databaseFile} was already up to date.`);
          else out.info(`Database ${context.databaseFile}: applied ${applied.join(', ')}; it is up to date.`);
        },
        { migrate: true },
      ),
    );

  return program;
}

/** `error.type` of a command that failed by throwing: the exit code's name for ours (usage, failure), the class name otherwise. */
function errorTypeOf(error: unknown): string | undefined {
  if (error instanceof ExitError) return Object.entries(EXIT).find(([, code]) => code === error.code)?.[0] ?? String(error.code);
  return error instanceof Error ? error.name : typeof error;
}

/** A --host that names no address of this machine is bad usage (exit 2), not an unexpected failure. */
function unusableHost(host: string, error: unknown): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN')
    return usageError(`--host ${host}: no such host name. Use 127.0.0.1 (this machine only), 0.0.0.0 (every interface) or one of this machine's addresses.`, {
      cause: error,
    });
  if (code === 'EADDRNOTAVAIL')
    return usageError(
      `--host ${host} is not an address of this machine. Use 127.0.0.1 (this machine only), 0.0.0.0 (every interface) or one of its own addresses.`,
      { cause: error },
    );
  return error;
}

/** The progress bar for a delivery run; no callback at all off a terminal (counting what is claimable costs a query). */
function deliveryProgress(out: Output, label: string) {
  const bar = out.progress(label);
  const onProgress = bar.enabled
    ? ({ done, total, delivered, waiting, abandoned }: { done: number; total: number; delivered: number; waiting: number; abandoned: number }) =>
        bar.update(done, total, `${delivered} delivered, ${waiting} waiting to retry, ${abandoned} abandoned`)
    : undefined;
  return { onProgress, end: () => bar.end() };
}

/** `--secret-env <name>`: the secret from the environment, so it is not in the arguments every `ps` shows. */
function secretEnvOption(description: string): Option {
  return new Option('--secret-env <name>', `${description} (keeps it out of ps)`).conflicts('secret');
}

/** `settings set <key> -`: the value from standard input, one trailing line break dropped (echo, a here-string). */
async function valueFromStdin(io: Io, key: string, stop: AbortSignal): Promise<string> {
  const { readCapped } = await import('../read-input.js');
  const stdin = io.stdin ?? process.stdin;
  if ((stdin as { isTTY?: boolean }).isTTY) io.stderr.write(`Type the value of ${key}, then Enter and Ctrl-D:\n`);
  const bytes = await readCapped(stdin, { maxBytes: 64 * 1024, what: `the value of ${key} on standard input`, tooLarge: 'a setting is one short line.', stop });
  return bytes.toString('utf8').replace(/\r?\n$/, '');
}
