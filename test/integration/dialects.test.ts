import SQLite from 'better-sqlite3';
import { Kysely, sql, SqliteDialect } from 'kysely';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { ExitError } from '../../src/errors.js';
import { TablePrefixPlugin, tablePrefixOf } from '../../src/sql/table-prefix.js';
import type { Database } from '../../src/storage/database.table.js';
import { RECORDING_TURN_WAIT_MS, recordEvents, type NewDelivery, type NewDeliveries } from '../../src/storage/deliveries/record.repository.js';
import { adminQuery, createServerDatabase, sessionQuery, testDialects, type ServerDatabase } from '../helpers/servers.js';
import { aLicense, forEachDialect, workspace } from '../helpers/workspace.js';

describe('the table prefix plugin', () => {
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: new SQLite(':memory:') }), plugins: [new TablePrefixPlugin('lm_')] });

  test('renames our tables wherever they appear, and leaves aliases and other tables alone', () => {
    const joined = db
      .selectFrom('webhook_deliveries as d')
      .leftJoin('licenses as l', 'l.id', 'd.license_id')
      .selectAll('d')
      .select('l.license_code')
      .where('d.id', 'in', db.selectFrom('webhook_attempts').select('webhook_attempts.delivery_id'))
      .compile().sql;
    expect(joined).toBe(
      'select "d".*, "l"."license_code" from "lm_webhook_deliveries" as "d" left join "lm_licenses" as "l" on "l"."id" = "d"."license_id" where "d"."id" in (select "lm_webhook_attempts"."delivery_id" from "lm_webhook_attempts")',
    );
    const raw = sql`update ${sql.table('settings')} set value = 1`.compile(db).sql;
    expect(raw).toBe('update "lm_settings" set value = 1');
    const other = (db as unknown as Kysely<Record<string, { id: number }>>).selectFrom('lm_licenses').select('id').compile().sql;
    expect(other).toBe('select "id" from "lm_licenses"');
    expect(db.schema.createIndex('licenses_status').on('licenses').column('status').compile().sql).toBe(
      'create index "lm_licenses_status" on "lm_licenses" ("status")',
    );
  });
});

/** Deliveries already in memory, as recordEvents takes them. */
function newDeliveries(deliveries: NewDelivery[]): NewDeliveries {
  return { count: deliveries.length, slice: (start, end) => deliveries.slice(start, end) };
}

forEachDialect('storage', ({ workspace, dialect }) => {
  const zone = process.env.TZ;
  afterEach(() => {
    if (zone === undefined) delete process.env.TZ;
    else process.env.TZ = zone;
  });

  test.each(['America/Los_Angeles', 'Asia/Ho_Chi_Minh'])('a DATE column reads back as the YYYY-MM-DD it holds with TZ=%s', async (timeZone) => {
    process.env.TZ = timeZone;
    const ws = workspace();
    // Not one of our tables: a stand-in for a DATE column of another application's (Botble's expires_at).
    const table = sql.table(`dates_${timeZone.replace('/', '_').toLowerCase()}`);
    const values = await ws.run(async ({ db }) => {
      await sql`create table ${table} (d date)`.execute(db);
      await sql`insert into ${table} (d) values ('2025-01-30'), ('2024-12-31')`.execute(db);
      return (await sql<{ d: unknown }>`select d from ${table} order by d`.execute(db)).rows.map((row) => row.d);
    });
    expect(values).toEqual(['2024-12-31', '2025-01-30']);
  });

  test('an event recorded twice, by two runs at once, is one row (insert unless the event key exists)', async () => {
    const ws = workspace();
    await ws.seed([{ license_code: 'TWICE' }]);
    const delivery = (id: string) => ({ event_id: id, event_key: 'license.expired:1:2025-01-14', event_type: 'license.expired', license_id: 1, body: '{}' });
    const results = await ws.run(({ db }) =>
      Promise.all([
        recordEvents(db, newDeliveries([delivery('a')]), { expired: [], reactivated: [] }, 'T'),
        recordEvents(db, newDeliveries([delivery('b')]), { expired: [], reactivated: [] }, 'T'),
      ]),
    );
    expect(results.map((result) => result.inserted).sort((a, b) => a - b)).toEqual([0, 1]);
    const rows = await ws.run(({ db }) => db.selectFrom('webhook_deliveries').select(['event_key', 'status']).execute());
    expect(rows).toEqual([{ event_key: 'license.expired:1:2025-01-14', status: 'pending' }]);
  });

  test(`license codes are compared byte for byte on ${dialect}: "abc" and "ABC" are two licenses`, async () => {
    const ws = workspace();
    await ws.seed([{ license_code: 'abc' }, { license_code: 'ABC' }]);
    const codes = await ws.run(({ db }) => db.selectFrom('licenses').select('license_code').orderBy('license_code').execute());
    expect(codes.map((row) => row.license_code)).toEqual(['ABC', 'abc']);
  });
});

