import { describe, expect, test } from '@jest/globals';
import { dueReminder, expiredReminderPayload, reminderCovered, type AfterExpiryPolicy } from '../../src/expirations/after-expiry.js';
import { parseInZone } from '../../src/expirations/calendar.js';
import { parseEventKey, type LicenseDates } from '../../src/expirations/rules.js';
import { buildEventBody, type EventSubject } from '../../src/webhooks/payload.js';

const license = (expiresAt: Date | null, status = 'active'): LicenseDates => ({ id: 5, status, expiresAt, updatesUntil: null });
const at = (text: string) => new Date(text);
const reminder = (expiresAt: Date, now: string, policy: AfterExpiryPolicy, status = 'active') => dueReminder(license(expiresAt, status), at(now), policy);

// Every expected value below is worked out by hand from the zone's offsets, not from the code.
describe('license.expired_reminder across DST in Europe/Berlin (CET +1, CEST +2 from 2025-03-30 01:00Z to 2025-10-26 01:00Z)', () => {
  const policy: AfterExpiryPolicy = { afterExpiryDays: [1, 7], lookbackDays: 7, timeZone: 'Europe/Berlin' };
  // `2025-03-29` alone: 00:00 CET that day, 2025-03-28T23:00Z.
  const expiresAt = parseInZone('2025-03-29', 'Europe/Berlin')!.instant;

  test('the reminder 1 day after: from 00:00 on 03-30 Berlin, not a second before', () => {
    expect(expiresAt.toISOString()).toBe('2025-03-28T23:00:00.000Z');
    expect(reminder(expiresAt, '2025-03-29T22:59:59Z', policy)).toBeUndefined();
    expect(reminder(expiresAt, '2025-03-29T23:00:00Z', policy)).toEqual({
      type: 'license.expired_reminder',
      licenseId: 5,
      key: 'license.expired_reminder:5:2025-03-29:1d',
      date: expiresAt,
      day: '2025-03-29',
      threshold: 1,
      daysSinceExpiry: 1,
    });
  });

  test('7 days after counts calendar days across the spring-forward night: 04-05 00:00 CEST is 2025-04-04T22:00Z, 6 days 23 hours after the expiry', () => {
    // 23:59:59 CEST on 04-04 is 6 calendar days: still reminder 1, caught up 5 days late.
    expect(reminder(expiresAt, '2025-04-04T21:59:59Z', policy)).toMatchObject({
      threshold: 1,
      daysSinceExpiry: 6,
      key: 'license.expired_reminder:5:2025-03-29:1d',
    });
    expect(reminder(expiresAt, '2025-04-04T22:00:00Z', policy)).toMatchObject({
      threshold: 7,
      daysSinceExpiry: 7,
      key: 'license.expired_reminder:5:2025-03-29:7d',
    });
  });

  test('across the fall-back night: expires 12:00 CEST on 10-25; 7 days later is 00:00 CET on 11-01 (10-31T23:00Z)', () => {
    const noon = at('2025-10-25T10:00:00Z');
    const sevenOnly = { ...policy, afterExpiryDays: [7] };
    expect(reminder(noon, '2025-10-25T21:59:59Z', policy)).toBeUndefined();
    expect(reminder(noon, '2025-10-25T22:00:00Z', policy)).toMatchObject({ threshold: 1, daysSinceExpiry: 1, day: '2025-10-25' });
    expect(reminder(noon, '2025-10-31T22:59:59Z', sevenOnly)).toBeUndefined();
    expect(reminder(noon, '2025-10-31T23:00:00Z', sevenOnly)).toMatchObject({ threshold: 7, daysSinceExpiry: 7 });
    // Caught up after missed runs: 11-08 23:59:59 CET is 14 days after, 7 days late, the last day it may go.
    expect(reminder(noon, '2025-11-08T22:59:59Z', sevenOnly)).toMatchObject({ threshold: 7, daysSinceExpiry: 14 });
    expect(reminder(noon, '2025-11-08T23:00:00Z', sevenOnly)).toBeUndefined();
  });
});

