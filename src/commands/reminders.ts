// `licenses forecast` and `licenses show`: what the job will send, from the current data and settings, by the same rules; read-only.
import { usageError } from '../errors.js';
import { addDays, dateInZone, daysBetween, parseInZone } from '../expirations/calendar.js';
import { forecast, forecastOptionsProblem, type ForecastEvent, type ForecastLicense, type ForecastResult } from '../expirations/forecast.js';
import { readLicense } from '../expirations/license.js';
import { lookbackOverlapWarnings, parseDayList, policyFor, unknownProductWarnings, type ReminderSchedule } from '../expirations/reminder-policy.js';
import { RecordedNotices, schedulesOf } from '../expirations/plan-expirations.js';
import { decide, parseEventKey, type RecordedEvent } from '../expirations/rules.js';
import { resolveEndpoints } from '../config/endpoints.js';
import { endpointTakes, recordedNotices } from './recorded-notices.js';
import type { LicenseRow } from '../storage/licenses.repository.js';
import { forecastCandidates, productIdsInUse, type ForecastRow } from '../storage/reminders.repository.js';
import type { CommandContext } from './context.js';
import { deliveriesList } from './deliveries.js';

// A forecast longer than a year says nothing a year does not; longer ranges cost time for nothing.
const MAX_FORECAST_DAYS = 366;
// How far ahead `licenses show` looks for notices to come: ten years, the ceiling of a warning day.
const SHOW_HORIZON_DAYS = 3660;

export interface ForecastCommandOptions {
  now: Date;
  /** How many days (default 30). */
  days?: number;
  /** 'YYYY-MM-DD' in the business zone (default: today there). */
  from?: string;
  /** Only this product's licenses. */
  product?: string;
  /** A dry run of a `warning-days` change: '30,7,1' or 'none' in place of the global warning days. */
  warningDays?: string;
}

export interface ForecastCommandResult extends ForecastResult {
  /** What the command prints beside the numbers (not part of --json's `days`). */
  from: string;
  timeZone: string;
  warnings: string[];
}

/** The schedule source of a run with an optional --warning-days in place of the global warning days. */
function effectiveExpirations(context: CommandContext, warningDays: string | undefined) {
  const expirations = context.config.expirations;
  if (warningDays === undefined) return expirations;
  const parsed = parseDayList(warningDays, 'warning');
  if ('problem' in parsed) throw usageError(`--warning-days ${parsed.problem}`);
  return { ...expirations, warningDays: parsed.value };
}

/**
 * The records that cover an event: the job's two checks (the rules' and the reminders'), over earlier records. One
 * the job would re-arm (superseded by a license change since undone) is not covered: it is still to come.
 */
function coverage(recorded: RecordedEvent[]): (event: ForecastEvent) => boolean {
  const notices = new RecordedNotices(recorded);
  // Most licenses have nothing recorded: one set lookup answers for them.
  const licenses = new Set(recorded.map((event) => event.licenseId));
  return (event) => licenses.has(event.licenseId) && notices.covers(event) && !notices.rearms(event);
}

/** The records of these licenses, as the job reads them (its endpoints say which superseded deliveries it would re-arm). */
async function recordedFor(context: CommandContext, licenseIds: number[], timeZone: string, now: Date): Promise<RecordedEvent[]> {
  const endpoints = await resolveEndpoints(context.db, context.config.webhooks, now, () => undefined);
  return recordedNotices(context.db, licenseIds, timeZone, endpointTakes(endpoints));
}

/** A row's dates read in the zone; a row whose dates are not dates is left out (the job names it on every run). */
function forecastLicense(row: ForecastRow, timeZone: string): ForecastLicense | undefined {
  const expiresAt = row.expires_at === null ? null : parseInZone(row.expires_at, timeZone)?.instant;
  const updatesUntil = row.updates_until === null ? null : parseInZone(row.updates_until, timeZone)?.instant;
  if (expiresAt === undefined || updatesUntil === undefined) return undefined;
  return { id: row.id, productId: row.product_id, status: row.status, expiresAt, updatesUntil };
}

