// The rule and the body of license.expired_reminder, the notice N calendar days after the expiry date; pure, `now` passed in.
import { buildEventBody, type EventSubject } from '../webhooks/payload.js';
import { formatUtc } from '../time.js';
import { dateInZone, daysBetween } from './calendar.js';
import type { ExpirationPolicy, LicenseDates, RecordedEvent } from './rules.js';

export const EXPIRED_REMINDER = 'license.expired_reminder';

/** What the reminder rule needs: the global lookback and zone, and the license's product schedule's after-expiry days. */
export interface AfterExpiryPolicy extends Pick<ExpirationPolicy, 'lookbackDays' | 'timeZone'> {
  afterExpiryDays: readonly number[];
}

/** A reminder due now, in the shape of the rules' DueEvent. */
export interface DueReminder {
  type: typeof EXPIRED_REMINDER;
  licenseId: number;
  /** `license.expired_reminder:<license id>:<expiry date>:<N>d`: once per license, expiry date and N. */
  key: string;
  /** `expires_at`, the instant. */
  date: Date;
  /** The expiry date in the business zone. */
  day: string;
  /** N, the after-expiry day this reminder is for. */
  threshold: number;
  /** today - expiry date: N on the day, more when the reminder is caught up after missed runs. */
  daysSinceExpiry: number;
}

/**
 * The reminder due for a license at `now`, if any. With D the expiry date and T today (both calendar dates
 * in the business zone), reminder N is due when T - D == N. A run that did not happen is caught up the way
 * `license.expired` is: the reminder due is the largest N with D + N <= T and T - (D + N) <= lookbackDays,
 * one per run, like the warnings' "smallest threshold that applies" (a run after missed days sends the
 * latest reminder, not every one it missed). Only for a license expired at `now`: status `active` or
 * `expired` with `expires_at` at or before `now`; a renewed license (expiry date ahead), a suspended or
 * revoked one, or a lifetime one gets none. Whether `license.expired` was ever sent does not matter: the
 * reminder is about the date.
 */
export function dueReminder(license: LicenseDates, now: Date, policy: AfterExpiryPolicy): DueReminder | undefined {
  const { expiresAt } = license;
  if (policy.afterExpiryDays.length === 0 || expiresAt === null || expiresAt.getTime() > now.getTime()) return undefined;
  // With the expiry at or before now, `expired` is the true status of an active license: both are expired.
  if (license.status !== 'active' && license.status !== 'expired') return undefined;
  const day = dateInZone(expiresAt, policy.timeZone);
  const daysSinceExpiry = daysBetween(day, dateInZone(now, policy.timeZone));
  let threshold: number | undefined;
  for (const days of policy.afterExpiryDays) {
    const lateBy = daysSinceExpiry - days;
    if (days >= 1 && lateBy >= 0 && lateBy <= policy.lookbackDays && (threshold === undefined || days > threshold)) threshold = days;
  }
  if (threshold === undefined) return undefined;
  return {
    type: EXPIRED_REMINDER,
    licenseId: license.id,
    key: `${EXPIRED_REMINDER}:${license.id}:${day}:${threshold}d`,
    date: expiresAt,
    day,
    threshold,
    daysSinceExpiry,
  };
}

/**
 * Whether an earlier record covers this reminder: one for the same license and expiry date at an N at least
 * as large. The mirror of the warnings' rule: a later reminder sent makes an earlier one pointless, so
 * dropping a day from afterExpiryDays (which can make a smaller N the largest due) never re-notifies.
 * Records come from `parseEventKey` (the key's `:<N>d` is its threshold). Note that `RecordedEvents.covers`
 * applies the warnings' direction (at most as large) and must not be used for reminders.
 */
export function reminderCovered(reminder: Pick<DueReminder, 'licenseId' | 'day' | 'threshold' | 'date'>, recorded: Iterable<RecordedEvent>): boolean {
  // The same expiry: the same date in the zone, or the same instant (recorded while the business zone was another).
  const instant = formatUtc(reminder.date);
  for (const event of recorded) {
    if (event.type !== EXPIRED_REMINDER || event.licenseId !== reminder.licenseId) continue;
    if (event.day !== reminder.day && event.instant !== instant) continue;
    if (event.threshold !== undefined && event.threshold >= reminder.threshold) return true;
  }
  return false;
}

/**
 * The exact body bytes of a reminder: `license.expired`'s body (payload.ts) with the reminder's event type
 * and `"days_since_expiry"` right after `expired_at`, as the contract's "Reminder policy" says. Built from
 * that body so the two can never drift apart.
 */
export function expiredReminderPayload(subject: EventSubject, expiresAt: Date, daysSinceExpiry: number, timestamp: Date): string {
  const expired = JSON.parse(buildEventBody({ type: 'license.expired', expiresAt }, subject, timestamp)) as {
    timestamp: string;
    payload: Record<string, unknown>;
  };
  const payload: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(expired.payload)) {
    payload[key] = value;
    if (key === 'expired_at') payload.days_since_expiry = daysSinceExpiry;
  }
  return JSON.stringify({ event_type: EXPIRED_REMINDER, timestamp: expired.timestamp, payload });
}
