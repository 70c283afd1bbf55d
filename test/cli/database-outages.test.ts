import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, expect, test } from '@jest/globals';
import pg from 'pg';
import { createConnection } from 'mysql2/promise';
import { withContext } from '../../src/commands/context.js';
import { processExpirations } from '../../src/commands/process-expirations.js';
import { runCli } from '../helpers/cli.js';
import { measure } from '../helpers/measure.js';
import { startCli, until } from '../helpers/project.js';
import type { Receiver } from '../helpers/receiver.js';
import { adminQuery, type ServerDatabase, type ServerDialect } from '../helpers/servers.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { cleanUp, expiredLicenses, forEachDialect, receiverFor } from '../helpers/workspace.js';

// A server database that freezes, restarts, drops its connections: made with a TCP proxy in front of the
// shared server (never the server itself), with short database timeouts set through the environment.
const NOW = '2025-01-15T08:00:00Z';

async function proxyTo(server: ServerDatabase): Promise<TcpProxy> {
  const url = new URL(server.url);
  const proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port) });
  cleanUp(() => proxy.close());
  return proxy;
}

const licenseOf = (request: { body: Buffer }) => (JSON.parse(request.body.toString()) as { payload: { license_code: string } }).payload.license_code;

/** How many times each license's event arrived, for those that arrived more than once. */
function repeats(receiver: Receiver): Map<string, number> {
  const counts = new Map<string, number>();
  for (const request of receiver.requests) counts.set(licenseOf(request), (counts.get(licenseOf(request)) ?? 0) + 1);
  return new Map([...counts].filter(([, count]) => count > 1));
}

/** Runs process-expirations in the background with `env`; killed after `timeoutMs` (a hang shows as signal SIGKILL). */
function background(cwd: string, env: NodeJS.ProcessEnv, timeoutMs = 30_000) {
  const run = startCli(['process-expirations', '--now', NOW, '--json'], cwd, { env });
  const timer = setTimeout(() => run.child.kill('SIGKILL'), timeoutMs);
  return { ...run, done: run.done.finally(() => clearTimeout(timer)) };
}

