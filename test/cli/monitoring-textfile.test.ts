// The Prometheus textfile wired into the cron job: written atomically after every run (failed ones too), read back by a real parser (and promtool where installed), `status --format prometheus` printing the same, and a folder that cannot take it refused with exit 2.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect, test } from '@jest/globals';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';

import { closedPortUrl } from '../helpers/receiver.js';
import { aLicense, forEachDialect, receiverFor, type Workspace, workspace } from '../helpers/workspace.js';

const NOW = '2025-01-23T10:00:00Z';
const promtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' }).status === 0;

/** name{labels} -> value, from the real parser. */
function samples(text: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const family of parsePrometheusTextFormat(text)) {
    expect(family.help).not.toBe('');
    expect(['gauge', 'counter']).toContain(family.type.toLowerCase());
    if (family.type.toLowerCase() === 'counter') expect(family.name).toMatch(/_total$/);
    expect(family.name).toMatch(/^license_manager_[a-z_]+$/);
    for (const metric of family.metrics) {
      const labels = Object.entries(metric.labels ?? {})
        .map(([name, value]) => `${name}="${value}"`)
        .join(',');
      found.set(labels ? `${family.name}{${labels}}` : family.name, Number(metric.value));
    }
  }
  return found;
}

function checkWithPromtool(file: string): void {
  if (!promtool) return;
  const checked = spawnSync('promtool', ['check', 'metrics'], { input: fs.readFileSync(file), encoding: 'utf8' });
  expect([checked.status, checked.stdout, checked.stderr]).toEqual([0, '', '']);
}

async function seeded(
  ws: Workspace,
  licenses = [aLicense({ expires_at: '2025-01-22T10:00:00Z' }), aLicense({ expires_at: '2025-01-30T10:00:00Z' })],
): Promise<void> {
  fs.chmodSync(ws.configFile, 0o600);
  await ws.ready();
  await ws.seed(licenses);
}

