import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from '@jest/globals';
import { sql } from 'kysely';
import { withContext, type CommandContext } from '../../src/commands/context.js';
import { parseDatabaseUrl, type DatabaseTarget } from '../../src/storage/database-target.js';
import { upsertLicenses, type LicenseInput } from '../../src/storage/licenses.repository.js';
import { openDatabase } from '../../src/storage/open-database.js';
import { runCli, type CliOptions, type CliResult } from './cli.js';
import { startReceiver, type ReceivedRequest, type Receiver, type Reply } from './receiver.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';
import { createServerDatabase, serverTables, testDialects, type ServerTables, type ServerDatabase, type TestDialect } from './servers.js';
import { tempDir } from './temp-dir.js';

export interface Workspace {
  dir: string;
  configFile: string;
  /** The SQLite file, or the server URL for a server dialect. */
  databaseLocation: string;
  dialect: TestDialect;
  /**
   * Our tables' prefix: '' on SQLite, the workspace's own on a server database; the first run may change it to that of
   * emptied tables another test left (read it after the first run, or before it only for a schema the test builds itself).
   */
  tablePrefix: string;
  env: NodeJS.ProcessEnv;
  /** Opens the real context (config file, migrated database) for one call, as a command does. */
  run<T>(fn: (context: CommandContext) => Promise<T>): Promise<T>;
  seed(licenses: LicenseInput[]): Promise<void>;
  /** Creates the tables (on a server database, as `license-manager migrate` does), before CLI runs. */
  ready(): Promise<void>;
  /** Runs the CLI in the workspace's directory (after `ready()` on a server database); see runCli. */
  cli(args: string[], options?: Omit<CliOptions, 'cwd'>): Promise<CliResult>;
  /**
   * Rows of one raw SQL statement, as an operator would read them: our table names after `from`, `join`,
   * `into` and `update` get the workspace's prefix. Write SQL all three dialects accept (order groups).
   */
  rows<T = Record<string, unknown>>(statement: string): Promise<T[]>;
  /** Rewrites the config file with `config`, keeping the database it points at. */
  configure(config: Record<string, unknown>): void;
}

const OWN_TABLES =
  /\b(from|join|into|update)\s+(licenses|settings|webhook_deliveries|webhook_attempts|runs|endpoints|endpoint_secrets|endpoint_headers|endpoint_states)\b/gi;

/** Where a workspace keeps its data: a SQLite file of its own, or its own table prefix in a test's server database. */
export interface DialectUnderTest {
  dialect: TestDialect;
  workspace: (config?: Record<string, unknown>, env?: NodeJS.ProcessEnv) => Workspace;
  /** A project on this dialect: see ProjectOptions (`plain` is for SQLite only). */
  project: (options?: ProjectOptions) => Promise<Workspace>;
  /** The server database of this suite (undefined on SQLite), available inside tests. */
  server: () => ServerDatabase | undefined;
  /** The same, for a suite that runs only on the servers. */
  serverDatabase: () => ServerDatabase;
}

/** The tables workspaces share in each server database (see serverTables). */
const tablesOf = new WeakMap<ServerDatabase, ServerTables>();

function tablesIn(server: ServerDatabase): ServerTables {
  let tables = tablesOf.get(server);
  if (!tables) {
    tables = serverTables(server, async (on, prefix) => {
      // The tool's own migrate of the tables under `prefix`.
      const db = await openDatabase(parseDatabaseUrl(on.url, prefix) as DatabaseTarget, { migrate: true });
      await db.destroy();
    });
    tablesOf.set(server, tables);
  }
  return tables;
}

/** What hands a workspace's tables back once its test is over (only workspaces that took shared tables have one). */
const releases = new WeakMap<Workspace, () => Promise<void>>();

let prefixes = 0;

/**
 * A temp dir with a config file (fast retries unless overridden) and its database: SQLite unless a server is given.
 * `retryWindowHours` is 0 unless a test sets it: the reference's behaviour (abandoned after the in-run retries),
 * which the tests written before retries across runs assert; the tests of deferral, 410 and the circuit set a window.
 */
