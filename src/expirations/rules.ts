// src/expirations: the pure expiry rules (no I/O); anything may import it, it imports only src/time.ts.
import { DAY_MS, formatUtc } from '../time.js';

/** The rules of `process-expirations` (docs/contract.md): pure, no I/O, `now` passed in. */

export const EVENT_TYPES = ['license.expiring', 'license.expired', 'license.update_support_expired'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface LicenseDates {
  id: number;
  status: string;
  expiresAt: Date | null;
  updatesUntil: Date | null;
}

export interface ExpirationPolicy {
  /** Whole days before expiry at which `license.expiring` is sent, e.g. [7, 1]. */
  warningDays: readonly number[];
  /** How far back an expiry may lie and still be announced (bounded catch-up after missed runs). */
  lookbackDays: number;
}

export interface DueEvent {
  type: EventType;
  licenseId: number;
  /** What makes the event once-only: type, license, the date it is about and, for warnings, the threshold. */
  key: string;
  /** `expires_at` for expiring/expired, `updates_until` for update support. */
  date: Date;
  /** Only for `license.expiring`. */
  daysUntilExpiry?: number;
  threshold?: number;
}

function eventKey(type: EventType, licenseId: number, date: Date, threshold?: number): string {
  const base = `${type}:${licenseId}:${formatUtc(date)}`;
  return threshold === undefined ? base : `${base}:${threshold}d`;
}

/** The contract's `floor((expires_at - now) / 1 day)`. */
export function daysUntilExpiry(expiresAt: Date, now: Date): number {
  return Math.floor((expiresAt.getTime() - now.getTime()) / DAY_MS);
}

/** The smallest warning threshold that `daysUntilExpiry` has reached, if any. */
function warningThreshold(daysUntilExpiry: number, warningDays: readonly number[]): number | undefined {
  const reached = warningDays.filter((days) => daysUntilExpiry <= days);
  return reached.length === 0 ? undefined : Math.min(...reached);
}

export function dueEvents(license: LicenseDates, now: Date, policy: ExpirationPolicy): DueEvent[] {
  const events: DueEvent[] = [];
  const nowMs = now.getTime();
  const oldestMs = nowMs - policy.lookbackDays * DAY_MS;
  const { expiresAt, updatesUntil } = license;

  if (license.status === 'active' && expiresAt) {
    const expiresMs = expiresAt.getTime();
    if (expiresMs > nowMs) {
      const days = daysUntilExpiry(expiresAt, now);
      const threshold = warningThreshold(days, policy.warningDays);
      if (threshold !== undefined) {
        events.push({
          type: 'license.expiring',
          licenseId: license.id,
          key: eventKey('license.expiring', license.id, expiresAt, threshold),
          date: expiresAt,
          daysUntilExpiry: days,
          threshold,
        });
      }
    } else if (expiresMs >= oldestMs) {
      events.push({
        type: 'license.expired',
        licenseId: license.id,
        key: eventKey('license.expired', license.id, expiresAt),
        date: expiresAt,
      });
    }
  }

  // A lifetime license can still have its update support end: that notice is about updates, not expiry.
  if ((license.status === 'active' || license.status === 'expired') && updatesUntil) {
    const untilMs = updatesUntil.getTime();
    if (untilMs <= nowMs && untilMs >= oldestMs) {
      events.push({
        type: 'license.update_support_expired',
        licenseId: license.id,
        key: eventKey('license.update_support_expired', license.id, updatesUntil),
        date: updatesUntil,
      });
    }
  }
  return events;
}

/** The date ranges a license must fall in to have any event due: the index-backed scan uses them. */
export function dueWindows(now: Date, policy: ExpirationPolicy): { oldest: Date; expiresBefore: Date } {
  const largestWarning = policy.warningDays.length === 0 ? -1 : Math.max(...policy.warningDays);
  return {
    oldest: new Date(now.getTime() - policy.lookbackDays * DAY_MS),
    // floor((expires - now) / day) <= largest  <=>  expires < now + (largest + 1) days
    expiresBefore: new Date(now.getTime() + (largestWarning + 1) * DAY_MS),
  };
}
