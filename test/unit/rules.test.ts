import { describe, expect, test } from '@jest/globals';
import { canonicalTimeZone, timeZoneProblem } from '../../src/config/schema.js';
import { addDays, dateInZone, daysBetween, parseInZone, startOfDayInZone } from '../../src/expirations/calendar.js';
import { decide, RecordedEvents, parseEventKey, scanBounds, type ExpirationPolicy, type LicenseDates } from '../../src/expirations/rules.js';

const now = new Date('2024-01-15T10:30:00Z');
const policy: ExpirationPolicy = { warningDays: [7, 1], lookbackDays: 7, timeZone: 'UTC' };
const HOUR = 3600 * 1000;

function license(overrides: Partial<LicenseDates>): LicenseDates {
  return { id: 1, status: 'active', expiresAt: null, updatesUntil: null, ...overrides };
}
const utc = (text: string) => new Date(text);
const events = (overrides: Partial<LicenseDates>, at = now, rules = policy) => decide(license(overrides), at, rules).events;
const expiring = (expiresAt: Date, at = now, rules = policy) => events({ expiresAt }, at, rules).filter((event) => event.type === 'license.expiring');

describe('calendar days in the business zone', () => {
  test('UTC, answered without Intl, gives the dates and day starts Intl gives for Etc/UTC', () => {
    // Every hour of a leap year and the days around it, and the instants either side of each.
    const from = Date.parse('2023-12-30T00:00:00Z');
    const differ: string[] = [];
    for (let instant = from; instant < from + 370 * 86_400_000; instant += 3_600_000) {
      for (const at of [instant - 1, instant, instant + 1]) {
        if (dateInZone(new Date(at), 'UTC') !== dateInZone(new Date(at), 'Etc/UTC')) differ.push(new Date(at).toISOString());
      }
    }
    expect(differ).toEqual([]);
    for (const date of ['2024-02-29', '2024-03-31', '2024-10-27', '2025-01-01'])
      expect(startOfDayInZone(date, 'UTC').toISOString()).toBe(startOfDayInZone(date, 'Etc/UTC').toISOString());
    expect(parseInZone('2024-03-10 02:30', 'UTC')?.instant.toISOString()).toBe('2024-03-10T02:30:00.000Z');
    // The settings still spell it as Intl does, and still refuse what is not a zone.
    expect([canonicalTimeZone('UTC'), canonicalTimeZone('utc'), timeZoneProblem('UTC'), timeZoneProblem('utc')]).toEqual(['UTC', 'UTC', undefined, undefined]);
    expect(timeZoneProblem('UTC+1')).toMatch(/not an IANA time zone/);
  });

  test('the reference fixture: expiring 2024-01-22T10:30:00Z at 2024-01-15T10:30:00Z is 7 days, keyed on the date', () => {
    const [event] = expiring(utc('2024-01-22T10:30:00Z'));
    expect(event).toMatchObject({ daysUntilExpiry: 7, threshold: 7, key: 'license.expiring:1:2024-01-22:7d' });
  });

  test('days count calendar dates, not 24-hour periods: any time on the 22nd is 7 days from any time on the 15th', () => {
    for (const time of ['2024-01-22T00:00:00Z', '2024-01-22T23:59:59Z']) {
      expect(expiring(utc(time), utc('2024-01-15T23:59:59Z'))[0]).toMatchObject({ daysUntilExpiry: 7, threshold: 7 });
    }
    expect(expiring(utc('2024-01-23T00:00:00Z'), utc('2024-01-15T23:59:59Z'))).toEqual([]);
  });

  test('a date alone ends at 00:00 of that date in the zone: on the day it is expired, the day before it is 1 day', () => {
    const expiresAt = parseInZone('2025-01-30', 'Europe/Berlin')!.instant;
    expect(expiresAt.toISOString()).toBe('2025-01-29T23:00:00.000Z');
    const berlin = { ...policy, timeZone: 'Europe/Berlin' };
    expect(events({ expiresAt }, utc('2025-01-29T22:59:59Z'), berlin)).toMatchObject([{ type: 'license.expiring', daysUntilExpiry: 1 }]);
    expect(events({ expiresAt }, utc('2025-01-29T23:00:00Z'), berlin)).toMatchObject([{ type: 'license.expired', day: '2025-01-30' }]);
  });

  test('DST never shifts a day count: Berlin midnight on the spring-forward day, a week to Berlin midnight', () => {
    const zone = 'Europe/Berlin';
    const run = startOfDayInZone('2025-03-30', zone);
    const expiry = startOfDayInZone('2025-04-06', zone);
    expect(run.toISOString()).toBe('2025-03-29T23:00:00.000Z');
    expect(expiry.toISOString()).toBe('2025-04-05T22:00:00.000Z');
    expect(expiring(expiry, run, { ...policy, timeZone: zone })[0]).toMatchObject({ daysUntilExpiry: 7, threshold: 7 });
  });

  test('parseInZone: a time without offset is a wall time in the zone; gaps and overlaps resolve', () => {
    expect(parseInZone('2025-07-01T10:00:00', 'America/Los_Angeles')!.instant.toISOString()).toBe('2025-07-01T17:00:00.000Z');
    expect(parseInZone('2025-07-01 10:00', 'Europe/Berlin')!.instant.toISOString()).toBe('2025-07-01T08:00:00.000Z');
    expect(parseInZone('2025-07-01T10:00:00+05:30', 'Europe/Berlin')!.instant.toISOString()).toBe('2025-07-01T04:30:00.000Z');
    // 02:30 does not exist on 2025-03-09 in Los Angeles: the clocks jump to 03:00 (10:00Z).
    expect(parseInZone('2025-03-09T02:30:00', 'America/Los_Angeles')!.instant.toISOString()).toBe('2025-03-09T10:30:00.000Z');
    // 01:30 happens twice on 2025-11-02 there: the first one.
    expect(parseInZone('2025-11-02T01:30:00', 'America/Los_Angeles')!.instant.toISOString()).toBe('2025-11-02T08:30:00.000Z');
    expect(parseInZone('2024-02-30', 'UTC')).toBeUndefined();
    expect(parseInZone('2024-01-01T24:00:00Z', 'UTC')).toBeUndefined();
    expect(parseInZone('next tuesday', 'UTC')).toBeUndefined();
  });

  test('dateInZone, daysBetween and addDays across month, year and DST boundaries', () => {
    expect(dateInZone(utc('2025-01-01T07:59:59Z'), 'America/Los_Angeles')).toBe('2024-12-31');
    expect(dateInZone(utc('2025-01-01T08:00:00Z'), 'America/Los_Angeles')).toBe('2025-01-01');
    expect(daysBetween('2024-12-31', '2025-03-01')).toBe(60);
    expect(daysBetween('2025-03-31', '2025-03-29')).toBe(-2);
    expect(addDays('2024-02-28', 1)).toBe('2024-02-29');
    expect(addDays('2025-03-01', -1)).toBe('2025-02-28');
  });
});

