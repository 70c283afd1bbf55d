import fs from 'node:fs';
import { afterAll, afterEach, beforeAll, expect, test } from '@jest/globals';
import { sql, type Kysely } from 'kysely';
import { endpoints } from '../../migrations/0008_endpoints.js';
import { migrations } from '../../migrations/index.js';
import type { Database } from '../../src/storage/database.table.js';
import { migrationsBefore, migratorFor, openAtOldSchema, refusal as failure } from '../helpers/old-schema.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { forEachDialect } from '../helpers/workspace.js';

// Migration 0008: an `endpoints` table, and every delivery belongs to an endpoint; rows of before belong to `default`.
const NOW = '2025-01-23T10:00:00Z';
const BEFORE_ENDPOINTS = migrationsBefore('0008');

let receiver: Receiver;
beforeAll(async () => {
  receiver = await startReceiver();
});
afterAll(async () => {
  await receiver.close();
});

const row = (event: string, status: 'delivered' | 'pending', licenseId: number) => ({
  event_id: `id-${event}`,
  event_key: `license.expiring:${licenseId}:2025-01-30:${event}`,
  event_type: 'license.expiring',
  license_id: licenseId,
  body: `{"event":"${event}"}`,
  status,
  created_at: '2025-01-23T08:00:00Z',
});

