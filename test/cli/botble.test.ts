import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { botbleInserts, botbleSettingInserts, createBotbleDatabase, type BotbleDatabase, type BotbleLicense } from '../helpers/botble.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { testDialects } from '../helpers/servers.js';
import { tempDir } from '../helpers/temp-dir.js';

// A catch-up run on 2025-01-23 (UTC business day): every rule has a license below.
const NOW = '2025-01-23T10:00:00Z';
const SECRET = 'botble-s3cret';
const PRODUCTS = [
  { reference: 'PROD-001', name: 'Ünïcode Product' },
  { reference: 'PROD-002', name: 'Plain Product' },
];
const LICENSES: BotbleLicense[] = [
  { id: 11, product: 'PROD-001', code: 'L-7', customer: '00042', email: 'seven@example.com', expires: '2025-01-30', updates: null },
  { id: 12, product: 'PROD-002', code: 'L-1', customer: 'CUST-é', email: null, expires: '2025-01-24', updates: '2026-01-01' },
  { id: 13, product: 'PROD-001', code: 'L-EXP', customer: null, email: 'exp@example.com', expires: '2025-01-23', updates: null },
  { id: 14, product: 'PROD-001', code: 'L-OLD', customer: '7', email: null, expires: '2024-12-01', updates: null },
  { id: 15, product: 'PROD-002', code: 'L-UPD', customer: '8', email: 'upd@example.com', expires: null, updates: '2025-01-22' },
  { id: 16, product: 'PROD-001', code: 'L-SUSP', customer: '9', email: null, expires: '2025-01-24', updates: '2025-01-20', valid: false },
  { id: 17, product: 'PROD-GONE', code: 'L-GONE', customer: '10', email: 'gone@example.com', expires: '2025-01-26', updates: null },
  { id: 18, product: 'PROD-002', code: 'L-LIFE', customer: '11', email: null, expires: null, updates: null },
  { id: 19, product: 'PROD-002', code: 'L-FAR', customer: '12', email: null, expires: '2025-06-01', updates: null },
];
// As an admin page saves them: warning days with an empty item and a 0, which Botble drops.
const BOTBLE_SETTINGS = { lm_enable_webhooks: '1', lm_webhook_secret: SECRET, lm_expiration_warning_days: '7,,0,1' };

/** What a receiver saw, keyed by event and license: the exact body bytes and the signature. */
function received(receiver: Receiver, from = 0): Map<string, { body: string; signature: string | undefined }> {
  const events = new Map<string, { body: string; signature: string | undefined }>();
  for (const request of receiver.requests.slice(from)) {
    const body = request.body.toString('utf8');
    const parsed = JSON.parse(body) as { event_type: string; payload: { license_id: number } };
    events.set(`${parsed.event_type}:${parsed.payload.license_id}`, { body, signature: request.headers['x-webhook-signature'] as string | undefined });
  }
  return events;
}

function json<T>(result: CliResult): T {
  expect(result.stderr).not.toMatch(/Error|failed/);
  return JSON.parse(result.stdout) as T;
}

type Run = {
  summary: { recorded: number; delivered: number; markedExpired: number; expiredWithoutEvent: number; skipped: number };
  events: ReturnType<typeof received>;
};
let sqliteReference: Promise<Run> | undefined;

