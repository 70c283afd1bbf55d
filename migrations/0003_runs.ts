import type { Kysely, Migration } from 'kysely';
import { columnTypes, createIndex, createTable } from './column-types.js';

// One row per process-expirations run, so `status` can tell a stopped cron job from a quiet one.
// Portable schema-builder types only (varchar where MySQL needs an indexable or key column): SQLite, PostgreSQL and MySQL.
export const runs: Migration = {
  async up(db: Kysely<any>) {
    // On MySQL: InnoDB, utf8mb4 and a binary collation, like the other tables (a no-op elsewhere).
    await columnTypes(db)
      .table(createTable(db, 'runs'))
      .addColumn('id', 'varchar(64)', (col) => col.primaryKey())
      .addColumn('command', 'varchar(64)', (col) => col.notNull())
      .addColumn('started_at', 'varchar(40)', (col) => col.notNull())
      .addColumn('finished_at', 'varchar(40)')
      .addColumn('status', 'varchar(16)', (col) => col.notNull())
      .addColumn('exit_code', 'integer')
      .addColumn('recorded', 'integer', (col) => col.notNull().defaultTo(0))
      .addColumn('delivered', 'integer', (col) => col.notNull().defaultTo(0))
      .addColumn('abandoned', 'integer', (col) => col.notNull().defaultTo(0))
      .addColumn('error', 'text')
      .execute();
    await createIndex(db, 'runs_started_at', 'runs', ['started_at']);
  },
  async down(db: Kysely<any>) {
    await db.schema.dropTable('runs').execute();
  },
};