forEachDialect(
  'a server database that freezes, drops connections, or has another session in the way',
  (under) => {
    const dialect = under.dialect as ServerDialect; // a server suite
    let server: ServerDatabase;
    beforeAll(() => {
      server = under.serverDatabase();
    });
    /** A migrated project (owner-only config) whose database is `url` (the proxy) under `tablePrefix`, with `count` licenses that expired the day before NOW. */
    const project = async (url: string, tablePrefix: string, count: number, webhooks: object) =>
      (
        await under.project({
          ownerOnly: true,
          config: { database: { url, tablePrefix }, webhooks: { enabled: true, retryWindowHours: undefined, ...webhooks } },
          ...(count > 0 ? { licenses: expiredLicenses(count, 'K-', 4) } : {}),
        })
      ).dir;

    test('a database that stops answering mid-run: the run ends within the bound, exit 1 naming the database; nothing is lost', async () => {
      const receiver = await receiverFor(() => ({ delayMs: 20, status: 200 }));
      const proxy = await proxyTo(server);
      // About two seconds of sending before the freeze (20 ms answers, two at a time), so that the check below
      // that repeats are only of events first sent just before it has earlier events to tell apart.
      const cwd = await project(proxy.via(server.url), 'frozen_', 300, { url: receiver.url, concurrency: 2 });
      const run = background(cwd, { LICENSE_MANAGER_DB_TIMEOUT_MS: '2000' });
      await until(() => receiver.requests.length >= 200, 25_000);
      proxy.pause();
      const frozenAt = Date.now();
      const result = await run.done;
      const tookMs = Date.now() - frozenAt;
      measure(`frozen database [${dialect}]: the run ended ${tookMs} ms after the freeze (timeout 2000 ms), exit ${String(result.code)}`);
      expect([result.signal, result.code]).toEqual([null, 1]);
      expect(result.stderr).toMatch(new RegExp(`Cannot reach .*"${server.name}" on 127\\.0\\.0\\.1:${proxy.port}.*did not answer within`));
      expect(tookMs).toBeLessThan(15_000);
      const sentWhileFrozen = receiver.requests.filter((request) => request.at > frozenAt + 1500).length;
      expect(sentWhileFrozen).toBe(0);

      proxy.resume();
      const rerun = await runCli(['process-expirations', '--now', NOW, '--json'], { cwd, timeoutMs: 30_000 });
      expect(rerun.code).toBe(0);
      expect(new Set(receiver.requests.map(licenseOf)).size).toBe(300);
      // Only requests on the wire, or answered and not yet written, when the database froze can come twice:
      // each at most once more, and only events first sent in the moment before the freeze or just after it.
      const firstSent = new Map<string, number>();
      for (const request of receiver.requests) if (!firstSent.has(licenseOf(request))) firstSent.set(licenseOf(request), request.at);
      expect([...repeats(receiver).values()].every((count) => count === 2)).toBe(true);
      expect(firstSent.get(licenseOf(receiver.requests[0]!))).toBeLessThan(frozenAt - 1000);
      expect([...repeats(receiver).keys()].filter((code) => firstSent.get(code)! < frozenAt - 1000)).toEqual([]);
      measure(`frozen database [${dialect}]: ${repeats(receiver).size} events sent twice (receiver answering in 20 ms, concurrency 2)`);
    }, 60_000);

    test('the database restarts while the run waits between retries: the run reconnects and carries on', async () => {
      const receiver = await receiverFor((_request, index) => (index < 3 ? 500 : 200));
      const proxy = await proxyTo(server);
      const cwd = await project(proxy.via(server.url), 'restart_', 3, { url: receiver.url, concurrency: 3, retryDelaysMs: [1500] });
      const run = background(cwd, {});
      // The three first attempts are written: every delivery now waits 1.5 s for its retry.
      await until(() => receiver.requests.length >= 3);
      await proxy.quiet(300);
      // As a restarted server host (or a failover) leaves them: the pooled connections look open and are dead;
      // the server is still down when the retries go out, and back 2.5 s after it went.
      proxy.sever();
      await proxy.refuse();
      await new Promise((resolve) => setTimeout(resolve, 2500));
      await proxy.accept();
      const result = await run.done;
      expect([result.code, result.stderr]).toEqual([0, '']);
      expect(JSON.parse(result.stdout)).toMatchObject({ delivered: 3, abandoned: 0 });
      expect(receiver.requests).toHaveLength(6);
    }, 60_000);

    test('a connection reset on a slow link: answers wait a bounded time for their write, so few events are sent twice', async () => {
      // Enough that the run is well under way when the link resets (at 60 requests); the rest is the rerun's.
      const total = 150;
      const concurrency = 4;
      const receiver = await receiverFor(() => ({ delayMs: 2, status: 200 }));
      const proxy = await proxyTo(server);
      const cwd = await project(proxy.via(server.url), 'reset_', total, { url: receiver.url, concurrency });
      // 40 ms each way: a write of attempts (begin, insert, update, commit) takes about a third of a second.
      proxy.delay(40);
      const run = background(cwd, { LICENSE_MANAGER_DB_TIMEOUT_MS: '3000' });
      await until(() => receiver.requests.length >= 60, 30_000);
      proxy.delay(0);
      proxy.reset();
      const resetAt = Date.now();
      await proxy.refuse();
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const startedWhileDown = receiver.requests.filter((request) => request.at > resetAt + 500).length;
      await proxy.accept();
      const result = await run.done;
      expect(result.signal).toBeNull();
      const sentBefore = receiver.requests.length;
      const rerun = await runCli(['process-expirations', '--now', NOW, '--json'], { cwd, timeoutMs: 30_000 });
      expect(rerun.code).toBe(0);
      expect(new Set(receiver.requests.map(licenseOf)).size).toBe(total);
      const twice = [...repeats(receiver).values()];
      measure(
        `connection reset [${dialect}]: first run exit ${String(result.code)} after ${sentBefore} requests; ${twice.length} of ${total} events sent twice (40 ms link, receiver 2 ms, concurrency ${concurrency}); ${startedWhileDown} requests while the database was down`,
      );
      expect(startedWhileDown).toBe(0);
      expect(twice.every((count) => count === 2)).toBe(true);
      // In flight (concurrency) and answered within the write-lag bound (100 ms) plus the write under way.
      expect(twice.length).toBeLessThanOrEqual(40);
    }, 90_000);

    /** A session of the test's own, on the test's database, that holds what it locks until `end`. */
    async function session(): Promise<{ query(statement: string): Promise<unknown>; end(): Promise<void> }> {
      if (dialect === 'postgres') {
        const client = new pg.Client({ connectionString: server.url });
        client.on('error', () => undefined);
        await client.connect();
        return { query: (statement) => client.query(statement), end: () => client.end() };
      }
      const connection = await createConnection({ uri: server.url });
      connection.on('error', () => undefined);
      return { query: (statement) => connection.query(statement), end: () => connection.end() };
    }

    test('a worker paused inside its recording transaction holds the others up only for a bounded time', async () => {
      const receiver = await receiverFor();
      const env = { LICENSE_MANAGER_DB_TIMEOUT_MS: '2000' };
      const cwd = await project(server.url, 'paused_', 20, { url: receiver.url });
      // The paused worker: this test process records the same events, and stops inside its transaction.
      let resume!: () => void;
      const paused = new Promise<void>((resolve) => (resume = resolve));
      let inside!: () => void;
      const recording = new Promise<void>((resolve) => (inside = resolve));
      const holder = withContext({ cwd, env }, (context) =>
        processExpirations(
          {
            ...context,
            licenses: {
              ...context.licenses,
              setStatuses: async (trx, changes, now) => {
                inside();
                await paused;
                return context.licenses.setStatuses(trx, changes, now);
              },
            },
          },
          { now: new Date(NOW) },
        ),
      ).catch((error: unknown) => error);
      cleanUp(async () => {
        resume();
        await holder;
      });
      await recording;
      const started = Date.now();
      const other = await runCli(['process-expirations', '--now', NOW, '--json'], { cwd, env, timeoutMs: 30_000 });
      const tookMs = Date.now() - started;
      measure(`paused recording worker [${dialect}]: the other worker finished in ${tookMs} ms (exit ${String(other.code)})`);
      expect([other.code, other.stderr]).toEqual([0, '']);
      expect(JSON.parse(other.stdout)).toMatchObject({ recorded: 20, delivered: 20 });
      expect(tookMs).toBeLessThan(20_000);
      // The paused worker's session was ended by the server: when it goes on, it records and sends nothing.
      resume();
      expect(await holder).toBeInstanceOf(Error);
      expect(receiver.requests).toHaveLength(20);
      expect(new Set(receiver.requests.map(licenseOf)).size).toBe(20);
    }, 60_000);

    test('a user who may not insert attempts: refused before the first request, and no run sends anything', async () => {
      const receiver = await receiverFor();
      const prefix = 'noinsert_';
      const cwd = await project(server.url, prefix, 3, { url: receiver.url });
      const user = `lm_noinsert_${process.pid}`;
      // Every table the job uses (README, "Using PostgreSQL or MySQL"), with INSERT on webhook_attempts the one thing missing.
      const tables = [
        'licenses',
        'settings',
        'webhook_deliveries',
        'runs',
        'botble_license_states',
        'endpoints',
        'endpoint_headers',
        'endpoint_secrets',
        'endpoint_states',
        'kysely_migration',
        'kysely_migration_lock',
      ].map((table) => prefix + table);
      if (dialect === 'postgres') {
        await adminQuery(dialect, `do $$ begin if not exists (select from pg_roles where rolname = '${user}') then create role ${user} login; end if; end $$`);
        await adminQuery(dialect, `grant select, insert, update, delete on ${tables.join(', ')} to ${user}`, server.name);
        await adminQuery(dialect, `grant select, update, delete on ${prefix}webhook_attempts to ${user}`, server.name);
        await adminQuery(dialect, `grant usage on all sequences in schema public to ${user}`, server.name);
      } else {
        await adminQuery(dialect, `create user if not exists '${user}'@'%'`);
        for (const table of tables) await adminQuery(dialect, `grant select, insert, update, delete on ${server.name}.${table} to '${user}'@'%'`);
        await adminQuery(dialect, `grant select, update, delete on ${server.name}.${prefix}webhook_attempts to '${user}'@'%'`);
      }
      cleanUp(async () => {
        if (dialect === 'mysql') await adminQuery(dialect, `drop user if exists '${user}'@'%'`);
        else await adminQuery(dialect, `drop owned by ${user}; drop role if exists ${user}`, server.name).catch(() => undefined);
      });
      const asUser = new URL(server.url);
      asUser.username = user;
      fs.writeFileSync(
        path.join(cwd, 'license-manager.config.json'),
        JSON.stringify({ database: { url: asUser.toString(), tablePrefix: prefix }, webhooks: { enabled: true, url: receiver.url, retryDelaysMs: [10] } }),
        { mode: 0o600 },
      );
      for (let run = 0; run < 2; run += 1) {
        const result = await runCli(['process-expirations', '--now', NOW], { cwd });
        expect(result.code).toBe(2);
        expect(result.stderr).toMatch(
          new RegExp(`lacks a privilege on .*"${server.name}".*INSERT on ${prefix}webhook_attempts, to record each attempt; nothing was sent`),
        );
      }
      expect(receiver.requests).toHaveLength(0);
    }, 60_000);

    /** `count` pending deliveries written straight into the outbox (as a run records them), ids returned. */
    async function pendingDeliveries(prefix: string, count: number): Promise<number[]> {
      for (let index = 0; index < count; index += 1) {
        await adminQuery(
          dialect,
          `insert into ${prefix}webhook_deliveries (event_id, event_key, event_type, license_id, body, status, created_at) values ('evt-${index}', 'key-${index}', 'license.expired', null, '{"n":${index}}', 'pending', '2025-01-15T08:00:00Z')`,
          server.name,
        );
      }
      return ((await adminQuery(dialect, `select id from ${prefix}webhook_deliveries order by id`, server.name)) as Array<{ id: number }>).map((row) =>
        Number(row.id),
      );
    }

    test('deliveries row-locked by another session before the run: sent later, counted, reported, and status says so', async () => {
      const receiver = await receiverFor();
      const prefix = 'locked_';
      const cwd = await project(server.url, prefix, 0, { url: receiver.url });
      const ids = await pendingDeliveries(prefix, 5);
      const admin = await session();
      cleanUp(() => admin.end());
      await admin.query('begin');
      // An administrator's transaction left open: the two rows it changed stay locked until it ends.
      await admin.query(`update ${prefix}webhook_deliveries set last_error = 'looked at by hand' where id in (${ids[0]}, ${ids[1]})`);
      const env = { LICENSE_MANAGER_DB_TIMEOUT_MS: '2000' };
      const run = await runCli(['process-expirations', '--now', NOW, '--json'], { cwd, env, timeoutMs: 30_000 });
      expect(run.code).toBe(1);
      expect(JSON.parse(run.stdout)).toMatchObject({ delivered: 3, locked: 2 });
      expect(run.stderr).toContain('warning: left 2 due deliveries pending: another database session held row locks on them');
      const status = await runCli(['status', '--quiet'], { cwd, env });
      expect(status.code).toBe(1);
      expect(status.stderr).toContain('another database session held row locks on them');

      await admin.query('rollback');
      const next = await runCli(['process-expirations', '--now', NOW, '--json'], { cwd, env, timeoutMs: 30_000 });
      expect([next.code, JSON.parse(next.stdout)]).toEqual([0, expect.objectContaining({ delivered: 2, locked: 0 })]);
      expect(receiver.requests).toHaveLength(5);
    }, 60_000);

    test('a claimed delivery row-locked by another session mid-run: the run stops within the lock bound, exit 1 saying so', async () => {
      const receiver = await receiverFor((request) => (request.body.toString() === '{"n":0}' ? { delayMs: 1500, status: 200 } : 200));
      const prefix = 'midlock_';
      const cwd = await project(server.url, prefix, 0, { url: receiver.url, concurrency: 1 });
      const ids = await pendingDeliveries(prefix, 3);
      const admin = await session();
      cleanUp(() => admin.end());
      const env = { LICENSE_MANAGER_DB_TIMEOUT_MS: '2000' };
      const run = background(cwd, env);
      // The first delivery is on the wire; an administrator's transaction locks its row before the answer is written.
      await until(() => receiver.requests.length >= 1);
      await admin.query('begin');
      await admin.query(`select id from ${prefix}webhook_deliveries where id = ${ids[0]} for update`);
      const lockedAt = Date.now();
      const result = await run.done;
      const tookMs = Date.now() - lockedAt;
      measure(`row locked mid-run [${dialect}]: the run ended ${tookMs} ms after the lock (exit ${String(result.code)})`);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(new RegExp(`Another session held a lock on .*"${server.name}".*Find it`));
      expect(tookMs).toBeLessThan(20_000);
      await admin.query('rollback');
    }, 60_000);
  },
  { servers: true },
);
