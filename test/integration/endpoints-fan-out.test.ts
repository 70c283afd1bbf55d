import fs from 'node:fs';
import { expect, test } from '@jest/globals';
import { Webhook } from 'standardwebhooks';
import { verifySignature } from '../../src/webhooks/verify.js';
import { processExpirations } from '../../src/commands/process-expirations.js';
import { type Receiver } from '../helpers/receiver.js';
import { aLicense, forEachDialect, receiverFor, type Workspace } from '../helpers/workspace.js';

// Fan-out: one event, recorded once, delivered once to each endpoint that takes its type.
const NOW = '2025-01-23T10:00:00Z';
const SECRET = 'default-secret';
const CRM_SECRET = 'crm-secret-value';
const CHAT_SECRET = `whsec_${Buffer.alloc(32, 9).toString('base64')}`;

const idsOf = (r: Receiver) => r.requests.map((request) => String(request.headers['x-webhook-id']));
const typesOf = (r: Receiver) => r.requests.map((request) => String(request.headers['x-webhook-event'])).sort();

/** Licenses whose events are due at NOW: `expired` of them expired the day before, `expiring` expire in 7 days. */
async function seeded(ws: Workspace, expired: number, expiring = 0): Promise<void> {
  fs.chmodSync(ws.configFile, 0o600);
  await ws.ready();
  await ws.seed([
    ...Array.from({ length: expired }, (_, index) => aLicense({ license_code: `EXP-${index}`, expires_at: '2025-01-22T10:00:00Z' })),
    ...Array.from({ length: expiring }, (_, index) => aLicense({ license_code: `SOON-${index}`, expires_at: '2025-01-30T10:00:00Z' })),
  ]);
}

