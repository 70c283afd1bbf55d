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
import { ExitError, EXIT, usageError } from '../errors.js';
import { plural } from '../plural.js';
import type { Database } from './database.table.js';
import { describeTarget, type DatabaseTarget } from './database-target.js';
import { errorCode, messageOf } from '../sql/db-errors.js';
import { TablePrefixPlugin } from '../sql/table-prefix.js';
import { checkMigratePrivileges } from './mysql-privileges.js';
import {
  boundedMysqlPool,
  boundedPgPool,
  ConnectionWatch,
  databaseTimeouts,
  mysqlTimeoutOptions,
  NO_ANSWER,
  pgTimeoutOptions,
  watchDatabase,
} from './server-pool.js';
import { commandLine } from '../command-line.js';

const BUSY_TIMEOUT_MS = 5000;
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

/** Opens the database the target names, with our tables under its prefix, and checks or updates the schema. */
export async function openDatabase(target: DatabaseTarget, options: OpenOptions = {}): Promise<Kysely<Database>> {
  if (target.dialect === 'sqlite') return openSqlite(target.filename, target.tablePrefix, options.onMigrated);
  const watch = new ConnectionWatch(databaseTimeouts(options.timeoutMs, { migrate: options.migrate }));
  const db = new Kysely<Database>({ dialect: await serverDialect(target, watch), plugins: prefixPlugins(target.tablePrefix) });
  watchDatabase(db, watch);
  try {
    // Connect now, so a wrong password or host is reported as such before any work starts.
    await sql`select 1`.execute(db).catch((error: unknown) => {
      throw firstConnectionError(target, error);
    });
    const migrator = newMigrator(db, target.tablePrefix);
    if (options.migrate) {
      if (target.dialect === 'mysql') {
        const known = await migrator.getMigrations();
        const pending = known.filter((migration) => migration.executedAt === undefined).map((migration) => migration.name);
        if (pending.length > 0) await checkMigratePrivileges(db, pending, pending.length === known.length);
      }
      const { error, results } = await migrator.migrateToLatest();
      if (error) throw error;
      options.onMigrated?.((results ?? []).filter((result) => result.status === 'Success').map((result) => result.migrationName));
    } else if (options.schemaCheck !== false) {
      const migrations = await migrator.getMigrations();
      const pending = migrations.filter((migration) => migration.executedAt === undefined);
      if (pending.length > 0) {
        // MySQL hides a table the user may not read, so "nothing applied" may be a missing privilege: ask the
        // bookkeeping table itself, and let a refusal be reported as what it is.
        if (pending.length === migrations.length) {
          await sql`select 1 from ${sql.table(`${target.tablePrefix}kysely_migration`)} limit 1`.execute(db).catch((error: unknown) => {
            if (!NO_TABLE.has(errorCode(error))) throw error;
          });
        }
        const tables = target.tablePrefix ? `tables prefixed "${target.tablePrefix}"` : 'tables without a prefix';
        throw usageError(
          `The schema of ${describeTarget(target)} (${tables}) is not up to date (${plural(pending.length, 'migration')} to apply: ${pending.map((migration) => migration.name).join(', ')}). Run "${commandLine('migrate')}" first (with the same config or LICENSE_MANAGER_DB), or check database.tablePrefix.`,
        );
      }
    }
  } catch (error) {
    await db.destroy().catch(() => undefined);
    throw databaseError(target, error);
  }
  return db;
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
async function serverDialect(target: Extract<DatabaseTarget, { dialect: 'postgres' | 'mysql' }>, watch: ConnectionWatch): Promise<Dialect> {
  if (target.dialect === 'postgres') {
    const { default: pg } = await import('pg');
    const PG_TYPES = pgTypes(pg.types);
    const pool = new pg.Pool({ connectionString: target.url, max: POOL_SIZE, types: PG_TYPES, ...pgTimeoutOptions(watch.timeouts) });
    return new PostgresDialect({ pool: boundedPgPool(pool, watch) });
  }
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
  const target: DatabaseTarget = { dialect: 'sqlite', filename, tablePrefix, label: filename };
  const directory = path.dirname(filename);
  if (!fs.existsSync(directory)) {
    throw usageError(`Database directory ${directory} does not exist (database file ${filename}). Create it, or set database.filename / LICENSE_MANAGER_DB.`);
  }
  if (fs.existsSync(filename) && !fs.statSync(filename).isFile()) {
    throw usageError(
      `Database ${filename} is not a regular file. Point database.filename or LICENSE_MANAGER_DB at a SQLite file (license-manager migrate creates one when missing).`,
    );
  }
  if (!fs.existsSync(filename)) {
    try {
      fs.closeSync(fs.openSync(filename, 'a', 0o600));
    } catch (error) {
      throw usageError(`Cannot create database file ${filename}: ${(error as Error).message}`, { cause: error });
    }
  }
  let sqlite: SQLite.Database | undefined;
  try {
    sqlite = new SQLite(filename, { timeout: BUSY_TIMEOUT_MS });
    // With a table prefix the file is meant to be shared with another application's tables.
    if (!tablePrefix) refuseForeignDatabase(sqlite, filename);
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = NORMAL');
    sqlite.pragma('foreign_keys = ON');
    // 4 MB of page cache (the build's default is 16 MB): the scans are index ranges, and RSS matters at 1M rows.
    sqlite.pragma('cache_size = -4000');
  } catch (error) {
    sqlite?.close();
    throw databaseError(target, error);
  }
  const db = new Kysely<Database>({ dialect: new TransactionalSqliteDialect({ database: withStatementCache(sqlite!) }), plugins: prefixPlugins(tablePrefix) });
  try {
    const report = await migrateToLatest(db, tablePrefix);
    onMigrated?.(report.applied);
  } catch (error) {
    await db.destroy();
    throw databaseError(target, error);
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
  const shown = names.slice(0, 5).join(', ') + (names.length > 5 ? `, ... (${names.length} in all)` : '');
  throw usageError(
    `Database ${filename} belongs to something else: it has tables (${shown}) but no license-manager schema, and was left unchanged. Point database.filename or LICENSE_MANAGER_DB at a new or license-manager file.`,
  );
}

interface MigrationReport {
  applied: string[];
}

/**
 * Two commands started at once on a new database both see the migration pending; the one that loses
 * fails inside its own (rolled back) transaction. Trying again then finds the schema up to date.
 */
async function migrateToLatest(db: Kysely<Database>, tablePrefix: string): Promise<MigrationReport> {
  const migrator = newMigrator(db, tablePrefix);
  for (let attempt = 1; ; attempt += 1) {
    const { error, results } = await migrator.migrateToLatest();
    if (!error) return { applied: (results ?? []).filter((result) => result.status === 'Success').map((result) => result.migrationName) };
    const { code } = error as { code?: unknown };
    const lostTheRace =
      (typeof code === 'string' && code.startsWith('SQLITE_BUSY')) || /already exists|duplicate column name/.test(String((error as Error).message));
    if (!lostTheRace || attempt === 5) throw error;
    await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** attempt));
  }
}

