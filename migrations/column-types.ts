import { sql, type ColumnDataType, type ColumnDefinitionBuilder, type CreateTableBuilder, type Expression, type Kysely } from 'kysely';
import { dialectOf, type SqlDialect } from '../src/storage/dialect.js';

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
      return { dialect, text: 'text', key: () => 'text', epochMs: 'integer', idType: 'integer', id: (column) => column.primaryKey(), table: (builder) => builder };
    case 'postgres':
      return { dialect, text: 'text', key: () => sql`text collate "C"`, epochMs: 'bigint', idType: 'serial', id: (column) => column.primaryKey(), table: (builder) => builder };
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
