import fs from 'node:fs';
import { expect, test } from '@jest/globals';
import type { Clock } from '../../src/clock.js';
import { processExpirations } from '../../src/commands/process-expirations.js';
import { faketimeProblem, faketimeWorks, LIBFAKETIME } from '../helpers/faketime.js';
import { aLicense, forEachDialect, receiverFor, type Workspace } from '../helpers/workspace.js';

// Deliveries a run held when it died, of an endpoint no run claims any more (removed, disabled, removed and added
// again): later runs still end, the deliveries leave `delivering`, and none goes to a new endpoint of the name.
const HOUR = 3_600_000;
const GONE_RUN = 'otherhost:4242:boot:ns:abcdef12';
const iso = (date: Date) => date.toISOString().slice(0, 19) + 'Z';

async function expiredYesterday(ws: Workspace, count: number): Promise<void> {
  const yesterday = iso(new Date(Date.now() - 24 * HOUR));
  await ws.seed(Array.from({ length: count }, (_, index) => aLicense({ license_code: `EXP-${index}`, expires_at: yesterday })));
}

/**
 * `default` and a stored endpoint `crm`, each with a receiver of its own, and `count` licenses expired yesterday, after a
 * first run. With `crmWaits`, crm was disabled for that run and enabled again: its deliveries wait (undelivered).
 */
async function installation(workspace: (config?: Record<string, unknown>) => Workspace, count: number, crmWaits: boolean) {
  const main = await receiverFor();
  const crm = await receiverFor();
  const ws = workspace({ webhooks: { enabled: true, url: main.url, secret: 's' } });
  fs.chmodSync(ws.configFile, 0o600);
  await ws.ready();
  expect((await ws.cli(['endpoints', 'add', 'crm', '--url', crm.url])).code).toBe(0);
  if (crmWaits) expect((await ws.cli(['endpoints', 'disable', 'crm'])).code).toBe(0);
  await expiredYesterday(ws, count);
  expect(await ws.run((context) => processExpirations(context))).toMatchObject({ recorded: count, delivered: crmWaits ? count : 2 * count });
  if (crmWaits) expect((await ws.cli(['endpoints', 'enable', 'crm'])).code).toBe(0);
  return { ws, main, crm };
}

/** An endpoint's deliveries, claimed by another run (on another host) with its lease running until `leaseUntil`. */
function claimedBy(ws: Workspace, endpoint: string, runId: string, leaseUntil: number) {
  return ws.rows(`update webhook_deliveries set status = 'delivering', claimed_by = '${runId}', lease_until = ${leaseUntil} where endpoint = '${endpoint}'`);
}

/** A run with a stop after 15 s: how long it took and whether it had to be stopped. */
async function boundedRun(ws: Workspace) {
  const stop = new AbortController();
  const started = Date.now();
  const timer = setTimeout(() => stop.abort(), 15_000);
  const run = await ws.run((context) => processExpirations(context, { stop: stop.signal }));
  clearTimeout(timer);
  return { run, seconds: (Date.now() - started) / 1000, stopped: stop.signal.aborted };
}

