import { sql, type InsertQueryBuilder, type Kysely } from 'kysely';
import { retryOnDeadlock } from './db-errors.js';
import type { SqlDialect, Statement, UpdateReturningSpec, ValuesUpdate } from './sql-dialect.js';
import { assignments, inDateRange } from './standard.js';
import { LONGEST_INDEX_NAME, tablePrefixOf } from './table-prefix.js';

/**
 * MySQL and MariaDB: no ON CONFLICT (ON DUPLICATE KEY UPDATE, on any unique key), no UPDATE … RETURNING, no
 * UPDATE … FROM, VARCHAR keys (TEXT cannot be indexed), and DDL that commits at once.
 */
export const mysqlDialect: SqlDialect = {
  name: 'mysql',
  serverName: 'MySQL',
  serverSoftware: 'MySQL or MariaDB',
  statementTimeoutSetting: 'max_statement_time (MariaDB) or max_execution_time (MySQL)',
  columnTypes: {
    text: 'text',
    key: (length) => sql`varchar(${sql.raw(String(length))})`,
    epochMs: 'bigint',
    idType: 'integer',
    id: (column) => column.primaryKey().autoIncrement(),
    table: (builder) => builder.modifyEnd(sql`engine = InnoDB default charset = utf8mb4 collate = utf8mb4_bin`),
  },
  textLimits: { keyCharacters: 255 },
  // Identifiers are at most 64 characters; a longer index name is refused (ER_TOO_LONG_IDENT), half-way through a migrate.
  maxTablePrefix: 64 - LONGEST_INDEX_NAME,
  binaryKeyType: sql`varchar(255) character set utf8mb4 collate utf8mb4_bin`,
  transactionalDdl: false,
  hasPrivileges: true,
  // No statement holds several writes (the driver sends one statement per query): the caller's transaction.
  oneStatement: () => undefined,

  /**
   * ON DUPLICATE KEY UPDATE with a no-op assignment skips an existing key and, unlike INSERT IGNORE, leaves every
   * other error an error (a value too long for its column is refused, never cut). Its row count cannot tell an
   * insert from a skip: undefined, the caller counts its rows back.
   */
  async insertIgnore(insert, key) {
    const first = key[0]!;
    await insert.onDuplicateKeyUpdate({ [first]: sql.ref(first) }).execute();
    return undefined;
  },
  // VALUES(column) is the row that was refused (MariaDB and MySQL 8).
  refused: (column) => sql`values(${sql.ref(column)})`,
  upsert: <Q extends InsertQueryBuilder<any, any, any>>(insert: Q, _key: readonly string[], set: Record<string, unknown>): Q =>
    insert.onDuplicateKeyUpdate(set) as Q,
  upsertClause: (_key, set) => sql`on duplicate key update ${assignments(set)}`,
  updateReturning,
  updateFromValues,
  waitForTurn: async () => false,
  afterExplicitIds: async () => undefined,
  // Microseconds since the epoch from UTC_TIMESTAMP, which no session time zone converts.
  async serverTimeMs(db) {
    const { rows } = await sql<{ us: string | number }>`select timestampdiff(microsecond, '1970-01-01 00:00:00', utc_timestamp(6)) as us`.execute(db);
    return Math.floor(Number(rows[0]!.us) / 1000);
  },
  beforeLargeScan: async () => undefined,

  asInteger: (expression) => sql<number>`cast(${expression} as signed)`,
  dateAsText: (expression) => sql<string>`cast(${expression} as char(10))`,
  sameDate: (text, date) => sql<boolean>`${text} = ${date}`,
  // '0000-00-00' sorts before the range; a zero month or day ('2025-00-10', '2025-01-00', the default sql_mode takes
  // both) or a day past the month's end (ALLOW_INVALID_DATES) is not between 1 and the month's last day (null for month 0).
  isDate: (expression) => sql<boolean>`${inDateRange(expression)} and dayofmonth(${expression}) between 1 and dayofmonth(last_day(${expression}))`,
  position: (text, needle) => sql<number>`instr(${text}, ${needle})`,
  unindexed: (column) => sql.ref(column),

  hasColumn: (db, table, column) => has(db, table, { column }),
  async declaredTypes(db, table, columns) {
    const { rows } = await sql<{
      name: string;
      type: string;
    }>`select column_name as name, column_type as type from information_schema.columns where table_schema = database() and table_name = ${table} and column_name in (${sql.join(columns)})`.execute(
      db,
    );
    return new Map(rows.map((row) => [row.name, String(row.type).toLowerCase()]));
  },
  // CREATE TABLE IF NOT EXISTS: a table an interrupted migrate created is left as it is.
  createTable: (db, table) => db.schema.createTable(table).ifNotExists(),
  // CREATE INDEX has no IF NOT EXISTS here: information_schema is asked.
  async createIndex(db, name, table, columns) {
    if (!(await has(db, table, { index: name }))) await db.schema.createIndex(name).on(table).columns(columns).execute();
  },
  async addColumn(db, table, column, type, build = (definition) => definition) {
    if (await has(db, table, { column })) return;
    await db.schema.alterTable(table).addColumn(column, type, build).execute();
  },
  // DROP INDEX has no IF EXISTS here either: a `down` cut off after it can be run again.
  async dropIndex(db, name, table) {
    if (await has(db, table, { index: name })) await db.schema.dropIndex(name).on(table).execute();
  },
};

/** Whether our table (under the prefix) has this column or index, asked of information_schema. */
async function has(db: Kysely<any>, table: string, what: { column: string } | { index: string }): Promise<boolean> {
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

/** No UPDATE … RETURNING, and no UPDATE of a table its own subquery reads: lock the rows, update exactly those, read them back. */
async function updateReturning<DB, R>(db: Kysely<DB>, spec: UpdateReturningSpec<DB>): Promise<R[]> {
  return retryOnDeadlock(() =>
    db.transaction().execute(async (trx) => {
      const locked = spec.select(trx).forUpdate();
      const ids = (await (spec.skipLocked ? locked.skipLocked() : locked).execute()).map((row) => row.id);
      if (ids.length === 0) return [];
      await spec.update(trx, ids).execute();
      if (spec.readBack === 'ids') return ids.map((id) => ({ id })) as R[];
      const any = trx as unknown as Kysely<any>;
      return any.selectFrom(spec.table).selectAll().where('id', 'in', ids).orderBy('id').execute() as Promise<R[]>;
    }),
  );
}

/**
 * No UPDATE … FROM, and an UPDATE … JOIN on a derived table scans (and locks) rows of other workers' claims:
 * CASE over the ids, with `id in (…)` so only these rows are locked, in id order. Each right-hand side should
 * read only its own column or a constant, so MySQL's left-to-right SET is safe.
 */
function updateFromValues(trx: Kysely<any>, update: ValuesUpdate): Statement {
  const sorted = [...update.rows].sort((a, b) => Number(a.id) - Number(b.id));
  const value = (column: string) =>
    sql`case id ${sql.join(
      sorted.map((row) => sql`when ${row.id} then ${row[column]}`),
      sql` `,
    )} end`;
  const stored = (column: string) => sql.ref(column);
  const statement = sql`update ${sql.table(update.table)} set ${assignments(update.set(value, stored))} where id in (${sql.join(sorted.map((row) => row.id))}) and ${update.where(stored)}`;
  return { compile: () => statement.compile(trx) };
}
