import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
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
  const database: ServerDatabase = {
    dialect,
    name,
    url: urlFor(adminUrl(dialect), name),
    drop: async () => {
      const session = sessions.get(database);
      sessions.delete(database);
      await session?.then(
        (open) => open.close(),
        () => undefined,
      );
      await adminQuery(dialect, dialect === 'postgres' ? `drop database if exists ${name} with (force)` : `drop database if exists ${name}`);
    },
  };
  return database;
}

/** The prefix of the tables `license-manager migrate` creates once per suite database, copied for each workspace. */
const TEMPLATE_PREFIX = 'lmtemplate_';

/** Migrated tables in a server database, for workspaces: see serverTables. */
export interface ServerTables {
  /**
   * Migrated, empty tables for a workspace whose fresh prefix is `fresh`: another workspace's tables emptied, or a copy
   * of the template under `fresh`. When `fresh` already has tables (a test built an older schema), they are migrated.
   */
  acquire(fresh: string): Promise<string>;
  /** Empties the tables of a workspace that is done, for the next one, unless their schema is no longer the template's. */
  release(tablePrefix: string): Promise<void>;
}

/** What the tool's migrate makes under the template prefix: the DDL, and the statements that copy its migration bookkeeping. */
interface Schema {
  ddl: string[];
  bookkeeping: string[];
}

/**
 * Gives workspaces fresh, migrated tables in a server database for a fraction of a migrate (ten migrations with their
 * checks: 0.6 s on an idle machine, 3 to 6 s on MariaDB under load, and each open of the database slows down as the
 * tables add up). The tool's own migrate runs once per jest run and server (sharedSchema), and its DDL is read back
 * (SHOW CREATE TABLE on MySQL, pg_dump on PostgreSQL); each suite database replays it under a template prefix. A
 * workspace that is done hands its tables back emptied (rows deleted, sequences restarted), if their schema is still the
 * template's; a new workspace takes those, or replays the DDL under its own prefix with the migration bookkeeping rows,
 * so the tool finds the schema up to date either way. `migrate` is the tool's migrate of a prefix in a server database;
 * without pg_dump every workspace is migrated.
 */
export function serverTables(server: ServerDatabase, migrate: (on: ServerDatabase, tablePrefix: string) => Promise<void>): ServerTables {
  let template: Promise<{ ddl: string[]; fingerprint: string } | undefined> | undefined;
  const free: string[] = [];
  const ready = () =>
    (template ??= sharedSchema(server.dialect, migrate).then(async (schema) => {
      if (!schema) return undefined;
      await withSession(server, (query) => query([...schema.ddl, ...schema.bookkeeping]));
      return { ddl: schema.ddl, fingerprint: await withSession(server, (query) => fingerprint(server.dialect, query, TEMPLATE_PREFIX)) };
    }));
  return {
    acquire: async (fresh) => {
      const made = await ready();
      if (!made || (await tablesUnder(server, fresh)) > 0) {
        await migrate(server, fresh);
        return fresh;
      }
      const reused = free.pop();
      if (reused !== undefined) return reused;
      const statements = made.ddl.map((statement) => statement.replaceAll(TEMPLATE_PREFIX, fresh));
      for (const table of ['kysely_migration', 'kysely_migration_lock']) {
        statements.push(`insert into ${fresh}${table} select * from ${TEMPLATE_PREFIX}${table}`);
      }
      await withSession(server, (query) => query(statements));
      return fresh;
    },
    release: async (tablePrefix) => {
      const made = await ready();
      if (!made) return;
      const emptied = await withSession(server, async (query) => {
        if ((await fingerprint(server.dialect, query, tablePrefix)) !== made.fingerprint) return false;
        await query(await emptyingStatements(server.dialect, query, tablePrefix));
        return true;
      });
      if (emptied) free.push(tablePrefix);
    },
  };
}

/** Per dialect, this jest worker's promise of the run's schema. */
const schemas = new Map<ServerDialect, Promise<Schema | undefined>>();

