// Retries across runs as an operator and cron see them: exit 4, the loud stderr under --quiet, deliveries list/retry
// of deferred ones, status per endpoint, endpoints after a 410; and a whole bad night through the built CLI.
import fs from 'node:fs';
import { expect, test } from '@jest/globals';
import { BIN, runCommand } from '../helpers/cli.js';
import { startCli, until } from '../helpers/project.js';
import { aLicense, forEachDialect, proxyFor, receiverFor, workspace, type Workspace } from '../helpers/workspace.js';
import { faketimeProblem, faketimeWorks, LIBFAKETIME } from '../helpers/faketime.js';

const DAY = 86_400_000;
/** Licenses that expired yesterday by the real clock: the CLI runs without --now (the backoff runs on the real clock). */
async function expiredYesterday(ws: Workspace, count: number, prefix = 'GONE-'): Promise<void> {
  fs.chmodSync(ws.configFile, 0o600);
  await ws.ready();
  const yesterday = new Date(Date.now() - DAY).toISOString().slice(0, 19) + 'Z';
  await ws.seed(Array.from({ length: count }, (_, index) => aLicense({ license_code: `${prefix}${index}`, expires_at: yesterday })));
}

test('a run that defers says so on stderr under --quiet and exits 4; deliveries list shows when and why; retry <id> sends a deferred one now', async () => {
  let down = true;
  const target = await receiverFor(() => (down ? 503 : 200));
  const ws = workspace({ webhooks: { enabled: true, url: target.url, retryWindowHours: 72 } });
  await expiredYesterday(ws, 2);

  const run = await ws.cli(['process-expirations', '--quiet']);
  expect(run.code).toBe(4);
  expect(run.stdout).toBe('');
  expect(run.stderr).toMatch(
    /^warning: endpoint default: 2 deliveries deferred \(next attempt \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\); last error: (HTTP 503|circuit open)/m,
  );
  expect(await ws.rows('select status, exit_code, deferred, abandoned from runs')).toEqual([{ status: 'waiting', exit_code: 4, deferred: 2, abandoned: 0 }]);

  const listed = JSON.parse((await ws.cli(['deliveries', 'list', '--status', 'deferred', '--json'])).stdout) as Array<Record<string, unknown>>;
  expect(listed).toHaveLength(2);
  for (const row of listed)
    expect(row).toMatchObject({ status: 'deferred', next_attempt_at: expect.stringMatching(/Z$/), status_reason: expect.any(String), endpoint: 'default' });
  const text = await ws.cli(['deliveries', 'list', '--status', 'deferred']);
  expect(text.stdout).toMatch(/NEXT ATTEMPT +REASON/);
  expect((await ws.cli(['deliveries', 'list', '--status', 'parked'])).stdout).toBe('No deliveries match.\n');

  // A run now has nothing due: it sends nothing and still exits 4 (deliveries wait on the receiver).
  const from = target.requests.length;
  expect((await ws.cli(['process-expirations', '--quiet'])).code).toBe(4);
  expect(target.requests.length).toBe(from);

  // A day on with the receiver still down: it has been failing for more than 24 hours.
  const dayOn = new Date(Date.now() + 25 * 3_600_000).toISOString();
  const failing = await ws.cli(['status', '--now', dayOn]);
  expect(failing.code).toBe(4);
  expect(failing.stderr + failing.stdout).toMatch(/endpoint default has been failing since .* more than 24 hours/);

  down = false;
  const id = Number(listed[0]!.id);
  const retried = await ws.cli(['deliveries', 'retry', String(id)]);
  // This re-send delivered what it took: 0 (the other one still waits; the next run says so).
  expect([retried.code, retried.stderr]).toEqual([0, '']);
  expect(target.requests.length).toBe(from + 1);
  expect(await ws.rows(`select status, next_attempt_at, status_reason from webhook_deliveries where id = ${id}`)).toEqual([
    { status: 'delivered', next_attempt_at: null, status_reason: null },
  ]);

  const status = await ws.cli(['status', '--json']);
  const health = JSON.parse(status.stdout) as { endpoints: Array<Record<string, unknown>>; health: { exitCode: number } };
  expect(health.endpoints).toEqual([
    expect.objectContaining({ name: 'default', deferred: 1, parked: 0, circuit: expect.any(String), oldestUndeliveredAgeSeconds: expect.any(Number) }),
  ]);
  // Waiting for less than a day: not yet a reason for status to fail.
  expect(health.health.exitCode).toBe(0);
  // The receiver answered the re-send: the delivery still deferred waits for its next attempt, not on a failure.
  const later = await ws.cli(['status', '--now', dayOn]);
  expect(later.code).toBe(0);
  expect(later.stderr + later.stdout).not.toMatch(/failing/);
  expect(later.stdout).toMatch(/1 delivery to default waits for its next attempt, the endpoint having answered since: the next run sends it/);
}, 60_000);