// PostgreSQL only: there, runs that record at once take turns under an advisory lock (see waitForRecordingTurn).
(testDialects().includes('postgres') ? describe : describe.skip)('recording on PostgreSQL', () => {
  let server: ServerDatabase | undefined;
  beforeAll(async () => {
    server = await createServerDatabase('postgres');
  });
  afterAll(async () => {
    await server?.drop();
  });

  test('a run that had to wait for another to record looks its events up again before inserting them', async () => {
    const ws = workspace({}, {}, server);
    await ws.seed([aLicense({ license_code: 'TURN' })]);
    const delivery = (id: string, key: string) => ({ event_id: id, event_key: key, event_type: 'license.expired', license_id: 1, body: '{}' });
    let lookedUp = 0;
    const withLookup = (key: string) => ({
      ...newDeliveries([delivery(key, key)]),
      stillNew: async () => {
        lookedUp += 1;
        return newDeliveries([]);
      },
    });
    const none = { expired: [], reactivated: [] };

    // Nobody else recording: no wait, no second look.
    expect(await ws.run(({ db }) => recordEvents(db, withLookup('first'), none, 'T'))).toMatchObject({ inserted: 1 });
    expect(lookedUp).toBe(0);

    // Another session holds the turn (as a run recording at that moment does): the run waits, then looks again.
    const holder = new pg.Client({ connectionString: server!.url });
    await holder.connect();
    try {
      const prefix = await ws.run(async ({ db }) => tablePrefixOf(db));
      await holder.query('begin');
      await holder.query('select pg_advisory_xact_lock(hashtext($1))', [`license-manager:record:${prefix}`]);
      let settled = false;
      const recording = ws.run(({ db }) => recordEvents(db, withLookup('second'), none, 'T')).finally(() => (settled = true));
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(settled).toBe(false);
      await holder.query('commit');
      expect(await recording).toMatchObject({ inserted: 0 });
      expect(lookedUp).toBe(1);
    } finally {
      await holder.end();
    }
    const keys = await ws.run(({ db }) => db.selectFrom('webhook_deliveries').select('event_key').execute());
    expect(keys).toEqual([{ event_key: 'first' }]);
  });

  test('a turn held for longer than RECORDING_TURN_WAIT_MS (a paused run) does not stop the others: they record without it', async () => {
    const ws = workspace({}, {}, server);
    await ws.seed([aLicense({ license_code: 'HELD' })]);
    const prefix = await ws.run(async ({ db }) => tablePrefixOf(db));
    const holder = new pg.Client({ connectionString: server!.url });
    await holder.connect();
    try {
      await holder.query('begin');
      await holder.query('select pg_advisory_xact_lock(hashtext($1))', [`license-manager:record:${prefix}`]);
      const started = Date.now();
      const delivery = { event_id: 'held', event_key: 'held', event_type: 'license.expired', license_id: 1, body: '{}' };
      const result = await ws.run(({ db }) => recordEvents(db, newDeliveries([delivery]), { expired: [], reactivated: [] }, 'T'));
      expect(result.inserted).toBe(1);
      expect(Date.now() - started).toBeGreaterThanOrEqual(RECORDING_TURN_WAIT_MS);
    } finally {
      await holder.query('rollback');
      await holder.end();
    }
  }, 20_000);
});

const serverDialects = testDialects().filter((dialect) => dialect !== 'sqlite');
if (serverDialects.length === 0) test.skip('a statement cancelled by the server (no server answered; see the line printed at the start)', () => undefined);

forEachDialect(
  'errors a server gives',
  ({ workspace, dialect, serverDatabase }) => {
    test("the test helpers' kept admin session is replaced when the server ends it, and after a failed batch", async () => {
      const server = serverDatabase();
      expect(await sessionQuery(server, 'select 1 as one')).toEqual([{ one: 1 }]);
      // The server ends every session on the database, as test/cli/servers.test.ts does in the middle of a run.
      if (dialect === 'postgres') await adminQuery(dialect, `select pg_terminate_backend(pid) from pg_stat_activity where datname = '${server.name}'`);
      else
        for (const row of (await adminQuery('mysql', `select id from information_schema.processlist where db = '${server.name}'`)) as Array<{ id: number }>)
          await adminQuery('mysql', `kill ${row.id}`);
      // A statement sent before the session's end is known may fail; the next one gets a new session.
      await sessionQuery(server, 'select 1').catch(() => undefined);
      expect(await sessionQuery(server, 'select 2 as two')).toEqual([{ two: 2 }]);
      // A batch that fails inside a transaction does not leave the next one in it (PostgreSQL would refuse every
      // statement of an aborted transaction until a rollback).
      await expect(sessionQuery(server, 'begin; select no_such_column')).rejects.toThrow(/no_such_column/);
      expect(await sessionQuery(server, 'select 3 as three')).toEqual([{ three: 3 }]);
    });

    test("a statement cancelled by the server's time limit is named as such, not as an unreachable server", async () => {
      const ws = workspace();
      // One connection, so the session setting and the slow statement meet.
      const slow = (db: Kysely<Database>) =>
        db.connection().execute(async (connection) => {
          if (dialect === 'postgres') {
            await sql`set statement_timeout = 50`.execute(connection);
            await sql`select pg_sleep(2)`.execute(connection);
          } else {
            await sql`set statement max_statement_time = 0.05 for select sleep(2)`.execute(connection);
          }
        });
      const error = (await ws.run(({ db }) => slow(db)).catch((caught: unknown) => caught)) as ExitError;
      expect(error).toBeInstanceOf(ExitError);
      expect(error.code).toBe(1);
      expect(error.message).toMatch(
        /^A query on (PostgreSQL|MySQL) database "lm_test_\w+" on 127\.0\.0\.1:\d+ \(.*\) ran longer than the server's statement time limit and was cancelled \(.*\)\. The server answers; raise (statement_timeout|max_statement_time)/,
      );
      expect(error.message).not.toMatch(/Cannot reach|Lost the connection/);
    });
  },
  serverDialects,
);
