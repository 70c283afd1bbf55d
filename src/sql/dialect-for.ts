import { MysqlAdapter, PostgresAdapter, type DialectAdapter, type Kysely } from 'kysely';
import { mysqlDialect } from './mysql.js';
import { postgresDialect } from './postgres.js';
import type { DialectName, SqlDialect } from './sql-dialect.js';
import { sqliteDialect } from './sqlite.js';

const DIALECTS: Record<DialectName, SqlDialect> = { sqlite: sqliteDialect, postgres: postgresDialect, mysql: mysqlDialect };

// Read once per Kysely adapter: a transaction shares its database's.
const known = new WeakMap<DialectAdapter, SqlDialect>();

/** The dialect of the database behind `db` (or a transaction on it), from Kysely's adapter. */
export function dialectFor(db: Kysely<any>): SqlDialect {
  const adapter = db.getExecutor().adapter;
  let dialect = known.get(adapter);
  if (!dialect) {
    dialect = adapter instanceof PostgresAdapter ? postgresDialect : adapter instanceof MysqlAdapter ? mysqlDialect : sqliteDialect;
    known.set(adapter, dialect);
  }
  return dialect;
}

/** The dialect of this name (a database target's). */
export function dialectNamed(name: DialectName): SqlDialect {
  return DIALECTS[name];
}

/**
 * One step per dialect, for a migration whose DDL differs wholly between them (a constraint found by its
 * definition, a table rebuilt): the step of `db`'s dialect runs.
 */
export function perDialect<T>(db: Kysely<any>, steps: Record<DialectName, () => T>): T {
  return steps[dialectFor(db).name]();
}
