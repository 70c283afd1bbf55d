import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, test } from '@jest/globals';
import { Migrator, sql, type Kysely } from 'kysely';
import { migrations } from '../../migrations/index.js';
import { processExpirations } from '../../src/commands/process-expirations.js';
import { buildEventBody } from '../../src/webhooks/payload.js';
import { plusDays } from '../helpers/calendar-oracle.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { forEachDialect, workspace } from '../helpers/workspace.js';

/**
 * A database written by release 0.1.0, which keyed events on the UTC instant and counted 24-hour periods:
 * test/fixtures/release-0.1.0-database.json holds its rows exactly as that release wrote them (its CLI run on
 * test/fixtures/release-0.1.0-licenses.csv). Later migrations only add columns with defaults, so the rows go
 * into a file migrated by this code; then this code runs at the same instants and day by day after: nothing is
 * sent twice. SQLite only, by nature: 0.1.0 only ever had SQLite, so no server database was ever written by it.
 */
const FIXTURE = JSON.parse(fs.readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/release-0.1.0-database.json'), 'utf8')) as {
  licenses: object[];
  webhook_deliveries: object[];
  webhook_attempts: object[];
  migrations: string[];
};

let receiver: Receiver | undefined;
afterEach(async () => {
  await receiver?.close();
  receiver = undefined;
});

test('after the upgrade, events recorded under the first release keys are never sent again', async () => {
  receiver = await startReceiver();
  const ws = workspace({ webhooks: { enabled: true, url: receiver.url, secret: 'old-secret' }, expirations: { warningDays: [7, 1], lookbackDays: 7 } });
  await ws.run(async (context) => {
    const migrations = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(context.db);
    // The release's migrations come first; later ones (0002_delivery_schedule, 0003_runs) only add columns with defaults and tables.
    expect(migrations.rows.map((row) => row.name).slice(0, FIXTURE.migrations.length)).toEqual(FIXTURE.migrations);
    await context.db
      .insertInto('licenses')
      .values(FIXTURE.licenses as never)
      .execute();
    await context.db
      .insertInto('webhook_deliveries')
      .values(FIXTURE.webhook_deliveries as never)
      .execute();
    await context.db
      .insertInto('webhook_attempts')
      .values(FIXTURE.webhook_attempts as never)
      .execute();
  });
  // The old release sent 7 days early for DATE-0130 and OFFSET-0127 and the 1-day notice of TIME-0123 on 01-22.
  expect(FIXTURE.webhook_deliveries.map((row) => (row as { event_key: string }).event_key)).toEqual([
    'license.expiring:1:2025-01-30T00:00:00Z:7d',
    'license.expiring:2:2025-01-23T10:30:00Z:1d',
    'license.expired:3:2025-01-21T12:00:00Z',
    'license.update_support_expired:4:2025-01-20T00:00:00Z',
    'license.expiring:5:2025-01-28T07:30:00Z:7d',
  ]);

  const run = (now: Date) => ws.run((context) => processExpirations(context, { now, clock: { now: () => now } }));
  for (const instant of ['2025-01-22T08:00:00Z', '2025-01-23T08:00:00Z']) expect(await run(new Date(instant))).toMatchObject({ recorded: 0, due: [] });
  expect(receiver.requests).toEqual([]);

  for (let date = '2025-01-24'; date <= '2025-02-16'; date = plusDays(date, 1)) await run(new Date(`${date}T08:00:00Z`));
  const sent = receiver.requests
    .map((request) => {
      const body = JSON.parse(request.body.toString('utf8'));
      return `${body.timestamp.slice(0, 10)} ${body.payload.license_code} ${body.event_type} ${body.payload.days_until_expiry ?? '-'}`;
    })
    .sort();
  expect(sent).toEqual([
    '2025-01-24 TIME-0123 license.expired -',
    '2025-01-27 OFFSET-0127 license.expiring 1',
    '2025-01-28 OFFSET-0127 license.expired -',
    '2025-01-29 DATE-0130 license.expiring 1',
    '2025-01-30 DATE-0130 license.expired -',
    '2025-02-08 LATER-0215 license.expiring 7',
    '2025-02-14 LATER-0215 license.expiring 1',
    '2025-02-15 LATER-0215 license.expired -',
  ]);
});

