import { afterEach, expect, test } from '@jest/globals';
import { processExpirations } from '../../src/commands/process-expirations.js';
import { upsertLicenses } from '../../src/storage/licenses.repository.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { aLicense, forEachDialect } from '../helpers/workspace.js';

let receiver: Receiver | undefined;
afterEach(async () => {
  await receiver?.close();
  receiver = undefined;
});

/** The daily run at 08:00 UTC of each date, from `first` to `last`. */
function days(first: string, last: string): Date[] {
  const runs: Date[] = [];
  for (let at = Date.parse(`${first}T08:00:00Z`); at <= Date.parse(`${last}T08:00:00Z`); at += 86_400_000) runs.push(new Date(at));
  return runs;
}

/** What the receiver got, one `date type code [days]` line per request, sorted (one run delivers concurrently). */
function received(): string[] {
  return receiver!.requests
    .map((request) => {
      const body = JSON.parse(request.body.toString('utf8'));
      const days = body.payload.days_until_expiry ?? body.payload.days_since_expiry;
      return `${String(body.timestamp).slice(0, 10)} ${body.event_type} ${body.payload.license_code}${days === undefined ? '' : ` ${days}`}`;
    })
    .sort();
}

forEachDialect('the job with per-product schedules and after-expiry reminders', ({ workspace }) => {
  async function setup(expirations: object) {
    receiver = await startReceiver();
    return workspace({ webhooks: { enabled: true, url: receiver.url, secret: 's' }, expirations: { lookbackDays: 2, ...expirations } });
  }

  async function runDaily(ws: Awaited<ReturnType<typeof setup>>, runs: Date[]) {
    // One context for the stretch, as daily runs in renewals.test.ts: nothing changes the settings between them.
    await ws.run(async (context) => {
      for (const now of runs) await processExpirations(context, { now, clock: { now: () => now } });
    });
  }

  test('each product its own warning days; enabled false sends nothing of any kind and the status still changes; reminders N days after', async () => {
    const ws = await setup({
      warningDays: [7, 1],
      afterExpiryDays: [3],
      products: { PRO: { warningDays: [14], afterExpiryDays: [5, 10] }, OFF: { enabled: false } },
    });
    await ws.seed([
      aLicense({ license_code: 'GLOBAL', product_id: 'BASIC', expires_at: '2025-01-20' }),
      aLicense({ license_code: 'PRO-1', product_id: 'PRO', expires_at: '2025-01-20' }),
      aLicense({ license_code: 'OFF-1', product_id: 'OFF', expires_at: '2025-01-20', updates_until: '2025-01-18' }),
      aLicense({ license_code: 'NONE', product_id: null, expires_at: '2025-01-21' }),
    ]);
    await runDaily(ws, days('2025-01-01', '2025-02-05'));
    expect(received()).toEqual([
      '2025-01-06 license.expiring PRO-1 14',
      '2025-01-13 license.expiring GLOBAL 7',
      '2025-01-14 license.expiring NONE 7',
      '2025-01-19 license.expiring GLOBAL 1',
      '2025-01-20 license.expired GLOBAL',
      '2025-01-20 license.expired PRO-1',
      '2025-01-20 license.expiring NONE 1',
      '2025-01-21 license.expired NONE',
      '2025-01-23 license.expired_reminder GLOBAL 3',
      '2025-01-24 license.expired_reminder NONE 3',
      '2025-01-25 license.expired_reminder PRO-1 5',
      '2025-01-30 license.expired_reminder PRO-1 10',
    ]);
    expect(await ws.rows("select license_code, status from licenses where license_code = 'OFF-1'")).toEqual([{ license_code: 'OFF-1', status: 'expired' }]);
  }, 60_000);

  test("the reminder's body: license.expired's, with days_since_expiry right after expired_at", async () => {
    const ws = await setup({ afterExpiryDays: [3] });
    await ws.seed([
      aLicense({
        id: 7,
        license_code: 'LIC-7',
        product_id: 'PROD-001',
        product_name: 'My Product',
        customer_id: 'CUST-001',
        email: 'c@example.com',
        expires_at: '2025-01-10T10:30:00Z',
      }),
    ]);
    await runDaily(ws, days('2025-01-13', '2025-01-13'));
    expect(receiver!.requests.map((request) => request.body.toString('utf8'))).toEqual([
      '{"event_type":"license.expired_reminder","timestamp":"2025-01-13T08:00:00Z","payload":{"license_id":7,"license_code":"LIC-7","product_id":"PROD-001","product_reference_id":"My Product","customer_id":"CUST-001","email":"c@example.com","expired_at":"2025-01-10T10:30:00Z","days_since_expiry":3}}',
    ]);
    expect(receiver!.requests[0]!.headers['x-webhook-event']).toBe('license.expired_reminder');
  });

  test('never after a renewal, a suspension or a deletion; a renewal to a new date re-arms it for that date', async () => {
    const ws = await setup({ afterExpiryDays: [3] });
    await ws.seed([
      aLicense({ license_code: 'RENEWED', expires_at: '2025-01-10' }),
      aLicense({ license_code: 'SUSPENDED', expires_at: '2025-01-10' }),
      aLicense({ license_code: 'DELETED', expires_at: '2025-01-10' }),
      aLicense({ license_code: 'KEPT', expires_at: '2025-01-10' }),
    ]);
    await runDaily(ws, days('2025-01-10', '2025-01-11'));
    await ws.run(async (context) => {
      await upsertLicenses(
        context.db,
        [
          { license_code: 'RENEWED', expires_at: '2025-02-10', status: 'active' },
          { license_code: 'SUSPENDED', status: 'suspended' },
        ],
        '2025-01-12T00:00:00Z',
      );
    });
    await ws.rows("delete from licenses where license_code = 'DELETED'");
    await runDaily(ws, days('2025-01-12', '2025-02-14'));
    expect(received().filter((line) => line.includes('reminder'))).toEqual([
      '2025-01-13 license.expired_reminder KEPT 3',
      '2025-02-13 license.expired_reminder RENEWED 3',
    ]);
  }, 60_000);

  test('missed days: one reminder, the latest due, with the true day count; never the same N twice', async () => {
    const ws = await setup({ afterExpiryDays: [1, 3], products: {} });
    await ws.seed([aLicense({ license_code: 'LATE', expires_at: '2025-01-10' })]);
    // No run from the 10th to the 13th, then daily: the 14th finds 1 and 3 passed (3 is 1 day late, within lookbackDays 2).
    await runDaily(ws, days('2025-01-14', '2025-01-20'));
    expect(received()).toEqual(['2025-01-14 license.expired_reminder LATE 4']);
    const keys = await ws.rows<{ event_key: string }>("select event_key from webhook_deliveries where event_type = 'license.expired_reminder'");
    expect(keys.map((row) => row.event_key)).toEqual([expect.stringMatching(/^license\.expired_reminder:\d+:2025-01-10:3d$/)]);
  }, 60_000);

  test("a product's schedule change is a warning-days change: never re-notifies, a smaller day not yet sent still goes out", async () => {
    const ws = await setup({ products: { PRO: { warningDays: [7] } } });
    await ws.seed([
      aLicense({ license_code: 'P', product_id: 'PRO', expires_at: '2025-01-30' }),
      aLicense({ license_code: 'Q', product_id: 'PRO', expires_at: '2025-02-20' }),
    ]);
    await runDaily(ws, days('2025-01-23', '2025-01-23'));
    // Now 14 and 3 for PRO, through the settings: P already had its 7-day notice, so no 14 (never re-notified), but 3.
    await ws.run(async (context) => {
      const { settingsSet } = await import('../../src/commands/settings.js');
      await settingsSet(context, 'product:PRO:warning-days', '14,3', new Date());
    });
    await runDaily(ws, days('2025-01-24', '2025-02-10'));
    expect(received()).toEqual([
      '2025-01-23 license.expiring P 7',
      '2025-01-27 license.expiring P 3',
      '2025-01-30 license.expired P',
      '2025-02-06 license.expiring Q 14',
    ]);
  }, 60_000);

  test('without after-expiry days: the three events as before, and no reminder count in the result', async () => {
    const ws = await setup({});
    await ws.seed([aLicense({ license_code: 'PLAIN', expires_at: '2025-01-10' })]);
    const now = new Date('2025-01-13T08:00:00Z');
    const result = await ws.run((context) => processExpirations(context, { now, clock: { now: () => now } }));
    expect(Object.keys(result.dueCounts)).toEqual(['license.expiring', 'license.expired', 'license.update_support_expired']);
    await runDaily(ws, days('2025-01-14', '2025-01-30'));
    expect(received().some((line) => line.includes('reminder'))).toBe(false);
  }, 60_000);
});
