import { describe, expect, test } from '@jest/globals';
import { dueReminder, reminderCovered } from '../../src/expirations/after-expiry.js';
import { addDays, dateInZone, parseInZone, startOfDayInZone } from '../../src/expirations/calendar.js';
import {
  forecast,
  forecastOptionsProblem,
  FORECAST_EVENT_TYPES,
  type ForecastEvent,
  type ForecastLicense,
  type ForecastOptions,
} from '../../src/expirations/forecast.js';
import { policyFor, type ProductSchedules } from '../../src/expirations/reminder-policy.js';
import { decide, parseEventKey, RecordedEvents, type DueEvent, type RecordedEvent } from '../../src/expirations/rules.js';

const GLOBAL = { warningDays: [7, 1], afterExpiryDays: [] };
const PRODUCTS: ProductSchedules = { PRO: { warningDays: [14, 3], afterExpiryDays: [1, 10] }, OFF: { enabled: false } };
const LOOKBACK = 7;

/** Storage's check, the way the job makes it: recorded keys parsed, reminders by their own rule. */
function storage(keys: string[], timeZone: string): (event: ForecastEvent) => boolean {
  const recorded = keys.map((key) => parseEventKey(key, timeZone)!);
  const earlier = new RecordedEvents(recorded);
  return (event) => (event.type === 'license.expired_reminder' ? reminderCovered(event, recorded) : earlier.covers(event));
}

function options(timeZone: string, from: string, recordedKeys: string[], decideRule: ForecastOptions['decide'] = decide): ForecastOptions {
  return {
    from,
    days: 30,
    lookbackDays: LOOKBACK,
    timeZone,
    schedule: (productId) => policyFor(productId, GLOBAL, PRODUCTS),
    covers: storage(recordedKeys, timeZone),
    decide: decideRule,
  };
}

function aLicense(id: number, productId: string | null, status: string, expiresAt: string | null, updatesUntil: string | null, zone: string): ForecastLicense {
  const read = (text: string | null) => (text === null ? null : parseInZone(text, zone)!.instant);
  return { id, productId, status, expiresAt: read(expiresAt), updatesUntil: read(updatesUntil) };
}

/** Only the days with notices, as `date: type=n …`, for a readable comparison. */
function busyDays(result: ReturnType<typeof forecast>): string[] {
  return result.days
    .map((day) => ({ date: day.date, found: Object.entries(day.counts).filter(([, count]) => count > 0) }))
    .filter((day) => day.found.length > 0)
    .map((day) => `${day.date}: ${day.found.map(([type, count]) => `${type.replace('license.', '')}=${count}`).join(' ')}`);
}

/**
 * The same 30 days as runs every 30 minutes (or `stepMinutes`; every expiry is on that grid, so each notice is
 * recorded by a run on the day it becomes due), with the job's pieces: decide, dueReminder and the
 * recorded-event checks. What each run records is counted on its date in the zone.
 */
function simulateRuns(licenses: ForecastLicense[], opts: ForecastOptions, stepMinutes = 30): string[] {
  const counts = new Map<string, Map<string, number>>();
  const states = licenses.map((license) => ({ license: { ...license }, recorded: [] as RecordedEvent[] }));
  const start = startOfDayInZone(opts.from, opts.timeZone).getTime();
  const end = startOfDayInZone(addDays(opts.from, opts.days), opts.timeZone).getTime();
  for (let time = start; time < end; time += stepMinutes * 60_000) {
    const now = new Date(time);
    const day = dateInZone(now, opts.timeZone);
    for (const state of states) {
      const schedule = opts.schedule(state.license.productId);
      if (!schedule.enabled) continue;
      const decision = decide(state.license, now, { warningDays: schedule.warningDays, lookbackDays: opts.lookbackDays, timeZone: opts.timeZone });
      const fresh: Array<DueEvent | NonNullable<ReturnType<typeof dueReminder>>> = decision.events.filter(
        (event) => !opts.covers(event) && !new RecordedEvents(state.recorded).covers(event),
      );
      const reminder = dueReminder(state.license, now, { afterExpiryDays: schedule.afterExpiryDays, lookbackDays: opts.lookbackDays, timeZone: opts.timeZone });
      if (reminder && !opts.covers(reminder) && !reminderCovered(reminder, state.recorded)) fresh.push(reminder);
      for (const event of fresh) {
        state.recorded.push(event);
        const byType = counts.get(day) ?? new Map<string, number>();
        byType.set(event.type, (byType.get(event.type) ?? 0) + 1);
        counts.set(day, byType);
      }
      if (decision.status) state.license.status = decision.status;
    }
  }
  return [...counts.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([date, byType]) => {
      const found = FORECAST_EVENT_TYPES.filter((type) => byType.has(type)).map((type) => `${type.replace('license.', '')}=${byType.get(type)}`);
      return `${date}: ${found.join(' ')}`;
    });
}

