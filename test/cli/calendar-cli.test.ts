import fs from 'node:fs';
import path from 'node:path';
import { afterEach, expect, test } from '@jest/globals';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { forEachDialect, type Workspace } from '../helpers/workspace.js';

let receiver: Receiver | undefined;
afterEach(async () => {
  await receiver?.close();
  receiver = undefined;
});

// The right day on every dialect: dates go into the database as text and must come back as they went in.
forEachDialect('calendar days through the built CLI', ({ dialect, workspace }) => {
  async function project(): Promise<Workspace> {
    const ws = workspace({ webhooks: { retryDelaysMs: [10], timeoutMs: 2000 } });
    await ws.ready();
    fs.writeFileSync(
      path.join(ws.dir, 'licenses.csv'),
      'license_code,expires_at,support_until,is_valid\nBERLIN-7,2025-04-06,2025-12-31,1\nOLD,2024-01-01,,\nPAUSED,2025-04-01,,0\n',
    );
    return ws;
  }

  test('Berlin midnight on the DST day: 7 days, the plan before sending, --json counts; any machine TZ', async () => {
    receiver = await startReceiver();
    // Two machine zones on SQLite; one on the servers, whose DATE columns read back the same under any machine TZ (dialects.test.ts).
    for (const machineZone of dialect === 'sqlite' ? ['Pacific/Kiritimati', 'America/St_Johns'] : ['America/St_Johns']) {
      const ws = await project();
      const cli = (...args: string[]) => ws.cli(args, { env: { TZ: machineZone } });
      expect(await cli('licenses', 'import', 'licenses.csv')).toMatchObject({ code: 0, stderr: '' });
      for (const [key, value] of [
        ['webhook-url', receiver.url],
        ['webhooks-enabled', 'true'],
        ['time-zone', 'Europe/Berlin'],
      ]) {
        expect((await cli('settings', 'set', key!, value!)).code).toBe(0);
      }
      // 2025-03-30 00:00 in Berlin, the night the clocks go forward; the 24-hour count said 6 days.
      const now = '2025-03-29T23:00:00Z';
      const dry = await cli('process-expirations', '--now', now, '--dry-run');
      expect(dry).toMatchObject({ code: 0, stderr: '' });
      expect(dry.stdout).toContain('(today is 2025-03-30 in Europe/Berlin)');
      expect(dry.stdout).toMatch(/^would send 1 event to http:\/\/127\.0\.0\.1:\d+\/webhook \(from settings\): license\.expiring at 7 days: 1$/m);
      expect(dry.stdout).toContain('would send license.expiring for BERLIN-7 (id 1): 2025-04-05T22:00:00Z (7 days left)');
      expect(dry.stdout).toContain('1 license expired longer ago than lookbackDays and would be marked expired with no event');

      const real = await cli('process-expirations', '--now', now);
      expect(real).toMatchObject({ code: 0, stderr: '' });
      expect(real.stdout).toMatch(/^sending 1 event to http:\/\/127\.0\.0\.1:\d+\/webhook \(from settings\): license\.expiring at 7 days: 1$/m);
      expect(real.stdout.indexOf('sending 1 event')).toBeLessThan(real.stdout.indexOf('delivered 1'));
      // One count of licenses marked expired and, within it, those with no event: never two counts that read as a sum.
      expect(real.stdout).toContain('recorded 1 new event; marked 1 license expired (1 of them with no event: expired longer ago than lookbackDays)');
      expect(real.stdout).not.toMatch(/^\s+1 license expired longer ago/m);
      // The first run: the history before it is expected to be silent (no warning), and it says how to announce it anyway,
      // at the run's own --now: without it the suggested dry run would apply the rules at another instant.
      expect(real.stdout).toContain(
        `this is the first run: expiries longer ago than lookbackDays are not announced. To announce those from a date on: license-manager process-expirations --announce-since 2024-01-01 --now ${now} --dry-run`,
      );
      expect(await ws.rows('select license_code, status from licenses order by id')).toEqual([
        { license_code: 'BERLIN-7', status: 'active' },
        { license_code: 'OLD', status: 'expired' },
        { license_code: 'PAUSED', status: 'suspended' },
      ]);

      const json = await cli('process-expirations', '--now', '2025-04-05T06:00:00Z', '--json');
      expect(json.code).toBe(0);
      const result = JSON.parse(json.stdout);
      expect(result).toMatchObject({
        today: '2025-04-05',
        timeZone: 'Europe/Berlin',
        plan: [{ type: 'license.expiring', threshold: 1, count: 1 }],
        expiredWithoutEvent: 0,
        recorded: 1,
      });
      expect(result.due).toEqual([
        { type: 'license.expiring', licenseId: 1, licenseCode: 'BERLIN-7', date: '2025-04-05T22:00:00Z', daysUntilExpiry: 1, threshold: 1 },
      ]);
    }
    const days = receiver.requests.map((request) => JSON.parse(request.body.toString('utf8')).payload.days_until_expiry);
    expect(days).toEqual(dialect === 'sqlite' ? [7, 1, 7, 1] : [7, 1]);
  }, 120_000);

  test('expiries that slid past lookbackDays in an outage: the --quiet run warns naming them, status shows it, --announce-since sends them', async () => {
    receiver = await startReceiver();
    const ws = workspace({ webhooks: { enabled: true, url: receiver.url, retryDelaysMs: [10], timeoutMs: 2000 } });
    await ws.ready();
    const cli = (...args: string[]) => ws.cli(args);
    fs.writeFileSync(
      path.join(ws.dir, 'licenses.csv'),
      'license_code,expires_at\nHISTORY,2024-06-01\nGAP-1,2025-01-12\nGAP-2,2025-01-14T10:00:00Z\nFRESH,2025-01-22\n',
    );
    expect((await cli('licenses', 'import', 'licenses.csv')).code).toBe(0);
    expect((await cli('licenses', 'import', 'licenses.csv')).stdout).toContain('Imported 4 licenses from licenses.csv (csv): 0 new, 0 updated, 4 unchanged.');
    // The first run over old licenses: HISTORY's silence is expected, so --quiet prints nothing, nor does status.
    expect(await cli('process-expirations', '--now', '2025-01-10T08:00:00Z', '--quiet')).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(await cli('status', '--quiet')).toMatchObject({ code: 0, stderr: '' });

    // Down from 01-11 to 01-23: GAP-1 and GAP-2 expired more than 7 days before the next run.
    const late = await cli('process-expirations', '--now', '2025-01-24T08:00:00Z', '--quiet');
    expect(late).toMatchObject({ code: 0, stdout: '' });
    expect(late.stderr).toContain(
      'warning: 2 licenses expired longer ago than lookbackDays and were marked expired with no license.expired event: their customers were never told',
    );
    expect(late.stderr).toContain('  GAP-1 (id 2) expired 2025-01-12T00:00:00Z\n  GAP-2 (id 3) expired 2025-01-14T10:00:00Z\n');
    // The run was given --now: the command it suggests applies the rules at the same instant.
    expect(late.stderr).toContain(
      'To announce them after all: license-manager process-expirations --announce-since 2025-01-12 --now 2025-01-24T08:00:00Z (add --dry-run first',
    );
    expect(late.stderr).not.toContain('HISTORY');

    // status: a warning that leaves the exit code alone, on stderr under --quiet, in --json.
    const warned = await cli('status', '--quiet');
    expect(warned.code).toBe(0);
    expect(warned.stderr).toMatch(
      /^warning: the last run \(started \S+\) marked 2 licenses expired with no license\.expired event .*"license-manager process-expirations --announce-since 2025-01-12"/,
    );
    const status = JSON.parse((await cli('status', '--json')).stdout);
    expect(status.expiredWithoutEvent).toMatchObject({ licenses: 2, announceSince: '2025-01-12' });
    expect(status.runs[0]).toMatchObject({ expiredWithoutEvent: 2 });
    expect((await cli('status')).stdout).toContain('NOTICES LOST: the last run');
    // The next run has none to report; status judges by the last run, as for abandoned deliveries.
    const json = JSON.parse((await cli('process-expirations', '--now', '2025-01-24T08:30:00Z', '--json')).stdout);
    expect(json).toMatchObject({ expiredWithoutEvent: 0, expiredWithoutEventLicenses: [], announceSince: null, lastRunNow: '2025-01-24T08:00:00Z' });
    expect(await cli('status', '--quiet')).toMatchObject({ code: 0, stderr: '' });

    // Announce them after all: the dry run names them (not HISTORY), the real run sends them once.
    for (const bad of ['2025-13-01', '2025-01-12T00:00:00Z', 'last week']) {
      const refused = await cli('process-expirations', '--announce-since', bad, '--dry-run');
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain(`'--announce-since <date>' argument '${bad}' is invalid. Expected a date such as 2025-01-08 (YYYY-MM-DD`);
    }
    const dry = await cli('process-expirations', '--now', '2025-01-24T09:00:00Z', '--announce-since', '2025-01-12', '--dry-run');
    expect(dry.stdout).toContain('would send license.expired for GAP-1 (id 2)');
    expect(dry.stdout).toContain('would send license.expired for GAP-2 (id 3)');
    expect(dry.stdout).not.toContain('HISTORY');
    const announced = JSON.parse((await cli('process-expirations', '--now', '2025-01-24T09:00:00Z', '--announce-since', '2025-01-12', '--json')).stdout);
    expect(announced).toMatchObject({ recorded: 2, delivered: 2, expiredWithoutEvent: 0 });
    expect(JSON.parse((await cli('process-expirations', '--now', '2025-01-25T08:00:00Z', '--announce-since', '2025-01-12', '--json')).stdout)).toMatchObject({
      recorded: 0,
    });
    expect((await cli('status', '--quiet')).stderr).toBe('');
    const sent = receiver.requests.map((request) => JSON.parse(request.body.toString('utf8'))).map((body) => `${body.payload.license_code} ${body.event_type}`);
    // The first run had warned GAP-1 and GAP-2; their expiries are announced only now.
    expect(sent.sort()).toEqual([
      'FRESH license.expired',
      'GAP-1 license.expired',
      'GAP-1 license.expiring',
      'GAP-2 license.expired',
      'GAP-2 license.expiring',
    ]);

    // A catch-up with an earlier --now says it comes after the fact, even with --quiet.
    const earlier = await cli('process-expirations', '--now', '2025-01-20T08:00:00Z', '--quiet');
    expect(earlier.code).toBe(0);
    expect(earlier.stderr).toMatch(
      /^warning: --now 2025-01-20T08:00:00Z is earlier than the instant an earlier run applied the rules at \(2025-01-25T08:00:00Z\)/,
    );
    expect(receiver.requests).toHaveLength(5);
  }, 180_000);

  test('--now a day ahead without --dry-run: exit 2, nothing written', async () => {
    receiver = await startReceiver();
    const ws = await project();
    const cli = (...args: string[]) => ws.cli(args);
    expect((await cli('licenses', 'import', 'licenses.csv')).code).toBe(0);
    expect((await cli('settings', 'set', 'webhook-url', receiver.url)).code).toBe(0);
    // Webhooks still disabled: the run reports what is due but announces no sending.
    const disabled = await cli('process-expirations', '--now', '2025-03-30T08:00:00Z');
    expect(disabled.code).toBe(0);
    expect(disabled.stdout).toContain('due license.expiring for BERLIN-7');
    expect(disabled.stdout).not.toMatch(/^sending/m);
    expect((await cli('settings', 'set', 'webhooks-enabled', 'true')).code).toBe(0);
    const tomorrow = new Date(Date.now() + 24 * 3600 * 1000).toISOString();
    const refused = await cli('process-expirations', '--now', tomorrow);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--now \S+ is ahead of the clock .*Add --dry-run to preview it/);
    expect(refused.stdout).toBe('');
    expect(await ws.rows('select count(*) as n from webhook_deliveries')).toEqual([{ n: 0 }]);
    expect(await ws.rows("select count(*) as n from licenses where status = 'expired'")).toEqual([{ n: 0 }]);
    expect((await cli('process-expirations', '--now', tomorrow, '--dry-run')).code).toBe(0);
    expect(receiver.requests).toEqual([]);
  });

  test('bad time-zone: setting, config file and is_valid are exit 2 naming what is wrong', async () => {
    const ws = await project();
    const setting = await ws.cli(['settings', 'set', 'time-zone', 'Berlin']);
    expect(setting.code).toBe(2);
    expect(setting.stderr).toContain('Invalid value for setting time-zone: "Berlin" is not an IANA time zone');
    ws.configure({ expirations: { timeZone: 'CEST' } });
    const config = await ws.cli(['process-expirations', '--dry-run']);
    expect(config.code).toBe(2);
    expect(config.stderr).toContain('expirations.timeZone: "CEST" is not an IANA time zone');
    ws.configure({});
    fs.writeFileSync(path.join(ws.dir, 'bad.csv'), 'license_code,is_valid\nA,1\nB,maybe\n');
    const bad = await ws.cli(['licenses', 'import', 'bad.csv']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/bad\.csv: row 2.*field is_valid must be true, false, 1 or 0/);
    expect(await ws.rows('select count(*) as n from licenses')).toEqual([{ n: 0 }]);
  });
});