describe('license.expiring thresholds', () => {
  test('7,1: the 7-day notice between 7 and 2 days out, the 1-day notice at 1 and 0 days, with its own key', () => {
    const first = expiring(utc('2024-01-20T10:30:00Z'))[0]!;
    const second = expiring(utc('2024-01-16T08:00:00Z'))[0]!;
    expect(first).toMatchObject({ threshold: 7, daysUntilExpiry: 5 });
    expect(second).toMatchObject({ threshold: 1, daysUntilExpiry: 1 });
    expect(expiring(utc('2024-01-15T18:00:00Z'))[0]).toMatchObject({ threshold: 1, daysUntilExpiry: 0 });
    expect(second.key).not.toBe(first.key);
  });

  test('a time-of-day edit keeps the key; a new date gets new keys', () => {
    const a = expiring(utc('2024-01-20T10:30:00Z'))[0]!.key;
    expect(expiring(utc('2024-01-20T10:30:01Z'))[0]!.key).toBe(a);
    expect(expiring(utc('2024-01-20T00:00:00Z'))[0]!.key).toBe(a);
    expect(expiring(utc('2024-01-21T10:30:00Z'))[0]!.key).not.toBe(a);
  });

  test('no warning days: no license.expiring at all', () => {
    expect(expiring(utc('2024-01-16T10:30:00Z'), now, { ...policy, warningDays: [] })).toEqual([]);
  });

  test('a recorded notice at a threshold at most as large suppresses; a larger one does not', () => {
    const [event] = expiring(utc('2024-01-17T10:30:00Z'), now, { ...policy, warningDays: [3] });
    const one = { type: 'license.expiring', licenseId: 1, day: '2024-01-17', threshold: 1 };
    expect(new RecordedEvents([one]).covers(event!)).toBe(true);
    expect(new RecordedEvents([{ ...one, threshold: 3 }]).covers(event!)).toBe(true);
    expect(new RecordedEvents([{ ...one, threshold: 7 }]).covers(event!)).toBe(false);
    expect(
      new RecordedEvents([
        { ...one, day: '2024-01-18' },
        { ...one, licenseId: 2 },
        { type: 'license.update_support_expired', licenseId: 1, day: '2024-01-17' },
      ]).covers(event!),
    ).toBe(false);
  });

  test('a recorded license.expired of the same license and expiry covers every warning about it (a warning after it would contradict it)', () => {
    const [event] = expiring(utc('2024-01-22T10:30:00Z'));
    const expired = { type: 'license.expired', licenseId: 1, day: '2024-01-22' };
    expect(new RecordedEvents([expired]).covers(event!)).toBe(true);
    expect(new RecordedEvents([{ ...expired, day: '2024-01-21', instant: '2024-01-22T10:30:00Z' }]).covers(event!)).toBe(true);
    expect(
      new RecordedEvents([
        { ...expired, day: '2024-01-21' },
        { ...expired, licenseId: 2 },
      ]).covers(event!),
    ).toBe(false);
  });

  test('a record made in another time zone covers the same instant: a time-zone change never re-sends', () => {
    // 2025-01-30T23:30:00Z is the 30th in UTC and the 31st in Berlin.
    const berlin = { ...policy, timeZone: 'Europe/Berlin' };
    const [warning] = expiring(utc('2025-01-30T23:30:00Z'), utc('2025-01-24T08:00:00Z'), berlin);
    expect(warning).toMatchObject({ day: '2025-01-31', threshold: 7 });
    const inUtc = { type: 'license.expiring', licenseId: 1, day: '2025-01-30', threshold: 7, instant: '2025-01-30T23:30:00Z' };
    expect(new RecordedEvents([inUtc]).covers(warning!)).toBe(true);
    expect(new RecordedEvents([{ ...inUtc, instant: '2025-01-30T23:30:01Z' }]).covers(warning!)).toBe(false);
    const [expired] = events({ expiresAt: utc('2025-01-30T23:30:00Z') }, utc('2025-01-31T08:00:00Z'), berlin);
    expect(new RecordedEvents([{ type: 'license.expired', licenseId: 1, day: '2025-01-30', instant: '2025-01-30T23:30:00Z' }]).covers(expired!)).toBe(true);
  });
});