forEachDialect('endpoints: fan-out', ({ workspace }) => {
  test('each event goes once to each endpoint taking its type, with one id; signing, filters and headers per endpoint', async () => {
    const [main, crm, chat] = [await receiverFor(), await receiverFor(), await receiverFor()];
    const ws = workspace({
      webhooks: {
        enabled: true,
        url: main.url,
        secret: SECRET,
        endpoints: [
          { name: 'crm', url: crm.url, secret: CRM_SECRET, events: ['license.expired'], headers: { 'X-Api-Key': 'crm-key' } },
          { name: 'chat', url: chat.url, secret: CHAT_SECRET, signing: 'standard' },
        ],
      },
    });
    await seeded(ws, 3, 2);
    const run = await ws.cli(['process-expirations', '--now', NOW, '--json']);
    expect([run.code, run.stderr]).toEqual([0, '']);
    // `recorded` counts events (5), `delivered` deliveries: 5 to default, 3 to crm, 5 to chat.
    expect(JSON.parse(run.stdout)).toMatchObject({ recorded: 5, delivered: 13 });

    expect(typesOf(main)).toEqual([...Array(3).fill('license.expired'), ...Array(2).fill('license.expiring')]);
    expect(typesOf(crm)).toEqual(Array(3).fill('license.expired'));
    expect(typesOf(chat)).toEqual(typesOf(main));
    // One event, one id at every receiver; each once.
    expect(new Set(idsOf(main)).size).toBe(5);
    expect(new Set(idsOf(chat))).toEqual(new Set(idsOf(main)));
    for (const id of idsOf(crm)) expect(idsOf(main)).toContain(id);

    // default: exactly the headers of before; crm: Botble's signature with its own secret and its extra header.
    for (const request of main.requests) {
      expect(verifySignature(request.body, String(request.headers['x-webhook-signature']), SECRET).verdict).toBe('valid');
      expect(request.headers['webhook-signature']).toBeUndefined();
      expect(request.headers['x-api-key']).toBeUndefined();
    }
    for (const request of crm.requests) {
      expect(verifySignature(request.body, String(request.headers['x-webhook-signature']), CRM_SECRET).verdict).toBe('valid');
      expect(request.headers['x-api-key']).toBe('crm-key');
    }
    // chat: Standard Webhooks only, verified by the official library.
    for (const request of chat.requests) {
      expect(request.headers['x-webhook-signature']).toBeUndefined();
      expect(request.headers['webhook-id']).toBe(request.headers['x-webhook-id']);
      const headers = Object.fromEntries(Object.entries(request.headers).map(([name, value]) => [name, String(value)]));
      expect(new Webhook(CHAT_SECRET).verify(request.body.toString('utf8'), headers)).toEqual(JSON.parse(request.body.toString('utf8')));
    }
    const delivered = await ws.rows<{ endpoint: string; n: unknown }>(
      "select endpoint, count(*) as n from webhook_deliveries where status = 'delivered' group by endpoint order by endpoint",
    );
    expect(delivered.map((row) => ({ endpoint: row.endpoint, n: Number(row.n) }))).toEqual([
      { endpoint: 'chat', n: 5 },
      { endpoint: 'crm', n: 3 },
      { endpoint: 'default', n: 5 },
    ]);

    // Nothing more on the next run.
    const again = await ws.cli(['process-expirations', '--now', NOW, '--json']);
    expect(JSON.parse(again.stdout)).toMatchObject({ recorded: 0, delivered: 0 });
    expect([main.requests.length, crm.requests.length, chat.requests.length]).toEqual([5, 3, 5]);
  }, 60_000);

  test('a disabled endpoint parks its deliveries (no lock warning, exit 0) and sends them once enabled; one removed stays parked', async () => {
    const [main, crm] = [await receiverFor(), await receiverFor()];
    const crmEntry = { name: 'crm', url: crm.url, secret: CRM_SECRET };
    const ws = workspace({ webhooks: { enabled: true, url: main.url, secret: SECRET, endpoints: [{ ...crmEntry, enabled: false }] } });
    await seeded(ws, 4);
    const run = await ws.cli(['process-expirations', '--now', NOW, '--json']);
    expect([run.code, run.stderr]).toEqual([0, '']);
    expect(JSON.parse(run.stdout)).toMatchObject({ recorded: 4, delivered: 4, locked: 0 });
    // Not counted as left over or locked: parked.
    expect([main.requests.length, crm.requests.length]).toEqual([4, 0]);
    expect(await ws.rows("select status, status_reason from webhook_deliveries where endpoint = 'crm'")).toEqual(
      Array(4).fill({ status: 'parked', status_reason: 'endpoint disabled' }),
    );

    ws.configure({ webhooks: { enabled: true, url: main.url, secret: SECRET, endpoints: [crmEntry] } });
    fs.chmodSync(ws.configFile, 0o600);
    const enabled = await ws.cli(['process-expirations', '--now', NOW, '--json']);
    expect([enabled.code, enabled.stderr]).toEqual([0, '']);
    expect([main.requests.length, crm.requests.length]).toEqual([4, 4]);
    expect(new Set(idsOf(crm))).toEqual(new Set(idsOf(main)));

    // Removed from the config file: its deliveries are never sent to another endpoint's URL.
    await ws.seed([aLicense({ license_code: 'LATER', expires_at: '2025-01-23T09:00:00Z' })]);
    const withCrm = await ws.cli(['process-expirations', '--now', NOW, '--json']);
    expect(withCrm.code).toBe(0);
    expect([main.requests.length, crm.requests.length]).toEqual([5, 5]);
    await ws.rows("update webhook_deliveries set status = 'pending' where endpoint = 'crm'");
    ws.configure({ webhooks: { enabled: true, url: main.url, secret: SECRET } });
    fs.chmodSync(ws.configFile, 0o600);
    const removed = await ws.cli(['process-expirations', '--now', NOW, '--json']);
    // The run that parks them says so, once.
    expect([removed.code, removed.stderr]).toEqual([0, expect.stringMatching(/^warning: 5 deliveries to crm parked: the endpoint is no longer defined /)]);
    expect(JSON.parse(removed.stdout)).toMatchObject({ delivered: 0, locked: 0 });
    expect([main.requests.length, crm.requests.length]).toEqual([5, 5]);
  }, 60_000);

  test('endpoints disable parks pending and deferred deliveries with the reason; runs send none and exit 0; enable: the next run delivers each once', async () => {
    let up = false;
    const main = await receiverFor();
    const crm = await receiverFor(() => (up ? 200 : 503));
    // Retries across runs on: deferred and 410-parked deliveries make exit 4, the operator's parking must not.
    const ws = workspace({ webhooks: { enabled: true, url: main.url, secret: SECRET, retryDelaysMs: [], retryWindowHours: 72 } });
    await seeded(ws, 0);
    expect((await ws.cli(['endpoints', 'add', 'crm', '--url', crm.url])).code).toBe(0);
    expect((await ws.cli(['endpoints', 'disable', 'crm'])).code).toBe(0);
    // Retries across runs count their window from when an event was recorded, by the real clock: no --now here.
    const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 19) + 'Z';
    await ws.seed(Array.from({ length: 3 }, (_, index) => aLicense({ license_code: `EXP-${index}`, expires_at: yesterday })));
    const crmRows = () =>
      ws.rows<{ status: string; status_reason: string | null; next_attempt_at: string | null }>(
        "select status, status_reason, next_attempt_at from webhook_deliveries where endpoint = 'crm' order by id",
      );
    const parkedByOperator = Array(3).fill({ status: 'parked', status_reason: 'endpoint disabled', next_attempt_at: null });

    // Recorded while disabled: parked at once, nothing sent, exit 0 (no receiver failed).
    const first = await ws.cli(['process-expirations']);
    expect([first.code, first.stderr]).toEqual([0, '']);
    expect([main.requests.length, crm.requests.length]).toEqual([3, 0]);
    expect(await crmRows()).toEqual(parkedByOperator);
    const listed = JSON.parse((await ws.cli(['deliveries', 'list', '--status', 'parked', '--json'])).stdout) as Array<Record<string, unknown>>;
    expect(listed.map((row) => [row.endpoint, row.status, row.status_reason])).toEqual(Array(3).fill(['crm', 'parked', 'endpoint disabled']));
    const status = await ws.cli(['status', '--json']);
    const health = JSON.parse(status.stdout) as { health: { exitCode: number }; endpoints: Array<{ name: string; parked: number }> };
    expect(health.health.exitCode).toBe(0);
    expect(health.endpoints.filter((endpoint) => endpoint.parked > 0)).toEqual([]);

    // Enabled while its receiver fails: deferred (exit 4); disabled again: the deferred ones are parked, and a run is exit 0 again.
    const enabled = await ws.cli(['endpoints', 'enable', 'crm', '--json']);
    expect(JSON.parse(enabled.stdout)).toMatchObject({ enabled: true, parked: 3 });
    const failing = await ws.cli(['process-expirations']);
    expect(failing.code).toBe(4);
    expect(crm.requests).toHaveLength(3);
    expect((await crmRows()).map((row) => row.status)).toEqual(Array(3).fill('deferred'));
    expect((await ws.cli(['endpoints', 'disable', 'crm'])).code).toBe(0);
    expect(await crmRows()).toEqual(parkedByOperator);
    const quiet = await ws.cli(['process-expirations']);
    expect([quiet.code, quiet.stderr]).toEqual([0, '']);
    expect(crm.requests).toHaveLength(3);
    expect((await ws.rows<{ exit_code: number }>('select exit_code from runs order by id')).map((row) => Number(row.exit_code))).toEqual([0, 4, 0]);

    // Back up and enabled: the next run delivers each once (back to pending, not deferred), the one after sends nothing.
    up = true;
    expect((await ws.cli(['endpoints', 'enable', 'crm'])).code).toBe(0);
    expect((await crmRows()).map((row) => [row.status, row.next_attempt_at])).toEqual(Array(3).fill(['pending', null]));
    const delivered = await ws.cli(['process-expirations']);
    expect([delivered.code, delivered.stderr]).toEqual([0, '']);
    const sentNow = idsOf(crm).slice(3);
    expect(sentNow).toHaveLength(3);
    expect(new Set(sentNow)).toEqual(new Set(idsOf(main)));
    expect((await crmRows()).map((row) => row.status)).toEqual(Array(3).fill('delivered'));
    expect((await ws.cli(['process-expirations'])).code).toBe(0);
    expect(crm.requests).toHaveLength(6);
  }, 60_000);

  test('endpoints remove --force while a run waits to retry one of its deliveries: the run makes no further attempt and ends it unsent', async () => {
    const main = await receiverFor();
    const crm = await receiverFor((_request, index) => (index === 0 ? 503 : 200));
    const ws = workspace({ webhooks: { enabled: true, url: main.url, secret: SECRET, retryDelaysMs: [3000] } });
    await ws.ready();
    expect((await ws.cli(['endpoints', 'add', 'crm', '--url', crm.url])).code).toBe(0);
    await seeded(ws, 1);
    const running = ws.cli(['process-expirations', '--now', NOW, '--json']);
    const deadline = Date.now() + 20_000;
    while (crm.requests.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    const removed = await ws.cli(['endpoints', 'remove', 'crm', '--force', '--json']);
    expect(JSON.parse(removed.stdout)).toEqual({ name: 'crm', defined: true, dropped: 0, sending: 1 });
    const run = await running;
    expect(run.code).toBe(0);
    // The run reads the switches again before the retry: removed, the delivery ends unsent, by the run that held it.
    expect(crm.requests).toHaveLength(1);
    expect(await ws.rows("select status, status_reason from webhook_deliveries where endpoint = 'crm'")).toEqual([
      { status: 'superseded', status_reason: expect.stringMatching(/^endpoint crm removed while a run held this delivery/) },
    ]);
  }, 60_000);

  test("deliveries retry keeps to an endpoint's maxInFlight, as a run does", async () => {
    let refuse = true;
    let inFlight = 0;
    let most = 0;
    const main = await receiverFor();
    const slow = await receiverFor(() => {
      if (refuse) return 400;
      inFlight += 1;
      most = Math.max(most, inFlight);
      setTimeout(() => (inFlight -= 1), 250);
      return { delayMs: 250, status: 200 };
    });
    const ws = workspace({ webhooks: { enabled: true, url: main.url, secret: SECRET, endpoints: [{ name: 'slow', url: slow.url, maxInFlight: 1 }] } });
    await seeded(ws, 4);
    const run = await ws.cli(['process-expirations', '--now', NOW, '--json']);
    expect(JSON.parse(run.stdout)).toMatchObject({ delivered: 4, abandoned: 4 });
    refuse = false;
    const retried = await ws.cli(['deliveries', 'retry', '--abandoned', '--endpoint', 'slow', '--json']);
    expect([retried.code, JSON.parse(retried.stdout).delivered]).toEqual([0, 4]);
    // Without the endpoint's limit the four went at once (concurrency 8).
    expect(most).toBe(1);
  }, 60_000);

  test('an endpoint added later receives the events recorded after it was added, not the history', async () => {
    const [main, crm] = [await receiverFor(), await receiverFor()];
    const ws = workspace({ webhooks: { enabled: true, url: main.url, secret: SECRET } });
    await seeded(ws, 2);
    expect((await ws.cli(['process-expirations', '--now', NOW])).code).toBe(0);
    ws.configure({ webhooks: { enabled: true, url: main.url, secret: SECRET, endpoints: [{ name: 'crm', url: crm.url }] } });
    fs.chmodSync(ws.configFile, 0o600);
    await ws.seed([aLicense({ license_code: 'NEW', expires_at: '2025-01-23T09:00:00Z' })]);
    expect((await ws.cli(['process-expirations', '--now', NOW])).code).toBe(0);
    expect(main.requests).toHaveLength(3);
    expect(crm.requests.map((request) => JSON.parse(request.body.toString('utf8')).payload.license_code)).toEqual(['NEW']);
    // Unsigned endpoint: no signature header at all, as for a default without a secret.
    expect(crm.requests[0]!.headers['x-webhook-signature']).toBeUndefined();
  }, 60_000);

  test('a slow, failing endpoint does not hold up the others', async () => {
    const [main, crm] = [await receiverFor(), await receiverFor()];
    const slow = await receiverFor(() => ({ delayMs: 150, status: 503 }));
    const ws = workspace({
      webhooks: {
        enabled: true,
        url: main.url,
        secret: SECRET,
        concurrency: 4,
        retryDelaysMs: [10],
        endpoints: [
          { name: 'crm', url: crm.url },
          { name: 'slow', url: slow.url, maxInFlight: 1 },
        ],
      },
    });
    await seeded(ws, 20);
    const run = await ws.cli(['process-expirations', '--now', NOW, '--json']);
    // The slow endpoint's deliveries are abandoned (503 twice each): exit 3, as for any abandoned delivery.
    expect(run.code).toBe(3);
    expect(JSON.parse(run.stdout)).toMatchObject({ recorded: 20, delivered: 40, abandoned: 20 });
    expect([main.requests.length, crm.requests.length, slow.requests.length]).toEqual([20, 20, 40]);
    // 40 attempts one at a time at 150 ms take 6 s; the others were all done within the first part of it (counted
    // from the run's first request: the CLI's start-up on a loaded machine is not the engine's doing).
    const started = Math.min(...[...main.requests, ...crm.requests, ...slow.requests].map((request) => request.at));
    const lastFast = Math.max(...[...main.requests, ...crm.requests].map((request) => request.at));
    expect(lastFast - started).toBeLessThan(3000);
    expect(Math.max(...slow.requests.map((request) => request.at)) - lastFast).toBeGreaterThan(2000);
    expect(await ws.rows("select status from webhook_deliveries where endpoint = 'slow' and status <> 'abandoned'")).toEqual([]);
  }, 60_000);

  test('a receiver that hangs from the first request holds up no other endpoint, not even for one timeout', async () => {
    // default hangs past its timeout; crm answers at once. Claimed endpoint by endpoint, default's first window took
    // every slot before crm's was claimed, and crm's first request waited for default's first timeouts.
    const hanging = await receiverFor(() => ({ delayMs: 5000, status: 200 }));
    const crm = await receiverFor();
    const ws = workspace({
      webhooks: {
        enabled: true,
        url: hanging.url,
        secret: SECRET,
        concurrency: 4,
        timeoutMs: 2000,
        retryDelaysMs: [],
        endpoints: [{ name: 'crm', url: crm.url }],
      },
    });
    await seeded(ws, 12);
    const run = await ws.cli(['process-expirations', '--now', NOW, '--json']);
    expect(run.code).toBe(3);
    expect(JSON.parse(run.stdout)).toMatchObject({ recorded: 12, delivered: 12, abandoned: 12 });
    expect(crm.requests).toHaveLength(12);
    const firstHung = Math.min(...hanging.requests.map((request) => request.at));
    // Every crm delivery was done before default's first attempts timed out (2 s after they started).
    expect(Math.max(...crm.requests.map((request) => request.at)) - firstHung).toBeLessThan(1500);
  }, 60_000);
});