export function workspace(config: Record<string, unknown> = {}, env: NodeJS.ProcessEnv = {}, server?: ServerDatabase, plain = false): Workspace {
  const dir = tempDir();
  const configFile = path.join(dir, 'license-manager.config.json');
  prefixes += 1;
  // Each workspace gets its own tables in the suite's server database: tests never see each other's rows.
  // Until the first run, when it may take emptied tables another workspace left (under their prefix).
  let tablePrefix = server ? `w${prefixes}_` : '';
  // Whether the config names the workspace's own tables (a test may point it at a Botble database or another prefix).
  let ownTables = true;
  let settings: Record<string, unknown> = config;
  const writeConfig = (next: Record<string, unknown>) => {
    settings = next;
    ownTables = settings.database === undefined;
    // An operator's config as it is written: the default database file beside it, the tool's own retry settings.
    if (plain) return fs.writeFileSync(configFile, JSON.stringify(settings));
    const database = server ? { url: server.url, tablePrefix } : { filename: './test.sqlite' };
    const webhooks = { retryDelaysMs: [10, 20, 40], timeoutMs: 2000, retryWindowHours: 0, ...(settings.webhooks as object | undefined) };
    fs.writeFileSync(configFile, JSON.stringify({ ...settings, database: { ...database, ...(settings.database as object | undefined) }, webhooks }, null, 2));
  };
  writeConfig(config);
  // An empty database file, as "license-manager migrate" would leave: only migrate and import create a missing one.
  if (!server && !plain) fs.writeFileSync(path.join(dir, 'test.sqlite'), '', { mode: 0o600 });
  let migrated = !server;
  // Once, even when the first runs start together.
  let acquired: Promise<void> | undefined;
  const acquire = async (on: ServerDatabase) => {
    const tables = tablesIn(on);
    const taken = await tables.acquire(tablePrefix);
    if (taken !== tablePrefix) {
      tablePrefix = taken;
      writeConfig(settings);
    }
    releases.set(ws, () => tables.release(taken));
  };
  const ws: Workspace = {
    dir,
    configFile,
    databaseLocation: server ? server.url : path.join(dir, plain ? 'license-manager.sqlite' : 'test.sqlite'),
    dialect: server?.dialect ?? 'sqlite',
    get tablePrefix() {
      return tablePrefix;
    },
    env,
    run: async (fn) => {
      // The first run brings the tables up to date, as `license-manager migrate` would: the workspace takes migrated,
      // empty tables from the suite database's pool (the same schema, a fraction of the time).
      const shared = !migrated && server !== undefined && ownTables && env.LICENSE_MANAGER_DB === undefined;
      if (shared) await (acquired ??= acquire(server));
      const result = await withContext({ config: configFile, cwd: dir, env }, fn, { migrate: !migrated && !shared });
      migrated = true;
      return result;
    },
    seed: (licenses) => ws.run(async (context) => void (await upsertLicenses(context.db, licenses, '2024-01-01T00:00:00Z'))),
    ready: () => ws.run(async () => undefined),
    cli: (args, options = {}) => runCli(args, { cwd: dir, ...options, env: { ...env, ...options.env } }),
    rows: <T>(statement: string) =>
      ws.run(
        async ({ db }) =>
          (await sql.raw<T>(statement.replace(OWN_TABLES, (_match, keyword: string, table: string) => `${keyword} ${tablePrefix}${table}`)).execute(db)).rows,
      ),
    configure: writeConfig,
  };
  return ws;
}

/**
 * Runs a behaviour suite once per dialect that answers: SQLite always, PostgreSQL and MariaDB/MySQL when
 * their servers do (see test/helpers/global-setup.ts); only `only`, or with `{ servers: true }` only the servers (a
 * skipped test says so when none answers). Each server run gets one database for the suite, dropped after it.
 */
export function forEachDialect(name: string, fn: (under: DialectUnderTest) => void, only: TestDialect[] | { servers: true } = testDialects()): void {
  const dialects = Array.isArray(only) ? only : testDialects().filter((dialect) => dialect !== 'sqlite');
  if (dialects.length === 0) test.skip(`${name} (no server answered)`, () => undefined);
  describe.each(dialects)(`${name} [%s]`, (dialect) => {
    let server: ServerDatabase | undefined;
    if (dialect !== 'sqlite') {
      beforeAll(async () => {
        server = await createServerDatabase(dialect);
      });
      afterAll(async () => {
        const failed = (await Promise.all(releasing.splice(0))).find((error) => error !== undefined);
        await server?.drop();
        if (failed) throw failed;
      });
    }
    // The workspaces a test made (not those of a beforeAll, which outlive it) hand their tables back once the test
    // is over and what it started has stopped: in the background, the next test need not wait; before the drop.
    const releasing: Array<Promise<unknown>> = [];
    const make = (config?: Record<string, unknown>, env?: NodeJS.ProcessEnv) => {
      const ws = workspace(config, env, server);
      if (inTest)
        cleanUp(() => {
          const release = releases.get(ws);
          if (release)
            releasing.push(
              release().then(
                () => undefined,
                (error: unknown) => error,
              ),
            );
        });
      return ws;
    };
    const serverOf = () => {
      if (!server) throw new Error(`${dialect} has no server database`);
      return server;
    };
    fn({ dialect, workspace: make, project: (options) => makeProject(make, options), server: () => server, serverDatabase: serverOf });
  });
}

// What a test started (receivers, proxies, child processes) is closed after it, last started first; what a
// beforeAll started, after the file's tests.
const perTest: Array<() => unknown> = [];
const perFile: Array<() => unknown> = [];
let inTest = false;
beforeEach(() => {
  inTest = true;
});
/** Runs every clean-up, last registered first, even when one fails; then fails with the first error. */
async function closeAll(closes: Array<() => unknown>): Promise<void> {
  const errors: unknown[] = [];
  for (const close of closes.reverse())
    await Promise.resolve()
      .then(close)
      .catch((error: unknown) => errors.push(error));
  if (errors.length > 0) throw errors[0];
}
afterEach(async () => {
  inTest = false;
  await closeAll(perTest.splice(0));
});
afterAll(() => closeAll(perFile.splice(0)));