describe('license.expired_reminder across DST in America/Los_Angeles (PST -8, PDT -7 from 2025-03-09 10:00Z)', () => {
  const policy: AfterExpiryPolicy = { afterExpiryDays: [1, 3], lookbackDays: 2, timeZone: 'America/Los_Angeles' };
  // 20:00 PST on 03-08, which is already 03-09 in UTC.
  const expiresAt = at('2025-03-08T20:00:00-08:00');

  test('the expiry date is the date in the zone, not in UTC', () => {
    expect(expiresAt.toISOString()).toBe('2025-03-09T04:00:00.000Z');
    expect(reminder(expiresAt, '2025-03-09T07:59:59Z', policy)).toBeUndefined();
    expect(reminder(expiresAt, '2025-03-09T08:00:00Z', policy)).toMatchObject({ day: '2025-03-08', threshold: 1, daysSinceExpiry: 1 });
  });

  test('after the clocks go forward, days start at 07:00Z: reminder 3 from 00:00 PDT on 03-11', () => {
    expect(reminder(expiresAt, '2025-03-11T06:59:59Z', policy)).toMatchObject({ threshold: 1, daysSinceExpiry: 2 });
    expect(reminder(expiresAt, '2025-03-11T07:00:00Z', policy)).toMatchObject({
      threshold: 3,
      daysSinceExpiry: 3,
      key: 'license.expired_reminder:5:2025-03-08:3d',
    });
  });

  test('catch-up reaches lookbackDays past the day and no further', () => {
    expect(reminder(expiresAt, '2025-03-13T07:00:00Z', policy)).toMatchObject({ threshold: 3, daysSinceExpiry: 5 });
    expect(reminder(expiresAt, '2025-03-14T06:59:59Z', policy)).toMatchObject({ threshold: 3, daysSinceExpiry: 5 });
    expect(reminder(expiresAt, '2025-03-14T07:00:00Z', policy)).toBeUndefined();
  });

  test('after the clocks go back (2025-11-02 09:00Z), 00:00 PST is 08:00Z', () => {
    const late = at('2025-11-01T23:30:00-07:00');
    expect(reminder(late, '2025-11-02T06:59:59Z', policy)).toBeUndefined();
    expect(reminder(late, '2025-11-02T07:00:00Z', policy)).toMatchObject({ day: '2025-11-01', threshold: 1 });
    expect(reminder(late, '2025-11-04T07:59:59Z', policy)).toMatchObject({ threshold: 1, daysSinceExpiry: 2 });
    expect(reminder(late, '2025-11-04T08:00:00Z', policy)).toMatchObject({ threshold: 3, daysSinceExpiry: 3 });
  });
});

describe('which reminder, and for whom', () => {
  const policy: AfterExpiryPolicy = { afterExpiryDays: [30, 1, 7], lookbackDays: 7, timeZone: 'UTC' };
  const expiresAt = at('2025-01-10T00:00:00Z');

  test('one reminder per run: the largest N that is due, with the true day count', () => {
    const on = (day: string) => reminder(expiresAt, `${day}T12:00:00Z`, policy);
    expect(on('2025-01-10')).toBeUndefined();
    expect(on('2025-01-11')).toMatchObject({ threshold: 1, daysSinceExpiry: 1 });
    expect(on('2025-01-16')).toMatchObject({ threshold: 1, daysSinceExpiry: 6 });
    expect(on('2025-01-17')).toMatchObject({ threshold: 7, daysSinceExpiry: 7 });
    expect(on('2025-01-24')).toMatchObject({ threshold: 7, daysSinceExpiry: 14 });
    expect(on('2025-01-25')).toBeUndefined();
    expect(on('2025-02-09')).toMatchObject({ threshold: 30, daysSinceExpiry: 30 });
    expect(on('2025-02-17')).toBeUndefined();
  });

  test('none for a renewed, suspended, revoked or lifetime license, and none with no after-expiry days', () => {
    const now = '2025-01-11T12:00:00Z';
    expect(reminder(expiresAt, now, policy, 'expired')).toMatchObject({ threshold: 1 });
    // Renewed: `expired` stored by an earlier run, but the expiry is now ahead.
    expect(reminder(at('2025-02-10T00:00:00Z'), now, policy, 'expired')).toBeUndefined();
    expect(reminder(expiresAt, now, policy, 'suspended')).toBeUndefined();
    expect(reminder(expiresAt, now, policy, 'revoked')).toBeUndefined();
    expect(dueReminder(license(null), at(now), policy)).toBeUndefined();
    expect(reminder(expiresAt, now, { ...policy, afterExpiryDays: [] })).toBeUndefined();
  });

  test('a new expiry date is a new key: the renewed license gets its reminders again', () => {
    const first = reminder(expiresAt, '2025-01-11T12:00:00Z', policy)!;
    const second = reminder(at('2025-03-01T00:00:00Z'), '2025-03-02T12:00:00Z', policy)!;
    expect(first.key).toBe('license.expired_reminder:5:2025-01-10:1d');
    expect(second.key).toBe('license.expired_reminder:5:2025-03-01:1d');
  });
});

