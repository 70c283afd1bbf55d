import fs from 'node:fs';
import { expect, test } from '@jest/globals';
import type { Clock } from '../../src/clock.js';
import { processExpirations, type ProcessExpirationsRun } from '../../src/commands/process-expirations.js';
import { licensesShow } from '../../src/commands/reminders.js';
import type { Receiver } from '../helpers/receiver.js';
import { aLicense, forEachDialect, receiverFor, type Workspace } from '../helpers/workspace.js';

// A notice superseded because its license changed (renewed, suspended, …) is re-armed when the change is undone and
// the rules call for it again: it was never sent, so the customer would otherwise never be told.
const T0 = new Date('2026-12-07T10:30:00Z');
const HOUR = 3_600_000;
const at = (hours: number) => new Date(T0.getTime() + hours * HOUR);

/** One run with the rules and the engine's clock at `when`. */
function runAt(ws: Workspace, when: Date): Promise<ProcessExpirationsRun> {
  const clock: Clock = { now: () => when };
  return ws.run((context) => processExpirations(context, { now: when, clock }));
}

interface Body {
  event_type: string;
  timestamp: string;
  payload: { license_code: string; expires_at?: string; days_until_expiry?: number };
}
const bodies = (receiver: Receiver) => receiver.requests.map((request) => JSON.parse(request.body.toString('utf8')) as Body);
const got = (receiver: Receiver) => bodies(receiver).map((body) => `${body.event_type} ${body.payload.license_code}`);
const ids = (receiver: Receiver) => receiver.requests.map((request) => String(request.headers['x-webhook-id']));

interface Row {
  id: number;
  event_id: string;
  event_type: string;
  endpoint: string;
  status: string;
  status_reason: string | null;
  created_at: string;
  body: string;
}
const rowsOf = (ws: Workspace, code: string) =>
  ws.rows<Row>(
    `select d.id, d.event_id, d.event_type, d.endpoint, d.status, d.status_reason, d.created_at, d.body from webhook_deliveries d join licenses l on l.id = d.license_id where l.license_code = '${code}' order by d.id`,
  );

/**
 * EXP expired at 10:00 and WARN expires tomorrow (a 1-day warning): both recorded at T0. default answers 500 (deferred),
 * `ops` (config) takes both and answers 200, `crm` (stored, disabled) parks them and the operator discards them.
 * Both licenses are then renewed, and their deferred notices superseded ("license renewed") at T0+1h.
 */
async function renewedWhileDeferred(workspace: (config?: Record<string, unknown>) => Workspace) {
  let down = true;
  const main = await receiverFor(() => (down ? 500 : 200));
  const ops = await receiverFor();
  const crm = await receiverFor();
  const ws = workspace({
    webhooks: { enabled: true, url: main.url, retryDelaysMs: [10], retryWindowHours: 72, endpoints: [{ name: 'ops', url: ops.url }] },
    expirations: { warningDays: [7, 1] },
  });
  fs.chmodSync(ws.configFile, 0o600);
  await ws.ready();
  await ws.seed([
    aLicense({ license_code: 'EXP', expires_at: '2026-12-07T10:00:00Z' }),
    aLicense({ license_code: 'WARN', expires_at: '2026-12-08T09:00:00Z' }),
  ]);
  expect((await ws.cli(['endpoints', 'add', 'crm', '--url', crm.url])).code).toBe(0);
  expect((await ws.cli(['endpoints', 'disable', 'crm'])).code).toBe(0);

  const first = await runAt(ws, T0);
  expect(first).toMatchObject({ recorded: 2, delivered: 2, deferred: 2, markedExpired: 1 });
  expect(got(ops).sort()).toEqual(['license.expired EXP', 'license.expiring WARN']);
  const attempted = ids(main);
  // An operator ends crm's parked deliveries: never re-armed.
  expect((await ws.cli(['endpoints', 'enable', 'crm', '--discard-parked'])).code).toBe(0);

  // Renewed: the deferred notices are superseded when due.
  await ws.rows(`update licenses set expires_at = '2027-12-07T10:00:00Z', status = 'active' where license_code in ('EXP', 'WARN')`);
  const renewed = await runAt(ws, at(1));
  expect(renewed).toMatchObject({ recorded: 0, delivered: 0, superseded: 2 });
  const superseded = (await rowsOf(ws, 'EXP')).find((row) => row.endpoint === 'default')!;
  expect(superseded).toMatchObject({ status: 'superseded', status_reason: 'license renewed: it now expires on 2027-12-07 (this notice is about 2026-12-07)' });
  down = false;
  return { ws, main, ops, crm, attempted };
}

