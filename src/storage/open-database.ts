import fs from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import {
  CompiledQuery,
  Kysely,
  Migrator,
  MysqlDialect,
  PostgresDialect,
  sql,
  SqliteAdapter,
  SqliteDialect,
  type Dialect,
  type MigrationProvider,
  type SqliteDatabase,
} from 'kysely';
import type pg from 'pg';
import { migrations } from '../../migrations/index.js';
import type { Database } from './database.table.js';
import { isServer, type DatabaseTarget, type ServerTarget } from './database-target.js';
import { classifyDbError, IndexNameCut } from '../sql/db-errors.js';
import { dialectNamed } from '../sql/dialect-for.js';
import { TablePrefixPlugin, tablePrefixOf } from '../sql/table-prefix.js';
import { checkMigratePrivileges } from './mysql-privileges.js';
import { boundedMysqlPool, boundedPgPool, ConnectionWatch, databaseTimeouts, mysqlTimeoutOptions, pgTimeoutOptions, watchDatabase } from './server-pool.js';
import { StorageRefusal } from './storage-refusal.js';

// How long SQLite waits for another process's write lock before SQLITE_BUSY.
export const SQLITE_BUSY_TIMEOUT_MS = 5000;
// Connections per process: the delivery loop, the attempt writer and the lease heartbeat run side by side.
const POOL_SIZE = 4;

const provider: MigrationProvider = { getMigrations: async () => migrations };

export interface OpenOptions {
  /**
   * Bring a server database's schema up to date (the `migrate` command). Without it a server database with
   * pending migrations is refused; SQLite always migrates itself.
   */
  migrate?: boolean | undefined;
  /** Leave the schema unchecked: for a read of what is there (`listen` reading stored settings). */
  schemaCheck?: boolean;
  /** Told which migrations were applied (none when the schema was up to date). */
  onMigrated?: (applied: string[]) => void;
  /** Bounds every wait on a server database (LICENSE_MANAGER_DB_TIMEOUT_MS); DEFAULT_DB_TIMEOUT_MS otherwise. */
  timeoutMs?: number | undefined;
}

/** The first connection to a server failed: nothing was ever connected (see commands/database-messages.ts). */
export class FirstConnectionFailed extends Error {
  constructor(cause: unknown) {
    super('the first connection to the database failed', { cause });
    this.name = 'FirstConnectionFailed';
  }
}

/** Opens the database the target names, with our tables under its prefix, and checks or updates the schema. */
export async function openDatabase(target: DatabaseTarget, options: OpenOptions = {}): Promise<Kysely<Database>> {
  if (!isServer(target)) return openSqlite(target.filename, target.tablePrefix, options.onMigrated);
  const watch = new ConnectionWatch(databaseTimeouts(options.timeoutMs, { migrate: options.migrate }));
  const db = new Kysely<Database>({ dialect: await SERVER_DIALECTS[target.dialect](target, watch), plugins: prefixPlugins(target.tablePrefix) });
  watchDatabase(db, watch);
  try {
    // Connect now, so a wrong password or host is reported as such before any work starts.
    await sql`select 1`.execute(db).catch((error: unknown) => {
      throw new FirstConnectionFailed(error);
    });
    const migrator = newMigrator(db, target.tablePrefix);
    if (options.migrate) {
      // Where DDL commits at once (MySQL), a migrate refused half-way would leave a migration half applied.
      if (!dialectNamed(target.dialect).transactionalDdl) {
        const known = await migrator.getMigrations();
        const pending = known.filter((migration) => migration.executedAt === undefined).map((migration) => migration.name);
        if (pending.length > 0) await checkMigratePrivileges(db, pending, pending.length === known.length);
      }
      const { error, results } = await migrator.migrateToLatest();
      if (error instanceof IndexNameCut) {
        throw new StorageRefusal({ kind: 'index-name-cut', index: error.index, cutTo: error.cutTo, tablePrefix: target.tablePrefix }, { cause: error });
      }
      if (error) throw error;
      options.onMigrated?.((results ?? []).filter((result) => result.status === 'Success').map((result) => result.migrationName));
    } else if (options.schemaCheck !== false && !(await schemaIsCurrent(db, target.tablePrefix))) {
      const migrations = await migrator.getMigrations();
      const pending = migrations.filter((migration) => migration.executedAt === undefined);
      if (pending.length > 0) {
        // MySQL hides a table the user may not read, so "nothing applied" may be a missing privilege: ask the
        // bookkeeping table itself, and let a refusal be reported as what it is.
        if (pending.length === migrations.length) {
          await sql`select 1 from ${sql.table(`${target.tablePrefix}kysely_migration`)} limit 1`.execute(db).catch((error: unknown) => {
            if (classifyDbError(error) !== 'no-table') throw error;
          });
        }
        throw new StorageRefusal({ kind: 'schema-behind', pending: pending.map((migration) => migration.name) });
      }
    }
  } catch (error) {
    await db.destroy().catch(() => undefined);
    throw error;
  }
  return db;
}

