// What a run says of what it did not send: deliveries parked for a disabled endpoint, the heartbeat's one-line summary,
// notices superseded after waiting on a failing receiver.
import fs from 'node:fs';
import { expect, test } from '@jest/globals';
import { aLicense, forEachDialect, receiverFor, workspace, type Workspace } from '../helpers/workspace.js';

async function ready(config: Record<string, unknown>, make: typeof workspace = workspace): Promise<Workspace> {
  const ws = make(config);
  fs.chmodSync(ws.configFile, 0o600);
  await ws.ready();
  return ws;
}

forEachDialect('deliveries parked for a disabled endpoint', ({ workspace: dialectWorkspace }) => {
  test('the plan line, the summary and --json name the endpoint and count them; the run still exits 0', async () => {
    const [main, crm] = [await receiverFor(), await receiverFor()];
    const ws = await ready({ webhooks: { enabled: true, url: main.url, secret: 's3cret' } }, dialectWorkspace);
    expect((await ws.cli(['endpoints', 'add', 'crm', '--url', crm.url, '--disabled'])).code).toBe(0);
    await ws.seed([aLicense({ license_code: 'A-1', expires_at: '2025-01-15T10:00:00Z' })]);

    const dry = await ws.cli(['process-expirations', '--now', '2025-01-16T08:00:00Z', '--dry-run']);
    expect(dry.stdout).toMatch(/^would send 1 event to .*: license\.expired: 1; 1 would be parked for crm \(disabled\)$/m);

    const run = await ws.cli(['process-expirations', '--now', '2025-01-16T08:00:00Z', '--json']);
    expect([run.code, run.stderr]).toEqual([0, '']);
    expect(JSON.parse(run.stdout)).toMatchObject({ parked: 0, waiting: [], parkedDisabled: 1, parkedDisabledByEndpoint: { crm: 1 } });

    await ws.seed([
      aLicense({ license_code: 'A-2', expires_at: '2025-01-16T10:00:00Z' }),
      aLicense({ license_code: 'A-3', expires_at: '2025-01-16T11:00:00Z' }),
    ]);
    const text = await ws.cli(['process-expirations', '--now', '2025-01-17T08:00:00Z']);
    expect([text.code, text.stderr]).toEqual([0, '']);
    expect(text.stdout).toMatch(/^sending 2 events to .*: license\.expired: 2; 2 parked for crm \(disabled\)$/m);
    expect(text.stdout).toContain(
      '    for crm: 2 deliveries parked, as the endpoint is disabled ("license-manager endpoints enable crm" sends them with the next run)',
    );
    expect([main.requests.length, crm.requests.length]).toEqual([3, 0]);
    expect(await ws.rows("select id from webhook_deliveries where endpoint = 'crm' and status = 'parked'")).toHaveLength(3);

    // Nothing new: no line about the disabled endpoint (its earlier deliveries are not this run's).
    const quiet = await ws.cli(['process-expirations', '--now', '2025-01-17T09:00:00Z', '--json']);
    expect(JSON.parse(quiet.stdout)).toMatchObject({ parkedDisabled: 0, parkedDisabledByEndpoint: {} });
  });
});

const DAY = 86_400_000;

test("the heartbeat's end ping of an exit 4 counts what waits (deferred), with a singular for one event", async () => {
  const [hooks, pings] = [await receiverFor(() => 503), await receiverFor()];
  const ws = await ready({
    webhooks: { enabled: true, url: hooks.url, retryWindowHours: 72, retryDelaysMs: [] },
    monitoring: { ping: `${new URL(pings.url).origin}/check` },
  });
  // Expired yesterday by the real clock: the run defers it (the retry window is open) instead of abandoning it.
  await ws.seed([aLicense({ expires_at: new Date(Date.now() - DAY).toISOString().slice(0, 19) + 'Z' })]);
  expect((await ws.cli(['process-expirations', '--quiet'])).code).toBe(4);
  const end = pings.requests.at(-1)!;
  expect(new URL(end.url, 'http://x').pathname).toBe('/check/4');
  expect(end.body.toString('utf8')).toMatch(
    /^license-manager process-expirations waiting \(exit 4\) in \d+\.\d s: 1 event recorded, 0 delivered, 0 abandoned, 1 deferred$/,
  );
  // A later run with nothing due still says why it exits 4.
  expect((await ws.cli(['process-expirations', '--quiet'])).code).toBe(4);
  expect(pings.requests.at(-1)!.body.toString('utf8')).toMatch(/: 0 events recorded, 0 delivered, 0 abandoned, 1 deferred$/);
});

