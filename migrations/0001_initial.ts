import { sql, type Kysely, type Migration } from 'kysely';
import { columnTypes, createIndex, createTable } from './column-types.js';

// Migrations take Kysely<any> so they never depend on today's row types.
// On SQLite this creates exactly what the first release created (types 'integer' and 'text').
export const initial: Migration = {
  async up(db: Kysely<any>) {
    const t = columnTypes(db);
    // An ISO-8601 time or date as stored: `2025-01-31T12:00:00Z`, or what another system wrote.
    const time = t.key(40);
    await t
      .table(createTable(db, 'licenses'))
      .addColumn('id', t.idType, t.id)
      .addColumn('license_code', t.key(255), (col) => col.notNull().unique())
      .addColumn('product_id', t.text)
      .addColumn('product_name', t.text)
      .addColumn('customer_id', t.text)
      .addColumn('email', t.text)
      .addColumn('status', t.key(16), (col) =>
        col
          .notNull()
          .defaultTo('active')
          .check(sql`status in ('active', 'suspended', 'revoked', 'expired')`),
      )
      .addColumn('expires_at', time)
      .addColumn('updates_until', time)
      .addColumn('created_at', time, (col) => col.notNull())
      .addColumn('updated_at', time, (col) => col.notNull())
      .execute();
    // The due-window queries: a status equality plus a range on the date.
    await createIndex(db, 'licenses_status_expires_at', 'licenses', ['status', 'expires_at']);
    await createIndex(db, 'licenses_status_updates_until', 'licenses', ['status', 'updates_until']);

    await t
      .table(createTable(db, 'settings'))
      .addColumn('key', t.key(100), (col) => col.primaryKey())
      .addColumn('value', t.text, (col) => col.notNull())
      .addColumn('updated_at', time, (col) => col.notNull())
      .execute();

    await t
      .table(createTable(db, 'webhook_deliveries'))
      .addColumn('id', t.idType, t.id)
      .addColumn('event_id', t.key(64), (col) => col.notNull().unique())
      .addColumn('event_key', t.key(255), (col) => col.notNull().unique())
      .addColumn('event_type', t.key(64), (col) => col.notNull())
      .addColumn('license_id', 'integer')
      .addColumn('body', t.text, (col) => col.notNull())
      .addColumn('status', t.key(16), (col) => col.notNull().check(sql`status in ('pending', 'delivering', 'delivered', 'abandoned')`))
      .addColumn('attempts', 'integer', (col) => col.notNull().defaultTo(0))
      .addColumn('last_status_code', 'integer')
      .addColumn('last_error', t.text)
      .addColumn('claimed_by', t.key(255))
      .addColumn('lease_until', t.epochMs)
      .addColumn('created_at', time, (col) => col.notNull())
      .addColumn('completed_at', time)
      .execute();
    await createIndex(db, 'webhook_deliveries_status', 'webhook_deliveries', ['status', 'id']);
    await createIndex(db, 'webhook_deliveries_license_id', 'webhook_deliveries', ['license_id']);

    await t
      .table(createTable(db, 'webhook_attempts'))
      .addColumn('id', t.idType, t.id)
      .addColumn('delivery_id', 'integer', (col) => col.notNull().references('webhook_deliveries.id'))
      .addColumn('attempt', 'integer', (col) => col.notNull())
      .addColumn('started_at', time, (col) => col.notNull())
      .addColumn('duration_ms', 'integer', (col) => col.notNull())
      .addColumn('status_code', 'integer')
      .addColumn('error', t.text)
      .execute();
    await createIndex(db, 'webhook_attempts_delivery_id', 'webhook_attempts', ['delivery_id', 'attempt']);
  },

  async down(db: Kysely<any>) {
    await db.schema.dropTable('webhook_attempts').execute();
    await db.schema.dropTable('webhook_deliveries').execute();
    await db.schema.dropTable('settings').execute();
    await db.schema.dropTable('licenses').execute();
  },
};
