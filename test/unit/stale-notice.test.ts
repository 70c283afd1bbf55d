import { describe, expect, test } from '@jest/globals';
import { parseInZone } from '../../src/expirations/calendar.js';
import { parseEventKey, type RecordedEvent } from '../../src/expirations/rules.js';
import {
  recordedAtRunInstant,
  recordedByThisRun,
  staleNotice,
  supersededByLicense,
  type LicenseNow,
  type WaitingNotice,
} from '../../src/expirations/stale-notice.js';

const ZONE = 'UTC';
const now = new Date('2026-12-08T10:00:00Z');
const at = (text: string) => new Date(text);

/** A license as the run reads it now: active, expiring on the 10th at noon, update support to the 1st. */
function license(overrides: Partial<Exclude<LicenseNow, undefined | { problem: string }>> = {}): LicenseNow {
  return { status: 'active', expiresAt: at('2026-12-10T12:00:00Z'), updatesUntil: at('2026-12-01T00:00:00Z'), ...overrides };
}

const expiring7: WaitingNotice = {
  eventType: 'license.expiring',
  licenseId: 42,
  eventKey: 'license.expiring:42:2026-12-10:7d',
  eventInstant: '2026-12-10T12:00:00Z',
};
const expiring1: WaitingNotice = { ...expiring7, eventKey: 'license.expiring:42:2026-12-10:1d' };
const expired: WaitingNotice = { eventType: 'license.expired', licenseId: 42, eventKey: 'license.expired:42:2026-12-10', eventInstant: '2026-12-10T12:00:00Z' };
const reminder: WaitingNotice = {
  eventType: 'license.expired_reminder',
  licenseId: 42,
  eventKey: 'license.expired_reminder:42:2026-12-10:3d',
  eventInstant: '2026-12-10T12:00:00Z',
};
const support: WaitingNotice = {
  eventType: 'license.update_support_expired',
  licenseId: 42,
  eventKey: 'license.update_support_expired:42:2026-12-01',
  eventInstant: '2026-12-01T00:00:00Z',
};

/** Records as the loader parses them from webhook_deliveries (the notice's own row among them). */
const records = (...notices: WaitingNotice[]): RecordedEvent[] => notices.map((notice) => parseEventKey(notice.eventKey, ZONE, notice.eventInstant)!);

// A deleted license is `undefined` to the rule; here it is named, since a default parameter would take undefined for "not given".
const verdict = (notice: WaitingNotice, current: LicenseNow | 'unchanged' | 'deleted' = 'unchanged', recorded = records(notice), when = now, zone = ZONE) =>
  staleNotice(notice, current === 'unchanged' ? license() : current === 'deleted' ? undefined : current, recorded, when, zone);

