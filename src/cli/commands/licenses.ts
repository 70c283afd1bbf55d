// `licenses import|list|show|forecast`: loading licenses and what they will be sent.
import path from 'node:path';
import { Option, type Command } from 'commander';
import { commandLine } from '../../command-line.js';
import type { ImportResult, LicenseListItem } from '../../commands/licenses.js';
import type { ForecastCommandResult, LicenseShowResult } from '../../commands/reminders.js';
import { LICENSE_STATUSES } from '../../expirations/license-status.js';
import { plural } from '../../plural.js';
import type { CommandKit } from '../command-kit.js';
import { examples, IMPORT_HELP } from '../help.js';
import { calendarDate, runInstant, wholeNumber } from '../options.js';
import type { Output } from '../output.js';
import { clean, table } from '../text.js';

const MAX_LIMIT = 1_000_000_000;
const MAX_DAYS = 36_500;

export function registerLicenses(program: Command, kit: CommandKit): void {
  const { io, clock, act, withDatabase } = kit;
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
      const { checkImportFile } = await import('../../import/import-file.js');
      const checked = await checkImportFile(path.resolve(io.cwd, file), { given: file, cwd: io.cwd }).then(
        () => undefined,
        (error: unknown) => error,
      );
      if (checked !== undefined) return act(command, () => Promise.reject(checked));
      return withDatabase(
        command,
        async (context, out) => {
          const { importLicenses } = await import('../../commands/licenses.js');
          const result = await importLicenses(context, file, clock.now(), io.cwd);
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
        const { listLicenses } = await import('../../commands/licenses.js');
        const rows = await listLicenses(context, {
          status: options.status,
          expiringWithinDays: options.expiringWithin,
          limit: options.limit,
          now: options.now ?? clock.now(),
        });
        if (out.options.json) return out.json(rows);
        // Importing is the advice only when there is nothing at all, and only where licenses are imported.
        const empty = rows.length === 0 && !(await context.licenses.hasAny(context.db));
        const none = !empty
          ? 'No licenses match.'
          : context.licenses.kind === 'botble'
            ? `No licenses in ${context.licenses.description}.`
            : `No licenses in ${context.databaseLabel} yet. Load some with "${commandLine('licenses import <file>')}".`;
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
        const { licensesShow } = await import('../../commands/reminders.js');
        const result = await licensesShow(context, code, options.now ?? clock.now());
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
        const { licensesForecast } = await import('../../commands/reminders.js');
        const result = await licensesForecast(context, { ...options, now: options.now ?? clock.now() });
        for (const warning of result.warnings) out.warn(warning);
        if (out.options.json) out.json({ days: result.days });
        else await printForecast(out, result, options.warningDays);
      }),
    );
}

/** `whenNone`: what to say when no row matches (the filters left none, or there are no licenses at all). */
function printLicenses(out: Output, rows: LicenseListItem[], whenNone: string): void {
  if (rows.length === 0) {
    out.info(whenNone);
    return;
  }
  out.info(
    table([
      ['ID', 'CODE', 'STATUS', 'EXPIRES', 'UPDATES UNTIL', 'PRODUCT', 'EMAIL'],
      ...rows.map((row) =>
        [
          String(row.id),
          row.license_code,
          row.status,
          row.expires_at ?? 'lifetime',
          row.updates_until ?? '-',
          row.product_name ?? row.product_id ?? '-',
          row.email ?? '-',
        ].map((cell) => clean(cell)),
      ),
    ]),
  );
}

function printImport(out: Output, result: ImportResult): void {
  // An empty export is usually a mistake upstream: cron should mail it.
  if (result.rows === 0) out.warn(`${result.file} holds no license rows (an empty file, or a header only): nothing was imported.`);
  out.info(
    `Imported ${plural(result.rows, 'license')} from ${clean(result.file)} (${result.format}): ${result.inserted} new, ${result.updated} updated, ${result.unchanged} unchanged.`,
  );
}

// A chart piped into a file or a cron mail has no terminal to measure: a width that fits a mail client.
const DEFAULT_COLUMNS = 80;

/** The terminal's columns: stdout's, else $COLUMNS, else 80. */
function columns(out: Output): number {
  const measured = (out.io.stdout as { columns?: number }).columns;
  const fromEnv = Number(out.io.env.COLUMNS);
  return measured && measured > 0 ? measured : Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : DEFAULT_COLUMNS;
}

