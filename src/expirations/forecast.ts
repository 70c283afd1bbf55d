// The day loop of `licenses forecast`: how many notices of each type become due on each coming day, simulating the daily runs; pure.
import { dueReminder, EXPIRED_REMINDER, reminderCovered, type AfterExpiryPolicy, type DueReminder } from './after-expiry.js';
import { addDays, dateInZone, daysBetween, parseInZone, startOfDayInZone } from './calendar.js';
import type { ReminderSchedule } from './reminder-policy.js';
import { RecordedEvents, type DueEvent, type EventType, type ExpirationPolicy, type LicenseDates, type RecordedEvent } from './rules.js';

/** The types a forecast counts, in the order a license meets them (the chart's stack and legend order). */
export const FORECAST_EVENT_TYPES = [
  'license.expiring',
  'license.expired',
  EXPIRED_REMINDER,
  'license.update_support_expired',
] as const satisfies ReadonlyArray<EventType | typeof EXPIRED_REMINDER>;
type ForecastEventType = (typeof FORECAST_EVENT_TYPES)[number];
export type ForecastEvent = DueEvent | DueReminder;

/** A license as the forecast reads it: the rules' dates (instants, read in the business zone) and its product. */
export interface ForecastLicense extends LicenseDates {
  /** The product reference id its schedule is looked up by; null: the global schedule. */
  productId: string | null;
}

/** The shape of the rules' `decide`: the forecast applies the same function the job applies. */
type DecideRule = (license: LicenseDates, now: Date, policy: ExpirationPolicy) => { events: readonly DueEvent[]; status?: 'active' | 'expired' };

export interface ForecastOptions {
  /** The first day, 'YYYY-MM-DD' in the business zone (today, or `--from`). */
  from: string;
  /** How many days, from `from` on. */
  days: number;
  lookbackDays: number;
  timeZone: string;
  /** The schedule of a product (policyFor with the global values and expirations.products bound). */
  schedule(productId: string | null): ReminderSchedule;
  /**
   * Whether storage already holds a record that covers the event (the job's check: `RecordedEvents.covers`
   * for the rules' events, `reminderCovered` for reminders).
   */
  covers(event: ForecastEvent): boolean;
  decide: DecideRule;
  /**
   * The current instant. The day that holds it is simulated from it, not from its 00:00: a run now cannot send
   * what stopped being due earlier today (a warning for an expiry that has passed since is a license.expired).
   */
  now?: Date;
}

interface ForecastDay {
  date: string;
  /** Every type of FORECAST_EVENT_TYPES, 0 included, so `--json` readers need no default. */
  counts: Record<ForecastEventType, number>;
}

/** What `licenses forecast --json` prints. */
export interface ForecastResult {
  days: ForecastDay[];
}

/** What one product schedule needs, worked out once per schedule rather than once per license. */
interface ScheduleBounds {
  enabled: boolean;
  policy: ExpirationPolicy;
  reminders: AfterExpiryPolicy;
  warningDays: readonly number[];
  afterExpiryDays: readonly number[];
  largestWarning: number;
  /** `expires_at` in [low, high) can have a notice in the range; anything else cannot (instants, ms). */
  low: number;
  high: number;
}

/** Why these options cannot be forecast, or undefined: for the command to report as bad usage before reading anything. */
export function forecastOptionsProblem(options: Pick<ForecastOptions, 'from' | 'days' | 'lookbackDays'>): string | undefined {
  if (!Number.isInteger(options.days) || options.days < 1) return `the number of days must be a whole number of at least 1, not ${options.days}`;
  const parsed = parseInZone(options.from, 'UTC');
  if (!/^\d{4}-\d{2}-\d{2}$/.test(options.from) || parsed === undefined) return `"${options.from}" is not a date (YYYY-MM-DD)`;
  if (!Number.isInteger(options.lookbackDays) || options.lookbackDays < 1)
    return `lookbackDays must be a whole number of at least 1, not ${options.lookbackDays}`;
  return undefined;
}

/**
 * The notices that become due on each day of [from, from + days), by type, under the rules the job applies:
 * a notice counts on the calendar day (business zone) it becomes due, at whatever time of day (the
 * contract's words); a notice already due at the start of `from` and never recorded counts on `from`.
 *
 * The daily runs are simulated forward per license: what becomes due is recorded, and a later instant
 * sees it as recorded, so a 7-day warning counts once, not again on the next six days. Storage's records
 * are `covers`. The rules are evaluated only where their answer can change (contract, "process-expirations"):
 * at 00:00 of the first day when something may already be due then, at 00:00 of the day each warning
 * threshold is reached and of each after-expiry day, and at the last instant of the expiry date and of the
 * update-support date (those become due at their instant, any time that day); on the day that holds
 * `options.now`, a run before it is made at it (the 00:00 of today is past). Licenses whose dates lie too
 * far from the range to have any notice in it are skipped on a comparison of instants, with no time-zone
 * lookup: at 1M licenses the time goes into the rules' Intl date lookups for the few near the range.
 */
