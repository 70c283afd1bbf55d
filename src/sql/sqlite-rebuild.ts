import { sql, type Kysely } from 'kysely';
import { tablePrefixOf } from './table-prefix.js';

/** What a rebuild changes: the new CREATE statement (undefined: already done, nothing to rebuild), and the columns whose rows come back. */
export interface SqliteRebuild {
  /** The table's CREATE statement as sqlite_master holds it → the one to rebuild it with, or undefined when it needs no change. */
  rewrite: (create: string) => string | undefined;
  /** Columns of the old table that are not copied (a column the rebuild drops). */
  dropColumns?: readonly string[];
}

/**
 * SQLite cannot drop a column's UNIQUE or change a CHECK: the table is rebuilt (sqlite.org/lang_altertable.html,
 * "other kinds of table schema changes"), from its own CREATE statement so columns other migrations added are
 * kept. It runs inside a transaction (`migrate` runs every pending migration in one, storage/open-database.ts), where
 * foreign_keys cannot be switched off: with defer_foreign_keys on, dropping the table leaves rows of other
 * tables (webhook_attempts) pointing at nothing until the new table of the same name gets the same rows back,
 * all before the commit, where SQLite checks that nothing is left pointing at nothing
 * (sqlite.org/foreignkeys.html, "deferred foreign key constraints"); foreign_key_check confirms it first. A
 * second process that migrated first is seen inside the transaction: nothing to do. Called outside a
 * transaction, it opens one.
 */
export async function rebuildSqliteTable(db: Kysely<any>, name: string, change: SqliteRebuild): Promise<void> {
  if (!db.isTransaction) return db.transaction().execute((trx) => rebuildSqliteTable(trx, name, change));
  const table = `${tablePrefixOf(db)}${name}`;
  const copy = `${table}_rows_during_rebuild`;
  const { rows } = await sql<{ type: string; name: string; sql: string | null }>`select type, name, sql from sqlite_master where tbl_name = ${table}`.execute(
    db,
  );
  const create = rows.find((row) => row.type === 'table')?.sql;
  if (!create) throw new Error(`${table} has no CREATE statement in sqlite_master`);
  const definition = change.rewrite(create);
  if (definition === undefined) return;
  const dropped = new Set(change.dropColumns ?? []);
  const columns = (await sql<{ name: string }>`select name from pragma_table_info(${table})`.execute(db)).rows
    .map((row) => row.name)
    .filter((column) => !dropped.has(column));
  const list = sql.join(columns.map((column) => sql.id(column)));
  await sql`pragma defer_foreign_keys = on`.execute(db);
  await sql`create temp table ${sql.id(copy)} as select ${list} from ${sql.id(table)}`.execute(db);
  await sql`drop table ${sql.id(table)}`.execute(db);
  await sql.raw(definition).execute(db);
  await sql`insert into ${sql.id(table)} (${list}) select ${list} from ${sql.id(copy)}`.execute(db);
  await sql`drop table ${sql.id(copy)}`.execute(db);
  // Dropping the table dropped its indexes; the automatic ones (sql null) came back with the constraints.
  for (const index of rows) if (index.type === 'index' && index.sql) await sql.raw(index.sql).execute(db);
  const broken = await sql`pragma foreign_key_check`.execute(db);
  if (broken.rows.length > 0) throw new Error(`rebuilding ${table} broke ${broken.rows.length} foreign key reference(s)`);
}
