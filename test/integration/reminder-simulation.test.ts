import { describe, expect, test } from '@jest/globals';
import { expectedEvents, plusDays, schedule, simLicenses, type OraclePolicy, type SimLicense } from '../helpers/calendar-oracle.js';
import { simulate, simulatePlan, sortEvents } from '../helpers/simulate.js';
import { workspace as sqliteWorkspace, forEachDialect } from '../helpers/workspace.js';

/**
 * Day by day with per-product schedules and after-expiry reminders, across the 2025 spring DST change, against
 * the independent oracle (test/helpers/calendar-oracle.ts, written from the contract's "Reminder policy").
 */
const POLICY: OraclePolicy = {
  afterExpiryDays: [3],
  products: { PRO: { warningDays: [14, 3], afterExpiryDays: [1, 10] }, LITE: { warningDays: [5], afterExpiryDays: [] }, OFF: { enabled: false } },
};
const PRODUCTS = ['PRO', 'LITE', undefined, 'OFF'];

function withProducts(licenses: SimLicense[]): SimLicense[] {
  return licenses.map((license) => {
    const k = Number(license.code.slice(1));
    const product = PRODUCTS[k % PRODUCTS.length];
    return product === undefined ? license : { ...license, product };
  });
}

// Berlin changes to summer time on 2025-03-30, Los Angeles on 2025-03-09: the licenses expire around and after.
const BERLIN_FIRST = '2025-03-15';
const LA_FIRST = '2025-03-01';

describe('the oracle, for per-product schedules and after-expiry reminders', () => {
  test('stated by hand from the contract: PRO 14,3 and 1,10; the global 7,1 and 3; LITE 5 and none; OFF nothing', () => {
    const lines = (code: string) =>
      expectedEvents(
        'Europe/Berlin',
        withProducts(simLicenses('Europe/Berlin', '2025-03-31')).filter((license) => license.code === code),
        schedule('2025-03-10', 35, ['07:00']),
        [7, 1],
        7,
        POLICY,
      ).map((event) => `${event.at.slice(0, 10)} ${event.type} ${event.days ?? '-'}`);
    // D0 (PRO) expires on 2025-03-31 (a date alone, Berlin; summer time from the 30th), its update support on 04-02.
    expect(lines('D0')).toEqual([
      '2025-03-17 license.expiring 14',
      '2025-03-28 license.expiring 3',
      '2025-03-31 license.expired -',
      '2025-04-01 license.expired_reminder 1',
      '2025-04-02 license.update_support_expired -',
      '2025-04-10 license.expired_reminder 10',
    ]);
    // D1 (LITE) on 04-01: one warning at 5 days, no reminder.
    expect(lines('D1')).toEqual(['2025-03-27 license.expiring 5', '2025-04-01 license.expired -']);
    // D2 (global) on 04-02: 7 and 1 days, then 3 days after.
    expect(lines('D2')).toEqual([
      '2025-03-26 license.expiring 7',
      '2025-04-01 license.expiring 1',
      '2025-04-02 license.expired -',
      '2025-04-05 license.expired_reminder 3',
    ]);
    // D3 (OFF): nothing at all.
    expect(lines('D3')).toEqual([]);
  });
});

const CASES: Array<[string, string, SimLicense[], number[]]> = [
  [
    'Europe/Berlin, one run a day at 07:00 UTC',
    'Europe/Berlin',
    withProducts(simLicenses('Europe/Berlin', BERLIN_FIRST)),
    schedule(BERLIN_FIRST, 50, ['07:00']),
  ],
  [
    'America/Los_Angeles, missed days (two of every five, then a nine-day outage), runs at 15:00 UTC',
    'America/Los_Angeles',
    withProducts(simLicenses('America/Los_Angeles', LA_FIRST)),
    schedule(LA_FIRST, 50, ['15:00'], (index) => index % 5 === 2 || index % 5 === 3 || (index >= 20 && index < 29)),
  ],
];