forEachDialect('the Prometheus textfile after each run', ({ workspace: dialectWorkspace }) => {
  test('written after a run, success then failure: the last success stays, the exit status and counts follow; status --format prometheus prints the same', async () => {
    let failing = false;
    const hooks = await receiverFor(() => (failing ? 500 : 200));
    const ws = dialectWorkspace({ webhooks: { enabled: true, url: hooks.url, retryDelaysMs: [] }, monitoring: { textfile: 'metrics/license_manager.prom' } });
    fs.mkdirSync(path.join(ws.dir, 'metrics'));
    await seeded(ws);
    const file = path.join(ws.dir, 'metrics', 'license_manager.prom');

    const first = await ws.cli(['process-expirations', '--now', NOW]);
    expect([first.code, first.stderr]).toEqual([0, '']);
    const afterSuccess = samples(fs.readFileSync(file, 'utf8'));
    checkWithPromtool(file);
    const [run] = await ws.rows<{ finished_at: string; started_at: string }>('select started_at, finished_at from runs');
    const finished = Date.parse(run!.finished_at) / 1000;
    expect(afterSuccess.get('license_manager_last_success_timestamp_seconds')).toBe(finished);
    expect(afterSuccess.get('license_manager_last_run_timestamp_seconds')).toBe(finished);
    expect(afterSuccess.get('license_manager_last_run_exit_code')).toBe(0);
    expect(afterSuccess.get('license_manager_last_run_duration_seconds')).toBeGreaterThanOrEqual(0);
    expect(afterSuccess.get('license_manager_events_recorded_total{event_type="license.expired"}')).toBe(1);
    expect(afterSuccess.get('license_manager_events_recorded_total{event_type="license.expiring"}')).toBe(1);
    expect(afterSuccess.get('license_manager_deliveries{event_type="license.expired",status="delivered"}')).toBe(1);
    expect(afterSuccess.get('license_manager_endpoint_consecutive_failures{endpoint="default"}')).toBe(0);
    expect(afterSuccess.get('license_manager_endpoint_oldest_undelivered_age_seconds{endpoint="default"}')).toBe(0);
    expect(afterSuccess.get('license_manager_build_info{version="0.1.0"}')).toBe(1);
    // No temporary file left beside it (node_exporter reads every *.prom).
    expect(fs.readdirSync(path.join(ws.dir, 'metrics'))).toEqual(['license_manager.prom']);

    failing = true;
    await ws.seed([aLicense({ expires_at: '2025-01-22T12:00:00Z' })]);
    const second = await ws.cli(['process-expirations', '--now', '2025-01-23T12:00:00Z']);
    expect(second.code).toBe(3);
    const afterFailure = samples(fs.readFileSync(file, 'utf8'));
    checkWithPromtool(file);
    expect(afterFailure.get('license_manager_last_success_timestamp_seconds')).toBe(finished);
    expect(afterFailure.get('license_manager_last_run_exit_code')).toBe(3);
    expect(afterFailure.get('license_manager_last_run_timestamp_seconds')).toBeGreaterThanOrEqual(finished);
    expect(afterFailure.get('license_manager_deliveries{event_type="license.expired",status="abandoned"}')).toBe(1);
    expect(afterFailure.get('license_manager_endpoint_deliveries{endpoint="default",status="abandoned"}')).toBe(1);
    expect(afterFailure.get('license_manager_endpoint_consecutive_failures{endpoint="default"}')).toBe(1);

    const printed = await ws.cli(['status', '--format', 'prometheus', '--now', '2025-01-23T12:00:00Z']);
    // status exits 3 while a delivery is abandoned, as ever; stdout is the metrics alone.
    expect(printed.code).toBe(3);
    expect(printed.stderr).toMatch(/^warning: 1 delivery abandoned/);
    expect(samples(printed.stdout)).toEqual(afterFailure);
    // No run has opened the circuit: it is shown closed.
    expect(afterFailure.get('license_manager_endpoint_circuit_open{endpoint="default"}')).toBe(0);
  });

  test('a refusing receiver opens the circuit after 5 failures: the textfile shows it open, and closed again once a run delivers', async () => {
    // Port 1 on 127.0.0.1 refuses every connection; one attempt per delivery, 6 deliveries: the fifth failure opens the circuit.
    const refusing = {
      webhooks: { enabled: true, url: 'http://127.0.0.1:1/hook', retryDelaysMs: [], retryWindowHours: 72 },
      monitoring: { textfile: 'license_manager.prom' },
    };
    const ws = dialectWorkspace(refusing);
    // Retries across runs count their window from when an event was recorded, by the real clock: no --now here.
    const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 19) + 'Z';
    await seeded(
      ws,
      Array.from({ length: 6 }, (_, index) => aLicense({ license_code: `REFUSED-${index}`, expires_at: yesterday })),
    );
    const file = path.join(ws.dir, 'license_manager.prom');

    const down = await ws.cli(['process-expirations']);
    expect(down.code).toBe(4);
    expect(down.stderr).toMatch(/endpoint default: 6 deliveries deferred/);
    const open = samples(fs.readFileSync(file, 'utf8'));
    checkWithPromtool(file);
    expect(open.get('license_manager_endpoint_circuit_open{endpoint="default"}')).toBe(1);
    // Attempts already in flight when the fifth failure opened it still count: 5 or 6 (concurrency).
    expect(open.get('license_manager_endpoint_consecutive_failures{endpoint="default"}')).toBeGreaterThanOrEqual(5);
    expect(open.get('license_manager_endpoint_consecutive_failures{endpoint="default"}')).toBeLessThanOrEqual(6);
    expect(open.get('license_manager_endpoint_deliveries{endpoint="default",status="deferred"}')).toBe(6);
    expect(samples((await ws.cli(['status', '--format', 'prometheus'])).stdout).get('license_manager_endpoint_circuit_open{endpoint="default"}')).toBe(1);

    // The receiver is back: retry re-sends the deferred ones now (the probe succeeds) and the circuit closes.
    const hooks = await receiverFor();
    ws.configure({ ...refusing, webhooks: { ...refusing.webhooks, url: hooks.url } });
    const ids = (await ws.rows<{ id: number }>("select id from webhook_deliveries where status = 'deferred' order by id")).map((row) => String(row.id));
    const retried = await ws.cli(['deliveries', 'retry', ...ids]);
    expect([retried.code, retried.stderr]).toEqual([0, '']);
    expect(hooks.requests).toHaveLength(6);
    const closedAgain = samples((await ws.cli(['status', '--format', 'prometheus'])).stdout);
    expect(closedAgain.get('license_manager_endpoint_circuit_open{endpoint="default"}')).toBe(0);
  });

  test('a removed endpoint leaves the metrics (an alert on its failures would fire for ever); one added again under its name starts with no failures', async () => {
    const hooks = await receiverFor();
    const ws = dialectWorkspace({ webhooks: { enabled: true, url: hooks.url }, monitoring: { textfile: 'license_manager.prom' } });
    await seeded(ws);
    // 127.0.0.1:1 refuses every connection: the run's attempts to crm fail and are abandoned (no retries across runs here).
    expect((await ws.cli(['endpoints', 'add', 'crm', '--url', 'http://127.0.0.1:1/hook'])).code).toBe(0);
    expect((await ws.cli(['process-expirations', '--now', NOW])).code).toBe(3);
    const failing = samples((await ws.cli(['status', '--format', 'prometheus'])).stdout);
    expect(failing.get('license_manager_endpoint_consecutive_failures{endpoint="crm"}')).toBeGreaterThan(0);
    expect(failing.get('license_manager_endpoint_deliveries{endpoint="crm",status="abandoned"}')).toBe(2);

    expect((await ws.cli(['endpoints', 'remove', 'crm', '--force'])).code).toBe(0);
    const removed = (await ws.cli(['status', '--format', 'prometheus'])).stdout;
    expect(removed).not.toContain('endpoint="crm"');
    expect(samples(removed).get('license_manager_endpoint_consecutive_failures{endpoint="default"}')).toBe(0);
    // The run writes the same into the textfile.
    expect((await ws.cli(['process-expirations', '--now', NOW])).code).toBe(0);
    const file = path.join(ws.dir, 'license_manager.prom');
    checkWithPromtool(file);
    expect(fs.readFileSync(file, 'utf8')).not.toContain('endpoint="crm"');

    // A new crm, a second later at least: the earlier one's failures are not its own.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect((await ws.cli(['endpoints', 'add', 'crm', '--url', hooks.url])).code).toBe(0);
    const added = samples((await ws.cli(['status', '--format', 'prometheus'])).stdout);
    expect(added.get('license_manager_endpoint_consecutive_failures{endpoint="crm"}')).toBe(0);
    const stats = await ws.cli(['deliveries', 'stats', '--endpoint', 'crm', '--json']);
    expect(JSON.stringify(JSON.parse(stats.stdout))).toMatch(/"consecutiveFailures":0/);
  });
});

