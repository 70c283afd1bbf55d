import { afterEach, expect, test } from '@jest/globals';
import type { Kysely } from 'kysely';
import { retries } from '../../migrations/0009_retries.js';
import { migrations } from '../../migrations/index.js';
import type { Database } from '../../src/storage/database.table.js';
import { migrationsBefore, migratorFor, openAtOldSchema, refusal as failure } from '../helpers/old-schema.js';
import { forEachDialect } from '../helpers/workspace.js';

// Migration 0009: deliveries that wait between runs (deferred, parked, superseded), why, until when; per-endpoint state.
const BEFORE_RETRIES = migrationsBefore('0009');

const OLD_STATUSES = ['pending', 'delivering', 'delivered', 'abandoned'] as const;
const row = (status: (typeof OLD_STATUSES)[number], index: number) => ({
  event_id: `id-${status}`,
  event_key: `license.expiring:${index}:2025-01-30:7d`,
  event_type: 'license.expiring',
  license_id: index,
  body: `{"event":"${status}"}`,
  status,
  attempts: index,
  last_status_code: status === 'abandoned' ? 503 : null,
  last_error: status === 'abandoned' ? 'HTTP 503' : null,
  created_at: '2025-01-23T08:00:00Z',
  endpoint: index % 2 === 0 ? 'default' : 'crm',
});

const SELECT_DELIVERIES = 'select id, event_id, status, attempts, last_error, endpoint, next_attempt_at, status_reason from webhook_deliveries order by id';

