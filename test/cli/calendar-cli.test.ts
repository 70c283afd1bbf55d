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
forEachDialect('calendar days through the built CLI', ({ workspace }) => {
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
    for (const machineZone of ['Pacific/Kiritimati', 'America/St_Johns']) {
      const ws = await project();
      const cli = (...args: string[]) => ws.cli(args, { env: { TZ: machineZone } });
      expect(await cli('licenses', 'import', 'licenses.csv')).toMatchObject({ code: 0, stderr: '' });
      for (const [key, value] of [['webhook-url', receiver.url], ['webhooks-enabled', 'true'], ['time-zone', 'Europe/Berlin']]) {
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
      expect(real.stdout).toContain('1 license expired longer ago than lookbackDays and was marked expired with no event');
      expect(await ws.rows('select license_code, status from licenses order by id')).toEqual([
        { license_code: 'BERLIN-7', status: 'active' },
        { license_code: 'OLD', status: 'expired' },
        { license_code: 'PAUSED', status: 'suspended' },
      ]);

      const json = await cli('process-expirations', '--now', '2025-04-05T06:00:00Z', '--json');
      expect(json.code).toBe(0);
      const result = JSON.parse(json.stdout);
      expect(result).toMatchObject({ today: '2025-04-05', timeZone: 'Europe/Berlin', plan: [{ type: 'license.expiring', threshold: 1, count: 1 }], expiredWithoutEvent: 0, recorded: 1 });
      expect(result.due).toEqual([{ type: 'license.expiring', licenseId: 1, licenseCode: 'BERLIN-7', date: '2025-04-05T22:00:00Z', daysUntilExpiry: 1, threshold: 1 }]);
    }
    const days = receiver.requests.map((request) => JSON.parse(request.body.toString('utf8')).payload.days_until_expiry);
    expect(days).toEqual([7, 1, 7, 1]);
  });

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