// PostgreSQL SQLSTATEs and MySQL/MariaDB error names, grouped by what the operator has to do.
const LOGIN_FAILED = new Set(['28P01', '28000', 'ER_ACCESS_DENIED_ERROR', 'ER_ACCESS_DENIED_NO_PASSWORD_ERROR', 'ER_NOT_SUPPORTED_AUTH_MODE']);
const NO_DATABASE = new Set(['3D000', 'ER_BAD_DB_ERROR']);
const NO_PRIVILEGE = new Set([
  '42501',
  'ER_DBACCESS_DENIED_ERROR',
  'ER_TABLEACCESS_DENIED_ERROR',
  'ER_COLUMNACCESS_DENIED_ERROR',
  'ER_SPECIFIC_ACCESS_DENIED_ERROR',
]);
const NO_TABLE = new Set(['42P01', '42703', 'ER_NO_SUCH_TABLE', 'ER_BAD_FIELD_ERROR']);
const UNREACHABLE = new Set(['ECONNREFUSED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', NO_ANSWER]);
// A row lock another session held past the lock timeout (lock_timeout, innodb_lock_wait_timeout).
const LOCK_NOT_RELEASED = new Set(['55P03', 'ER_LOCK_WAIT_TIMEOUT']);
const CONNECTION_LOST = new Set([
  '57P01',
  '57P02',
  '57P03',
  '08000',
  '08003',
  '08006',
  'ECONNRESET',
  'EPIPE',
  'PROTOCOL_CONNECTION_LOST',
  'ER_CONNECTION_KILLED',
  'ER_SERVER_SHUTDOWN',
  'ER_QUERY_INTERRUPTED',
]);

