import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, test } from '@jest/globals';
import { childEnv, runCli } from '../helpers/cli.js';
import { ROOT } from '../helpers/readme.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { workspace } from '../helpers/workspace.js';
import { finishRun, startRun } from '../../src/storage/runs.repository.js';
import { writeSetting } from '../../src/storage/settings.repository.js';

let receiver: Receiver | undefined;
afterEach(async () => {
  await receiver?.close();
  receiver = undefined;
});

const HOUR = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');

/** A project folder with one license that expires tomorrow (due now: a 1- or 7-day notice) and one lifetime license. */
async function dueProject(config: Record<string, unknown> = {}) {
  const ws = workspace(config);
  await ws.seed([
    {
      license_code: 'DUE-1',
      product_id: 'P',
      product_name: 'Product',
      customer_id: 'C',
      email: 'a@example.com',
      status: 'active',
      expires_at: iso(Date.now() + 30 * HOUR),
      updates_until: null,
    },
    {
      license_code: 'LIFETIME-1',
      product_id: 'P',
      product_name: 'Product',
      customer_id: 'C',
      email: 'b@example.com',
      status: 'active',
      expires_at: null,
      updates_until: null,
    },
  ]);
  return ws;
}

describe('process-expirations for the operator', () => {
  test('--quiet with webhooks disabled and events due: a warning on stderr naming the layer and the fix; nothing recorded', async () => {
    const ws = await dueProject();
    const run = await runCli(['process-expirations', '--quiet'], { cwd: ws.dir });
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe(
      'warning: webhooks are disabled (webhooks-enabled is false, from default) and 1 event is due: nothing was recorded or sent. Enable them with "license-manager settings set webhooks-enabled true" (see "license-manager status").\n',
    );
    const list = await runCli(['deliveries', 'list', '--json'], { cwd: ws.dir });
    expect(JSON.parse(list.stdout)).toEqual([]);
    // Nothing due: nothing to say.
    const lifetime = workspace();
    await lifetime.seed([
      {
        license_code: 'FOREVER',
        product_id: null,
        product_name: null,
        customer_id: null,
        email: null,
        status: 'active',
        expires_at: null,
        updates_until: null,
      },
    ]);
    expect(await runCli(['process-expirations', '--quiet'], { cwd: lifetime.dir })).toMatchObject({ code: 0, stdout: '', stderr: '' });
    // No licenses at all (the job pointed at a new, empty database): that is said too.
    const empty = workspace();
    const none = await runCli(['process-expirations', '--quiet'], { cwd: empty.dir });
    expect(none).toMatchObject({ code: 0, stdout: '' });
    expect(none.stderr).toBe(
      `warning: the database ${empty.databaseLocation} holds no licenses, so there is nothing to check. Load them with "license-manager licenses import <file>", or point database.filename / LICENSE_MANAGER_DB at the database that has them.\n`,
    );
  });

  test('every run names its target, masked, and the layer that set it, in text and --json', async () => {
    receiver = await startReceiver();
    const withCredentials = receiver.url.replace('http://', 'http://ops:hunter2@');
    const ws = await dueProject({ webhooks: { enabled: true, url: 'http://file.example/hook' } });
    await runCli(['settings', 'set', 'webhook-url', withCredentials], { cwd: ws.dir });
    const masked = receiver.url.replace('http://', 'http://ops:****@');
    const text = await runCli(['process-expirations'], { cwd: ws.dir });
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(
      new RegExp(`^sending 1 event to ${masked.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} \\(from settings\\): license\\.expiring at \\d days?: 1$`, 'm'),
    );
    expect(text.stdout).toContain(`  webhooks: enabled (from config ${ws.configFile}); target: ${masked} (from settings)`);
    expect(text.stdout + text.stderr).not.toContain('hunter2');
    const json = await runCli(['process-expirations', '--json'], { cwd: ws.dir });
    expect(JSON.parse(json.stdout).target).toEqual({ url: masked, urlSource: 'settings', enabled: true, enabledSource: `config ${ws.configFile}` });
    expect(json.stdout).not.toContain('hunter2');
  });
});