describe('license.expired and update support', () => {
  test('expired within lookback calendar days; older is expired with no event', () => {
    expect(decide(license({ expiresAt: utc('2024-01-08T00:00:00Z') }), now, policy)).toMatchObject({
      status: 'expired',
      beyondLookback: false,
      events: [{ type: 'license.expired' }],
    });
    expect(decide(license({ expiresAt: utc('2024-01-07T23:59:59Z') }), now, policy)).toEqual({ status: 'expired', beyondLookback: true, events: [] });
  });

  test('update support: on or before now and within lookback, for active and expired licenses', () => {
    for (const status of ['active', 'expired']) {
      expect(events({ status, expiresAt: utc('2025-01-01T00:00:00Z'), updatesUntil: now }).map((event) => event.type)).toEqual([
        'license.update_support_expired',
      ]);
    }
    expect(events({ updatesUntil: new Date(now.getTime() + 1000) })).toEqual([]);
    expect(events({ updatesUntil: utc('2024-01-07T12:00:00Z') })).toEqual([]);
  });

  test('suspended and revoked licenses get nothing; lifetime licenses get no expiry events', () => {
    for (const status of ['suspended', 'revoked']) {
      expect(decide(license({ status, expiresAt: new Date(now.getTime() + HOUR), updatesUntil: new Date(now.getTime() - HOUR) }), now, policy)).toEqual({
        events: [],
        beyondLookback: false,
      });
      expect(events({ status, expiresAt: new Date(now.getTime() - HOUR) })).toEqual([]);
    }
    expect(events({ expiresAt: null })).toEqual([]);
  });

  test('a stored expired status with a future expiry is active again', () => {
    const decision = decide(license({ status: 'expired', expiresAt: utc('2024-01-20T00:00:00Z') }), now, policy);
    expect(decision).toMatchObject({ status: 'active', events: [{ type: 'license.expiring', daysUntilExpiry: 5 }] });
  });

  test('an expired license made lifetime (no expires_at) is active again, and its update support still counts', () => {
    expect(decide(license({ status: 'expired', expiresAt: null }), now, policy)).toEqual({ status: 'active', beyondLookback: false, events: [] });
    expect(decide(license({ status: 'expired', expiresAt: null, updatesUntil: now }), now, policy).events.map((event) => event.type)).toEqual([
      'license.update_support_expired',
    ]);
  });

  test('a catch-up run earlier than the latest run: an expiry that run saw pass is neither warned about nor a renewal', () => {
    const expiresAt = utc('2025-01-30T00:00:00Z');
    const latestRun = utc('2025-01-31T08:00:00Z');
    const catchUp = utc('2025-01-23T08:00:00Z');
    // Without the later run it would be the 7-day warning and, for a stored `expired`, a renewal.
    expect(decide(license({ status: 'expired', expiresAt }), catchUp, policy)).toMatchObject({
      status: 'active',
      events: [{ type: 'license.expiring', daysUntilExpiry: 7 }],
    });
    expect(decide(license({ status: 'expired', expiresAt }), catchUp, policy, latestRun)).toEqual({ events: [], beyondLookback: false });
    expect(decide(license({ status: 'active', expiresAt }), catchUp, policy, latestRun)).toEqual({ events: [], beyondLookback: false });
    // An expiry after the latest run is ahead of both: warned, and a real renewal.
    expect(decide(license({ status: 'expired', expiresAt: utc('2025-02-01T00:00:00Z') }), catchUp, policy, latestRun)).toMatchObject({
      status: 'active',
      events: [],
    });
    expect(decide(license({ status: 'active', expiresAt: utc('2025-01-31T12:00:00Z') }), utc('2025-01-30T08:00:00Z'), policy, latestRun)).toMatchObject({
      events: [{ type: 'license.expiring', daysUntilExpiry: 1 }],
    });
    // A latest run before now changes nothing; the catch-up still announces what had expired by its own now.
    expect(decide(license({ status: 'expired', expiresAt }), latestRun, policy, catchUp)).toMatchObject({ events: [{ type: 'license.expired' }] });
    expect(decide(license({ expiresAt: utc('2025-01-20T00:00:00Z') }), catchUp, policy, latestRun)).toMatchObject({
      status: 'expired',
      events: [{ type: 'license.expired' }],
    });
  });
});