/**
 * Opens the database only to read what is there (`listen` reading stored settings): a SQLite file read-only,
 * never created or migrated (undefined when there is none); a server database without a schema check.
 */
export async function openReadOnly(target: DatabaseTarget, options: Pick<OpenOptions, 'timeoutMs'>): Promise<Kysely<Database> | undefined> {
  if (isServer(target)) return openDatabase(target, { migrate: false, schemaCheck: false, timeoutMs: options.timeoutMs });
  if (!fs.existsSync(target.filename)) return undefined;
  return new Kysely<Database>({
    dialect: new SqliteDialect({ database: new SQLite(target.filename, { readonly: true, fileMustExist: true }) }),
    plugins: prefixPlugins(target.tablePrefix),
  });
}

/** Whether our table (under the prefix) exists: a database not migrated yet has none. */
export async function hasOwnTable(db: Kysely<Database>, table: keyof Database): Promise<boolean> {
  const tables = await db.introspection.getTables();
  return tables.some((candidate) => candidate.name === `${tablePrefixOf(db)}${table}`);
}

function prefixPlugins(tablePrefix: string) {
  return tablePrefix ? [new TablePrefixPlugin(tablePrefix)] : [];
}

function newMigrator(db: Kysely<Database>, tablePrefix: string): Migrator {
  return new Migrator({
    db,
    provider,
    // Kysely's own bookkeeping tables carry the prefix too, so two installations can share one database.
    migrationTableName: `${tablePrefix}kysely_migration`,
    migrationLockTableName: `${tablePrefix}kysely_migration_lock`,
    // Migrations touch separate tables and are numbered as they are written: one numbered below an applied one still applies.
    allowUnorderedMigrations: true,
  });
}

/** DATE (1082) stays the `YYYY-MM-DD` text it is: pg would make it local midnight, a day off west of UTC. */
function pgTypes(types: typeof pg.types): pg.CustomTypesConfig {
  return {
    getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
      if (oid === 1082) return (value: string) => value;
      // bigint (epoch-ms leases, count(*), license ids) as a number while it is exact; beyond 2^53 the digits
      // stay text, so an id is never silently rounded into another license's.
      if (oid === 20) return (value: string) => (Number.isSafeInteger(Number(value)) ? Number(value) : value);
      return types.getTypeParser(oid, format as 'text');
    }) as pg.CustomTypesConfig['getTypeParser'],
  };
}

// The drivers load only when a server is used: SQLite runs (and --help) do not pay for them.
// Every wait on the server is bounded (server-pool.ts): a frozen server or a lock held elsewhere ends a run
// with a clear error instead of hanging it.
const SERVER_DIALECTS: Record<ServerTarget['dialect'], (target: ServerTarget, watch: ConnectionWatch) => Promise<Dialect>> = {
  postgres: postgresKysely,
  mysql: mysqlKysely,
};

async function postgresKysely(target: ServerTarget, watch: ConnectionWatch): Promise<Dialect> {
  const { default: pg } = await import('pg');
  const PG_TYPES = pgTypes(pg.types);
  const pool = new pg.Pool({ connectionString: target.url, max: POOL_SIZE, types: PG_TYPES, ...pgTimeoutOptions(watch.timeouts) });
  return new PostgresDialect({ pool: boundedPgPool(pool, watch) });
}

async function mysqlKysely(target: ServerTarget, watch: ConnectionWatch): Promise<Dialect> {
  const { createPool: createMysqlPool } = await import('mysql2');
  const pool = createMysqlPool({
    uri: target.url,
    connectionLimit: POOL_SIZE,
    ...mysqlTimeoutOptions(watch.timeouts),
    // DATE and DATETIME as the text the server holds, never a Date at local midnight.
    dateStrings: true,
    supportBigNumbers: true,
    charset: 'utf8mb4',
  });
  return new MysqlDialect({
    pool: boundedMysqlPool(pool, watch),
    // READ COMMITTED, as on PostgreSQL: no gap locks, and an UPDATE passes over rows it does not change
    // instead of waiting on them, so workers claiming and finishing deliveries side by side do not deadlock.
    onCreateConnection: async (connection) => {
      await connection.executeQuery(CompiledQuery.raw('set session transaction isolation level read committed'));
    },
  });
}

/**
 * SQLite's DDL is transactional, but Kysely's adapter says otherwise and runs each migration statement on its
 * own: with this one, all pending migrations run in one transaction, so a migrate that fails half-way (a full
 * disk, a killed process, a name taken) leaves the schema as it was, as on PostgreSQL.
 */
class TransactionalSqliteDialect extends SqliteDialect {
  override createAdapter(): SqliteAdapter {
    return new TransactionalSqliteAdapter();
  }
}

class TransactionalSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

// Statements kept per database; the oldest goes when a new one would pass this.
const MAX_CACHED_STATEMENTS = 200;

