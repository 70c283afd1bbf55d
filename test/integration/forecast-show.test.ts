import { describe, expect, test } from '@jest/globals';
import { aLicense, project, receiverFor } from '../helpers/workspace.js';

const NOW = '2025-01-10T08:00:00Z';
const EXPIRATIONS = { warningDays: [7, 1], afterExpiryDays: [10], lookbackDays: 7, products: { PRO: { warningDays: [14] }, OFF: { enabled: false } } };

/** Four licenses of three product schedules, webhooks on to a receiver that answers 200. */
const forecastProject = async () =>
  project({
    receiver: await receiverFor(),
    config: { webhooks: { enabled: true }, expirations: EXPIRATIONS },
    seed: [
      aLicense({ license_code: 'A', product_id: 'BASIC', expires_at: '2025-01-17' }),
      aLicense({ license_code: 'B', product_id: 'PRO', expires_at: '2025-01-24', updates_until: '2025-01-12' }),
      aLicense({ license_code: 'C', product_id: 'OFF', expires_at: '2025-01-12' }),
      aLicense({ license_code: 'D', product_id: 'BASIC', expires_at: '2025-01-09T20:00:00Z' }),
    ],
  });

describe('licenses forecast', () => {
  test('--json is exactly { days: [ { date, counts } ] }, every type counted every day', async () => {
    const ws = await forecastProject();
    const result = await ws.cli(['licenses', 'forecast', '--now', NOW, '--days', '21', '--json']);
    expect(result.code).toBe(0);
    const parsed = JSON.parse(result.stdout) as { days: Array<{ date: string; counts: Record<string, number> }> };
    expect(Object.keys(parsed)).toEqual(['days']);
    expect(parsed.days).toHaveLength(21);
    expect(parsed.days[0]!.date).toBe('2025-01-10');
    for (const day of parsed.days) expect(Object.keys(day)).toEqual(['date', 'counts']);
    const busy = parsed.days.flatMap((day) =>
      Object.entries(day.counts)
        .filter(([, n]) => n > 0)
        .map(([type, n]) => `${day.date} ${type} ${n}`),
    );
    expect(busy).toEqual([
      // D expired last evening, not announced yet: due on the first day. A is 7 days out. B (PRO, 14) is 14 days out.
      '2025-01-10 license.expiring 2',
      '2025-01-10 license.expired 1',
      '2025-01-12 license.update_support_expired 1',
      '2025-01-16 license.expiring 1',
      '2025-01-17 license.expired 1',
      '2025-01-19 license.expired_reminder 1',
      '2025-01-24 license.expired 1',
      '2025-01-27 license.expired_reminder 1',
    ]);
  });

  test('text: a bar per day, the legend with totals, the total and the busiest day; no colour off a terminal', async () => {
    const ws = await forecastProject();
    const result = await ws.cli(['licenses', 'forecast', '--now', NOW, '--days', '7'], { env: { COLUMNS: '60' } });
    expect(result.code).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('Notices due per day from 2025-01-10, 7 days in UTC, under the current data and settings:');
    expect(lines[1]).toMatch(/^Fri 2025-01-10 │█+▓+ 3$/);
    expect(lines[2]).toBe('Sat 2025-01-11 │ 0');
    expect(result.stdout).toContain('total: 5 notices in 7 days');
    expect(result.stdout).toContain('busiest day: Fri 2025-01-10, 3 notices');
    expect(result.stdout).toMatch(/█ license\.expiring 3 {3}▓ license\.expired 1/);
    expect(result.stdout).not.toContain('\u001b[');
    for (const line of lines.slice(1)) expect(line.length).toBeLessThanOrEqual(60);
  });

  test('--warning-days is a dry run of a settings change: other counts, nothing stored; --product narrows', async () => {
    const ws = await forecastProject();
    const dry = await ws.cli(['licenses', 'forecast', '--now', NOW, '--days', '21', '--warning-days', '10,3', '--json']);
    const counts = (stdout: string) =>
      (JSON.parse(stdout) as { days: Array<{ date: string; counts: Record<string, number> }> }).days
        .filter((day) => day.counts['license.expiring']! > 0)
        .map((day) => `${day.date} ${day.counts['license.expiring']}`);
    // A (BASIC) now 3 days before; B keeps its product's 14.
    expect(counts(dry.stdout)).toEqual(['2025-01-10 2', '2025-01-14 1']);
    expect(await ws.rows('select key from settings')).toEqual([]);
    const text = await ws.cli(['licenses', 'forecast', '--now', NOW, '--warning-days', '10,3']);
    expect(text.stdout).toMatch(/with warning days 10,3 \(this forecast only: nothing is changed\)/);
    const pro = await ws.cli(['licenses', 'forecast', '--now', NOW, '--days', '21', '--product', 'PRO', '--json']);
    expect(counts(pro.stdout)).toEqual(['2025-01-10 1']);
    const unknown = await ws.cli(['licenses', 'forecast', '--now', NOW, '--product', 'NOPE', '--json']);
    expect(unknown.code).toBe(0);
    expect(unknown.stderr).toMatch(/--product NOPE: no license has product "NOPE"/);
  });

  test("what the job records is not forecast again: after the day's run, the first day counts nothing of it", async () => {
    const ws = await forecastProject();
    expect((await ws.cli(['process-expirations', '--now', NOW])).code).toBe(0);
    const after = JSON.parse((await ws.cli(['licenses', 'forecast', '--now', NOW, '--days', '1', '--json'])).stdout) as {
      days: Array<{ counts: Record<string, number> }>;
    };
    expect(Object.values(after.days[0]!.counts)).toEqual([0, 0, 0, 0]);
  });

  test.each([
    [['--days', '0'], /--days.*Expected a whole number from 1 to 366/],
    [['--days', '400'], /--days.*Expected a whole number from 1 to 366/],
    [['--days', '2.5'], /--days.*Expected a whole number/],
    [['--from', '2025-02-30'], /--from.*Expected a date such as 2025-01-08 \(YYYY-MM-DD, a day in the business time zone\)/],
    [['--warning-days', '7,-1'], /--warning-days "7,-1": -1 is negative/],
    [['--warning-days', 'soon'], /--warning-days "soon": "soon" is not a number of days/],
  ])('bad input %j: exit 2, named', async (args, message) => {
    const ws = await forecastProject();
    const result = await ws.cli(['licenses', 'forecast', ...args]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
  });
});

describe('licenses show', () => {
  test('dates, status, the product schedule, notices sent with their outcome, notices to come with their dates', async () => {
    const ws = await forecastProject();
    expect((await ws.cli(['process-expirations', '--now', NOW])).code).toBe(0);
    const shown = await ws.cli(['licenses', 'show', 'B', '--now', NOW, '--json']);
    expect(shown.code).toBe(0);
    const result = JSON.parse(shown.stdout);
    expect(result).toMatchObject({
      license: { license_code: 'B', product_id: 'PRO', expires_at: '2025-01-24', status: 'active' },
      timeZone: 'UTC',
      expiryDate: '2025-01-24',
      schedule: { warningDays: [14], afterExpiryDays: [10], enabled: true, source: 'product' },
      sent: [{ type: 'license.expiring', days: 14, endpoint: 'default', status: 'delivered', recordedAt: NOW, attempts: 1, lastStatusCode: 200 }],
      toCome: [
        { date: '2025-01-12', type: 'license.update_support_expired' },
        { date: '2025-01-24', type: 'license.expired' },
        { date: '2025-02-03', type: 'license.expired_reminder', days: 10 },
      ],
    });
    const text = await ws.cli(['licenses', 'show', 'B', '--now', NOW]);
    expect(text.stdout).toMatch(/schedule \(product PRO's own schedule\): warning days 14; after-expiry days 10/);
    // Which warning it was: its days before the expiry date, as the notices to come say theirs.
    expect(text.stdout).toMatch(/2025-01-10T08:00:00Z\s+license\.expiring \(14 days before the expiry date\)\s+default\s+delivered after 1 attempt, HTTP 200/);
    expect(text.stdout).toMatch(/ {2}2025-02-03 {2}license\.expired_reminder \(10 days after the expiry date\)/);

    const off = await ws.cli(['licenses', 'show', 'C', '--now', NOW]);
    expect(off.stdout).toMatch(/disabled - no notices of any kind for this product/);
    expect(off.stdout).toMatch(/Notices to come: none/);
  });

  test('an expiry earlier today, before --now: show and forecast say what the run at --now sends (license.expired, no "expiring today")', async () => {
    const ws = await project({
      receiver: await receiverFor(),
      config: { webhooks: { enabled: true }, expirations: { warningDays: [7, 1], lookbackDays: 7 } },
      seed: [aLicense({ license_code: 'E', product_id: 'BASIC', expires_at: '2025-01-10T06:00:00Z' })],
    });
    const shown = JSON.parse((await ws.cli(['licenses', 'show', 'E', '--now', NOW, '--json'])).stdout) as { toCome: unknown[] };
    expect(shown.toCome).toEqual([{ date: '2025-01-10', type: 'license.expired' }]);
    const forecasted = JSON.parse((await ws.cli(['licenses', 'forecast', '--now', NOW, '--days', '1', '--json'])).stdout) as {
      days: Array<{ counts: Record<string, number> }>;
    };
    expect(forecasted.days[0]!.counts).toMatchObject({ 'license.expiring': 0, 'license.expired': 1 });
    // A forecast from an earlier day keeps that day's 00:00 run: on 01-09 the 1-day warning was due.
    const earlier = JSON.parse((await ws.cli(['licenses', 'forecast', '--now', NOW, '--from', '2025-01-09', '--days', '1', '--json'])).stdout) as {
      days: Array<{ counts: Record<string, number> }>;
    };
    expect(earlier.days[0]!.counts['license.expiring']).toBe(1);
    // The run at --now agrees: it records exactly that, and nothing is left to come.
    const run = JSON.parse((await ws.cli(['process-expirations', '--now', NOW, '--json'])).stdout) as { dueCounts: Record<string, number> };
    expect(run.dueCounts).toMatchObject({ 'license.expiring': 0, 'license.expired': 1 });
    expect(JSON.parse((await ws.cli(['licenses', 'show', 'E', '--now', NOW, '--json'])).stdout).toCome).toEqual([]);
  });

  test('an unknown code: exit 2, named', async () => {
    const ws = await forecastProject();
    const result = await ws.cli(['licenses', 'show', 'NOPE']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/No license with code "NOPE"/);
  });
});
