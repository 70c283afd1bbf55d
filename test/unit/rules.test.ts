import { describe, expect, test } from '@jest/globals';
import { dueEvents, dueWindows, type LicenseDates } from '../../src/expirations/rules.js';
import { parseUtc } from '../../src/time.js';

const now = new Date('2024-01-15T10:30:00Z');
const policy = { warningDays: [7, 1], lookbackDays: 7 };
const at = (offsetMs: number) => new Date(now.getTime() + offsetMs);
const SECOND = 1000;
const HOUR = 3600 * SECOND;
const DAY = 24 * HOUR;

function license(overrides: Partial<LicenseDates>): LicenseDates {
  return { id: 1, status: 'active', expiresAt: null, updatesUntil: null, ...overrides };
}

const expiring = (expiresAt: Date, rules = policy) =>
  dueEvents(license({ expiresAt }), now, rules).filter((event) => event.type === 'license.expiring');

describe('license.expiring thresholds', () => {
  test('the reference fixture: expiring 2024-01-22T10:30:00Z at 2024-01-15T10:30:00Z is 7 days', () => {
    const [event] = expiring(new Date('2024-01-22T10:30:00Z'));
    expect(event).toMatchObject({ daysUntilExpiry: 7, threshold: 7, key: 'license.expiring:1:2024-01-22T10:30:00Z:7d' });
  });

  test('exactly 7 days, 7 days + 1 s and 6 days 23 h all fall under the 7-day threshold', () => {
    expect(expiring(at(7 * DAY))[0]).toMatchObject({ daysUntilExpiry: 7, threshold: 7 });
    expect(expiring(at(7 * DAY + SECOND))[0]).toMatchObject({ daysUntilExpiry: 7, threshold: 7 });
    expect(expiring(at(6 * DAY + 23 * HOUR))[0]).toMatchObject({ daysUntilExpiry: 6, threshold: 7 });
  });

  test('8 days away (floor 8) is not yet due; 1 ms less is', () => {
    expect(expiring(at(8 * DAY))).toEqual([]);
    expect(expiring(at(8 * DAY - 1))[0]).toMatchObject({ daysUntilExpiry: 7 });
  });

  test('7,1 gives a second notice under 2 days, with its own key', () => {
    const first = expiring(at(5 * DAY))[0]!;
    const second = expiring(at(1 * DAY + 12 * HOUR))[0]!;
    expect(first.threshold).toBe(7);
    expect(second.threshold).toBe(1);
    expect(second.key).not.toBe(first.key);
  });

  test('a run that finds several thresholds passed sends only the smallest', () => {
    const events = expiring(at(10 * HOUR));
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ daysUntilExpiry: 0, threshold: 1 });
  });

  test('a renewal (new expires_at) gives new keys, so notices re-arm', () => {
    const before = expiring(at(3 * DAY))[0]!;
    const after = expiring(at(3 * DAY + 365 * DAY), { warningDays: [400], lookbackDays: 7 })[0]!;
    expect(after.key).not.toBe(before.key);
  });

  test('one instant past expiry is expired, not expiring', () => {
    expect(expiring(now)).toEqual([]);
    expect(dueEvents(license({ expiresAt: now }), now, policy).map((event) => event.type)).toEqual(['license.expired']);
  });
});

describe('license.expired and update support', () => {
  test('expired within lookback; older than lookback is not announced', () => {
    expect(dueEvents(license({ expiresAt: at(-7 * DAY) }), now, policy).map((event) => event.type)).toEqual(['license.expired']);
    expect(dueEvents(license({ expiresAt: at(-7 * DAY - SECOND) }), now, policy)).toEqual([]);
  });

  test('update support: at or before now and within lookback, for active and expired licenses', () => {
    for (const status of ['active', 'expired']) {
      const events = dueEvents(license({ status, expiresAt: at(300 * DAY), updatesUntil: now }), now, policy);
      expect(events.map((event) => event.type)).toEqual(['license.update_support_expired']);
    }
    expect(dueEvents(license({ expiresAt: at(300 * DAY), updatesUntil: at(SECOND) }), now, policy)).toEqual([]);
    expect(dueEvents(license({ expiresAt: at(300 * DAY), updatesUntil: at(-8 * DAY) }), now, policy)).toEqual([]);
  });

  test('suspended and revoked licenses get nothing; lifetime licenses get no expiry events', () => {
    for (const status of ['suspended', 'revoked']) {
      expect(dueEvents(license({ status, expiresAt: at(HOUR), updatesUntil: at(-HOUR) }), now, policy)).toEqual([]);
      expect(dueEvents(license({ status, expiresAt: at(-HOUR) }), now, policy)).toEqual([]);
    }
    expect(dueEvents(license({ expiresAt: null }), now, policy)).toEqual([]);
  });

  test('a lifetime license whose update support ended still gets that notice', () => {
    const events = dueEvents(license({ expiresAt: null, updatesUntil: at(-HOUR) }), now, policy);
    expect(events.map((event) => event.type)).toEqual(['license.update_support_expired']);
  });

  test('an expired-status license gets no second expired notice', () => {
    expect(dueEvents(license({ status: 'expired', expiresAt: at(-HOUR) }), now, policy)).toEqual([]);
  });
});

describe('due windows and date parsing', () => {
  test('the scan window spans lookback to the day after the largest threshold', () => {
    expect(dueWindows(now, policy)).toEqual({ oldest: at(-7 * DAY), expiresBefore: at(8 * DAY) });
  });

  test('dates: date-only is midnight UTC, no offset means UTC, impossible dates are rejected', () => {
    expect(parseUtc('2024-01-22')?.toISOString()).toBe('2024-01-22T00:00:00.000Z');
    expect(parseUtc('2024-01-22T10:30:00')?.toISOString()).toBe('2024-01-22T10:30:00.000Z');
    expect(parseUtc('2024-01-22T10:30:00+02:00')?.toISOString()).toBe('2024-01-22T08:30:00.000Z');
    expect(parseUtc('2024-02-30')).toBeUndefined();
    expect(parseUtc('next tuesday')).toBeUndefined();
  });
});