/**
 * better-sqlite3 with its prepared statements kept by SQL text: Kysely prepares every query anew, and a
 * delivery run repeats the same few statements (claims, attempt writes) thousands of times. A statement
 * that is still being iterated (a streamed query) is busy: the same text then gets a fresh one.
 */
function withStatementCache(sqlite: SQLite.Database): SqliteDatabase {
  const cache = new Map<string, SQLite.Statement>();
  return {
    close: () => sqlite.close(),
    prepare(text) {
      const cached = cache.get(text);
      if (cached && !cached.busy) return cached;
      const statement = sqlite.prepare(text);
      if (!cached) {
        if (cache.size >= MAX_CACHED_STATEMENTS) cache.delete(cache.keys().next().value!);
        cache.set(text, statement);
      }
      return statement;
    },
  };
}

/**
 * Opens (creating when missing) the SQLite file and brings its schema up to date.
 * A file the tool creates is readable by its owner only: it holds customer e-mail addresses.
 */
async function openSqlite(filename: string, tablePrefix: string, onMigrated?: (applied: string[]) => void): Promise<Kysely<Database>> {
  const directory = path.dirname(filename);
  if (!fs.existsSync(directory)) {
    throw new StorageRefusal({ kind: 'no-directory', directory, filename });
  }
  if (fs.existsSync(filename) && !fs.statSync(filename).isFile()) {
    throw new StorageRefusal({ kind: 'not-a-file', filename });
  }
  if (!fs.existsSync(filename)) {
    try {
      fs.closeSync(fs.openSync(filename, 'a', 0o600));
    } catch (error) {
      throw new StorageRefusal({ kind: 'cannot-create', filename, detail: (error as Error).message }, { cause: error });
    }
  }
  let sqlite: SQLite.Database | undefined;
  try {
    sqlite = new SQLite(filename, { timeout: SQLITE_BUSY_TIMEOUT_MS });
    // With a table prefix the file is meant to be shared with another application's tables.
    if (!tablePrefix) refuseForeignDatabase(sqlite, filename);
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = NORMAL');
    sqlite.pragma('foreign_keys = ON');
    // 4 MB of page cache (the build's default is 16 MB): the scans are index ranges, and RSS matters at 1M rows.
    sqlite.pragma('cache_size = -4000');
  } catch (error) {
    sqlite?.close();
    throw error;
  }
  const db = new Kysely<Database>({ dialect: new TransactionalSqliteDialect({ database: withStatementCache(sqlite!) }), plugins: prefixPlugins(tablePrefix) });
  try {
    const report = await migrateToLatest(db, tablePrefix);
    onMigrated?.(report.applied);
  } catch (error) {
    await db.destroy();
    throw error;
  }
  return db;
}

/**
 * Another application's database must not get our tables: a file with tables but without our migration
 * log is refused before anything (even the journal mode) is written. Empty files and ours are fine.
 */
function refuseForeignDatabase(sqlite: SQLite.Database, filename: string): void {
  const names = (
    sqlite.prepare("select name from sqlite_master where type in ('table', 'view') and name not like 'sqlite_%'").all() as Array<{ name: string }>
  ).map((row) => row.name);
  if (names.length === 0 || names.includes('kysely_migration')) return;
  throw new StorageRefusal({ kind: 'foreign-database', filename, tables: names });
}

interface MigrationReport {
  applied: string[];
}

/**
 * Whether exactly our migrations are recorded as applied, asked in one query: the usual case at start-up, where
 * Kysely's Migrator (its introspection, its lock, names sorted by locale) costs several milliseconds more. Any
 * other answer (no bookkeeping table yet, a migration missing, one we do not know) goes to the Migrator, as before.
 */
async function schemaIsCurrent(db: Kysely<Database>, tablePrefix: string): Promise<boolean> {
  const known = Object.keys(migrations);
  try {
    const { rows } = await sql<{ name: string }>`select name from ${sql.table(`${tablePrefix}kysely_migration`)}`.execute(db);
    const applied = new Set(rows.map((row) => row.name));
    return applied.size === known.length && known.every((name) => applied.has(name));
  } catch {
    return false;
  }
}

/**
 * Two commands started at once on a new database both see the migration pending; the one that loses
 * fails inside its own (rolled back) transaction. Trying again then finds the schema up to date.
 */
async function migrateToLatest(db: Kysely<Database>, tablePrefix: string): Promise<MigrationReport> {
  if (await schemaIsCurrent(db, tablePrefix)) return { applied: [] };
  const migrator = newMigrator(db, tablePrefix);
  for (let attempt = 1; ; attempt += 1) {
    const { error, results } = await migrator.migrateToLatest();
    if (!error) return { applied: (results ?? []).filter((result) => result.status === 'Success').map((result) => result.migrationName) };
    const lostTheRace = classifyDbError(error) === 'busy' || /already exists|duplicate column name/.test(String((error as Error).message));
    if (!lostTheRace || attempt === 5) throw error;
    await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** attempt));
  }
}