// How pg and mysql2 report a socket closed under them when they give no code.
const LOST_WITHOUT_CODE =
  /Connection terminated|Client has encountered a connection error|connection is in closed state|Connection lost|timeout exceeded when trying to connect/i;

/**
 * The server cancelled a statement for running too long: PostgreSQL's statement_timeout (57014 "due to statement
 * timeout", not a cancel by hand), MariaDB's max_statement_time (errno 1969, which mysql2 names no code) or MySQL's max_execution_time.
 */
function isStatementTimeout(error: unknown): boolean {
  const code = errorCode(error);
  if (code === '57014') return /statement timeout/i.test(messageOf(error));
  return code === 'ER_QUERY_TIMEOUT' || (error as { errno?: unknown } | null)?.errno === 1969;
}

/** Whether an error came from the database (its driver or server) rather than from our own code. */
export function isDatabaseError(error: unknown): boolean {
  // Duck-typed, not instanceof Error: a native driver's errors may come from another realm (jest's VM contexts).
  if (error instanceof ExitError || typeof error !== 'object' || error === null) return false;
  if (isStatementTimeout(error)) return true;
  const code = errorCode(error);
  if (code.startsWith('SQLITE_') || code.startsWith('ER_') || /^([0-9][0-9A-Z]{4}|XX000)$/.test(code) || CONNECTION_LOST.has(code) || code === NO_ANSWER)
    return true;
  const { message } = error as { message?: unknown };
  return typeof message === 'string' && LOST_WITHOUT_CODE.test(message);
}

/**
 * A first connection that failed in a way that is no known refusal (a wrong password, a missing database):
 * nothing was ever connected, so it was not "lost". A port where another kind of server answers, or that
 * closes at once, ends here.
 */
function firstConnectionError(target: Exclude<DatabaseTarget, { dialect: 'sqlite' }>, error: unknown): unknown {
  const mapped = databaseError(target, error);
  if (mapped.code !== EXIT.failure || UNREACHABLE.has(errorCode(error))) return mapped;
  const kind = target.dialect === 'postgres' ? 'PostgreSQL' : 'MySQL or MariaDB';
  return new ExitError(
    EXIT.failure,
    `Cannot connect to ${describeTarget(target)}: ${messageOf(error).replaceAll(target.url, target.label) || errorCode(error)}. Is a ${kind} server listening at ${target.host}:${target.port}? Check database.url or LICENSE_MANAGER_DB.`,
    { cause: error },
  );
}

/** Turns a driver's error into a message that names the database (host and name, password masked) and says what to do. */
export function databaseError(target: DatabaseTarget, error: unknown): ExitError {
  if (error instanceof ExitError) return error;
  if (target.dialect === 'sqlite') return sqliteError(target.filename, error);
  const where = describeTarget(target);
  const code = errorCode(error);
  // Drivers may echo the connection string; never let a password through.
  const detail = messageOf(error).replaceAll(target.url, target.label);
  const fix = 'Check database.url or LICENSE_MANAGER_DB.';
  if (LOGIN_FAILED.has(code)) return usageError(`Cannot log in to ${where}: ${detail}. Check the user name and password in the URL. ${fix}`, { cause: error });
  if (NO_DATABASE.has(code))
    return usageError(`${where} does not exist (${detail}). Create it (CREATE DATABASE ${target.database}) or fix the name in the URL.`, { cause: error });
  if (NO_PRIVILEGE.has(code))
    return usageError(`The database user lacks a privilege on ${where}: ${detail}. Grant it (see README, "Using PostgreSQL or MySQL") or use another user.`, {
      cause: error,
    });
  if (NO_TABLE.has(code))
    return usageError(`The schema of ${where} is older than this version (${detail}). Run "${commandLine('migrate')}".`, { cause: error });
  if (LOCK_NOT_RELEASED.has(code)) {
    return new ExitError(
      EXIT.failure,
      `Another session held a lock on ${where} for too long (${detail}): an open transaction (an administrator's session, a report) or a stopped process holds rows this command must write. Find it (PostgreSQL: pg_stat_activity; MySQL: SHOW PROCESSLIST), end it, and run the command again.`,
      { cause: error },
    );
  }
  if (code === 'ENOTFOUND') return usageError(`Cannot find host ${target.host} of ${where}: ${detail}. ${fix}`, { cause: error });
  if (isStatementTimeout(error)) {
    const setting =
      target.dialect === 'postgres'
        ? 'statement_timeout (ALTER ROLE <user> SET statement_timeout = ...)'
        : 'max_statement_time (MariaDB) or max_execution_time (MySQL)';
    return new ExitError(
      EXIT.failure,
      `A query on ${where} ran longer than the server's statement time limit and was cancelled (${detail}). The server answers; raise ${setting} for this user or database, then run the command again.`,
      { cause: error },
    );
  }
  if (UNREACHABLE.has(code) || /timeout/i.test(detail)) {
    return new ExitError(EXIT.failure, `Cannot reach ${where}: ${detail || code}. Is the server running and reachable from here? ${fix}`, { cause: error });
  }
  if (CONNECTION_LOST.has(code) || LOST_WITHOUT_CODE.test(detail)) {
    return new ExitError(
      EXIT.failure,
      `Lost the connection to ${where}: ${detail || code}. Nothing is lost: deliveries in flight are taken over by the next run. Run the command again.`,
      { cause: error },
    );
  }
  return new ExitError(EXIT.failure, `${where}: ${detail || code}`, { cause: error });
}

