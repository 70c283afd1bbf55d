// Whether a notice that waited (deferred, parked, released, re-sent) still says what is true of its license; pure, `now` passed in.
import { clip } from '../clip.js';
import { plural } from '../plural.js';
import { formatUtc } from '../time.js';
import { EXPIRED_REMINDER } from './after-expiry.js';
import { dateInZone, startOfDayInZone } from './calendar.js';
import { parseEventKey, type RecordedEvent } from './rules.js';

/** What a delivery row says about the notice it carries. */
export interface WaitingNotice {
  eventType: string;
  /** Null for events about no license: sent as they are. */
  licenseId: number | null;
  /** The event key the notice was recorded under (`license.expiring:42:2026-12-10:7d`, or the first release's form). */
  eventKey: string;
  /** The instant the notice is about (`YYYY-MM-DDTHH:MM:SSZ`), when the row holds it. */
  eventInstant: string | null;
  /** Recorded by the run about to send it, from the license it has just read: nothing to check. */
  recordedByThisRun?: boolean;
}

/**
 * Whether a delivery was recorded by the run about to send it: a row added after the run's watermark (the
 * largest delivery id before it read the licenses) that has had no attempt yet. Anything else waited.
 */
export function recordedByThisRun(row: { id: number; attempts: number }, freshAfterId: number | undefined): boolean {
  return freshAfterId !== undefined && row.id > freshAfterId && row.attempts === 0;
}

/**
 * Whether a delivery that waited was recorded at the run's own rules instant (`--now`, or the clock when the run
 * began) and never attempted, while another worker of the same run was at work (several `process-expirations`
 * started together: see otherRunStartedTogether): that worker recorded it moments ago, from the licenses it had just
 * read. A warning's expiry is then judged at that instant, as the worker that recorded it judged it, so a catch-up
 * run sends what it records whichever of its workers sends it; the license is still read again (renewed, suspended,
 * deleted). A run alone judges every delivery that waited on the real clock.
 */
export function recordedAtRunInstant(row: { created_at: string; attempts: number }, rulesInstant: string | undefined): boolean {
  return rulesInstant !== undefined && row.attempts === 0 && row.created_at === rulesInstant;
}

/** The license as it is now: its status and dates (read in the business zone), a reason they cannot be read, or undefined when it was deleted. */
export type LicenseNow =
  | {
      status: string;
      expiresAt: Date | null;
      updatesUntil: Date | null;
      /**
       * Which of its dates are wall times, read in the business zone (a date alone, or a time with no offset), rather
       * than instants (a time with Z or an offset); unknown when left out.
       */
      wallTime?: { expiresAt: boolean; updatesUntil: boolean };
    }
  | { problem: string }
  | undefined;

/** Why a notice is superseded; `reason` is what the delivery row and the operator are told. */
type SupersededCode =
  'deleted' | 'unreadable' | 'suspended' | 'revoked' | 'renewed' | 'update-support-changed' | 'expiry-passed' | 'expired-recorded' | 'later-warning-recorded';

export type NoticeVerdict = { send: true } | { send: false; code: SupersededCode; reason: string };

const SEND: NoticeVerdict = { send: true };
const ABOUT_EXPIRY = new Set(['license.expiring', 'license.expired', EXPIRED_REMINDER]);

/**
 * Whether a waiting notice may still be sent at `now` (real time), given its license as it is now and the
 * events recorded for that license (any status, this notice's own row among them). Superseded when the
 * license was deleted, suspended or revoked; renewed to another expiry date (or made lifetime) for a notice
 * about the expiry; its update support moved for `license.update_support_expired`; and, for a warning, when
 * the expiry instant has passed, or when the `license.expired` of that expiry, or a later (smaller) warning of
 * it, is recorded: a receiver never gets "expires in 7 days" after "expires in 1 day" or after "expired".
 * Dates compare as calendar dates in `timeZone`, as the rules count them: a time-of-day edit that keeps the
 * date changes nothing. Notices about no license, and event types or keys this tool does not know, are sent.
 */
