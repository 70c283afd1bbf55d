// The heartbeat wired into the cron job: start and end pings around a real run, the exit status in the URL, the summary as the body, bounded failures that change nothing, and `status` showing the last ping.
import fs from 'node:fs';
import path from 'node:path';
import { expect, test } from '@jest/globals';
import { runCli } from '../helpers/cli.js';
import { closedPortUrl, type Receiver } from '../helpers/receiver.js';
import { tempDir } from '../helpers/temp-dir.js';
import { aLicense, forEachDialect, receiverFor, type Workspace, workspace } from '../helpers/workspace.js';

const NOW = '2025-01-23T10:00:00Z';
const CHECK = '5e1d0a4c-93a2-4e55-9e5f-0d6a2f1b7c11';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

async function seeded(ws: Workspace): Promise<void> {
  fs.chmodSync(ws.configFile, 0o600);
  await ws.ready();
  await ws.seed([aLicense({ license_code: 'EXP-SECRET-CODE', email: 'alice@example.com', expires_at: '2025-01-22T10:00:00Z' })]);
}

const base = (r: Receiver) => `${new URL(r.url).origin}/`;
const paths = (r: Receiver) => r.requests.map((request) => new URL(request.url, 'http://x').pathname);
const rids = (r: Receiver) => r.requests.map((request) => new URL(request.url, 'http://x').searchParams.get('rid'));

forEachDialect('heartbeat pings around a run', ({ workspace: dialectWorkspace }) => {
  test('Healthchecks: /start, then the URL itself on exit 0 with the same run id and the summary as the body; status shows it', async () => {
    const [hooks, pings] = [await receiverFor(), await receiverFor()];
    const ws = dialectWorkspace({ webhooks: { enabled: true, url: hooks.url, secret: 's3cret' }, monitoring: { ping: `${base(pings)}ping/${CHECK}` } });
    await seeded(ws);
    const run = await ws.cli(['process-expirations', '--now', NOW]);
    expect([run.code, run.stderr]).toEqual([0, '']);
    expect(hooks.requests).toHaveLength(1);
    expect(paths(pings)).toEqual([`/ping/${CHECK}/start`, `/ping/${CHECK}`]);
    const [rid, endRid] = rids(pings);
    expect(rid).toMatch(UUID);
    expect(endRid).toBe(rid);
    // The run id is the run's own, as `runs` has it.
    expect((await ws.rows<{ id: string }>('select id from runs')).map((row) => row.id)).toEqual([rid]);
    const body = pings.requests[1]!.body.toString('utf8');
    expect(body).toMatch(/^license-manager process-expirations succeeded \(exit 0\) in \d+\.\d s: 1 event recorded, 1 delivered, 0 abandoned$/);
    // No license data in any ping.
    for (const request of pings.requests) expect(`${request.url} ${request.body.toString('utf8')}`).not.toMatch(/EXP-SECRET-CODE|alice@example\.com/);

    const status = await ws.cli(['status', '--now', NOW, '--json']);
    const shown = JSON.parse(status.stdout).monitoring;
    expect(shown.ping).toEqual({ target: `${base(pings)}ping/****`, kind: 'healthchecks' });
    expect(shown.lastPing.start).toMatchObject({ phase: 'start', ok: true, statusCode: 200, attempts: 1, error: null });
    expect(shown.lastPing.end).toMatchObject({ phase: 'end', ok: true, statusCode: 200, attempts: 1, error: null });
    const text = await ws.cli(['status', '--now', NOW]);
    expect(text.stdout).toMatch(/heartbeat\s+http:\/\/127\.0\.0\.1:\d+\/ping\/\*\*\*\* \(healthchecks\)/);
    expect(text.stdout).toMatch(/last end ping\s+ok \(HTTP 200\)/);
    expect(text.stdout).not.toContain(CHECK);
    // Both pings went to the configured check (the start one with /start added): no "(to <url>)".
    expect(text.stdout).toMatch(/last start ping\s+ok \(HTTP 200\) at /);
    expect(text.stdout).not.toContain('(to ');
  });
});