describe('status', () => {
  test('exit 0 after a good run; text and --json name the config, database, target, zone, counts and the runs', async () => {
    receiver = await startReceiver();
    const ws = await dueProject({ webhooks: { enabled: true, url: receiver.url } });
    const run = await runCli(['process-expirations', '--quiet'], { cwd: ws.dir });
    expect(run).toMatchObject({ code: 0, stdout: '', stderr: '' });

    const text = await runCli(['status'], { cwd: ws.dir });
    expect(text.code).toBe(0);
    expect(text.stderr).toBe('');
    const lines = text.stdout.split('\n');
    expect(lines.slice(0, 7)).toEqual([
      `config file  ${ws.configFile}`,
      `database     ${ws.databaseLocation}`,
      `webhooks     enabled (from config ${ws.configFile})`,
      `webhook URL  ${receiver.url} (from config ${ws.configFile})`,
      'time zone    UTC (from default)',
      'licenses     2 (active 2)',
      'deliveries   1 (delivered 1)',
    ]);
    expect(text.stdout).toMatch(/^ {2}\d{4}-\d\d-\d\dT\S+Z {2}\d{4}-\d\d-\d\dT\S+Z {2}succeeded {2}0 {5}1 {9}1 {10}0$/m);
    expect(lines.at(-2)).toMatch(/^OK: the last run finished at \S+ and succeeded \(exit 0\)$/);

    const json = await runCli(['status', '--json'], { cwd: ws.dir });
    expect(json.code).toBe(0);
    const status = JSON.parse(json.stdout);
    expect(status).toMatchObject({
      configFile: ws.configFile,
      database: ws.databaseLocation,
      webhooks: { url: receiver.url, enabled: true },
      timeZone: { value: 'UTC', source: 'default' },
      licenses: { total: 2, byStatus: { active: 2 } },
      deliveries: { total: 1, byStatus: { delivered: 1 } },
      settingProblems: [],
      health: { exitCode: 0 },
    });
    expect(status.runs).toHaveLength(1);
    expect(status.runs[0]).toMatchObject({ status: 'succeeded', exitCode: 0, recorded: 1, delivered: 1, abandoned: 0, error: null });
    // A dry run changes nothing, not even the runs table.
    await runCli(['process-expirations', '--dry-run'], { cwd: ws.dir });
    expect(JSON.parse((await runCli(['status', '--json'], { cwd: ws.dir })).stdout).runs).toHaveLength(1);
  });

  test('exit 1 when no run finished in the last 26 hours while licenses exist (placed in time with --now), and when none ever ran', async () => {
    const ws = await dueProject();
    const never = await runCli(['status'], { cwd: ws.dir });
    expect(never.code).toBe(1);
    expect(never.stdout).toContain(
      'FAILING: no process-expirations run finished in the last 26 hours (none has ever finished): check the cron job or timer (exit 1)',
    );
    await runCli(['process-expirations', '--quiet'], { cwd: ws.dir });
    expect((await runCli(['status'], { cwd: ws.dir })).code).toBe(0);
    expect((await runCli(['status', '--now', iso(Date.now() + 25 * HOUR)], { cwd: ws.dir })).code).toBe(0);
    const stale = await runCli(['status', '--quiet', '--now', iso(Date.now() + 27 * HOUR)], { cwd: ws.dir });
    expect(stale.code).toBe(1);
    expect(stale.stdout).toBe('');
    expect(stale.stderr).toMatch(
      /^warning: no process-expirations run finished in the last 26 hours \(the last one finished at \S+Z\): check the cron job or timer\n$/,
    );
    // No licenses, no runs: a new installation is not failing.
    const fresh = workspace();
    await runCli(['migrate'], { cwd: fresh.dir });
    expect((await runCli(['status'], { cwd: fresh.dir })).code).toBe(0);
    // No database at all (a config pointing elsewhere): exit 2, and status creates none.
    const nowhere = workspace();
    fs.rmSync(nowhere.databaseLocation);
    const missing = await runCli(['status'], { cwd: nowhere.dir });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe(
      `error: Database ${nowhere.databaseLocation} does not exist (database.filename in ${nowhere.configFile} names it); nothing was created. Create it with "license-manager migrate" (or "license-manager licenses import <file>"), or, if the licenses are in another database, run this command with the -c or LICENSE_MANAGER_DB that points at it.\n`,
    );
    expect(fs.existsSync(nowhere.databaseLocation)).toBe(false);
  });

  test('exit 3 when the last run abandoned deliveries, 1 when it failed', async () => {
    receiver = await startReceiver(() => 410);
    const ws = await dueProject({ webhooks: { enabled: true, url: receiver.url } });
    expect((await runCli(['process-expirations', '--quiet'], { cwd: ws.dir })).code).toBe(3);
    const abandoned = await runCli(['status', '--json'], { cwd: ws.dir });
    expect(abandoned.code).toBe(3);
    expect(JSON.parse(abandoned.stdout).runs[0]).toMatchObject({ status: 'abandoned', exitCode: 3, recorded: 1, delivered: 0, abandoned: 1 });
    const text = await runCli(['status'], { cwd: ws.dir });
    expect(text.code).toBe(3);
    expect(text.stdout).toMatch(
      /ATTENTION: 1 delivery abandoned and not re-sent \(the last run, \S+, abandoned 1 delivery\): see "license-manager deliveries list --status abandoned", re-send with "license-manager deliveries retry --abandoned" \(exit 3\)/,
    );

    // A run that failed after it started (the database gone from under it, say), as the runs table keeps it.
    const later = iso(Date.now() + 1000);
    await ws.run(async ({ db }) => {
      await startRun(db, { id: 'failed-run', command: 'process-expirations', startedAt: later });
      await finishRun(db, 'failed-run', { finishedAt: later, status: 'failed', exitCode: 1, recorded: 0, delivered: 0, abandoned: 0, error: 'disk I/O error' });
    });
    const failed = await runCli(['status'], { cwd: ws.dir });
    expect(failed.code).toBe(1);
    expect(failed.stdout).toContain(`FAILING: the last run (${later}) failed with exit code 1: disk I/O error (exit 1)`);
  });

  test('exit 1 with the key and the fix when a stored setting is invalid (the next run would refuse to start)', async () => {
    const ws = await dueProject();
    await runCli(['process-expirations', '--quiet'], { cwd: ws.dir });
    await ws.run(({ db }) => writeSetting(db, 'warning-days', 'seven', '2025-01-01T00:00:00Z'));
    const status = await runCli(['status'], { cwd: ws.dir });
    expect(status.code).toBe(1);
    expect(status.stdout).toContain('stored setting warning-days is invalid');
    expect(status.stdout).toContain('settings set warning-days <value>');
  });
});