forEachDialect('claims of a gone run, of an endpoint no run claims', ({ workspace }) => {
  test('removed while a run held its deliveries, that run gone: the next runs end, and park what it held', async () => {
    const { ws, crm } = await installation(workspace, 2, true);
    // A run on another host holds crm's two; crm is removed (left to that run), which then dies.
    await claimedBy(ws, 'crm', GONE_RUN, Date.now() + 60_000);
    expect((await ws.cli(['endpoints', 'remove', 'crm', '--force'])).code).toBe(0);
    // Lapsed a moment ago: the next run ends (it asked for take-overs forever, every half second).
    await ws.rows(`update webhook_deliveries set lease_until = ${Date.now() - 1000} where endpoint = 'crm'`);
    const soon = await boundedRun(ws);
    expect(soon.stopped).toBe(false);
    expect(soon.seconds).toBeLessThan(10);
    // Lapsed minutes ago: no run's any more; parked as the others of an endpoint no longer defined.
    await ws.rows(`update webhook_deliveries set lease_until = ${Date.now() - 5 * 60_000} where endpoint = 'crm'`);
    const later = await boundedRun(ws);
    expect(later.stopped).toBe(false);
    expect(await ws.rows("select status, claimed_by from webhook_deliveries where endpoint = 'crm'")).toEqual([
      { status: 'parked', claimed_by: null },
      { status: 'parked', claimed_by: null },
    ]);
    expect(crm.requests).toHaveLength(0);
  }, 90_000);

  test("a gone run's lapsed claims of a disabled endpoint do not end the taking over: its claims of default that lapse later are still sent", async () => {
    const { ws, main } = await installation(workspace, 2, false);
    const sentBefore = main.requests.length;
    expect((await ws.cli(['endpoints', 'disable', 'crm'])).code).toBe(0);
    // The gone run's claims: crm's lapsed already, default's lapse in 4 s.
    await claimedBy(ws, 'crm', GONE_RUN, Date.now() - 1000);
    await claimedBy(ws, 'default', GONE_RUN, Date.now() + 4000);
    const run = await boundedRun(ws);
    expect(run.stopped).toBe(false);
    expect((await ws.rows<{ status: string }>("select status from webhook_deliveries where endpoint = 'default'")).map((row) => row.status)).toEqual([
      'delivered',
      'delivered',
    ]);
    expect(main.requests.length - sentBefore).toBe(2);
  }, 90_000);

  test('a config-file endpoint set enabled: false after a run holding its deliveries died: the next run ends and parks them', async () => {
    const main = await receiverFor();
    const crm = await receiverFor();
    const ws = workspace({ webhooks: { enabled: true, url: main.url, secret: 's', endpoints: [{ name: 'crm', url: crm.url, enabled: false }] } });
    fs.chmodSync(ws.configFile, 0o600);
    await ws.ready();
    await expiredYesterday(ws, 2);
    expect(await ws.run((context) => processExpirations(context))).toMatchObject({ recorded: 2, delivered: 2 });
    await ws.rows(
      `update webhook_deliveries set status = 'delivering', claimed_by = '${GONE_RUN}', lease_until = ${Date.now() - 5 * 60_000} where endpoint = 'crm'`,
    );
    const next = await boundedRun(ws);
    expect(next.stopped).toBe(false);
    expect(next.seconds).toBeLessThan(10);
    expect(await ws.rows("select status, status_reason from webhook_deliveries where endpoint = 'crm'")).toEqual([
      { status: 'parked', status_reason: 'endpoint disabled' },
      { status: 'parked', status_reason: 'endpoint disabled' },
    ]);
    expect(crm.requests).toHaveLength(0);
  }, 90_000);

  test('endpoints add under the name of a removed endpoint whose deliveries a run still holds is refused until that run is gone; then none of them goes to the new one', async () => {
    const { ws } = await installation(workspace, 3, true);
    const newCrm = await receiverFor();
    await claimedBy(ws, 'crm', GONE_RUN, Date.now() + 60_000);
    expect((await ws.cli(['endpoints', 'remove', 'crm', '--force'])).code).toBe(0);
    const refused = await ws.cli(['endpoints', 'add', 'crm', '--url', newCrm.url]);
    expect([refused.code, refused.stderr]).toEqual([
      2,
      expect.stringContaining('3 deliveries of an earlier endpoint named "crm" are held by a running process-expirations'),
    ]);
    expect(await ws.rows("select name from endpoints where name = 'crm'")).toEqual([]);
    // That run died: its lease ran out. Added now, the new crm ends them unsent, and gets none of them.
    await ws.rows(`update webhook_deliveries set lease_until = ${Date.now() - 1000} where endpoint = 'crm'`);
    const added = await ws.cli(['endpoints', 'add', 'crm', '--url', newCrm.url]);
    expect(added.code).toBe(0);
    await ws.run((context) => processExpirations(context));
    expect(newCrm.requests).toHaveLength(0);
    expect((await ws.rows<{ status: string }>("select status from webhook_deliveries where endpoint = 'crm'")).map((row) => row.status)).toEqual([
      'superseded',
      'superseded',
      'superseded',
    ]);
  }, 90_000);

  test('a notice a catch-up run recorded (its --now before the endpoint was added) is re-armed for that endpoint too when a renewal is undone', async () => {
    const main = await receiverFor(() => 500);
    const crm = await receiverFor(() => 500);
    const ws = workspace({ webhooks: { enabled: true, url: main.url, retryDelaysMs: [10], retryWindowHours: 72 } });
    fs.chmodSync(ws.configFile, 0o600);
    await ws.ready();
    expect((await ws.cli(['endpoints', 'add', 'crm', '--url', crm.url])).code).toBe(0);
    const real = Date.now();
    const expiredAt = iso(new Date(real - 3 * HOUR));
    await ws.seed([aLicense({ license_code: 'EXP', expires_at: expiredAt })]);
    // Catch-up: the rules' now two hours back, the engine on the real clock.
    expect(await ws.run((context) => processExpirations(context, { now: new Date(real - 2 * HOUR) }))).toMatchObject({ recorded: 1, deferred: 2 });
    await ws.rows(`update licenses set expires_at = '2099-12-07T10:00:00Z', status = 'active' where license_code = 'EXP'`);
    const later: Clock = { now: () => new Date(real + 12 * HOUR) };
    expect(await ws.run((context) => processExpirations(context, { now: new Date(real + 12 * HOUR), clock: later }))).toMatchObject({ superseded: 2 });
    await ws.rows(`update licenses set expires_at = '${expiredAt}', status = 'active' where license_code = 'EXP'`);
    const evenLater: Clock = { now: () => new Date(real + 13 * HOUR) };
    expect(await ws.run((context) => processExpirations(context, { now: new Date(real + 13 * HOUR), clock: evenLater }))).toMatchObject({ rearmed: 1 });
    expect(
      (await ws.rows<{ endpoint: string; status: string }>('select endpoint, status from webhook_deliveries order by id')).map((row) => [
        row.endpoint,
        row.status,
      ]),
    ).toEqual([
      ['default', 'deferred'],
      ['crm', 'deferred'],
    ]);
  }, 90_000);
});

