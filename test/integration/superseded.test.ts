import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from '@jest/globals';
import type { Clock } from '../../src/clock.js';
import { processExpirations, type ProcessExpirationsResult } from '../../src/commands/process-expirations.js';
import { addDays } from '../../src/expirations/calendar.js';
import { botbleInserts, botbleSettingInserts, createBotbleDatabase } from '../helpers/botble.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/temp-dir.js';
import type { Receiver } from '../helpers/receiver.js';
import { aLicense, forEachDialect, receiverFor, type Workspace } from '../helpers/workspace.js';

// A delivery that waited is checked against its license just before it is sent (issue 19 part 5). The engine's
// clock is the real one here, so the dates are relative to today: a warning is for an expiry still ahead.
const TODAY = new Date().toISOString().slice(0, 10);
const day = (offset: number) => addDays(TODAY, offset);
const SECRET = 'default-secret';

/** What a receiver got: "event_type license_code", sorted. */
const got = (r: Receiver) =>
  r.requests
    .map((request) => JSON.parse(request.body.toString('utf8')) as { event_type: string; payload: { license_code: string } })
    .map((body) => `${body.event_type} ${body.payload.license_code}`)
    .sort();

function configure(ws: Workspace, main: Receiver, crm: Receiver, crmEnabled: boolean): void {
  ws.configure({ webhooks: { enabled: true, url: main.url, secret: SECRET, endpoints: [{ name: 'crm', url: crm.url, enabled: crmEnabled }] } });
  fs.chmodSync(ws.configFile, 0o600);
}

interface Row {
  id: number;
  license_id: number | null;
  event_type: string;
  license_code: string | null;
  status: string;
  status_reason: string | null;
  endpoint: string;
}

