import { sql, type Kysely } from 'kysely';
import type { SqlDialect, UpdateReturningSpec } from './sql-dialect.js';
import { inDateRange, returning, standardWrites } from './standard.js';
import { tablePrefixOf } from './table-prefix.js';

/** SQLite: one writer at a time (its write lock makes an UPDATE … RETURNING a claim), no server, no privileges. */
export const sqliteDialect: SqlDialect = {
  ...standardWrites,
  name: 'sqlite',
  serverName: 'SQLite',
  serverSoftware: 'SQLite',
  statementTimeoutSetting: '',
  // Exactly the types of the first release.
  columnTypes: {
    text: 'text',
    key: () => 'text',
    epochMs: 'integer',
    idType: 'integer',
    id: (column) => column.primaryKey(),
    table: (builder) => builder,
  },
  textLimits: {},
  binaryKeyType: sql`text`,
  transactionalDdl: true,
  hasPrivileges: false,
  // In this process: no round trips to save; the caller's transaction.
  oneStatement: () => undefined,

  async updateReturning<DB, R>(db: Kysely<DB>, spec: UpdateReturningSpec<DB>): Promise<R[]> {
    return returning<R>(spec.update(db, spec.select(db)), spec.readBack);
  },
  waitForTurn: async () => false,
  afterExplicitIds: async () => undefined,
  serverTimeMs: async () => undefined,
  async beforeLargeScan(db, bytes) {
    await sql`pragma mmap_size = ${sql.raw(String(bytes))}`.execute(db);
  },

  asInteger: (expression) => sql<number>`cast(${expression} as integer)`,
  dateAsText: (expression) => sql<string>`${expression}`,
  sameDate: (text, date) => sql<boolean>`${text} = ${date}`,
  // Text dates that are not dates, such as '' or 'N/A', sort outside the range; date() takes no zero month or day
  // ('2025-00-10' is null) and carries a day past the month's end into the next ('2026-02-30' is 2026-03-02).
  isDate: (expression) => sql<boolean>`(${inDateRange(expression)} and date(substr(${expression}, 1, 10)) = substr(${expression}, 1, 10))`,
  position: (text, needle) => sql<number>`instr(${text}, ${needle})`,
  // "Disqualifying WHERE clause terms using unary-+" (SQLite's query planner documentation).
  unindexed: (column) => sql`+${sql.ref(column)}`,

  declaredTypes: async () => new Map(),
  async hasColumn(db, table, column) {
    const { rows } = await sql<{ found: number }>`select 1 as found from pragma_table_info(${tablePrefixOf(db) + table}) where name = ${column}`.execute(db);
    return rows.length > 0;
  },
};
