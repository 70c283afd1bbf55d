import { describe, expect, test } from '@jest/globals';
import { everyHours, expectedEvents, schedule, simLicenses } from '../helpers/calendar-oracle.js';
import { simulate, sortEvents } from '../helpers/simulate.js';
import { forEachDialect } from '../helpers/workspace.js';

const FIRST_DAY = '2025-01-10';
const licenses = simLicenses('UTC', FIRST_DAY);

const SCHEDULES: Array<[string, number[]]> = [
  ['one run a day at 08:00 for 45 days', schedule(FIRST_DAY, 45, ['08:00'])],
  ['missed days (two of every five, then a nine-day outage)', schedule(FIRST_DAY, 45, ['08:00'], (index) => index % 5 === 2 || index % 5 === 3 || (index >= 20 && index < 29))],
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

// Dates and times go into the database as text and come back for each run: every dialect. The whole grid
// runs on SQLite; on the servers, where only the storage differs, the schedule with missed days and an
// outage (the one that leans on the recorded events most) runs for each set of warning days.
forEachDialect('day by day, UTC: each notice on the Botble day, nothing twice, nothing missed within lookbackDays', ({ workspace, dialect }) => {
  for (const warningDays of [[7, 1], [30, 14, 7, 3, 1]]) {
    for (const [name, runs] of dialect === 'sqlite' ? SCHEDULES : SCHEDULES.slice(1, 2)) {
      test(`warning days ${warningDays.join(',')}, ${name}`, async () => {
        const expected = sortEvents(expectedEvents('UTC', licenses, runs, warningDays, 7));
        // Every license is announced (123 expired, 11 update support, at least one notice each) unless the outage hid it.
        expect(expected.length).toBeGreaterThan(200);
        const { events, abandoned } = await simulate('UTC', licenses, runs, warningDays, 7, workspace);
        expect(abandoned).toBe(0);
        expect(events).toEqual(expected);
      }, 60_000);
    }
  }
});