export function forecast(licenses: Iterable<ForecastLicense>, options: ForecastOptions): ForecastResult {
  const problem = forecastOptionsProblem(options);
  if (problem) throw new RangeError(`forecast: ${problem}`);
  const { from, days: count, lookbackDays, timeZone } = options;
  const current = options.now?.getTime();
  const dayStart = new Map<string, number>();
  const startOf = (date: string) => {
    let start = dayStart.get(date);
    if (start === undefined) dayStart.set(date, (start = startOfDayInZone(date, timeZone).getTime()));
    return start;
  };
  // starts[k] is 00:00 of day k; starts[count] ends the range.
  const starts = Array.from({ length: count + 1 }, (_, index) => startOf(addDays(from, index)));
  const days: ForecastDay[] = starts.slice(0, count).map((_, index) => ({
    date: addDays(from, index),
    counts: Object.fromEntries(FORECAST_EVENT_TYPES.map((type) => [type, 0])) as Record<ForecastEventType, number>,
  }));

  const bySchedule = new Map<string | null, ScheduleBounds>();
  const boundsFor = (productId: string | null): ScheduleBounds => {
    let bounds = bySchedule.get(productId);
    if (bounds) return bounds;
    const schedule = options.schedule(productId);
    const largestWarning = Math.max(0, ...schedule.warningDays);
    const largestAfter = Math.max(0, ...schedule.afterExpiryDays);
    bounds = {
      enabled: schedule.enabled,
      policy: { warningDays: schedule.warningDays, lookbackDays, timeZone },
      reminders: { afterExpiryDays: schedule.afterExpiryDays, lookbackDays, timeZone },
      warningDays: schedule.warningDays,
      afterExpiryDays: schedule.afterExpiryDays,
      largestWarning,
      // An expiry date D has a notice on day k only if D - largestWarning <= k <= D + lookback + largestAfter.
      low: startOf(addDays(from, -lookbackDays - largestAfter)),
      high: startOf(addDays(from, count + largestWarning)),
    };
    bySchedule.set(productId, bounds);
    return bounds;
  };
  // Update support ends on day U and has a notice on day k only if U <= k <= U + lookback.
  const supportLow = startOf(addDays(from, -lookbackDays));
  const supportHigh = starts[count]!;

  for (const license of licenses) {
    const bounds = boundsFor(license.productId);
    if (!bounds.enabled) continue;
    const expires = license.expiresAt?.getTime();
    const support = license.updatesUntil?.getTime();
    const expiryInRange = expires !== undefined && expires >= bounds.low && expires < bounds.high;
    const supportInRange = support !== undefined && support >= supportLow && support < supportHigh;
    if (!expiryInRange && !supportInRange) continue;

    // Day k's 00:00 is k * 2, its last instant k * 2 + 1: sorted, they are the simulated runs in order.
    const moments = new Set<number>();
    const atStart = (day: number) => day >= 0 && day < count && moments.add(day * 2);
    const atEnd = (day: number) => day >= 0 && day < count && moments.add(day * 2 + 1);
    if (expiryInRange) {
      const expiryDay = daysBetween(from, dateInZone(license.expiresAt!, timeZone));
      // Already within the warning days, or past the expiry, at the start: what is due then and not yet recorded.
      if (expiryDay <= bounds.largestWarning) atStart(0);
      for (const days of bounds.warningDays) atStart(expiryDay - days);
      atEnd(expiryDay);
      for (const days of bounds.afterExpiryDays) atStart(expiryDay + days);
    }
    if (supportInRange) {
      const supportDay = daysBetween(from, dateInZone(license.updatesUntil!, timeZone));
      if (supportDay <= 0) atStart(0);
      atEnd(supportDay);
    }

    const simulated: LicenseDates = { id: license.id, status: license.status, expiresAt: license.expiresAt, updatesUntil: license.updatesUntil };
    const recorded: RecordedEvent[] = [];
    // What this license's simulated runs recorded, indexed again only after something new was recorded.
    let index: RecordedEvents | undefined;
    const record = (event: ForecastEvent, day: number) => {
      days[day]!.counts[event.type] += 1;
      recorded.push({ type: event.type, licenseId: event.licenseId, day: event.day, ...(event.threshold === undefined ? {} : { threshold: event.threshold }) });
      index = undefined;
    };
    for (const moment of [...moments].sort((a, b) => a - b)) {
      const day = moment >> 1;
      const at = moment % 2 === 0 ? starts[day]! : starts[day + 1]! - 1;
      // Today's 00:00 is past: its run is the one at the current instant.
      const now = new Date(current !== undefined && current >= starts[day]! && current < starts[day + 1]! ? Math.max(at, current) : at);
      const decision = options.decide(simulated, now, bounds.policy);
      for (const event of decision.events) {
        if (options.covers(event) || (recorded.length > 0 && (index ??= new RecordedEvents(recorded)).covers(event))) continue;
        record(event, day);
      }
      const reminder = dueReminder(simulated, now, bounds.reminders);
      if (reminder && !options.covers(reminder) && !reminderCovered(reminder, recorded)) record(reminder, day);
      // What the run writes, the next run reads: `expired` after the expiry, `active` again after a renewal.
      if (decision.status) simulated.status = decision.status;
    }
  }
  return { days };
}