test('a run that fails outright writes the file too; a dry run writes nothing', async () => {
  const ws = workspace({ monitoring: { textfile: 'license_manager.prom' } });
  await seeded(ws);
  const file = path.join(ws.dir, 'license_manager.prom');
  const dry = await ws.cli(['process-expirations', '--now', NOW, '--dry-run']);
  expect(dry.code).toBe(0);
  expect(fs.existsSync(file)).toBe(false);
  // Refused: webhooks enabled with no URL (exit 2); the metrics say so.
  ws.configure({ webhooks: { enabled: true }, monitoring: { textfile: 'license_manager.prom' } });
  const refused = await ws.cli(['process-expirations', '--now', NOW]);
  expect(refused.code).toBe(2);
  const metrics = samples(fs.readFileSync(file, 'utf8'));
  expect(metrics.get('license_manager_last_run_exit_code')).toBe(2);
  expect(metrics.get('license_manager_last_success_timestamp_seconds')).toBe(0);
});

test('a run that cannot open its database rewrites the last run (exit status, time, duration) and keeps the other lines; with no file yet, those and the last success at 0', async () => {
  const hooks = await receiverFor();
  const config = (database?: object) => ({
    webhooks: { enabled: true, url: hooks.url, retryDelaysMs: [] },
    monitoring: { textfile: 'metrics/license_manager.prom' },
    ...(database ? { database } : {}),
  });
  const ws = workspace(config());
  fs.mkdirSync(path.join(ws.dir, 'metrics'));
  await seeded(ws);
  const file = path.join(ws.dir, 'metrics', 'license_manager.prom');
  expect((await ws.cli(['process-expirations', '--now', NOW])).code).toBe(0);
  const before = samples(fs.readFileSync(file, 'utf8'));
  expect(before.get('license_manager_last_run_exit_code')).toBe(0);
  expect(before.get('license_manager_events_recorded_total{event_type="license.expired"}')).toBe(1);
  const RUN_SERIES = ['license_manager_last_run_exit_code', 'license_manager_last_run_timestamp_seconds', 'license_manager_last_run_duration_seconds'];
  const others = (metrics: Map<string, number>) => [...metrics].filter(([name]) => !RUN_SERIES.includes(name));

  // The SQLite file is gone: refused (exit 2), nothing recorded; the file says exit 2 now, the counts as they were.
  ws.configure(config({ filename: './missing.sqlite' }));
  const from = Math.floor(Date.now() / 1000);
  const missing = await ws.cli(['process-expirations', '--now', NOW]);
  expect(missing.code).toBe(2);
  expect(missing.stderr).toContain('does not exist');
  const refused = samples(fs.readFileSync(file, 'utf8'));
  checkWithPromtool(file);
  expect(refused.get('license_manager_last_run_exit_code')).toBe(2);
  expect(refused.get('license_manager_last_run_timestamp_seconds')).toBeGreaterThanOrEqual(from);
  expect(refused.get('license_manager_last_run_timestamp_seconds')).toBeLessThanOrEqual(Date.now() / 1000);
  expect(refused.get('license_manager_last_run_duration_seconds')).toBeGreaterThanOrEqual(0);
  expect(others(refused)).toEqual(others(before));
  expect(fs.existsSync(path.join(ws.dir, 'missing.sqlite'))).toBe(false);
  // Only the last run's lines changed, in place: the file reads as one a run writes.
  const changed = (text: string) => text.split('\n').filter((line) => !RUN_SERIES.some((name) => line.startsWith(`${name} `)));
  const text = fs.readFileSync(file, 'utf8');
  expect(changed(text)).toEqual(
    changed((await ws.cli(['status', '--format', 'prometheus'], { env: { LICENSE_MANAGER_DB: path.join(ws.dir, 'test.sqlite') } })).stdout),
  );

  // A server that does not answer: failed (exit 1).
  ws.configure(config({ filename: undefined, url: `postgres://postgres@${new URL(await closedPortUrl()).host}/licenses` }));
  expect((await ws.cli(['process-expirations', '--now', NOW])).code).toBe(1);
  const down = samples(fs.readFileSync(file, 'utf8'));
  checkWithPromtool(file);
  expect(down.get('license_manager_last_run_exit_code')).toBe(1);
  expect(others(down)).toEqual(others(before));
  // No temporary file left beside it (node_exporter reads every *.prom).
  expect(fs.readdirSync(path.join(ws.dir, 'metrics'))).toEqual(['license_manager.prom']);

  // Refused by an invalid stored setting (no run recorded either): exit 2.
  ws.configure(config());
  await ws.rows("insert into settings (key, value, updated_at) values ('warning-days', 'soon', '2025-01-01T00:00:00Z')");
  expect((await ws.cli(['process-expirations', '--now', NOW])).code).toBe(2);
  const invalidSetting = samples(fs.readFileSync(file, 'utf8'));
  expect(invalidSetting.get('license_manager_last_run_exit_code')).toBe(2);
  expect(others(invalidSetting)).toEqual(others(before));

  // No file yet: the last run's lines and the build info, and the last success at 0 (no run has succeeded that this
  // file knows of: an alert on its age fires on a new install whose runs all fail to open the database).
  fs.rmSync(file);
  ws.configure(config({ filename: './missing.sqlite' }));
  expect((await ws.cli(['process-expirations', '--now', NOW])).code).toBe(2);
  const fresh = samples(fs.readFileSync(file, 'utf8'));
  checkWithPromtool(file);
  expect([...fresh.keys()].sort()).toEqual(
    ['license_manager_build_info{version="0.1.0"}', 'license_manager_last_success_timestamp_seconds', ...RUN_SERIES].sort(),
  );
  expect(fresh.get('license_manager_last_run_exit_code')).toBe(2);
  expect(fresh.get('license_manager_last_success_timestamp_seconds')).toBe(0);

  // A file with CR LF line ends (edited on Windows, say): rewritten with LF, every line still there.
  fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace(/\n/g, '\r\n'));
  expect((await ws.cli(['process-expirations', '--now', NOW])).code).toBe(2);
  expect(fs.readFileSync(file, 'utf8')).not.toContain('\r');
  checkWithPromtool(file);
  expect([...samples(fs.readFileSync(file, 'utf8')).keys()].sort()).toEqual([...fresh.keys()].sort());

  // A dry run is not a run: the file stays as it is.
  const kept = fs.readFileSync(file, 'utf8');
  ws.configure(config({ filename: undefined, url: `postgres://postgres@${new URL(await closedPortUrl()).host}/licenses` }));
  expect((await ws.cli(['process-expirations', '--now', NOW, '--dry-run'])).code).toBe(1);
  expect(fs.readFileSync(file, 'utf8')).toBe(kept);
});