describe('event keys and scan bounds', () => {
  test('keys of the first release (UTC instants) map to the date in the zone', () => {
    expect(parseEventKey('license.expiring:5:2025-01-30T10:30:00Z:7d', 'UTC')).toEqual({
      type: 'license.expiring',
      licenseId: 5,
      day: '2025-01-30',
      threshold: 7,
      instant: '2025-01-30T10:30:00Z',
    });
    expect(parseEventKey('license.expired:5:2025-01-30T03:00:00Z', 'America/Los_Angeles')).toEqual({
      type: 'license.expired',
      licenseId: 5,
      day: '2025-01-29',
      instant: '2025-01-30T03:00:00Z',
    });
    expect(parseEventKey('license.expiring:5:2025-01-30:1d', 'Europe/Berlin')).toEqual({
      type: 'license.expiring',
      licenseId: 5,
      day: '2025-01-30',
      threshold: 1,
    });
    expect(parseEventKey('license.expiring:5:2025-01-30:1d', 'Europe/Berlin', '2025-01-29T23:00:00Z')).toMatchObject({
      day: '2025-01-30',
      instant: '2025-01-29T23:00:00Z',
    });
    expect(parseEventKey('something else', 'UTC')).toBeUndefined();
  });

  test('scan bounds are three days wider than the rules each way', () => {
    expect(scanBounds(now, policy)).toEqual({ today: '2024-01-15', fromDay: '2024-01-05', expiresBeforeDay: '2024-01-25', supportBeforeDay: '2024-01-18' });
  });
});
