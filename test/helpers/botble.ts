import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { afterAll, beforeAll, expect } from '@jest/globals';
import { runCli } from './cli.js';
import type { Receiver } from './receiver.js';
import { createServerDatabase, sessionQuery, type ServerDatabase, type TestDialect } from './servers.js';
import { tempDir } from './temp-dir.js';
import { receiverFor, type DialectUnderTest } from './workspace.js';

/** A Botble License Manager database built from shared/reference/botble-schema.md, with a few extra columns Botble may have. */
export interface BotbleDatabase {
  dialect: TestDialect;
  /** What `database` in our config needs to reach it (our tables get their own prefix). */
  database: { url: string } | { filename: string };
  /** Runs statements (each a string) on it. */
  exec(...statements: string[]): Promise<void>;
  query(statement: string): Promise<Array<Record<string, unknown>>>;
  /** A hash of every row of Botble's three tables, in id order: equal before and after means nothing was written. */
  checksum(): Promise<string>;
  drop(): Promise<void>;
}

const BOTBLE_TABLES = ['lm_products', 'lm_licenses', 'settings'];

function ddl(dialect: TestDialect): string[] {
  const id = { sqlite: 'integer primary key autoincrement', mysql: 'bigint unsigned auto_increment primary key', postgres: 'bigserial primary key' }[dialect];
  // Laravel's boolean(): tinyint(1) on MySQL, boolean on PostgreSQL.
  const flag = dialect === 'postgres' ? 'boolean not null default true' : 'tinyint(1) not null default 1';
  const stamp = dialect === 'sqlite' ? 'text null' : 'timestamp null';
  const engine = dialect === 'mysql' ? ' engine = InnoDB default charset = utf8mb4 collate = utf8mb4_unicode_ci' : '';
  const key = dialect === 'mysql' ? '`key`' : '"key"';
  return [
    `create table lm_products (id ${id}, reference_id varchar(50) not null unique, name varchar(255) not null, version varchar(50) null, is_active ${flag}, created_at ${stamp}, updated_at ${stamp})${engine}`,
    `create table lm_licenses (id ${id}, product_reference_id varchar(50) not null, license_code varchar(255) not null unique, type varchar(50) null, customer_id varchar(255) null, email varchar(255) null, max_activations integer null, expires_at date null, updates_until date null, support_until date null, is_valid ${flag}, created_at ${stamp}, updated_at ${stamp})${engine}`,
    `create index lm_licenses_product_reference_id_index on lm_licenses (product_reference_id)`,
    `create table settings (id ${id}, ${key} varchar(255) not null unique, value text null, created_at ${stamp}, updated_at ${stamp})${engine}`,
  ];
}

/** Creates a database with Botble's tables: a SQLite file, or a fresh database on the server (drop() removes it). */
export async function createBotbleDatabase(dialect: TestDialect, on?: ServerDatabase): Promise<BotbleDatabase> {
  if (dialect === 'sqlite') {
    // Not tempDir(): that one is removed after each test, and this database serves a whole suite.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'license-manager-botble-'));
    const filename = path.join(dir, 'botble.sqlite');
    const sqlite = new SQLite(filename);
    for (const statement of ddl('sqlite')) sqlite.exec(statement);
    sqlite.close();
    const withFile = <T>(fn: (db: SQLite.Database) => T): T => {
      const db = new SQLite(filename);
      try {
        return fn(db);
      } finally {
        db.close();
      }
    };
    const query = async (statement: string) => withFile((db) => db.prepare(statement).all() as Array<Record<string, unknown>>);
    return {
      dialect,
      database: { filename },
      exec: async (...statements) => withFile((db) => statements.forEach((statement) => db.exec(statement))),
      query,
      checksum: async () => hashRows(await Promise.all(BOTBLE_TABLES.map((table) => query(`select * from ${table} order by id`)))),
      drop: async () => fs.rmSync(dir, { recursive: true, force: true }),
    };
  }
  // In the suite's own server database when given (its suite drops it), or a database of its own.
  const server: ServerDatabase = on ?? (await createServerDatabase(dialect));
  const query = (statement: string) => sessionQuery(server, statement);
  try {
    for (const statement of ddl(dialect)) await query(statement);
  } catch (error) {
    // A database of its own that could not be set up is not left behind (nor its admin session).
    if (!on) await server.drop();
    throw error;
  }
  return {
    dialect,
    database: { url: server.url },
    exec: async (...statements) => {
      for (const statement of statements) await query(statement);
    },
    query,
    checksum: async () => {
      const rows = await Promise.all(BOTBLE_TABLES.map((table) => query(`select * from ${table} order by id`)));
      // MariaDB's own CHECKSUM TABLE as well: it reads the stored rows, not what a driver makes of them.
      if (dialect === 'mysql') rows.push(await query(`checksum table ${BOTBLE_TABLES.join(', ')}`));
      return hashRows(rows);
    },
    drop: async () => {
      if (!on) await server.drop();
    },
  };
}