/** Registers `close` to run after the current test (or, from a beforeAll, after the file's tests). */
export function cleanUp(close: () => unknown): void {
  (inTest ? perTest : perFile).push(close);
}

/** A receiver (see startReceiver) closed after the test that started it; `reply` decides each answer (200 OK by default). */
export async function receiverFor(reply?: (request: ReceivedRequest, index: number) => Reply): Promise<Receiver> {
  const receiver = await startReceiver(reply);
  cleanUp(() => receiver.close());
  return receiver;
}

/** A TCP proxy in front of `target` (to refuse its connections and accept them again), closed after the test. */
export async function proxyFor(target: { port: number }): Promise<TcpProxy> {
  const proxy = await startTcpProxy({ host: '127.0.0.1', port: target.port });
  cleanUp(() => proxy.close());
  return proxy;
}

/** `count` rows for `licenses import`: codes `prefix` and a zero-padded index, each expired at `expiresAt`. */
export function expiredLicenses(count: number, prefix = 'K-', digits = 3, expiresAt = '2025-01-14T08:00:00Z'): Array<Record<string, unknown>> {
  return Array.from({ length: count }, (_, index) => ({ license_code: `${prefix}${String(index).padStart(digits, '0')}`, expires_at: expiresAt }));
}

interface ProjectOptions {
  /** The config file (see workspace: the database and fast retries are added unless `plain`). */
  config?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
  /** Its URL becomes webhooks.url (a receiverFor's, or any server's). */
  receiver?: { url: string };
  /** Rows written to licenses.json and imported as an operator does, `licenses import licenses.json` (code 0). */
  licenses?: Array<Record<string, unknown>>;
  /** Whether the licenses are imported (the default), or only written to licenses.json for the test to import. */
  importLicenses?: boolean;
  /** The config file readable by its owner only, as one holding a password should be. */
  ownerOnly?: boolean;
  /** Licenses written straight through the repository. */
  seed?: LicenseInput[];
  /** Migrated (the default unless `plain`), or left as before `license-manager migrate` (an import creates the tables). */
  migrate?: boolean;
  /**
   * An operator's project before `license-manager migrate`: the config exactly as given (no database entry, so
   * license-manager.sqlite beside it; the tool's own retry settings).
   */
  plain?: boolean;
  /** With `plain`: the empty license-manager.sqlite that `migrate` would leave (the default), or none. */
  database?: boolean;
}

/**
 * One project of a test: a workspace with its config, migrated, its licenses imported or seeded, its receiver the
 * webhook URL. What it made is cleaned up after the test (temp dir, server tables; a receiverFor's receiver too).
 */
async function makeProject(make: (config: Record<string, unknown>, env: NodeJS.ProcessEnv) => Workspace, options: ProjectOptions = {}): Promise<Workspace> {
  let config = options.config ?? {};
  if (options.receiver) config = { ...config, webhooks: { ...(config.webhooks as object | undefined), url: options.receiver.url } };
  const ws = make(config, options.env ?? {});
  if (options.ownerOnly) fs.chmodSync(ws.configFile, 0o600);
  if (options.plain && options.database !== false) fs.writeFileSync(ws.databaseLocation, '', { mode: 0o600 });
  // Seeding opens the database as a command does, migrating it: one open less.
  if (options.seed) await ws.seed(options.seed);
  else if (options.migrate ?? !options.plain) await ws.ready();
  if (options.licenses) fs.writeFileSync(path.join(ws.dir, 'licenses.json'), JSON.stringify(options.licenses));
  if (options.licenses && options.importLicenses !== false) {
    const imported = await ws.cli(['licenses', 'import', 'licenses.json'], { timeoutMs: 60_000 });
    expect({ code: imported.code, stderr: imported.code === 0 ? '' : imported.stderr }).toEqual({ code: 0, stderr: '' });
  }
  return ws;
}

/** A project on SQLite (see forEachDialect's `project` for the other dialects). */
export function project(options: ProjectOptions = {}): Promise<Workspace> {
  return makeProject((config, env) => workspace(config, env, undefined, options.plain), options);
}

let counter = 0;

/** A license builder: an active license with a unique code; dates as ISO strings. */
export function aLicense(overrides: Partial<LicenseInput> = {}): LicenseInput {
  counter += 1;
  return {
    license_code: `LIC-${String(counter).padStart(5, '0')}`,
    product_id: 'PROD-001',
    product_name: 'My Product',
    customer_id: `CUST-${counter}`,
    email: `customer${counter}@example.com`,
    status: 'active',
    expires_at: null,
    updates_until: null,
    ...overrides,
  };
}
