import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, test } from '@jest/globals';
import Database from 'better-sqlite3';
import { runCli } from '../helpers/cli.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { tempDir } from '../helpers/temp-dir.js';

let receiver: Receiver | undefined;
afterEach(async () => {
  await receiver?.close();
  receiver = undefined;
});

function project(): string {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'license-manager.config.json'), JSON.stringify({ webhooks: { retryDelaysMs: [10], timeoutMs: 2000 } }));
  fs.writeFileSync(
    path.join(dir, 'licenses.csv'),
    'license_code,expires_at,support_until,is_valid\nBERLIN-7,2025-04-06,2025-12-31,1\nOLD,2024-01-01,,\nPAUSED,2025-04-01,,0\n',
  );
  return dir;
}

const rows = (dir: string, query: string) => {
  const db = new Database(path.join(dir, 'license-manager.sqlite'), { readonly: true });
  try {
    return db.prepare(query).all();
  } finally {
    db.close();
  }
};

describe('calendar days through the built CLI', () => {
  test('Berlin midnight on the DST day: 7 days, the plan before sending, --json counts; any machine TZ', async () => {
    receiver = await startReceiver();
    const dir = project();
    for (const machineZone of ['Pacific/Kiritimati', 'America/St_Johns']) {
      const cwd = fs.mkdtempSync(path.join(dir, 'run-'));
      for (const file of ['license-manager.config.json', 'licenses.csv']) fs.copyFileSync(path.join(dir, file), path.join(cwd, file));
      const cli = (...args: string[]) => runCli(args, { cwd, env: { TZ: machineZone } });
      expect(await cli('licenses', 'import', 'licenses.csv')).toMatchObject({ code: 0, stderr: '' });
      for (const [key, value] of [['webhook-url', receiver.url], ['webhooks-enabled', 'true'], ['time-zone', 'Europe/Berlin']]) {
        expect((await cli('settings', 'set', key!, value!)).code).toBe(0);
      }
      // 2025-03-30 00:00 in Berlin, the night the clocks go forward; the 24-hour count said 6 days.
      const now = '2025-03-29T23:00:00Z';
      const dry = await cli('process-expirations', '--now', now, '--dry-run');
      expect(dry).toMatchObject({ code: 0, stderr: '' });
      expect(dry.stdout).toContain('(today is 2025-03-30 in Europe/Berlin)');
      expect(dry.stdout).toContain('would send: license.expiring at 7 days: 1');
      expect(dry.stdout).toContain('would send license.expiring for BERLIN-7 (id 1): 2025-04-05T22:00:00Z (7 days left)');
      expect(dry.stdout).toContain('1 license expired longer ago than lookbackDays and would be marked expired with no event');

      const real = await cli('process-expirations', '--now', now);
      expect(real).toMatchObject({ code: 0, stderr: '' });
      expect(real.stdout.indexOf('about to send: license.expiring at 7 days: 1')).toBeGreaterThan(-1);
      expect(real.stdout.indexOf('about to send')).toBeLessThan(real.stdout.indexOf('delivered 1'));
      expect(real.stdout).toContain('1 license expired longer ago than lookbackDays and was marked expired with no event');
      expect(rows(cwd, 'select license_code, status from licenses order by id')).toEqual([
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
    const cwd = project();
    const cli = (...args: string[]) => runCli(args, { cwd });
    expect((await cli('licenses', 'import', 'licenses.csv')).code).toBe(0);
    expect((await cli('settings', 'set', 'webhook-url', receiver.url)).code).toBe(0);
    // Webhooks still disabled: the run reports what is due but announces no sending.
    const disabled = await cli('process-expirations', '--now', '2025-03-30T08:00:00Z');
    expect(disabled.code).toBe(0);
    expect(disabled.stdout).toContain('due license.expiring for BERLIN-7');
    expect(disabled.stdout).not.toContain('about to send');
    expect((await cli('settings', 'set', 'webhooks-enabled', 'true')).code).toBe(0);
    const tomorrow = new Date(Date.now() + 24 * 3600 * 1000).toISOString();
    const refused = await cli('process-expirations', '--now', tomorrow);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--now \S+ is ahead of the clock .*Add --dry-run to preview it/);
    expect(refused.stdout).toBe('');
    expect(rows(cwd, 'select count(*) as n from webhook_deliveries')).toEqual([{ n: 0 }]);
    expect(rows(cwd, "select count(*) as n from licenses where status = 'expired'")).toEqual([{ n: 0 }]);
    expect((await cli('process-expirations', '--now', tomorrow, '--dry-run')).code).toBe(0);
    expect(receiver.requests).toEqual([]);
  });

  test('bad time-zone: setting, config file and is_valid are exit 2 naming what is wrong', async () => {
    const cwd = project();
    const setting = await runCli(['settings', 'set', 'time-zone', 'Berlin'], { cwd });
    expect(setting.code).toBe(2);
    expect(setting.stderr).toContain('Invalid value for setting time-zone: "Berlin" is not an IANA time zone');
    fs.writeFileSync(path.join(cwd, 'license-manager.config.json'), JSON.stringify({ expirations: { timeZone: 'CEST' } }));
    const config = await runCli(['process-expirations', '--dry-run'], { cwd });
    expect(config.code).toBe(2);
    expect(config.stderr).toContain('expirations.timeZone: "CEST" is not an IANA time zone');
    fs.writeFileSync(path.join(cwd, 'license-manager.config.json'), '{}');
    fs.writeFileSync(path.join(cwd, 'bad.csv'), 'license_code,is_valid\nA,1\nB,maybe\n');
    const bad = await runCli(['licenses', 'import', 'bad.csv'], { cwd });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/bad\.csv: row 2.*field is_valid must be true, false, 1 or 0/);
    expect(rows(cwd, 'select count(*) as n from licenses')).toEqual([{ n: 0 }]);
  });
});
