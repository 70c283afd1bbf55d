import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, test } from '@jest/globals';
import { importLicenses } from '../../src/commands/licenses.js';
import { processExpirations, type PlanLine } from '../../src/commands/process-expirations.js';
import { sendTestEvent } from '../../src/commands/send-test-event.js';
import { settingsSet } from '../../src/commands/settings.js';
import { plusDays } from '../helpers/calendar-oracle.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { forEachDialect, type Workspace } from '../helpers/workspace.js';

/** Renewals, suspension, warning-day changes, lookback and the --now guard: warning days 7,1, lookback 7, UTC unless said. */

let receiver: Receiver | undefined;
afterEach(async () => {
  await receiver?.close();
  receiver = undefined;
});

const at = (date: string, time = '08:00') => new Date(`${date}T${time}:00Z`);

/**
 * One run a day at 08:00 UTC from `first` to `last` inclusive, the clock at the run's instant. The runs of a stretch
 * share one opened context, as the calendar simulation's do (test/helpers/simulate.ts): nothing changes the settings
 * within a stretch, and on PostgreSQL each context is a new server process (about 20 ms of the server's CPU here).
 */
async function daily(ws: Workspace, first: string, last: string, options: { onPlan?: (plan: PlanLine[]) => void; onWarning?: (text: string) => void } = {}) {
  return ws.run(async (context) => {
    const results = [];
    for (let date = first; date <= last; date = plusDays(date, 1)) {
      const now = at(date);
      results.push(await processExpirations(context, { now, clock: { now: () => now }, ...options }));
    }
    return results;
  });
}

async function importCsv(ws: Workspace, name: string, csv: string, now: Date) {
  const file = path.join(ws.dir, name);
  fs.writeFileSync(file, csv);
  return ws.run((context) => importLicenses(context, file, now));
}

/** "run-date code type days-or-blank expires_at", sorted: what a receiver saw. */
function sent(r: Receiver): string[] {
  return r.requests
    .map((request) => {
      const body = JSON.parse(request.body.toString('utf8'));
      const p = body.payload;
      return `${body.timestamp.slice(0, 10)} ${p.license_code} ${body.event_type} ${p.days_until_expiry ?? '-'} ${p.expires_at ?? p.expired_at ?? p.updates_until}`;
    })
    .sort();
}

const statusOf = (ws: Workspace, code: string) =>
  ws.run(async (context) => (await context.db.selectFrom('licenses').select('status').where('license_code', '=', code).executeTakeFirstOrThrow()).status);