describe('superseded: each reason', () => {
  test('the license was deleted', () => {
    for (const notice of [expiring7, expired, reminder, support]) {
      expect(verdict(notice, 'deleted')).toEqual({ send: false, code: 'deleted', reason: 'license 42 no longer exists (deleted)' });
    }
  });

  test('the license can no longer be read (its dates became garbage)', () => {
    expect(verdict(expired, { problem: 'expires_at "soon" is not a date' })).toEqual({
      send: false,
      code: 'unreadable',
      reason: 'license 42 can no longer be read: expires_at "soon" is not a date',
    });
    // A long stored value is cut: the reason fits status_reason.
    const long = verdict(expired, { problem: `expires_at "${'x'.repeat(5000)}" is not a date` });
    expect(long).toMatchObject({ send: false, code: 'unreadable' });
    expect(long.send === false && long.reason.length).toBe('license 42 can no longer be read: '.length + 500);
  });

  test('suspended or revoked: no notice of any kind', () => {
    for (const notice of [expiring7, expired, reminder, support]) {
      expect(verdict(notice, license({ status: 'suspended' }))).toEqual({ send: false, code: 'suspended', reason: 'license suspended' });
      expect(verdict(notice, license({ status: 'revoked' }))).toEqual({ send: false, code: 'revoked', reason: 'license revoked' });
    }
  });

  test('renewed to another expiry date: the expiring, expired and reminder notices of the old date', () => {
    const renewed = license({ expiresAt: at('2027-12-10T12:00:00Z') });
    for (const notice of [expiring7, expired, reminder]) {
      expect(verdict(notice, renewed)).toEqual({
        send: false,
        code: 'renewed',
        reason: 'license renewed: it now expires on 2027-12-10 (this notice is about 2026-12-10)',
      });
    }
    // A day earlier is another date too (a correction), and so is a date moved by a few hours across midnight.
    expect(verdict(expiring7, license({ expiresAt: at('2026-12-09T23:59:59Z') }))).toMatchObject({ send: false, code: 'renewed' });
    expect(verdict(expiring7, license({ expiresAt: at('2026-12-11T00:00:00Z') }))).toMatchObject({ send: false, code: 'renewed' });
  });

  test('made lifetime (expires_at emptied)', () => {
    expect(verdict(expired, license({ expiresAt: null }))).toEqual({
      send: false,
      code: 'renewed',
      reason: 'license renewed: no expiry date any more (lifetime) (this notice is about 2026-12-10)',
    });
  });

  test('update support moved or removed: update_support_expired of the old date', () => {
    expect(verdict(support, license({ updatesUntil: at('2027-06-01T00:00:00Z') }))).toEqual({
      send: false,
      code: 'update-support-changed',
      reason: 'update support changed: it now ends on 2027-06-01 (this notice is about 2026-12-01)',
    });
    expect(verdict(support, license({ updatesUntil: null }))).toMatchObject({
      send: false,
      code: 'update-support-changed',
      reason: expect.stringContaining('no end date any more'),
    });
  });

  test('a warning whose expiry instant has passed on the real clock is never sent ("expires in 1 day" after it expired)', () => {
    expect(verdict(expiring1, 'unchanged', records(expiring1), at('2026-12-10T12:00:00Z'))).toEqual({
      send: false,
      code: 'expiry-passed',
      reason: 'the license expired at 2026-12-10T12:00:00Z, before this warning could be sent',
    });
    // One second earlier it still goes out.
    expect(verdict(expiring1, 'unchanged', records(expiring1), at('2026-12-10T11:59:59Z'))).toEqual({ send: true });
  });

  test('a warning is never sent after the license.expired of the same license and expiry date is recorded', () => {
    // The expiry has not passed on this clock (a catch-up run recorded the expired): the recorded expired alone decides.
    expect(verdict(expiring1, 'unchanged', records(expiring1, expired))).toEqual({
      send: false,
      code: 'expired-recorded',
      reason: 'the license.expired of the same expiry date (2026-12-10) is recorded already',
    });
  });

  test('a warning is never sent after a later (smaller) warning of the same expiry date is recorded', () => {
    expect(verdict(expiring7, 'unchanged', records(expiring7, expiring1))).toEqual({
      send: false,
      code: 'later-warning-recorded',
      reason: 'a later warning of the same expiry date (1 day before it) is recorded already',
    });
  });

  test('the expired recorded under the first release key (the UTC instant) matches by instant', () => {
    const firstRelease: WaitingNotice = { ...expired, eventKey: 'license.expired:42:2026-12-10T12:00:00Z', eventInstant: null };
    expect(verdict(expiring1, 'unchanged', records(expiring1, firstRelease))).toMatchObject({ send: false, code: 'expired-recorded' });
  });
});