forEachDialect('migration 0009: retries across runs', ({ workspace }) => {
  let db: Kysely<Database> | undefined;
  afterEach(async () => {
    await db?.destroy();
    db = undefined;
  });

  test('an 0008 database keeps its deliveries, attempts and runs; the new statuses, times and reasons fit; migrate again is a no-op', async () => {
    const ws = workspace();
    db = await openAtOldSchema(ws);
    expect((await migratorFor(db, ws, BEFORE_RETRIES).migrateToLatest()).error).toBeUndefined();
    await db
      .insertInto('webhook_deliveries')
      .values(OLD_STATUSES.map((status, index) => row(status, index)))
      .execute();
    const first = await db.selectFrom('webhook_deliveries').select('id').where('event_id', '=', 'id-abandoned').executeTakeFirstOrThrow();
    await db
      .insertInto('webhook_attempts')
      .values({ delivery_id: first.id, attempt: 1, started_at: '2025-01-23T08:00:01Z', duration_ms: 5, status_code: 503, error: null })
      .execute();
    await db
      .insertInto('runs')
      .values({ id: 'old-run', command: 'process-expirations', started_at: '2025-01-23T08:00:00Z', status: 'abandoned', exit_code: 3 })
      .execute();
    // The schema before refuses the new statuses.
    expect(await failure(db.updateTable('webhook_deliveries').set({ status: 'deferred' }).where('event_id', '=', 'id-pending').execute())).toMatch(
      /check|constraint/i,
    );
    await db.destroy();
    db = undefined;

    const migrated = await ws.cli(['migrate', '--json']);
    expect(migrated.stderr).toBe('');
    expect(JSON.parse(migrated.stdout).applied).toEqual(Object.keys(migrations).filter((name) => name >= '0009'));
    const before = await ws.rows(SELECT_DELIVERIES);
    expect(before).toEqual(
      OLD_STATUSES.map((status, index) => ({
        id: expect.any(Number),
        event_id: `id-${status}`,
        status,
        attempts: index,
        last_error: status === 'abandoned' ? 'HTTP 503' : null,
        endpoint: index % 2 === 0 ? 'default' : 'crm',
        next_attempt_at: null,
        status_reason: null,
      })),
    );
    expect(await ws.rows('select delivery_id, status_code from webhook_attempts')).toEqual([{ delivery_id: first.id, status_code: 503 }]);
    expect(await ws.rows('select id, exit_code, deferred, parked, superseded from runs')).toEqual([
      { id: 'old-run', exit_code: 3, deferred: 0, parked: 0, superseded: 0 },
    ]);

    // Once more over the migrated schema (MySQL commits DDL at once: a migrate cut off half-way is run again).
    await ws.run(async (context) => retries.up(context.db));
    expect(await ws.rows(SELECT_DELIVERIES)).toEqual(before);

    await ws.run(async ({ db: migratedDb }) => {
      const deliveries = migratedDb.updateTable('webhook_deliveries');
      await deliveries
        .set({ status: 'deferred', next_attempt_at: '2025-01-23T08:05:00Z', status_reason: 'HTTP 503, Retry-After 120 s' })
        .where('event_id', '=', 'id-pending')
        .execute();
      await deliveries.set({ status: 'parked', status_reason: 'endpoint gone (410)' }).where('event_id', '=', 'id-delivering').execute();
      await deliveries.set({ status: 'superseded', status_reason: 'license renewed to 2027-02-01' }).where('event_id', '=', 'id-abandoned').execute();
      // Still a check: a status outside the seven is refused.
      expect(
        await failure(
          deliveries
            .set({ status: 'lost' as never })
            .where('event_id', '=', 'id-delivered')
            .execute(),
        ),
      ).toMatch(/check|constraint/i);
      // Endpoint state by name: default and a config-file endpoint have no endpoints row.
      await migratedDb
        .insertInto('endpoint_states')
        .values([
          { endpoint: 'default', circuit: '{"state":"open"}', disabled_at: null, disabled_reason: null, updated_at: '2025-01-23T08:00:05Z' },
          {
            endpoint: 'from-config',
            circuit: null,
            disabled_at: '2025-01-23T08:00:06Z',
            disabled_reason: 'endpoint gone (410)',
            updated_at: '2025-01-23T08:00:06Z',
          },
        ])
        .execute();
      expect(
        await failure(
          migratedDb
            .insertInto('endpoint_states')
            .values({ endpoint: 'default', circuit: null, disabled_at: null, disabled_reason: null, updated_at: 'x' })
            .execute(),
        ),
      ).toMatch(/unique|duplicate|primary/i);
    });
    expect(await ws.rows("select event_id, next_attempt_at, status_reason from webhook_deliveries where status = 'deferred'")).toEqual([
      { event_id: 'id-pending', next_attempt_at: '2025-01-23T08:05:00Z', status_reason: 'HTTP 503, Retry-After 120 s' },
    ]);
    expect(await ws.rows('select endpoint, disabled_reason from endpoint_states order by endpoint')).toEqual([
      { endpoint: 'default', disabled_reason: null },
      { endpoint: 'from-config', disabled_reason: 'endpoint gone (410)' },
    ]);
  }, 120_000);

  test('down to 0008 takes the waiting rows back to pending (superseded to abandoned) and refuses the new statuses again; up again', async () => {
    const ws = workspace();
    await ws.ready();
    await ws.run(async (context) => {
      await context.db
        .insertInto('webhook_deliveries')
        .values(OLD_STATUSES.map((status, index) => row(status, index)))
        .execute();
      const set = (eventId: string, status: 'deferred' | 'parked' | 'superseded') =>
        context.db
          .updateTable('webhook_deliveries')
          .set({ status, next_attempt_at: status === 'deferred' ? '2025-01-23T09:00:00Z' : null, status_reason: status })
          .where('event_id', '=', eventId)
          .execute();
      await set('id-pending', 'deferred');
      await set('id-delivering', 'parked');
      await set('id-delivered', 'superseded');
      const migrator = migratorFor(context.db, ws);
      expect((await migrator.migrateTo('0008_endpoints')).error).toBeUndefined();
    });
    db = await openAtOldSchema(ws);
    expect(
      (await db.selectFrom('webhook_deliveries').select(['event_id', 'status']).orderBy('id').execute()).map(
        (delivery) => `${delivery.event_id} ${delivery.status}`,
      ),
    ).toEqual(['id-pending pending', 'id-delivering pending', 'id-delivered abandoned', 'id-abandoned abandoned']);
    expect(await failure(db.updateTable('webhook_deliveries').set({ status: 'deferred' }).where('event_id', '=', 'id-pending').execute())).toMatch(
      /check|constraint/i,
    );
    expect((await migratorFor(db, ws).migrateToLatest()).error).toBeUndefined();
    await db
      .updateTable('webhook_deliveries')
      .set({ status: 'deferred', next_attempt_at: '2025-01-24T00:00:00Z' })
      .where('event_id', '=', 'id-pending')
      .execute();
    expect(await ws.rows("select event_id from webhook_deliveries where status = 'deferred'")).toEqual([{ event_id: 'id-pending' }]);
  }, 120_000);
});

test('SQLite: after the rebuild, foreign keys are checked again and every index is back, the due-deferred one included', async () => {
  const { workspace } = await import('../helpers/workspace.js');
  const ws = workspace();
  await ws.ready();
  const indexes = await ws.run(async (context) => {
    expect(
      await failure(
        context.db
          .insertInto('webhook_attempts')
          .values({ delivery_id: 987_654, attempt: 1, started_at: '2025-01-23T08:00:00Z', duration_ms: 1, status_code: null, error: null })
          .execute(),
      ),
    ).toMatch(/FOREIGN KEY/);
    return context.db.introspection
      .getTables()
      .then((tables) => tables.find((table) => table.name === 'webhook_deliveries')?.columns.map((column) => column.name));
  });
  expect(indexes).toEqual(expect.arrayContaining(['next_attempt_at', 'status_reason', 'endpoint']));
  expect(
    (
      await ws.rows<{ name: string }>(
        "select name from sqlite_master where type = 'index' and tbl_name = 'webhook_deliveries' and sql is not null order by name",
      )
    ).map((index) => index.name),
  ).toEqual([
    'webhook_deliveries_license_id',
    'webhook_deliveries_status',
    'webhook_deliveries_status_endpoint',
    'webhook_deliveries_status_endpoint_next_attempt',
    // 0011: the textfile's counts by event type and status.
    'webhook_deliveries_type_status_endpoint',
  ]);
});