// Rows written before 0005 (no event_instant, no runs.now_at) on every dialect: the migration back-fills them
// from the bodies and the runs' start, and rows of other writers (any body) are left without an instant.
forEachDialect('0005_event_instants on rows written before it', ({ workspace }) => {
  test("event instants come from the bodies, a run's now from its start; down and up again", async () => {
    const ws = workspace();
    const subject = {
      license_id: 1,
      license_code: 'X","expires_at":"1999-01-01T00:00:00Z',
      product_id: null,
      product_reference_id: null,
      customer_id: null,
      email: null,
    };
    const stamp = new Date('2025-01-23T08:00:00Z');
    const bodies: Array<[string, string, string]> = [
      [
        'license.expiring:1:2025-01-30:7d',
        'license.expiring',
        buildEventBody({ type: 'license.expiring', expiresAt: new Date('2025-01-30T23:30:00Z'), daysUntilExpiry: 7 }, subject, stamp),
      ],
      [
        'license.expired:1:2025-01-30',
        'license.expired',
        buildEventBody({ type: 'license.expired', expiresAt: new Date('2025-01-30T23:30:00Z') }, subject, stamp),
      ],
      [
        'license.update_support_expired:1:2025-01-20',
        'license.update_support_expired',
        buildEventBody({ type: 'license.update_support_expired', updatesUntil: new Date('2025-01-20T00:00:00Z') }, subject, stamp),
      ],
      ['manual:1', 'license.expired', '{"left":"over"}'],
      ['manual:2', 'license.expiring', 'not json at all'],
    ];
    const instants = await ws.run(async ({ db }) => {
      const migrator = new Migrator({
        db,
        provider: { getMigrations: async () => migrations },
        migrationTableName: `${ws.tablePrefix}kysely_migration`,
        migrationLockTableName: `${ws.tablePrefix}kysely_migration_lock`,
        allowUnorderedMigrations: true,
      });
      const down = await migrator.migrateTo('0004_botble_license_states');
      expect(down.error).toBeUndefined();
      const old = db as unknown as Kysely<any>;
      await old
        .insertInto('webhook_deliveries')
        .values(
          bodies.map(([key, type, body], index) => ({
            event_id: `e${index}`,
            event_key: key,
            event_type: type,
            license_id: 1,
            body,
            status: 'delivered',
            created_at: '2025-01-23T08:00:00Z',
          })),
        )
        .execute();
      await old.insertInto('runs').values({ id: 'old-run', command: 'process-expirations', started_at: '2025-01-23T08:00:01Z', status: 'succeeded' }).execute();
      const up = await migrator.migrateToLatest();
      expect(up.error).toBeUndefined();
      const rows = await db.selectFrom('webhook_deliveries').select(['event_key', 'event_instant']).orderBy('id').execute();
      const run = await db.selectFrom('runs').select(['now_at', 'expired_without_event', 'announce_since']).executeTakeFirstOrThrow();
      return { rows, run };
    });
    expect(instants.rows).toEqual([
      { event_key: 'license.expiring:1:2025-01-30:7d', event_instant: '2025-01-30T23:30:00Z' },
      { event_key: 'license.expired:1:2025-01-30', event_instant: '2025-01-30T23:30:00Z' },
      { event_key: 'license.update_support_expired:1:2025-01-20', event_instant: '2025-01-20T00:00:00Z' },
      { event_key: 'manual:1', event_instant: null },
      { event_key: 'manual:2', event_instant: null },
    ]);
    expect(instants.run).toEqual({ now_at: '2025-01-23T08:00:01Z', expired_without_event: 0, announce_since: null });
  }, 60_000);
});