// The behaviour suite runs on every dialect that answers (SQLite always).
forEachDialect('renewals and notices', ({ workspace }) => {
  async function setup(expirations: object = {}): Promise<{ ws: Workspace; receiver: Receiver }> {
    receiver = await startReceiver();
    const ws = workspace({
      webhooks: { enabled: true, url: receiver.url, secret: 'renewals' },
      expirations: { warningDays: [7, 1], lookbackDays: 7, ...expirations },
    });
    return { ws, receiver };
  }

  describe('renewals: expired is derived, a new date re-arms every notice', () => {
    test('after expiry: renewing with a file of license_code,expires_at makes it active and announces the new date', async () => {
      const { ws, receiver } = await setup();
      await importCsv(ws, 'a.csv', 'license_code,expires_at\nR,2025-02-05T10:30:00Z\nS,2025-02-05T10:30:00Z\n', at('2025-01-01'));
      await daily(ws, '2025-02-06', '2025-02-06');
      expect(await statusOf(ws, 'R')).toBe('expired');
      await importCsv(ws, 'renew.csv', 'license_code,expires_at\nR,2025-03-05T10:30:00Z\n', at('2025-02-07', '09:00'));
      expect(await statusOf(ws, 'R')).toBe('active');
      // S is renewed by a writer that does not touch the status: the run itself stores it as active again.
      await ws.seed([{ license_code: 'S', expires_at: '2025-03-05T10:30:00Z' }]);
      expect(await statusOf(ws, 'S')).toBe('expired');
      const results = await daily(ws, '2025-02-07', '2025-03-07');
      expect(results[0]!.reactivated).toBe(1);
      expect(await statusOf(ws, 'S')).toBe('expired'); // expired again on 03-06, after its new date passed
      expect(sent(receiver).filter((line) => line.includes(' R '))).toEqual([
        '2025-02-06 R license.expired - 2025-02-05T10:30:00Z',
        '2025-02-26 R license.expiring 7 2025-03-05T10:30:00Z',
        '2025-03-04 R license.expiring 1 2025-03-05T10:30:00Z',
        '2025-03-06 R license.expired - 2025-03-05T10:30:00Z',
      ]);
      expect(
        sent(receiver)
          .filter((line) => line.includes(' S '))
          .map((line) => line.split(' ').slice(0, 4).join(' ')),
      ).toEqual(['2025-02-06 S license.expired -', '2025-02-26 S license.expiring 7', '2025-03-04 S license.expiring 1', '2025-03-06 S license.expired -']);
    });

    test('before expiry: the old date is never announced as expired, the new one gets its own notices', async () => {
      const { ws, receiver } = await setup();
      await importCsv(ws, 'a.csv', 'license_code,expires_at\nB,2025-03-10\n', at('2025-01-01'));
      await daily(ws, '2025-03-01', '2025-03-05');
      await importCsv(ws, 'renew.csv', 'license_code,expires_at\nB,2025-04-10\n', at('2025-03-05', '12:00'));
      await daily(ws, '2025-03-06', '2025-04-11');
      expect(sent(receiver)).toEqual([
        '2025-03-03 B license.expiring 7 2025-03-10T00:00:00Z',
        '2025-04-03 B license.expiring 7 2025-04-10T00:00:00Z',
        '2025-04-09 B license.expiring 1 2025-04-10T00:00:00Z',
        '2025-04-10 B license.expired - 2025-04-10T00:00:00Z',
      ]);
    });

    test('shortened: the nearer date gets the smallest notice that applies, with the true day count', async () => {
      const { ws, receiver } = await setup();
      await importCsv(ws, 'a.csv', 'license_code,expires_at\nS,2025-04-30\n', at('2025-01-01'));
      await daily(ws, '2025-04-20', '2025-04-23');
      await importCsv(ws, 'short.csv', 'license_code,expires_at\nS,2025-04-25\n', at('2025-04-23', '12:00'));
      await daily(ws, '2025-04-24', '2025-04-26');
      expect(sent(receiver)).toEqual([
        '2025-04-23 S license.expiring 7 2025-04-30T00:00:00Z',
        '2025-04-24 S license.expiring 1 2025-04-25T00:00:00Z',
        '2025-04-25 S license.expired - 2025-04-25T00:00:00Z',
      ]);
    });

    test('a time-of-day edit (one second, or the same date alone) changes nothing', async () => {
      const { ws, receiver } = await setup();
      await importCsv(ws, 'a.csv', 'license_code,expires_at\nT,2025-01-30T10:30:00Z\n', at('2025-01-01'));
      await daily(ws, '2025-01-22', '2025-01-23');
      await importCsv(ws, 'b.csv', 'license_code,expires_at\nT,2025-01-30T10:30:01Z\n', at('2025-01-23', '12:00'));
      await daily(ws, '2025-01-24', '2025-01-25');
      await importCsv(ws, 'c.csv', 'license_code,expires_at\nT,2025-01-30\n', at('2025-01-25', '12:00'));
      await daily(ws, '2025-01-26', '2025-01-31');
      expect(sent(receiver)).toEqual([
        '2025-01-23 T license.expiring 7 2025-01-30T10:30:00Z',
        '2025-01-29 T license.expiring 1 2025-01-30T00:00:00Z',
        '2025-01-30 T license.expired - 2025-01-30T00:00:00Z',
      ]);
    });

    test('back to an earlier date already announced: nothing again, and the status follows the date', async () => {
      const { ws, receiver } = await setup();
      await importCsv(ws, 'a.csv', 'license_code,expires_at\nE,2025-02-05\n', at('2025-01-01'));
      await daily(ws, '2025-01-28', '2025-02-06');
      await importCsv(ws, 'renew.csv', 'license_code,expires_at\nE,2025-03-05\n', at('2025-02-06', '12:00'));
      expect(await statusOf(ws, 'E')).toBe('active');
      await daily(ws, '2025-02-07', '2025-02-08');
      await importCsv(ws, 'undo.csv', 'license_code,expires_at\nE,2025-02-05\n', at('2025-02-08', '12:00'));
      const [undo] = await daily(ws, '2025-02-09', '2025-02-20');
      expect(undo).toMatchObject({ recorded: 0, markedExpired: 1 });
      expect(await statusOf(ws, 'E')).toBe('expired');
      expect(sent(receiver)).toEqual([
        '2025-01-29 E license.expiring 7 2025-02-05T00:00:00Z',
        '2025-02-04 E license.expiring 1 2025-02-05T00:00:00Z',
        '2025-02-05 E license.expired - 2025-02-05T00:00:00Z',
      ]);
    });

    test('suspended across the expiry: nothing while suspended; reactivated with a new date, that date is announced', async () => {
      const { ws, receiver } = await setup();
      await importCsv(ws, 'a.csv', 'license_code,expires_at\nP,2025-02-05\n', at('2025-01-01'));
      await daily(ws, '2025-01-29', '2025-01-30');
      await importCsv(ws, 'suspend.csv', 'license_code,is_valid\nP,0\n', at('2025-01-30', '12:00'));
      expect(await statusOf(ws, 'P')).toBe('suspended');
      await daily(ws, '2025-01-31', '2025-02-10');
      await importCsv(ws, 'back.csv', 'license_code,status,expires_at\nP,active,2025-03-05\n', at('2025-02-10', '12:00'));
      await daily(ws, '2025-02-11', '2025-03-05');
      expect(sent(receiver)).toEqual([
        '2025-01-29 P license.expiring 7 2025-02-05T00:00:00Z',
        '2025-02-26 P license.expiring 7 2025-03-05T00:00:00Z',
        '2025-03-04 P license.expiring 1 2025-03-05T00:00:00Z',
        '2025-03-05 P license.expired - 2025-03-05T00:00:00Z',
      ]);
    });
  });

  describe('catch-up runs after the fact, time-zone changes, unblocking and lifetime', () => {
    test('a catch-up --now earlier than a run already made: no warning after the expired, no "renewal", and a warning that says so', async () => {
      const { ws, receiver } = await setup();
      await importCsv(ws, 'a.csv', 'license_code,expires_at\nC,2025-01-30\nLATER,2025-02-06\n', at('2025-01-01'));
      await daily(ws, '2025-01-31', '2025-01-31');
      expect(await statusOf(ws, 'C')).toBe('expired');
      const warnings: string[] = [];
      const catchUp = await daily(ws, '2025-01-23', '2025-01-30', { onWarning: (text) => warnings.push(text) });
      expect(catchUp.map((result) => result.reactivated)).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
      expect(await statusOf(ws, 'C')).toBe('expired');
      expect(warnings).toHaveLength(8);
      expect(warnings[0]).toMatch(
        /^--now 2025-01-23T08:00:00Z is earlier than the instant an earlier run applied the rules at \(2025-01-31T08:00:00Z\): a catch-up after the fact/,
      );
      // LATER's expiry is after the run of 01-31: its warning was sent then, and the catch-up does not repeat it.
      expect(sent(receiver)).toEqual(['2025-01-31 C license.expired - 2025-01-30T00:00:00Z', '2025-01-31 LATER license.expiring 6 2025-02-06T00:00:00Z']);
    });

    test('a license.expired already recorded stops warnings about that expiry even when the status says active, and any "renewal" to it', async () => {
      const { ws, receiver } = await setup();
      await importCsv(ws, 'a.csv', 'license_code,expires_at\nA,2025-01-30\nB,2025-01-30\n', at('2025-01-01'));
      await daily(ws, '2025-01-30', '2025-01-30');
      // A set back to active by hand with the same date; B left expired. The runs' history is gone (no latest now to compare with).
      await importCsv(ws, 'undo.csv', 'license_code,status,expires_at\nA,active,2025-01-30\n', at('2025-01-30', '12:00'));
      await ws.rows('delete from runs');
      const catchUp = await daily(ws, '2025-01-23', '2025-01-29');
      expect(catchUp.map((result) => result.reactivated)).toEqual([0, 0, 0, 0, 0, 0, 0]);
      expect(await statusOf(ws, 'B')).toBe('expired');
      expect(sent(receiver)).toEqual(['2025-01-30 A license.expired - 2025-01-30T00:00:00Z', '2025-01-30 B license.expired - 2025-01-30T00:00:00Z']);
    });

    test('changing time-zone between runs, both ways, never re-sends a notice for the same expiry instant', async () => {
      const { ws, receiver } = await setup();
      // A: the 30th in UTC, the 31st in Berlin. B: the 4th of February in UTC, the 5th in Berlin.
      await importCsv(ws, 'a.csv', 'license_code,expires_at\nA,2025-01-30T23:30:00Z\nB,2025-02-04T23:30:00Z\n', at('2025-01-01'));
      await daily(ws, '2025-01-20', '2025-01-23');
      await ws.run((context) => settingsSet(context, 'time-zone', 'Europe/Berlin', new Date()));
      await daily(ws, '2025-01-24', '2025-01-31');
      await ws.run((context) => settingsSet(context, 'time-zone', 'UTC', new Date()));
      await daily(ws, '2025-02-01', '2025-02-06');
      expect(sent(receiver)).toEqual([
        '2025-01-23 A license.expiring 7 2025-01-30T23:30:00Z',
        '2025-01-29 B license.expiring 7 2025-02-04T23:30:00Z',
        '2025-01-30 A license.expiring 1 2025-01-30T23:30:00Z',
        '2025-01-31 A license.expired - 2025-01-30T23:30:00Z',
        '2025-02-03 B license.expiring 1 2025-02-04T23:30:00Z',
        '2025-02-05 B license.expired - 2025-02-04T23:30:00Z',
      ]);
    });

    test('is_valid 1 with no status column lifts a suspension (as Botble mode reads it); a status column or revoked stays', async () => {
      const { ws, receiver } = await setup();
      await importCsv(ws, 'a.csv', 'license_code,expires_at,is_valid\nU,2025-02-05,0\nK,2025-02-05,0\nR,2025-02-05,1\n', at('2025-01-01'));
      await ws.seed([{ license_code: 'R', status: 'revoked' }]);
      await daily(ws, '2025-01-29', '2025-01-30');
      const unblock = await importCsv(ws, 'unblock.csv', 'license_code,expires_at,is_valid\nU,2025-02-05,1\nR,2025-02-05,1\n', at('2025-01-30', '12:00'));
      await importCsv(ws, 'keep.csv', 'license_code,status,is_valid\nK,suspended,1\n', at('2025-01-30', '12:00'));
      expect(unblock).toMatchObject({ updated: 1, unchanged: 1 });
      expect([await statusOf(ws, 'U'), await statusOf(ws, 'K'), await statusOf(ws, 'R')]).toEqual(['active', 'suspended', 'revoked']);
      await daily(ws, '2025-01-31', '2025-02-05');
      // U missed its 7-day notice while blocked: it gets it with the true day count.
      expect(sent(receiver)).toEqual([
        '2025-01-31 U license.expiring 5 2025-02-05T00:00:00Z',
        '2025-02-04 U license.expiring 1 2025-02-05T00:00:00Z',
        '2025-02-05 U license.expired - 2025-02-05T00:00:00Z',
      ]);
    });

    test('an expired license made lifetime (expires_at emptied) is active again, by an import or by a run', async () => {
      const { ws, receiver } = await setup();
      await importCsv(ws, 'a.csv', 'license_code,expires_at,updates_until\nL,2025-01-20,\nW,2025-01-20,2025-02-01\n', at('2025-01-01'));
      await daily(ws, '2025-01-21', '2025-01-21');
      expect([await statusOf(ws, 'L'), await statusOf(ws, 'W')]).toEqual(['expired', 'expired']);
      await importCsv(ws, 'lifetime.csv', 'license_code,expires_at\nL,\n', at('2025-01-21', '12:00'));
      expect(await statusOf(ws, 'L')).toBe('active');
      // Another writer empties expires_at without touching the status: the run sets it back.
      await ws.seed([{ license_code: 'W', expires_at: null }]);
      const [run] = await daily(ws, '2025-01-22', '2025-02-02');
      expect(run!.reactivated).toBe(1);
      expect([await statusOf(ws, 'L'), await statusOf(ws, 'W')]).toEqual(['active', 'active']);
      expect(sent(receiver)).toEqual([
        '2025-01-21 L license.expired - 2025-01-20T00:00:00Z',
        '2025-01-21 W license.expired - 2025-01-20T00:00:00Z',
        '2025-02-01 W license.update_support_expired - 2025-02-01T00:00:00Z',
      ]);
    });
  });

  describe('warning-days changes never re-notify, and the run says what it is about to send', () => {
    test('7,1 -> 3 sends nothing to a license that had its 1-day notice; a larger threshold after 7 is skipped; the plan comes before delivery', async () => {
      const { ws, receiver } = await setup();
      await importCsv(ws, 'a.csv', 'license_code,expires_at\nA,2025-01-30\nB,2025-02-01\nC,2030-01-01\n', at('2025-01-01'));
      await daily(ws, '2025-01-23', '2025-01-29');
      await ws.run((context) => settingsSet(context, 'warning-days', '3', new Date()));
      const plans: Array<{ plan: PlanLine[]; sentBefore: number }> = [];
      const onPlan = (plan: PlanLine[]) => plans.push({ plan, sentBefore: receiver.requests.length });
      const sentBefore = receiver.requests.length;
      await daily(ws, '2025-01-29', '2025-01-29', { onPlan });
      // B had only its 7-day notice: 3 is smaller, so it is due; A had its 1-day notice: nothing.
      expect(plans).toEqual([{ plan: [{ type: 'license.expiring', threshold: 3, count: 1 }], sentBefore }]);
      await ws.run((context) => settingsSet(context, 'warning-days', '3650,1', new Date()));
      plans.length = 0;
      await daily(ws, '2025-01-30', '2025-01-30', { onPlan });
      // C, five years out, gets a 3650-day notice (the operator's choice, counted first); A expires; B is at 2 days: 3 was sent, 3650 is larger.
      expect(plans.map((entry) => entry.plan)).toEqual([
        [
          { type: 'license.expired', count: 1 },
          { type: 'license.expiring', threshold: 3650, count: 1 },
        ],
      ]);
      expect(sent(receiver)).toEqual(
        [
          '2025-01-23 A license.expiring 7 2025-01-30T00:00:00Z',
          '2025-01-25 B license.expiring 7 2025-02-01T00:00:00Z',
          '2025-01-29 A license.expiring 1 2025-01-30T00:00:00Z',
          '2025-01-29 B license.expiring 3 2025-02-01T00:00:00Z',
          '2025-01-30 A license.expired - 2025-01-30T00:00:00Z',
          '2025-01-30 C license.expiring 1797 2030-01-01T00:00:00Z',
        ].sort(),
      );
    });

    test('warning-days none: no license.expiring at all, expiries still announced', async () => {
      const { ws, receiver } = await setup({ warningDays: [] });
      await importCsv(ws, 'a.csv', 'license_code,expires_at\nN,2025-01-30\n', at('2025-01-01'));
      await daily(ws, '2025-01-20', '2025-01-31');
      expect(sent(receiver)).toEqual(['2025-01-30 N license.expired - 2025-01-30T00:00:00Z']);
    });
  });

  describe('lookback and --now', () => {
    test('expired longer ago than lookbackDays and never announced: expired with no event, counted; a dry run only counts', async () => {
      const { ws, receiver } = await setup();
      await importCsv(ws, 'a.csv', 'license_code,expires_at\nOLD,2024-12-01\nBAND,2025-01-05T12:00:00Z\nEDGE,2025-01-08\n', at('2024-11-01'));
      // Text that sorts below old dates but is no date must not be taken for a long-past expiry by the range UPDATE.
      await ws.seed([{ license_code: 'BAD', expires_at: '12/31/2024' }]);
      const now = at('2025-01-15');
      const dry = await ws.run((context) => processExpirations(context, { now, clock: { now: () => now }, dryRun: true }));
      expect(dry).toMatchObject({ expiredWithoutEvent: 2, markedExpired: 0, dueCounts: { 'license.expired': 1 } });
      expect(await statusOf(ws, 'OLD')).toBe('active');
      const [real, again] = await daily(ws, '2025-01-15', '2025-01-16');
      expect(real).toMatchObject({ expiredWithoutEvent: 2, markedExpired: 3, recorded: 1 });
      expect(again).toMatchObject({ expiredWithoutEvent: 0, markedExpired: 0, recorded: 0 });
      for (const code of ['OLD', 'BAND', 'EDGE']) expect(await statusOf(ws, code)).toBe('expired');
      expect(await statusOf(ws, 'BAD')).toBe('active');
      // EDGE expired 7 calendar days before today: still within lookbackDays 7.
      expect(sent(receiver)).toEqual(['2025-01-15 EDGE license.expired - 2025-01-08T00:00:00Z']);
    });

    test('--now ahead of the clock is refused without --dry-run, nothing written; a dry run, 30 s ahead and the past are fine', async () => {
      const { ws, receiver } = await setup();
      await importCsv(ws, 'a.csv', 'license_code,expires_at\nF,2025-01-16\n', at('2025-01-01'));
      const clock = { now: () => at('2025-01-15') };
      const tomorrow = at('2025-01-16');
      await expect(ws.run((context) => processExpirations(context, { now: tomorrow, clock }))).rejects.toMatchObject({
        code: 2,
        message: expect.stringMatching(/--now 2025-01-16T08:00:00Z is ahead of the clock \(2025-01-15T08:00:00Z\).*--dry-run/),
      });
      expect(await statusOf(ws, 'F')).toBe('active');
      expect(await ws.run((context) => context.db.selectFrom('webhook_deliveries').selectAll().execute())).toEqual([]);
      const dry = await ws.run((context) => processExpirations(context, { now: tomorrow, clock, dryRun: true }));
      expect(dry.dueCounts['license.expired']).toBe(1);
      const soon = new Date(at('2025-01-15').getTime() + 30_000);
      expect((await ws.run((context) => processExpirations(context, { now: soon, clock }))).recorded).toBe(1);
      expect((await ws.run((context) => processExpirations(context, { now: at('2025-01-10'), clock }))).recorded).toBe(0);
      expect(receiver.requests).toHaveLength(1);
    });
  });

  test('send-test-event --license counts days the same way: calendar days in the business zone', async () => {
    const { ws, receiver } = await setup({ timeZone: 'Europe/Berlin' });
    await importCsv(ws, 'a.csv', 'license_code,expires_at\nT,2025-04-02\n', at('2025-01-01'));
    // 00:30 on 2025-03-30 in Berlin; the expiry is 00:00 on 04-02 there (2.9 periods of 24 hours, 3 calendar days).
    const clock = { now: () => new Date('2025-03-29T23:30:00Z') };
    const result = await ws.run((context) => sendTestEvent(context, { license: 'T', clock, url: receiver.url }));
    expect(JSON.parse(result.body).payload).toMatchObject({ license_code: 'T', expires_at: '2025-04-01T22:00:00Z', days_until_expiry: 3 });
  });
});