describe('still sent', () => {
  test('nothing changed', () => {
    for (const notice of [expiring7, expired, reminder, support]) expect(verdict(notice)).toEqual({ send: true });
  });

  test('a time-of-day edit that keeps the date changes nothing (expiry and update support)', () => {
    const edited = license({ expiresAt: at('2026-12-10T18:30:00Z'), updatesUntil: at('2026-12-01T23:00:00Z') });
    for (const notice of [expiring7, expired, reminder, support]) expect(verdict(notice, edited)).toEqual({ send: true });
  });

  test('the dates compare in the business zone: a date-only expiry in Berlin is 23:00Z the day before', () => {
    const zone = 'Europe/Berlin';
    const expiresAt = parseInZone('2026-12-10', zone)!.instant;
    const notice: WaitingNotice = { ...expired, eventInstant: '2026-12-09T23:00:00Z' };
    expect(staleNotice(notice, license({ expiresAt }), [], at('2026-12-11T09:00:00Z'), zone)).toEqual({ send: true });
    // The same license moved to 10:00 Berlin time of the same date: the same date there.
    expect(staleNotice(notice, license({ expiresAt: parseInZone('2026-12-10T10:00:00', zone)!.instant }), [], at('2026-12-11T09:00:00Z'), zone)).toEqual({
      send: true,
    });
    // Moved to the next date there: renewed.
    expect(staleNotice(notice, license({ expiresAt: parseInZone('2026-12-11', zone)!.instant }), [], at('2026-12-11T09:00:00Z'), zone)).toMatchObject({
      send: false,
      code: 'renewed',
    });
  });

  test('a date-only value after the business zone moved west: the same date, so the same expiry (its instant was midnight in the old zone)', () => {
    // Recorded in Tokyo: the stored instant is midnight there, 15:00Z the day before; read in UTC now, the license is
    // midnight UTC of the same date. Before, the instant's date in UTC (the 9th) said "renewed", and the notice was
    // superseded, re-armed and superseded again by every run.
    const when = at('2026-12-09T10:00:00Z');
    const fromTokyo = (notice: WaitingNotice, instant: string): WaitingNotice => ({ ...notice, eventInstant: instant });
    const dateOnly = license({ expiresAt: parseInZone('2026-12-10', 'UTC')!.instant, updatesUntil: parseInZone('2026-12-01', 'UTC')!.instant });
    const known = { wallTime: { expiresAt: true, updatesUntil: true } };
    for (const notice of [
      fromTokyo(expiring7, '2026-12-09T15:00:00Z'),
      fromTokyo(expired, '2026-12-09T15:00:00Z'),
      fromTokyo(reminder, '2026-12-09T15:00:00Z'),
    ]) {
      expect([notice.eventType, staleNotice(notice, dateOnly, [], notice.eventType === 'license.expiring' ? when : at('2026-12-13T10:00:00Z'), 'UTC')]).toEqual(
        [notice.eventType, { send: true }],
      );
    }
    expect(staleNotice(fromTokyo(support, '2026-11-30T15:00:00Z'), dateOnly, [], when, 'UTC')).toEqual({ send: true });
    // A renewal is still one: another date in the zone now.
    const renewed = license({ expiresAt: parseInZone('2026-12-11', 'UTC')!.instant, updatesUntil: parseInZone('2026-12-02', 'UTC')!.instant });
    expect(staleNotice(fromTokyo(expired, '2026-12-09T15:00:00Z'), renewed, [], at('2026-12-13T10:00:00Z'), 'UTC')).toMatchObject({
      send: false,
      code: 'renewed',
    });
    expect(staleNotice(fromTokyo(support, '2026-11-30T15:00:00Z'), renewed, [], when, 'UTC')).toMatchObject({ send: false, code: 'update-support-changed' });
    // The same with the kind of each value known (as a run reads it): a date alone compares with the notice's date, so a
    // date moved back a day across the zone change is a renewal, though that date is the old instant's date here.
    for (const notice of [fromTokyo(expired, '2026-12-09T15:00:00Z'), fromTokyo(reminder, '2026-12-09T15:00:00Z')])
      expect(staleNotice(notice, { ...(dateOnly as object), ...known } as LicenseNow, [], at('2026-12-13T10:00:00Z'), 'UTC')).toEqual({ send: true });
    const movedBack = license({ expiresAt: parseInZone('2026-12-09', 'UTC')!.instant, updatesUntil: parseInZone('2026-11-30', 'UTC')!.instant });
    expect(
      staleNotice(fromTokyo(expired, '2026-12-09T15:00:00Z'), { ...(movedBack as object), ...known } as LicenseNow, [], at('2026-12-13T10:00:00Z'), 'UTC'),
    ).toEqual({
      send: false,
      code: 'renewed',
      reason: 'license renewed: it now expires on 2026-12-09 (this notice is about 2026-12-10)',
    });
    expect(staleNotice(fromTokyo(support, '2026-11-30T15:00:00Z'), { ...(movedBack as object), ...known } as LicenseNow, [], when, 'UTC')).toMatchObject({
      send: false,
      code: 'update-support-changed',
    });
    // A time with no offset is a wall time too: 00:30 on the 10th in Tokyo is 15:30Z on the 9th; read in UTC now it
    // is 00:30 on the 10th, the notice's date (its instant's date here, the 9th, said "renewed").
    const localHalfPast = license({ expiresAt: parseInZone('2026-12-10T00:30:00', 'UTC')!.instant });
    expect(
      staleNotice(fromTokyo(expired, '2026-12-09T15:30:00Z'), { ...(localHalfPast as object), ...known } as LicenseNow, [], at('2026-12-13T10:00:00Z'), 'UTC'),
    ).toEqual({
      send: true,
    });
    // A value with a time of day is judged by its instant, as before: moved to 10:00 UTC of the 10th, it is another expiry
    // than the 9th 15:00Z the notice is about (the 9th in UTC).
    const timed = license({ expiresAt: at('2026-12-10T10:00:00Z') });
    expect(staleNotice(fromTokyo(expired, '2026-12-09T15:00:00Z'), timed, [], at('2026-12-13T10:00:00Z'), 'UTC')).toMatchObject({
      send: false,
      code: 'renewed',
    });
  });

  test('a license derived expired (status expired) still gets its expired notice and reminder', () => {
    for (const notice of [expired, reminder])
      expect(verdict(notice, license({ status: 'expired' }), records(notice), at('2026-12-13T10:00:00Z'))).toEqual({ send: true });
  });

  test('a smaller warning sent after a larger one, and an expired of another (older) expiry date, do not supersede a warning', () => {
    expect(verdict(expiring1, 'unchanged', records(expiring1, expiring7))).toEqual({ send: true });
    const oldExpired: WaitingNotice = { ...expired, eventKey: 'license.expired:42:2025-12-10', eventInstant: '2025-12-10T12:00:00Z' };
    expect(verdict(expiring1, 'unchanged', records(expiring1, oldExpired))).toEqual({ send: true });
    // Another license's expired of the same date is no business of this one.
    const other: WaitingNotice = { ...expired, licenseId: 43, eventKey: 'license.expired:43:2026-12-10' };
    expect(verdict(expiring1, 'unchanged', records(expiring1, other))).toEqual({ send: true });
  });

  test('a delivery recorded by this very run is sent as recorded, whatever the check would say', () => {
    // A catch-up run (--now in the past) records a warning whose expiry has passed on the real clock.
    const fresh = { ...expiring1, recordedByThisRun: true };
    expect(verdict(fresh, 'unchanged', records(fresh, expired), at('2026-12-11T00:00:00Z'))).toEqual({ send: true });
    expect(verdict(fresh, 'deleted')).toEqual({ send: true });
  });

  test('deliveries about no license (license_id null), and event types or keys this tool does not know, are sent', () => {
    expect(verdict({ ...expired, licenseId: null }, 'deleted')).toEqual({ send: true });
    // send-test-event's sample has no delivery row; a row of another writer with a key this tool never makes is not judged.
    expect(verdict({ eventType: 'license.test', licenseId: 42, eventKey: 'test:42', eventInstant: null }, 'deleted')).toEqual({ send: true });
    expect(verdict({ ...expired, eventKey: 'license.expired:7:2026-12-10' }, 'deleted')).toEqual({ send: true });
  });
});

