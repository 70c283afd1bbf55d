// src/expirations: the pure expiry rules (no I/O); it imports only src/time.ts and the wire vocabulary of src/webhooks.
import { formatUtc } from '../time.js';
import type { EventType } from '../webhooks/event-types.js';
import { addDays, dateInZone, daysBetween } from './calendar.js';

/** The rules of `process-expirations` (docs/contract.md): pure, no I/O, `now` passed in. */

export type { EventType } from '../webhooks/event-types.js';

export interface LicenseDates {
  id: number;
  status: string;
  expiresAt: Date | null;
  updatesUntil: Date | null;
}

export interface ExpirationPolicy {
  /** Whole days before expiry at which `license.expiring` is sent, e.g. [7, 1]; empty turns it off. */
  warningDays: readonly number[];
  /** How many calendar days back an expiry may lie and still be announced (at least 1). */
  lookbackDays: number;
  /** The IANA zone whose calendar days count. */
  timeZone: string;
}

export interface DueEvent {
  type: EventType;
  licenseId: number;
  /** What makes the event once-only: type, license, the date in the business zone and, for warnings, the threshold. */
  key: string;
  /** `expires_at` for expiring/expired, `updates_until` for update support: the instant. */
  date: Date;
  /** That instant's calendar date in the business zone. */
  day: string;
  /** Only for `license.expiring`. */
  daysUntilExpiry?: number;
  threshold?: number;
}

/** What the rules decide for one license. */
interface LicenseDecision {
  events: DueEvent[];
  /** The status the license should have: `expired` once it has passed, `active` again after a renewal. */
  status?: 'active' | 'expired';
  /** Expired longer ago than lookbackDays: it becomes `expired` with no event. */
  beyondLookback: boolean;
}

function eventKey(type: EventType, licenseId: number, day: string, threshold?: number): string {
  const base = `${type}:${licenseId}:${day}`;
  return threshold === undefined ? base : `${base}:${threshold}d`;
}

/** `expiry date - today` in whole calendar days of the business zone. */
export function daysUntilExpiry(expiresAt: Date, now: Date, timeZone: string): number {
  return daysBetween(dateInZone(now, timeZone), dateInZone(expiresAt, timeZone));
}

/** The smallest warning day at least `daysUntilExpiry`, if any. */
function warningThreshold(daysUntilExpiry: number, warningDays: readonly number[]): number | undefined {
  const reached = warningDays.filter((days) => daysUntilExpiry <= days);
  return reached.length === 0 ? undefined : Math.min(...reached);
}

/**
 * `expired` is derived: a license whose expiry is gone (made lifetime) or still ahead is active whatever was
 * stored. "Ahead" is of `seen`, the latest instant any run applied the rules at: a catch-up run with an earlier
 * --now does not renew a license a later run saw expire.
 */
function effectiveStatus(license: LicenseDates, seen: Date): string {
  if (license.status !== 'expired') return license.status;
  return license.expiresAt === null || license.expiresAt.getTime() > seen.getTime() ? 'active' : 'expired';
}

/**
 * The events due for one license at `now`, and the status it should have. `latestRun` is the latest instant an
 * earlier real run applied the rules at: when it is later than `now` (a catch-up run after the fact), an expiry
 * that run already saw pass is neither warned about nor taken for a renewal.
 */
export function decide(license: LicenseDates, now: Date, policy: ExpirationPolicy, latestRun?: Date): LicenseDecision {
  const decision: LicenseDecision = { events: [], beyondLookback: false };
  const today = dateInZone(now, policy.timeZone);
  const seen = latestRun && latestRun.getTime() > now.getTime() ? latestRun : now;
  const status = effectiveStatus(license, seen);
  if (status !== license.status) decision.status = 'active';
  const { expiresAt, updatesUntil } = license;

  if ((status === 'active' || status === 'expired') && expiresAt) {
    const day = dateInZone(expiresAt, policy.timeZone);
    // An expiry between this run's now and a later run's is left alone: that run saw it pass.
    if (expiresAt.getTime() > seen.getTime()) {
      const days = daysBetween(today, day);
      const threshold = warningThreshold(days, policy.warningDays);
      if (threshold !== undefined) {
        decision.events.push({
          type: 'license.expiring',
          licenseId: license.id,
          key: eventKey('license.expiring', license.id, day, threshold),
          date: expiresAt,
          day,
          daysUntilExpiry: days,
          threshold,
        });
      }
    } else if (expiresAt.getTime() <= now.getTime()) {
      if (status === 'active') decision.status = 'expired';
      if (daysBetween(day, today) <= policy.lookbackDays) {
        decision.events.push({ type: 'license.expired', licenseId: license.id, key: eventKey('license.expired', license.id, day), date: expiresAt, day });
      } else if (status === 'active') {
        decision.beyondLookback = true;
      }
    }
  }

  // A lifetime license can still have its update support end: that notice is about updates, not expiry.
  if ((status === 'active' || status === 'expired') && updatesUntil && updatesUntil.getTime() <= now.getTime()) {
    const day = dateInZone(updatesUntil, policy.timeZone);
    if (daysBetween(day, today) <= policy.lookbackDays) {
      decision.events.push({
        type: 'license.update_support_expired',
        licenseId: license.id,
        key: eventKey('license.update_support_expired', license.id, day),
        date: updatesUntil,
        day,
      });
    }
  }
  return decision;
}

