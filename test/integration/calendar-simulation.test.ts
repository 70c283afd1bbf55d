import { describe, expect, test } from '@jest/globals';
import { everyHours, expectedEvents, schedule, simLicenses } from '../helpers/calendar-oracle.js';
import { simulate, simulatePlan, sortEvents } from '../helpers/simulate.js';
import { forEachDialect } from '../helpers/workspace.js';

const FIRST_DAY = '2025-01-10';
const licenses = simLicenses('UTC', FIRST_DAY);

const SCHEDULES: Array<[string, number[]]> = [
  ['one run a day at 08:00 for 45 days', schedule(FIRST_DAY, 45, ['08:00'])],
  [
    'missed days (two of every five, then a nine-day outage)',
    schedule(FIRST_DAY, 45, ['08:00'], (index) => index % 5 === 2 || index % 5 === 3 || (index >= 20 && index < 29)),
  ],
  ['two runs a day, 00:05 and 23:55', schedule(FIRST_DAY, 45, ['00:05', '23:55'])],
  ['every five hours', everyHours(FIRST_DAY, 45, 5, 1)],
];

describe('the calendar oracle', () => {
  test('the oracle agrees with the contract example: a date alone 2025-01-30, 7,1, daily 08:00 UTC', () => {
    // Stated by hand from the contract: 7 days on the 23rd, 1 day on the 29th, expired on the 30th.
    const one = simLicenses('UTC', '2025-01-30').filter((license) => license.code === 'D0');
    expect(expectedEvents('UTC', one, schedule('2025-01-20', 12, ['08:00']), [7, 1], 7)).toEqual([
      { at: '2025-01-23T08:00:00Z', code: 'D0', type: 'license.expiring', date: '2025-01-30T00:00:00Z', days: 7 },
      { at: '2025-01-29T08:00:00Z', code: 'D0', type: 'license.expiring', date: '2025-01-30T00:00:00Z', days: 1 },
      { at: '2025-01-30T08:00:00Z', code: 'D0', type: 'license.expired', date: '2025-01-30T00:00:00Z' },
    ]);
  });
});

// The whole grid through the pure planner: every schedule's calendar days, thresholds and catch-ups, with what
// each run recorded carried to the next (test/helpers/simulate.ts simulatePlan).
describe('day by day, UTC, the planner: each notice on the Botble day, nothing twice, nothing missed within lookbackDays', () => {
  for (const warningDays of [
    [7, 1],
    [30, 14, 7, 3, 1],
  ]) {
    for (const [name, runs] of SCHEDULES) {
      test(`warning days ${warningDays.join(',')}, ${name}`, () => {
        const expected = sortEvents(expectedEvents('UTC', licenses, runs, warningDays, 7));
        // Every license is announced (123 expired, 11 update support, at least one notice each) unless the outage hid it.
        expect(expected.length).toBeGreaterThan(200);
        expect(simulatePlan('UTC', licenses, runs, warningDays, 7)).toEqual(expected);
      });
    }
  }
});

// Dates and times go into the database as text and come back for each run, and the job records, sends and
// reads back what it recorded: every dialect, SQLite included, runs the schedule with missed days and an outage
// (the one that leans on the recorded events most) for each set of warning days.
forEachDialect('day by day, UTC, the job: the same notices with the database and a receiver', ({ workspace }) => {
  for (const warningDays of [
    [7, 1],
    [30, 14, 7, 3, 1],
  ]) {
    const [name, runs] = SCHEDULES[1]!;
    test(`warning days ${warningDays.join(',')}, ${name}`, async () => {
      const expected = sortEvents(expectedEvents('UTC', licenses, runs, warningDays, 7));
      const { events, abandoned } = await simulate('UTC', licenses, runs, warningDays, 7, workspace);
      expect(abandoned).toBe(0);
      expect(events).toEqual(expected);
    }, 60_000);
  }
});

// The time-zone setting changed between runs (UTC, Berlin, Los Angeles, UTC again), and catch-up runs replayed
// after later runs: licenses with a time of day (the date-alone ones change instant with the zone).
const withTimes = licenses.filter((license) => !license.code.startsWith('D'));
const zoneOf = (now: number) => {
  const day = Math.floor((now - Date.parse(`${FIRST_DAY}T00:00:00Z`)) / 86_400_000);
  return day < 10 ? 'UTC' : day < 20 ? 'Europe/Berlin' : day < 30 ? 'America/Los_Angeles' : 'UTC';
};
const daily = schedule(FIRST_DAY, 45, ['08:00']);
// The job misses days 10 to 19 and runs on day 20; then the operator replays days 10 to 19 (catch-ups after
// the fact), and the job goes on from day 21.
const replayed = [...daily.slice(0, 10), daily[20]!, ...daily.slice(10, 20), ...daily.slice(21)];

describe('the calendar oracle, for zone changes and late catch-ups', () => {
  test('a zone change does not repeat a notice; a catch-up after the fact sends no warning about an expiry already passed', () => {
    const [one] = withTimes.filter((license) => license.code === 'U10');
    // U10 expires 2025-01-20T02:30:00Z: a 7-day warning on 01-13, 1 day on 01-19 (in Berlin too), expired on 01-20.
    expect(expectedEvents(zoneOf, [one!], daily, [7, 1], 7).map((event) => `${event.at.slice(0, 10)} ${event.type} ${event.days ?? '-'}`)).toEqual([
      '2025-01-13 license.expiring 7',
      '2025-01-19 license.expiring 1',
      '2025-01-20 license.expired -',
    ]);
    const lines = (code: string) =>
      expectedEvents(
        'UTC',
        withTimes.filter((license) => license.code === code),
        replayed,
        [7, 1],
        7,
      ).map((event) => `${event.at.slice(0, 10)} ${event.type} ${event.days ?? '-'}`);
    // U15 (2025-01-25T03:30:00Z) is announced expired by the run of 01-30: the catch-up of 01-24 sends no 1-day warning after it.
    expect(lines('U15')).toEqual(['2025-01-18 license.expiring 7', '2025-01-30 license.expired -']);
    // U10 (01-20) was 10 days past on 01-30, beyond lookbackDays: the catch-up of 01-20 announces it.
    expect(lines('U10')).toEqual(['2025-01-13 license.expiring 7', '2025-01-19 license.expiring 1', '2025-01-20 license.expired -']);
  });
});

forEachDialect('time zone changed between runs, and catch-up runs after the fact: nothing twice, nothing contradicting', ({ workspace }) => {
  for (const warningDays of [
    [7, 1],
    [30, 14, 7, 3, 1],
  ]) {
    test(`warning days ${warningDays.join(',')}: UTC, Berlin, Los Angeles, UTC`, async () => {
      const expected = sortEvents(expectedEvents(zoneOf, withTimes, daily, warningDays, 7));
      expect(expected.length).toBeGreaterThan(100);
      const { events, abandoned } = await simulate(zoneOf, withTimes, daily, warningDays, 7, workspace);
      expect(abandoned).toBe(0);
      expect(events).toEqual(expected);
    }, 120_000);

    test(`warning days ${warningDays.join(',')}: days 10 to 19 missed, then replayed after the run of day 20`, async () => {
      const expected = sortEvents(expectedEvents('UTC', licenses, replayed, warningDays, 7));
      const { events, abandoned } = await simulate('UTC', licenses, replayed, warningDays, 7, workspace);
      expect(abandoned).toBe(0);
      expect(events).toEqual(expected);
    }, 120_000);
  }
});
