import { createHmac } from 'node:crypto';
import { spawnSync as runSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { describe, expect, test } from '@jest/globals';
import { runCli } from '../helpers/cli.js';
import { measure } from '../helpers/measure.js';
import { startCli, until } from '../helpers/project.js';
import { startGarbageServer, type Reply } from '../helpers/receiver.js';
import { tempDir } from '../helpers/temp-dir.js';
import { cleanUp, expiredLicenses, forEachDialect, project as sqliteProject, receiverFor } from '../helpers/workspace.js';

const NOW = '2025-01-15T08:00:00Z';
const start = (args: string[], cwd: string) => startCli(args, cwd);

const licenseOf = (request: { body: Buffer }) => (JSON.parse(request.body.toString()) as { payload: { license_code: string } }).payload.license_code;

// Crashes, overlapping runs and stops leave the database consistent on every dialect.
forEachDialect('crash safety', ({ workspace, project, dialect }) => {
  test.each([
    ['mid-attempt (receiver holding the request)', 'hang-first', 1],
    ['between retries (waiting 1 s after a 500)', 'fail-first', 4],
    ['after some deliveries, the rest recorded but unsent', 'slow', 6],
  ])(
    'SIGKILL %s, then a rerun delivers every event; duplicates only for what was in flight',
    async (_label, mode, killAfter) => {
      const total = 12;
      const receiver = await receiverFor((_request, index) => {
        if (mode === 'hang-first') return index === 0 ? 'hang' : 200;
        if (mode === 'fail-first') return index < 2 ? 500 : 200;
        return { delayMs: 100, status: 200 };
      });
      // A second between retries: the kill comes a few milliseconds after the fourth request, well inside the wait; the
      // rerun then waits out what is left of it.
      const ws = await project({
        receiver,
        config: { webhooks: { enabled: true, concurrency: 2, retryDelaysMs: [1000, 1000, 1000], timeoutMs: 5000 } },
        licenses: expiredLicenses(total),
      });
      const run = start(['process-expirations', '--now', NOW], ws.dir);
      await until(() => receiver.requests.length >= killAfter);
      run.child.kill('SIGKILL');
      const killed = await run.done;
      expect(killed.signal).toBe('SIGKILL');
      // What the database said was done at the moment of the kill.
      const doneAtKill = new Set(
        (
          await ws.rows<{ code: string }>(
            "select l.license_code code from webhook_deliveries d join licenses l on l.id = d.license_id where d.status = 'delivered'",
          )
        ).map((row) => row.code),
      );
      const requestsBeforeRerun = receiver.requests.length;
      // The killed run never finished: its row says so, and it is not taken for a finished run.
      expect(await ws.rows('select status, finished_at, exit_code from runs')).toEqual([{ status: 'running', finished_at: null, exit_code: null }]);

      const rerun = await ws.cli(['process-expirations', '--now', NOW, '--json']);
      expect(rerun.code).toBe(0);
      expect(await ws.rows('select status, exit_code from runs order by status')).toEqual([
        { status: 'running', exit_code: null },
        { status: 'succeeded', exit_code: 0 },
      ]);
      const received = new Set(receiver.requests.map(licenseOf));
      expect(received.size).toBe(total); // every event arrived at least once
      expect(await ws.rows('select status, count(*) n from webhook_deliveries group by status')).toEqual([{ status: 'delivered', n: total }]);
      // Nothing recorded as delivered is sent again: a second copy is only possible for an event whose
      // request was out (or answered but not yet written down) when the process died.
      const resent = receiver.requests.slice(requestsBeforeRerun).map(licenseOf);
      expect(resent.filter((code) => doneAtKill.has(code))).toEqual([]);
      const okBeforeKill = receiver.requests
        .slice(0, requestsBeforeRerun)
        .filter((_request, index) => !(mode === 'fail-first' && index < 2))
        .map(licenseOf);
      const duplicates = resent.filter((code) => okBeforeKill.includes(code)).length;
      measure(
        `kill ${mode} [${dialect}]: ${receiver.requests.length} requests for ${total} events; ${doneAtKill.size} recorded delivered at the kill; ${duplicates} duplicate(s) after the rerun`,
      );
    },
    40_000,
  );

  test('two runs started together against one database and a slow receiver: each event received exactly once', async () => {
    const receiver = await receiverFor(() => ({ delayMs: 150, status: 200 }));
    const ws = await project({ receiver, config: { webhooks: { enabled: true, concurrency: 4 } }, licenses: expiredLicenses(30) });
    const [first, second] = await Promise.all([
      start(['process-expirations', '--now', NOW, '--json'], ws.dir).done,
      start(['process-expirations', '--now', NOW, '--json'], ws.dir).done,
    ]);
    expect([first.code, second.code]).toEqual([0, 0]);
    const ids = receiver.requests.map((request) => request.headers['x-webhook-id']);
    expect(ids).toHaveLength(30);
    expect(new Set(ids).size).toBe(30);
    const [a, b] = [JSON.parse(first.stdout), JSON.parse(second.stdout)];
    expect(a.recorded + b.recorded).toBe(30);
    expect(a.delivered + b.delivered).toBe(30);
    expect(await ws.rows("select count(*) n from webhook_deliveries where status = 'delivered'")).toEqual([{ n: 30 }]);
  }, 40_000);

  test('two commands started together on a brand-new database both create and use it', async () => {
    // Any command creates a SQLite file's tables; on a server only migrate does (the others refuse before it).
    const commands =
      dialect === 'sqlite'
        ? [
            ['settings', 'list', '--json'],
            ['licenses', 'list', '--json'],
          ]
        : [
            ['migrate', '--json'],
            ['migrate', '--json'],
          ];
    for (let round = 0; round < 4; round += 1) {
      const ws = workspace();
      const results = await Promise.all(commands.map((args) => ws.cli(args)));
      expect(results.map((result) => [result.code, result.stderr])).toEqual([
        [0, ''],
        [0, ''],
      ]);
      expect((await ws.cli(['licenses', 'list', '--json'])).code).toBe(0);
    }
  }, 30_000);

  test('SIGTERM: stops claiming, records the attempts in flight, leaves waiting retries pending, exits promptly', async () => {
    const receiver = await receiverFor(() => 500);
    const ws = await project({
      receiver,
      config: { webhooks: { enabled: true, concurrency: 2, retryDelaysMs: [10_000, 10_000, 10_000] } },
      licenses: expiredLicenses(12),
    });
    const run = start(['process-expirations', '--now', NOW], ws.dir);
    // Every first attempt recorded: all 12 deliveries are now waiting for their retry.
    await until(async () => (await ws.rows<{ n: number }>('select count(*) n from webhook_attempts'))[0]!.n >= 12);
    const signalled = Date.now();
    run.child.kill('SIGTERM');
    const result = await run.done;
    expect(Date.now() - signalled).toBeLessThan(5000);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('SIGTERM received');
    expect(result.stderr).not.toContain('MaxListenersExceededWarning'); // 12 deliveries waited on one stop signal
    expect(result.stderr).toMatch(/left 12 deliveries pending/);
    expect(await ws.rows('select distinct status, attempts, claimed_by from webhook_deliveries')).toEqual([
      { status: 'pending', attempts: 1, claimed_by: null },
    ]);
    expect(await ws.rows('select count(*) n from webhook_attempts')).toEqual([{ n: 12 }]);
    // The run is recorded as stopped (its row finished in a finally), and status exits 1 on it.
    expect(await ws.rows('select status, exit_code, recorded, delivered, abandoned from runs')).toEqual([
      { status: 'stopped', exit_code: 1, recorded: 12, delivered: 0, abandoned: 0 },
    ]);
    const status = await ws.cli(['status', '--quiet']);
    expect(status.code).toBe(1);
    expect(status.stderr).toMatch(/^warning: the last run \(\S+\) was stopped with exit code 1\n$/);
  }, 30_000);
});

// About the HTTP client: the last_error they end in is one text column, written on every dialect by retry.test.ts.
describe('hostile receivers through the CLI', () => {
  test.each([
    ['never answers', 'hang' as Reply, /timed out after 300 ms/],
    ['resets the connection', 'drop' as Reply, /socket|closed|reset|terminated/i],
    ['sends 5 MiB', 'huge-body' as Reply, /^HTTP 500: x+$/],
    [
      'redirects',
      { status: 302, headers: { location: 'https://elsewhere.example/' } } as Reply,
      /HTTP 302 redirect to https:\/\/elsewhere\.example\/ \(redirects are not followed/,
    ],
    ['speaks broken HTTP', 'malformed' as Reply, /^Response does not match the HTTP\/1\.1 protocol \(Invalid status code\)$/],
  ])(
    'a receiver that %s ends as a clear last_error, and the run exits 3',
    async (_label, reply, pattern) => {
      const receiver = await receiverFor(() => reply);
      const ws = await sqliteProject({ receiver, config: { webhooks: { enabled: true, timeoutMs: 300, retryDelaysMs: [10] } }, licenses: expiredLicenses(1) });
      const started = Date.now();
      const result = await ws.cli(['process-expirations', '--now', NOW]);
      expect(result.code).toBe(3);
      expect(Date.now() - started).toBeLessThan(10_000);
      const [row] = await ws.rows<{ status: string; last_error: string }>('select status, last_error from webhook_deliveries');
      expect(row!.status).toBe('abandoned');
      expect(row!.last_error).toMatch(pattern);
      expect(row!.last_error.length).toBeLessThan(400);
    },
    20_000,
  );

  test('a port that does not speak HTTP', async () => {
    const garbage = await startGarbageServer();
    cleanUp(() => garbage.close());
    const ws = await sqliteProject({
      receiver: garbage,
      config: { webhooks: { enabled: true, timeoutMs: 1000, retryDelaysMs: [] } },
      licenses: expiredLicenses(1),
    });
    const result = await ws.cli(['process-expirations', '--now', NOW]);
    expect(result.code).toBe(3);
    const [row] = await ws.rows<{ last_error: string }>('select last_error from webhook_deliveries');
    expect(row!.last_error).toMatch(/^Response does not match the HTTP\/1\.1 protocol \(Expected HTTP\//);
  });
});

forEachDialect('what the database holds', ({ project, dialect }) => {
  test('rows with an unreadable date or an empty code are skipped with a warning naming their id; the rest is sent', async () => {
    const receiver = await receiverFor(() => 200);
    const ws = await project({ receiver, config: { webhooks: { enabled: true } }, licenses: expiredLicenses(3) });
    // As another program (or a hand-made UPDATE) may leave them.
    await ws.rows("update licenses set expires_at = 'soon-ish' where license_code = 'K-000'");
    await ws.rows("update licenses set license_code = '' where license_code = 'K-001'");
    const ids = await ws.rows<{ id: number }>("select id from licenses where license_code in ('', 'K-000') order by id");
    fs.writeFileSync(path.join(ws.dir, 'extra.json'), JSON.stringify([{ license_code: 'K-OK', expires_at: '2025-01-14T09:00:00Z' }]));
    await ws.cli(['licenses', 'import', 'extra.json']);
    const result = await ws.cli(['process-expirations', '--now', NOW, '--json']);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ skipped: 2, delivered: 2 });
    expect(result.stderr).toContain(`warning: Skipped license id ${ids[1]!.id}: license_code is empty.`);
    expect(result.stderr).toContain(`warning: Skipped license id ${ids[0]!.id} (K-000): expires_at "soon-ish" is not a date.`);
    expect(receiver.requests.map(licenseOf).sort()).toEqual(['K-002', 'K-OK']);
  });

  test('the secret appears in no output of any command, and a SQLite database file is owner-only', async () => {
    const canary = 'CANARY-s3cr3t-7f1e2d';
    const receiver = await receiverFor((_request, index) => (index === 0 ? 500 : 200));
    const ws = await project({ receiver, config: { webhooks: { enabled: true, retryDelaysMs: [] } }, licenses: expiredLicenses(2) });
    const outputs: string[] = [];
    const run = async (...args: string[]) => {
      const result = await ws.cli(args);
      outputs.push(result.stdout, result.stderr);
      return result;
    };
    await run('settings', 'set', 'webhook-secret', canary);
    for (const json of [[], ['--json']]) {
      await run('settings', 'list', ...json);
      await run('settings', 'get', 'webhook-secret', ...json);
      await run('process-expirations', '--now', NOW, ...json);
      await run('deliveries', 'list', ...json);
      await run('deliveries', 'show', '1', ...json);
      await run('deliveries', 'retry', '--abandoned', ...json);
      await run('send-test-event', ...json);
      await run('send-test-event', '--url', 'not-a-url', ...json);
      await run('process-expirations', '--now', NOW, '--verbose', ...json);
    }
    expect(outputs.join('\n')).toContain('********');
    expect(outputs.join('\n')).not.toContain(canary);
    // The canary really signed what was sent, so it was in use while it stayed out of every output.
    expect(receiver.requests.length).toBeGreaterThan(0);
    for (const request of receiver.requests) {
      expect(request.headers['x-webhook-signature']).toBe(createHmac('sha256', canary).update(request.body).digest('hex'));
    }
    // A server database's permissions are the server's business.
    if (dialect === 'sqlite') expect(fs.statSync(ws.databaseLocation).mode & 0o777).toBe(0o600);
  }, 60_000);
});

// Files the SQLite driver cannot use; a server's own errors are in servers.test.ts.
describe('a database the tool cannot use', () => {
  const cwd = () => tempDir();

  test('missing directory: exit 2 naming it', async () => {
    const result = await runCli(['migrate'], { cwd: cwd(), env: { LICENSE_MANAGER_DB: '/nonexistent-dir/lm.sqlite' } });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('Database directory /nonexistent-dir does not exist');
    const list = await runCli(['settings', 'list'], { cwd: cwd(), env: { LICENSE_MANAGER_DB: '/nonexistent-dir/lm.sqlite' } });
    expect(list.code).toBe(2);
    expect(list.stderr).toContain(
      'Database /nonexistent-dir/lm.sqlite does not exist (LICENSE_MANAGER_DB names it; its folder /nonexistent-dir does not exist either); nothing was created.',
    );
  });

  test('a file that is not SQLite: exit 2 naming it', async () => {
    const dir = cwd();
    fs.writeFileSync(path.join(dir, 'notes.sqlite'), 'these are my notes, not a database '.repeat(10));
    const result = await runCli(['process-expirations'], { cwd: dir, env: { LICENSE_MANAGER_DB: 'notes.sqlite' } });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${path.join(dir, 'notes.sqlite')} is not a SQLite database`);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  test('a read-only file: reading works, writing is exit 2 naming the file', async () => {
    const dir = cwd();
    const file = path.join(dir, 'lm.sqlite');
    expect((await runCli(['migrate'], { cwd: dir, env: { LICENSE_MANAGER_DB: file } })).code).toBe(0);
    const asRoot = process.getuid?.() === 0;
    // root ignores file modes; an immutable file is read-only even for root.
    const lock = () => (asRoot ? spawnSync('chattr', ['+i', file]) : fs.chmodSync(file, 0o400));
    const unlock = () => (asRoot ? spawnSync('chattr', ['-i', file]) : fs.chmodSync(file, 0o600));
    lock();
    try {
      const read = await runCli(['settings', 'list'], { cwd: dir, env: { LICENSE_MANAGER_DB: file } });
      expect(read.code).toBe(0);
      const write = await runCli(['settings', 'set', 'webhook-url', 'https://example.com/'], { cwd: dir, env: { LICENSE_MANAGER_DB: file } });
      expect(write.code).toBe(2);
      expect(write.stderr).toContain(`Cannot write database ${file}`);
    } finally {
      unlock();
    }
  });

  test('locked by another writer past the busy timeout: exit 1 saying so', async () => {
    const dir = cwd();
    const file = path.join(dir, 'lm.sqlite');
    expect((await runCli(['migrate'], { cwd: dir, env: { LICENSE_MANAGER_DB: file } })).code).toBe(0);
    const holder = new SQLite(file);
    holder.exec('BEGIN EXCLUSIVE');
    try {
      const result = await runCli(['settings', 'set', 'warning-days', '3'], { cwd: dir, env: { LICENSE_MANAGER_DB: file } });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(`Database ${file} stayed locked by another process`);
    } finally {
      holder.exec('ROLLBACK');
      holder.close();
    }
  }, 20_000);
});

function spawnSync(command: string, args: string[]): void {
  const result = runSync(command, args);
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${result.stderr.toString()}`);
}