/**
 * The schema the tool's migrate makes, made once per jest run and server: a migrate in every suite database cost each
 * suite 0.6 s to several seconds of DDL (about fifty suites per server). The first worker to need it (an exclusive
 * create of a lock file in the run's folder, LICENSE_MANAGER_TEST_RUN_DIR, set by global-setup.cjs) migrates a
 * database of its own with the tool's code, writes the DDL and the bookkeeping to a file and drops the database; the
 * others wait for the file. Undefined without pg_dump; outside a jest run (no run folder), each process makes its own.
 */
function sharedSchema(dialect: ServerDialect, migrate: (on: ServerDatabase, tablePrefix: string) => Promise<void>): Promise<Schema | undefined> {
  let schema = schemas.get(dialect);
  if (!schema) {
    schema = readOrMakeSchema(dialect, migrate);
    schemas.set(dialect, schema);
  }
  return schema;
}

async function readOrMakeSchema(dialect: ServerDialect, migrate: (on: ServerDatabase, tablePrefix: string) => Promise<void>): Promise<Schema | undefined> {
  const runDir = process.env.LICENSE_MANAGER_TEST_RUN_DIR;
  if (!runDir) return makeSchema(dialect, migrate);
  const file = path.join(runDir, `schema-${dialect}.json`);
  try {
    fs.writeFileSync(`${file}.lock`, String(process.pid), { flag: 'wx' });
  } catch {
    // Another worker makes it: wait for its file (it writes one even when there is no schema to share).
    const started = Date.now();
    while (!fs.existsSync(file)) {
      if (Date.now() - started > 120_000) throw new Error(`the shared ${dialect} schema (${file}) was not written within 120 s`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const written = JSON.parse(fs.readFileSync(file, 'utf8')) as { schema?: Schema; failed?: string };
    if (written.failed !== undefined) throw new Error(`the shared ${dialect} schema could not be made in another worker: ${written.failed}`);
    return written.schema;
  }
  const write = (content: object) => {
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(content));
    fs.renameSync(`${file}.tmp`, file);
  };
  try {
    const schema = await makeSchema(dialect, migrate);
    write({ schema });
    return schema;
  } catch (error) {
    // The waiting workers fail at once with the reason, not after their 120 s.
    write({ failed: error instanceof Error ? error.message : String(error) });
    throw error;
  }
}

/** Migrates the template prefix in a database of its own, reads its DDL and bookkeeping, and drops the database. */
async function makeSchema(dialect: ServerDialect, migrate: (on: ServerDatabase, tablePrefix: string) => Promise<void>): Promise<Schema | undefined> {
  const database = await createServerDatabase(dialect);
  try {
    await migrate(database, TEMPLATE_PREFIX);
    const ddl = await templateDdl(database);
    if (!ddl) return undefined;
    const bookkeeping: string[] = [];
    for (const table of ['kysely_migration', 'kysely_migration_lock']) {
      const rows = (await adminQuery(dialect, `select * from ${TEMPLATE_PREFIX}${table}`, database.name)) as Record<string, unknown>[];
      for (const row of rows) {
        const values = Object.values(row).map((value) => {
          if (value === null) return 'null';
          if (typeof value === 'number') return String(value);
          if (typeof value !== 'string') throw new Error(`${TEMPLATE_PREFIX}${table}: a ${typeof value} value, where the bookkeeping holds text and numbers`);
          return `'${value.replaceAll("'", "''")}'`;
        });
        bookkeeping.push(`insert into ${TEMPLATE_PREFIX}${table} (${Object.keys(row).join(', ')}) values (${values.join(', ')})`);
      }
    }
    return { ddl, bookkeeping };
  } finally {
    await database.drop();
  }
}

type Query = (statements: string[]) => Promise<Record<string, unknown>[]>;

/** An admin connection to a server database that stays open for the helpers' statements, until the database is dropped. */
interface Session {
  query: Query;
  close(): Promise<void>;
}

/** Per server database, its kept session (a promise, so that callers arriving while it opens share it). */
const sessions = new WeakMap<ServerDatabase, Promise<Session>>();

/**
 * Runs `fn` with the admin connection to the server database; a query runs its statements as one batch, and answers
 * the last one's rows. The connection is opened once per database and kept until drop(), not once per workspace: on
 * PostgreSQL every connection is a new server process, about 20 ms of the server's CPU on this machine, and the
 * helpers make two or three per workspace. The session gives its driver one batch at a time, in order (see oneAtATime),
 * so batches of callers that run side by side never interleave. A session is dropped, and the next call opens another, when it breaks (a test
 * that ends every session on the database) or when a batch fails: that may leave it in an aborted transaction
 * (PostgreSQL) or with foreign-key checks off (MySQL).
 */
async function withSession<T>(server: ServerDatabase, fn: (query: Query) => Promise<T>): Promise<T> {
  let opening = sessions.get(server);
  if (!opening) {
    const opened: Promise<Session> = openSession(server, () => forget(server, opened));
    opening = opened;
    sessions.set(server, opened);
    opened.catch(() => forget(server, opened));
  }
  const session = await opening;
  try {
    return await fn(session.query);
  } catch (error) {
    forget(server, opening);
    await session.close();
    throw error;
  }
}

/** Stops using `session` for the database, unless another one has replaced it already. */
function forget(server: ServerDatabase, session: Promise<Session>): void {
  if (sessions.get(server) === session) sessions.delete(server);
}

/** One statement on the server database's kept admin session (see withSession): its rows. */
export function sessionQuery(server: ServerDatabase, statement: string): Promise<Record<string, unknown>[]> {
  return withSession(server, (query) => query([statement]));
}

/**
 * The batches of `query` one after another, each once the one before has settled. The drivers would queue them too,
 * but pg deprecates a query on a client that is still running one (pg 9 will refuse it), and says so on the test's output.
 */
function oneAtATime(query: Query): Query {
  let last: Promise<unknown> = Promise.resolve();
  return (statements) => {
    const next = last.then(() => query(statements));
    last = next.catch(() => undefined);
    return next;
  };
}

async function openSession(server: ServerDatabase, broken: () => void): Promise<Session> {
  if (server.dialect === 'postgres') {
    const client = new pg.Client({ connectionString: server.url, connectionTimeoutMillis: 5000 });
    client.on('error', broken);
    client.on('end', broken);
    await client.connect();
    return {
      query: oneAtATime(async (statements) => {
        const results = await client.query(statements.join(';\n'));
        const last = Array.isArray(results) ? results.at(-1) : results;
        return last?.rows ?? [];
      }),
      close: () => client.end().catch(() => undefined),
    };
  }
  const connection = await createConnection({ uri: server.url, connectTimeout: 5000, multipleStatements: true, dateStrings: true });
  connection.on('error', broken);
  connection.on('end', broken);
  return {
    query: oneAtATime(async (statements) => {
      // Foreign keys are checked once every table exists (the DDL comes in name order), and not when rows go.
      const [results] = await connection.query(['set foreign_key_checks = 0', ...statements, 'set foreign_key_checks = 1'].join(';\n'));
      const rows = (results as unknown[]).at(-2);
      return Array.isArray(rows) ? (rows as Record<string, unknown>[]) : [];
    }),
    close: () => connection.end().catch(() => undefined),
  };
}

/** A LIKE pattern for the names under a prefix (its _ taken literally). */
const under = (tablePrefix: string) => `${tablePrefix.replaceAll('_', '\\_')}%`;

/** The tables under a prefix, the migrations recorded and the lock: as text, with the template's prefix in place of the prefix. */
async function fingerprint(dialect: ServerDialect, query: Query, tablePrefix: string): Promise<string> {
  const pattern = under(tablePrefix);
  const parts =
    dialect === 'mysql'
      ? await Promise.all(
          (await query([`show tables like '${pattern}'`])).map(async (row) => {
            const [created] = await query([`show create table \`${String(Object.values(row)[0])}\``]);
            return String(created?.['Create Table']).replace(/ AUTO_INCREMENT=\d+/, '');
          }),
        )
      : [
          await query([
            `select c.relname, a.attname, format_type(a.atttypid, a.atttypmod) as type, a.attnotnull, pg_get_expr(d.adbin, d.adrelid) as def, a.attcollation
             from pg_class c join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'public'
             join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
             left join pg_attrdef d on d.adrelid = c.oid and d.adnum = a.attnum
             where c.relkind = 'r' and c.relname like '${pattern}' order by c.relname, a.attnum`,
          ]),
          await query([`select indexname, indexdef from pg_indexes where schemaname = 'public' and tablename like '${pattern}' order by indexname`]),
          await query([
            `select conname, pg_get_constraintdef(c.oid) as def from pg_constraint c join pg_class t on t.oid = c.conrelid
             where t.relname like '${pattern}' order by t.relname, conname`,
          ]),
          await query([
            `select sequencename, data_type, start_value, increment_by, max_value from pg_sequences where schemaname = 'public' and sequencename like '${pattern}' order by sequencename`,
          ]),
        ].map((rows) => JSON.stringify(rows));
  const bookkeeping = await query([
    `select name from ${tablePrefix}kysely_migration union all select concat('lock ', is_locked) from ${tablePrefix}kysely_migration_lock order by 1`,
  ]);
  return [...parts.sort(), JSON.stringify(bookkeeping)].join('\n').replaceAll(tablePrefix, TEMPLATE_PREFIX);
}

/** Deletes every row under the prefix but the migration bookkeeping, and restarts the ids. */
async function emptyingStatements(dialect: ServerDialect, query: Query, tablePrefix: string): Promise<string[]> {
  const pattern = under(tablePrefix);
  if (dialect === 'mysql') {
    const tables = (await query([`show tables like '${pattern}'`]))
      .map((row) => String(Object.values(row)[0]))
      .filter((name) => !name.includes('kysely_migration'));
    // Only the counters that moved are set back (an ALTER each, where SHOW CREATE TABLE is a read).
    const moved = [];
    for (const name of tables) {
      const [created] = await query([`show create table \`${name}\``]);
      if (/ AUTO_INCREMENT=\d+/.test(String(created?.['Create Table']))) moved.push(name);
    }
    return [...tables.map((name) => `delete from \`${name}\``), ...moved.map((name) => `alter table \`${name}\` auto_increment = 1`)];
  }
  const tables = await query([
    `select tablename as name from pg_tables where schemaname = 'public' and tablename like '${pattern}' and tablename not like '%kysely\\_migration%'`,
  ]);
  const sequences = await query([`select sequencename as name from pg_sequences where schemaname = 'public' and sequencename like '${pattern}'`]);
  return [
    'begin',
    // Rows go in any order: the foreign keys' triggers are off for this transaction.
    'set local session_replication_role = replica',
    ...tables.map(({ name }) => `delete from public.${String(name)}`),
    ...sequences.map(({ name }) => `alter sequence public.${String(name)} restart`),
    'commit',
  ];
}

/** How many tables the server database has under a prefix. */
async function tablesUnder(server: ServerDatabase, tablePrefix: string): Promise<number> {
  const statement =
    server.dialect === 'postgres'
      ? `select tablename from pg_tables where schemaname = 'public' and tablename like '${under(tablePrefix)}'`
      : `show tables like '${under(tablePrefix)}'`;
  return withSession(server, async (query) => (await query([statement])).length);
}

/** The template's DDL (undefined when it cannot be read: no pg_dump). */
async function templateDdl(server: ServerDatabase): Promise<string[] | undefined> {
  if (server.dialect === 'mysql') {
    const tables = (await adminQuery('mysql', `show tables like '${under(TEMPLATE_PREFIX)}'`, server.name)) as Record<string, string>[];
    const created = await Promise.all(tables.map((row) => adminQuery('mysql', `show create table \`${Object.values(row)[0]!}\``, server.name)));
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