describe('settings for the operator', () => {
  test('a bad stored row locks nothing out: list shows it as invalid, get shows it, set and unset fix it; other commands exit 2 with the key and the fix', async () => {
    const ws = await dueProject();
    await ws.run(({ db }) => writeSetting(db, 'warning-days', 'seven', '2025-01-01T00:00:00Z'));
    const before = fs.readFileSync(ws.databaseLocation);

    const run = await runCli(['process-expirations'], { cwd: ws.dir });
    expect(run.code).toBe(2);
    expect(run.stderr).toBe(
      'error: Invalid stored setting warning-days: "seven" is not a comma-separated list of whole days (e.g. 7,1): "seven" is not a whole number. Fix it with "license-manager settings set warning-days <value>" or remove it with "license-manager settings unset warning-days".\n',
    );
    expect(fs.readFileSync(ws.databaseLocation).equals(before)).toBe(true);

    const list = await runCli(['settings', 'list'], { cwd: ws.dir });
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^warning-days +seven +settings; INVALID, not used: "seven" is not a comma-separated list/m);
    expect(list.stdout).toContain(
      'Fix warning-days with "license-manager settings set warning-days <value>" or "license-manager settings unset warning-days".',
    );
    const listJson = JSON.parse((await runCli(['settings', 'list', '--json'], { cwd: ws.dir })).stdout);
    expect(listJson.find((setting: { key: string }) => setting.key === 'warning-days')).toMatchObject({
      value: 'seven',
      source: 'settings',
      invalid: expect.stringContaining('"seven"'),
    });
    const get = await runCli(['settings', 'get', 'warning-days'], { cwd: ws.dir });
    expect(get).toMatchObject({ code: 0, stdout: 'seven\n' });
    expect(get.stderr).toContain('warning: the stored warning-days is invalid and not used');

    expect(await runCli(['settings', 'set', 'warning-days', '7,1'], { cwd: ws.dir })).toMatchObject({ code: 0, stdout: 'warning-days = 7,1\n' });
    expect((await runCli(['process-expirations', '--dry-run'], { cwd: ws.dir })).code).toBe(0);
    await ws.run(({ db }) => writeSetting(db, 'time-zone', 'Mars/Olympus', '2025-01-01T00:00:00Z'));
    expect((await runCli(['licenses', 'list'], { cwd: ws.dir })).code).toBe(2);
    expect(await runCli(['settings', 'unset', 'time-zone'], { cwd: ws.dir })).toMatchObject({ code: 0, stdout: 'time-zone unset\n' });
    expect((await runCli(['licenses', 'list'], { cwd: ws.dir })).code).toBe(0);
  });

  test('get webhook-secret --reveal prints the secret; get and list never do; --json list gives JSON types and flags what a stored value overrides', async () => {
    const ws = workspace({ webhooks: { url: 'https://file.example/hook', enabled: false } });
    await runCli(['settings', 'set', 'webhook-secret', 'the-real-secret'], { cwd: ws.dir });
    await runCli(['settings', 'set', 'webhook-url', 'https://stored.example/hook'], { cwd: ws.dir });
    expect(await runCli(['settings', 'get', 'webhook-secret', '--reveal'], { cwd: ws.dir })).toMatchObject({
      code: 0,
      stdout: 'the-real-secret\n',
      stderr: '',
    });
    expect(await runCli(['settings', 'get', 'webhook-secret', '--reveal', '--quiet'], { cwd: ws.dir })).toMatchObject({ code: 0, stdout: 'the-real-secret\n' });
    expect(await runCli(['settings', 'get', 'webhook-secret'], { cwd: ws.dir })).toMatchObject({ code: 0, stdout: '********\n' });
    const revealedJson = JSON.parse((await runCli(['settings', 'get', 'webhook-secret', '--reveal', '--json'], { cwd: ws.dir })).stdout);
    expect(revealedJson.value).toBe('the-real-secret');
    // The secret from the environment is revealed too: it is what deliveries are signed with.
    const env = await runCli(['settings', 'get', 'webhook-secret', '--reveal'], { cwd: ws.dir, env: { LICENSE_MANAGER_WEBHOOK_SECRET: 'from-env' } });
    expect(env.stdout).toBe('from-env\n');

    const list = await runCli(['settings', 'list'], { cwd: ws.dir });
    expect(list.stdout).not.toContain('the-real-secret');
    expect(list.stdout).toMatch(
      new RegExp(
        `^webhook-url +https://stored\\.example/hook +settings; overrides webhooks\\.url in ${ws.configFile.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`,
        'm',
      ),
    );
    const json = await runCli(['settings', 'list', '--json'], { cwd: ws.dir });
    expect(json.stdout).not.toContain('the-real-secret');
    const settings = Object.fromEntries((JSON.parse(json.stdout) as Array<{ key: string }>).map((setting) => [setting.key, setting]));
    expect(settings['webhooks-enabled']).toMatchObject({ value: false, source: 'config' });
    expect(settings['warning-days']).toMatchObject({ value: [7, 1], source: 'default' });
    expect(settings['webhook-url']).toMatchObject({ value: 'https://stored.example/hook', source: 'settings', overrides: `webhooks.url in ${ws.configFile}` });
  });
});