forEachDialect('superseded deliveries', ({ workspace }) => {
  test('parked deliveries of changed licenses are superseded with the reason when their endpoint comes back; the rest go out once', async () => {
    const [main, crm] = [await receiverFor(), await receiverFor()];
    const ws = workspace();
    configure(ws, main, crm, false);
    await ws.ready();
    const soon = `${day(5)}T12:00:00Z`;
    await ws.seed([
      aLicense({ license_code: 'RENEWED', expires_at: soon }),
      aLicense({ license_code: 'SUSPENDED', expires_at: soon }),
      aLicense({ license_code: 'REVOKED', expires_at: soon }),
      aLicense({ license_code: 'DELETED', expires_at: `${day(-3)}T12:00:00Z` }),
      aLicense({ license_code: 'RETIMED', expires_at: soon }),
      aLicense({ license_code: 'UNCHANGED', expires_at: soon }),
      aLicense({ license_code: 'SUPPORT', updates_until: `${day(-3)}T00:00:00Z` }),
      // Expires at 00:00 today: the catch-up run two days back warns about it, and by now it has expired.
      aLicense({ license_code: 'PASSED', expires_at: `${TODAY}T00:00:00Z` }),
    ]);

    // Day 1 (a catch-up run two days back): everything is recorded and sent to default; crm's deliveries are parked.
    const first = await ws.cli(['process-expirations', '--now', `${day(-2)}T00:00:01Z`, '--json']);
    expect(first.stderr).toBe('');
    expect(JSON.parse(first.stdout)).toMatchObject({ recorded: 8, delivered: 8, superseded: 0 });
    // Recorded by this very run: sent as recorded, even the warning whose expiry has passed on the real clock since.
    expect(got(main)).toEqual([
      'license.expired DELETED',
      'license.expiring PASSED',
      'license.expiring RENEWED',
      'license.expiring RETIMED',
      'license.expiring REVOKED',
      'license.expiring SUSPENDED',
      'license.expiring UNCHANGED',
      'license.update_support_expired SUPPORT',
    ]);
    expect(crm.requests).toHaveLength(0);

    // Meanwhile: a renewal, a suspension, a revocation, a deletion, a time-of-day edit, update support moved.
    await ws.rows(`update licenses set expires_at = '${day(400)}T12:00:00Z' where license_code = 'RENEWED'`);
    await ws.rows(`update licenses set status = 'suspended' where license_code = 'SUSPENDED'`);
    await ws.rows(`update licenses set status = 'revoked' where license_code = 'REVOKED'`);
    await ws.rows(`delete from licenses where license_code = 'DELETED'`);
    await ws.rows(`update licenses set expires_at = '${day(5)}T18:30:00Z' where license_code = 'RETIMED'`);
    await ws.rows(`update licenses set updates_until = '${day(365)}T00:00:00Z' where license_code = 'SUPPORT'`);

    // Day 2, crm enabled again: its parked deliveries waited, so each license is read again before sending.
    configure(ws, main, crm, true);
    const second = await ws.cli(['process-expirations', '--json']);
    // One warning, even with --json: a customer may have missed a notice.
    expect(second.stderr).toMatch(
      /^warning: 6 notices were not sent: superseded after waiting \(for example: [^\n]+\)\. See "license-manager deliveries list --status superseded"\.\n$/,
    );
    const result = JSON.parse(second.stdout);
    // PASSED's license.expired is new (recorded now, to both endpoints); its parked warning is superseded.
    expect(result).toMatchObject({ recorded: 1, delivered: 4, superseded: 6, abandoned: 0 });
    expect(got(crm)).toEqual(['license.expired PASSED', 'license.expiring RETIMED', 'license.expiring UNCHANGED']);
    expect(got(main).filter((line) => line.endsWith('PASSED'))).toEqual(['license.expired PASSED', 'license.expiring PASSED']);
    // The run's outcomes carry the reasons.
    const outcomes = (result.deliveries as Array<{ status: string; reason?: string }>).filter((outcome) => outcome.status === 'superseded');
    expect(outcomes).toHaveLength(6);
    // The run records how many it superseded (runs.superseded).
    expect((await ws.rows<{ superseded: number }>('select superseded from runs order by started_at')).map((row) => Number(row.superseded))).toEqual([0, 6]);

    const superseded = JSON.parse((await ws.cli(['deliveries', 'list', '--status', 'superseded', '--json'])).stdout) as Row[];
    const byCode = Object.fromEntries(superseded.map((row) => [row.license_code ?? `deleted ${row.event_type}`, row]));
    expect(superseded.every((row) => row.endpoint === 'crm' && row.status === 'superseded')).toBe(true);
    // The run's own outcomes named the same reasons the rows keep.
    const byText = (a: string | null | undefined, b: string | null | undefined) => String(a).localeCompare(String(b));
    expect(outcomes.map((outcome) => outcome.reason).sort(byText)).toEqual(superseded.map((row) => row.status_reason).sort(byText));
    expect(byCode.RENEWED!.status_reason).toBe(`license renewed: it now expires on ${day(400)} (this notice is about ${day(5)})`);
    expect(byCode.SUSPENDED!.status_reason).toBe('license suspended');
    expect(byCode.REVOKED!.status_reason).toBe('license revoked');
    expect(byCode['deleted license.expired']!.status_reason).toMatch(/^license \d+ no longer exists \(deleted\)$/);
    expect(byCode.SUPPORT!.status_reason).toBe(`update support changed: it now ends on ${day(365)} (this notice is about ${day(-3)})`);
    expect(byCode.PASSED!.status_reason).toBe(`the license expired at ${TODAY}T00:00:00Z, before this warning could be sent`);
    // Nothing is sent on the next run, and nothing superseded twice.
    const third = JSON.parse((await ws.cli(['process-expirations', '--json'])).stdout);
    expect(third).toMatchObject({ recorded: 0, delivered: 0, superseded: 0 });
    expect([main.requests.length, crm.requests.length]).toEqual([9, 3]);

    // show and its --json carry the reason; status counts superseded deliveries.
    const shown = await ws.cli(['deliveries', 'show', String(byCode.SUSPENDED!.id)]);
    expect(shown.stdout).toMatch(/status: +superseded at \S+\n +reason: +license suspended\n/);
    expect(JSON.parse((await ws.cli(['deliveries', 'show', String(byCode.SUSPENDED!.id), '--json'])).stdout).delivery).toMatchObject({
      status: 'superseded',
      status_reason: 'license suspended',
    });
    const status = JSON.parse((await ws.cli(['status', '--json'])).stdout);
    expect(status.deliveries.byStatus.superseded).toBe(6);

    // deliveries retry of a superseded one says why (exit 2, nothing sent); --force sends it as recorded.
    const refused = await ws.cli(['deliveries', 'retry', String(byCode.RENEWED!.id)]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`Delivery ${byCode.RENEWED!.id} was superseded at`);
    expect(refused.stderr).toContain(`license renewed: it now expires on ${day(400)}`);
    expect(refused.stderr).toContain(`deliveries retry ${byCode.RENEWED!.id} --force`);
    expect(crm.requests).toHaveLength(3);
    const forced = await ws.cli(['deliveries', 'retry', String(byCode.RENEWED!.id), '--force']);
    expect([forced.code, forced.stderr]).toEqual([0, '']);
    expect(forced.stdout).toContain('1 superseded, sent anyway because of --force');
    expect(got(crm)).toContain('license.expiring RENEWED');
    expect(await ws.rows(`select status, status_reason from webhook_deliveries where id = ${byCode.RENEWED!.id}`)).toEqual([
      { status: 'delivered', status_reason: null },
    ]);

    // send-test-event records nothing and is never checked: a suspended license's sample still goes out, marked as a test.
    const sample = await ws.cli(['send-test-event', '--license', 'SUSPENDED']);
    expect([sample.code, sample.stderr]).toEqual([0, '']);
    expect(main.requests).toHaveLength(10);
    expect(main.requests.at(-1)!.headers['x-webhook-test']).toBe('true');
    expect(JSON.parse(main.requests.at(-1)!.body.toString('utf8')).payload.license_code).toBe('SUSPENDED');
  }, 90_000);

  /** A catch-up run two days back whose worker records two warnings and is stopped before it claims any: they wait, never attempted. */
  async function recordedNotSent(): Promise<{ ws: Workspace; receiver: Receiver; now: Date }> {
    const receiver = await receiverFor();
    const ws = workspace({ webhooks: { enabled: true, url: receiver.url, secret: SECRET } });
    fs.chmodSync(ws.configFile, 0o600);
    await ws.ready();
    // Both expire at 00:00 today: a catch-up run two days back warns about them, and by now they have expired.
    await ws.seed([
      aLicense({ license_code: 'PASSED', expires_at: `${TODAY}T00:00:00Z` }),
      aLicense({ license_code: 'RENEWED', expires_at: `${TODAY}T00:00:00Z` }),
    ]);
    const now = new Date(`${day(-2)}T00:00:01Z`);
    const stop = new AbortController();
    const recorder = await ws.run((context) => processExpirations(context, { now, stop: stop.signal, onPlan: () => stop.abort() }));
    expect(recorder).toMatchObject({ recorded: 2, delivered: 0, superseded: 0 });
    expect(receiver.requests).toHaveLength(0);
    return { ws, receiver, now };
  }

  test('the business zone moved west while notices waited: wall-time expiries (a date alone, a local time) are the same expiry, and go out; an instant too', async () => {
    const [main, crm] = [await receiverFor(), await receiverFor()];
    const ws = workspace();
    const settings = (timeZone: string, crmEnabled: boolean) => {
      ws.configure({
        expirations: { timeZone, warningDays: [7] },
        webhooks: { enabled: true, url: main.url, secret: SECRET, endpoints: [{ name: 'crm', url: crm.url, enabled: crmEnabled }] },
      });
      fs.chmodSync(ws.configFile, 0o600);
    };
    settings('Asia/Tokyo', false);
    await ws.ready();
    await ws.seed([
      aLicense({ license_code: 'DATE', expires_at: day(5) }),
      aLicense({ license_code: 'MIDNIGHT', expires_at: `${day(5)}T00:00:00` }),
      aLicense({ license_code: 'HALF-PAST', expires_at: `${day(5)}T00:30:00` }),
      aLicense({ license_code: 'INSTANT', expires_at: `${day(5)}T12:00:00Z` }),
    ]);
    const first = await ws.cli(['process-expirations', '--json']);
    expect(JSON.parse(first.stdout)).toMatchObject({ recorded: 4, delivered: 4 });
    // Tokyo's midnight and 00:30 are the day before in UTC: their stored instants fall on that date there.
    settings('UTC', true);
    const later = await ws.cli(['process-expirations', '--json']);
    expect([later.stderr, JSON.parse(later.stdout)]).toEqual(['', expect.objectContaining({ recorded: 0, delivered: 4, superseded: 0 })]);
    expect(got(crm)).toEqual(['license.expiring DATE', 'license.expiring HALF-PAST', 'license.expiring INSTANT', 'license.expiring MIDNIGHT']);
  });

  test('workers of one catch-up run (one --now, started together): a warning one recorded goes out whichever claims it, though its expiry has passed on the real clock', async () => {
    const { ws, receiver, now } = await recordedNotSent();
    // The license is still read again: a renewal in between supersedes its warning.
    await ws.rows(`update licenses set expires_at = '${day(400)}T12:00:00Z' where license_code = 'RENEWED'`);
    // Another worker of the same run, started a moment after the first: it claims what the first recorded.
    const sibling = await ws.run((context) => processExpirations(context, { now }));
    expect(sibling).toMatchObject({ recorded: 0, delivered: 1, superseded: 1 });
    expect(got(receiver)).toEqual(['license.expiring PASSED']);
    expect(await ws.rows(`select status, status_reason from webhook_deliveries order by id`)).toEqual([
      { status: 'delivered', status_reason: null },
      { status: 'superseded', status_reason: `license renewed: it now expires on ${day(400)} (this notice is about ${TODAY})` },
    ]);
  }, 60_000);

  test('the same catch-up run again, alone and minutes later: the warnings that waited are judged on the real clock', async () => {
    const { ws, receiver, now } = await recordedNotSent();
    // Five minutes on: no run at the same --now started together with this one.
    const later: Clock = { now: () => new Date(Date.now() + 5 * 60_000) };
    const rerun = await ws.run((context) => processExpirations(context, { now, clock: later }));
    expect(rerun).toMatchObject({ recorded: 0, delivered: 0, superseded: 2 });
    expect(receiver.requests).toHaveLength(0);
    expect(await ws.rows(`select status, status_reason from webhook_deliveries order by id`)).toEqual(
      Array.from({ length: 2 }, () => ({
        status: 'superseded',
        status_reason: `the license expired at ${TODAY}T00:00:00Z, before this warning could be sent`,
      })),
    );
  }, 60_000);

  test("a product's notices turned off while one waits: superseded with the reason when due, not sent; the other product's goes out", async () => {
    let up = false;
    const main = await receiverFor(() => (up ? 200 : 500));
    const ws = workspace({ webhooks: { enabled: true, url: main.url, secret: SECRET, retryWindowHours: 72 } });
    fs.chmodSync(ws.configFile, 0o600);
    await ws.ready();
    await ws.seed([
      aLicense({ license_code: 'OFF-1', product_id: 'P-OFF', expires_at: `${day(-1)}T12:00:00Z` }),
      aLicense({ license_code: 'ON-1', product_id: 'P-ON', expires_at: `${day(-1)}T12:00:00Z` }),
    ]);
    const first = await ws.cli(['process-expirations', '--json']);
    expect(first.code).toBe(4);
    expect(JSON.parse(first.stdout)).toMatchObject({ recorded: 2, deferred: 2 });
    expect((await ws.cli(['settings', 'set', 'product:P-OFF:enabled', 'false'])).code).toBe(0);
    // Due now (as if the backoff had passed), the receiver back.
    await ws.rows("update webhook_deliveries set next_attempt_at = '2000-01-01T00:00:00Z'");
    up = true;
    const requestsBefore = main.requests.length;
    const next = await ws.cli(['process-expirations', '--json']);
    expect(next.code).toBe(0);
    expect(JSON.parse(next.stdout)).toMatchObject({ delivered: 1, superseded: 1 });
    expect(got(main).slice(requestsBefore)).toEqual(['license.expired ON-1']);
    expect(
      await ws.rows(
        'select l.license_code, d.status, d.status_reason from webhook_deliveries d join licenses l on l.id = d.license_id order by l.license_code',
      ),
    ).toEqual([
      { license_code: 'OFF-1', status: 'superseded', status_reason: 'notices for product P-OFF are turned off (expirations.products.P-OFF.enabled is false)' },
      { license_code: 'ON-1', status: 'delivered', status_reason: null },
    ]);
  }, 60_000);

  test('deliveries retry reads the license again: an abandoned notice of a license suspended since is superseded, not sent', async () => {
    // The receiver refuses the first two requests for good (400), then takes everything.
    const main = await receiverFor((_request, index) => (index < 2 ? 400 : 200));
    const ws = workspace({ webhooks: { enabled: true, url: main.url, secret: SECRET } });
    fs.chmodSync(ws.configFile, 0o600);
    await ws.ready();
    await ws.seed([
      aLicense({ license_code: 'LATER-SUSPENDED', expires_at: `${day(5)}T12:00:00Z` }),
      aLicense({ license_code: 'STILL-ACTIVE', expires_at: `${day(5)}T12:00:00Z` }),
    ]);
    const run = await ws.cli(['process-expirations', '--json']);
    expect(run.code).toBe(3);
    expect(JSON.parse(run.stdout)).toMatchObject({ recorded: 2, abandoned: 2 });
    await ws.rows(`update licenses set status = 'suspended' where license_code = 'LATER-SUSPENDED'`);

    const retried = await ws.cli(['deliveries', 'retry', '--abandoned']);
    expect([retried.code, retried.stderr]).toEqual([0, '']);
    expect(retried.stdout).toContain('delivered 1, abandoned 0, superseded 1');
    expect(retried.stdout).toMatch(/#\d+ license\.expiring: license suspended/);
    expect(got(main).slice(-1)).toEqual(['license.expiring STILL-ACTIVE']);
    expect(main.requests).toHaveLength(3);
    expect(
      await ws.rows(
        "select d.status, d.status_reason from webhook_deliveries d join licenses l on l.id = d.license_id where l.license_code = 'LATER-SUSPENDED'",
      ),
    ).toEqual([{ status: 'superseded', status_reason: 'license suspended' }]);
    // The text list shows the reason where an abandoned delivery shows its error.
    const list = await ws.cli(['deliveries', 'list', '--status', 'superseded']);
    expect(list.stdout).toMatch(/superseded .*license suspended/);
  }, 60_000);
});

describe('superseded deliveries in Botble mode [sqlite]', () => {
  test("Botble's own licenses are read again: renewed, blocked (is_valid = 0) and deleted rows supersede parked notices; Botble's tables stay unwritten", async () => {
    const [main, crm] = [await receiverFor(), await receiverFor()];
    const botble = await createBotbleDatabase('sqlite');
    try {
      const soon = day(5);
      await botble.exec(
        ...botbleInserts(
          'sqlite',
          [{ reference: 'PROD-001', name: 'Product' }],
          [
            { id: 1, product: 'PROD-001', code: 'B-RENEWED', customer: '1', email: null, expires: soon, updates: null },
            { id: 2, product: 'PROD-001', code: 'B-BLOCKED', customer: '2', email: null, expires: soon, updates: null },
            { id: 3, product: 'PROD-001', code: 'B-DELETED', customer: '3', email: null, expires: soon, updates: null },
            { id: 4, product: 'PROD-001', code: 'B-KEPT', customer: '4', email: null, expires: soon, updates: null },
          ],
        ),
        ...botbleSettingInserts('sqlite', { lm_enable_webhooks: '1', lm_webhook_url: main.url, lm_webhook_secret: SECRET, lm_expiration_warning_days: '7,1' }),
      );
      const dir = tempDir();
      const config = (crmEnabled: boolean) => {
        const file = path.join(dir, 'license-manager.config.json');
        fs.writeFileSync(
          file,
          JSON.stringify({
            database: { ...botble.database, tablePrefix: 'lm_ours_' },
            licenses: { source: 'botble' },
            webhooks: { retryDelaysMs: [10], endpoints: [{ name: 'crm', url: crm.url, enabled: crmEnabled }] },
          }),
        );
        fs.chmodSync(file, 0o600);
      };
      config(false);
      const cli = (...args: string[]) => runCli(args, { cwd: dir });
      expect((await cli('migrate')).code).toBe(0);
      const first = await cli('process-expirations', '--json');
      expect(first.stderr).toBe('');
      expect(JSON.parse(first.stdout)).toMatchObject({ recorded: 4, delivered: 4 });

      await botble.exec(
        `update lm_licenses set expires_at = '${day(400)}' where id = 1`,
        'update lm_licenses set is_valid = 0 where id = 2',
        'delete from lm_licenses where id = 3',
      );
      const checksum = await botble.checksum();
      config(true);
      // The text summary counts them and says why for each.
      const second = await cli('process-expirations');
      expect([second.code, second.stderr]).toEqual([0, expect.stringMatching(/^warning: 3 notices were not sent: superseded after waiting \(for example: /)]);
      expect(second.stdout).toContain('  delivered 1, abandoned 0, superseded 3\n');
      expect(second.stdout).toContain(
        '  not sent, superseded (the license changed or expired since the notice was recorded, or a later notice replaced it; "deliveries retry <id> --force" sends one anyway):\n',
      );
      expect(second.stdout).toMatch(/^ {4}#\d+ license\.expiring: license suspended$/m);
      expect(second.stdout).toMatch(/^ {4}#\d+ license\.expiring: license 3 no longer exists \(deleted\)$/m);
      expect(got(crm)).toEqual(['license.expiring B-KEPT']);
      const rows = JSON.parse((await cli('deliveries', 'list', '--status', 'superseded', '--json')).stdout) as Row[];
      expect(rows.map((row) => [row.license_id, row.status_reason]).sort((a, b) => Number(a[0]) - Number(b[0]))).toEqual([
        [1, `license renewed: it now expires on ${day(400)} (this notice is about ${soon})`],
        [2, 'license suspended'],
        [3, 'license 3 no longer exists (deleted)'],
      ]);
      expect(await botble.checksum()).toBe(checksum);
    } finally {
      await botble.drop();
    }
  }, 60_000);
});
// Deferred deliveries (a receiver down): the engine's clock is injected, as in retries-across-runs.test.ts.
const T0 = new Date('2025-01-23T10:00:00Z');
function runAt(ws: Workspace, when: Date): Promise<ProcessExpirationsResult> {
  const clock: Clock = { now: () => when };
  return ws.run((context) => processExpirations(context, { now: T0, clock }));
}

forEachDialect('superseded deferred deliveries', ({ workspace }) => {
  test('deferred while the receiver was down; renewed, suspended or expired meanwhile: superseded when due, the rest delivered once', async () => {
    let down = true;
    const target = await receiverFor(() => (down ? 503 : 200));
    const ws = workspace({ webhooks: { enabled: true, url: target.url, secret: SECRET, retryWindowHours: 72 } });
    fs.chmodSync(ws.configFile, 0o600);
    await ws.ready();
    await ws.seed([
      aLicense({ license_code: 'D-RENEWED', expires_at: '2025-01-30T10:00:00Z' }),
      aLicense({ license_code: 'D-SUSPENDED', expires_at: '2025-01-30T10:00:00Z' }),
      aLicense({ license_code: 'D-KEPT', expires_at: '2025-01-30T10:00:00Z' }),
      // Expires five minutes after the run: warned about at T0, expired by the time the warning is due again.
      aLicense({ license_code: 'D-PASSED', expires_at: '2025-01-23T10:05:00Z' }),
    ]);
    const first = await runAt(ws, T0);
    expect(first).toMatchObject({ recorded: 4, delivered: 0, abandoned: 0, superseded: 0, deferred: 4 });

    await ws.rows(`update licenses set expires_at = '2026-01-30T10:00:00Z' where license_code = 'D-RENEWED'`);
    await ws.rows(`update licenses set status = 'suspended' where license_code = 'D-SUSPENDED'`);
    down = false;
    const sentBefore = target.requests.length;
    const back = await runAt(ws, new Date(T0.getTime() + 10 * 60_000));
    expect(back).toMatchObject({ delivered: 1, abandoned: 0, deferred: 0, superseded: 3 });
    expect(got({ ...target, requests: target.requests.slice(sentBefore) })).toEqual(['license.expiring D-KEPT']);
    const rows = await ws.rows<{ license_code: string; status: string; status_reason: string | null; next_attempt_at: string | null }>(
      'select l.license_code, d.status, d.status_reason, d.next_attempt_at from webhook_deliveries d join licenses l on l.id = d.license_id order by l.license_code',
    );
    expect(rows).toEqual([
      { license_code: 'D-KEPT', status: 'delivered', status_reason: null, next_attempt_at: null },
      {
        license_code: 'D-PASSED',
        status: 'superseded',
        status_reason: 'the license expired at 2025-01-23T10:05:00Z, before this warning could be sent',
        next_attempt_at: null,
      },
      {
        license_code: 'D-RENEWED',
        status: 'superseded',
        status_reason: 'license renewed: it now expires on 2026-01-30 (this notice is about 2025-01-30)',
        next_attempt_at: null,
      },
      { license_code: 'D-SUSPENDED', status: 'superseded', status_reason: 'license suspended', next_attempt_at: null },
    ]);
  }, 60_000);
});