// A 429 (or 408) keeps the circuit closed (the receiver is up), so the circuit records no failure: status must
// still see that the endpoint's last answer was no 2xx, and not take one old 2xx for a recovery.
forEachDialect('status for a receiver that answered 2xx once, then throttles', ({ workspace: dialectWorkspace }) => {
  test('a day of 429s after a 2xx is a day of failing: status exits 4 from when the throttling began; a 2xx since makes it 0 again', async () => {
    let answer = 200;
    const target = await receiverFor(() => answer);
    const ws = dialectWorkspace({ webhooks: { enabled: true, url: target.url, retryWindowHours: 72 } });
    await expiredYesterday(ws, 1, 'FIRST-');
    expect((await ws.cli(['process-expirations', '--quiet'])).code).toBe(0);

    answer = 429;
    await expiredYesterday(ws, 2, 'THROTTLED-');
    const throttled = await ws.cli(['process-expirations', '--quiet']);
    expect(throttled.code).toBe(4);
    expect(await ws.rows('select status, count(*) as n from webhook_deliveries group by status order by status')).toEqual([
      { status: 'deferred', n: 2 },
      { status: 'delivered', n: 1 },
    ]);
    // Less than a day: retries are for that.
    expect((await ws.cli(['status'])).code).toBe(0);
    const dayOn = new Date(Date.now() + 25 * 3_600_000).toISOString();
    const failing = await ws.cli(['status', '--now', dayOn]);
    expect(failing.code).toBe(4);
    expect(failing.stdout).toMatch(/endpoint default has been failing since .* \(2 deliveries deferred\): more than 24 hours/);
    expect(failing.stdout).not.toMatch(/having answered since/);

    // The receiver answers 2xx again (a re-send): what is still deferred waits for its next attempt, status 0.
    answer = 200;
    const [first] = await ws.rows<{ id: number }>("select id from webhook_deliveries where status = 'deferred' order by id");
    expect((await ws.cli(['deliveries', 'retry', String(first!.id)])).code).toBe(0);
    const back = await ws.cli(['status', '--now', dayOn]);
    expect(back.code).toBe(0);
    expect(back.stdout).toMatch(/1 delivery to default waits for its next attempt, the endpoint having answered since/);
  }, 60_000);
});