describe('recordedByThisRun: which deliveries waited', () => {
  test('after the watermark and never attempted: recorded by this run', () => {
    expect(recordedByThisRun({ id: 11, attempts: 0 }, 10)).toBe(true);
  });
  test('at or below the watermark (an earlier run), attempted before (deferred, released, re-sent), or no watermark (deliveries retry): waited', () => {
    expect(recordedByThisRun({ id: 10, attempts: 0 }, 10)).toBe(false);
    expect(recordedByThisRun({ id: 11, attempts: 1 }, 10)).toBe(false);
    expect(recordedByThisRun({ id: 11, attempts: 0 }, undefined)).toBe(false);
  });
});

describe('recordedAtRunInstant: a warning another worker of the same run recorded', () => {
  const instant = '2025-01-15T08:00:00Z';
  test("recorded at the run's own rules instant and never attempted: judged at that instant", () => {
    expect(recordedAtRunInstant({ created_at: instant, attempts: 0 }, instant)).toBe(true);
  });
  test('another instant (an earlier run), attempted before, or no instant given (a run with no worker started with it, deliveries retry): judged now', () => {
    expect(recordedAtRunInstant({ created_at: '2025-01-15T07:59:59Z', attempts: 0 }, instant)).toBe(false);
    expect(recordedAtRunInstant({ created_at: instant, attempts: 1 }, instant)).toBe(false);
    expect(recordedAtRunInstant({ created_at: instant, attempts: 0 }, undefined)).toBe(false);
  });
});

describe('supersededByLicense: which superseded notices a rules run may re-arm', () => {
  const reasonOf = (result: ReturnType<typeof verdict>) => (result.send ? undefined : result.reason);
  test('every reason of the license itself (deleted, unreadable, suspended, revoked, renewed, made lifetime, update support moved, expired first)', () => {
    const reasons = [
      verdict(expired, 'deleted'),
      verdict(expired, { problem: 'expires_at "soon" is not a date' }),
      verdict(expired, license({ status: 'suspended' })),
      verdict(expired, license({ status: 'revoked' })),
      verdict(expired, license({ expiresAt: at('2027-12-10T12:00:00Z') })),
      verdict(expired, license({ expiresAt: null })),
      verdict(support, license({ updatesUntil: at('2027-06-01T00:00:00Z') })),
      verdict(expiring1, 'unchanged', records(expiring1), at('2026-12-10T12:00:00Z')),
    ].map(reasonOf);
    expect(reasons.every((reason) => reason !== undefined)).toBe(true);
    for (const reason of reasons) expect([reason, supersededByLicense(reason!)]).toEqual([reason, true]);
  });

  test('not another notice that made it pointless, nor what an operator ended, nor no reason', () => {
    for (const reason of [
      reasonOf(verdict(expiring1, 'unchanged', records(expiring1, expired))),
      reasonOf(verdict(expiring7, 'unchanged', records(expiring7, expiring1))),
      'notices for product PROD-001 are turned off (expirations.products.PROD-001.enabled is false)',
      'discarded by "endpoints enable crm --discard-parked" at 2026-12-08T10:00:00Z',
      'endpoint crm removed with "endpoints remove crm --force" at 2026-12-08T10:00:00Z',
    ]) {
      expect([reason, supersededByLicense(reason!)]).toEqual([reason, false]);
    }
    expect(supersededByLicense(null)).toBe(false);
  });
});
