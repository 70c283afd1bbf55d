// The text of `licenses forecast` and `licenses show`.
import type { ForecastCommandResult, LicenseShowResult } from '../commands/reminders.js';
import { FORECAST_EVENT_TYPES } from '../expirations/forecast.js';
import { plural } from '../plural.js';
import { drawBarChart } from './bar-chart.js';
import { clean, table, type Output } from './output.js';

// A chart piped into a file or a cron mail has no terminal to measure: a width that fits a mail client.
const DEFAULT_COLUMNS = 80;

/** The terminal's columns: stdout's, else $COLUMNS, else 80. */
function columns(out: Output): number {
  const measured = (out.io.stdout as { columns?: number }).columns;
  const fromEnv = Number(out.io.env.COLUMNS);
  return measured && measured > 0 ? measured : Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : DEFAULT_COLUMNS;
}

export function printForecast(out: Output, result: ForecastCommandResult, dryRunWarningDays: string | undefined): void {
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

export function printLicenseShow(out: Output, result: LicenseShowResult): void {
  const { license, schedule } = result;
  out.info(`License ${clean(license.license_code)} (id ${license.id})`);
  out.info(
    `  product: ${license.product_id === null ? '(none)' : clean(license.product_id)}${license.product_name ? ` (${clean(license.product_name)})` : ''}`,
  );
  out.info(`  customer: ${clean(license.customer_id ?? '-')}, email ${clean(license.email ?? '-')}`);
  out.info(`  status: ${license.status}`);
  out.info(
    `  expires: ${license.expires_at === null ? 'never (lifetime)' : `${clean(license.expires_at)} (expiry date ${result.expiryDate} in ${result.timeZone})`}`,
  );
  out.info(
    `  update support until: ${license.updates_until === null ? '-' : `${clean(license.updates_until)} (${result.updatesUntilDate} in ${result.timeZone})`}`,
  );
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
          notice.type,
          notice.endpoint,
          `${notice.status} after ${plural(notice.attempts, 'attempt')}${notice.lastStatusCode === null ? '' : `, HTTP ${notice.lastStatusCode}`}${notice.completedAt ? ` at ${notice.completedAt}` : ''}${notice.lastError ? `: ${clean(notice.lastError)}` : ''}`,
          String(notice.id),
        ]),
      ]).replace(/^/gm, '  '),
    );
  }
  if (result.toCome.length === 0) {
    out.info(`Notices to come: none (under the current settings, in ${result.timeZone})`);
  } else {
    out.info(`Notices to come (under the current settings, in ${result.timeZone}; a notice due at a time of day goes out with the first run after it):`);
    for (const notice of result.toCome) out.info(`  ${notice.date}  ${notice.type}${daysText(notice)}`);
  }
}