forEachDialect('endpoints: events narrowed while deliveries wait', ({ workspace }) => {
  test('a waiting delivery of a type its endpoint no longer takes is superseded with the reason, not sent; the others go', async () => {
    let down = true;
    const main = await receiverFor();
    const crm = await receiverFor(() => (down ? 503 : 200));
    const ws = workspace({ webhooks: { enabled: true, url: main.url, secret: SECRET, retryDelaysMs: [10], retryWindowHours: 72 } });
    await seeded(ws, 1, 1);
    expect((await ws.cli(['endpoints', 'add', 'crm', '--url', crm.url])).code).toBe(0);
    const at = (minutes: number) => new Date(Date.parse(NOW) + minutes * 60_000);
    const run = (minutes: number) => ws.run((context) => processExpirations(context, { now: at(minutes), clock: { now: () => at(minutes) } }));
    expect(await run(0)).toMatchObject({ recorded: 2, deferred: 2 });
    // crm now takes only license.expired; it is back.
    expect((await ws.cli(['endpoints', 'update', 'crm', '--events', 'license.expired'])).code).toBe(0);
    down = false;
    const before = crm.requests.length;
    const later = await run(60);
    expect(later).toMatchObject({ delivered: 1, superseded: 1 });
    expect(typesOf(crm).length - before).toBe(1);
    expect(String(crm.requests.at(-1)!.headers['x-webhook-event'])).toBe('license.expired');
    expect(await ws.rows("select event_type, status, status_reason from webhook_deliveries where endpoint = 'crm' order by event_type")).toEqual([
      { event_type: 'license.expired', status: 'delivered', status_reason: null },
      {
        event_type: 'license.expiring',
        status: 'superseded',
        status_reason: 'endpoint crm no longer takes license.expiring events (it takes license.expired since its events were changed)',
      },
    ]);
  }, 60_000);
});
