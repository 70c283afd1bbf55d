import fs from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { expect, test } from '@jest/globals';
import { LONGEST_INDEX_NAME } from '../../src/sql/table-prefix.js';
import { runCli } from '../helpers/cli.js';
import { sessionQuery, type ServerDatabase } from '../helpers/servers.js';
import { tempDir } from '../helpers/temp-dir.js';
import { forEachDialect } from '../helpers/workspace.js';

/** A project whose config file names the server database and the table prefix, and nothing else. */
function projectOn(server: ServerDatabase, tablePrefix: string): string {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'license-manager.config.json'), JSON.stringify({ database: { url: server.url, tablePrefix } }), { mode: 0o600 });
  return dir;
}

/** A LIKE pattern for the names under a prefix (its _ taken literally). */
const under = (prefix: string) => `${prefix.replaceAll('_', '\\_')}%`;

// Index names carry the table prefix, and MySQL and MariaDB refuse an identifier over 64 characters: a prefix longer
// than 64 less the longest index name stopped `migrate` half-way (ER_TOO_LONG_IDENT at migration 0009).

forEachDialect(
  'the longest index name',
  ({ workspace }) => {
    test('is what the limit on table prefixes is computed from', async () => {
      const ws = workspace();
      await ws.ready();
      const sqlite = new SQLite(ws.databaseLocation, { readonly: true });
      try {
        const names = sqlite.prepare<[], { name: string }>("select name from sqlite_master where type = 'index' and sql is not null").all();
        expect(Math.max(...names.map(({ name }) => name.length))).toBe(LONGEST_INDEX_NAME);
      } finally {
        sqlite.close();
      }
    });
  },
  ['sqlite'],
);

forEachDialect(
  'table prefixes on MySQL and MariaDB',
  ({ serverDatabase }) => {
    const project = (tablePrefix: string) => projectOn(serverDatabase(), tablePrefix);
    const tablesUnder = async (prefix: string) =>
      (
        await sessionQuery(
          serverDatabase(),
          `select table_name from information_schema.tables where table_schema = database() and table_name like '${under(prefix)}'`,
        )
      ).length;

    test('a prefix as long as the index names allow migrates, every index included', async () => {
      const prefix = `${'p'.repeat(64 - LONGEST_INDEX_NAME - 1)}_`;
      const migrated = await runCli(['migrate', '--json'], { cwd: project(prefix) });
      expect([migrated.code, migrated.stderr]).toEqual([0, '']);
      const [longest] = await sessionQuery(
        serverDatabase(),
        `select max(length(index_name)) as n from information_schema.statistics where table_schema = database() and index_name like '${under(prefix)}'`,
      );
      expect(Number(longest!.n)).toBe(64);
    });

    test('one character more is refused before anything is created, naming the limit', async () => {
      const prefix = `${'q'.repeat(64 - LONGEST_INDEX_NAME)}_`;
      const cwd = project(prefix);
      // The URL from the config file, and from LICENSE_MANAGER_DB with the prefix still from the config file.
      const runs = [['migrate'], ['process-expirations'], ['status']].map((args) => () => runCli(args, { cwd }));
      runs.push(() => runCli(['migrate'], { cwd, env: { LICENSE_MANAGER_DB: serverDatabase().url } }));
      for (const run of runs) {
        const refused = await run();
        expect(refused.code).toBe(2);
        expect(refused.stderr).toContain(
          `the table prefix "${prefix}" (database.tablePrefix) is ${prefix.length} characters, and MySQL or MariaDB takes at most ${64 - LONGEST_INDEX_NAME}`,
        );
      }
      expect(await tablesUnder(prefix)).toBe(0);
    });
  },
  ['mysql'],
);

forEachDialect(
  'table prefixes on PostgreSQL',
  ({ serverDatabase }) => {
    const project = (tablePrefix: string) => projectOn(serverDatabase(), tablePrefix);
    const indexesUnder = async (prefix: string) =>
      (await sessionQuery(serverDatabase(), `select indexname from pg_indexes where schemaname = current_schema() and tablename like '${under(prefix)}'`))
        .length;

    test('names cut to 63 characters stay apart up to 28 characters: every index is made', async () => {
      const short = 's_';
      const long = `${'r'.repeat(27)}_`;
      for (const prefix of [short, long]) expect((await runCli(['migrate'], { cwd: project(prefix) })).code).toBe(0);
      expect(await indexesUnder(long)).toBe(await indexesUnder(short));
    });

    test('a prefix that would make two index names the same is refused, and the migrate rolled back', async () => {
      const prefix = `${'t'.repeat(28)}_`;
      const refused = await runCli(['migrate'], { cwd: project(prefix) });
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain(`The table prefix "${prefix}" (database.tablePrefix) is too long for PostgreSQL: it cuts index names to 63 characters`);
      expect(refused.stderr).toContain('Use a prefix of at most 28 characters.');
      // Only the migration log's own tables, which the migrator makes before its transaction, are there.
      const tables = await sessionQuery(
        serverDatabase(),
        `select tablename from pg_tables where schemaname = current_schema() and tablename like '${under(prefix)}' order by tablename`,
      );
      expect(tables.map((row) => row.tablename)).toEqual([`${prefix}kysely_migration`, `${prefix}kysely_migration_lock`]);
      expect(await indexesUnder(prefix)).toBe(2);
    });
  },
  ['postgres'],
);
