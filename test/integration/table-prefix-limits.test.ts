import fs from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { expect, test } from '@jest/globals';
import { LONGEST_INDEX_NAME } from '../../src/sql/table-prefix.js';
import { runCli } from '../helpers/cli.js';
import { sessionQuery } from '../helpers/servers.js';
import { tempDir } from '../helpers/temp-dir.js';
import { forEachDialect } from '../helpers/workspace.js';

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
    const project = (tablePrefix: string) => {
      const dir = tempDir();
      fs.writeFileSync(path.join(dir, 'license-manager.config.json'), JSON.stringify({ database: { url: serverDatabase().url, tablePrefix } }), {
        mode: 0o600,
      });
      return dir;
    };
    const tablesUnder = async (prefix: string) =>
      (
        await sessionQuery(
          serverDatabase(),
          `select table_name from information_schema.tables where table_schema = database() and table_name like '${prefix.replaceAll('_', '\\_')}%'`,
        )
      ).length;

    test('a prefix as long as the index names allow migrates, every index included', async () => {
      const prefix = `${'p'.repeat(64 - LONGEST_INDEX_NAME - 1)}_`;
      const migrated = await runCli(['migrate', '--json'], { cwd: project(prefix) });
      expect([migrated.code, migrated.stderr]).toEqual([0, '']);
      const [longest] = await sessionQuery(
        serverDatabase(),
        `select max(length(index_name)) as n from information_schema.statistics where table_schema = database() and index_name like '${prefix.replaceAll('_', '\\_')}%'`,
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
