import net from 'node:net';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { runCli } from '../helpers/cli.js';
import { adminQuery, urlFor, type ServerDatabase, type ServerDialect } from '../helpers/servers.js';
import { expiredLicenses, forEachDialect, receiverFor } from '../helpers/workspace.js';

const NOW = '2025-01-15T08:00:00Z';

const withPassword = (url: string, user: string, password: string) => {
  const parsed = new URL(url);
  parsed.username = user;
  parsed.password = password;
  return parsed.toString();
};

forEachDialect(
  'server database',
  (under) => {
    const { project, serverDatabase } = under;
    const dialect = under.dialect as ServerDialect; // a server suite
    let server: ServerDatabase;
    /**
     * A project whose config (owner-only, as one holding a password should be) points at `url`, not migrated, with
     * `count` licenses that expired the day before NOW in licenses.json.
     */
    const operatorProject = async (url: string, options: { tablePrefix?: string; webhooks?: object; count?: number } = {}) =>
      (
        await project({
          migrate: false,
          ownerOnly: true,
          config: { database: { url, tablePrefix: options.tablePrefix }, webhooks: { retryWindowHours: undefined, ...options.webhooks } },
          licenses: expiredLicenses(options.count ?? 3, 'K-', 4),
          importLicenses: false,
        })
      ).dir;
    // A login with a password of its own, to prove the password is masked (PostgreSQL here trusts any password).
    const user = `lm_user_${process.pid}`;
    const password = 'hunter2-not-shown';
    beforeAll(async () => {
      server = serverDatabase();
      if (dialect === 'mysql') {
        await adminQuery(dialect, `create user if not exists '${user}'@'%' identified by '${password}'`);
        await adminQuery(dialect, `grant all on ${server.name}.* to '${user}'@'%'`);
        // So that a missing database is reported as missing, not as a database this user may not see.
        await adminQuery(dialect, `grant all on lm_test_no_such_db.* to '${user}'@'%'`);
      }
    });
    afterAll(async () => {
      if (dialect === 'mysql') await adminQuery(dialect, `drop user if exists '${user}'@'%'`);
    });
    const url = () => (dialect === 'mysql' ? withPassword(server.url, user, password) : withPassword(server.url, new URL(server.url).username, password));

    test('migrate creates the tables; before it every other command refuses with exit 2 and says to run migrate', async () => {
      const cwd = await operatorProject(url(), { tablePrefix: 'first_' });
      const refused = await runCli(['licenses', 'list'], { cwd });
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(/is not up to date \(\d+ migrations? to apply: 0001_initial[,)].*Run "license-manager migrate" first/);
      expect(refused.stderr).toContain(`"${server.name}" on 127.0.0.1`);
      expect(refused.stderr).not.toContain(password);

      const migrated = await runCli(['migrate', '--json'], { cwd });
      expect(migrated.code).toBe(0);
      expect(JSON.parse(migrated.stdout)).toEqual({
        database: expect.stringContaining(':****@127.0.0.1'),
        applied: expect.arrayContaining(['0001_initial']),
        upToDate: true,
      });
      expect(migrated.stdout).not.toContain(password);
      expect((await runCli(['migrate'], { cwd })).code).toBe(0);
      const imported = await runCli(['licenses', 'import', 'licenses.json'], { cwd });
      expect(imported.code).toBe(0);
      const listed = await runCli(['licenses', 'list', '--json'], { cwd });
      expect(JSON.parse(listed.stdout).map((row: { license_code: string }) => row.license_code)).toEqual(['K-0000', 'K-0001', 'K-0002']);
    });

    test('a schema older than the code (a later migration not applied): exit 2 naming it, and migrate brings it up', async () => {
      const cwd = await operatorProject(url(), { tablePrefix: 'older_' });
      expect((await runCli(['migrate'], { cwd })).code).toBe(0);
      expect((await runCli(['licenses', 'import', 'licenses.json'], { cwd })).code).toBe(0);
      // As a database last migrated by the first release (0001 only) looks.
      await adminQuery(dialect, "delete from older_kysely_migration where name <> '0001_initial'", server.name);
      await adminQuery(dialect, 'drop table older_runs', server.name);
      await adminQuery(dialect, 'drop table older_botble_license_states', server.name);
      await adminQuery(dialect, 'alter table older_webhook_deliveries drop column schedule_base', server.name);
      await adminQuery(dialect, 'alter table older_webhook_deliveries drop column event_instant', server.name);
      const refused = await runCli(['process-expirations', '--now', NOW], { cwd });
      expect([refused.code, refused.stderr]).toEqual([
        2,
        expect.stringMatching(/is not up to date \(\d+ migrations? to apply: 0002_delivery_schedule[,)].*Run "license-manager migrate"/),
      ]);
      expect((await runCli(['migrate'], { cwd })).code).toBe(0);
      expect((await runCli(['licenses', 'list', '--json'], { cwd })).code).toBe(0);
    });

    test("the whole job through the CLI, with our tables under a prefix beside another application's tables of the same names", async () => {
      // Another application's own "licenses" and "settings" tables, which must stay as they are.
      await adminQuery(dialect, 'create table licenses (id integer primary key, license_code varchar(50))', server.name);
      await adminQuery(dialect, "insert into licenses values (1, 'THEIRS')", server.name);
      const receiver = await receiverFor();
      const cwd = await operatorProject(url(), { tablePrefix: 'lm_', webhooks: { enabled: true, url: receiver.url, secret: 's3cret' } });
      expect((await runCli(['migrate'], { cwd })).code).toBe(0);
      expect((await runCli(['licenses', 'import', 'licenses.json'], { cwd })).code).toBe(0);
      const run = await runCli(['process-expirations', '--now', NOW, '--json'], { cwd });
      expect(run.code).toBe(0);
      expect(JSON.parse(run.stdout)).toMatchObject({ recorded: 3, delivered: 3, markedExpired: 3 });
      expect(run.stdout).not.toContain(password);
      expect(receiver.requests.map((request) => JSON.parse(request.body.toString()).payload.license_code as string).sort((a, b) => a.localeCompare(b))).toEqual(
        ['K-0000', 'K-0001', 'K-0002'],
      );
      const again = await runCli(['process-expirations', '--now', NOW, '--json'], { cwd });
      expect(JSON.parse(again.stdout)).toMatchObject({ recorded: 0, delivered: 0 });
      // status reads the runs table on the server: the last run succeeded, the password stays masked.
      const status = await runCli(['status', '--json'], { cwd });
      expect([status.code, status.stderr]).toEqual([0, '']);
      expect(status.stdout).toContain(':****@127.0.0.1');
      expect(status.stdout).not.toContain(password);

      const list = await runCli(['deliveries', 'list', '--json'], { cwd });
      const deliveries = JSON.parse(list.stdout) as Array<{ id: number; license_code: string; status: string }>;
      expect(deliveries.map((delivery) => [delivery.license_code, delivery.status])).toEqual([
        ['K-0002', 'delivered'],
        ['K-0001', 'delivered'],
        ['K-0000', 'delivered'],
      ]);
      const show = await runCli(['deliveries', 'show', String(deliveries[0]!.id), '--json'], { cwd });
      expect(JSON.parse(show.stdout)).toMatchObject({ delivery: { license_code: 'K-0002', attempts: 1 }, attempts: [{ attempt: 1, status_code: 200 }] });
      expect((await runCli(['settings', 'set', 'warning-days', '14,3'], { cwd })).code).toBe(0);
      expect(JSON.parse((await runCli(['settings', 'get', 'warning-days', '--json'], { cwd })).stdout)).toMatchObject({ value: [14, 3], source: 'settings' });

      expect(await adminQuery(dialect, 'select id, license_code from licenses', server.name)).toEqual([{ id: 1, license_code: 'THEIRS' }]);
      const tables = (await adminQuery(
        dialect,
        dialect === 'postgres'
          ? "select tablename as name from pg_tables where schemaname = 'public' order by 1"
          : 'select table_name as name from information_schema.tables where table_schema = database() order by 1',
        server.name,
      )) as Array<{ name: string }>;
      // Sorted here: the servers' collations order "_" and letters differently.
      expect(
        tables
          .map((table) => table.name)
          .filter((name) => name.startsWith('lm_'))
          .sort(),
      ).toEqual([
        'lm_botble_license_states',
        'lm_endpoint_headers',
        'lm_endpoint_secrets',
        'lm_endpoint_states',
        'lm_endpoints',
        'lm_kysely_migration',
        'lm_kysely_migration_lock',
        'lm_licenses',
        'lm_runs',
        'lm_settings',
        'lm_webhook_attempts',
        'lm_webhook_deliveries',
      ]);
    });

    test('an abandoned delivery is exit 3; deliveries retry re-sends it with the same id and body', async () => {
      let failing = true;
      const receiver = await receiverFor(() => (failing ? 410 : 200));
      // The reference's behaviour (retryWindowHours 0): a 4xx, 410 included, is abandoned at once; retries across runs are test/integration/retries-across-runs.test.ts.
      const cwd = await operatorProject(url(), { tablePrefix: 'retry_', count: 2, webhooks: { enabled: true, url: receiver.url, retryWindowHours: 0 } });
      expect((await runCli(['migrate'], { cwd })).code).toBe(0);
      expect((await runCli(['licenses', 'import', 'licenses.json'], { cwd })).code).toBe(0);
      const run = await runCli(['process-expirations', '--now', NOW, '--json'], { cwd });
      expect([run.code, JSON.parse(run.stdout).abandoned]).toEqual([3, 2]);
      failing = false;
      const retried = await runCli(['deliveries', 'retry', '--abandoned', '--json'], { cwd });
      expect(retried.code).toBe(0);
      expect(JSON.parse(retried.stdout)).toMatchObject({ delivered: 2, abandoned: 0 });
      const [first, second, third, fourth] = receiver.requests;
      expect(receiver.requests).toHaveLength(4);
      expect(new Set([first, second].map((request) => request!.headers['x-webhook-id']))).toEqual(
        new Set([third, fourth].map((request) => request!.headers['x-webhook-id'])),
      );
      expect(new Set([first, second].map((request) => request!.body.toString()))).toEqual(new Set([third, fourth].map((request) => request!.body.toString())));
      const shown = JSON.parse((await runCli(['deliveries', 'list', '--status', 'delivered', '--json'], { cwd })).stdout) as Array<{ attempts: number }>;
      expect(shown.map((delivery) => delivery.attempts)).toEqual([2, 2]);
    });

    test('a missing database, an unknown user and an unreachable server: clear messages naming host and database, password masked', async () => {
      const missing = await runCli(['migrate'], { cwd: await operatorProject(urlFor(url(), 'lm_test_no_such_db')) });
      expect(missing.code).toBe(2);
      expect(missing.stderr).toMatch(/database "lm_test_no_such_db" on 127\.0\.0\.1:\d+ .* does not exist/);
      expect(missing.stderr).toMatch(/CREATE DATABASE lm_test_no_such_db/);

      const wrongLogin = await runCli(['licenses', 'list'], { cwd: await operatorProject(withPassword(server.url, 'lm_nobody', password)) });
      expect([wrongLogin.code, wrongLogin.stderr]).toEqual([
        2,
        expect.stringMatching(new RegExp(`Cannot log in to .*"${server.name}" on 127\\.0\\.0\\.1.*Check the user name and password`)),
      ]);

      if (dialect === 'mysql') {
        const wrongPassword = await runCli(['licenses', 'list'], { cwd: await operatorProject(withPassword(server.url, user, 'not-the-password')) });
        expect(wrongPassword.code).toBe(2);
        expect(wrongPassword.stderr).toMatch(/Cannot log in to/);
        expect(wrongPassword.stderr).not.toContain('not-the-password');
      }

      const closed = new URL(url());
      closed.port = '1';
      const unreachable = await runCli(['licenses', 'list'], { cwd: await operatorProject(closed.toString()) });
      expect(unreachable.code).toBe(1);
      expect(unreachable.stderr).toMatch(/Cannot reach .* on 127\.0\.0\.1:1 .*Is the server running/);
      for (const result of [missing, wrongLogin, unreachable]) {
        expect(result.stderr).not.toContain(password);
        expect(result.stderr).toContain(':****@');
      }
    });

    test('a user without the privilege to create tables: exit 2 naming the database', async () => {
      const reader = `lm_reader_${process.pid}`;
      if (dialect === 'mysql') {
        await adminQuery(dialect, `create user if not exists '${reader}'@'%' identified by '${password}'`);
        await adminQuery(dialect, `grant select on ${server.name}.* to '${reader}'@'%'`);
      } else {
        await adminQuery(
          dialect,
          `do $$ begin if not exists (select from pg_roles where rolname = '${reader}') then create role ${reader} login; end if; end $$`,
        );
        await adminQuery(dialect, `revoke create on schema public from public`, server.name);
      }
      try {
        const result = await runCli(['migrate'], { cwd: await operatorProject(withPassword(server.url, reader, password), { tablePrefix: 'denied_' }) });
        expect(result.code).toBe(2);
        // MySQL / MariaDB: checked before any change (DDL commits at once there), naming what is missing and the GRANT line.
        if (dialect === 'mysql')
          expect(result.stderr).toContain(
            `The database user '${reader}'@'%' lacks CREATE, INSERT, UPDATE, DELETE, INDEX, REFERENCES, ALTER on database ${server.name}, which migrate needs`,
          );
        else expect(result.stderr).toMatch(new RegExp(`The database user lacks a privilege on .*"${server.name}" on 127\\.0\\.0\\.1`));
        expect(result.stderr).not.toContain(password);
      } finally {
        if (dialect === 'mysql') await adminQuery(dialect, `drop user if exists '${reader}'@'%'`);
        else await adminQuery(dialect, `drop owned by ${reader}; drop role if exists ${reader}`, server.name).catch(() => undefined);
      }
    });

    test('a port that closes every connection at once: exit 1, "Cannot connect", not a connection "lost"', async () => {
      const closer = net.createServer((socket) => socket.destroy());
      await new Promise<void>((resolve) => closer.listen(0, '127.0.0.1', resolve));
      try {
        const port = (closer.address() as net.AddressInfo).port;
        const result = await runCli(['status'], { cwd: await operatorProject(`${dialect}://someone@127.0.0.1:${port}/licenses`) });
        expect(result.code).toBe(1);
        expect(result.stderr).toMatch(
          new RegExp(
            `Cannot connect to .*"licenses" on 127\\.0\\.0\\.1:${port}.* Is a (PostgreSQL|MySQL or MariaDB) server listening at 127\\.0\\.0\\.1:${port}\\?`,
          ),
        );
        expect(result.stderr).not.toContain('Lost the connection');
      } finally {
        closer.close();
      }
    });

    test('a user who may not read our bookkeeping table is told about the privilege, not sent to migrate', async () => {
      const reader = `lm_hidden_${process.pid}`;
      const admin = await operatorProject(url(), { tablePrefix: 'hidden_' });
      expect((await runCli(['migrate'], { cwd: admin })).code).toBe(0);
      // MySQL shows a user only the tables it may read: with none of ours, the schema looked unmigrated.
      if (dialect === 'mysql') {
        await adminQuery(dialect, `create user if not exists '${reader}'@'%' identified by '${password}'`);
        await adminQuery(dialect, `grant select on ${server.name}.hidden_licenses to '${reader}'@'%'`);
      } else {
        await adminQuery(
          dialect,
          `do $$ begin if not exists (select from pg_roles where rolname = '${reader}') then create role ${reader} login; end if; end $$`,
        );
      }
      try {
        const result = await runCli(['licenses', 'list'], {
          cwd: await operatorProject(withPassword(server.url, reader, password), { tablePrefix: 'hidden_' }),
        });
        expect(result.code).toBe(2);
        expect(result.stderr).toMatch(new RegExp(`The database user lacks a privilege on .*"${server.name}" on 127\\.0\\.0\\.1.*hidden_kysely_migration`));
        expect(result.stderr).not.toContain('migrate');
      } finally {
        if (dialect === 'mysql') await adminQuery(dialect, `drop user if exists '${reader}'@'%'`);
        else await adminQuery(dialect, `drop owned by ${reader}; drop role if exists ${reader}`, server.name).catch(() => undefined);
      }
    });

    test('connections killed mid-run: exit 1 naming the database, and the next run finishes the job with nothing lost', async () => {
      const receiver = await receiverFor(() => ({ delayMs: 100, status: 200 }));
      // 60 events at 100 ms, two at a time: about 3 s of sending, so the kills land mid-run even on a loaded machine (at 40 ms the run could end before the first kill).
      const cwd = await operatorProject(url(), { tablePrefix: 'killed_', count: 60, webhooks: { enabled: true, url: receiver.url, concurrency: 2 } });
      expect((await runCli(['migrate'], { cwd })).code).toBe(0);
      expect((await runCli(['licenses', 'import', 'licenses.json'], { cwd })).code).toBe(0);
      // A process of its own: the rerun takes its claims over because that process has exited.
      const running = runCli(['process-expirations', '--now', NOW], { cwd, timeoutMs: 30_000, process: true });
      let finished = false;
      void running.then(() => (finished = true));
      // Kill every session on the database, over and over, until the run ends (bounded in count).
      const kill =
        dialect === 'postgres'
          ? `select pg_terminate_backend(pid) from pg_stat_activity where datname = '${server.name}' and pid <> pg_backend_pid()`
          : `select id from information_schema.processlist where db = '${server.name}' and id <> connection_id()`;
      for (let round = 0; round < 300 && !finished; round += 1) {
        if (receiver.requests.length >= 4) {
          if (dialect === 'postgres') await adminQuery(dialect, kill);
          else for (const row of (await adminQuery(dialect, kill)) as Array<{ id: number }>) await adminQuery(dialect, `kill ${row.id}`).catch(() => undefined);
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const result = await running;
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(new RegExp(`Lost the connection to .*"${server.name}" on 127\\.0\\.0\\.1.*Nothing is lost`));
      expect(result.stderr).not.toContain(password);

      const rerun = await runCli(['process-expirations', '--now', NOW, '--json'], { cwd });
      expect(rerun.code).toBe(0);
      const codes = receiver.requests.map((request) => JSON.parse(request.body.toString()).payload.license_code as string);
      // Every event arrived. A repeat is only of a request sent but not yet recorded when the connection died:
      // each at most once more, and no more of them than the run's claim window (64 deliveries).
      expect(new Set(codes).size).toBe(60);
      const counts = new Map<string, number>();
      for (const code of codes) counts.set(code, (counts.get(code) ?? 0) + 1);
      expect(Math.max(...counts.values())).toBeLessThanOrEqual(2);
      expect(codes.length - 60).toBeLessThan(60);
      const log = JSON.parse((await runCli(['deliveries', 'list', '--limit', '100', '--json'], { cwd })).stdout) as Array<{ status: string }>;
      expect(log).toHaveLength(60);
      expect(log.every((delivery) => delivery.status === 'delivered')).toBe(true);
    });
  },
  { servers: true },
);