describe('reminderCovered', () => {
  const due = { licenseId: 5, day: '2025-01-10', threshold: 7, date: new Date('2025-01-10T12:00:00Z') };
  const recorded = (key: string) => [parseEventKey(key, 'UTC')!];

  test('the key reads back with its N as the threshold', () => {
    expect(parseEventKey('license.expired_reminder:5:2025-01-10:7d', 'UTC')).toEqual({
      type: 'license.expired_reminder',
      licenseId: 5,
      day: '2025-01-10',
      threshold: 7,
    });
  });

  test('covered by the same N or a larger one for the same license and date; not by a smaller N, another date, license or type', () => {
    expect(reminderCovered(due, recorded('license.expired_reminder:5:2025-01-10:7d'))).toBe(true);
    expect(reminderCovered(due, recorded('license.expired_reminder:5:2025-01-10:30d'))).toBe(true);
    expect(reminderCovered(due, recorded('license.expired_reminder:5:2025-01-10:1d'))).toBe(false);
    expect(reminderCovered(due, recorded('license.expired_reminder:5:2025-02-10:7d'))).toBe(false);
    expect(reminderCovered(due, recorded('license.expired_reminder:6:2025-01-10:7d'))).toBe(false);
    expect(reminderCovered(due, recorded('license.expiring:5:2025-01-10:7d'))).toBe(false);
    expect(reminderCovered(due, recorded('license.expired:5:2025-01-10'))).toBe(false);
  });

  test('covered by a record of the same expiry instant under another date: the business zone changed since (a value with a time of day)', () => {
    // Sent while the zone was UTC: 23:30Z on the 30th. In Berlin now, the same instant is the 31st: the same expiry.
    const late = reminder(new Date('2025-01-30T23:30:00Z'), '2025-02-03T08:00:00Z', { afterExpiryDays: [3, 14], lookbackDays: 7, timeZone: 'Europe/Berlin' })!;
    expect([late.day, late.threshold]).toEqual(['2025-01-31', 3]);
    const sentInUtc = [parseEventKey('license.expired_reminder:5:2025-01-30:3d', 'Europe/Berlin', '2025-01-30T23:30:00Z')!];
    expect(reminderCovered(late, sentInUtc)).toBe(true);
    // Another instant on that date is another expiry (renewed): not covered by it.
    expect(reminderCovered(late, [parseEventKey('license.expired_reminder:5:2025-01-30:3d', 'Europe/Berlin', '2025-01-30T10:00:00Z')!])).toBe(false);
  });
});

describe('the body', () => {
  const subject: EventSubject = {
    license_id: 5,
    license_code: 'LIC-5',
    product_id: 'PROD-001',
    product_reference_id: 'Pro Plan',
    customer_id: 'C-9',
    email: 'a@example.com',
  };
  const expiresAt = at('2025-03-28T23:00:00Z');
  const timestamp = at('2025-04-04T22:00:07.250Z');

  test("license.expired's body byte for byte, with the reminder type and days_since_expiry right after expired_at", () => {
    expect(expiredReminderPayload(subject, expiresAt, 7, timestamp)).toBe(
      '{"event_type":"license.expired_reminder","timestamp":"2025-04-04T22:00:07Z","payload":{"license_id":5,"license_code":"LIC-5","product_id":"PROD-001",' +
        '"product_reference_id":"Pro Plan","customer_id":"C-9","email":"a@example.com","expired_at":"2025-03-28T23:00:00Z","days_since_expiry":7}}',
    );
  });

  test('null fields and characters JSON escapes come out exactly as in license.expired', () => {
    const odd: EventSubject = { ...subject, license_code: 'L"\\\u2028é', product_id: null, product_reference_id: null, customer_id: null, email: null };
    const body = expiredReminderPayload(odd, expiresAt, 12, timestamp);
    const expired = buildEventBody({ type: 'license.expired', expiresAt }, odd, timestamp);
    expect(body.replace('"license.expired_reminder"', '"license.expired"').replace(',"days_since_expiry":12', '')).toBe(expired);
    expect(body).toContain(
      '"product_id":null,"product_reference_id":null,"customer_id":null,"email":null,"expired_at":"2025-03-28T23:00:00Z","days_since_expiry":12}}',
    );
  });
});
