import { randomBytes } from 'node:crypto';
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