/** The chart's code and the forecast's event types are loaded here, when it prints: declaring the program needs neither. */
async function printForecast(out: Output, result: ForecastCommandResult, dryRunWarningDays: string | undefined): Promise<void> {
  const [{ drawBarChart }, { FORECAST_EVENT_TYPES }] = await Promise.all([import('../bar-chart.js'), import('../../expirations/forecast.js')]);
  const change = dryRunWarningDays === undefined ? '' : ` with warning days ${dryRunWarningDays} (this forecast only: nothing is changed)`;
  out.info(
    `Notices due per day from ${result.from}, ${plural(result.days.length, 'day')} in ${result.timeZone}, under the current data and settings${change}:`,
  );
  for (const line of drawBarChart(result.days, { width: columns(out), color: out.paint.level > 0, paint: out.paint, types: FORECAST_EVENT_TYPES }))
    out.info(line);
}

const daysText = (notice: { type: string; days?: number }) =>
  notice.days === undefined
    ? ''
    : notice.type === 'license.expiring'
      ? ` (${plural(notice.days, 'day')} before the expiry date)`
      : ` (${plural(notice.days, 'day')} after the expiry date)`;

function printLicenseShow(out: Output, result: LicenseShowResult): void {
  const { license, schedule } = result;
  out.info(`License ${clean(license.license_code)} (id ${license.id})`);
  out.info(
    `  product: ${license.product_id === null ? '(none)' : clean(license.product_id)}${license.product_name ? ` (${clean(license.product_name)})` : ''}`,
  );
  out.info(`  customer: ${clean(license.customer_id ?? '-')}, email ${clean(license.email ?? '-')}`);
  out.info(`  status: ${license.status}`);
  // A date the runs cannot read is shown as stored (result.problem says why they skip the license).
  const inZone = (date: string | null, label: string) => (date === null ? 'not a date' : `${label}${date} in ${result.timeZone}`);
  out.info(`  expires: ${license.expires_at === null ? 'never (lifetime)' : `${clean(license.expires_at)} (${inZone(result.expiryDate, 'expiry date ')})`}`);
  out.info(`  update support until: ${license.updates_until === null ? '-' : `${clean(license.updates_until)} (${inZone(result.updatesUntilDate, '')})`}`);
  if (result.problem !== undefined)
    out.info(`  skipped by every run: ${clean(result.problem)}; it gets no notices, and each run names it, until that is fixed`);
  const days = (list: readonly number[]) => (list.length === 0 ? 'none' : list.join(','));
  const source = schedule.source === 'product' ? `product ${clean(license.product_id ?? '')}'s own schedule` : 'the global schedule';
  out.info(
    schedule.enabled
      ? `  schedule (${source}): warning days ${days([...schedule.warningDays].sort((a, b) => b - a))}; after-expiry days ${days([...schedule.afterExpiryDays].sort((a, b) => a - b))}`
      : `  schedule (${source}): disabled - no notices of any kind for this product`,
  );
  out.info('');
  if (result.sent.length === 0) {
    out.info('Notices sent: none recorded');
  } else {
    out.info('Notices sent:');
    out.info(
      table([
        ['RECORDED', 'EVENT', 'ENDPOINT', 'OUTCOME', 'DELIVERY'],
        ...result.sent.map((notice) => [
          notice.recordedAt,
          `${notice.type}${daysText(notice)}`,
          notice.endpoint,
          `${notice.status} after ${plural(notice.attempts, 'attempt')}${notice.lastStatusCode === null ? '' : `, HTTP ${notice.lastStatusCode}`}${notice.completedAt ? ` at ${notice.completedAt}` : ''}${notice.lastError ? `: ${clean(notice.lastError)}` : ''}`,
          String(notice.id),
        ]),
      ]).replace(/^/gm, '  '),
    );
  }
  if (result.problem !== undefined) {
    out.info('Notices to come: none (every run skips this license)');
  } else if (result.toCome.length === 0) {
    out.info(`Notices to come: none (under the current settings, in ${result.timeZone})`);
  } else {
    out.info(`Notices to come (under the current settings, in ${result.timeZone}; a notice due at a time of day goes out with the first run after it):`);
    for (const notice of result.toCome) out.info(`  ${notice.date}  ${notice.type}${daysText(notice)}`);
  }
}