forEachDialect('migration 0008: endpoints', ({ workspace }) => {
  let db: Kysely<Database> | undefined;
  afterEach(async () => {
    await db?.destroy();
    db = undefined;
  });

  test('deliveries of before belong to default, keep their attempts, are neither lost nor re-sent; the migration may run again', async () => {
    const ws = workspace({ webhooks: { enabled: true, url: receiver.url, secret: 'migration-secret' } });
    fs.chmodSync(ws.configFile, 0o600);
    db = await openAtOldSchema(ws);
    expect((await migratorFor(db, ws, BEFORE_ENDPOINTS).migrateToLatest()).error).toBeUndefined();
    await db
      .insertInto('licenses')
      .values({ license_code: 'OLD', expires_at: '2025-06-30', created_at: '2024-01-01T00:00:00Z', updated_at: '2024-01-01T00:00:00Z' })
      .execute();
    const { id } = await db.selectFrom('licenses').select('id').executeTakeFirstOrThrow();
    await db
      .insertInto('webhook_deliveries')
      .values([row('sent', 'delivered', id), row('waiting', 'pending', id)])
      .execute();
    const sent = await db.selectFrom('webhook_deliveries').select('id').where('event_id', '=', 'id-sent').executeTakeFirstOrThrow();
    await db
      .insertInto('webhook_attempts')
      .values({ delivery_id: sent.id, attempt: 1, started_at: '2025-01-23T08:00:01Z', duration_ms: 5, status_code: 200, error: null })
      .execute();
    await db.destroy();
    db = undefined;

    const migrated = await ws.cli(['migrate', '--json']);
    expect(migrated.stderr).toBe('');
    expect(JSON.parse(migrated.stdout).applied).toEqual(Object.keys(migrations).filter((name) => name >= '0008'));
    const before = await ws.rows('select id, event_id, status, endpoint from webhook_deliveries order by id');
    expect(before).toEqual([
      { id: sent.id, event_id: 'id-sent', status: 'delivered', endpoint: 'default' },
      { id: expect.any(Number), event_id: 'id-waiting', status: 'pending', endpoint: 'default' },
    ]);
    expect(await ws.rows('select delivery_id, status_code from webhook_attempts')).toEqual([{ delivery_id: sent.id, status_code: 200 }]);

    // Once more over the migrated schema (MySQL commits DDL at once: a migrate cut off half-way is run again).
    await ws.run(async (context) => endpoints.up(context.db));
    expect(await ws.rows('select id, event_id, status, endpoint from webhook_deliveries order by id')).toEqual(before);

    const from = receiver.requests.length;
    const run = await ws.cli(['process-expirations', '--now', NOW]);
    expect([run.code, run.stderr]).toEqual([0, '']);
    // The pending one goes out once; the delivered one is not sent again.
    expect(receiver.requests.slice(from).map((request) => request.body.toString('utf8'))).toEqual(['{"event":"waiting"}']);
  }, 120_000);

  test('one event is unique per endpoint: the same key for another endpoint is a new row, for the same endpoint it is refused', async () => {
    const ws = workspace();
    await ws.ready();
    await ws.run(async (context) => {
      const base = { ...row('x', 'pending', 1), license_id: null };
      await context.db.insertInto('webhook_deliveries').values(base).execute();
      await context.db
        .insertInto('webhook_deliveries')
        .values({ ...base, endpoint: 'crm' })
        .execute();
      // The same endpoint again, or the same event under another id or key: each refused by a unique index.
      for (const again of [{ endpoint: 'crm' }, { event_id: 'another-id' }, { event_key: 'another-key' }]) {
        expect(
          await failure(
            context.db
              .insertInto('webhook_deliveries')
              .values({ ...base, ...again })
              .execute(),
          ),
        ).toMatch(/unique|duplicate/i);
      }
    });
    expect(await ws.rows('select endpoint from webhook_deliveries order by endpoint')).toEqual([{ endpoint: 'crm' }, { endpoint: 'default' }]);
  });

  test('the endpoints table takes each name once; its headers and earlier secrets go with it', async () => {
    const ws = workspace();
    await ws.ready();
    await ws.run(async (context) => {
      const endpoint = { name: 'crm', url: 'http://127.0.0.1:1/hook', secret: 's3', events: null, max_in_flight: null, created_at: NOW, updated_at: NOW };
      await context.db.insertInto('endpoints').values(endpoint).execute();
      const { id } = await context.db.selectFrom('endpoints').select('id').where('name', '=', 'crm').executeTakeFirstOrThrow();
      expect(await failure(context.db.insertInto('endpoints').values(endpoint).execute())).toMatch(/unique|duplicate/i);
      await context.db
        .insertInto('endpoint_headers')
        .values({ endpoint_id: id, name: 'X-Api-Key', value: 'k'.repeat(4096) })
        .execute();
      expect(await failure(context.db.insertInto('endpoint_headers').values({ endpoint_id: id, name: 'X-Api-Key', value: 'again' }).execute())).toMatch(
        /unique|duplicate/i,
      );
      await context.db
        .insertInto('endpoint_secrets')
        .values({ endpoint_id: id, secret: 's'.repeat(1024), valid_until: '2025-01-24T10:00:00Z' })
        .execute();
      await context.db.deleteFrom('endpoints').where('id', '=', id).execute();
    });
    expect(await ws.rows('select name from endpoints')).toEqual([]);
    expect(await ws.rows('select name from endpoint_headers')).toEqual([]);
    expect(await ws.rows('select secret from endpoint_secrets')).toEqual([]);
  });
});

test('SQLite: after the rebuild, foreign keys are checked again and the indexes are back', async () => {
  const { workspace } = await import('../helpers/workspace.js');
  const ws = workspace();
  await ws.ready();
  const indexes = await ws.run(async (context) => {
    expect(
      await failure(
        context.db
          .insertInto('webhook_attempts')
          .values({ delivery_id: 987_654, attempt: 1, started_at: NOW, duration_ms: 1, status_code: null, error: null })
          .execute(),
      ),
    ).toMatch(/FOREIGN KEY/);
    const { rows } = await sql<{
      name: string;
    }>`select name from sqlite_master where type = 'index' and tbl_name = 'webhook_deliveries' and sql is not null order by name`.execute(context.db);
    return rows.map((index) => index.name);
  });
  // 0009's rebuild (the status check) keeps them too, and adds the due-deferred one.
  expect(indexes).toEqual([
    'webhook_deliveries_license_id',
    'webhook_deliveries_status',
    'webhook_deliveries_status_endpoint',
    'webhook_deliveries_status_endpoint_next_attempt',
    // 0011: the textfile's counts by event type and status.
    'webhook_deliveries_type_status_endpoint',
  ]);
});
