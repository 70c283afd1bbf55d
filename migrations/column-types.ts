import type { ColumnDefinitionBuilder, CreateTableBuilder, Kysely } from 'kysely';
import { dialectFor } from '../src/sql/dialect-for.js';
import type { ColumnTypes, DataTypeExpression } from '../src/sql/sql-dialect.js';

/** The column types of `db`'s dialect (src/sql/sql-dialect.ts says where they differ and why). */
export function columnTypes(db: Kysely<any>): ColumnTypes {
  return dialectFor(db).columnTypes;
}

/*
 * Re-runnable steps. SQLite and PostgreSQL run all pending migrations in one transaction (transactional DDL), so a
 * refused or interrupted migrate leaves nothing behind. MySQL and MariaDB commit each schema change at once: a
 * migrate stopped half-way leaves part of a migration applied and unrecorded. Every step therefore skips what
 * is already there, so running migrate again finishes the job.
 */

/** Whether our table (under the prefix) has this column, on any dialect. */
export function hasColumn(db: Kysely<any>, table: string, column: string): Promise<boolean> {
  return dialectFor(db).hasColumn(db, table, column);
}

/** On MySQL CREATE TABLE IF NOT EXISTS: a table an interrupted migrate created is left as it is (elsewhere the DDL of the first release). */
export function createTable(db: Kysely<any>, table: string): CreateTableBuilder<string, never> {
  return dialectFor(db).createTable(db, table);
}

/** Creates the index unless it exists: IF NOT EXISTS, or on MySQL (whose CREATE INDEX has none) by asking information_schema. */
export function createIndex(db: Kysely<any>, name: string, table: string, columns: string[]): Promise<void> {
  return dialectFor(db).createIndex(db, name, table, columns);
}

/** Drops an index of `table` (MySQL's DROP INDEX names the table). */
export function dropIndex(db: Kysely<any>, name: string, table: string): Promise<void> {
  return dialectFor(db).dropIndex(db, name, table);
}

/** Adds the column unless it exists (on MySQL, where an interrupted migrate may have added it already). */
export function addColumn(
  db: Kysely<any>,
  table: string,
  column: string,
  type: DataTypeExpression,
  build?: (column: ColumnDefinitionBuilder) => ColumnDefinitionBuilder,
): Promise<void> {
  return dialectFor(db).addColumn(db, table, column, type, build);
}
