import fs from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, expect, test } from '@jest/globals';
import { Kysely, Migrator, SqliteDialect, type Migration } from 'kysely';
import { migrations } from '../../migrations/index.js';
import type { Database } from '../../src/storage/database.table.js';
import { parseDatabaseUrl, type DatabaseTarget } from '../../src/storage/database-target.js';
import { openDatabase } from '../../src/storage/open-database.js';
import { botbleInserts, botbleSettingInserts, createBotbleDatabase, type BotbleDatabase } from '../helpers/botble.js';
import { runCli } from '../helpers/cli.js';
import type { Receiver } from '../helpers/receiver.js';
import { tempDir } from '../helpers/temp-dir.js';
import { forEachDialect, receiverFor, type Workspace } from '../helpers/workspace.js';

// Botble's lm_licenses.id is BIGINT: ids past 2^31 - 1 (and past 2^32, where an unsigned INT would stop).
const NOW = '2025-01-23T10:00:00Z';
const BIG = 3_000_000_001;
const BIGGER = 4_294_967_297;
const INT_MAX = 2_147_483_647;

interface Sent {
  event_type: string;
  payload: { license_id: number; license_code: string };
}

function sentEvents(receiver: Receiver, from = 0): string[] {
  return receiver.requests
    .slice(from)
    .map((request) => JSON.parse(request.body.toString('utf8')) as Sent)
    .map((event) => `${event.event_type} ${event.payload.license_id} ${event.payload.license_code}`)
    .sort();
}

// One receiver for the file (closed after it).
let receiver: Receiver;
beforeAll(async () => {
  receiver = await receiverFor();
});