test('deliveries stats in text: "1 failed attempt since", and the superseded count its --json has', async () => {
  const [main, crm] = [await receiverFor((_request, index) => (index === 0 ? 200 : 400)), await receiverFor()];
  const ws = await ready({ webhooks: { enabled: true, url: main.url, retryDelaysMs: [], concurrency: 1 } });
  expect((await ws.cli(['endpoints', 'add', 'crm', '--url', crm.url, '--disabled'])).code).toBe(0);
  await ws.seed([aLicense({ expires_at: '2025-01-15T10:00:00Z' }), aLicense({ expires_at: '2025-01-15T11:00:00Z' })]);
  expect((await ws.cli(['process-expirations', '--now', '2025-01-16T08:00:00Z', '--quiet'])).code).toBe(3);
  expect((await ws.cli(['endpoints', 'enable', 'crm', '--discard-parked'])).code).toBe(0);

  const stats = await ws.cli(['deliveries', 'stats']);
  expect(stats.stdout).toMatch(/last success\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ, 1 failed attempt since$/m);
  expect(stats.stdout).toMatch(/deliveries\s+0 delivered, 0 pending, 0 deferred, 0 parked, 0 abandoned, 2 superseded$/m);
  expect(stats.stdout).toMatch(/deliveries\s+1 delivered, 0 pending, 0 deferred, 0 parked, 1 abandoned, 0 superseded$/m);
});

test('a notice superseded after waiting on a failing receiver is one warning on stderr, with --quiet too: count, commonest reason, the command', async () => {
  let down = true;
  const hooks = await receiverFor(() => (down ? 503 : 200));
  const ws = await ready({ webhooks: { enabled: true, url: hooks.url, retryWindowHours: 72, retryDelaysMs: [] } });
  // Three warnings due now by the real clock (the backoff runs on it); the receiver is down, so they are deferred.
  const soon = (hours: number) => new Date(Date.now() + hours * 3_600_000).toISOString().slice(0, 19) + 'Z';
  await ws.seed([
    aLicense({ license_code: 'W-1', expires_at: soon(30) }),
    aLicense({ license_code: 'W-2', expires_at: soon(31) }),
    aLicense({ license_code: 'W-3', expires_at: soon(32) }),
  ]);
  expect((await ws.cli(['process-expirations', '--quiet'])).code).toBe(4);
  const tried = hooks.requests.length;
  // Meanwhile two customers renewed and one license was suspended; the receiver is back and the deferred ones are due.
  await ws.rows(`update licenses set expires_at = '2030-01-01T00:00:00Z' where license_code in ('W-1', 'W-2')`);
  await ws.rows(`update licenses set status = 'suspended' where license_code = 'W-3'`);
  await ws.rows("update webhook_deliveries set next_attempt_at = '2000-01-01T00:00:00Z'");
  down = false;

  const run = await ws.cli(['process-expirations', '--quiet']);
  expect([run.code, run.stdout]).toEqual([0, '']);
  expect(run.stderr).toBe(
    'warning: 3 notices were not sent: superseded after waiting (2 of them: license renewed: it now expires on … (this notice is about …)). ' +
      'See "license-manager deliveries list --status superseded".\n',
  );
  expect(hooks.requests).toHaveLength(tried);
});

test('deliveries retry: the hint over superseded ones covers a license that expired, not only one that changed', async () => {
  const hooks = await receiverFor(() => 400);
  const ws = await ready({ webhooks: { enabled: true, url: hooks.url, retryDelaysMs: [] } });
  await ws.seed([aLicense({ license_code: 'LATE-1', expires_at: '2025-01-15T10:00:00Z' })]);
  // A warning the receiver refused (abandoned), re-sent long after the license expired.
  expect((await ws.cli(['process-expirations', '--now', '2025-01-14T12:00:00Z', '--quiet'])).code).toBe(3);
  // The dry run says what the re-send will do: this one would be superseded, not sent; it changes nothing.
  const dry = await ws.cli(['deliveries', 'retry', '--abandoned', '--dry-run']);
  expect(dry.stdout).toContain('Would re-send 1 delivery (1 of them would be superseded instead, not sent: their license now contradicts them):\n');
  expect(dry.stdout).toMatch(
    /^ {2}#\d+ license\.expiring LATE-1 \(would be superseded: the license expired at 2025-01-15T10:00:00Z, before this warning could be sent\)$/m,
  );
  const dryJson = JSON.parse((await ws.cli(['deliveries', 'retry', '--abandoned', '--dry-run', '--json'])).stdout) as { wouldSupersede: unknown[] };
  expect(dryJson.wouldSupersede).toEqual([{ id: expect.any(Number), reason: expect.stringMatching(/^the license expired at/) }]);
  expect(await ws.rows('select status from webhook_deliveries')).toEqual([{ status: 'abandoned' }]);
  const retried = await ws.cli(['deliveries', 'retry', '--abandoned']);
  expect(retried.stdout).toContain(
    '  not sent, superseded (the license changed or expired since the notice was recorded, or a later notice replaced it; "deliveries retry <id> --force" sends one anyway):\n',
  );
  expect(retried.stdout).toMatch(/^ {4}#\d+ license\.expiring: the license expired at 2025-01-15T10:00:00Z, before this warning could be sent$/m);
});
