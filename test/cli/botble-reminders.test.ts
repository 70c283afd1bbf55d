import fs from 'node:fs';
import path from 'node:path';
import { expect, test } from '@jest/globals';
import { botbleInserts, botbleSettingInserts, botbleSuite } from '../helpers/botble.js';
import { runCli } from '../helpers/cli.js';
import { forEachDialect } from '../helpers/workspace.js';

/** In Botble mode a product schedule is keyed by the product's reference id (lm_licenses.product_reference_id). */
const PRODUCTS = [
  { reference: 'REF-PRO', name: 'Pro' },
  { reference: 'REF-FREE', name: 'Free' },
];

forEachDialect('Botble mode: per-product schedules by reference id', (under) => {
  const { dialect } = under;
  const suite = botbleSuite(under, (url) => [
    ...botbleInserts(dialect, PRODUCTS, [
      { id: 1, product: 'REF-PRO', code: 'P-1', customer: '1', email: 'p@example.com', expires: '2025-01-27', updates: null },
      { id: 2, product: 'REF-FREE', code: 'F-1', customer: '2', email: 'f@example.com', expires: '2025-01-20', updates: null },
      { id: 3, product: 'REF-PRO', code: 'P-OLD', customer: '3', email: null, expires: '2025-01-10', updates: null },
    ]),
    ...botbleSettingInserts(dialect, { lm_enable_webhooks: '1', lm_webhook_url: url, lm_expiration_warning_days: '7,1' }),
  ]);

  test('REF-PRO warned 14 days ahead and reminded 3 days after; REF-FREE switched off by a setting; forecast and show agree', async () => {
    const dir = await suite.freshDir();
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'license-manager.config.json'), 'utf8'));
    fs.writeFileSync(
      path.join(dir, 'license-manager.config.json'),
      JSON.stringify({ ...config, expirations: { products: { 'REF-PRO': { warningDays: [14], afterExpiryDays: [3] } } } }),
    );
    const cli = (...args: string[]) => runCli(args, { cwd: dir });
    // Botble has no such setting: ours are used, and an unknown reference id is a warning.
    expect((await cli('settings', 'set', 'product:REF-FREE:enabled', 'false')).code).toBe(0);
    const unknown = await cli('settings', 'set', 'product:ref-pro:warning-days', '30');
    expect(unknown.stderr).toMatch(/no license has product "ref-pro".*did you mean "REF-PRO"\?/);
    expect((await cli('settings', 'unset', 'product:ref-pro:warning-days')).code).toBe(0);

    const forecast = JSON.parse((await cli('licenses', 'forecast', '--from', '2025-01-13', '--days', '2', '--json')).stdout) as {
      days: Array<{ date: string; counts: Record<string, number> }>;
    };
    expect(forecast.days.map((day) => [day.date, day.counts['license.expiring'], day.counts['license.expired_reminder']])).toEqual([
      ['2025-01-13', 1, 1],
      ['2025-01-14', 0, 0],
    ]);
    const before = suite.receiver().requests.length;
    const run = await cli('process-expirations', '--now', '2025-01-13T08:00:00Z', '--json');
    expect(run.code).toBe(0);
    const sent = suite
      .receiver()
      .requests.slice(before)
      .map(
        (request) =>
          JSON.parse(request.body.toString('utf8')) as {
            event_type: string;
            payload: { license_code: string; days_until_expiry?: number; days_since_expiry?: number };
          },
      )
      .map((body) => `${body.event_type} ${body.payload.license_code} ${body.payload.days_until_expiry ?? body.payload.days_since_expiry ?? '-'}`)
      .sort();
    // P-1 (14 days out), F-1 nothing (switched off; 7 days out), P-OLD on this first run: its license.expired
    // (01-10, within lookbackDays) and its reminder 3 days after, in the same run (the case the README warns about).
    expect(sent).toEqual(['license.expired P-OLD -', 'license.expired_reminder P-OLD 3', 'license.expiring P-1 14']);
    const shown = JSON.parse((await cli('licenses', 'show', 'F-1', '--now', '2025-01-13T08:00:00Z', '--json')).stdout);
    expect(shown.schedule).toMatchObject({ enabled: false, source: 'product' });
    expect(shown.toCome).toEqual([]);
  }, 60_000);
});