test('410 Gone: stderr says the endpoint is disabled, endpoints list and show say why, enable re-enables default; retry refuses a parked one', async () => {
  let gone = true;
  const target = await receiverFor(() => (gone ? 410 : 200));
  const ws = workspace({ webhooks: { enabled: true, url: target.url, retryWindowHours: 72 } });
  await expiredYesterday(ws, 2);
  const run = await ws.cli(['process-expirations', '--quiet']);
  expect(run.code).toBe(4);
  expect(run.stderr).toMatch(/endpoint default answered 410 Gone: it is disabled/);
  expect(run.stderr).toMatch(/endpoint default is DISABLED: endpoint gone: its receiver answered 410 Gone at .*endpoints enable default/);
  expect(run.stderr).toMatch(/endpoint default: 2 deliveries parked/);

  const list = JSON.parse((await ws.cli(['endpoints', 'list', '--json'])).stdout) as Array<Record<string, unknown>>;
  expect(list).toEqual([
    expect.objectContaining({
      name: 'default',
      enabled: false,
      gone: { at: expect.any(String), reason: expect.stringMatching(/410 Gone/) },
      deliveries: { parked: 2 },
    }),
  ]);
  expect((await ws.cli(['endpoints', 'show', 'default'])).stdout).toMatch(/state: +disabled: endpoint gone: its receiver answered 410 Gone/);
  const parkedId = (await ws.rows<{ id: number }>("select id from webhook_deliveries where status = 'parked' order by id"))[0]!.id;
  const refused = await ws.cli(['deliveries', 'retry', String(parkedId)]);
  expect(refused.code).toBe(2);
  expect(refused.stderr).toMatch(/is parked: only abandoned and deferred deliveries are re-sent \(its endpoint is disabled .*endpoints enable default/);

  gone = false;
  const enabled = await ws.cli(['endpoints', 'enable', 'default']);
  expect([enabled.code, enabled.stderr]).toEqual([0, '']);
  expect(enabled.stdout).toMatch(/2 parked deliveries go out with the next process-expirations/);
  const next = await ws.cli(['process-expirations', '--quiet']);
  expect([next.code, next.stderr]).toEqual([0, '']);
  expect(await ws.rows("select count(*) as n from webhook_deliveries where status = 'delivered'")).toEqual([{ n: 2 }]);
}, 60_000);

test('status after a 410 that followed a success: the last error is the 410, not a failure from before the success; past a day it names endpoints enable with the endpoint', async () => {
  let answer = 503;
  const target = await receiverFor(() => answer);
  const ws = workspace({ webhooks: { enabled: true, url: target.url, retryWindowHours: 72, retryDelaysMs: [] } });
  await expiredYesterday(ws, 1, 'FIRST-');
  expect((await ws.cli(['process-expirations', '--quiet'])).code).toBe(4);
  answer = 200;
  const [deferred] = await ws.rows<{ id: number }>("select id from webhook_deliveries where status = 'deferred'");
  expect((await ws.cli(['deliveries', 'retry', String(deferred!.id)])).code).toBe(0);
  answer = 410;
  await expiredYesterday(ws, 2, 'GONE-');
  expect((await ws.cli(['process-expirations', '--quiet'])).code).toBe(4);

  const now = JSON.parse((await ws.cli(['status', '--json'])).stdout) as { endpoints: Array<{ name: string; lastError: string | null }> };
  expect(now.endpoints).toEqual([expect.objectContaining({ name: 'default', lastError: expect.stringMatching(/^HTTP 410/) })]);
  const dayOn = await ws.cli(['status', '--now', new Date(Date.now() + 25 * 3_600_000).toISOString()]);
  expect(dayOn.code).toBe(4);
  expect(dayOn.stdout).not.toMatch(/503/);
  expect(dayOn.stdout).toContain('endpoint default has been failing since');
  expect(dayOn.stdout).toContain('(2 deliveries parked)');
  expect(dayOn.stdout).toContain('"license-manager endpoints enable default" sends them again once the receiver is back');
}, 60_000);

test('a receiver that answers every attempt 429 with a short Retry-After: the run stops sending to it once the pauses add up past 30 s, and defers the rest', async () => {
  const target = await receiverFor(() => ({ status: 429, headers: { 'retry-after': '10' } }));
  // One at a time, so each 429's pause is waited out before the next attempt.
  const ws = workspace({ webhooks: { enabled: true, url: target.url, retryWindowHours: 72, concurrency: 1 } });
  await expiredYesterday(ws, 8, 'THROTTLED-');
  const started = Date.now();
  const run = await ws.cli(['process-expirations', '--json'], { timeoutMs: 120_000 });
  const took = Date.now() - started;
  // Before: each delivery waited out two 10 s pauses, 160 s in all; now the fourth pause (past 30 s in all) ends it.
  expect(took).toBeLessThan(60_000);
  expect(run.code).toBe(4);
  expect(JSON.parse(run.stdout)).toMatchObject({ delivered: 0, abandoned: 0, deferred: 8 });
  expect(target.requests.length).toBe(4);
  expect(await ws.rows("select count(*) as n from webhook_deliveries where status = 'deferred'")).toEqual([{ n: 8 }]);
}, 150_000);

test('webhooks.retryWindowHours that is no whole number of hours from 0 to 8760 is exit 2 naming the key; nothing is written', async () => {
  for (const bad of [-1, 1.5, 8761, '72']) {
    const ws = workspace({ webhooks: { enabled: true, url: 'http://127.0.0.1:1/hook', retryWindowHours: bad } });
    const run = await ws.cli(['process-expirations']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/webhooks\.retryWindowHours/);
    expect(fs.statSync(ws.databaseLocation).size).toBe(0);
  }
});

const night = faketimeWorks ? test : test.skip;
night(
  'a bad night through the built CLI: receiver down for the 02:00 run, back at 03:00, hourly runs: each event delivered once, none abandoned',
  async () => {
    const behind = await receiverFor();
    const proxy = await proxyFor(behind);
    const ws = workspace({
      webhooks: { enabled: true, url: proxy.via(behind.url), retryWindowHours: 72, retryDelaysMs: [1000, 2000, 4000] },
      expirations: { warningDays: [7, 1] },
    });
    fs.chmodSync(ws.configFile, 0o600);
    await ws.ready();
    // At 02:00 on the 23rd: 3 expired the day before, 2 expire in 7 days, 2 tomorrow.
    await ws.seed([
      ...Array.from({ length: 3 }, (_, index) => aLicense({ license_code: `EXP-${index}`, expires_at: '2025-01-22T10:00:00Z' })),
      ...Array.from({ length: 2 }, (_, index) => aLicense({ license_code: `WEEK-${index}`, expires_at: '2025-01-30T10:00:00Z' })),
      ...Array.from({ length: 2 }, (_, index) => aLicense({ license_code: `DAY-${index}`, expires_at: '2025-01-24T10:00:00Z' })),
    ]);
    const runAt = (hour: string) =>
      runCommand('faketime', ['-f', `@2025-01-23 ${hour}:00:00`, process.execPath, BIN, 'process-expirations', '--quiet'], {
        cwd: ws.dir,
        env: { TZ: 'UTC' },
        timeoutMs: 30_000,
      });

    await proxy.refuse();
    const down = await runAt('02');
    expect(down.code).toBe(4);
    expect(down.stderr).toMatch(/endpoint default: 7 deliveries deferred \(next attempt 2025-01-23T02:0\d:\d\dZ\); last error: .*ECONNREFUSED/);
    // The circuit saved the schedules: a handful of attempts, not 7 x 4.
    expect(Number((await ws.rows<{ n: number }>('select count(*) as n from webhook_attempts'))[0]!.n)).toBeLessThanOrEqual(7);

    await proxy.accept();
    const back = await runAt('03');
    expect([back.code, back.stderr]).toEqual([0, '']);
    for (const hour of ['04', '05']) expect(await runAt(hour)).toMatchObject({ code: 0, stderr: '' });

    const ids = behind.requests.map((request) => String(request.headers['x-webhook-id']));
    expect(ids).toHaveLength(7);
    expect(new Set(ids).size).toBe(7);
    expect(await ws.rows('select status, count(*) as n from webhook_deliveries group by status')).toEqual([{ status: 'delivered', n: 7 }]);
    // Each notice as recorded by the 02:00 run (the seconds its start took under faketime), days counted then: none sent twice.
    const bodies = behind.requests.map(
      (request) =>
        JSON.parse(request.body.toString('utf8')) as { timestamp: string; event_type: string; payload: { license_code: string; days_until_expiry?: number } },
    );
    expect(new Set(bodies.map((body) => body.timestamp)).size).toBe(1);
    expect(bodies[0]!.timestamp).toMatch(/^2025-01-23T02:00:\d\dZ$/);
    expect(bodies.map((body) => `${body.payload.license_code} ${body.event_type} ${body.payload.days_until_expiry ?? '-'}`).sort()).toEqual([
      'DAY-0 license.expiring 1',
      'DAY-1 license.expiring 1',
      'EXP-0 license.expired -',
      'EXP-1 license.expired -',
      'EXP-2 license.expired -',
      'WEEK-0 license.expiring 7',
      'WEEK-1 license.expiring 7',
    ]);
    expect(await ws.rows('select exit_code, deferred, abandoned from runs order by started_at')).toEqual([
      { exit_code: 4, deferred: 7, abandoned: 0 },
      { exit_code: 0, deferred: 0, abandoned: 0 },
      { exit_code: 0, deferred: 0, abandoned: 0 },
      { exit_code: 0, deferred: 0, abandoned: 0 },
    ]);
  },
  120_000,
);
const idsOf = (requests: Array<{ headers: Record<string, unknown> }>) => requests.map((request) => String(request.headers['x-webhook-id']));

(faketimeWorks && LIBFAKETIME ? test : test.skip)(
  'a run killed (SIGKILL) while it sends due deferred deliveries: the next run takes them over; each is sent once, but for those in flight at the kill',
  async () => {
    let down = true;
    let from = 0;
    // Once back, the receiver holds the sixth and seventh requests unanswered: with concurrency 2 the run then has
    // exactly those two on the wire, five answered, and starts nothing more, so the kill lands at a known point.
    const target = await receiverFor((_request, index) => (down ? 503 : index === from + 5 || index === from + 6 ? 'hang' : { delayMs: 30, status: 200 }));
    const ws = workspace({ webhooks: { enabled: true, url: target.url, retryWindowHours: 72, concurrency: 2 } });
    await expiredYesterday(ws, 30);
    expect((await ws.cli(['process-expirations', '--quiet'])).code).toBe(4);
    expect(await ws.rows("select count(*) as n from webhook_deliveries where status = 'deferred'")).toEqual([{ n: 30 }]);

    // Ten minutes later (faketime), when they are due: killed after a few deliveries.
    down = false;
    from = target.requests.length;
    // libfaketime preloaded into the CLI's own process (the faketime wrapper would take the signal instead of it).
    const killed = startCli(['process-expirations', '--quiet'], ws.dir, { env: { LD_PRELOAD: LIBFAKETIME, FAKETIME: '+10m' } });
    const delivered = async () => (await ws.rows<{ n: number }>("select count(*) as n from webhook_deliveries where status = 'delivered'"))[0]!.n;
    await until(() => target.requests.length - from >= 7);
    // The five answered are written (the writer commits within milliseconds); the two held never will be.
    for (let tries = 0; tries < 100 && (await delivered()) < 5; tries += 1) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await delivered()).toBe(5);
    const held = idsOf(target.requests.slice(from + 5, from + 7));
    killed.child.kill('SIGKILL');
    expect((await killed.done).signal).toBe('SIGKILL');
    const atKill = target.requests.length;

    const next = await runCommand('faketime', ['-f', '+11m', process.execPath, BIN, 'process-expirations', '--quiet'], { cwd: ws.dir, timeoutMs: 30_000 });
    expect([next.code, next.stderr]).toEqual([0, '']);
    const ids = idsOf(target.requests.slice(from));
    expect(new Set(ids).size).toBe(30);
    // A duplicate only of a request the killed run had on the wire, or answered with its attempt not yet written (as
    // README "Failure and recovery" promises): here the two it had on the wire, each sent once more, and nothing else.
    expect(atKill - from).toBe(7);
    const repeated = ids.filter((id, index) => ids.indexOf(id) !== index);
    expect(repeated.sort()).toEqual([...held].sort());
    expect(await ws.rows('select status, count(*) as n from webhook_deliveries group by status')).toEqual([{ status: 'delivered', n: 30 }]);
  },
  120_000,
);
if (!faketimeWorks) test.skip(`(bad night skipped: libfaketime is not installed or does not work here: ${faketimeProblem})`, () => undefined);
