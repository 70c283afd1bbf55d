import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { sql } from 'kysely';
import { longTexts } from '../../migrations/0007_long_texts.js';
import { verifySignature } from '../../src/webhooks/verify.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { forEachDialect, type Workspace } from '../helpers/workspace.js';

// MySQL/MariaDB's TEXT holds 65,535 bytes; INSERT IGNORE turned "too long" into a warning and the body was cut.
const NOW = '2025-01-23T10:00:00Z';
const SECRET = 'a-long-bodies-secret';
// "é" is two bytes in UTF-8: 40,000 of them are 80,000 bytes, past TEXT on their own.
const LONG_NAME = `Customer ${'é'.repeat(40_000)} GmbH`;

let receiver: Receiver;
beforeAll(async () => {
  receiver = await startReceiver();
});
afterAll(async () => {
  await receiver.close();
});

/** A workspace with one license expired the day before NOW whose customer name makes its event body over 65,535 bytes. */
async function longNamed(workspace: (config?: Record<string, unknown>) => Workspace, code: string): Promise<Workspace> {
  const ws = workspace({ webhooks: { enabled: true, url: receiver.url, secret: SECRET } });
  fs.chmodSync(ws.configFile, 0o600);
  await ws.ready();
  fs.writeFileSync(
    path.join(ws.dir, 'long.json'),
    JSON.stringify([{ license_code: code, customer_id: LONG_NAME, product_name: 'P'.repeat(30_000), expires_at: '2025-01-22' }]),
  );
  const imported = await ws.cli(['licenses', 'import', 'long.json']);
  expect([imported.code, imported.stderr]).toEqual([0, '']);
  return ws;
}

const bodiesFor = (code: string) => receiver.requests.filter((request) => request.body.includes(`"license_code":"${code}"`));

forEachDialect('event bodies over 65,535 bytes', ({ workspace, dialect }) => {
  test('a long customer name from an import arrives whole and its signature verifies', async () => {
    const ws = await longNamed(workspace, `LONG-${dialect}`);
    const run = await ws.cli(['process-expirations', '--now', NOW, '--json']);
    expect([run.code, run.stderr]).toEqual([0, '']);
    const [request, ...more] = bodiesFor(`LONG-${dialect}`);
    expect(more).toHaveLength(0);
    expect(request!.body.length).toBeGreaterThan(110_000);
    const event = JSON.parse(request!.body.toString('utf8')) as { payload: { customer_id: string; product_reference_id: string } };
    // Compared as equality, not printed: a failure must not print 80 KB.
    expect(event.payload.customer_id === LONG_NAME).toBe(true);
    expect(event.payload.product_reference_id.length).toBe(30_000);
    expect(verifySignature(request!.body, String(request!.headers['x-webhook-signature']), SECRET).verdict).toBe('valid');
    const [stored] = await ws.rows<{ body: string }>('select body from webhook_deliveries');
    expect(stored!.body === request!.body.toString('utf8')).toBe(true);
  }, 60_000);

  if (dialect !== 'mysql') return;

  test('sessions are strict, whatever the server default', async () => {
    const ws = workspace();
    await ws.ready();
    const [row] = await ws.rows<{ mode: string }>('select @@session.sql_mode as mode');
    expect(row!.mode.split(',')).toEqual(expect.arrayContaining(['STRICT_ALL_TABLES', 'NO_ENGINE_SUBSTITUTION']));
  });

  test('migration 0007 makes every text column LONGTEXT and may run again', async () => {
    const ws = workspace();
    await ws.ready();
    // Run once more over what `ready()` migrated: MODIFY restates the column, so a second run changes nothing.
    await ws.run(async ({ db }) => longTexts.up(db));
    const types = await ws.run(async ({ db }) =>
      (
        await sql<{ name: string; type: string }>`select concat(table_name, '.', column_name) as name, data_type as type from information_schema.columns
          where table_schema = database() and table_name like ${`${ws.tablePrefix}%`} and data_type like '%text'`.execute(db)
      ).rows.map((column) => `${column.name.slice(ws.tablePrefix.length)} ${column.type}`),
    );
    expect(types.sort()).toEqual(
      [
        'licenses.customer_id',
        'licenses.email',
        'licenses.product_id',
        'licenses.product_name',
        'runs.error',
        'settings.value',
        'webhook_attempts.error',
        'webhook_deliveries.body',
        'webhook_deliveries.last_error',
      ]
        .map((name) => `${name} longtext`)
        .sort(),
    );
  });

  test('a body the column still cannot hold is refused naming the license and field: nothing cut, nothing sent', async () => {
    const ws = await longNamed(workspace, 'NARROW');
    // A column narrower than the migrations make it (an operator's own change, or 0007 rolled back).
    await ws.run(async ({ db }) => void (await sql`alter table ${sql.table('webhook_deliveries')} modify body text not null`.execute(db)));
    const [license] = await ws.rows<{ id: number }>("select id from licenses where license_code = 'NARROW'");
    const run = await ws.cli(['process-expirations', '--now', NOW]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`The license.expired event of license ${license!.id} (NARROW) cannot be stored: its body (`);
    expect(run.stderr).toContain(`longer than the column ${ws.tablePrefix}webhook_deliveries.body`);
    expect(run.stderr).toContain('nothing was cut');
    expect(bodiesFor('NARROW')).toHaveLength(0);
    expect(await ws.rows('select id from webhook_deliveries')).toHaveLength(0);
  }, 60_000);
});
