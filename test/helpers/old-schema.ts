import SQLite from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, type Migration } from 'kysely';
import { migrations } from '../../migrations/index.js';
import type { Database } from '../../src/storage/database.table.js';
import { parseDatabaseUrl, type DatabaseTarget } from '../../src/storage/database-target.js';
import { openDatabase } from '../../src/storage/open-database.js';
import type { Workspace } from './workspace.js';

/** The migrations before `name` (by number): the schema an earlier release created. */
export function migrationsBefore(name: string): Record<string, Migration> {
  return Object.fromEntries(Object.entries(migrations).filter(([migration]) => migration < name));
}

/** The workspace's database opened without migrating, with the prefix and pg/mysql settings the tool uses. */
export async function openAtOldSchema(ws: Workspace): Promise<Kysely<Database>> {
  if (ws.dialect === 'sqlite') return new Kysely<Database>({ dialect: new SqliteDialect({ database: new SQLite(ws.databaseLocation) }) });
  return openDatabase(parseDatabaseUrl(ws.databaseLocation, ws.tablePrefix) as DatabaseTarget, { migrate: false, schemaCheck: false });
}

/** A migrator over `list` with the workspace's bookkeeping tables, as the tool's own. */
export function migratorFor(db: Kysely<Database>, ws: Workspace, list: Record<string, Migration> = migrations): Migrator {
  return new Migrator({
    db,
    provider: { getMigrations: async () => list },
    migrationTableName: `${ws.tablePrefix}kysely_migration`,
    migrationLockTableName: `${ws.tablePrefix}kysely_migration_lock`,
    allowUnorderedMigrations: true,
  });
}

/**
 * The message a database refusal ends with ('' when there is none). Read off the error, not with rejects.toThrow: a
 * native driver's errors come from the realm that first loaded it, which jest does not take for an Error.
 */
export async function refusal(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => '',
    (error: unknown) => String((error as { message?: unknown }).message ?? error),
  );
}
