import { sql, type ColumnDataType, type ColumnDefinitionBuilder, type CreateTableBuilder, type Expression, type Kysely } from 'kysely';
import { dialectOf, tablePrefixOf, type SqlDialect } from '../src/storage/dialect.js';

/**
 * Column types per dialect, where they must differ. SQLite keeps exactly the types of the first release.
 * MySQL cannot index unbounded TEXT, so indexed columns are VARCHARs there; PostgreSQL compares them
 * byte-wise (collate "C") like SQLite does, so date prefixes and the '0' / ':' bounds sort the same.
 */
// Kysely's addColumn takes a type name or a raw `sql` type; it does not export the union's name.
type DataTypeExpression = ColumnDataType | Expression<unknown>;

export interface ColumnTypes {
  dialect: SqlDialect;
  /** Free text that is never indexed or range-compared (bodies, errors, e-mail). */
  text: DataTypeExpression;
  /** Indexed or range-compared text of at most `length` characters: codes, keys, statuses, ISO times. */
  key: (length: number) => DataTypeExpression;
  /** Epoch milliseconds: beyond 32 bits. */
  epochMs: DataTypeExpression;
  /** `id` as an auto-increment integer primary key. */
  id: (column: ColumnDefinitionBuilder) => ColumnDefinitionBuilder;
  idType: DataTypeExpression;
  /** Table options: on MySQL InnoDB with utf8mb4 and a binary collation (case-sensitive codes, byte order). */
  table<T extends string, C extends string>(builder: CreateTableBuilder<T, C>): CreateTableBuilder<T, C>;
}

export function columnTypes(db: Kysely<any>): ColumnTypes {
  const dialect = dialectOf(db);
  switch (dialect) {
    case 'sqlite':
      return {
        dialect,
        text: 'text',
        key: () => 'text',
        epochMs: 'integer',
        idType: 'integer',
        id: (column) => column.primaryKey(),
        table: (builder) => builder,
      };
    case 'postgres':
      return {
        dialect,
        text: 'text',
        key: () => sql`text collate "C"`,
        epochMs: 'bigint',
        idType: 'serial',
        id: (column) => column.primaryKey(),
        table: (builder) => builder,
      };
    case 'mysql':
      return {
        dialect,
        text: 'text',
        key: (length) => sql`varchar(${sql.raw(String(length))})`,
        epochMs: 'bigint',
        idType: 'integer',
        id: (column) => column.primaryKey().autoIncrement(),
        table: (builder) => builder.modifyEnd(sql`engine = InnoDB default charset = utf8mb4 collate = utf8mb4_bin`),
      };
  }
}

/*
 * Re-runnable steps. SQLite and PostgreSQL run all pending migrations in one transaction (transactional DDL), so a
 * refused or interrupted migrate leaves nothing behind. MySQL and MariaDB commit each schema change at once: a
 * migrate stopped half-way leaves part of a migration applied and unrecorded. Every step therefore skips what
 * is already there, so running migrate again finishes the job.
 */

/** Whether our table (under the prefix) has this column, asked of information_schema (MySQL only). */
async function mysqlHas(db: Kysely<any>, table: string, what: { column: string } | { index: string }): Promise<boolean> {
  const prefix = tablePrefixOf(db);
  const query =
    'column' in what
      ? sql<{
          found: number;
        }>`select count(*) as found from information_schema.columns where table_schema = database() and table_name = ${prefix + table} and column_name = ${what.column}`
      : sql<{
          found: number;
        }>`select count(*) as found from information_schema.statistics where table_schema = database() and table_name = ${prefix + table} and index_name in (${what.index}, ${prefix + what.index})`;
  const { rows } = await query.execute(db);
  return Number(rows[0]?.found ?? 0) > 0;
}

/** Whether our table (under the prefix) has this column, on any dialect. */
export async function hasColumn(db: Kysely<any>, table: string, column: string): Promise<boolean> {
  const name = tablePrefixOf(db) + table;
  switch (dialectOf(db)) {
    case 'mysql':
      return mysqlHas(db, table, { column });
    case 'postgres': {
      const { rows } = await sql<{
        found: number;
      }>`select 1 as found from information_schema.columns where table_schema = current_schema() and table_name = ${name} and column_name = ${column}`.execute(
        db,
      );
      return rows.length > 0;
    }
    case 'sqlite': {
      const { rows } = await sql<{ found: number }>`select 1 as found from pragma_table_info(${name}) where name = ${column}`.execute(db);
      return rows.length > 0;
    }
  }
}

/** On MySQL CREATE TABLE IF NOT EXISTS: a table an interrupted migrate created is left as it is (elsewhere the DDL of the first release). */
export function createTable(db: Kysely<any>, table: string): CreateTableBuilder<string, never> {
  const builder = db.schema.createTable(table);
  return dialectOf(db) === 'mysql' ? builder.ifNotExists() : builder;
}

/** Creates the index unless it exists: IF NOT EXISTS, or on MySQL (whose CREATE INDEX has none) by asking information_schema. */
export async function createIndex(db: Kysely<any>, name: string, table: string, columns: string[]): Promise<void> {
  const index = db.schema.createIndex(name).on(table).columns(columns);
  if (dialectOf(db) !== 'mysql') await index.ifNotExists().execute();
  else if (!(await mysqlHas(db, table, { index: name }))) await index.execute();
}

/** Adds the column unless it exists (on MySQL, where an interrupted migrate may have added it already). */
export async function addColumn(
  db: Kysely<any>,
  table: string,
  column: string,
  type: DataTypeExpression,
  build: (column: ColumnDefinitionBuilder) => ColumnDefinitionBuilder = (definition) => definition,
): Promise<void> {
  if (dialectOf(db) === 'mysql' && (await mysqlHas(db, table, { column }))) return;
  await db.schema.alterTable(table).addColumn(column, type, build).execute();
}