describe("licenses forecast: the day loop over today's rules", () => {
  const zone = 'Europe/Berlin';
  // 30 days from 03-20 to 04-18; the clocks go forward on 03-30. Products: PRO warns 14 and 3 days ahead and
  // reminds 1 and 10 days after; OFF sends nothing; everything else takes 7,1 and no reminders.
  const licenses = [
    aLicense(1, null, 'active', '2025-03-25', null, zone), // its 7-day warning is already recorded
    aLicense(2, 'PRO', 'active', '2025-04-05T21:30:00Z', null, zone), // 23:30 CEST on 04-05
    aLicense(3, 'OFF', 'active', '2025-03-28', '2025-03-28', zone),
    aLicense(4, null, 'suspended', '2025-03-26', null, zone),
    aLicense(5, null, 'active', null, '2025-04-10', zone), // lifetime, update support ends
    aLicense(6, null, 'expired', '2025-03-15', null, zone), // expired 5 days before the range, never announced
    aLicense(7, 'PRO', 'expired', '2025-03-12', null, zone), // beyond the lookback; its 1-day reminder is recorded
    aLicense(8, null, 'expired', '2025-04-12', null, zone), // renewed: `expired` stored, expiry ahead
    aLicense(9, null, 'active', '2025-05-20', null, zone), // too far ahead for any notice in the range
    aLicense(10, 'PRO', 'active', '2025-04-30', null, zone), // only its 14-day warning falls in the range
    aLicense(11, null, 'revoked', null, '2025-03-22', zone),
    aLicense(12, null, 'active', '2025-04-18T23:30:00+02:00', null, zone), // expires late on the last day
  ];
  const recorded = ['license.expiring:1:2025-03-25:7d', 'license.expired_reminder:7:2025-03-12:1d'];
  const opts = options(zone, '2025-03-20', recorded);

  test('hand-computed counts per day', () => {
    const result = forecast(licenses, opts);
    expect(result.days).toHaveLength(30);
    expect(result.days[0]!.date).toBe('2025-03-20');
    expect(result.days[29]!.date).toBe('2025-04-18');
    expect(busyDays(result)).toEqual([
      '2025-03-20: expired=1', // #6 caught up (5 days after its expiry, within the lookback)
      '2025-03-22: expiring=1 expired_reminder=1', // #2 at 14 days; #7's 10-day reminder
      '2025-03-24: expiring=1', // #1 at 1 day (7 days is recorded)
      '2025-03-25: expired=1', // #1
      '2025-04-02: expiring=1', // #2 at 3 days
      '2025-04-05: expiring=1 expired=1', // #8 at 7 days; #2 expires at 23:30: it counts on its day
      '2025-04-06: expired_reminder=1', // #2, 1 day after
      '2025-04-10: update_support_expired=1', // #5
      '2025-04-11: expiring=2', // #8 at 1 day, #12 at 7 days
      '2025-04-12: expired=1', // #8
      '2025-04-15: expired_reminder=1', // #2, 10 days after
      '2025-04-16: expiring=1', // #10 at 14 days
      '2025-04-17: expiring=1', // #12 at 1 day
      '2025-04-18: expired=1', // #12
    ]);
  });

  test("every type is in every day's counts, 0 included (the --json shape)", () => {
    const [first] = forecast(licenses, opts).days;
    expect(first).toEqual({
      date: '2025-03-20',
      counts: { 'license.expiring': 0, 'license.expired': 1, 'license.expired_reminder': 0, 'license.update_support_expired': 0 },
    });
  });

  test('agrees exactly with runs every 30 minutes over the same 30 days', () => {
    expect(busyDays(forecast(licenses, opts))).toEqual(simulateRuns(licenses, opts));
  });

  test('nothing recorded in storage: the recorded notices come back as catch-up on the first day', () => {
    const result = busyDays(forecast(licenses, options(zone, '2025-03-20', [])));
    expect(result[0]).toBe('2025-03-20: expiring=1 expired=1 expired_reminder=1');
  });

  test('a license too far from the range is never handed to the rules', () => {
    const seen = new Set<number>();
    const counting: ForecastOptions['decide'] = (license, now, policy) => {
      seen.add(license.id);
      return decide(license, now, policy);
    };
    forecast(licenses, options(zone, '2025-03-20', recorded, counting));
    expect(seen.has(9)).toBe(false);
    expect(seen.has(3)).toBe(false); // its product is off
    expect(seen.has(12)).toBe(true);
  });

  test.each([
    ['Europe/Berlin', '2025-03-15'],
    ['America/Los_Angeles', '2025-10-20'],
  ])('agrees with the simulated runs on 120 generated licenses in %s from %s (a DST change inside)', (timeZone, from) => {
    let seed = 21;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)]!;
    const instant = () => {
      // -40 to +50 days around the start, on the hour (the simulated runs' grid); half are dates alone.
      const day = addDays(from, Math.floor(random() * 90) - 40);
      return random() < 0.5 ? day : new Date(startOfDayInZone(day, timeZone).getTime() + Math.floor(random() * 24) * 3600_000).toISOString();
    };
    const generated: ForecastLicense[] = [];
    const keys: string[] = [];
    for (let id = 1; id <= 120; id += 1) {
      const license = aLicense(
        id,
        pick(['PRO', 'OFF', null, 'BASIC']),
        pick(['active', 'active', 'expired', 'suspended', 'revoked']),
        random() < 0.9 ? instant() : null,
        random() < 0.4 ? instant() : null,
        timeZone,
      );
      generated.push(license);
      if (license.expiresAt && random() < 0.2) keys.push(`license.expiring:${id}:${dateInZone(license.expiresAt, timeZone)}:7d`);
    }
    const opts = options(timeZone, from, keys);
    const result = busyDays(forecast(generated, opts));
    expect(result).toEqual(simulateRuns(generated, opts, 60));
    // The generated set does reach every type, so the agreement covers them all.
    const types = new Set(
      result.flatMap((line) =>
        line
          .split(' ')
          .slice(1)
          .map((token) => token.split('=')[0]!),
      ),
    );
    expect([...types].sort((a, b) => a.localeCompare(b))).toEqual(['expired', 'expired_reminder', 'expiring', 'update_support_expired']);
  });

  test('bad options are named', () => {
    expect(forecastOptionsProblem({ from: '2025-02-30', days: 30, lookbackDays: 7 })).toBe('"2025-02-30" is not a date (YYYY-MM-DD)');
    expect(forecastOptionsProblem({ from: 'tomorrow', days: 30, lookbackDays: 7 })).toBe('"tomorrow" is not a date (YYYY-MM-DD)');
    expect(forecastOptionsProblem({ from: '2025-03-01', days: 0, lookbackDays: 7 })).toBe('the number of days must be a whole number of at least 1, not 0');
    expect(forecastOptionsProblem({ from: '2025-03-01', days: 2.5, lookbackDays: 7 })).toBe('the number of days must be a whole number of at least 1, not 2.5');
    expect(forecastOptionsProblem({ from: '2025-03-01', days: 30, lookbackDays: 7 })).toBeUndefined();
    expect(() => forecast([], { ...opts, days: -1 })).toThrow('forecast: the number of days must be a whole number of at least 1, not -1');
  });
});
