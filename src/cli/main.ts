import { createRequire } from 'node:module';
import { Command, CommanderError, Option } from 'commander';
import type { GlobalOptions, CommandContext } from '../commands/context.js';
import { EXIT, ExitError, usageError, type ExitCode } from '../errors.js';
import { dateOption } from '../commands/options.js';
import { clean, Output, type Io } from './output.js';

/** From src/cli (tests) or dist/src/cli (built), package.json is two or three folders up. */
function packageVersion(): string {
  const require = createRequire(import.meta.url);
  for (const candidate of ['../../package.json', '../../../package.json']) {
    try {
      const manifest = require(candidate) as { name?: string; version?: string };
      if (manifest.name === 'license-manager' && manifest.version) return manifest.version;
    } catch {
      // not at this depth
    }
  }
  return 'unknown';
}

interface GlobalFlags {
  config?: string;
  json?: boolean;
  quiet?: boolean;
  color?: boolean;
  verbose?: boolean;
}


const EXAMPLES = {
  process: `
Examples:
  $ license-manager process-expirations                 # the daily cron job
  $ license-manager process-expirations --dry-run       # what would be sent, changing nothing
  $ license-manager process-expirations --now 2025-01-15T08:00:00Z --json`,
  test: `
Examples:
  $ license-manager send-test-event --url https://abc123.ngrok.io/webhook --secret s3cret
  $ license-manager send-test-event --event license.expired --license LIC-0001`,
  settings: `
Settings:
  webhooks-enabled   true / false
  webhook-url        absolute http: or https: URL
  webhook-secret     HMAC-SHA256 key (always shown masked)
  warning-days       comma-separated whole days, e.g. 7,1

Precedence, highest first: environment variable, settings table, config file, default.

Examples:
  $ license-manager settings set webhook-url https://example.com/webhooks/licenses
  $ license-manager settings set webhook-secret "$(openssl rand -hex 32)"
  $ license-manager settings set webhooks-enabled true
  $ license-manager settings list`,
  licenses: `
Examples:
  $ license-manager licenses import examples/licenses.csv     # JSON array, NDJSON or CSV
  $ license-manager licenses list --expiring-within 30`,
  listen: `
Examples:
  $ license-manager listen --secret s3cret                  # then, in another terminal:
  $ license-manager send-test-event --url http://127.0.0.1:8000/ --secret s3cret
  $ ngrok http 8000                                         # to receive from another machine
  $ license-manager listen --respond 503                    # rehearse retries`,
  verify: `
Examples:
  $ license-manager verify --secret s3cret --signature 5d41402a... --file body.json
  $ pbpaste | license-manager verify --secret s3cret --signature 5d41402a...`,
  deliveries: `
Examples:
  $ license-manager deliveries list --status abandoned
  $ license-manager deliveries show 42
  $ license-manager deliveries retry --abandoned --dry-run`,
};

