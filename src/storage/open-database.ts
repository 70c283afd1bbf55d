import fs from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, type MigrationProvider } from 'kysely';
import { migrations } from '../../migrations/index.js';
import { ExitError, EXIT, usageError } from '../errors.js';
import type { Database } from './database.table.js';

const BUSY_TIMEOUT_MS = 5000;

const provider: MigrationProvider = { getMigrations: async () => migrations };

/**
 * Opens (creating when missing) the SQLite file and brings its schema up to date.
 * A file the tool creates is readable by its owner only: it holds customer e-mail addresses.
 */
export async function openDatabase(filename: string, onMigrated?: (applied: string[]) => void): Promise<Kysely<Database>> {
  const directory = path.dirname(filename);
  if (!fs.existsSync(directory)) {
    throw usageError(`Database directory ${directory} does not exist (database file ${filename}). Create it, or set database.filename / LICENSE_MANAGER_DB.`);
  }
  if (fs.existsSync(filename) && !fs.statSync(filename).isFile()) {
    throw usageError(`Database ${filename} is not a regular file. Point database.filename or LICENSE_MANAGER_DB at a SQLite file (it is created when missing).`);
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
    refuseForeignDatabase(sqlite, filename);
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = NORMAL');
    sqlite.pragma('foreign_keys = ON');
    // 4 MB of page cache (the build's default is 16 MB): the scans are index ranges, and RSS matters at 1M rows.
    sqlite.pragma('cache_size = -4000');
  } catch (error) {
    sqlite?.close();
    throw databaseError(filename, error);
  }
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite! }) });
  try {
    const report = await migrateToLatest(db);
    onMigrated?.(report.applied);
  } catch (error) {
    await db.destroy();
    throw databaseError(filename, error);
  }
  return db;
}

/**
 * Another application's database must not get our tables: a file with tables but without our migration
 * log is refused before anything (even the journal mode) is written. Empty files and ours are fine.
 */
function refuseForeignDatabase(sqlite: SQLite.Database, filename: string): void {
  const names = (sqlite.prepare("select name from sqlite_master where type in ('table', 'view') and name not like 'sqlite_%'").all() as Array<{ name: string }>).map(
    (row) => row.name,
  );
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
async function migrateToLatest(db: Kysely<Database>): Promise<MigrationReport> {
  const migrator = new Migrator({ db, provider });
  for (let attempt = 1; ; attempt += 1) {
    const { error, results } = await migrator.migrateToLatest();
    if (!error) return { applied: (results ?? []).filter((result) => result.status === 'Success').map((result) => result.migrationName) };
    const { code } = error as { code?: unknown };
    const lostTheRace = (typeof code === 'string' && code.startsWith('SQLITE_BUSY')) || /already exists|duplicate column name/.test(String((error as Error).message));
    if (!lostTheRace || attempt === 5) throw error;
    await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** attempt));
  }
}

/** Turns SQLite's codes into a message that names the file and says what to do. */
export function databaseError(filename: string, error: unknown): ExitError {
  if (error instanceof ExitError) return error;
  const code = (error as { code?: string }).code ?? '';
  const detail = error instanceof Error ? error.message : String(error);
  if (code === 'SQLITE_NOTADB') {
    return usageError(`${filename} is not a SQLite database. Point database.filename or LICENSE_MANAGER_DB at a license-manager database.`, { cause: error });
  }
  if (code === 'SQLITE_READONLY' || code.startsWith('SQLITE_READONLY') || code === 'SQLITE_CANTOPEN' || code.startsWith('SQLITE_CANTOPEN')) {
    return usageError(`Cannot write database ${filename} (${detail}). Check the file's and its directory's permissions.`, { cause: error });
  }
  if (code === 'SQLITE_FULL') {
    return new ExitError(
      EXIT.failure,
      `Disk full: cannot write database ${filename} (${detail}). Free space on its disk, then run the command again: whatever was not recorded as sent is still pending and goes out with the next run.`,
      { cause: error },
    );
  }
  if (code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY')) {
    return new ExitError(EXIT.failure, `Database ${filename} stayed locked by another process for more than ${BUSY_TIMEOUT_MS / 1000} s. Try again when the other run has finished.`, { cause: error });
  }
  return new ExitError(EXIT.failure, `Database ${filename}: ${detail}`, { cause: error });
}