describe.each(testDialects())('Botble mode [%s]', (dialect) => {
  let botble: BotbleDatabase;
  let receiver: Receiver;
  let before: string;

  beforeAll(async () => {
    receiver = await startReceiver();
    botble = await createBotbleDatabase(dialect);
    await botble.exec(...botbleInserts(dialect, PRODUCTS, LICENSES), ...botbleSettingInserts(dialect, { ...BOTBLE_SETTINGS, lm_webhook_url: receiver.url }));
    before = await botble.checksum();
  });

  afterAll(async () => {
    await receiver.close();
    await botble.drop();
  });

  /** A working directory whose config reads the Botble database, with this tool's tables under `prefix`. */
  function botbleDir(prefix: string, extra: Record<string, unknown> = {}): string {
    const dir = tempDir();
    const database = { ...botble.database, tablePrefix: prefix };
    fs.writeFileSync(
      path.join(dir, 'license-manager.config.json'),
      JSON.stringify({ database, licenses: { source: 'botble' }, webhooks: { retryDelaysMs: [10], timeoutMs: 5000 }, ...extra }),
    );
    return dir;
  }

  test('events are those of the same licenses imported into SQLite, byte for byte, under two machine time zones; Botble tables unchanged', async () => {
    const run = async (dir: string, tz: string) => {
      const from = receiver.requests.length;
      const result = await runCli(['process-expirations', '--now', NOW, '--json'], { cwd: dir, env: { TZ: tz } });
      expect(result.code).toBe(0);
      return {
        summary: json<{ recorded: number; delivered: number; markedExpired: number; expiredWithoutEvent: number; skipped: number }>(result),
        events: received(receiver, from),
      };
    };

    // Botble, twice, each with its own tables (a first run for both), on machines west and east of UTC.
    const west = botbleDir('lmw_');
    expect((await runCli(['migrate'], { cwd: west })).code).toBe(0);
    const botbleWest = await run(west, 'America/Los_Angeles');
    const east = botbleDir('lmx_');
    expect((await runCli(['migrate'], { cwd: east })).code).toBe(0);
    const botbleEast = await run(east, 'Asia/Ho_Chi_Minh');

    // The same licenses exported from Botble and imported into a SQLite file of our own: the same whatever the
    // dialect under test, so made once (two processes under TZ), by the first suite, and compared by each.
    sqliteReference ??= (async () => {
      const own = tempDir();
      const byReference = new Map(PRODUCTS.map((product) => [product.reference, product.name]));
      const rows = LICENSES.map((license) => ({
        id: license.id,
        license_code: license.code,
        product_id: license.product,
        product_name: byReference.get(license.product) ?? null,
        customer_id: license.customer,
        email: license.email,
        expires_at: license.expires,
        updates_until: license.updates,
        is_valid: license.valid ?? true,
      }));
      fs.writeFileSync(path.join(own, 'licenses.json'), JSON.stringify(rows));
      fs.writeFileSync(
        path.join(own, 'license-manager.config.json'),
        JSON.stringify({ webhooks: { enabled: true, url: receiver.url, secret: SECRET, retryDelaysMs: [10] }, expirations: { warningDays: [7, 1] } }),
      );
      expect((await runCli(['licenses', 'import', 'licenses.json'], { cwd: own, env: { TZ: 'Asia/Ho_Chi_Minh' } })).code).toBe(0);
      return run(own, 'UTC');
    })();
    const sqlite = await sqliteReference;

    // What Botble's rules give on 2025-01-23: warnings at 7, 1 and (at the 7-day threshold) 3 days, one expiry today, one update-support end.
    expect([...botbleWest.events.keys()].sort()).toEqual([
      'license.expired:13',
      'license.expiring:11',
      'license.expiring:12',
      'license.expiring:17',
      'license.update_support_expired:15',
    ]);
    const payload = (key: string) => (JSON.parse(botbleWest.events.get(key)!.body) as { payload: Record<string, unknown> }).payload;
    expect(payload('license.expiring:11')).toEqual({
      license_id: 11,
      license_code: 'L-7',
      product_id: 'PROD-001',
      product_reference_id: 'Ünïcode Product',
      customer_id: '00042',
      email: 'seven@example.com',
      expires_at: '2025-01-30T00:00:00Z',
      days_until_expiry: 7,
    });
    expect(payload('license.expiring:17')).toMatchObject({
      product_id: 'PROD-GONE',
      product_reference_id: null,
      expires_at: '2025-01-26T00:00:00Z',
      days_until_expiry: 3,
    });
    expect(payload('license.expired:13')).toMatchObject({ expired_at: '2025-01-23T00:00:00Z' });
    expect(payload('license.update_support_expired:15')).toMatchObject({ updates_until: '2025-01-22T00:00:00Z' });

    // Byte-identical bodies (the timestamp is the run's now in all three) and signatures.
    expect(botbleEast.events).toEqual(botbleWest.events);
    expect(sqlite.events).toEqual(botbleWest.events);
    const counts = ({ recorded, delivered, markedExpired, expiredWithoutEvent, skipped }: typeof sqlite.summary) => ({
      recorded,
      delivered,
      markedExpired,
      expiredWithoutEvent,
      skipped,
    });
    expect(counts(botbleWest.summary)).toEqual(counts(sqlite.summary));
    expect(counts(botbleEast.summary)).toEqual(counts(sqlite.summary));
    expect(botbleWest.summary).toMatchObject({ recorded: 5, delivered: 5, markedExpired: 2, expiredWithoutEvent: 1, skipped: 0 });

    // A second run finds everything recorded; the derived `expired` lives in our table.
    const again = await run(west, 'UTC');
    expect(again.summary).toMatchObject({ recorded: 0, delivered: 0 });
    expect(again.events.size).toBe(0);
    const expired = json<Array<{ license_code: string }>>(await runCli(['licenses', 'list', '--status', 'expired', '--json'], { cwd: west }));
    expect(expired.map((row) => row.license_code)).toEqual(['L-EXP', 'L-OLD']);

    // status counts Botble's licenses by their derived status, as licenses list shows them.
    const listed = json<Array<{ status: string }>>(await runCli(['licenses', 'list', '--json'], { cwd: west }));
    const byStatus: Record<string, number> = {};
    for (const row of listed) byStatus[row.status] = (byStatus[row.status] ?? 0) + 1;
    const health = await runCli(['status', '--json', '--now', NOW], { cwd: west });
    expect(json<{ licenses: { total: number; byStatus: Record<string, number> } }>(health).licenses).toEqual({ total: listed.length, byStatus });
    expect(byStatus.expired).toBe(2);

    expect(await botble.checksum()).toBe(before);
  });

  test('the delivery log names Botble licenses by code: deliveries list and --license (text and --json), show, retry and the abandoned list of a run', async () => {
    // L-7's receiver keeps failing, so its delivery is abandoned; every other license's is delivered.
    const failing = await startReceiver((request) =>
      (JSON.parse(request.body.toString()) as { payload: { license_code: string } }).payload.license_code === 'L-7' ? 500 : 200,
    );
    try {
      const dir = botbleDir('lmz_');
      const env = { LICENSE_MANAGER_WEBHOOK_URL: failing.url };
      expect((await runCli(['migrate'], { cwd: dir })).code).toBe(0);
      const run = await runCli(['process-expirations', '--now', NOW, '--json'], { cwd: dir, env });
      expect(run.code).toBe(3);
      const summary = JSON.parse(run.stdout) as { recorded: number; abandonedDeliveries: Array<{ id: number; licenseCode: string | null; eventType: string }> };
      expect(summary.recorded).toBe(5);
      expect(summary.abandonedDeliveries).toEqual([expect.objectContaining({ licenseCode: 'L-7', eventType: 'license.expiring' })]);
      const abandonedId = summary.abandonedDeliveries[0]!.id;
      expect(run.stderr).toContain(`#${abandonedId} L-7 license.expiring after 2 attempts: HTTP 500`);

      // Every delivery of the run, each with its Botble license's code.
      const all = json<Array<{ id: number; license_id: number; license_code: string | null; status: string }>>(
        await runCli(['deliveries', 'list', '--json'], { cwd: dir }),
      );
      expect(all.map((row) => [row.license_id, row.license_code]).sort((a, b) => Number(a[0]) - Number(b[0]))).toEqual([
        [11, 'L-7'],
        [12, 'L-1'],
        [13, 'L-EXP'],
        [15, 'L-UPD'],
        [17, 'L-GONE'],
      ]);
      const text = await runCli(['deliveries', 'list'], { cwd: dir });
      expect(text.code).toBe(0);
      for (const code of ['L-7', 'L-1', 'L-EXP', 'L-UPD', 'L-GONE']) expect(text.stdout).toMatch(new RegExp(`\\s${code}\\s`));
      expect(text.stdout).not.toMatch(/\bid \d/);

      // --license filters by the Botble code, in text and in --json.
      const l7 = json<Array<{ id: number; license_code: string; status: string }>>(
        await runCli(['deliveries', 'list', '--license', 'L-7', '--json'], { cwd: dir }),
      );
      expect(l7).toEqual([expect.objectContaining({ id: abandonedId, license_id: 11, license_code: 'L-7', status: 'abandoned' })]);
      const l1Text = await runCli(['deliveries', 'list', '--license', 'L-1'], { cwd: dir });
      expect(l1Text.code).toBe(0);
      expect(l1Text.stdout.trim().split('\n')).toEqual([
        expect.stringMatching(/^ID\s+EVENT\s+LICENSE/),
        expect.stringMatching(/^\d+\s+license\.expiring\s+L-1\s+delivered\s/),
      ]);
      const l1Abandoned = json<unknown[]>(await runCli(['deliveries', 'list', '--license', 'L-1', '--status', 'abandoned', '--json'], { cwd: dir }));
      expect(l1Abandoned).toEqual([]);

      // A code that names no license matches nothing, exactly as with our own licenses table.
      const own = tempDir();
      expect((await runCli(['migrate'], { cwd: own })).code).toBe(0);
      for (const cwd of [dir, own]) {
        expect(await runCli(['deliveries', 'list', '--license', 'NO-SUCH'], { cwd })).toMatchObject({ code: 0, stdout: 'No deliveries match.\n', stderr: '' });
        expect(await runCli(['deliveries', 'list', '--license', 'NO-SUCH', '--json'], { cwd })).toMatchObject({ code: 0, stdout: '[]\n', stderr: '' });
      }

      // show, in text and --json.
      const shown = await runCli(['deliveries', 'show', String(abandonedId)], { cwd: dir });
      expect(shown.code).toBe(0);
      expect(shown.stdout).toContain(`Delivery ${abandonedId}: license.expiring for L-7\n`);
      const shownJson = json<{ delivery: { license_code: string; license_id: number }; attempts: unknown[] }>(
        await runCli(['deliveries', 'show', String(abandonedId), '--json'], { cwd: dir }),
      );
      expect(shownJson.delivery).toMatchObject({ license_id: 11, license_code: 'L-7' });
      expect(shownJson.attempts).toHaveLength(2);

      // retry names it too: what a dry run would re-send (and that it would be superseded, as the re-send below finds).
      const dryRun = await runCli(['deliveries', 'retry', '--abandoned', '--dry-run'], { cwd: dir, env });
      expect(dryRun.code).toBe(0);
      expect(dryRun.stdout).toContain(`#${abandonedId} license.expiring L-7 (would be superseded: the license expired at `);
      // A re-send reads Botble's license again: on the real clock L-7's expiry has passed, so its warning is superseded.
      const checked = await runCli(['deliveries', 'retry', '--abandoned', '--json'], { cwd: dir, env });
      expect(checked.code).toBe(0);
      expect(JSON.parse(checked.stdout)).toMatchObject({
        delivered: 0,
        abandoned: 0,
        superseded: 1,
        outcomes: [
          {
            id: abandonedId,
            status: 'superseded',
            reason: expect.stringMatching(/^the license expired at 2025-01-\d\dT\d\d:00:00Z, before this warning could be sent$/),
          },
        ],
      });
      // --force sends it as recorded, without the check.
      const retried = await runCli(['deliveries', 'retry', String(abandonedId), '--force', '--json'], { cwd: dir, env });
      expect(retried.code).toBe(3);
      const again = JSON.parse(retried.stdout) as { selected: Array<{ licenseCode: string }>; abandonedDeliveries: Array<{ licenseCode: string }> };
      expect(again.selected).toEqual([expect.objectContaining({ id: abandonedId, licenseCode: 'L-7' })]);
      expect(again.abandonedDeliveries).toEqual([expect.objectContaining({ id: abandonedId, licenseCode: 'L-7' })]);
      expect(retried.stderr).toContain(`#${abandonedId} L-7 license.expiring after 4 attempts: HTTP 500`);

      expect(await botble.checksum()).toBe(before);
    } finally {
      await failing.close();
    }
  });

  test("settings come from Botble's settings table (an empty secret or URL is none), set/unset and licenses import refuse, a renewal in Botble reads as active", async () => {
    const dir = botbleDir('lmy_', { webhooks: { url: 'https://config.example/hooks', secret: 'from-config' } });
    expect(await runCli(['migrate'], { cwd: dir })).toMatchObject({ code: 0, stderr: '' });
    const settings = json<Array<{ key: string; value: unknown; source: string; origin?: string }>>(await runCli(['settings', 'list', '--json'], { cwd: dir }));
    const byKey = new Map(settings.map((setting) => [setting.key, setting]));
    expect(byKey.get('webhooks-enabled')).toMatchObject({ value: true, source: 'botble', origin: 'Botble setting lm_enable_webhooks' });
    // Botble's row outranks the config file.
    expect(byKey.get('webhook-url')).toMatchObject({ value: receiver.url, source: 'botble' });
    expect(byKey.get('webhook-secret')).toMatchObject({ value: '********', source: 'botble' });
    expect(byKey.get('warning-days')).toMatchObject({ value: [7, 1], source: 'botble' });
    expect(byKey.get('time-zone')).toMatchObject({ source: 'default' });
    // Said once, in human output: the layer and the row it came from.
    const dryRun = await runCli(['process-expirations', '--dry-run', '--now', NOW], { cwd: dir });
    expect(dryRun.stdout).toContain(`target: ${receiver.url} (from Botble setting lm_webhook_url)`);
    // The environment still outranks Botble.
    const env = json<Array<{ key: string; source: string }>>(
      await runCli(['settings', 'list', '--json'], { cwd: dir, env: { LICENSE_MANAGER_WEBHOOK_URL: 'https://env.example/hooks' } }),
    );
    expect(env.find((setting) => setting.key === 'webhook-url')).toMatchObject({ source: 'env' });

    for (const args of [
      ['settings', 'set', 'webhook-url', 'https://elsewhere.example/hooks'],
      ['settings', 'unset', 'webhook-secret'],
      ['settings', 'set', 'warning-days', '14'],
    ]) {
      const refused = await runCli(args, { cwd: dir });
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain('License Manager → Settings → General');
      expect(refused.stdout).toBe('');
    }
    // The business time zone is not a Botble setting: it is kept in our own settings table.
    expect((await runCli(['settings', 'set', 'time-zone', 'UTC'], { cwd: dir })).code).toBe(0);

    fs.writeFileSync(path.join(dir, 'more.csv'), 'license_code,expires_at\nL-NEW,2030-01-01\n');
    const imported = await runCli(['licenses', 'import', 'more.csv'], { cwd: dir });
    expect(imported.code).toBe(2);
    expect(imported.stderr).toMatch(/Botble's lm_licenses/);

    // send-test-event --license reads the Botble row.
    const from = receiver.requests.length;
    const sample = await runCli(['send-test-event', '--license', 'L-FAR', '--event', 'license.expired', '--json'], { cwd: dir });
    expect(sample.code).toBe(0);
    expect(JSON.parse(receiver.requests[from]!.body.toString()).payload).toMatchObject({
      license_id: 19,
      license_code: 'L-FAR',
      product_reference_id: 'Plain Product',
      customer_id: '12',
    });

    expect(await botble.checksum()).toBe(before);

    // The run marks L-EXP expired (in our table); an admin then renews it in Botble: it reads as active again.
    expect((await runCli(['process-expirations', '--now', NOW, '--json'], { cwd: dir })).code).toBe(0);
    const status = async () =>
      json<Array<{ license_code: string; status: string }>>(await runCli(['licenses', 'list', '--json'], { cwd: dir })).find(
        (row) => row.license_code === 'L-EXP',
      )?.status;
    expect(await status()).toBe('expired');
    await botble.exec("update lm_licenses set expires_at = '2026-01-23' where license_code = 'L-EXP'");
    expect(await status()).toBe('active');

    // An admin who empties the secret sends unsigned requests, whatever the config file says.
    await botble.exec("update settings set value = '' where " + (dialect === 'mysql' ? '`key`' : '"key"') + " = 'lm_webhook_secret'");
    const unsignedFrom = receiver.requests.length;
    expect((await runCli(['send-test-event'], { cwd: dir })).code).toBe(0);
    expect(receiver.requests[unsignedFrom]!.headers['x-webhook-signature']).toBeUndefined();
    // An emptied URL with webhooks on is a configuration to fix in Botble's admin.
    await botble.exec("update settings set value = '' where " + (dialect === 'mysql' ? '`key`' : '"key"') + " = 'lm_webhook_url'");
    const noUrl = await runCli(['process-expirations', '--now', NOW], { cwd: dir });
    expect(noUrl.code).toBe(2);
    expect(noUrl.stderr).toContain('set webhook-url in the Botble admin (License Manager → Settings → General)');
  });
});

describe('Botble mode configuration', () => {
  test('licenses.source "botble" without a table prefix of our own, an unknown source, or a database without Botble\'s tables is exit 2 naming what to fix', async () => {
    const dir = tempDir();
    const config = path.join(dir, 'license-manager.config.json');
    fs.writeFileSync(config, JSON.stringify({ licenses: { source: 'botble' } }));
    const noPrefix = await runCli(['licenses', 'list'], { cwd: dir });
    expect(noPrefix.code).toBe(2);
    expect(noPrefix.stderr).toMatch(/database\.tablePrefix/);
    fs.writeFileSync(config, JSON.stringify({ database: { tablePrefix: 'lm_' }, licenses: { source: 'botble' } }));
    const samePrefix = await runCli(['licenses', 'list'], { cwd: dir });
    expect(samePrefix.code).toBe(2);
    expect(samePrefix.stderr).toMatch(/database\.tablePrefix.*botble\.tablePrefix "lm_"/s);
    fs.writeFileSync(config, JSON.stringify({ licenses: { source: 'woocommerce' } }));
    const unknown = await runCli(['licenses', 'list'], { cwd: dir });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/licenses\.source/);
    expect(fs.readdirSync(dir)).toEqual(['license-manager.config.json']);

    // A database without Botble's tables (the wrong database, or the wrong botble.tablePrefix) is named as such.
    fs.writeFileSync(config, JSON.stringify({ database: { tablePrefix: 'lmw_' }, licenses: { source: 'botble' } }));
    fs.writeFileSync(path.join(dir, 'license-manager.sqlite'), '', { mode: 0o600 });
    const notBotble = await runCli(['licenses', 'list'], { cwd: dir });
    expect(notBotble.code).toBe(2);
    expect(notBotble.stderr).toMatch(/Botble mode reads the tables settings.*botble\.tablePrefix/s);
  });
});
