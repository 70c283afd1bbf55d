import { sql, type Kysely, type Migration } from 'kysely';

// Migrations take Kysely<any> so they never depend on today's row types.
export const initial: Migration = {
  async up(db: Kysely<any>) {
    await db.schema
      .createTable('licenses')
      .addColumn('id', 'integer', (col) => col.primaryKey())
      .addColumn('license_code', 'text', (col) => col.notNull().unique())
      .addColumn('product_id', 'text')
      .addColumn('product_name', 'text')
      .addColumn('customer_id', 'text')
      .addColumn('email', 'text')
      .addColumn('status', 'text', (col) =>
        col.notNull().defaultTo('active').check(sql`status in ('active', 'suspended', 'revoked', 'expired')`),
      )
      .addColumn('expires_at', 'text')
      .addColumn('updates_until', 'text')
      .addColumn('created_at', 'text', (col) => col.notNull())
      .addColumn('updated_at', 'text', (col) => col.notNull())
      .execute();
    // The due-window queries: a status equality plus a range on the date.
    await db.schema.createIndex('licenses_status_expires_at').on('licenses').columns(['status', 'expires_at']).execute();
    await db.schema
      .createIndex('licenses_status_updates_until')
      .on('licenses')
      .columns(['status', 'updates_until'])
      .execute();

    await db.schema
      .createTable('settings')
      .addColumn('key', 'text', (col) => col.primaryKey())
      .addColumn('value', 'text', (col) => col.notNull())
      .addColumn('updated_at', 'text', (col) => col.notNull())
      .execute();

    await db.schema
      .createTable('webhook_deliveries')
      .addColumn('id', 'integer', (col) => col.primaryKey())
      .addColumn('event_id', 'text', (col) => col.notNull().unique())
      .addColumn('event_key', 'text', (col) => col.notNull().unique())
      .addColumn('event_type', 'text', (col) => col.notNull())
      .addColumn('license_id', 'integer')
      .addColumn('body', 'text', (col) => col.notNull())
      .addColumn('status', 'text', (col) =>
        col.notNull().check(sql`status in ('pending', 'delivering', 'delivered', 'abandoned')`),
      )
      .addColumn('attempts', 'integer', (col) => col.notNull().defaultTo(0))
      .addColumn('last_status_code', 'integer')
      .addColumn('last_error', 'text')
      .addColumn('claimed_by', 'text')
      .addColumn('lease_until', 'integer')
      .addColumn('created_at', 'text', (col) => col.notNull())
      .addColumn('completed_at', 'text')
      .execute();
    await db.schema.createIndex('webhook_deliveries_status').on('webhook_deliveries').columns(['status', 'id']).execute();
    await db.schema.createIndex('webhook_deliveries_license_id').on('webhook_deliveries').column('license_id').execute();

    await db.schema
      .createTable('webhook_attempts')
      .addColumn('id', 'integer', (col) => col.primaryKey())
      .addColumn('delivery_id', 'integer', (col) => col.notNull().references('webhook_deliveries.id'))
      .addColumn('attempt', 'integer', (col) => col.notNull())
      .addColumn('started_at', 'text', (col) => col.notNull())
      .addColumn('duration_ms', 'integer', (col) => col.notNull())
      .addColumn('status_code', 'integer')
      .addColumn('error', 'text')
      .execute();
    await db.schema
      .createIndex('webhook_attempts_delivery_id')
      .on('webhook_attempts')
      .columns(['delivery_id', 'attempt'])
      .execute();
  },

  async down(db: Kysely<any>) {
    await db.schema.dropTable('webhook_attempts').execute();
    await db.schema.dropTable('webhook_deliveries').execute();
    await db.schema.dropTable('settings').execute();
    await db.schema.dropTable('licenses').execute();
  },
};