describe('deliveries list and migrate', () => {
  test('deliveries list says when it stops at 50; --all and --limit; --json gives every row unless --limit is given', async () => {
    receiver = await startReceiver();
    const ws = workspace({ webhooks: { enabled: true, url: receiver.url } });
    const soon = iso(Date.now() + 30 * HOUR);
    await ws.seed(
      Array.from({ length: 75 }, (_, index) => ({
        license_code: `MANY-${index}`,
        product_id: 'P',
        product_name: 'Product',
        customer_id: 'C',
        email: null,
        status: 'active',
        expires_at: soon,
        updates_until: null,
      })),
    );
    expect((await runCli(['process-expirations', '--quiet'], { cwd: ws.dir })).code).toBe(0);
    const text = await runCli(['deliveries', 'list'], { cwd: ws.dir });
    const lines = text.stdout.trim().split('\n');
    expect(lines).toHaveLength(1 + 50 + 1);
    expect(lines.at(-1)).toBe('showing 50 of 75 (--limit <n> for more, --all for every one)');
    const all = await runCli(['deliveries', 'list', '--all'], { cwd: ws.dir });
    expect(all.stdout.trim().split('\n')).toHaveLength(1 + 75);
    const limited = await runCli(['deliveries', 'list', '--limit', '10', '--status', 'delivered'], { cwd: ws.dir });
    expect(limited.stdout.trim().split('\n').at(-1)).toBe('showing 10 of 75 (--limit <n> for more, --all for every one)');
    expect(JSON.parse((await runCli(['deliveries', 'list', '--json'], { cwd: ws.dir })).stdout)).toHaveLength(75);
    expect(JSON.parse((await runCli(['deliveries', 'list', '--json', '--limit', '5'], { cwd: ws.dir })).stdout)).toHaveLength(5);
    const both = await runCli(['deliveries', 'list', '--all', '--limit', '5'], { cwd: ws.dir });
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("option '--all' cannot be used with option '--limit <n>'");
  });

  test('migrate names the migrations it applied, then says the schema was already up to date', async () => {
    const ws = workspace();
    const first = await runCli(['migrate'], { cwd: ws.dir });
    expect(first).toMatchObject({
      code: 0,
      stdout: `Database ${ws.databaseLocation}: applied 0001_initial, 0002_delivery_schedule, 0003_runs, 0004_botble_license_states, 0005_event_instants, 0006_big_license_ids, 0007_long_texts, 0008_endpoints, 0009_retries, 0010_monitoring, 0011_delivery_totals; it is up to date.\n`,
    });
    const again = await runCli(['migrate', '--json'], { cwd: ws.dir });
    expect(JSON.parse(again.stdout)).toEqual({ database: ws.databaseLocation, applied: [], upToDate: true });
    expect((await runCli(['migrate'], { cwd: ws.dir })).stdout).toBe(`Database ${ws.databaseLocation} was already up to date.\n`);
    expect(fs.readdirSync(path.dirname(ws.databaseLocation)).filter((name) => name.endsWith('.sqlite'))).toEqual(['test.sqlite']);
  });
});