/**
 * `licenses forecast`: per coming day, how many notices of each type become due under the rules the job applies
 * (the forecast day loop over the licenses that can have a notice in the range, with what is already recorded).
 */
export async function licensesForecast(context: CommandContext, options: ForecastCommandOptions): Promise<ForecastCommandResult> {
  const expirations = effectiveExpirations(context, options.warningDays);
  const { timeZone, lookbackDays } = expirations;
  const from = options.from ?? dateInZone(options.now, timeZone);
  const days = options.days ?? 30;
  const problem = forecastOptionsProblem({ from, days, lookbackDays });
  if (problem) throw usageError(`licenses forecast: ${problem}.`);
  if (days > MAX_FORECAST_DAYS) throw usageError(`licenses forecast: --days ${days} is more than ${MAX_FORECAST_DAYS}; forecast a year at most.`);
  const schedules = schedulesOf(expirations);
  // The job's candidate scans, over the whole range: wide enough for the largest warning day and the latest reminder.
  // Text bounds three days wider than the rules, as the job's (a stored text date and its date in the zone differ by at most two).
  const window = {
    fromDay: addDays(from, -lookbackDays - schedules.largestAfterExpiry - 3),
    expiresBeforeDay: addDays(from, days + schedules.largestWarning + 3),
    supportBeforeDay: addDays(from, days + 3),
  };
  // Our own table is read column by column (a million rows); Botble's through its source, which derives the status.
  const rows: ForecastRow[] =
    context.licenses.kind === 'own' ? await forecastCandidates(context.db, window) : await context.licenses.findDueCandidates(context.db, window);
  const licenses: ForecastLicense[] = [];
  for (const row of rows) {
    if (options.product !== undefined && row.product_id !== options.product) continue;
    const license = forecastLicense(row, timeZone);
    if (license) licenses.push(license);
  }
  const covers = coverage(
    await recordedFor(
      context,
      licenses.map((license) => license.id),
      timeZone,
      options.now,
    ),
  );
  const result = forecast(licenses, { from, days, lookbackDays, timeZone, schedule: schedules.of, covers, decide, now: options.now });
  const warnings = [
    ...lookbackOverlapWarnings(expirations, expirations.products, lookbackDays).map((warning) => warning.message),
    ...(options.product === undefined
      ? []
      : unknownProductWarnings({ [options.product]: {} }, await productIdsInUse(context.db, context.config)).map(
          (warning) => `--product ${options.product}: ${warning.message}.`,
        )),
  ];
  return { days: result.days, from, timeZone, warnings };
}

interface NoticeToCome {
  date: string;
  type: string;
  /** license.expiring: days before the expiry date; license.expired_reminder: days after it. */
  days?: number;
}

export interface LicenseShowResult {
  license: LicenseRow;
  timeZone: string;
  /** The expiry date and the update-support end date in the business zone (null as well for one that is no date). */
  expiryDate: string | null;
  updatesUntilDate: string | null;
  /**
   * Why the runs skip this license, as their warning says it (`expires_at "0000-00-00" is not a date`): it gets no
   * notices, so none are to come. Only when there is one.
   */
  problem?: string;
  schedule: ReminderSchedule & { source: 'product' | 'global' };
  sent: Array<{
    id: number;
    type: string;
    endpoint: string;
    status: string;
    recordedAt: string;
    completedAt: string | null;
    attempts: number;
    lastStatusCode: number | null;
    lastError: string | null;
    /** A warning's days before the expiry date, an after-expiry reminder's days after it (its threshold, from the event key). */
    days?: number;
  }>;
  toCome: NoticeToCome[];
}