test('an abandoned delivery: the end ping carries the exit status (/3); a refused run pings /2', async () => {
  const [hooks, pings] = [await receiverFor(() => 500), await receiverFor()];
  const ws = workspace({ webhooks: { enabled: true, url: hooks.url, retryDelaysMs: [] }, monitoring: { ping: `${base(pings)}${CHECK}` } });
  await seeded(ws);
  const run = await ws.cli(['process-expirations', '--now', NOW]);
  expect(run.code).toBe(3);
  expect(paths(pings)).toEqual([`/${CHECK}/start`, `/${CHECK}/3`]);
  expect(pings.requests[1]!.body.toString('utf8')).toContain('abandoned (exit 3)');

  // Webhooks enabled with no URL: refused (exit 2), recorded, and the heartbeat hears of it.
  ws.configure({ webhooks: { enabled: true }, monitoring: { ping: `${base(pings)}${CHECK}` } });
  const refused = await ws.cli(['process-expirations', '--now', NOW]);
  expect(refused.code).toBe(2);
  expect(paths(pings).slice(2)).toEqual([`/${CHECK}/2`]);
  expect(pings.requests[2]!.body.toString('utf8')).toContain('refused (exit 2)');
});

test('status says "(to <url>)" only for a ping to another check: not for /start or the exit status added to the one it reads', async () => {
  const [hooks, pings] = [await receiverFor(() => 500), await receiverFor()];
  const config = (ping: string) => ({ webhooks: { enabled: true, url: hooks.url, retryDelaysMs: [] }, monitoring: { ping } });
  const ws = workspace(config(`${base(pings)}${CHECK}`));
  await seeded(ws);
  expect((await ws.cli(['process-expirations', '--now', NOW])).code).toBe(3);
  expect(paths(pings)).toEqual([`/${CHECK}/start`, `/${CHECK}/3`]);
  const shown = await ws.cli(['status', '--now', NOW]);
  expect(shown.stdout).toMatch(/last start ping\s+ok \(HTTP 200\) at /);
  expect(shown.stdout).toMatch(/last end ping\s+ok \(HTTP 200\) at /);

  // A ping URL written with a trailing slash: the segment goes after the path, the slash dropped.
  ws.configure(config(`${base(pings)}${CHECK}/`));
  await ws.seed([aLicense({ expires_at: '2025-01-22T12:00:00Z' })]);
  expect((await ws.cli(['process-expirations', '--now', '2025-01-23T12:00:00Z'])).code).toBe(3);
  expect(paths(pings).slice(2)).toEqual([`/${CHECK}/start`, `/${CHECK}/3`]);
  expect((await ws.cli(['status', '--now', NOW])).stdout).not.toContain('(to ');

  // Another check on the same host (status reading another config than the run's): said, on both lines.
  ws.configure(config(`${base(pings)}other-check`));
  const elsewhere = (await ws.cli(['status', '--now', NOW])).stdout;
  expect(elsewhere).toMatch(/last start ping\s+ok \(HTTP 200\) \(to http:\/\/127\.0\.0\.1:\d+\/\*\*\*\*\/start\) at /);
  expect(elsewhere).toMatch(/last end ping\s+ok \(HTTP 200\) \(to http:\/\/127\.0\.0\.1:\d+\/\*\*\*\*\/3\) at /);
});

test('a ping that fails is one warning per ping on stderr, retried once, and the exit status stands', async () => {
  const hooks = await receiverFor();
  const pings = await receiverFor(() => 503);
  const ws = workspace({ webhooks: { enabled: true, url: hooks.url }, monitoring: { ping: `${base(pings)}${CHECK}` } });
  await seeded(ws);
  const run = await ws.cli(['process-expirations', '--now', NOW, '--quiet']);
  expect(run.code).toBe(0);
  const warnings = run.stderr.trim().split('\n');
  expect(warnings).toEqual([
    expect.stringMatching(
      /^warning: the start ping to http:\/\/127\.0\.0\.1:\d+\/\*\*\*\*\/start failed after 2 attempts \(HTTP 503: status 503\); the run's exit status does not change\. Check monitoring\.ping in \/\S+\/license-manager\.config\.json\.$/,
    ),
    expect.stringMatching(/^warning: the end ping to .* failed after 2 attempts \(HTTP 503: status 503\)/),
  ]);
  expect(pings.requests).toHaveLength(4);
  const status = JSON.parse((await ws.cli(['status', '--now', NOW, '--json'])).stdout).monitoring.lastPing;
  expect(status.end).toMatchObject({ ok: false, statusCode: 503, attempts: 2, error: 'HTTP 503: status 503' });
});