export function staleNotice(notice: WaitingNotice, license: LicenseNow, recorded: readonly RecordedEvent[], now: Date, timeZone: string): NoticeVerdict {
  if (notice.licenseId === null || notice.recordedByThisRun) return SEND;
  const about = parseEventKey(notice.eventKey, timeZone, notice.eventInstant);
  if (!about || about.type !== notice.eventType || about.licenseId !== notice.licenseId) return SEND;
  const type = notice.eventType;
  if (!ABOUT_EXPIRY.has(type) && type !== 'license.update_support_expired') return SEND;

  if (license === undefined) return superseded('deleted', `license ${notice.licenseId} no longer exists (deleted)`);
  // The problem quotes the stored value: cut so the reason fits its column (status_reason holds 2,048 characters).
  if ('problem' in license) return superseded('unreadable', `license ${notice.licenseId} can no longer be read: ${clip(license.problem, 500)}`);
  if (license.status === 'suspended' || license.status === 'revoked') return superseded(license.status, `license ${license.status}`);

  // The date the notice is about: its instant's date here when known (the same expiry whatever zone recorded it), else the key's.
  const day = about.instant ? dateInZone(new Date(about.instant), timeZone) : about.day;
  // A wall time (a date alone, or a time with no offset) is read in the zone that reads it: its stored instant was
  // read in the zone of the recording, which can fall on another date here after the business zone changed, while
  // its date here is still the key's. So a wall time compares with the key's date, an instant with its instant's
  // date here (unknown: midnight of the key's date is taken for a date alone).
  const sameDate = (value: Date, date: string | null, wallTime: boolean | undefined) =>
    wallTime === true
      ? date === about.day
      : wallTime === false
        ? date === day
        : date === day || (date === about.day && value.getTime() === startOfDayInZone(about.day, timeZone).getTime());
  if (type === 'license.update_support_expired') {
    const ends = license.updatesUntil === null ? null : dateInZone(license.updatesUntil, timeZone);
    if (license.updatesUntil === null || !sameDate(license.updatesUntil, ends, license.wallTime?.updatesUntil))
      return superseded(
        'update-support-changed',
        `update support changed: ${ends === null ? 'no end date any more' : `it now ends on ${ends}`} (this notice is about ${license.wallTime?.updatesUntil ? about.day : day})`,
      );
    return SEND;
  }
  const expiry = license.expiresAt === null ? null : dateInZone(license.expiresAt, timeZone);
  if (license.expiresAt === null || !sameDate(license.expiresAt, expiry, license.wallTime?.expiresAt))
    return superseded(
      'renewed',
      `license renewed: ${expiry === null ? 'no expiry date any more (lifetime)' : `it now expires on ${expiry}`} (this notice is about ${license.wallTime?.expiresAt ? about.day : day})`,
    );
  if (type !== 'license.expiring' || license.expiresAt === null) return SEND;

  if (license.expiresAt.getTime() <= now.getTime())
    return superseded('expiry-passed', `the license expired at ${formatUtc(license.expiresAt)}, before this warning could be sent`);
  const sameExpiry = (event: RecordedEvent) =>
    event.licenseId === notice.licenseId && (event.day === about.day || (about.instant !== undefined && event.instant === about.instant));
  if (recorded.some((event) => event.type === 'license.expired' && sameExpiry(event))) {
    return superseded('expired-recorded', `the license.expired of the same expiry date (${day}) is recorded already`);
  }
  const later = recorded.filter(
    (event) =>
      event.type === 'license.expiring' &&
      sameExpiry(event) &&
      event.threshold !== undefined &&
      about.threshold !== undefined &&
      event.threshold < about.threshold,
  );
  if (later.length > 0) {
    const nearest = Math.min(...later.map((event) => event.threshold!));
    return superseded('later-warning-recorded', `a later warning of the same expiry date (${plural(nearest, 'day')} before it) is recorded already`);
  }
  return SEND;
}

function superseded(code: SupersededCode, reason: string): NoticeVerdict {
  return { send: false, code, reason };
}

/**
 * The reasons staleNotice gives when the LICENSE no longer matched its notice (deleted, unreadable, suspended or
 * revoked, renewed, update support moved, expired before the warning could go), as the delivery row keeps them.
 * Not these: a notice made pointless by another one (the expired, a later warning: they stay recorded, and the rules
 * never call for it again), and what an operator ended (`endpoints enable --discard-parked`, `endpoints remove
 * --force`, a product's notices turned off): any text but these.
 */
const LICENSE_REASONS: readonly RegExp[] = [
  /^license \d+ no longer exists \(deleted\)$/,
  /^license \d+ can no longer be read: /,
  /^license (suspended|revoked)$/,
  /^license renewed: /,
  /^update support changed: /,
  /^the license expired at \S+, before this warning could be sent$/,
];

/**
 * Whether a superseded delivery was ended because of its license (see LICENSE_REASONS): such a notice is re-armed
 * when the rules call for its event again (the change was undone), since nothing was sent. What an operator ended
 * is never re-armed.
 */
export function supersededByLicense(reason: string | null): boolean {
  return reason !== null && LICENSE_REASONS.some((pattern) => pattern.test(reason));
}