test('a run that cannot open its database and cannot read the old file replaces it all the same, with its own lines only, and says so', async () => {
  const config = (database?: object) => ({ monitoring: { textfile: 'metrics/license_manager.prom' }, ...(database ? { database } : {}) });
  const ws = workspace(config());
  fs.mkdirSync(path.join(ws.dir, 'metrics'));
  await seeded(ws);
  const file = path.join(ws.dir, 'metrics', 'license_manager.prom');
  expect((await ws.cli(['process-expirations', '--now', NOW])).code).toBe(0);
  ws.configure(config({ filename: './missing.sqlite' }));
  // A file this user may not read (mode 600, another user's: root reads any, so a symlink to itself for root, which
  // no one can read either); the folder is writable, so a run that opens its database replaces it.
  const unreadable = [
    () => fs.symlinkSync('license_manager.prom', file),
    ...(process.getuid?.() === 0 ? [] : [() => (fs.writeFileSync(file, 'license_manager_last_run_exit_code 0\n'), fs.chmodSync(file, 0o000))]),
  ];
  for (const make of unreadable) {
    fs.rmSync(file);
    make();
    const run = await ws.cli(['process-expirations', '--now', NOW]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`the metrics file ${file} could not be read (`);
    expect(run.stderr).toContain("it was replaced with this run's exit status, time and duration and the build info only");
    expect(fs.lstatSync(file).isFile()).toBe(true);
    checkWithPromtool(file);
    const metrics = samples(fs.readFileSync(file, 'utf8'));
    expect([...metrics.keys()].sort()).toEqual(
      [
        'license_manager_build_info{version="0.1.0"}',
        'license_manager_last_run_duration_seconds',
        'license_manager_last_run_exit_code',
        'license_manager_last_run_timestamp_seconds',
      ].sort(),
    );
    expect(metrics.get('license_manager_last_run_exit_code')).toBe(2);
    expect(fs.readdirSync(path.join(ws.dir, 'metrics'))).toEqual(['license_manager.prom']);
  }
});