/** `licenses show <code>`: one license, its product's schedule, the notices recorded for it and those still to come under the current settings. */
export async function licensesShow(context: CommandContext, code: string, now: Date): Promise<LicenseShowResult> {
  const row = await context.licenses.findByCode(context.db, code);
  if (!row) throw usageError(`No license with code "${code}". See "license-manager licenses list".`);
  const expirations = context.config.expirations;
  const { timeZone, lookbackDays } = expirations;
  const read = readLicense(row, timeZone);
  const schedule = policyFor(row.product_id, expirations, expirations.products);
  const own = row.product_id !== null && Object.hasOwn(expirations.products, row.product_id);
  const { rows } = await deliveriesList(context, { licenseCode: code });
  const sent = rows
    .map((delivery) => ({
      ...thresholdOf(delivery.event_key, timeZone),
      id: delivery.id,
      type: delivery.event_type,
      endpoint: delivery.endpoint,
      status: delivery.status,
      recordedAt: delivery.created_at,
      completedAt: delivery.completed_at,
      attempts: delivery.attempts,
      lastStatusCode: delivery.last_status_code,
      lastError: delivery.last_error,
    }))
    .sort((a, b) => a.recordedAt.localeCompare(b.recordedAt) || a.id - b.id);
  const shown = (expiryDate: string | null, updatesUntilDate: string | null, toCome: NoticeToCome[]): LicenseShowResult => ({
    license: row,
    timeZone,
    expiryDate,
    updatesUntilDate,
    schedule: { ...schedule, source: own ? 'product' : 'global' },
    sent,
    toCome,
  });
  if ('problem' in read) {
    // The license the runs name as skipped: shown as stored, with their reason, and no notices to come.
    const dateOf = (text: string | null) => {
      const instant = text === null ? undefined : parseInZone(text, timeZone)?.instant;
      return instant ? dateInZone(instant, timeZone) : null;
    };
    return { ...shown(dateOf(row.expires_at), dateOf(row.updates_until), []), problem: read.problem };
  }

  // Still to come: the forecast day loop for this one license, from today to past its last possible notice.
  const today = dateInZone(now, timeZone);
  const license: ForecastLicense = { id: row.id, productId: row.product_id, status: row.status, expiresAt: read.expiresAt, updatesUntil: read.updatesUntil };
  const expiryDate = read.expiresAt && dateInZone(read.expiresAt, timeZone);
  const supportDate = read.updatesUntil && dateInZone(read.updatesUntil, timeZone);
  const ends = [
    expiryDate && addDays(expiryDate, lookbackDays + Math.max(0, ...schedule.afterExpiryDays)),
    supportDate && addDays(supportDate, lookbackDays),
  ].filter((date): date is string => Boolean(date));
  const horizon = Math.min(SHOW_HORIZON_DAYS, Math.max(0, ...ends.map((end) => daysBetween(today, end) + 1)));
  const toCome: NoticeToCome[] = [];
  if (horizon > 0) {
    const covers = coverage(await recordedFor(context, [row.id], timeZone, now));
    const result = forecast([license], {
      from: today,
      days: horizon,
      lookbackDays,
      timeZone,
      schedule: (productId) => policyFor(productId, expirations, expirations.products),
      covers,
      decide,
      now,
    });
    for (const day of result.days) {
      for (const [type, count] of Object.entries(day.counts)) {
        if (count === 0) continue;
        const days =
          type === 'license.expiring' && expiryDate
            ? daysBetween(day.date, expiryDate)
            : type === 'license.expired_reminder' && expiryDate
              ? daysBetween(expiryDate, day.date)
              : undefined;
        toCome.push({ date: day.date, type, ...(days === undefined ? {} : { days }) });
      }
    }
  }
  return shown(expiryDate, supportDate, toCome);
}

/** `{ days }` for a notice recorded with a threshold (a warning, an after-expiry reminder); nothing otherwise. */
function thresholdOf(eventKey: string, timeZone: string): { days?: number } {
  const threshold = parseEventKey(eventKey, timeZone)?.threshold;
  return threshold === undefined ? {} : { days: threshold };
}
