import { sql, type Kysely } from 'kysely';
import { StorageRefusal } from './storage-refusal.js';

/**
 * MySQL and MariaDB commit each schema change at once: a migrate refused half-way leaves a migration half
 * applied. So migrate first reads the user's grants (SHOW GRANTS) and refuses, changing nothing, when one it
 * needs is missing. Best effort: grants it cannot read for sure (roles, table or column grants, patterns it
 * does not understand) let migrate go on, and the server's own refusal then names the privilege.
 */

// What each migration does on MySQL, as privileges. Kysely's bookkeeping needs SELECT, INSERT, UPDATE, DELETE.
const MIGRATION_PRIVILEGES: Record<string, readonly string[]> = {
  '0001_initial': ['CREATE', 'INDEX', 'REFERENCES'],
  '0002_delivery_schedule': ['ALTER'],
  '0003_runs': ['CREATE', 'INDEX'],
  '0004_botble_license_states': ['CREATE'],
  '0005_event_instants': ['ALTER', 'UPDATE'],
  '0006_big_license_ids': ['ALTER'],
  '0007_long_texts': ['ALTER'],
};
const BOOKKEEPING = ['SELECT', 'INSERT', 'UPDATE', 'DELETE'];
// A migration missing from the list above is assumed to change the schema every way.
const UNLISTED = ['CREATE', 'ALTER', 'INDEX'];

/** The privileges these pending migrations need, each with the first migration that needs it. */
function privilegesFor(pending: readonly string[], firstMigrate: boolean): Map<string, string> {
  const needed = new Map<string, string>();
  if (firstMigrate) needed.set('CREATE', 'the migration bookkeeping tables');
  for (const privilege of BOOKKEEPING) needed.set(privilege, needed.get(privilege) ?? 'the migration bookkeeping tables');
  for (const name of pending)
    for (const privilege of MIGRATION_PRIVILEGES[name] ?? UNLISTED)
      if (!needed.has(privilege) || needed.get(privilege)!.startsWith('the ')) needed.set(privilege, `migration ${name}`);
  return needed;
}

/** The privileges the grants give on `database` (every one for ALL), or undefined when they cannot be read for sure. */
function grantedPrivileges(grants: readonly string[], database: string): Set<string> | undefined {
  const granted = new Set<string>();
  for (const grant of grants) {
    const match = /^GRANT (.+?) ON (\S+) TO /i.exec(grant.trim());
    if (!match) {
      // "GRANT role TO user": a role's privileges are not listed here.
      if (/^GRANT [^ ]+ TO /i.test(grant.trim())) return undefined;
      continue;
    }
    const [, list, scope] = match as unknown as [string, string, string];
    if (/^PROCEDURE |^FUNCTION /i.test(scope)) continue;
    const [schema, table] = scope.split('.') as [string, string | undefined];
    if (table !== '*') {
      // Grants on single tables: not read here.
      if (schema === '*' || unquote(schema) === database) return undefined;
      continue;
    }
    if (schema !== '*' && !schemaMatches(unquote(schema), database)) continue;
    for (const privilege of list.split(/,(?![^(]*\))/).map((part) => part.trim().toUpperCase())) {
      if (privilege.includes('(')) continue; // column grants
      if (privilege === 'ALL' || privilege === 'ALL PRIVILEGES') {
        for (const any of ['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'CREATE', 'ALTER', 'INDEX', 'REFERENCES', 'DROP', 'CREATE TEMPORARY TABLES'])
          granted.add(any);
      } else {
        granted.add(privilege);
      }
    }
  }
  return granted;
}

function unquote(name: string): string {
  return name.replace(/^`(.*)`$/, '$1').replaceAll('``', '`');
}

/** A database name in a grant may be a LIKE pattern (`lm\_%`); `\_` and `\%` are the characters themselves. */
function schemaMatches(pattern: string, database: string): boolean {
  if (!/(?<!\\)[%_]/.test(pattern)) return pattern.replace(/\\([%_])/g, '$1') === database;
  const regex = pattern.replace(
    /\\([%_])|([%_])|([.*+?^${}()|[\]\\])/g,
    (_all, escaped: string | undefined, wild: string | undefined, special: string | undefined) =>
      escaped ? `\\${escaped}` : wild === '%' ? '.*' : wild === '_' ? '.' : `\\${special}`,
  );
  return new RegExp(`^${regex}$`).test(database);
}

/** Refuses (nothing changed) when the user lacks a privilege these migrations need; undefined when all are there or unknown. */
export async function checkMigratePrivileges(db: Kysely<any>, pending: readonly string[], firstMigrate: boolean): Promise<void> {
  const { rows } = await sql<{ user: string; database: string }>`select current_user() as user, database() as ${sql.ref('database')}`.execute(db);
  const { user, database } = rows[0]!;
  const shown = await sql<Record<string, string>>`show grants`.execute(db);
  const granted = grantedPrivileges(
    shown.rows.map((row) => Object.values(row)[0] ?? ''),
    database,
  );
  if (!granted) return;
  const missing = [...privilegesFor(pending, firstMigrate)].filter(([privilege]) => !granted.has(privilege));
  if (missing.length === 0) return;
  throw new StorageRefusal({ kind: 'missing-privileges', user, database, missing, command: 'migrate' });
}

/** `licenses import` on MySQL uses a temporary table: a refusal there, with the user and database a GRANT names. */
export async function temporaryTableRefused(db: Kysely<any>, error: unknown): Promise<StorageRefusal> {
  const { rows } = await sql<{ user: string; database: string }>`select current_user() as user, database() as ${sql.ref('database')}`.execute(db);
  const { user, database } = rows[0]!;
  return new StorageRefusal({ kind: 'no-temporary-tables', user, database }, { cause: error });
}
