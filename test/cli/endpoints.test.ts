import fs from 'node:fs';
import { describe, expect, test } from '@jest/globals';
import { Webhook } from 'standardwebhooks';
import { verifySignature } from '../../src/webhooks/verify.js';
import { botbleSettingInserts, botbleSuite } from '../helpers/botble.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/temp-dir.js';

import { aLicense, forEachDialect, receiverFor, workspace, type Workspace } from '../helpers/workspace.js';

// `endpoints …`, `deliveries … --endpoint`, `send-test-event --endpoint`: the receivers an operator adds and manages.
const NOW = '2025-01-23T10:00:00Z';
const SECRET = 'default-secret';

async function ready(config: Record<string, unknown>): Promise<Workspace> {
  const ws = workspace(config);
  fs.chmodSync(ws.configFile, 0o600);
  await ws.ready();
  return ws;
}

const json = <T = Record<string, unknown>>(stdout: string) => JSON.parse(stdout) as T;

/** A stored endpoint crm that answers 400: the run abandons its one delivery (exit 3). */
async function crmAbandonedOne(): Promise<Workspace> {
  const main = await receiverFor();
  const crm = await receiverFor(() => 400);
  const ws = await ready({ webhooks: { enabled: true, url: main.url, secret: SECRET } });
  expect((await ws.cli(['endpoints', 'add', 'crm', '--url', crm.url])).code).toBe(0);
  await ws.seed([aLicense({ expires_at: '2025-01-22T09:00:00Z' })]);
  expect((await ws.cli(['process-expirations', '--now', NOW])).code).toBe(3);
  return ws;
}

