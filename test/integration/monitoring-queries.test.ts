import SQLite from 'better-sqlite3';
import { afterEach, expect, jest, test } from '@jest/globals';
import { deliveryTotals, endpointDeliveries, endpointStreaks } from '../../src/storage/monitoring.repository.js';
import { forEachDialect } from '../helpers/workspace.js';

// What the Prometheus textfile (written after every run) and `deliveries stats` read of the deliveries: counted by
// indexes, so that their cost does not grow with every delivery ever made (at 1,000,000 deliveries on SQLite, the
// counts by event type and status read every row, bodies included, 0.7 s; the oldest delivery still to be delivered
// another 0.3 s; the endpoints' names another index's every entry).

/** One delivery per status, to `default` (and one to `crm`); the done ones older than the waiting ones. */
const ROWS: Array<[status: string, createdAt: string, endpoint: string, type: string]> = [
  ['delivered', '2020-01-01T00:00:00Z', 'default', 'license.expired'],
  ['abandoned', '2020-01-02T00:00:00Z', 'default', 'license.expired'],
  ['superseded', '2020-01-03T00:00:00Z', 'default', 'license.expiring'],
  ['parked', '2021-05-01T00:00:00Z', 'default', 'license.expiring'],
  ['deferred', '2021-04-01T00:00:00Z', 'default', 'license.expired'],
  ['delivering', '2021-06-01T00:00:00Z', 'default', 'license.expiring'],
  ['pending', '2021-07-01T00:00:00Z', 'default', 'license.expired'],
  ['delivered', '2019-01-01T00:00:00Z', 'crm', 'license.expired'],
];

forEachDialect('what monitoring reads of the deliveries', ({ workspace }) => {
  test('counts by type, status and endpoint, and the oldest still to be delivered is among the waiting ones only', async () => {
    const ws = workspace();
    await ws.ready();
    await ws.rows(
      `insert into webhook_deliveries (event_id, event_key, event_type, body, status, created_at, endpoint) values ${ROWS.map(
        ([status, createdAt, endpoint, type], index) => `('e${index}', 'k${index}', '${type}', '{}', '${status}', '${createdAt}', '${endpoint}')`,
      ).join(', ')}`,
    );
    const [totals, deliveries, streaks] = await ws.run(
      async ({ db }) => [await deliveryTotals(db), await endpointDeliveries(db), await endpointStreaks(db, ['default', 'crm'])] as const,
    );
    expect(totals.events.sort((a, b) => a.eventType.localeCompare(b.eventType))).toEqual([
      { eventType: 'license.expired', count: 4 },
      { eventType: 'license.expiring', count: 3 },
    ]);
    expect(totals.deliveries.find((row) => row.eventType === 'license.expired' && row.status === 'delivered')?.count).toBe(2);
    const byEndpoint = Object.fromEntries(deliveries.map((row) => [row.endpoint, row]));
    expect(byEndpoint.default!.byStatus).toEqual({ delivered: 1, abandoned: 1, superseded: 1, parked: 1, deferred: 1, delivering: 1, pending: 1 });
    // The deferred one (2021-04-01): older done ones do not count, and crm has nothing waiting.
    expect(byEndpoint.default!.oldestUndeliveredAt).toBe('2021-04-01T00:00:00Z');
    expect(byEndpoint.crm!.oldestUndeliveredAt).toBeNull();
    // No attempts yet: no streak to report for either.
    expect(streaks).toEqual([]);
  });
});

forEachDialect(
  'what monitoring reads of the deliveries, on SQLite',
  ({ workspace }) => {
    afterEach(() => {
      jest.restoreAllMocks();
    });

    test('by indexes: no statement reads the table row by row, and the waiting ones are looked up', async () => {
      const ws = workspace();
      await ws.ready();
      // The statements as the repository compiles them, through the binding it uses (called through as it is).
      const prepared = jest.spyOn(SQLite.prototype, 'prepare');
      await ws.run(async ({ db }) => {
        await deliveryTotals(db);
        await endpointDeliveries(db);
        await endpointStreaks(db, ['default']);
      });
      const statements = [...new Set(prepared.mock.calls.map(([source]) => source))].filter((source) => source.includes('"webhook_deliveries"'));
      jest.restoreAllMocks();
      const sqlite = new SQLite(ws.databaseLocation, { readonly: true });
      try {
        const plans = statements.map((source) => ({
          source,
          plan: sqlite
            .prepare<unknown[]>(`explain query plan ${source}`)
            .all(...Array.from({ length: (source.match(/\?/g) ?? []).length }, () => 'x'))
            .map((row) => (row as { detail: string }).detail),
        }));
        // The counts by type and status (the textfile's), by endpoint and status, the oldest waiting, the streaks.
        expect(plans.length).toBeGreaterThanOrEqual(4);
        expect(plans.filter(({ plan }) => plan.some((line) => /^SCAN (webhook_deliveries|d)$/.test(line)))).toEqual([]);
        const oldest = plans.find(({ source }) => source.includes('min("created_at")'));
        expect(oldest?.plan[0]).toMatch(/^SEARCH webhook_deliveries USING INDEX webhook_deliveries_status/);
        const totals = plans.find(({ source }) => source.includes('"event_type", "status", "endpoint"'));
        expect(totals?.plan[0]).toBe('SCAN webhook_deliveries USING COVERING INDEX webhook_deliveries_type_status_endpoint');
      } finally {
        sqlite.close();
      }
    });
  },
  ['sqlite'],
);