forEachDialect('license ids above 2,147,483,647 (own licenses table)', ({ workspace }) => {
  test('import, events, the delivery log and the next generated id all keep the id exactly', async () => {
    const ws = workspace({ webhooks: { enabled: true, url: receiver.url }, expirations: { warningDays: [7, 1] } });
    await ws.ready();
    fs.writeFileSync(
      path.join(ws.dir, 'big.json'),
      JSON.stringify([
        { id: INT_MAX, license_code: 'AT-MAX', expires_at: '2025-01-30' },
        { id: BIG, license_code: 'BIG', expires_at: '2025-01-30' },
        { id: BIGGER, license_code: 'BIGGER', expires_at: '2025-01-23' },
      ]),
    );
    const imported = await ws.cli(['licenses', 'import', 'big.json']);
    expect(imported.stderr).toBe('');
    expect(imported.code).toBe(0);

    const from = receiver.requests.length;
    const run = await ws.cli(['process-expirations', '--now', NOW, '--json']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(sentEvents(receiver, from)).toEqual(
      [`license.expired ${BIGGER} BIGGER`, `license.expiring ${BIG} BIG`, `license.expiring ${INT_MAX} AT-MAX`].sort(),
    );
    const log = JSON.parse((await ws.cli(['deliveries', 'list', '--license', 'BIG', '--json'])).stdout) as Array<{ license_id: number; license_code: string }>;
    expect(log).toEqual([expect.objectContaining({ license_id: BIG, license_code: 'BIG' })]);
    const expired = JSON.parse((await ws.cli(['licenses', 'list', '--status', 'expired', '--json'])).stdout) as Array<{ id: number }>;
    expect(expired.map((row) => row.id)).toEqual([BIGGER]);

    // The next run finds every event recorded under its exact id: nothing is sent twice.
    const again = await ws.cli(['process-expirations', '--now', NOW, '--json']);
    expect(JSON.parse(again.stdout)).toMatchObject({ recorded: 0, delivered: 0 });

    // An id the file does not give comes after the largest (PostgreSQL's sequence is 64-bit too).
    fs.writeFileSync(path.join(ws.dir, 'next.csv'), 'license_code\nNEXT\n');
    expect((await ws.cli(['licenses', 'import', 'next.csv'])).code).toBe(0);
    const listed = JSON.parse((await ws.cli(['licenses', 'list', '--json'])).stdout) as Array<{ id: number; license_code: string }>;
    expect(listed.find((row) => row.license_code === 'NEXT')!.id).toBeGreaterThan(BIGGER);
  }, 180_000);
});

forEachDialect('license ids above 2,147,483,647 in Botble mode', ({ dialect, server }) => {
  let botble: BotbleDatabase;
  beforeAll(async () => {
    // Botble's tables in the suite's server database (or a SQLite file of their own).
    botble = await createBotbleDatabase(dialect, server());
    await botble.exec(
      ...botbleInserts(
        dialect,
        [{ reference: 'PROD-001', name: 'Product' }],
        [
          { id: INT_MAX, product: 'PROD-001', code: 'L-MAX', customer: null, email: 'max@example.com', expires: '2025-01-30', updates: null },
          { id: BIG, product: 'PROD-001', code: 'L-BIG', customer: null, email: 'big@example.com', expires: '2025-01-30', updates: null },
          { id: BIGGER, product: 'PROD-001', code: 'L-BIGGER', customer: null, email: null, expires: '2025-01-23', updates: '2025-01-22' },
        ],
      ),
      ...botbleSettingInserts(dialect, { lm_enable_webhooks: '1', lm_webhook_url: receiver.url }),
    );
  });
  afterAll(async () => {
    await botble.drop();
  });

  test('every license gets its events under its own id, the log names it, and a second run sends nothing', async () => {
    const dir = tempDir();
    fs.writeFileSync(
      path.join(dir, 'license-manager.config.json'),
      JSON.stringify({ database: { ...botble.database, tablePrefix: 'lmw_' }, licenses: { source: 'botble' }, webhooks: { retryDelaysMs: [10] } }),
    );
    expect((await runCli(['migrate'], { cwd: dir })).code).toBe(0);
    const from = receiver.requests.length;
    const run = await runCli(['process-expirations', '--now', NOW, '--json'], { cwd: dir });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(sentEvents(receiver, from)).toEqual(
      [
        `license.expired ${BIGGER} L-BIGGER`,
        `license.expiring ${BIG} L-BIG`,
        `license.expiring ${INT_MAX} L-MAX`,
        `license.update_support_expired ${BIGGER} L-BIGGER`,
      ].sort(),
    );
    const log = JSON.parse((await runCli(['deliveries', 'list', '--json'], { cwd: dir })).stdout) as Array<{
      license_id: number;
      license_code: string;
      event_type: string;
    }>;
    expect(log.map((row) => `${row.event_type} ${row.license_id} ${row.license_code}`).sort()).toEqual(sentEvents(receiver, from));
    const expired = JSON.parse((await runCli(['licenses', 'list', '--status', 'expired', '--json'], { cwd: dir })).stdout) as Array<{
      id: number;
      license_code: string;
    }>;
    expect(expired).toEqual([expect.objectContaining({ id: BIGGER, license_code: 'L-BIGGER' })]);
    const again = await runCli(['process-expirations', '--now', NOW, '--json'], { cwd: dir });
    expect(JSON.parse(again.stdout)).toMatchObject({ recorded: 0, delivered: 0 });
    expect(receiver.requests.length - from).toBe(4);
  }, 180_000);

  test('an id beyond 2^53 (what a JS number carries exactly) is skipped and named, never rounded into another id', async () => {
    const beyond = '9007199254740993';
    await botble.exec(
      `insert into lm_licenses (id, product_reference_id, license_code, expires_at, is_valid) values (${beyond}, 'PROD-001', 'L-HUGE', '2025-01-30', ${dialect === 'postgres' ? 'true' : '1'})`,
    );
    try {
      const dir = tempDir();
      fs.writeFileSync(
        path.join(dir, 'license-manager.config.json'),
        JSON.stringify({ database: { ...botble.database, tablePrefix: 'lmh_' }, licenses: { source: 'botble' }, webhooks: { retryDelaysMs: [10] } }),
      );
      expect((await runCli(['migrate'], { cwd: dir })).code).toBe(0);
      const from = receiver.requests.length;
      const run = await runCli(['process-expirations', '--now', NOW, '--json'], { cwd: dir });
      expect(run.code).toBe(0);
      // SQLite's driver has already rounded the id it reads; the servers' keep every digit.
      expect(run.stderr).toMatch(
        new RegExp(`Skipped license id ${dialect === 'sqlite' ? '\\d+' : beyond} \\(L-HUGE\\): its id is larger than 9007199254740991`),
      );
      expect(JSON.parse(run.stdout)).toMatchObject({ skipped: 1 });
      expect(sentEvents(receiver, from).filter((line) => line.includes('L-HUGE') || line.includes('9007199254740992'))).toEqual([]);
      const listed = JSON.parse((await runCli(['licenses', 'list', '--json'], { cwd: dir })).stdout) as Array<{ license_code: string }>;
      expect(listed.map((row) => row.license_code)).not.toContain('L-HUGE');
      // status counts what licenses list shows.
      const status = JSON.parse((await runCli(['status', '--json'], { cwd: dir })).stdout) as { licenses: { total: number } };
      expect(status.licenses.total).toBe(listed.length);
    } finally {
      await botble.exec(`delete from lm_licenses where license_code = 'L-HUGE'`);
    }
  }, 180_000);
});

// The migrations before 0006: a database an earlier release created.
const BEFORE_BIG_IDS: Record<string, Migration> = Object.fromEntries(Object.entries(migrations).filter(([name]) => name < '0006'));

/** The workspace's database at the schema of the release before 0006, with the prefix and pg/mysql settings the tool uses. */
async function openAtOldSchema(ws: Workspace): Promise<Kysely<Database>> {
  if (ws.dialect === 'sqlite') return new Kysely<Database>({ dialect: new SqliteDialect({ database: new SQLite(ws.databaseLocation) }) });
  const target = parseDatabaseUrl(ws.databaseLocation, ws.tablePrefix) as DatabaseTarget;
  return openDatabase(target, { migrate: false, schemaCheck: false });
}

forEachDialect('upgrading to 64-bit license ids (migration 0006)', ({ workspace }) => {
  let db: Kysely<Database> | undefined;
  afterEach(async () => {
    await db?.destroy();
    db = undefined;
  });

  test('an existing database keeps its rows, and takes big ids after migrate', async () => {
    const ws = workspace({ webhooks: { enabled: true, url: receiver.url }, expirations: { warningDays: [7, 1] } });
    db = await openAtOldSchema(ws);
    const migrator = new Migrator({
      db,
      provider: { getMigrations: async () => BEFORE_BIG_IDS },
      migrationTableName: `${ws.tablePrefix}kysely_migration`,
      migrationLockTableName: `${ws.tablePrefix}kysely_migration_lock`,
      allowUnorderedMigrations: true,
    });
    const { error } = await migrator.migrateToLatest();
    expect(error).toBeUndefined();
    await db
      .insertInto('licenses')
      .values({ license_code: 'OLD', expires_at: '2025-01-30', created_at: '2024-01-01T00:00:00Z', updated_at: '2024-01-01T00:00:00Z' })
      .execute();
    const old = await db.selectFrom('licenses').select('id').executeTakeFirstOrThrow();
    // OLD's 7-day warning went out before the upgrade.
    await db
      .insertInto('webhook_deliveries')
      .values({
        event_id: 'e-old',
        event_key: `license.expiring:${old.id}:2025-01-30:7d`,
        event_type: 'license.expiring',
        license_id: old.id,
        body: '{}',
        status: 'delivered',
        created_at: '2025-01-23T08:00:00Z',
      })
      .execute();
    await db.destroy();
    db = undefined;

    const migrated = await ws.cli(['migrate', '--json']);
    expect(migrated.stderr).toBe('');
    expect(JSON.parse(migrated.stdout).applied).toContain('0006_big_license_ids');
    expect(await ws.rows('select id, license_code from licenses')).toEqual([{ id: old.id, license_code: 'OLD' }]);
    expect(await ws.rows('select license_id, status from webhook_deliveries')).toEqual([{ license_id: old.id, status: 'delivered' }]);

    fs.writeFileSync(path.join(ws.dir, 'big.json'), JSON.stringify([{ id: BIG, license_code: 'BIG', expires_at: '2025-01-30' }]));
    expect((await ws.cli(['licenses', 'import', 'big.json'])).code).toBe(0);
    const from = receiver.requests.length;
    const run = await ws.cli(['process-expirations', '--now', NOW]);
    expect(run.code).toBe(0);
    // OLD's warning is still recorded: only BIG's goes out.
    expect(sentEvents(receiver, from)).toEqual([`license.expiring ${BIG} BIG`]);
  }, 180_000);
});