describe('endpoints: add, list, show, update, disable, enable, remove', () => {
  test('list says where each came from; secrets and header values never shown', async () => {
    const main = await receiverFor();
    const ws = await ready({
      webhooks: { enabled: true, url: main.url, secret: SECRET, endpoints: [{ name: 'from-file', url: 'https://file.example.com/hook' }] },
    });
    const added = await ws.cli([
      'endpoints',
      'add',
      'crm',
      '--url',
      'https://crm.example.com/hook',
      '--secret',
      'crm-secret-1',
      '--events',
      'license.expired',
      '--header',
      'X-Api-Key: key-123',
      '--max-in-flight',
      '2',
      '--json',
    ]);
    expect([added.code, added.stderr]).toEqual([0, '']);
    expect(json(added.stdout)).toMatchObject({
      name: 'crm',
      source: 'database',
      secret: '********',
      headers: { 'X-Api-Key': '********' },
      events: ['license.expired'],
      maxInFlight: 2,
      enabled: true,
      signing: 'botble',
    });
    const list = await ws.cli(['endpoints', 'list', '--json']);
    expect(list.code).toBe(0);
    expect(json<Array<{ name: string; source: string }>>(list.stdout).map((endpoint) => [endpoint.name, endpoint.source])).toEqual([
      ['default', 'default'],
      ['from-file', 'config'],
      ['crm', 'database'],
    ]);
    expect(list.stdout).not.toContain('crm-secret-1');
    expect(list.stdout).not.toContain(SECRET);
    expect(list.stdout).not.toContain('key-123');
    const text = await ws.cli(['endpoints', 'list']);
    expect(text.stdout).toContain('config file');
    expect(text.stdout).toContain('database');
    const show = await ws.cli(['endpoints', 'show', 'crm']);
    expect(show.stdout).toContain('X-Api-Key: ********');
    expect(show.stdout).not.toContain('key-123');

    const updated = await ws.cli(['endpoints', 'update', 'crm', '--all-events', '--signing', 'both', '--json']);
    expect([updated.code, updated.stderr]).toEqual([0, '']);
    expect(json(updated.stdout)).toMatchObject({ events: null, signing: 'both', headers: { 'X-Api-Key': '********' } });
    const cleared = await ws.cli(['endpoints', 'update', 'crm', '--no-headers', '--json']);
    expect(json(cleared.stdout)).toMatchObject({ headers: {} });
  });

  test('a disabled endpoint parks; remove needs --force with undelivered ones and says how many; enable --discard-parked drops them', async () => {
    const [main, crm] = [await receiverFor(), await receiverFor()];
    const ws = await ready({ webhooks: { enabled: true, url: main.url, secret: SECRET } });
    expect((await ws.cli(['endpoints', 'add', 'crm', '--url', crm.url, '--disabled'])).code).toBe(0);
    await ws.seed([aLicense({ expires_at: '2025-01-22T10:00:00Z' }), aLicense({ expires_at: '2025-01-22T11:00:00Z' })]);
    expect((await ws.cli(['process-expirations', '--now', NOW])).code).toBe(0);
    expect([main.requests.length, crm.requests.length]).toEqual([2, 0]);
    expect(json((await ws.cli(['endpoints', 'show', 'crm', '--json'])).stdout)).toMatchObject({ enabled: false, deliveries: { parked: 2 } });
    const parkedList = await ws.cli(['deliveries', 'list', '--endpoint', 'crm', '--json']);
    expect(
      json<Array<{ endpoint: string; status: string; status_reason: string }>>(parkedList.stdout).map((row) => [row.endpoint, row.status, row.status_reason]),
    ).toEqual([
      ['crm', 'parked', 'endpoint disabled'],
      ['crm', 'parked', 'endpoint disabled'],
    ]);

    const refused = await ws.cli(['endpoints', 'remove', 'crm']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('2 undelivered deliveries');
    expect(refused.stderr).toContain('--force');
    expect(await ws.rows('select name from endpoints')).toEqual([{ name: 'crm' }]);

    const enabled = await ws.cli(['endpoints', 'enable', 'crm', '--discard-parked', '--json']);
    expect(json(enabled.stdout)).toEqual({ name: 'crm', enabled: true, parked: 0, held: 0, discarded: 2 });
    // Ended unsent, with the reason, never deleted: the rows are also the record that the events were found.
    expect(await ws.rows("select status, status_reason from webhook_deliveries where endpoint = 'crm'")).toEqual([
      { status: 'superseded', status_reason: expect.stringMatching(/^discarded by "endpoints enable crm --discard-parked" at 2\d{3}-/) },
      { status: 'superseded', status_reason: expect.stringMatching(/^discarded by "endpoints enable crm --discard-parked" at 2\d{3}-/) },
    ]);
    expect((await ws.cli(['process-expirations', '--now', NOW])).code).toBe(0);
    expect(crm.requests).toHaveLength(0);

    await ws.seed([aLicense({ expires_at: '2025-01-23T09:00:00Z' })]);
    expect((await ws.cli(['endpoints', 'disable', 'crm'])).stdout).toBe('Disabled endpoint crm.\n');
    expect((await ws.cli(['process-expirations', '--now', NOW])).code).toBe(0);
    const enable = await ws.cli(['endpoints', 'enable', 'crm']);
    expect(enable.stdout).toContain('1 parked delivery goes out with the next process-expirations.');
    expect((await ws.cli(['process-expirations', '--now', NOW])).code).toBe(0);
    expect(crm.requests).toHaveLength(1);

    await ws.seed([aLicense({ expires_at: '2025-01-23T08:00:00Z' })]);
    expect((await ws.cli(['endpoints', 'disable', 'crm'])).code).toBe(0);
    expect((await ws.cli(['process-expirations', '--now', NOW])).code).toBe(0);
    const removed = await ws.cli(['endpoints', 'remove', 'crm', '--force']);
    expect([removed.code, removed.stdout]).toEqual([0, 'Removed endpoint crm; 1 undelivered delivery superseded, not sent again.\n']);
    expect(await ws.rows("select status from webhook_deliveries where endpoint = 'crm' order by id")).toEqual([
      { status: 'superseded' },
      { status: 'superseded' },
      { status: 'delivered' },
      { status: 'superseded' },
    ]);
  });

  test('remove --force ends its abandoned deliveries too: status no longer exits 3 for deliveries nothing can re-send', async () => {
    const ws = await crmAbandonedOne();
    expect((await ws.cli(['status', '--now', NOW])).code).toBe(3);
    const refused = await ws.cli(['endpoints', 'remove', 'crm']);
    expect([refused.code, refused.stderr]).toEqual([2, expect.stringContaining('1 undelivered delivery')]);
    const removed = await ws.cli(['endpoints', 'remove', 'crm', '--force', '--json']);
    expect(json(removed.stdout)).toEqual({ name: 'crm', defined: true, dropped: 1, sending: 0 });
    expect(await ws.rows("select status from webhook_deliveries where endpoint = 'crm'")).toEqual([{ status: 'superseded' }]);
    expect((await ws.cli(['status', '--now', NOW])).code).toBe(0);
    // Removed, its deliveries stay in the log, and listing them by its name still works; a name in neither is refused.
    const listed = await ws.cli(['deliveries', 'list', '--endpoint', 'crm', '--json']);
    expect([listed.code, (JSON.parse(listed.stdout) as Array<{ endpoint: string; status: string }>).map((row) => [row.endpoint, row.status])]).toEqual([
      0,
      [['crm', 'superseded']],
    ]);
    const typo = await ws.cli(['deliveries', 'list', '--endpoint', 'crn']);
    expect([typo.code, typo.stderr]).toEqual([2, expect.stringContaining('No endpoint named "crn" (known: default, crm)')]);
  });

  test('deliveries retry --abandoned skips, and names, deliveries of an endpoint no longer defined or disabled: never counted as re-sent', async () => {
    let up = false;
    const main = await receiverFor(() => (up ? 200 : 400));
    const crm = await receiverFor(() => 400);
    const chat = await receiverFor(() => 400);
    const base = { enabled: true, url: main.url, secret: SECRET };
    const ws = await ready({ webhooks: { ...base, endpoints: [{ name: 'crm', url: crm.url }] } });
    expect((await ws.cli(['endpoints', 'add', 'chat', '--url', chat.url])).code).toBe(0);
    await ws.seed([aLicense({ expires_at: '2025-01-22T09:00:00Z' })]);
    expect((await ws.cli(['process-expirations', '--now', NOW])).code).toBe(3);
    // crm taken out of the config file, chat disabled: their abandoned deliveries have nowhere to go now.
    ws.configure({ webhooks: base });
    expect((await ws.cli(['endpoints', 'disable', 'chat'])).code).toBe(0);
    up = true;
    const sentBefore = [crm.requests.length, chat.requests.length];

    const dry = await ws.cli(['deliveries', 'retry', '--abandoned', '--dry-run']);
    expect(dry.stdout).toMatch(/^Would re-send 1 delivery:\n {2}#1 license\.expired/);
    expect(dry.stderr).toContain('skipped 1 abandoned delivery to the endpoint "crm", which is no longer defined');
    expect(dry.stderr).toContain('skipped 1 abandoned delivery to the endpoint "chat", which is disabled');

    const retried = await ws.cli(['deliveries', 'retry', '--abandoned', '--json']);
    expect(retried.code).toBe(0);
    const result = json<{ selectedCount: number; selected: Array<{ id: number }>; delivered: number; skippedEndpoints: unknown[] }>(retried.stdout);
    expect(result).toMatchObject({ selectedCount: 1, selected: [{ id: 1 }], delivered: 1 });
    expect(result.skippedEndpoints).toEqual([
      { endpoint: 'chat', deliveries: 1, reason: 'disabled' },
      { endpoint: 'crm', deliveries: 1, reason: 'no longer defined' },
    ]);
    expect(retried.stderr).toMatch(/skipped 1 abandoned delivery to the endpoint "crm", which is no longer defined: nothing can send it\./);
    expect(retried.stderr).toMatch(/"chat", which is disabled: "license-manager endpoints enable chat" first/);
    expect([crm.requests.length, chat.requests.length]).toEqual(sentBefore);
    expect(await ws.rows("select endpoint, status from webhook_deliveries where endpoint <> 'default' order by endpoint")).toEqual([
      { endpoint: 'chat', status: 'abandoned' },
      { endpoint: 'crm', status: 'abandoned' },
    ]);

    const text = await ws.cli(['deliveries', 'retry', '--abandoned']);
    expect(text.stdout).toBe('Nothing to re-send: no abandoned deliveries match.\n');
    expect(text.stderr).toContain('"crm", which is no longer defined');
    const onlyChat = await ws.cli(['deliveries', 'retry', '--abandoned', '--endpoint', 'chat', '--json']);
    expect(json(onlyChat.stdout)).toMatchObject({ selectedCount: 0, skippedEndpoints: [{ endpoint: 'chat', deliveries: 1, reason: 'disabled' }] });
  });

  test('an endpoint taken out of the config file: remove --force ends what it left parked or abandoned, so status stops exiting 3; no advice sends them to a new endpoint', async () => {
    // The engine's clock is the system's: deferred deliveries need a --now near it, or their retry window is spent.
    const now = new Date(Math.floor(Date.now() / 1000) * 1000);
    const NOW = now.toISOString();
    const expiredAt = new Date(now.getTime() - 25 * 3600 * 1000).toISOString();
    const main = await receiverFor();
    // OLD-1's is refused for good (abandoned), OLD-2's waits on a 503 (deferred) when crm is taken out of the file.
    const crm = await receiverFor((request) => (request.body.includes('OLD-1') ? 400 : 503));
    const base = { enabled: true, url: main.url, secret: SECRET, retryWindowHours: 72 };
    const ws = await ready({ webhooks: { ...base, endpoints: [{ name: 'crm', url: crm.url }] } });
    await ws.seed([aLicense({ license_code: 'OLD-1', expires_at: expiredAt }), aLicense({ license_code: 'OLD-2', expires_at: expiredAt })]);
    expect((await ws.cli(['process-expirations', '--now', NOW])).code).toBe(3);
    expect(await ws.rows("select status from webhook_deliveries where endpoint = 'crm' order by id")).toEqual([
      { status: 'abandoned' },
      { status: 'deferred' },
    ]);
    ws.configure({ webhooks: base });
    crm.requests.length = 0;
    const parking = await ws.cli(['process-expirations', '--now', NOW]);
    expect(parking.code).toBe(0);
    expect(parking.stderr).toContain(
      'warning: 1 delivery to crm parked: the endpoint is no longer defined (taken out of the config file, or removed). Put back in the config file, it sends it with the next run;',
    );
    expect(parking.stderr).toContain('"license-manager endpoints remove crm --force" ends it unsent.');
    // status says what ends them: nothing can re-send them, so no retry is offered for them.
    const stuck = await ws.cli(['status', '--now', NOW]);
    expect(stuck.code).toBe(3);
    expect(stuck.stdout).toContain(
      'ATTENTION: 1 delivery abandoned and not re-sent: see "license-manager deliveries list --status abandoned"; 1 delivery to crm, which is no longer defined: put it back in the config file to re-send it, or end it with "license-manager endpoints remove crm --force"',
    );
    // The retry's advice is the config file or remove --force: `endpoints add crm` would end them (a new endpoint).
    const retried = await ws.cli(['deliveries', 'retry', '--abandoned']);
    expect(retried.stderr).toContain(
      `which is no longer defined: nothing can send it. Put "crm" back in the config file's webhooks.endpoints and retry to re-send it, or end it unsent with "license-manager endpoints remove crm --force".`,
    );
    expect(retried.stderr).not.toContain('endpoints add');

    const refused = await ws.cli(['endpoints', 'remove', 'crm']);
    expect([refused.code, refused.stdout, refused.stderr]).toEqual([
      2,
      '',
      expect.stringContaining(
        'The endpoint "crm" is no longer defined (taken out of the config file) and has 2 undelivered deliveries (waiting, parked or abandoned), which removing it ends unsent (superseded). Add --force to end them',
      ),
    ]);
    expect(await ws.rows("select status from webhook_deliveries where endpoint = 'crm' order by id")).toEqual([{ status: 'abandoned' }, { status: 'parked' }]);
    const removed = await ws.cli(['endpoints', 'remove', 'crm', '--force']);
    expect([removed.code, removed.stdout]).toEqual([0, 'Endpoint crm is no longer defined; 2 undelivered deliveries superseded, not sent again.\n']);
    expect(await ws.rows("select status, status_reason from webhook_deliveries where endpoint = 'crm' order by id")).toEqual([
      { status: 'superseded', status_reason: expect.stringMatching(/^endpoint crm removed with "endpoints remove crm --force"/) },
      { status: 'superseded', status_reason: expect.stringMatching(/^endpoint crm removed with "endpoints remove crm --force"/) },
    ]);
    expect((await ws.cli(['status', '--now', NOW])).code).toBe(0);
    expect((await ws.cli(['process-expirations', '--now', NOW])).code).toBe(0);
    expect(crm.requests).toHaveLength(0);
    // Nothing left under the name: a name in neither place, with nothing in the log, is unknown as before.
    const again = await ws.cli(['endpoints', 'remove', 'crm', '--force', '--json']);
    expect([again.code, again.stderr]).toEqual([2, expect.stringContaining('No endpoint named "crm"')]);
    const json2 = await ws.cli(['endpoints', 'remove', 'nothing-here']);
    expect([json2.code, json2.stderr]).toEqual([2, expect.stringContaining('No endpoint named "nothing-here"')]);
  });

  test("status names a disabled endpoint's abandoned deliveries with endpoints enable, not the retry that skips them", async () => {
    const ws = await crmAbandonedOne();
    expect((await ws.cli(['endpoints', 'disable', 'crm'])).code).toBe(0);
    const status = await ws.cli(['status', '--now', NOW]);
    expect(status.code).toBe(3);
    expect(status.stdout).toContain(
      'see "license-manager deliveries list --status abandoned"; 1 delivery to crm, which is disabled: "license-manager endpoints enable crm" first, then retry to re-send it',
    );
    expect(status.stdout).not.toContain('deliveries retry --abandoned"');
  });

  test('enable default --discard-parked after a 410: the parked notices end unsent and the next run neither records nor sends them again', async () => {
    let gone = true;
    const main = await receiverFor(() => (gone ? 410 : 200));
    const ws = await ready({ webhooks: { enabled: true, url: main.url, secret: SECRET, retryWindowHours: 72 } });
    await ws.seed([
      aLicense({ license_code: 'GONE-1', expires_at: '2025-01-22T09:00:00Z' }),
      aLicense({ license_code: 'GONE-2', expires_at: '2025-01-22T09:00:00Z' }),
    ]);
    const first = await ws.cli(['process-expirations', '--now', NOW]);
    expect(first.stderr).toContain('410 Gone');
    expect(await ws.rows("select status from webhook_deliveries where endpoint = 'default'")).toEqual([{ status: 'parked' }, { status: 'parked' }]);
    const before = main.requests.length;
    const enabled = await ws.cli(['endpoints', 'enable', 'default', '--discard-parked']);
    expect([enabled.code, enabled.stdout]).toEqual([0, expect.stringContaining('Discarded 2 parked deliveries: superseded, not sent again.')]);
    gone = false;
    const next = await ws.cli(['process-expirations', '--now', NOW, '--json']);
    expect(next.code).toBe(0);
    expect(json(next.stdout)).toMatchObject({ recorded: 0, delivered: 0 });
    expect(main.requests.length).toBe(before);
    expect(await ws.rows("select status from webhook_deliveries where endpoint = 'default'")).toEqual([{ status: 'superseded' }, { status: 'superseded' }]);
  });

  test("deliveries retry --abandoned --endpoint re-sends only that endpoint's; send-test-event --endpoint uses its URL, headers and signing", async () => {
    let up = false;
    const main = await receiverFor();
    const crm = await receiverFor(() => (up ? 200 : 503));
    const chat = await receiverFor();
    const ws = await ready({ webhooks: { enabled: true, url: main.url, secret: SECRET, retryDelaysMs: [5] } });
    const whsec = `whsec_${Buffer.alloc(32, 3).toString('base64')}`;
    expect((await ws.cli(['endpoints', 'add', 'crm', '--url', crm.url])).code).toBe(0);
    expect((await ws.cli(['endpoints', 'add', 'chat', '--url', chat.url, '--secret', whsec, '--signing', 'standard', '--header', 'X-Tenant: t-9'])).code).toBe(
      0,
    );
    await ws.seed([aLicense({ expires_at: '2025-01-22T10:00:00Z' })]);
    expect((await ws.cli(['process-expirations', '--now', NOW])).code).toBe(3);
    up = true;
    const dry = await ws.cli(['deliveries', 'retry', '--abandoned', '--endpoint', 'crm', '--dry-run', '--json']);
    expect(json(dry.stdout)).toMatchObject({ selectedCount: 1 });
    expect(json((await ws.cli(['deliveries', 'retry', '--abandoned', '--endpoint', 'chat', '--json'])).stdout)).toMatchObject({ selectedCount: 0 });
    const crmDelivery = json<Array<{ id: number }>>((await ws.cli(['deliveries', 'list', '--endpoint', 'crm', '--json'])).stdout)[0]!.id;
    expect((await ws.cli(['endpoints', 'disable', 'crm'])).code).toBe(0);
    const parked = await ws.cli(['deliveries', 'retry', String(crmDelivery)]);
    expect([parked.code, parked.stderr]).toEqual([2, expect.stringContaining('goes to the endpoint "crm", which is disabled')]);
    expect(crm.requests).toHaveLength(2);
    expect((await ws.cli(['endpoints', 'enable', 'crm'])).code).toBe(0);
    const retried = await ws.cli(['deliveries', 'retry', '--abandoned', '--endpoint', 'crm', '--json']);
    expect([retried.code, json(retried.stdout).delivered]).toEqual([0, 1]);
    expect(crm.requests).toHaveLength(3);

    const test = await ws.cli(['send-test-event', '--endpoint', 'chat', '--json']);
    expect([test.code, test.stderr]).toEqual([0, '']);
    const result = json<{ url: string; headers: Record<string, string> }>(test.stdout);
    expect(result.url).toBe(chat.url);
    expect(result.headers['X-Tenant']).toBe('********');
    expect(result.headers['webhook-signature']).toMatch(/^v1,/);
    const request = chat.requests.at(-1)!;
    expect(request.headers['x-tenant']).toBe('t-9');
    const headers = Object.fromEntries(Object.entries(request.headers).map(([name, value]) => [name, String(value)]));
    expect(new Webhook(whsec).verify(request.body.toString('utf8'), headers)).toBeTruthy();
  });
});

describe('counts per endpoint', () => {
  test('the run summary and status count each endpoint; without endpoints they say what they said before', async () => {
    const [main, crm] = [await receiverFor(), await receiverFor(() => 503)];
    const ws = await ready({ webhooks: { enabled: true, url: main.url, secret: SECRET, retryDelaysMs: [] } });
    await ws.seed([aLicense({ expires_at: '2025-01-22T10:00:00Z' })]);
    const alone = await ws.cli(['process-expirations', '--now', NOW, '--json']);
    expect(json(alone.stdout)).not.toHaveProperty('byEndpoint');
    expect(json<{ deliveries: object }>((await ws.cli(['status', '--json'])).stdout).deliveries).toEqual({ total: 1, byStatus: { delivered: 1 } });

    expect((await ws.cli(['endpoints', 'add', 'crm', '--url', crm.url])).code).toBe(0);
    await ws.seed([aLicense({ expires_at: '2025-01-23T09:00:00Z' })]);
    // A dry run's plan names them too, and sends nothing.
    const dry = await ws.cli(['process-expirations', '--now', NOW, '--dry-run']);
    expect(dry.stdout).toMatch(/^would send 1 event to \S+ \(from config [^)]+\) and to endpoint crm: license\.expired: 1$/m);
    expect(crm.requests).toHaveLength(0);
    const run = await ws.cli(['process-expirations', '--now', NOW]);
    expect(run.code).toBe(3);
    // The plan names the other endpoints that take the events, not default's URL alone.
    expect(run.stdout).toMatch(
      new RegExp(
        `^sending 1 event to ${main.url.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} \\(from config [^)]+\\) and to endpoint crm: license\\.expired: 1$`,
        'm',
      ),
    );
    expect(run.stdout).toContain('    to default: delivered 1, abandoned 0\n    to crm: delivered 0, abandoned 1\n');
    const status = json<{ deliveries: object }>((await ws.cli(['status', '--json'])).stdout);
    expect(status.deliveries).toEqual({ total: 3, byStatus: { delivered: 2, abandoned: 1 }, byEndpoint: { default: { delivered: 2 }, crm: { abandoned: 1 } } });
    expect((await ws.cli(['status'])).stdout).toContain('to crm');
    const list = await ws.cli(['deliveries', 'list']);
    expect(list.stdout).toContain('ENDPOINT');
  });
});

describe('endpoints rotate-secret', () => {
  test('the new secret is printed once; during the window webhook-signature carries both (new first), X-Webhook-Signature the new one only', async () => {
    const [main, crm] = [await receiverFor(), await receiverFor()];
    const ws = await ready({ webhooks: { enabled: true, url: main.url, secret: SECRET } });
    expect((await ws.cli(['endpoints', 'add', 'crm', '--url', crm.url, '--secret', 'old-secret-value', '--signing', 'both'])).code).toBe(0);
    const rotated = await ws.cli(['endpoints', 'rotate-secret', 'crm', '--json']);
    expect([rotated.code, rotated.stderr]).toEqual([0, '']);
    const { secret, previousValidUntil } = json<{ secret: string; previousValidUntil: string }>(rotated.stdout);
    expect(secret).toMatch(/^[0-9a-f]{64}$/);
    expect(Date.parse(previousValidUntil) - Date.now()).toBeGreaterThan(23 * 3600 * 1000);
    expect((await ws.cli(['endpoints', 'show', 'crm'])).stdout).not.toContain(secret);

    expect((await ws.cli(['send-test-event', '--endpoint', 'crm'])).code).toBe(0);
    const request = crm.requests.at(-1)!;
    expect(String(request.headers['webhook-signature']).split(' ')).toHaveLength(2);
    const headers = Object.fromEntries(Object.entries(request.headers).map(([name, value]) => [name, String(value)]));
    for (const key of [secret, 'old-secret-value']) expect(new Webhook(key, { format: 'raw' }).verify(request.body.toString('utf8'), headers)).toBeTruthy();
    expect(verifySignature(request.body, String(request.headers['x-webhook-signature']), secret).verdict).toBe('valid');
    expect(verifySignature(request.body, String(request.headers['x-webhook-signature']), 'old-secret-value').verdict).not.toBe('valid');

    const revoked = await ws.cli(['endpoints', 'rotate-secret', 'crm', '--secret', 'third-secret-value', '--keep-previous', '0', '--json']);
    expect(json(revoked.stdout)).toEqual({
      name: 'crm',
      signing: 'both',
      enabled: true,
      secret: 'third-secret-value',
      previousValidUntil: null,
      previousValidIn: [],
      revoked: 2,
    });
    expect((await ws.cli(['send-test-event', '--endpoint', 'crm'])).code).toBe(0);
    expect(String(crm.requests.at(-1)!.headers['webhook-signature']).split(' ')).toHaveLength(1);
  });

  test('what the old secret still signs, per signing scheme: webhook-signature during the window, X-Webhook-Signature never', async () => {
    const ws = await ready({});
    for (const signing of ['standard', 'both', 'botble']) {
      const added = await ws.cli(['endpoints', 'add', signing, '--url', 'https://a.example.com/', '--secret', `${signing}-old-secret`, '--signing', signing]);
      expect(added.code).toBe(0);
    }
    const standard = await ws.cli(['endpoints', 'rotate-secret', 'standard', '--json']);
    expect(json(standard.stdout)).toMatchObject({ signing: 'standard', previousValidUntil: expect.any(String), previousValidIn: ['webhook-signature'] });
    const both = await ws.cli(['endpoints', 'rotate-secret', 'both', '--json']);
    expect(json(both.stdout)).toMatchObject({ signing: 'both', previousValidUntil: expect.any(String), previousValidIn: ['webhook-signature'] });
    const botble = await ws.cli(['endpoints', 'rotate-secret', 'botble', '--secret', 'botble-new-secret', '--json']);
    expect(json(botble.stdout)).toMatchObject({ signing: 'botble', previousValidIn: [] });

    const text = async (name: string, ...args: string[]) => {
      const result = await ws.cli(['endpoints', 'rotate-secret', name, ...args]);
      expect([result.code, result.stderr]).toEqual([0, '']);
      return result.stdout;
    };
    const standardText = await text('standard');
    expect(standardText).toMatch(/webhook-signature carries a signature made with the old one too until \d{4}-\d\d-\d\dT[\d:]+Z/);
    expect(standardText).not.toContain('X-Webhook-Signature');
    const bothText = await text('both');
    expect(bothText).toMatch(/webhook-signature carries a signature made with the old one too until \d{4}-/);
    expect(bothText).toContain('X-Webhook-Signature is made with the new one only, from the next delivery on');
    const botbleText = await text('botble', '--secret', 'botble-third-secret');
    expect(botbleText).toContain('X-Webhook-Signature is made with the new one only, from the next delivery on');
    expect(botbleText).toContain('no overlap');
    expect(botbleText).not.toMatch(/stays valid|webhook-signature carries/);
  });

  test('botble signing has no overlap: a generated secret is made current (as the contract says) with a warning on stderr naming the ways without a gap', async () => {
    const crm = await receiverFor();
    const ws = await ready({ webhooks: { enabled: true, url: crm.url, secret: SECRET } });
    expect((await ws.cli(['endpoints', 'add', 'crm', '--url', crm.url, '--secret', 'old-secret-value'])).code).toBe(0);
    const generated = await ws.cli(['endpoints', 'rotate-secret', 'crm', '--json']);
    expect(generated.code).toBe(0);
    const made = JSON.parse(generated.stdout) as { secret: string };
    expect(await ws.rows("select secret from endpoints where name = 'crm'")).toEqual([{ secret: made.secret }]);
    // Said on stderr even with --json: the receiver rejects deliveries until it has the new secret.
    expect(generated.stderr).toContain('warning: crm signs with X-Webhook-Signature only (signing: botble)');
    expect(generated.stderr).toContain('deliveries retry --abandoned --endpoint crm');
    expect(generated.stderr).toContain('rotate-secret crm --secret <that secret>');
    expect(generated.stderr).toContain('endpoints disable crm');

    // A secret the receiver already has: the next delivery is signed with it, and only with it.
    expect((await ws.cli(['endpoints', 'rotate-secret', 'crm', '--secret', 'receiver-has-this'])).code).toBe(0);
    expect((await ws.cli(['send-test-event', '--endpoint', 'crm'])).code).toBe(0);
    const signature = String(crm.requests.at(-1)!.headers['x-webhook-signature']);
    expect(verifySignature(crm.requests.at(-1)!.body, signature, 'receiver-has-this').verdict).toBe('valid');
    expect(verifySignature(crm.requests.at(-1)!.body, signature, 'old-secret-value').verdict).not.toBe('valid');

    const given = await ws.cli(['endpoints', 'rotate-secret', 'crm', '--secret', 'receiver-has-this-too']);
    expect([given.code, given.stderr]).toEqual([0, '']);
    const again = await ws.cli(['endpoints', 'rotate-secret', 'crm']);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('until the receiver has it, it rejects every delivery');
    expect((await ws.cli(['endpoints', 'rotate-secret', 'crm', '--keep-previous', '0'])).code).toBe(0);
    // Disabled, its deliveries are parked: rotate, update the receiver, enable.
    expect((await ws.cli(['endpoints', 'disable', 'crm'])).code).toBe(0);
    const disabled = await ws.cli(['endpoints', 'rotate-secret', 'crm']);
    expect([disabled.code, disabled.stderr]).toEqual([0, '']);
    expect(disabled.stdout).toContain('crm is disabled, so its deliveries stay parked');
    expect(disabled.stdout).toContain('endpoints enable crm');
  });
});

describe('bad input: exit 2 naming what is wrong, nothing written', () => {
  const cases: Array<[string, string[], string]> = [
    ['a malformed name', ['add', 'CRM_1', '--url', 'https://x.example.com/'], '"CRM_1" is not an endpoint name'],
    ['the reserved name', ['add', 'default', '--url', 'https://x.example.com/'], '"default" is reserved'],
    ['an unknown event type', ['add', 'crm', '--url', 'https://x.example.com/', '--events', 'license.expird'], '"license.expird" is not an event type'],
    ['a non-http URL', ['add', 'crm', '--url', 'ftp://x.example.com/'], 'must use http: or https:, not ftp:'],
    ['no URL', ['add', 'crm'], '--url is required'],
    ['Content-Type', ['add', 'crm', '--url', 'https://x.example.com/', '--header', 'Content-Type: text/plain'], 'header "Content-Type" cannot be set'],
    ['User-Agent', ['add', 'crm', '--url', 'https://x.example.com/', '--header', 'User-Agent: me'], 'header "User-Agent" cannot be set'],
    ['X-Webhook-*', ['add', 'crm', '--url', 'https://x.example.com/', '--header', 'X-Webhook-Signature: x'], 'header "X-Webhook-Signature" cannot be set'],
    ['webhook-*', ['add', 'crm', '--url', 'https://x.example.com/', '--header', 'webhook-id: x'], 'header "webhook-id" cannot be set'],
    ['standard signing without a secret', ['add', 'crm', '--url', 'https://x.example.com/', '--signing', 'standard'], 'needs a secret'],
    ['an unknown signing scheme', ['add', 'crm', '--url', 'https://x.example.com/', '--signing', 'svix'], 'signing "svix" is not a scheme'],
    ['a bad max-in-flight', ['add', 'crm', '--url', 'https://x.example.com/', '--max-in-flight', '0'], 'maxInFlight must be a whole number from 1 to 256'],
  ];
  test.each(cases)('%s', async (_what, args, message) => {
    const ws = await ready({});
    const result = await ws.cli(['endpoints', ...args]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(message);
    expect(await ws.rows('select name from endpoints')).toEqual([]);
  });

  test('a duplicate name (in the database, or in the config file)', async () => {
    const ws = await ready({ webhooks: { endpoints: [{ name: 'from-file', url: 'https://file.example.com/' }] } });
    expect((await ws.cli(['endpoints', 'add', 'crm', '--url', 'https://a.example.com/'])).code).toBe(0);
    const again = await ws.cli(['endpoints', 'add', 'crm', '--url', 'https://b.example.com/']);
    expect([again.code, again.stderr]).toEqual([2, expect.stringContaining('An endpoint named "crm" exists already (in the database)')]);
    // Given -c, the hint carries it, so the command it suggests reaches the same database.
    const withConfig = await ws.cli(['-c', ws.configFile, 'endpoints', 'add', 'crm', '--url', 'https://b.example.com/']);
    expect(withConfig.stderr).toContain(`Change it with "license-manager -c ${ws.configFile} endpoints update crm"`);
    const file = await ws.cli(['endpoints', 'add', 'from-file', '--url', 'https://b.example.com/']);
    expect([file.code, file.stderr]).toEqual([2, expect.stringContaining(`exists already (in the config file ${ws.configFile}, webhooks.endpoints)`)]);
    // Not "endpoints update", which refuses a config file's endpoint: it is changed in the file.
    expect(file.stderr).toContain('Change it in the config file, or choose another name.');
    expect(file.stderr).not.toContain('endpoints update');
    expect(await ws.rows('select url from endpoints')).toEqual([{ url: 'https://a.example.com/' }]);
    const edit = await ws.cli(['endpoints', 'update', 'from-file', '--url', 'https://c.example.com/']);
    expect([edit.code, edit.stderr]).toEqual([2, expect.stringContaining('declared in the config file')]);
  });

  test('a --keep-previous that is no duration, and rotating an endpoint without a secret', async () => {
    const ws = await ready({});
    expect((await ws.cli(['endpoints', 'add', 'plain', '--url', 'https://a.example.com/'])).code).toBe(0);
    expect((await ws.cli(['endpoints', 'add', 'signed', '--url', 'https://a.example.com/', '--secret', 'signed-secret'])).code).toBe(0);
    const duration = await ws.cli(['endpoints', 'rotate-secret', 'signed', '--keep-previous', '24']);
    expect([duration.code, duration.stderr]).toEqual([2, expect.stringContaining('"24" has no unit')]);
    const plain = await ws.cli(['endpoints', 'rotate-secret', 'plain']);
    expect([plain.code, plain.stderr]).toEqual([2, expect.stringContaining('has no secret to rotate')]);
    expect(await ws.rows("select secret from endpoints where name = 'signed'")).toEqual([{ secret: 'signed-secret' }]);
    expect(await ws.rows('select secret from endpoint_secrets')).toEqual([]);
    const unknown = await ws.cli(['endpoints', 'show', 'nope']);
    expect([unknown.code, unknown.stderr]).toEqual([2, expect.stringContaining('No endpoint named "nope"')]);
    const retry = await ws.cli(['deliveries', 'list', '--endpoint', 'nope']);
    expect([retry.code, retry.stderr]).toEqual([2, expect.stringContaining('No endpoint named "nope"')]);
  });

  test('--secret with --no-secret is refused in either order (they share one option: the last would win), the secret kept', async () => {
    const ws = await ready({});
    expect((await ws.cli(['endpoints', 'add', 'crm', '--url', 'https://a.example.com/', '--secret', 'kept-secret'])).code).toBe(0);
    for (const pair of [
      ['--secret', 'new-secret', '--no-secret'],
      ['--no-secret', '--secret', 'new-secret'],
    ]) {
      const result = await ws.cli(['endpoints', 'update', 'crm', ...pair]);
      expect([result.code, result.stderr]).toEqual([2, expect.stringContaining('Give --secret or --no-secret, not both.')]);
    }
    expect(await ws.rows("select secret from endpoints where name = 'crm'")).toEqual([{ secret: 'kept-secret' }]);
    // Either alone still works; a header value that reads "--no-secret" is a value, not the flag.
    const header = await ws.cli(['endpoints', 'update', 'crm', '--header', 'X-Note: --no-secret', '--secret', 'next-secret']);
    expect([header.code, header.stderr]).toEqual([0, '']);
    expect((await ws.cli(['endpoints', 'update', 'crm', '--no-secret'])).code).toBe(0);
    expect(await ws.rows("select secret from endpoints where name = 'crm'")).toEqual([{ secret: null }]);
  });

  test('--help of add and update lists every event type --events takes, license.expired_reminder included', async () => {
    const cwd = tempDir();
    for (const verb of ['add', 'update']) {
      const help = await runCli(['endpoints', verb, '--help'], { cwd });
      expect(help.stdout.replace(/\s+/g, ' ')).toContain('(license.expiring, license.expired, license.update_support_expired, license.expired_reminder)');
    }
    const ws = await ready({});
    const reminders = await ws.cli(['endpoints', 'add', 'crm', '--url', 'https://a.example.com/', '--events', 'license.expired_reminder', '--json']);
    expect([reminders.code, json(reminders.stdout).events]).toEqual([0, ['license.expired_reminder']]);
  });

  test('editing default points to the settings', async () => {
    const ws = await ready({});
    const result = await ws.cli(['endpoints', 'update', 'default', '--url', 'https://a.example.com/']);
    expect([result.code, result.stderr]).toEqual([2, expect.stringContaining('settings set webhook-url')]);
  });

  test("list and show say where default's URL comes from, as status does", async () => {
    const ws = await ready({ webhooks: { url: 'https://file.example.com/hook' } });
    const fromFile = await ws.cli(['endpoints', 'show', 'default']);
    expect(fromFile.stdout).toMatch(new RegExp(`source: +default \\(webhook-url from config ${ws.configFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\)`));
    expect((await ws.cli(['settings', 'set', 'webhook-url', 'https://settings.example.com/hook'])).code).toBe(0);
    const list = await ws.cli(['endpoints', 'list']);
    expect(list.stdout).toMatch(/^default +https:\/\/settings\.example\.com\/hook .* default \(webhook-url from settings\) /m);
  });
});

describe('Botble mode', () => {
  const suite = botbleSuite('sqlite', () => botbleSettingInserts('sqlite', {}));
  test("default is Botble's and read-only; added endpoints live in our tables", async () => {
    const cwd = await suite.freshDir();
    for (const verb of [
      ['update', 'default', '--url', 'https://a.example.com/'],
      ['disable', 'default'],
      ['remove', 'default'],
      ['rotate-secret', 'default'],
    ]) {
      const result = await runCli(['endpoints', ...verb], { cwd });
      expect([result.code, result.stderr]).toEqual([2, expect.stringContaining("Botble's own settings")]);
    }
    expect((await runCli(['endpoints', 'add', 'crm', '--url', 'https://crm.example.com/'], { cwd })).code).toBe(0);
    const list = await runCli(['endpoints', 'list', '--json'], { cwd });
    expect(json<Array<{ name: string; source: string }>>(list.stdout).map((endpoint) => endpoint.name)).toEqual(['default', 'crm']);
  });
});

forEachDialect('endpoints commands on each database', ({ workspace: dialectWorkspace }) => {
  test('add, rotate, disable, remove write and read back the same', async () => {
    const ws = dialectWorkspace({});
    await ws.ready();
    expect(
      (
        await ws.cli([
          'endpoints',
          'add',
          'crm',
          '--url',
          'https://crm.example.com/',
          '--secret',
          's-1',
          '--header',
          'X-A: 1',
          '--header',
          'X-B: 2',
          '--events',
          'license.expired,license.expiring',
        ])
      ).code,
    ).toBe(0);
    expect((await ws.cli(['endpoints', 'rotate-secret', 'crm', '--secret', 's-2'])).code).toBe(0);
    expect((await ws.cli(['endpoints', 'disable', 'crm'])).code).toBe(0);
    const shown = json((await ws.cli(['endpoints', 'show', 'crm', '--json'])).stdout);
    expect(shown).toMatchObject({
      name: 'crm',
      enabled: false,
      events: ['license.expired', 'license.expiring'],
      headers: { 'X-A': '********', 'X-B': '********' },
      previousSecrets: [{ validUntil: expect.any(String) }],
    });
    expect(await ws.rows("select secret from endpoints where name = 'crm'")).toEqual([{ secret: 's-2' }]);
    const removed = await ws.cli(['endpoints', 'remove', 'crm']);
    expect(removed.code).toBe(0);
    for (const table of ['endpoints', 'endpoint_headers', 'endpoint_secrets']) expect(await ws.rows(`select * from ${table}`)).toEqual([]);
  });
});
