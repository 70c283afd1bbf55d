import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from '@jest/globals';
import { everyHours, expectedEvents, schedule, simLicenses, type SimEvent } from '../helpers/calendar-oracle.js';
import { simulate, simulatePlan, sortEvents } from '../helpers/simulate.js';
import { tempDir } from '../helpers/temp-dir.js';
import { forEachDialect } from '../helpers/workspace.js';

/**
 * The day-by-day simulation in Europe/Berlin and America/Los_Angeles across both 2025 DST changes. The
 * machine's TZ must never change an answer, and jest cannot change TZ in-process, so the parent spawns this
 * same file under three machine TZ values; each child checks the oracle and writes what it saw. Each child runs
 * every case through the pure planner (planExpirations, the calendar, the event keys and bodies: everything that
 * does date arithmetic). Two cases, one per business zone and DST change, also go through the whole job on SQLite
 * (the licenses' dates and the event keys go into the database as text and come back for each run): both under a
 * machine zone west of UTC whose own DST changes during them, one of them under the farthest zone east of it. The server
 * dialects store the same text whatever the machine's TZ: calendar-simulation.test.ts runs the job on each of
 * them (the zone setting changing between runs included), and dialects.test.ts proves their drivers' DATE
 * handling under two machine zones.
 */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const RESULTS = process.env.CALENDAR_SIM_RESULTS;

interface Case {
  name: string;
  zone: string;
  firstDay: string;
  runs: number[];
  warningDays: number[];
}

const CASES: Case[] = [];
for (const zone of ['Europe/Berlin', 'America/Los_Angeles']) {
  // 45 days each side of both changes: Berlin 03-30 / 10-26, Los Angeles 03-09 / 11-02.
  for (const firstDay of ['2025-03-01', '2025-10-15']) {
    // 07:30 UTC is 23:30 the day before in Los Angeles in winter and 00:30 the same day in summer.
    CASES.push({ name: `${zone} from ${firstDay}, daily 07:30 UTC, 7,1`, zone, firstDay, runs: schedule(firstDay, 45, ['07:30']), warningDays: [7, 1] });
    CASES.push({
      name: `${zone} from ${firstDay}, every 11 hours, 30,14,7,3,1`,
      zone,
      firstDay,
      runs: everyHours(firstDay, 45, 11, 2),
      warningDays: [30, 14, 7, 3, 1],
    });
  }
}
// Through the whole job on SQLite: Berlin across the spring change, Los Angeles across the autumn one, at every hour of the day.
const BERLIN_SPRING = 'Europe/Berlin from 2025-03-01, every 11 hours, 30,14,7,3,1';
const LOS_ANGELES_AUTUMN = 'America/Los_Angeles from 2025-10-15, every 11 hours, 30,14,7,3,1';
const expected = (c: Case) => sortEvents(expectedEvents(c.zone, simLicenses(c.zone, c.firstDay), c.runs, c.warningDays, 7));

// Machine zones far from the business zones and from each other: +14:00, -03:30 with DST, +05:45. Each with its
// offset on 2025-01-01 (getTimezoneOffset), and the cases it also runs through the job on SQLite (a run of the job
// costs as much as all the planner's cases together; the planner is where the date arithmetic is): St John's both,
// as its own DST changes (03-09, 11-02) fall within both; Kiritimati, the farthest offset from UTC, the spring one.
const MACHINE_ZONES: Array<[string, number, string[]]> = [
  ['Pacific/Kiritimati', -840, [BERLIN_SPRING]],
  ['America/St_Johns', 210, [BERLIN_SPRING, LOS_ANGELES_AUTUMN]],
  ['Asia/Kathmandu', -345, []],
];
const STORED = new Set(MACHINE_ZONES.find(([zone]) => zone === process.env.TZ)?.[2] ?? []);

if (RESULTS) {
  const seen: Record<string, Record<string, SimEvent[]>> = {};
  const write = (through: string, name: string, events: SimEvent[]) => {
    seen[through] = { ...seen[through], [name]: events };
    fs.writeFileSync(RESULTS, JSON.stringify({ offset: new Date(2025, 0, 1).getTimezoneOffset(), seen }));
  };
  describe(`calendar days in a business zone, the pure planner (machine TZ ${process.env.TZ})`, () => {
    for (const c of CASES) {
      test(c.name, () => {
        const events = simulatePlan(c.zone, simLicenses(c.zone, c.firstDay), c.runs, c.warningDays, 7);
        expect(events).toEqual(expected(c));
        write('planner', c.name, events);
      });
    }
  });
  forEachDialect(
    `calendar days in a business zone, the job on SQLite (machine TZ ${process.env.TZ})`,
    ({ dialect, workspace }) => {
      for (const c of CASES.filter((c) => STORED.has(c.name))) {
        test(
          c.name,
          async () => {
            const { events, abandoned } = await simulate(c.zone, simLicenses(c.zone, c.firstDay), c.runs, c.warningDays, 7, workspace);
            expect(abandoned).toBe(0);
            expect(events).toEqual(expected(c));
            write(dialect, c.name, events);
          },
          60_000,
        );
      }
    },
    ['sqlite'],
  );
} else {
  describe('calendar days in Europe/Berlin and America/Los_Angeles across both DST changes', () => {
    test('identical, as the contract states them, under three machine TZ values', async () => {
      const outputs: Array<Record<string, SimEvent[]>> = [];
      for (const [machineZone, offset, stored] of MACHINE_ZONES) {
        const file = path.join(tempDir(), 'results.json');
        const env = { ...process.env, TZ: machineZone, CALENDAR_SIM_RESULTS: file, NODE_OPTIONS: '--experimental-vm-modules' };
        const child = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
          const run = spawn(process.execPath, [path.join(ROOT, 'node_modules/jest/bin/jest.js'), '--runTestsByPath', fileURLToPath(import.meta.url)], {
            cwd: ROOT,
            env,
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          let output = '';
          run.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
          run.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
          // Generous: a machine other jobs may be loading.
          const timer = setTimeout(() => run.kill('SIGKILL'), 240_000);
          run.on('error', reject);
          run.on('close', (code) => {
            clearTimeout(timer);
            resolve({ code, output });
          });
        });
        expect({ machineZone, code: child.code, output: child.code === 0 ? '' : child.output }).toEqual({ machineZone, code: 0, output: '' });
        const written = JSON.parse(fs.readFileSync(file, 'utf8')) as { offset: number; seen: Record<string, Record<string, SimEvent[]>> };
        // The child really ran in that machine zone, every case through the planner and its own ones through SQLite.
        expect(written.offset).toBe(offset);
        expect(Object.keys(written.seen).sort()).toEqual(stored.length > 0 ? ['planner', 'sqlite'] : ['planner']);
        expect(Object.keys(written.seen.sqlite ?? {})).toEqual(stored);
        outputs.push(...Object.values(written.seen));
      }
      // Every case through the planner in every machine zone, the stored ones through SQLite too: each as the oracle states it.
      const byName = Object.fromEntries(CASES.map((c) => [c.name, expected(c)]));
      for (const output of outputs) expect(output).toEqual(Object.fromEntries(Object.keys(output).map((name) => [name, byName[name]])));
      expect(outputs.filter((output) => Object.keys(output).length === CASES.length)).toHaveLength(MACHINE_ZONES.length);
    }, 900_000);
  });
}