describe('small things an operator trips over', () => {
  test('send-test-event: a refused connection says so, and a response body is printed once', async () => {
    receiver = await startReceiver(() => ({ status: 422, body: '{"error":"unknown license"}' }));
    const ws = workspace();
    const answered = await runCli(['send-test-event', '--url', receiver.url], { cwd: ws.dir });
    expect(answered.code).toBe(3);
    expect(answered.stdout.split('unknown license')).toHaveLength(2);
    expect(answered.stdout).toMatch(/^attempt 1: HTTP 422 in \d+ ms\n {2}response: \{"error":"unknown license"\}\nabandoned after 1 attempt$/m);
    const port = receiver.port;
    await receiver.close();
    receiver = undefined;
    const refused = await runCli(['send-test-event', '--url', `http://127.0.0.1:${port}/webhook`], { cwd: ws.dir });
    expect(refused.code).toBe(3);
    expect(refused.stdout).toContain(`attempt 1: connection refused by 127.0.0.1:${port}: nothing is listening there (is the receiver running, on this port?)`);
    expect(refused.stdout).not.toContain('no response');
  });

  test('--version --json prints a JSON document', async () => {
    const version = await runCli(['--version', '--json'], { cwd: workspace().dir });
    const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(version).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(version.stdout)).toEqual({ version: manifest.version });
  });

  test('the demo removes its temp folder unless --keep is given', async () => {
    const demo = spawnSync(process.execPath, [path.join(ROOT, 'dist/scripts/demo.js')], { cwd: ROOT, env: childEnv(), encoding: 'utf8', timeout: 60_000 });
    expect(demo.status).toBe(0);
    const database = /^Demo database: (\S+)$/m.exec(demo.stdout)![1]!;
    expect(demo.stdout).toContain('Demo finished');
    expect(fs.existsSync(path.dirname(database))).toBe(false);
  }, 70_000);
});
