import { CompiledQuery, sql, type Kysely } from 'kysely';
import type { SqlDialect, UpdateReturningSpec } from './sql-dialect.js';
import { IndexNameCut } from './db-errors.js';
import { inDateRange, returning, standardWrites } from './standard.js';
import { tablePrefixOf } from './table-prefix.js';

// The most bound parameters one statement may have (the protocol counts them in 16 bits).
const MAX_SERVER_PARAMETERS = 65_535;
// PostgreSQL cuts a longer identifier to this many bytes (NAMEDATALEN - 1); our names are ASCII.
const IDENTIFIER_LENGTH = 63;

/** PostgreSQL: ON CONFLICT and RETURNING as SQLite, row locks for claims, advisory locks for turns, a serial per id. */
export const postgresDialect: SqlDialect = {
  ...standardWrites,
  name: 'postgres',
  serverName: 'PostgreSQL',
  serverSoftware: 'PostgreSQL',
  statementTimeoutSetting: 'statement_timeout (ALTER ROLE <user> SET statement_timeout = ...)',
  columnTypes: {
    text: 'text',
    key: () => sql`text collate "C"`,
    epochMs: 'bigint',
    idType: 'serial',
    id: (column) => column.primaryKey(),
    table: (builder) => builder,
  },
  textLimits: { noNul: true },
  binaryKeyType: sql`text collate "C"`,
  transactionalDdl: true,
  hasPrivileges: true,

  async createIndex(db, name, table, columns) {
    const prefix = tablePrefixOf(db);
    const full = prefix + name;
    if (full.length > IDENTIFIER_LENGTH) {
      const cutTo = full.slice(0, IDENTIFIER_LENGTH);
      const { rows } = await sql<{ tablename: string; indexdef: string }>`
        select tablename, indexdef from pg_indexes where schemaname = current_schema() and indexname = ${cutTo}`.execute(db);
      const found = rows[0];
      // The same index made before (a database put back to an older migration by hand) is left as it is.
      if (found && !(found.tablename === prefix + table && found.indexdef.endsWith(`(${columns.join(', ')})`))) {
        throw new IndexNameCut(full, cutTo, IDENTIFIER_LENGTH, found.indexdef);
      }
    }
    await standardWrites.createIndex(db, name, table, columns);
  },

  // FOR UPDATE (SKIP LOCKED) in the subquery: a worker passes over rows another is claiming at that moment.
  async updateReturning<DB, R>(db: Kysely<DB>, spec: UpdateReturningSpec<DB>): Promise<R[]> {
    const locked = spec.select(db).forUpdate();
    return returning<R>(spec.update(db, spec.skipLocked ? locked.skipLocked() : locked), spec.readBack);
  },
  /**
   * A transaction-scoped advisory lock named `name`. The wait is bounded: a turn held by a run that was paused,
   * or cut off without the server noticing, does not stop the others; after `waitMs` they go ahead.
   */
  async waitForTurn(trx, name, waitMs) {
    const key = sql`hashtext(${name})`;
    const deadline = Date.now() + waitMs;
    for (let tries = 0; ; tries += 1) {
      const { rows } = await sql<{ got: boolean }>`select pg_try_advisory_xact_lock(${key}) as got`.execute(trx);
      if (rows[0]?.got) return tries > 0;
      if (Date.now() >= deadline) return true;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  },
  /**
   * `with w0 as (…), w1 as (…) select 1`: PostgreSQL runs every data-modifying WITH query to the end, referenced or
   * not, in one statement. Each statement's placeholders move past the ones before it ($1 of the second becomes $n+1:
   * nothing else in a compiled statement reads `$` and digits, as values are always parameters and table prefixes
   * are letters, digits and _). Over PostgreSQL's 65,535 parameters, undefined: a transaction then.
   */
  oneStatement(statements) {
    const parameters: unknown[] = [];
    const queries = statements.map((statement, index) => {
      const offset = parameters.length;
      parameters.push(...statement.parameters);
      return `w${index} as (${statement.sql.replace(/\$(\d+)/g, (_, number: string) => `$${Number(number) + offset}`)})`;
    });
    if (parameters.length > MAX_SERVER_PARAMETERS) return undefined;
    return CompiledQuery.raw(`with ${queries.join(', ')} select 1`, parameters);
  },
  // The serial does not move past ids given explicitly: move it, as SQLite and MySQL do on their own.
  async afterExplicitIds(trx, table) {
    await sql`select setval(pg_get_serial_sequence(${`${tablePrefixOf(trx)}${table}`}, 'id'), (select max(id) from ${sql.table(table)}))`.execute(trx);
  },
  async serverTimeMs(db) {
    const { rows } = await sql<{ ms: string | number }>`select extract(epoch from clock_timestamp()) * 1000 as ms`.execute(db);
    return Math.floor(Number(rows[0]!.ms));
  },
  beforeLargeScan: async () => undefined,

  asInteger: (expression) => sql<number>`cast(${expression} as integer)`,
  dateAsText: (expression) => sql<string>`cast(${expression} as text)`,
  sameDate: (text, date) => sql<boolean>`cast(${text} as date) = ${date}`,
  // 'infinity', '-infinity' and years BC sort outside the range.
  isDate: inDateRange,
  position: (text, needle) => sql<number>`strpos(${text}, ${needle})`,
  unindexed: (column) => sql.ref(column),

  // data_type: a domain's base type, `timestamp with time zone` spelled out.
  async declaredTypes(db, table, columns) {
    const { rows } = await sql<{
      name: string;
      type: string;
    }>`select column_name as name, data_type as type from information_schema.columns where table_schema = current_schema() and table_name = ${table} and column_name in (${sql.join(columns)})`.execute(
      db,
    );
    return new Map(rows.map((row) => [row.name, row.type.toLowerCase()]));
  },
  async hasColumn(db, table, column) {
    const { rows } = await sql<{
      found: number;
    }>`select 1 as found from information_schema.columns where table_schema = current_schema() and table_name = ${tablePrefixOf(db) + table} and column_name = ${column}`.execute(
      db,
    );
    return rows.length > 0;
  },
};