function hashRows(rows: unknown): string {
  return createHash('sha256')
    .update(JSON.stringify(rows, (_key, value: unknown) => (value instanceof Date ? value.toISOString() : typeof value === 'bigint' ? String(value) : value)))
    .digest('hex');
}

/** A license as Botble stores it (dates as 'YYYY-MM-DD'), and the same license as `licenses import` reads it. */
export interface BotbleLicense {
  id: number;
  product: string;
  code: string;
  customer: string | null;
  email: string | null;
  expires: string | null;
  updates: string | null;
  valid?: boolean;
}

function literal(value: string | number | boolean | null): string {
  if (value === null) return 'null';
  if (typeof value === 'number') return String(value);
  if (typeof value === 'boolean') return value ? '1' : '0';
  return `'${value.replaceAll("'", "''")}'`;
}

/** INSERTs for Botble's tables; `flag` renders is_valid for the dialect. */
export function botbleInserts(dialect: TestDialect, products: Array<{ reference: string; name: string }>, licenses: BotbleLicense[]): string[] {
  const flag = (value: boolean) => (dialect === 'postgres' ? String(value) : value ? '1' : '0');
  return [
    ...products.map(
      (product, index) =>
        `insert into lm_products (id, reference_id, name, version, created_at) values (${index + 1}, ${literal(product.reference)}, ${literal(product.name)}, '1.0', '2024-01-01 00:00:00')`,
    ),
    ...licenses.map(
      (license) =>
        `insert into lm_licenses (id, product_reference_id, license_code, type, customer_id, email, max_activations, expires_at, updates_until, support_until, is_valid, created_at, updated_at) values (${license.id}, ${literal(license.product)}, ${literal(license.code)}, 'subscription', ${literal(license.customer)}, ${literal(license.email)}, 3, ${literal(license.expires)}, ${literal(license.updates)}, ${literal(license.expires)}, ${flag(license.valid ?? true)}, '2024-01-01 00:00:00', '2024-01-01 00:00:00')`,
    ),
  ];
}

export function botbleSettingInserts(dialect: TestDialect, settings: Record<string, string | null>): string[] {
  const key = dialect === 'mysql' ? '`key`' : '"key"';
  return Object.entries(settings).map(([name, value]) => `insert into settings (${key}, value) values (${literal(name)}, ${literal(value)})`);
}

/** One Botble database and one receiver for a suite on one dialect, and directories of our own tables beside it. */
export interface BotbleSuite {
  botble: () => BotbleDatabase;
  receiver: () => Receiver;
  /** Sets one of Botble's settings rows, or removes it (undefined), as the admin page would. */
  setSetting: (key: string, value: string | undefined) => Promise<void>;
  /** A migrated directory whose config reads the Botble database, with our tables under a prefix no other directory has. */
  freshDir: () => Promise<string>;
}

/**
 * Registers the suite's beforeAll/afterAll: `seed` gives the INSERTs, knowing the receiver's URL. Under forEachDialect
 * (`under`), Botble's tables go into the suite's server database; the receiver is closed after the file.
 */
export function botbleSuite(under: TestDialect | DialectUnderTest, seed: (receiverUrl: string) => string[]): BotbleSuite {
  const dialect = typeof under === 'string' ? under : under.dialect;
  let botble: BotbleDatabase;
  let receiver: Receiver;
  let prefixes = 0;
  beforeAll(async () => {
    receiver = await receiverFor();
    botble = await createBotbleDatabase(dialect, typeof under === 'string' ? undefined : under.server());
    await botble.exec(...seed(receiver.url));
  });
  afterAll(async () => {
    await botble.drop();
  });
  const key = dialect === 'mysql' ? '`key`' : '"key"';
  return {
    botble: () => botble,
    receiver: () => receiver,
    setSetting: (name, value) =>
      botble.exec(`delete from settings where ${key} = ${literal(name)}`, ...(value === undefined ? [] : botbleSettingInserts(dialect, { [name]: value }))),
    freshDir: async () => {
      prefixes += 1;
      const dir = tempDir();
      const database = { ...botble.database, tablePrefix: `lmt${prefixes}_` };
      fs.writeFileSync(
        path.join(dir, 'license-manager.config.json'),
        JSON.stringify({ database, licenses: { source: 'botble' }, webhooks: { retryDelaysMs: [10] } }),
      );
      expect((await runCli(['migrate'], { cwd: dir })).code).toBe(0);
      return dir;
    },
  };
}