forEachDialect(
  'claims of a live run on a server database, seen from a host whose clock is ahead',
  ({ workspace }) => {
    const skewed = faketimeWorks && LIBFAKETIME ? test : test.skip;
    if (!faketimeWorks || !LIBFAKETIME)
      test.skip(`(skipped: libfaketime is not installed or does not work here: ${faketimeProblem ?? 'no library'})`, () => undefined);
    skewed(
      'a run 2 minutes ahead leaves them alone; endpoints add 60 s ahead still refuses: leases are on the server clock',
      async () => {
        const { ws, crm } = await installation(workspace, 1, false);
        const LIVE_RUN = 'otherhost:4242:boot:ns:abcdef12';
        await claimedBy(ws, 'crm', LIVE_RUN, Date.now() + 50_000);
        expect((await ws.cli(['endpoints', 'disable', 'crm'])).code).toBe(0);
        const ahead = (offset: string) => ({ env: { LD_PRELOAD: LIBFAKETIME!, FAKETIME: offset } });
        expect((await ws.cli(['process-expirations'], ahead('+120s'))).code).toBe(0);
        expect(await ws.rows("select status, claimed_by from webhook_deliveries where endpoint = 'crm'")).toEqual([
          { status: 'delivering', claimed_by: LIVE_RUN },
        ]);
        expect((await ws.cli(['endpoints', 'remove', 'crm', '--force'])).code).toBe(0);
        const added = await ws.cli(['endpoints', 'add', 'crm', '--url', crm.url], ahead('+60s'));
        expect([added.code, added.stderr]).toEqual([2, expect.stringContaining('held by a running process-expirations')]);
        expect(await ws.rows("select status, claimed_by from webhook_deliveries where endpoint = 'crm'")).toEqual([
          { status: 'delivering', claimed_by: LIVE_RUN },
        ]);
      },
      90_000,
    );
  },
  { servers: true },
);
