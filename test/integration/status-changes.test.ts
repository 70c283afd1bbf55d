import { expect, test } from '@jest/globals';
import { statusChange, writeStatusChanges } from '../../src/storage/licenses.repository.js';
import { sqlitePlans } from '../helpers/query-plan.js';
import { aLicense, forEachDialect } from '../helpers/workspace.js';

const NOW = '2025-01-15 08:00:00';

forEachDialect('status changes a run writes, by license id', ({ workspace }) => {
  test('only licenses still in the status they leave change, and the counts say how many did', async () => {
    const ws = workspace();
    await ws.seed([
      ...Array.from({ length: 6 }, () => aLicense({ status: 'active', expires_at: '2025-01-14T00:00:00Z' })),
      ...Array.from({ length: 4 }, () => aLicense({ status: 'expired', expires_at: '2025-01-10T00:00:00Z' })),
      aLicense({ status: 'suspended', expires_at: '2025-01-14T00:00:00Z' }),
    ]);
    const before = await ws.rows<{ id: number; status: string }>('select id, status from licenses order by id');
    const ids = (status: string) => before.filter((row) => row.status === status).map((row) => Number(row.id));
    const [active, expired, suspended] = [ids('active'), ids('expired'), ids('suspended')];
    const counts = await ws.run(({ db }) =>
      writeStatusChanges(
        db,
        {
          // Four active ones expire; an expired one and the suspended one are named too, and stay as they are.
          expired: [...active.slice(0, 4), expired[0]!, suspended[0]!].map((id) => ({ id, expires_at: '2025-01-14T00:00:00Z' })),
          // Two expired ones were renewed; an active one named with them stays active.
          reactivated: [expired[1]!, expired[2]!, active[5]!],
        },
        NOW,
      ),
    );
    expect(counts).toEqual({ expired: 4, reactivated: 2 });
    const after = await ws.rows<{ id: number; status: string; updated_at: string }>('select id, status, updated_at from licenses order by id');
    const statusOf = new Map(after.map((row) => [Number(row.id), row.status]));
    expect(active.map((id) => statusOf.get(id))).toEqual(['expired', 'expired', 'expired', 'expired', 'active', 'active']);
    expect(expired.map((id) => statusOf.get(id))).toEqual(['expired', 'active', 'active', 'expired']);
    expect(statusOf.get(suspended[0]!)).toBe('suspended');
    // Only the six that changed were written.
    expect(after.filter((row) => String(row.updated_at).startsWith('2025-01-15')).map((row) => Number(row.id))).toEqual(
      [...active.slice(0, 4), expired[1]!, expired[2]!].sort((a, b) => a - b),
    );
  });
});

// The servers choose by their statistics; SQLite keeps none here, so its plan is fixed by the statement alone.
forEachDialect(
  'the status change statement on SQLite',
  ({ workspace }) => {
    test('SQLite finds the rows by their ids, not by scanning the status index for every license in that status', async () => {
      const ws = workspace();
      await ws.seed([aLicense()]);
      // A full chunk of ids (the plan does not depend on how many rows there are).
      const ids = Array.from({ length: 500 }, (_, index) => index + 1);
      const [expire, reactivate] = await ws.run(async ({ db }) => [
        statusChange(db, ids, 'active', 'expired', NOW).compile(),
        statusChange(db, ids, 'expired', 'active', NOW).compile(),
      ]);
      for (const { plan } of sqlitePlans(ws.databaseLocation, [expire, reactivate])) {
        // Before: "SEARCH licenses USING INDEX licenses_status_updates_until (status=?)".
        expect(plan).toEqual([expect.stringMatching(/^SEARCH licenses USING INTEGER PRIMARY KEY/)]);
      }
    });
  },
  ['sqlite'],
);
