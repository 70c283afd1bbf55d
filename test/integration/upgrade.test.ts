import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, test } from '@jest/globals';
import { sql } from 'kysely';
import { processExpirations } from '../../src/commands/process-expirations.js';
import { plusDays } from '../helpers/calendar-oracle.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { workspace } from '../helpers/workspace.js';

/**
 * A database written by release 0.1.0, which keyed events on the UTC instant and counted 24-hour periods:
 * test/fixtures/release-0.1.0-database.json holds its rows exactly as that release wrote them (its CLI run on
 * test/fixtures/release-0.1.0-licenses.csv). Later migrations only add columns with defaults, so the rows go
 * into a file migrated by this code; then this code runs at the same instants and day by day after: nothing is
 * sent twice. SQLite only, by nature: 0.1.0 only ever had SQLite, so no server database was ever written by it.
 */
const FIXTURE = JSON.parse(
  fs.readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/release-0.1.0-database.json'), 'utf8'),
) as { licenses: object[]; webhook_deliveries: object[]; webhook_attempts: object[]; migrations: string[] };

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
    await context.db.insertInto('licenses').values(FIXTURE.licenses as never).execute();
    await context.db.insertInto('webhook_deliveries').values(FIXTURE.webhook_deliveries as never).execute();
    await context.db.insertInto('webhook_attempts').values(FIXTURE.webhook_attempts as never).execute();
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
