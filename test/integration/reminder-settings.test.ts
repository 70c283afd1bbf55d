import { describe, expect, test } from '@jest/globals';
import { aLicense, workspace } from '../helpers/workspace.js';

/** expirations.products and expirations.afterExpiryDays: the config file, the settings that override it, and bad input. */
describe('reminder policy: config and settings', () => {
  test('config file schedules and product settings merge field by field; settings list shows each layer', async () => {
    const ws = workspace({ expirations: { afterExpiryDays: [14], products: { 'PROD-A': { warningDays: [30, 7] }, 'PROD-B': { enabled: false } } } });
    await ws.seed([aLicense({ product_id: 'PROD-A' }), aLicense({ product_id: 'PROD-B' })]);
    const set = await ws.cli(['settings', 'set', 'product:PROD-A:after-expiry-days', '30,10']);
    expect(set).toMatchObject({ code: 0, stdout: 'product:PROD-A:after-expiry-days = 10,30\n', stderr: '' });
    const listed = await ws.cli(['settings', 'list', '--json']);
    expect(listed.code).toBe(0);
    const rows = JSON.parse(listed.stdout) as Array<{ key: string; value: unknown; source: string }>;
    const byKey = Object.fromEntries(rows.map((row) => [row.key, { value: row.value, source: row.source }]));
    expect(byKey['after-expiry-days']).toEqual({ value: [14], source: 'config' });
    expect(byKey['product:PROD-A:warning-days']).toEqual({ value: [30, 7], source: 'config' });
    expect(byKey['product:PROD-A:after-expiry-days']).toEqual({ value: [10, 30], source: 'settings' });
    expect(byKey['product:PROD-B:enabled']).toEqual({ value: false, source: 'config' });
    const config = await ws.run(async (context) => context.config.expirations);
    expect(config.products).toEqual({ 'PROD-A': { warningDays: [30, 7], afterExpiryDays: [10, 30] }, 'PROD-B': { enabled: false } });
    // An unset field reads back as the global value it inherits; unset hands a field back.
    expect((await ws.cli(['settings', 'get', 'product:PROD-B:warning-days'])).stdout.trim()).toBe('7,1');
    expect((await ws.cli(['settings', 'unset', 'product:PROD-A:after-expiry-days'])).code).toBe(0);
    expect((await ws.run(async (context) => context.config.expirations.products))['PROD-A']).toEqual({ warningDays: [30, 7] });
  });

  test('an unknown product is a warning naming it (with the near miss), never an error', async () => {
    const ws = workspace({ expirations: { products: { 'prod-a': { warningDays: [3] } } } });
    await ws.seed([aLicense({ product_id: 'PROD-A' })]);
    const set = await ws.cli(['settings', 'set', 'product:NEXT-YEAR:warning-days', '30,7']);
    expect(set.code).toBe(0);
    expect(set.stderr).toMatch(/product:NEXT-YEAR:warning-days: no license has product "NEXT-YEAR"/);
    const listed = await ws.cli(['settings', 'list']);
    expect(listed.code).toBe(0);
    expect(listed.stderr).toMatch(/expirations\.products\.prod-a: no license has product "prod-a".*did you mean "PROD-A"\?/);
  });

  test('after-expiry days within lookbackDays: a warning that names them and the fix', async () => {
    const ws = workspace({ expirations: { lookbackDays: 7 } });
    const set = await ws.cli(['settings', 'set', 'after-expiry-days', '1,30']);
    expect(set.code).toBe(0);
    expect(set.stderr).toMatch(
      /expirations\.afterExpiryDays 1 is within lookbackDays 7: .*license\.expired and license\.expired_reminder in the same run.*use after-expiry days above 7/s,
    );
    const listed = await ws.cli(['settings', 'list']);
    expect(listed.stdout).toMatch(/after-expiry-days: .*1 is within lookbackDays 7/);
  });

  describe('bad input: exit 2, named, nothing stored', () => {
    test.each([
      ['after-expiry-days', '-3', /"-3": -3 is negative/],
      ['after-expiry-days', '1.5', /1\.5 is not a whole number/],
      ['after-expiry-days', '0', /0 is the expiry date itself/],
      ['after-expiry-days', Array.from({ length: 366 }, (_, index) => index + 1).join(','), /has 366 days; at most 365/],
      ['product:PROD-A:warning-days', '7,x', /Invalid value for setting product:PROD-A:warning-days: .*"x" is not a number of days/],
      ['product:PROD-A:warning-days', '7,7', /7 appears more than once/],
      ['product:PROD-A:enabled', 'maybe', /Invalid value for setting product:PROD-A:enabled: must be true or false, not "maybe"/],
      ['product:PROD-A:colour', '1', /"colour" in "product:PROD-A:colour" is not a product setting/],
      ['product:PROD-A', '1', /names no field/],
    ])('settings set %s %s', async (key, value, message) => {
      const ws = workspace();
      const result = await ws.cli(['settings', 'set', key, value]);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(message);
      expect(await ws.rows('select key from settings')).toEqual([]);
    });

    test.each([
      [{ afterExpiryDays: [-1] }, /expirations\.afterExpiryDays\.0: -1 is negative/],
      [{ afterExpiryDays: [2, 2] }, /expirations\.afterExpiryDays\.1: 2 appears more than once/],
      [{ products: { P: { warningDays: [1.5] } } }, /expirations\.products\.P\.warningDays\.0: 1\.5 is not a whole number/],
      [
        { products: { P: { warningDay: [1] } } },
        /expirations\.products\.P: unknown key "warningDay": a product schedule has warningDays, afterExpiryDays and enabled/,
      ],
      [{ products: { P: { enabled: 'no' } } }, /expirations\.products\.P\.enabled: must be true or false/],
    ])('config file %j', async (expirations, message) => {
      const ws = workspace({ expirations });
      const result = await ws.cli(['process-expirations', '--dry-run']);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(message);
      expect(result.stderr).toContain(ws.configFile);
    });

    test('a stored product row that fails validation: commands refuse and name the fix; settings list still shows it', async () => {
      const ws = workspace();
      await ws.ready();
      await ws.rows("insert into settings (key, value, updated_at) values ('product:P:warning-days', '7,-1', '2025-01-01T00:00:00Z')");
      const run = await ws.cli(['process-expirations', '--dry-run']);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/Invalid stored setting product:P:warning-days: .*-1 is negative.*settings unset product:P:warning-days/s);
      const listed = await ws.cli(['settings', 'list']);
      expect(listed.code).toBe(0);
      expect(listed.stdout).toMatch(/product:P:warning-days\s+7,-1.*INVALID/);
      expect((await ws.cli(['settings', 'unset', 'product:P:warning-days'])).code).toBe(0);
      expect((await ws.cli(['process-expirations', '--dry-run'])).code).toBe(0);
    });
  });
});