test('a ping receiver that is down or hangs does not hold the run long (bounded), and nothing else changes', async () => {
  const hooks = await receiverFor();
  const ws = workspace({ webhooks: { enabled: true, url: hooks.url }, monitoring: { ping: `${await closedPortUrl()}${CHECK}` } });
  await seeded(ws);
  const down = await ws.cli(['process-expirations', '--now', NOW]);
  expect(down.code).toBe(0);
  expect(down.stderr.match(/^warning: the (start|end) ping/gm)).toHaveLength(2);
  expect(down.stderr).toContain('ECONNREFUSED');

  const hanging = await receiverFor(() => 'hang');
  ws.configure({ webhooks: { enabled: true, url: hooks.url }, monitoring: { ping: `${base(hanging)}${CHECK}` } });
  await ws.seed([aLicense({ expires_at: '2025-01-22T12:00:00Z' })]);
  const started = performance.now();
  const slow = await ws.cli(['process-expirations', '--now', '2025-01-23T12:00:00Z']);
  const elapsed = performance.now() - started;
  expect(slow.code).toBe(0);
  expect(slow.stderr).toMatch(/the end ping .* failed after 2 attempts \(timed out after \d+ ms\)/);
  // Each ping ends within 5 s (the start one beside the run, the end one waits for it): at most 10 s in all.
  expect(elapsed).toBeLessThan(12_000);
  expect(hooks.requests).toHaveLength(2);
}, 30_000);

test("Cronitor and Sentry through the ping setting; none turns the file's ping off", async () => {
  const [hooks, pings] = [await receiverFor(), await receiverFor()];
  const ws = workspace({ webhooks: { enabled: true, url: hooks.url }, monitoring: { ping: `${base(pings)}file-check` } });
  await seeded(ws);
  const set = await ws.cli(['settings', 'set', 'ping', `cronitor ${base(pings)}p/0123456789abcdef0123456789abcdef/license-job`]);
  expect([set.code, set.stderr]).toEqual([0, '']);
  // The setting is masked like the secret.
  expect((await ws.cli(['settings', 'get', 'ping'])).stdout.trim()).toBe('********');
  const run = await ws.cli(['process-expirations', '--now', NOW]);
  expect(run.code).toBe(0);
  const params = pings.requests.map((request) => Object.fromEntries(new URL(request.url, 'http://x').searchParams));
  expect(params).toEqual([
    { state: 'run', series: expect.stringMatching(UUID) },
    { state: 'complete', series: params[0]!.series, status_code: '0', message: expect.stringMatching(/succeeded \(exit 0\).*1 event recorded/) },
  ]);

  await ws.cli(['settings', 'set', 'ping', `sentry ${base(pings)}api/1/cron/license-job/examplePublicKey/`]);
  await ws.seed([aLicense({ expires_at: '2025-01-22T12:00:00Z' })]);
  expect((await ws.cli(['process-expirations', '--now', '2025-01-23T12:00:00Z'])).code).toBe(0);
  expect(pings.requests.slice(2).map((request) => new URL(request.url, 'http://x').searchParams.get('status'))).toEqual(['in_progress', 'ok']);
  // Their pings add only query parameters: the same check, no "(to <url>)"; a Cronitor check read instead is another.
  const shown = await ws.cli(['status', '--now', '2025-01-23T12:00:00Z']);
  expect(shown.stdout).toMatch(/last start ping\s+ok \(HTTP 200\) at /);
  expect(shown.stdout).toMatch(/last end ping\s+ok \(HTTP 200\) at /);
  const cronitor = await ws.cli(['settings', 'set', 'ping', `cronitor ${base(pings)}p/0123456789abcdef0123456789abcdef/license-job`]);
  expect(cronitor.code).toBe(0);
  expect((await ws.cli(['status', '--now', '2025-01-23T12:00:00Z'])).stdout).toMatch(
    /last end ping\s+ok \(HTTP 200\) \(to http:\/\/127\.0\.0\.1:\d+\/api\/1\/cron\/license-job\/\*\*\*\*\/\) at /,
  );

  expect((await ws.cli(['settings', 'set', 'ping', 'none'])).code).toBe(0);
  expect((await ws.cli(['process-expirations', '--now', '2025-01-23T13:00:00Z'])).code).toBe(0);
  expect(pings.requests).toHaveLength(4);
});