/**
 * Text bounds ('YYYY-MM-DD' prefixes) for the index range scans. A stored value's text date and its date in
 * the business zone differ by at most two days (offsets up to ±14 h each way), so the bounds are three days
 * wider than the rules and the rules decide exactly. Everything below `fromDay` expired beyond the lookback.
 */
export function scanBounds(now: Date, policy: ExpirationPolicy): { today: string; fromDay: string; expiresBeforeDay: string; supportBeforeDay: string } {
  const today = dateInZone(now, policy.timeZone);
  const largestWarning = policy.warningDays.length === 0 ? 0 : Math.max(...policy.warningDays);
  return {
    today,
    fromDay: addDays(today, -policy.lookbackDays - 3),
    expiresBeforeDay: addDays(today, largestWarning + 3),
    supportBeforeDay: addDays(today, 3),
  };
}

/** An event as recorded under any key format: today's (`…:2025-01-30:7d`) or the first release's (`…:2025-01-30T10:30:00Z:7d`). */
export interface RecordedEvent {
  type: string;
  licenseId: number;
  /** The date in the business zone (of the run that recorded it) the event was about. */
  day: string;
  threshold?: number;
  /** The instant it was about (`YYYY-MM-DDTHH:MM:SSZ`), when known: the same expiry whatever zone recorded it. */
  instant?: string;
  /** The key it was recorded under, as stored (when the loader gives it). */
  key?: string;
  /**
   * This delivery of it (one endpoint's) ended superseded because of its license, was never delivered, and goes to an
   * endpoint that takes it: the rules calling for the event again re-arm it (see RecordedNotices.rearms).
   */
  rearmable?: boolean;
}

const KEY = /^(license\.[a-z_]+):(\d+):(\d{4}-\d{2}-\d{2})(T\d{2}:\d{2}:\d{2}Z)?(?::(\d+)d)?$/;

/**
 * Reads an event key of either format, with the instant recorded beside it (if any); the first release keyed
 * on the UTC instant, which is mapped to its zone date.
 */
export function parseEventKey(key: string, timeZone: string, instant?: string | null): RecordedEvent | undefined {
  const match = KEY.exec(key);
  if (!match) return undefined;
  const keyInstant = match[4] ? `${match[3]}${match[4]}` : undefined;
  const day = keyInstant ? dateInZone(new Date(keyInstant), timeZone) : match[3]!;
  const about = instant ?? keyInstant;
  return {
    type: match[1]!,
    licenseId: Number(match[2]),
    day,
    ...(match[5] === undefined ? {} : { threshold: Number(match[5]) }),
    ...(about ? { instant: about } : {}),
  };
}

/** Earlier records grouped by type, license and date (and by instant), for a lookup per event instead of a scan. */
export class RecordedEvents {
  private readonly byDate = new Map<string, Array<number | undefined>>();
  private readonly byInstant = new Map<string, Array<number | undefined>>();

  constructor(recorded: Iterable<RecordedEvent>) {
    const add = (map: Map<string, Array<number | undefined>>, key: string, threshold: number | undefined) => map.set(key, [...(map.get(key) ?? []), threshold]);
    for (const event of recorded) {
      add(this.byDate, `${event.type}:${event.licenseId}:${event.day}`, event.threshold);
      if (event.instant) add(this.byInstant, `${event.type}:${event.licenseId}:${event.instant}`, event.threshold);
    }
  }

  /** Thresholds recorded for this type, license and expiry: the same date, or the same instant (recorded in another zone). */
  private thresholds(type: string, event: Pick<DueEvent, 'licenseId' | 'day' | 'date'>): Array<number | undefined> {
    return [
      ...(this.byDate.get(`${type}:${event.licenseId}:${event.day}`) ?? []),
      ...(this.byInstant.get(`${type}:${event.licenseId}:${formatUtc(event.date)}`) ?? []),
    ];
  }

  /**
   * Whether an earlier record covers this event: the same type, license and expiry, and for a warning a
   * threshold at most as large (a smaller notice sent earlier makes a larger one pointless, and changing the
   * warning days never re-notifies). A warning is covered by the `expired` of the same expiry too: it would
   * contradict it.
   */
  /** Whether the license.expired of this license and expiry (its date in `timeZone`, or its instant) is recorded. */
  announcedExpired(licenseId: number, expiresAt: Date, timeZone: string): boolean {
    return this.thresholds('license.expired', { licenseId, day: dateInZone(expiresAt, timeZone), date: expiresAt }).length > 0;
  }

  covers(event: DueEvent): boolean {
    if (event.type === 'license.expiring' && this.thresholds('license.expired', event).length > 0) return true;
    const thresholds = this.thresholds(event.type, event);
    if (thresholds.length === 0) return false;
    if (event.threshold === undefined) return true;
    return thresholds.some((threshold) => threshold !== undefined && threshold <= event.threshold!);
  }
}