test('bad textfile paths: a missing folder, a folder for a file, and a folder this user may not write: exit 2 naming monitoring.textfile, nothing sent', async () => {
  const hooks = await receiverFor();
  const ws = workspace({ webhooks: { enabled: true, url: hooks.url } });
  await seeded(ws);
  ws.configure({ webhooks: { enabled: true, url: hooks.url }, monitoring: { textfile: 'missing/license_manager.prom' } });
  const missing = await ws.cli(['process-expirations', '--now', NOW]);
  expect(missing.code).toBe(2);
  expect(missing.stderr).toContain(
    `error: monitoring.textfile ${path.join(ws.dir, 'missing', 'license_manager.prom')}: its folder ${path.join(ws.dir, 'missing')} does not exist.`,
  );
  expect(hooks.requests).toEqual([]);
  expect((await ws.rows<{ status: string }>('select status from runs')).map((row) => row.status)).toEqual(['refused']);

  fs.mkdirSync(path.join(ws.dir, 'a-folder.prom'));
  ws.configure({ webhooks: { enabled: true, url: hooks.url }, monitoring: { textfile: 'a-folder.prom' } });
  const folder = await ws.cli(['process-expirations', '--now', NOW]);
  expect(folder.code).toBe(2);
  expect(folder.stderr).toContain('is a folder; give the path of a file');

  const locked = path.join(ws.dir, 'locked');
  fs.mkdirSync(locked);
  const asRoot = process.getuid?.() === 0;
  // Root writes through any mode: an immutable folder is what refuses it.
  const made = asRoot ? spawnSync('chattr', ['+i', locked]).status === 0 : (fs.chmodSync(locked, 0o555), true);
  if (!made) throw new Error(`cannot make ${locked} immutable (chattr +i failed): this file system does not support it`);
  try {
    ws.configure({ webhooks: { enabled: true, url: hooks.url }, monitoring: { textfile: 'locked/license_manager.prom' } });
    const run = await ws.cli(['process-expirations', '--now', NOW]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`error: monitoring.textfile ${path.join(locked, 'license_manager.prom')}: this user may not create files in ${locked}.`);
  } finally {
    if (asRoot) spawnSync('chattr', ['-i', locked]);
    else fs.chmodSync(locked, 0o755);
  }
  expect(fs.readdirSync(locked)).toEqual([]);
});

test('status --format prometheus with --json is bad usage', async () => {
  const ws = workspace();
  await seeded(ws, []);
  const run = await ws.cli(['status', '--format', 'prometheus', '--json']);
  expect(run.code).toBe(2);
  expect(run.stderr).toContain('Give --json or --format prometheus, not both');
});

(promtool ? test : test.skip)(
  `promtool check metrics on a run's textfile${promtool ? '' : ' (skipped: promtool is not installed here; parse-prometheus-text-format checks every file above)'}`,
  async () => {
    const ws = workspace({ monitoring: { textfile: 'license_manager.prom' } });
    await seeded(ws);
    expect((await ws.cli(['process-expirations', '--now', NOW])).code).toBe(0);
    checkWithPromtool(path.join(ws.dir, 'license_manager.prom'));
  },
);