/**
 * What this user may not do with the database file, in words that are true for every command (`status`
 * only reads, but SQLite writes a shared-memory file beside a WAL database even to read it), and whose
 * account can: undefined when the file and its directory are open to this user.
 */
function permissionProblem(filename: string): string | undefined {
  const directory = path.dirname(filename);
  const may = (file: string, mode: number) => {
    try {
      fs.accessSync(file, mode);
      return true;
    } catch {
      return false;
    }
  };
  let stat: fs.Stats;
  try {
    stat = fs.statSync(filename);
  } catch {
    return undefined;
  }
  const uid = process.getuid?.() ?? -1;
  const user = accountName(uid);
  const owner = accountName(stat.uid);
  const facts = `(owner ${owner}, mode ${(stat.mode & 0o777).toString(8)})`;
  const fix =
    stat.uid === uid
      ? `Check the permissions of the file and of ${directory} (chmod, chattr, a read-only mount).`
      : `Run the command as ${owner}, who owns it (sudo -u ${owner} license-manager ...), or change the permissions.`;
  if (!may(filename, fs.constants.R_OK)) return `Cannot read database ${filename}: user ${user} may not ${facts}. ${fix}`;
  if (!may(filename, fs.constants.W_OK)) {
    return `Cannot write database ${filename}: user ${user} may not ${facts}, and SQLite must, even for a command that only reads such as status (it keeps a shared-memory file beside the database). ${fix}`;
  }
  if (!may(directory, fs.constants.W_OK))
    return `Cannot write database ${filename}: user ${user} may not write in ${directory}, where SQLite keeps its journal files ${facts}. ${fix}`;
  return undefined;
}

/** A user's name from /etc/passwd, or `uid N` when it has none. */
function accountName(uid: number): string {
  try {
    const line = fs
      .readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .find((entry) => entry.split(':')[2] === String(uid));
    if (line) return line.split(':')[0]!;
  } catch {
    // no passwd file (a container, Windows): the number says it
  }
  return `uid ${uid}`;
}

/** Turns SQLite's codes into a message that names the file and says what to do. */
function sqliteError(filename: string, error: unknown): ExitError {
  const code = (error as { code?: string }).code ?? '';
  const detail = messageOf(error);
  if (code === 'SQLITE_NOTADB') {
    return usageError(`${filename} is not a SQLite database. Point database.filename or LICENSE_MANAGER_DB at a license-manager database.`, { cause: error });
  }
  if (code === 'SQLITE_READONLY' || code.startsWith('SQLITE_READONLY') || code === 'SQLITE_CANTOPEN' || code.startsWith('SQLITE_CANTOPEN')) {
    return usageError(permissionProblem(filename) ?? `Cannot write database ${filename} (${detail}). Check the file's and its directory's permissions.`, {
      cause: error,
    });
  }
  if (code === 'SQLITE_FULL') {
    return new ExitError(
      EXIT.failure,
      `Disk full: cannot write database ${filename} (${detail}). Free space on its disk, then run the command again: whatever was not recorded as sent is still pending and goes out with the next run.`,
      { cause: error },
    );
  }
  if (code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY')) {
    return new ExitError(
      EXIT.failure,
      `Database ${filename} stayed locked by another process for more than ${BUSY_TIMEOUT_MS / 1000} s. Try again when the other run has finished.`,
      { cause: error },
    );
  }
  return new ExitError(EXIT.failure, `Database ${filename}: ${detail}`, { cause: error });
}