test('bad ping URLs: exit 2 naming monitoring.ping or the setting, nothing run or stored', async () => {
  const ws = workspace({});
  await seeded(ws);
  ws.configure({ monitoring: { ping: 'ftp://hc-ping.example/abc' } });
  const run = await ws.cli(['process-expirations', '--now', NOW]);
  expect(run.code).toBe(2);
  expect(run.stderr).toContain('monitoring.ping.url: the ping URL must use http: or https:, not ftp:');

  ws.configure({ monitoring: { ping: { url: 'https://hc-ping.com/abc', kind: 'pagerduty' } } });
  const kind = await ws.cli(['process-expirations', '--now', NOW]);
  expect(kind.code).toBe(2);
  expect(kind.stderr).toContain('monitoring.ping.kind: must be one of healthchecks, cronitor, sentry');

  ws.configure({});
  expect(await ws.rows('select id from runs')).toEqual([]);
  for (const [value, message] of [
    ['gopher://x.example/abc', 'Invalid value for setting ping: the ping URL must use http: or https:, not gopher:'],
    ['pagerduty https://x.example/abc', 'Invalid value for setting ping: "pagerduty" is not a ping service'],
    ['not a url', 'Invalid value for setting ping: "not a url" is not "<url>", "cronitor <url>", "sentry <url>" or none'],
  ] as const) {
    const set = await ws.cli(['settings', 'set', 'ping', value]);
    expect([set.code, set.stderr]).toEqual([2, expect.stringContaining(message)]);
  }
  expect(await ws.rows("select value from settings where key = 'ping'")).toEqual([]);
});

test('LICENSE_MANAGER_PING overrides the file and the setting; a bad one is exit 2 naming the variable', async () => {
  const [hooks, pings] = [await receiverFor(), await receiverFor()];
  const ws = workspace({ webhooks: { enabled: true, url: hooks.url }, monitoring: { ping: `${base(pings)}from-file` } });
  await seeded(ws);
  expect((await ws.cli(['settings', 'set', 'ping', `${base(pings)}from-setting`])).code).toBe(0);
  const run = await ws.cli(['process-expirations', '--now', NOW], { env: { LICENSE_MANAGER_PING: `${base(pings)}from-env` } });
  expect([run.code, run.stderr]).toEqual([0, '']);
  expect(paths(pings)).toEqual(['/from-env/start', '/from-env']);
  // A failing ping names where it was set: here the environment, not the file's monitoring.ping.
  const failing = await receiverFor(() => 500);
  const failed = await ws.cli(['process-expirations', '--now', NOW], { env: { LICENSE_MANAGER_PING: `${base(failing)}env-check` } });
  expect(failed.code).toBe(0);
  expect(failed.stderr).toContain("the run's exit status does not change. Check LICENSE_MANAGER_PING.");
  expect(failed.stderr).not.toContain('Check monitoring.ping');
  // status, run without the variable, reads the setting's ping: the last pings say where they went.
  const shown = await ws.cli(['status', '--now', NOW]);
  expect(shown.stdout).toMatch(new RegExp(`last end ping +failed: .* \\(to ${base(failing).replace(/[.]/g, '\\.')}env-check\\) at `));
  const bad = await ws.cli(['process-expirations', '--now', NOW], { env: { LICENSE_MANAGER_PING: 'file:///tmp/x' } });
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain('Invalid environment variable LICENSE_MANAGER_PING: the ping URL must use http: or https:, not file:');
  expect(pings.requests).toHaveLength(2);
  expect(failing.requests).toHaveLength(4);
});