/** Runs the CLI and returns its exit code; only bin/ turns that into the process's. */
export async function main(argv: string[], io: Io = { stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() }): Promise<ExitCode> {
  let out = new Output(io, { json: false, quiet: false, color: true, verbose: false });
  let exitCode: ExitCode = EXIT.ok;
  const stop = new AbortController();
  // Ctrl-C is how `listen` is meant to end: no warning then.
  let listening = false;

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

  /** Reads the global flags, opens the context, runs the command; keeps the exit code it asks for. */
  const outputFor = (command: Command): GlobalFlags => {
    const flags = command.optsWithGlobals<GlobalFlags>();
    out = new Output(io, { json: Boolean(flags.json), quiet: Boolean(flags.quiet), color: flags.color !== false, verbose: Boolean(flags.verbose) });
    return flags;
  };

  const run = async <T>(command: Command, fn: (context: CommandContext, out: Output) => Promise<T>): Promise<T> => {
    const flags = outputFor(command);
    const { withContext } = await import('../commands/context.js');
    const globals: GlobalOptions = { config: flags.config, cwd: io.cwd, env: io.env };
    return withContext(globals, (context) => {
      for (const warning of context.warnings) out.warn(warning);
      return fn(context, out);
    });
  };

  program
    .command('process-expirations')
    .description('find expiring, expired and past-update-support licenses and send their webhooks (the cron job)')
    .option('--now <iso>', 'apply the rules at this instant instead of the current time (UTC)')
    .option('--dry-run', 'print the events that would be sent; change nothing')
    .addHelpText('after', EXAMPLES.process)
    .action(async (options: { now?: string; dryRun?: boolean }, command: Command) => {
      const now = dateOption('--now', options.now);
      await run(command, async (context, out) => {
        const { processExpirations } = await import('../commands/process-expirations.js');
        const { printProcessExpirations, printAbandonedToStderr } = await import('./format.js');
        const progress = deliveryProgress(out, 'delivering');
        const result = await processExpirations(context, {
          now,
          dryRun: options.dryRun,
          stop: stop.signal,
          onWarning: (text) => out.warn(text),
          onProgress: progress.onProgress,
        }).finally(() => progress.end());
        if (out.options.json) out.json({ database: context.databaseFile, ...result });
        else printProcessExpirations(out, result, context.databaseFile);
        if (stop.signal.aborted) {
          out.warn(`stopped early: left ${result.released} deliveries pending for the next run (nothing is lost).`);
          exitCode = EXIT.failure;
        } else if (result.abandoned > 0) {
          if (out.options.quiet && !out.options.json) printAbandonedToStderr(out, result.deliveries);
          exitCode = EXIT.abandoned;
        }
      });
    });

  program
    .command('send-test-event')
    .description('send one sample event now and show what was sent and what came back')
    .option('--url <url>', 'send here instead of the configured webhook URL')
    .option('--secret <secret>', 'sign with this secret instead of the configured one')
    .addOption(new Option('--event <type>', 'event type').choices(['license.expiring', 'license.expired', 'license.update_support_expired']).default('license.expiring'))
    .option('--license <code>', 'use this license from the database instead of the sample payload')
    .addHelpText('after', EXAMPLES.test)
    .action(async (options: { url?: string; secret?: string; event: string; license?: string }, command: Command) => {
      await run(command, async (context, out) => {
        const { sendTestEvent } = await import('../commands/send-test-event.js');
        const { printTestEvent } = await import('./format.js');
        const result = await sendTestEvent(context, options);
        if (out.options.json) out.json(result);
        else printTestEvent(out, result);
        if (result.delivery.status !== 'delivered') {
          if (out.options.quiet && !out.options.json) out.warn(`test event not delivered: ${result.delivery.lastError ?? 'unknown error'}`);
          exitCode = EXIT.abandoned;
        }
      });
    });

  const settings = program.command('settings').description('view and change operator settings (stored in the database)').addHelpText('after', EXAMPLES.settings);
  settings
    .command('list')
    .description("each setting's effective value and where it came from")
    .addHelpText('after', '\nExamples:\n  $ license-manager settings list\n  $ license-manager settings list --json\n'.trimEnd())
    .action(async (_options: unknown, command: Command) => {
      await run(command, async (context, out) => {
        const { settingsList } = await import('../commands/settings.js');
        const { printSettings } = await import('./format.js');
        const list = settingsList(context);
        if (out.options.json) out.json(list);
        else printSettings(out, list);
      });
    });
  settings
    .command('get <key>')
    .addHelpText('after', '\nExamples:\n  $ license-manager settings get webhook-url\n  $ license-manager settings get warning-days\n'.trimEnd())
    .description('print one setting\'s effective value')
    .action(async (key: string, _options: unknown, command: Command) => {
      await run(command, async (context, out) => {
        const { settingsGet } = await import('../commands/settings.js');
        const setting = settingsGet(context, key);
        if (out.options.json) out.json(setting);
        else out.result(setting.value ?? '');
      });
    });
  settings
    .command('set <key> <value>')
    .addHelpText('after', '\nExamples:\n  $ license-manager settings set webhook-url https://example.com/webhooks/licenses\n  $ license-manager settings set warning-days 14,7,1\n'.trimEnd())
    .description('validate and store a setting')
    .action(async (key: string, value: string, _options: unknown, command: Command) => {
      await run(command, async (context, out) => {
        const { settingsSet } = await import('../commands/settings.js');
        const change = await settingsSet(context, key, value, new Date());
        if (out.options.json) out.json(change);
        else out.info(`${change.key} = ${change.stored}`);
        if (change.shadowedBy) out.warn(`${change.shadowedBy} is set and overrides the stored ${change.key} until it is unset.`);
      });
    });
  settings
    .command('unset <key>')
    .addHelpText('after', '\nExample:\n  $ license-manager settings unset webhook-url\n'.trimEnd())
    .description('remove a stored setting (the config file or default applies again)')
    .action(async (key: string, _options: unknown, command: Command) => {
      await run(command, async (context, out) => {
        const { settingsUnset } = await import('../commands/settings.js');
        const change = await settingsUnset(context, key);
        if (out.options.json) out.json(change);
        else out.info(change.removed ? `${change.key} unset` : `${change.key} was not set in the database; nothing changed`);
      });
    });

  const licenses = program.command('licenses').description('load or view licenses').addHelpText('after', EXAMPLES.licenses);
  licenses
    .command('import <file>')
    .addHelpText('after', '\nExamples:\n  $ license-manager licenses import examples/licenses.csv\n  $ license-manager licenses import export.ndjson\n'.trimEnd())
    .description('upsert licenses by license_code from a JSON array, NDJSON or CSV file: all rows or none')
    .action(async (file: string, _options: unknown, command: Command) => {
      await run(command, async (context, out) => {
        const { importLicenses } = await import('../commands/licenses.js');
        const { printImport } = await import('./format.js');
        const result = await importLicenses(context, file, new Date());
        if (out.options.json) out.json(result);
        else printImport(out, result);
      });
    });
  licenses
    .command('list')
    .description('list licenses')
    .addHelpText('after', '\nExamples:\n  $ license-manager licenses list --status active\n  $ license-manager licenses list --expiring-within 30 --json\n'.trimEnd())
    .option('--status <status>', 'only this status: active, suspended, revoked or expired')
    .option('--expiring-within <days>', 'only licenses expiring between now and this many days from now')
    .option('--limit <n>', 'at most this many')
    .option('--now <iso>', 'measure --expiring-within from this instant')
    .action(async (options: { status?: string; expiringWithin?: string; limit?: string; now?: string }, command: Command) => {
      const now = dateOption('--now', options.now) ?? new Date();
      await run(command, async (context, out) => {
        const { listLicenses } = await import('../commands/licenses.js');
        const { printLicenses } = await import('./format.js');
        const rows = await listLicenses(context, { status: options.status, expiringWithinDays: options.expiringWithin, limit: options.limit, now });
        if (out.options.json) out.json(rows);
        else printLicenses(out, rows);
      });
    });

  const deliveries = program.command('deliveries').description('the delivery log, and re-sending').addHelpText('after', EXAMPLES.deliveries);
  deliveries
    .command('list')
    .description('deliveries, newest first')
    .addHelpText('after', '\nExamples:\n  $ license-manager deliveries list --status abandoned\n  $ license-manager deliveries list --license LIC-0003 --since 2025-01-01\n'.trimEnd())
    .option('--status <status>', 'pending, delivering, delivered or abandoned')
    .option('--event <type>', 'license.expiring, license.expired or license.update_support_expired')
    .option('--license <code>', 'only this license')
    .option('--since <iso>', 'only deliveries recorded at or after this time')
    .option('--limit <n>', 'at most this many (default 50)')
    .action(async (options: { status?: string; event?: string; license?: string; since?: string; limit?: string }, command: Command) => {
      await run(command, async (context, out) => {
        const { deliveriesList } = await import('../commands/deliveries.js');
        const { printDeliveries } = await import('./format.js');
        const rows = await deliveriesList(context, options);
        if (out.options.json) out.json(rows);
        else printDeliveries(out, rows);
      });
    });
  deliveries
    .command('show <id>')
    .addHelpText('after', '\nExample:\n  $ license-manager deliveries show 42\n'.trimEnd())
    .description('the body sent and every attempt of one delivery')
    .action(async (id: string, _options: unknown, command: Command) => {
      await run(command, async (context, out) => {
        const { deliveriesShow } = await import('../commands/deliveries.js');
        const { printDelivery } = await import('./format.js');
        const found = await deliveriesShow(context, id);
        if (out.options.json) out.json(found);
        else printDelivery(out, found);
      });
    });
  deliveries
    .command('retry [ids...]')
    .addHelpText('after', '\nExamples:\n  $ license-manager deliveries retry 41 42\n  $ license-manager deliveries retry --abandoned --since 2025-01-14 --dry-run\n'.trimEnd())
    .description('re-send abandoned deliveries (same event id and body, current URL and secret, full retry policy)')
    .option('--abandoned', 'every abandoned delivery')
    .option('--since <iso>', 'with --abandoned: only those recorded at or after this time')
    .option('--dry-run', 'show what would be re-sent')
    .action(async (ids: string[], options: { abandoned?: boolean; since?: string; dryRun?: boolean }, command: Command) => {
      await run(command, async (context, out) => {
        const { deliveriesRetry } = await import('../commands/deliveries.js');
        const { printRetry, printAbandonedToStderr } = await import('./format.js');
        const progress = deliveryProgress(out, 're-sending');
        const result = await deliveriesRetry(context, {
          ids,
          ...options,
          stop: stop.signal,
          onProgress: progress.onProgress,
        }).finally(() => progress.end());
        if (out.options.json) out.json(result);
        else printRetry(out, result);
        if (result.abandoned > 0) {
          if (out.options.quiet && !out.options.json) printAbandonedToStderr(out, result.outcomes);
          exitCode = EXIT.abandoned;
        }
      });
    });

  program
    .command('listen')
    .description('a local receiver that prints each webhook and whether its signature verifies (pair with ngrok or send-test-event --url)')
    .option('--port <port>', 'port to listen on (0 picks a free one)', '8000')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--secret <secret>', 'check signatures with this secret (default: the configured one)')
    .option('--respond <status>', 'answer every request with this HTTP status, e.g. 500 to rehearse retries (with a secret, a bad signature gets 401)', '200')
    .option('--max-body <bytes>', 'answer 413 to bodies larger than this (default 1048576)')
    .addHelpText('after', EXAMPLES.listen)
    .action(async (options: { port: string; host: string; secret?: string; respond: string; maxBody?: string }, command: Command) => {
      const flags = outputFor(command);
      // Reads the config and an existing database read-only: a receiver creates no files.
      const { readConfigOnly } = await import('../commands/context.js');
      await readConfigOnly({ config: flags.config, cwd: io.cwd, env: io.env }).then(async (context) => {
        for (const warning of context.warnings) out.warn(warning);
        const { listen } = await import('../commands/listen.js');
        const secret = options.secret ?? context.config.webhooks.secret;
        const listener = await listen({ ...options, secret }, (request) => {
          if (out.options.json) {
            io.stdout.write(`${JSON.stringify({ event: request.headers['x-webhook-event'] ?? null, id: request.headers['x-webhook-id'] ?? null, headers: request.headers, body: request.body.toString('utf8'), signature: request.verification?.verdict ?? 'not checked', status: request.status })}\n`);
            return;
          }
          const event = clean(String(request.headers['x-webhook-event'] ?? '(no X-Webhook-Event)'));
          const verdict = request.refused
            ? out.paint.red(`refused: ${request.refused}`)
            : !request.verification
            ? out.paint.yellow('signature not checked (no secret: pass --secret)')
            : request.verification.valid
              ? out.paint.green('signature valid')
              : out.paint.red(`signature INVALID: ${request.verification.explanation}`);
          io.stdout.write(`\n${out.paint.bold(clean(`${request.method} ${request.url}`))}  ${event}  id ${clean(String(request.headers['x-webhook-id'] ?? '-'))}  answered ${request.status}\n`);
          for (const [name, value] of Object.entries(request.headers)) io.stdout.write(`  ${name}: ${clean(String(value))}\n`);
          let pretty = request.body.toString('utf8');
          try {
            pretty = JSON.stringify(JSON.parse(pretty), null, 2);
          } catch {
            // not JSON: show it as it came
          }
          io.stdout.write(`${clean(pretty, true)}\n${verdict}\n`);
        });
        listening = true;
        out.result(`listening on ${listener.url} (Ctrl-C to stop)${secret ? '' : ' - no secret set, signatures are not checked'}`);
        await new Promise<void>((resolve) => stop.signal.addEventListener('abort', () => resolve(), { once: true }));
        await listener.close();
      });
    });

  program
    .command('verify')
    .description('check a webhook signature, and say why it fails (re-serialised body, sha256= prefix, ...)')
    .option('--secret <secret>', 'the webhook secret')
    .option('--signature <hex>', 'the X-Webhook-Signature value the receiver got')
    .option('--file <body>', 'the raw body as received (default: standard input)')
    .addHelpText('after', EXAMPLES.verify)
    .action(async (options: { secret?: string; signature?: string; file?: string }, command: Command) => {
      outputFor(command);
      const { verifyCommand } = await import('../commands/verify.js');
      const result = await verifyCommand(options, () => readStream(io.stdin ?? process.stdin));
      if (out.options.json) out.json(result);
      else if (result.valid) out.info(out.paint.green('valid'));
      else out.io.stderr.write(`${out.errPaint.red('invalid')}: ${result.explanation}\n`);
      // Like grep: 1 means "checked, and it does not match".
      if (!result.valid) exitCode = EXIT.failure;
    });

  program
    .command('migrate')
    .addHelpText('after', '\nExamples:\n  $ license-manager migrate\n  $ LICENSE_MANAGER_DB=/var/lib/license-manager/db.sqlite license-manager migrate\n'.trimEnd())
    .description('bring the database schema up to date (other commands do this on their own)')
    .action(async (_options: unknown, command: Command) => {
      await run(command, async (context, out) => {
        if (out.options.json) out.json({ database: context.databaseFile, upToDate: true });
        else out.info(`Database ${context.databaseFile} is up to date.`);
      });
    });

  // Ctrl-C / SIGTERM: stop claiming, let attempts in flight end and be recorded; a second signal exits at once.
  const onSignal = (signal: NodeJS.Signals) => {
    if (stop.signal.aborted) process.exit(130);
    if (listening) {
      stop.abort();
      return;
    }
    out.warn(`${signal} received: finishing the attempts in flight, then stopping (send it again to quit at once).`);
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (error) {
    return reportError(out, error);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** The progress bar for a delivery run; no callback at all off a terminal (counting what is claimable costs a query). */
function deliveryProgress(out: Output, label: string) {
  const bar = out.progress(label);
  const onProgress = bar.enabled
    ? ({ done, total, abandoned }: { done: number; total: number; abandoned: number }) => bar.update(done, total, abandoned ? `(${abandoned} abandoned)` : '')
    : undefined;
  return { onProgress, end: bar.end };
}

async function readStream(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks);
}

function reportError(out: Output, error: unknown): ExitCode {
  if (error instanceof CommanderError) {
    // Help and version are "errors" to commander; they have already printed.
    if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') return EXIT.ok;
    return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
  }
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
