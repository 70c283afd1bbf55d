import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { createConnection } from 'mysql2/promise';
import pg from 'pg';

/** The dialects a suite can run on; which server ones run is decided once, in test/helpers/global-setup.ts. */
export type TestDialect = 'sqlite' | 'postgres' | 'mysql';
export type ServerDialect = Exclude<TestDialect, 'sqlite'>;

/** Admin URLs of the servers the tests create their databases on (defaults are set in global-setup.cjs). */
function adminUrl(dialect: ServerDialect): string {
  const variable = dialect === 'postgres' ? 'LICENSE_MANAGER_TEST_PG_URL' : 'LICENSE_MANAGER_TEST_MYSQL_URL';
  const url = process.env[variable];
  if (!url) throw new Error(`${variable} is not set: run the tests through jest, whose global setup sets it.`);
  return url;
}

/** The dialects the global setup found answering (SQLite always). */
export function testDialects(): TestDialect[] {
  const servers = (process.env.LICENSE_MANAGER_TEST_DIALECTS ?? '').split(',').filter((name): name is ServerDialect => name === 'postgres' || name === 'mysql');
  return ['sqlite', ...servers];
}

/** The same URL on another database, for the database a test creates. */
export function urlFor(base: string, database: string, credentials?: { user: string; password?: string }): string {
  const url = new URL(base);
  url.pathname = `/${database}`;
  if (credentials) {
    url.username = credentials.user;
    url.password = credentials.password ?? '';
  }
  return url.toString();
}

/** Runs admin SQL on a server (database-level statements: create, drop, grant, kill). */
export async function adminQuery(dialect: ServerDialect, statement: string, database?: string): Promise<unknown[]> {
  const url = database ? urlFor(adminUrl(dialect), database) : adminUrl(dialect);
  if (dialect === 'postgres') {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
    await client.connect();
    try {
      return (await client.query(statement)).rows;
    } finally {
      await client.end();
    }
  }
  const connection = await createConnection({ uri: url, connectTimeout: 5000, dateStrings: true });
  try {
    const [rows] = await connection.query(statement);
    return Array.isArray(rows) ? rows : [];
  } finally {
    await connection.end();
  }
}

export interface ServerDatabase {
  dialect: ServerDialect;
  name: string;
  /** Connection URL of this database as the admin user. */
  url: string;
  drop(): Promise<void>;
}

/** A fresh database `lm_test_<random>` on the server; drop() removes it (closing other sessions on PostgreSQL). */
export async function createServerDatabase(dialect: ServerDialect): Promise<ServerDatabase> {
  const name = `lm_test_${randomBytes(5).toString('hex')}`;
  await adminQuery(dialect, `create database ${name}`);
  return {
    dialect,
    name,
    url: urlFor(adminUrl(dialect), name),
    drop: async () => {
      await adminQuery(dialect, dialect === 'postgres' ? `drop database if exists ${name} with (force)` : `drop database if exists ${name}`);
    },
  };
}

/** The prefix of the tables `license-manager migrate` creates once per suite database, copied for each workspace. */
const TEMPLATE_PREFIX = 'lmtemplate_';

/**
 * Gives a server database fresh, migrated tables under any prefix for a fraction of a migrate (a migrate is ten
 * migrations with their checks, 0.6 to 3 s; a copy is one batch of DDL): the first copy migrates a template prefix
 * with the tool's own code and reads its DDL back (SHOW CREATE TABLE on MySQL, pg_dump on PostgreSQL); each copy
 * replays that DDL under the new prefix and copies the migration bookkeeping rows, so the tool finds the schema up to date.
 * `migrate` is the tool's migrate of a prefix; without pg_dump every copy is one.
 */
export function schemaCopier(server: ServerDatabase, migrate: (tablePrefix: string) => Promise<void>): (tablePrefix: string) => Promise<void> {
  let template: Promise<string[] | undefined> | undefined;
  return async (tablePrefix) => {
    template ??= migrate(TEMPLATE_PREFIX).then(() => templateDdl(server));
    const ddl = await template;
    // Tables a test made itself (an older schema) are brought up to date, as the tool would.
    if (!ddl || (await tablesUnder(server, tablePrefix)) > 0) return migrate(tablePrefix);
    const statements = ddl.map((statement) => statement.replaceAll(TEMPLATE_PREFIX, tablePrefix));
    for (const table of ['kysely_migration', 'kysely_migration_lock']) {
      statements.push(`insert into ${tablePrefix}${table} select * from ${TEMPLATE_PREFIX}${table}`);
    }
    await runStatements(server, statements);
  };
}

/** How many tables the server database has under a prefix. */
async function tablesUnder(server: ServerDatabase, tablePrefix: string): Promise<number> {
  const pattern = `${tablePrefix.replaceAll('_', '\\_')}%`;
  const rows =
    server.dialect === 'postgres'
      ? await adminQuery('postgres', `select tablename from pg_tables where schemaname = 'public' and tablename like '${pattern}'`, server.name)
      : await adminQuery('mysql', `show tables like '${pattern}'`, server.name);
  return rows.length;
}

/** The template's DDL (undefined when it cannot be read: no pg_dump). */
async function templateDdl(server: ServerDatabase): Promise<string[] | undefined> {
  if (server.dialect === 'mysql') {
    const tables = (await adminQuery('mysql', `show tables like '${TEMPLATE_PREFIX.replaceAll('_', '\\_')}%'`, server.name)) as Record<string, string>[];
    const names = tables.map((row) => Object.values(row)[0]!);
    const created = await Promise.all(names.map((name) => adminQuery('mysql', `show create table \`${name}\``, server.name)));
    return created.map((rows) => (rows[0] as Record<string, string>)['Create Table']!);
  }
  const dump = spawnSync('pg_dump', ['--schema-only', '--no-owner', '--no-privileges', '--table', `${TEMPLATE_PREFIX}*`, server.url], { encoding: 'utf8' });
  if (dump.status !== 0) return undefined;
  // psql meta-commands (\restrict) and comments are not SQL, and the search path stays ours (the dump names public.); the rest runs as one batch.
  return [
    dump.stdout
      .split('\n')
      .filter((line) => !line.startsWith('\\') && !line.startsWith('--') && !line.includes("set_config('search_path'"))
      .join('\n'),
  ];
}

/** Runs statements in order on one connection of the server database (MySQL: foreign keys checked once all exist). */
async function runStatements(server: ServerDatabase, statements: string[]): Promise<void> {
  if (server.dialect === 'postgres') {
    const client = new pg.Client({ connectionString: server.url, connectionTimeoutMillis: 5000 });
    await client.connect();
    try {
      await client.query(statements.join(';\n'));
    } finally {
      await client.end();
    }
    return;
  }
  const connection = await createConnection({ uri: server.url, connectTimeout: 5000, multipleStatements: true });
  try {
    await connection.query(['set foreign_key_checks = 0', ...statements, 'set foreign_key_checks = 1'].join(';\n'));
  } finally {
    await connection.end();
  }
}