forEachDialect('re-armed notices', ({ workspace }) => {
  test('a renewal undone: the superseded expired and warning go out once (same event id and body as recorded), to the endpoints whose were superseded by the license', async () => {
    const { ws, main, ops, crm, attempted } = await renewedWhileDeferred(workspace);
    const before = main.requests.length;

    // The renewal undone: back to the old dates.
    await ws.rows(`update licenses set expires_at = '2026-12-07T10:00:00Z', status = 'active' where license_code = 'EXP'`);
    await ws.rows(`update licenses set expires_at = '2026-12-08T09:00:00Z', status = 'active' where license_code = 'WARN'`);
    // licenses show lists them as to come, before the run.
    const shown = await ws.run((context) => licensesShow(context, 'EXP', at(2)));
    expect(shown.toCome).toEqual([{ date: '2026-12-07', type: 'license.expired' }]);
    const warned = await ws.run((context) => licensesShow(context, 'WARN', at(2)));
    expect(warned.toCome[0]).toEqual({ date: '2026-12-07', type: 'license.expiring', days: 1 });

    const undone = await runAt(ws, at(2));
    expect(undone).toMatchObject({ recorded: 2, rearmed: 2, delivered: 2, superseded: 0, abandoned: 0, markedExpired: 1 });
    expect(undone.due.map((event) => `${event.type} ${event.licenseCode}`).sort()).toEqual(['license.expired EXP', 'license.expiring WARN']);
    const sent = main.requests.slice(before);
    expect(sent).toHaveLength(2);
    const sentBodies = sent.map((request) => JSON.parse(request.body.toString('utf8')) as Body);
    expect(sentBodies.map((body) => `${body.event_type} ${body.payload.license_code}`).sort()).toEqual(['license.expired EXP', 'license.expiring WARN']);
    // Same event ids as the attempts the receiver may have seen, and the same bytes ops got for each: one event, one body.
    expect(sent.map((request) => String(request.headers['x-webhook-id'])).sort()).toEqual([...new Set(attempted)].sort());
    for (const request of sent) {
      const atOps = ops.requests.find((other) => other.headers['x-webhook-id'] === request.headers['x-webhook-id']);
      expect(request.body.toString('utf8')).toBe(atOps!.body.toString('utf8'));
    }
    for (const body of sentBodies) expect(body.timestamp).not.toBe('2026-12-07T12:30:00Z');
    expect(sentBodies.find((body) => body.event_type === 'license.expiring')!.payload.days_until_expiry).toBe(1);
    // ops had them (delivered: never again); crm's were discarded by the operator (never re-armed).
    expect(got(ops)).toHaveLength(2);
    expect(crm.requests).toHaveLength(0);
    const rows = await rowsOf(ws, 'EXP');
    expect(rows.map((row) => [row.endpoint, row.status])).toEqual([
      ['default', 'delivered'],
      ['ops', 'delivered'],
      ['crm', 'superseded'],
    ]);
    expect(rows[0]).toMatchObject({ created_at: '2026-12-07T12:30:00Z', status_reason: null });
    expect(rows[2]!.status_reason).toMatch(/^discarded by "endpoints enable crm --discard-parked"/);
    expect(await ws.rows(`select status from licenses where license_code = 'EXP'`)).toEqual([{ status: 'expired' }]);

    // Exactly once: nothing more on the next runs, and show lists it as sent.
    expect(await runAt(ws, at(3))).toMatchObject({ recorded: 0, delivered: 0, due: [] });
    expect(main.requests.length).toBe(before + 2);
    const after = await ws.run((context) => licensesShow(context, 'EXP', at(3)));
    expect(after.toCome).toEqual([]);
    expect(after.sent.filter((row) => row.endpoint === 'default').map((row) => row.status)).toEqual(['delivered']);
  }, 90_000);

  test('two runs at once after the renewal is undone: each notice is re-armed and sent once', async () => {
    const { ws, main } = await renewedWhileDeferred(workspace);
    const before = main.requests.length;
    await ws.rows(`update licenses set expires_at = '2026-12-07T10:00:00Z', status = 'active' where license_code = 'EXP'`);
    await ws.rows(`update licenses set expires_at = '2026-12-08T09:00:00Z', status = 'active' where license_code = 'WARN'`);
    const runs = await Promise.all([runAt(ws, at(2)), runAt(ws, at(2))]);
    expect(runs[0]!.rearmed + runs[1]!.rearmed).toBe(2);
    expect(runs[0]!.delivered + runs[1]!.delivered).toBe(2);
    expect(main.requests.length - before).toBe(2);
    expect(new Set(ids(main).slice(before)).size).toBe(2);
  }, 90_000);

  test('an endpoint removed and added again under its name is another endpoint: what the earlier one had superseded is not re-armed for it', async () => {
    const main = await receiverFor();
    const first = await receiverFor(() => 500);
    const second = await receiverFor();
    const ws = workspace({ webhooks: { enabled: true, url: main.url, retryDelaysMs: [10], retryWindowHours: 72 }, expirations: { warningDays: [1] } });
    fs.chmodSync(ws.configFile, 0o600);
    await ws.ready();
    // On the real clock, as `endpoints add` stamps the endpoint: expired an hour ago.
    const expiredAt = new Date(Date.now() - HOUR).toISOString().slice(0, 19) + 'Z';
    await ws.seed([aLicense({ license_code: 'EXP', expires_at: expiredAt })]);
    expect((await ws.cli(['endpoints', 'add', 'hooks', '--url', first.url])).code).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect(await runAt(ws, new Date())).toMatchObject({ recorded: 1, delivered: 1, deferred: 1 });
    await ws.rows(`update licenses set expires_at = '2099-12-07T10:00:00Z', status = 'active' where license_code = 'EXP'`);
    expect(await runAt(ws, new Date(Date.now() + HOUR))).toMatchObject({ superseded: 1 });
    // A second later on the real clock (times are kept to the second): removed, and a new endpoint of that name added.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect((await ws.cli(['endpoints', 'remove', 'hooks', '--force'])).code).toBe(0);
    expect((await ws.cli(['endpoints', 'add', 'hooks', '--url', second.url])).code).toBe(0);
    // The renewal undone: default had the notice; the new hooks never had it and gets none of the earlier one's.
    await ws.rows(`update licenses set expires_at = '${expiredAt}', status = 'active' where license_code = 'EXP'`);
    expect(await runAt(ws, new Date(Date.now() + 2 * HOUR))).toMatchObject({ rearmed: 0, delivered: 0 });
    expect(second.requests).toHaveLength(0);
    expect(main.requests).toHaveLength(1);
  }, 60_000);

  test("a notice the operator ended (its product's notices turned off while it waited) is not re-armed when they are turned on again", async () => {
    const main = await receiverFor(() => 500);
    const ws = workspace({ webhooks: { enabled: true, url: main.url, retryDelaysMs: [10], retryWindowHours: 72 }, expirations: { warningDays: [1] } });
    fs.chmodSync(ws.configFile, 0o600);
    await ws.ready();
    await ws.seed([aLicense({ license_code: 'OFF', product_id: 'PROD-OFF', expires_at: '2026-12-07T10:00:00Z' })]);
    expect(await runAt(ws, T0)).toMatchObject({ recorded: 1, deferred: 1 });
    // The product's notices turned off: the deferred notice is superseded for that, by the operator.
    ws.configure({
      webhooks: { enabled: true, url: main.url, retryDelaysMs: [10], retryWindowHours: 72 },
      expirations: { warningDays: [1], products: { 'PROD-OFF': { enabled: false } } },
    });
    fs.chmodSync(ws.configFile, 0o600);
    expect(await runAt(ws, at(1))).toMatchObject({ superseded: 1 });
    // Turned on again: the rules call for the expired again, but the operator ended it.
    ws.configure({ webhooks: { enabled: true, url: main.url, retryDelaysMs: [10], retryWindowHours: 72 }, expirations: { warningDays: [1] } });
    fs.chmodSync(ws.configFile, 0o600);
    const sent = main.requests.length;
    expect(await runAt(ws, at(2))).toMatchObject({ recorded: 0, delivered: 0, due: [] });
    expect(main.requests.length).toBe(sent);
    expect((await rowsOf(ws, 'OFF')).map((row) => row.status)).toEqual(['superseded']);
  }, 60_000);
});
