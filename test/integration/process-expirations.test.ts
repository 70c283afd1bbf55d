import { createHmac } from 'node:crypto';
import { afterEach, expect, test } from '@jest/globals';
import { processExpirations } from '../../src/commands/process-expirations.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { aLicense, forEachDialect } from '../helpers/workspace.js';

const SECRET = 'test-secret-123';
const now = new Date('2024-01-15T10:30:00Z');
const DAY = 24 * 3600 * 1000;
const at = (offsetMs: number, base = now) => new Date(base.getTime() + offsetMs).toISOString();

let receiver: Receiver | undefined;
afterEach(async () => {
  await receiver?.close();
  receiver = undefined;
});

const bodies = (r: Receiver) => r.requests.map((request) => JSON.parse(request.body.toString('utf8')));

forEachDialect('process-expirations end to end', ({ workspace }) => {
  async function setup(reply?: Parameters<typeof startReceiver>[0], expirations?: object) {
    receiver = await startReceiver(reply);
    const ws = workspace({ webhooks: { enabled: true, url: receiver.url, secret: SECRET }, ...(expirations ? { expirations } : {}) });
    return { ws, receiver };
  }

  test('the reference fixture arrives byte for byte, signed over the raw bytes, with its headers', async () => {
    const { ws, receiver } = await setup();
    await ws.seed([
      aLicense({
        id: 123,
        license_code: 'LIC-ABC-123',
        product_id: 'PROD-001',
        product_name: 'My Product',
        customer_id: 'CUST-001',
        email: 'customer@example.com',
        expires_at: '2024-01-22T10:30:00Z',
      }),
    ]);
    const result = await ws.run((context) => processExpirations(context, { now }));
    expect(result).toMatchObject({ recorded: 1, delivered: 1, abandoned: 0 });
    expect(receiver.requests).toHaveLength(1);
    const request = receiver.requests[0]!;
    expect(request.body.toString('utf8')).toBe(
      '{"event_type":"license.expiring","timestamp":"2024-01-15T10:30:00Z","payload":{"license_id":123,"license_code":"LIC-ABC-123","product_id":"PROD-001","product_reference_id":"My Product","customer_id":"CUST-001","email":"customer@example.com","expires_at":"2024-01-22T10:30:00Z","days_until_expiry":7}}',
    );
    // The receiver's own check, as the reference's Node example does it.
    const expected = createHmac('sha256', SECRET).update(request.body).digest('hex');
    expect(request.headers['x-webhook-signature']).toBe(expected);
    expect(request.headers['content-type']).toBe('application/json');
    expect(request.headers['x-webhook-event']).toBe('license.expiring');
    expect(request.headers['user-agent']).toBe('LicenseManager-Webhook/1.0');
    expect(request.headers['x-webhook-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(request.method).toBe('POST');
  });

  test('all three events in one run; the expired license becomes status expired; a second run sends nothing', async () => {
    const { ws, receiver } = await setup();
    await ws.seed([
      aLicense({ license_code: 'SOON', expires_at: at(3 * DAY) }),
      aLicense({ license_code: 'GONE', expires_at: at(-2 * 3600 * 1000) }),
      aLicense({ license_code: 'NO-UPDATES', expires_at: at(200 * DAY), updates_until: at(-DAY) }),
      aLicense({ license_code: 'FAR', expires_at: at(60 * DAY) }),
    ]);
    const first = await ws.run((context) => processExpirations(context, { now }));
    expect(first.dueCounts).toEqual({ 'license.expiring': 1, 'license.expired': 1, 'license.update_support_expired': 1 });
    expect(first.delivered).toBe(3);
    expect(first.markedExpired).toBe(1);
    const byType = Object.fromEntries(bodies(receiver).map((body) => [body.event_type, body.payload.license_code]));
    expect(byType).toEqual({ 'license.expiring': 'SOON', 'license.expired': 'GONE', 'license.update_support_expired': 'NO-UPDATES' });

    const statuses = await ws.run((context) => context.db.selectFrom('licenses').select(['license_code', 'status']).orderBy('license_code').execute());
    expect(statuses).toEqual([
      { license_code: 'FAR', status: 'active' },
      { license_code: 'GONE', status: 'expired' },
      { license_code: 'NO-UPDATES', status: 'active' },
      { license_code: 'SOON', status: 'active' },
    ]);

    const second = await ws.run((context) => processExpirations(context, { now }));
    expect(second).toMatchObject({ recorded: 0, markedExpired: 0, delivered: 0, due: [] });
    expect(receiver.requests).toHaveLength(3);

    const rows = await ws.run((context) => context.db.selectFrom('webhook_deliveries').selectAll().execute());
    expect(rows.map((row) => row.status)).toEqual(['delivered', 'delivered', 'delivered']);
    for (const row of rows) {
      const sent = receiver.requests.find((request) => request.headers['x-webhook-id'] === row.event_id)!;
      expect(sent.body.toString('utf8')).toBe(row.body); // the stored body is the exact bytes sent
      expect(row).toMatchObject({ attempts: 1, last_status_code: 200, last_error: null });
      expect(row.completed_at).toMatch(/Z$/);
    }
  });

  test('7,1: a notice at 7 days and another at 1 day, each once, across daily runs', async () => {
    const { ws, receiver } = await setup();
    const expires = at(10 * DAY);
    await ws.seed([aLicense({ license_code: 'DAILY', expires_at: expires })]);
    for (let day = 0; day <= 11; day += 1) {
      await ws.run((context) => processExpirations(context, { now: new Date(now.getTime() + day * DAY) }));
    }
    const received = bodies(receiver).map((body) => [body.event_type, body.payload.days_until_expiry]);
    expect(received).toEqual([
      ['license.expiring', 7],
      ['license.expiring', 1],
      ['license.expired', undefined],
    ]);
  });

  test('missed runs: only the smallest threshold that applies is sent', async () => {
    const { ws, receiver } = await setup();
    // 20 hours ahead is tomorrow's date: 1 calendar day, past the 7-day threshold too.
    await ws.seed([aLicense({ expires_at: at(20 * 3600 * 1000) })]);
    await ws.run((context) => processExpirations(context, { now }));
    expect(bodies(receiver).map((body) => body.payload.days_until_expiry)).toEqual([1]);
    const keys = await ws.run((context) => context.db.selectFrom('webhook_deliveries').select('event_key').execute());
    expect(keys[0]!.event_key).toMatch(/:1d$/);
  });

  test('a renewal (new expires_at) re-arms the notices', async () => {
    const { ws, receiver } = await setup();
    const lic = aLicense({ expires_at: at(5 * DAY) });
    await ws.seed([lic]);
    await ws.run((context) => processExpirations(context, { now }));
    await ws.seed([{ license_code: lic.license_code, expires_at: at(5 * DAY + 365 * DAY) }]);
    const later = new Date(now.getTime() + 365 * DAY);
    await ws.run((context) => processExpirations(context, { now: later }));
    expect(bodies(receiver).map((body) => body.payload.expires_at)).toEqual([at(5 * DAY).replace('.000', ''), at(370 * DAY).replace('.000', '')]);
  });

  test('lookback bounds catch-up; suspended, revoked and lifetime licenses are skipped', async () => {
    const { ws, receiver } = await setup();
    await ws.seed([
      aLicense({ license_code: 'OLD', expires_at: at(-8 * DAY) }),
      aLicense({ license_code: 'SUSPENDED', status: 'suspended', expires_at: at(DAY) }),
      aLicense({ license_code: 'REVOKED', status: 'revoked', expires_at: at(-DAY), updates_until: at(-DAY) }),
      aLicense({ license_code: 'LIFETIME', expires_at: null }),
      aLicense({ license_code: 'EDGE', expires_at: at(-7 * DAY) }),
    ]);
    const result = await ws.run((context) => processExpirations(context, { now }));
    expect(result.due.map((event) => event.licenseCode)).toEqual(['EDGE']);
    expect(receiver.requests).toHaveLength(1);
  });

  test('webhooks disabled: reports what is due, records and sends nothing', async () => {
    receiver = await startReceiver();
    const ws = workspace({ webhooks: { enabled: false, url: receiver.url } });
    await ws.seed([aLicense({ expires_at: at(DAY) }), aLicense({ expires_at: at(-DAY) })]);
    const result = await ws.run((context) => processExpirations(context, { now }));
    expect(result.due).toHaveLength(2);
    expect(result.recorded).toBe(0);
    expect(receiver.requests).toHaveLength(0);
    const counts = await ws.run(async (context) => ({
      deliveries: (await context.db.selectFrom('webhook_deliveries').selectAll().execute()).length,
      expired: (await context.db.selectFrom('licenses').selectAll().where('status', '=', 'expired').execute()).length,
    }));
    expect(counts).toEqual({ deliveries: 0, expired: 0 });
  });

  test('--dry-run lists the events and changes nothing', async () => {
    const { ws, receiver } = await setup();
    await ws.seed([aLicense({ license_code: 'DRY', expires_at: at(-DAY) })]);
    const result = await ws.run((context) => processExpirations(context, { now, dryRun: true }));
    expect(result.due).toEqual([{ type: 'license.expired', licenseId: expect.any(Number), licenseCode: 'DRY', date: at(-DAY).replace('.000', '') }]);
    expect(receiver.requests).toHaveLength(0);
    const state = await ws.run(async (context) => ({
      deliveries: await context.db.selectFrom('webhook_deliveries').selectAll().execute(),
      license: await context.db.selectFrom('licenses').select('status').executeTakeFirstOrThrow(),
    }));
    expect(state).toEqual({ deliveries: [], license: { status: 'active' } });
  });

  test('a pending delivery left by a run that died before sending is sent by the next run', async () => {
    const { ws, receiver } = await setup();
    await ws.seed([aLicense({ expires_at: at(-DAY) })]);
    await ws.run(async (context) => {
      await context.db
        .insertInto('webhook_deliveries')
        .values({
          event_id: 'left-over',
          event_key: 'manual:1',
          event_type: 'license.expired',
          license_id: null,
          body: '{"left":"over"}',
          status: 'pending',
          created_at: '2024-01-14T00:00:00Z',
        })
        .execute();
    });
    const result = await ws.run((context) => processExpirations(context, { now }));
    expect(result.delivered).toBe(2);
    expect(receiver.requests.map((request) => request.headers['x-webhook-id'])).toContain('left-over');
  });

  test('dates written by another system (space separator, offsets) are found; an unreadable date is skipped with a warning', async () => {
    const { ws, receiver } = await setup();
    await ws.seed([
      aLicense({ license_code: 'SPACE', expires_at: '2024-01-16 09:00:00' }),
      aLicense({ license_code: 'OFFSET', expires_at: '2024-01-15T01:00:00-05:00' }),
      aLicense({ license_code: 'BROKEN', expires_at: '2024-01-15 lunchtime' }),
      aLicense({ license_code: '  ', expires_at: '2024-01-14T00:00:00Z' }),
    ]);
    const warnings: string[] = [];
    const result = await ws.run((context) => processExpirations(context, { now, onWarning: (text) => warnings.push(text) }));
    expect(result.due.map((event) => [event.licenseCode, event.type])).toEqual([
      ['SPACE', 'license.expiring'],
      ['OFFSET', 'license.expired'],
    ]);
    expect(result.skipped).toBe(2);
    expect(warnings).toEqual([
      expect.stringMatching(/license id \d+ \(BROKEN\): expires_at "2024-01-15 lunchtime" is not a date/),
      expect.stringMatching(/license id \d+ \(  \): license_code is empty/),
    ]);
    expect(receiver.requests).toHaveLength(2);
  });
});