// The planner alone (no database): every case, the product schedules and reminders included.
describe('day by day with two products on their own schedules and after-expiry reminders, the planner', () => {
  for (const [name, zone, licenses, runs] of CASES) {
    test(name, () => {
      expect(simulatePlan(zone, licenses, runs, [7, 1], 7, POLICY)).toEqual(sortEvents(expectedEvents(zone, licenses, runs, [7, 1], 7, POLICY)));
    });
  }
});

forEachDialect('day by day with two products on their own schedules and after-expiry reminders, across DST', ({ workspace, dialect }) => {
  for (const [name, zone, licenses, runs] of dialect === 'sqlite' ? CASES : CASES.slice(1)) {
    test(
      name,
      async () => {
        const expected = sortEvents(expectedEvents(zone, licenses, runs, [7, 1], 7, POLICY));
        expect(expected.filter((event) => event.type === 'license.expired_reminder').length).toBeGreaterThan(20);
        const { events, abandoned } = await simulate(zone, licenses, runs, [7, 1], 7, workspace, POLICY);
        expect(abandoned).toBe(0);
        expect(events).toEqual(expected);
      },
      180_000,
    );
  }
});

describe('licenses forecast against the runs it forecasts', () => {
  test('30 days from 2025-03-15 in Berlin (DST on the 30th): the forecast equals what runs at 00:05 and 23:55 local time send, day by day and type by type', async () => {
    const zone = 'Europe/Berlin';
    const licenses = withProducts(simLicenses(zone, '2025-03-10'));
    const config = { expirations: { warningDays: [7, 1], lookbackDays: 7, timeZone: zone, ...POLICY } };
    // The forecast first, from the data alone (nothing recorded yet), in a workspace of its own with the same licenses.
    const forecastWs = sqliteWorkspace(config);
    await forecastWs.seed(
      licenses.map((license) => ({
        license_code: license.code,
        expires_at: license.expiresAt,
        updates_until: license.updatesUntil,
        ...(license.product ? { product_id: license.product } : {}),
      })),
    );
    const forecast = await forecastWs.cli(['licenses', 'forecast', '--from', BERLIN_FIRST, '--days', '30', '--json']);
    expect(forecast.code).toBe(0);
    const forecastLines = (JSON.parse(forecast.stdout) as { days: Array<{ date: string; counts: Record<string, number> }> }).days.flatMap((day) =>
      Object.entries(day.counts)
        .filter(([, count]) => count > 0)
        .map(([type, count]) => `${day.date} ${type} ${count}`),
    );

    // Two runs a local day, at 00:05 (what is due from 00:00) and 23:55 (everything due by the end of the day): each
    // notice goes out on the day it becomes due, which is the day the forecast counts it on (no time here is 00:01-00:04).
    const runs = Array.from({ length: 30 }, (_, index) => {
      const date = plusDays(BERLIN_FIRST, index);
      const morning = Date.parse(`${plusDays(date, -1)}T${date >= '2025-03-31' ? '22' : '23'}:05:00Z`);
      return [morning, Date.parse(`${date}T${date >= '2025-03-30' ? '21' : '22'}:55:00Z`)];
    }).flat();
    const { events, abandoned } = await simulate(zone, licenses, runs, [7, 1], 7, undefined, POLICY);
    expect(abandoned).toBe(0);
    const sent = new Map<string, number>();
    for (const event of events) {
      const localDate = new Date(Date.parse(event.at) + (event.at >= '2025-03-30T01:00:00Z' ? 2 : 1) * 3_600_000).toISOString().slice(0, 10);
      const key = `${localDate} ${event.type}`;
      sent.set(key, (sent.get(key) ?? 0) + 1);
    }
    const order = ['license.expiring', 'license.expired', 'license.expired_reminder', 'license.update_support_expired'];
    const sentLines = [...sent]
      .sort(([a], [b]) => a.slice(0, 10).localeCompare(b.slice(0, 10)) || order.indexOf(a.slice(11)) - order.indexOf(b.slice(11)))
      .map(([key, count]) => `${key} ${count}`);
    expect(sentLines.length).toBeGreaterThan(40);
    expect(forecastLines.join('\n')).toEqual(sentLines.join('\n'));
  }, 180_000);
});
