import SQLite from 'better-sqlite3';
import { afterEach, expect, jest, test } from '@jest/globals';
import { deliveryTotals, endpointDeliveries, endpointStreaks } from '../../src/storage/monitoring.repository.js';
import { sqlitePlans } from '../helpers/query-plan.js';
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
    // An answered attempt to default's delivered one, a failed one to crm's.
    for (const [eventId, statusCode] of [
      ['e0', 200],
      ['e7', 503],
    ] as const) {
      await ws.rows(
        `insert into webhook_attempts (delivery_id, attempt, started_at, duration_ms, status_code) select id, 1, '2021-08-01T00:00:00Z', 5, ${statusCode} from webhook_deliveries where event_id = '${eventId}'`,
      );
    }
    const [totals, deliveries, streaks] = await ws.run(async ({ db }) => {
      const withDeliveries = await endpointDeliveries(db);
      // The streaks of the endpoints the counts name, as the textfile and `deliveries stats` ask for them.
      return [
        await deliveryTotals(db),
        withDeliveries,
        await endpointStreaks(
          db,
          withDeliveries.map((row) => row.endpoint),
        ),
      ] as const;
    });
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
    expect(
      streaks
        .map(({ endpoint, consecutiveFailures, lastSuccessAt }) => ({ endpoint, consecutiveFailures, success: lastSuccessAt !== null }))
        .sort((a, b) => a.endpoint.localeCompare(b.endpoint)),
    ).toEqual([
      { endpoint: 'crm', consecutiveFailures: 1, success: false },
      { endpoint: 'default', consecutiveFailures: 0, success: true },
    ]);
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
      // One delivery with an attempt, so that the streaks are read too.
      await ws.rows(
        "insert into webhook_deliveries (event_id, event_key, event_type, body, status, created_at) values ('e', 'k', 'license.expired', '{}', 'delivered', '2021-01-01T00:00:00Z')",
      );
      await ws.rows(
        "insert into webhook_attempts (delivery_id, attempt, started_at, duration_ms, status_code) select id, 1, '2021-01-01T00:00:00Z', 5, 200 from webhook_deliveries",
      );
      // The statements as the repository compiles them, through the binding it uses (called through as it is).
      const prepared = jest.spyOn(SQLite.prototype, 'prepare');
      await ws.run(async ({ db }) => {
        await deliveryTotals(db);
        await endpointDeliveries(db);
        await endpointStreaks(
          db,
          (await endpointDeliveries(db)).map((row) => row.endpoint),
        );
      });
      const statements = [...new Set(prepared.mock.calls.map(([source]) => source))].filter((source) => source.includes('"webhook_deliveries"'));
      jest.restoreAllMocks();
      const plans = sqlitePlans(ws.databaseLocation, statements);
      // The counts by type and status (the textfile's), by endpoint and status, the oldest waiting, the streaks.
      expect(plans.length).toBeGreaterThanOrEqual(4);
      // A table read row by row, or a distinct list of endpoints made from a whole index.
      expect(plans.filter(({ plan }) => plan.some((line) => /^SCAN (webhook_deliveries|d)$|TEMP B-TREE FOR DISTINCT/.test(line)))).toEqual([]);
      const oldest = plans.find(({ sql }) => sql.includes('min("created_at")'));
      expect(oldest?.plan[0]).toMatch(/^SEARCH .*INDEX webhook_deliveries_status/);
      const totals = plans.find(({ sql }) => sql.includes('"event_type", "status", "endpoint"'));
      expect(totals?.plan[0]).toMatch(/COVERING INDEX webhook_deliveries_type_status_endpoint/);
    });
  },
  ['sqlite'],
);
