import SQLite from 'better-sqlite3';
import { afterEach, expect, jest, test } from '@jest/globals';
import { sqlitePlans } from '../helpers/query-plan.js';
import { aLicense, forEachDialect, receiverFor } from '../helpers/workspace.js';

const NOW = '2025-01-15T08:00:00Z';

// SQLite's planner has no statistics here: for `id in (…) and status = ?` it took the (status, …) index for the
// selective one and scanned every license in that status for each chunk of ids (see SqlDialect.unindexed). The
// servers plan by their statistics, so this guard is SQLite's. An index range of one status alone, `(status=?)`, is
// what such a scan looks like in a plan.
const STATUS_SCAN = /USING (?:COVERING )?INDEX \S+ \(status=\?\)$/;
// A list of ids bound as parameters: the statements that look rows up by id.
const ID_LIST = /"id" in \(\?, \?/;

afterEach(() => {
  jest.restoreAllMocks();
});

forEachDialect(
  'the statements of a run that take a list of ids, on SQLite',
  ({ project }) => {
    test('look the ids up: none scans a status index for every row in that status', async () => {
      // Every statement the commands below prepare, through the binding the in-process CLI uses (called through as it is).
      const prepared = jest.spyOn(SQLite.prototype, 'prepare');
      const receiver = await receiverFor();
      const ws = await project({
        receiver,
        config: { webhooks: { enabled: true, concurrency: 4 } },
        seed: [
          // Expired yesterday (status changes and license.expired), expiring in 7 days, and renewed ones (reactivated).
          ...Array.from({ length: 12 }, () => aLicense({ expires_at: '2025-01-14T08:00:00Z' })),
          ...Array.from({ length: 6 }, () => aLicense({ expires_at: '2025-01-22T08:00:00Z' })),
          ...Array.from({ length: 6 }, () => aLicense({ status: 'expired', expires_at: '2026-01-14T08:00:00Z' })),
        ],
      });
      for (const args of [['process-expirations', '--now', NOW], ['deliveries', 'list'], ['status'], ['licenses', 'list']]) {
        expect((await ws.cli([...args, '--json'])).code).toBe(0);
      }
      expect(receiver.requests).toHaveLength(18);
      const byIds = [...new Set(prepared.mock.calls.map(([source]) => source))].filter((source) => ID_LIST.test(source));
      const plans = sqlitePlans(ws.databaseLocation, byIds);
      // The status changes of the run are among them, and so are the reads of the delivery log.
      expect(plans.some(({ sql }) => sql.startsWith('update "licenses" set "status"'))).toBe(true);
      expect(plans.length).toBeGreaterThanOrEqual(3);
      expect(plans.filter(({ plan }) => plan.some((line) => STATUS_SCAN.test(line)))).toEqual([]);
    });
  },
  ['sqlite'],
);