test('a run refused by an invalid stored setting pings where the stored ping setting says (or nowhere, for none), not the file', async () => {
  const [hooks, pings] = [await receiverFor(), await receiverFor()];
  const ws = workspace({ webhooks: { enabled: true, url: hooks.url }, monitoring: { ping: `${base(pings)}from-file` } });
  await seeded(ws);
  expect((await ws.cli(['settings', 'set', 'ping', `${base(pings)}from-setting`])).code).toBe(0);
  await ws.rows("insert into settings (key, value, updated_at) values ('warning-days', 'soon', '2025-01-01T00:00:00Z')");
  const refused = await ws.cli(['process-expirations', '--now', NOW]);
  expect(refused.code).toBe(2);
  expect(refused.stderr).toContain('warning-days');
  expect(paths(pings)).toEqual(['/from-setting/2']);
  expect(rids(pings)[0]).toMatch(UUID);
  expect(pings.requests[0]!.body.toString('utf8')).toBe(
    'license-manager process-expirations refused (exit 2) before it started (a stored setting is invalid): nothing recorded or sent',
  );

  // The operator turned the file's ping off in the database: nothing is pinged.
  expect((await ws.cli(['settings', 'set', 'ping', 'none'])).code).toBe(0);
  expect((await ws.cli(['process-expirations', '--now', NOW])).code).toBe(2);
  expect(pings.requests).toHaveLength(1);

  // The stored ping is the invalid setting itself: the file's ping hears of the refusal.
  expect((await ws.cli(['settings', 'unset', 'warning-days'])).code).toBe(0);
  await ws.rows("update settings set value = 'gopher://x.example/abc' where key = 'ping'");
  expect((await ws.cli(['process-expirations', '--now', NOW])).code).toBe(2);
  expect(paths(pings).slice(1)).toEqual(['/from-file/2']);
});

test('a run that cannot open its database still sends the end ping with its exit status: server down /1, no database file or schema /2', async () => {
  const pings = await receiverFor();
  const down = `postgres://postgres@${new URL(await closedPortUrl()).host}/licenses`;
  const ws = workspace({ database: { url: down }, monitoring: { ping: `${base(pings)}${CHECK}` } }, {}, undefined, true);
  const started = performance.now();
  const run = await ws.cli(['process-expirations', '--now', NOW]);
  expect(run.code).toBe(1);
  expect(performance.now() - started).toBeLessThan(8000);
  // No start ping (no run began), and the end ping under a run id of its own.
  expect(paths(pings)).toEqual([`/${CHECK}/1`]);
  expect(rids(pings)[0]).toMatch(UUID);
  expect(pings.requests[0]!.body.toString('utf8')).toBe(
    'license-manager process-expirations failed (exit 1) before its database was open: nothing recorded or sent',
  );

  // LICENSE_MANAGER_PING names it as well; a missing SQLite file is a refusal (exit 2).
  ws.configure({ database: { filename: './missing.sqlite' } });
  const refused = await ws.cli(['process-expirations', '--now', NOW], {
    env: { LICENSE_MANAGER_PING: `cronitor ${base(pings)}p/0123456789abcdef0123456789abcdef/job` },
  });
  expect(refused.code).toBe(2);
  expect(refused.stderr).toContain('does not exist');
  expect(Object.fromEntries(new URL(pings.requests[1]!.url, 'http://x').searchParams)).toMatchObject({ state: 'fail', status_code: '2' });
  expect(fs.existsSync(`${ws.dir}/missing.sqlite`)).toBe(false);

  // A server database whose schema was never migrated (tables under a prefix nobody made): refused, /2.
  ws.configure({
    database: { url: 'postgres://postgres@127.0.0.1:5432/postgres', tablePrefix: 'lm_never_migrated_' },
    monitoring: { ping: `${base(pings)}${CHECK}` },
  });
  const unmigrated = await ws.cli(['process-expirations', '--now', NOW]);
  expect(unmigrated.code).toBe(2);
  expect(unmigrated.stderr).toContain('migrate');
  expect(paths(pings)[2]).toBe(`/${CHECK}/2`);
  ws.configure({ database: { filename: './missing.sqlite' } });

  // A dry run is not a run: no ping; neither is a run with no ping configured.
  expect((await ws.cli(['process-expirations', '--now', NOW, '--dry-run'], { env: { LICENSE_MANAGER_PING: `${base(pings)}${CHECK}` } })).code).toBe(2);
  expect((await ws.cli(['process-expirations', '--now', NOW])).code).toBe(2);
  expect(pings.requests).toHaveLength(3);
});

test('a JS config that never finishes loading: refused once its 10 s bound passes, not waited on again for the end ping', async () => {
  const cwd = tempDir();
  fs.writeFileSync(path.join(cwd, 'license-manager.config.js'), 'module.exports = new Promise(() => {});\n');
  const started = performance.now();
  const run = await runCli(['process-expirations', '--now', NOW], { cwd, process: true, timeoutMs: 40_000 });
  const tookMs = performance.now() - started;
  expect(run.code).toBe(2);
  expect(run.stderr).toContain('did not finish loading within 10 s');
  // One bound, not two (21 s when the end ping loaded the config again).
  expect(tookMs).toBeLessThan(17_000);
}, 45_000);
