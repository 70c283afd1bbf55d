import { expect, test } from '@jest/globals';
import type { Kysely } from 'kysely';
import { ClaimKeeper } from '../../src/delivery/leases.js';
import type { Database } from '../../src/storage/database.table.js';
import { claimDeliveries } from '../../src/storage/deliveries.repository.js';
import { forEachDialect } from '../helpers/workspace.js';

const LEASE_MS = 60_000;
const T0 = Date.parse('2025-01-15T08:00:00Z');

/** A clock the test moves by hand. */
function handClock(startMs: number) {
  let nowMs = startMs;
  return { now: () => new Date(nowMs), set: (ms: number) => (nowMs = ms) };
}

async function onePendingDelivery(db: Kysely<Database>): Promise<void> {
  await db
    .insertInto('webhook_deliveries')
    .values({ event_id: 'evt-1', event_key: 'key-1', event_type: 'license.expired', body: '{}', status: 'pending', created_at: '2025-01-15T08:00:00Z' })
    .execute();
}

/** Another run takes the delivery over, as a run does after it saw the lease lapse. */
async function takeOver(db: Kysely<Database>, untilMs: number): Promise<void> {
  await db.updateTable('webhook_deliveries').set({ claimed_by: 'run-b', lease_until: untilMs }).execute();
}

forEachDialect('the claim keeper', ({ workspace }) => {
  test('with half its lease left a claim is trusted without asking the database; past that it is checked, and a take-over is seen', async () => {
    const ws = workspace();
    await ws.run(async ({ db }) => {
      await onePendingDelivery(db);
      const clock = handClock(T0);
      const keeper = new ClaimKeeper(db, { runId: 'run-a', leaseMs: LEASE_MS, clock });
      const [row] = await claimDeliveries(db, { runId: 'run-a', limit: 10, nowMs: T0, leaseUntil: T0 + LEASE_MS });
      keeper.claimed(row!.id, T0 + LEASE_MS);

      // Taken over behind the keeper's back within the lease (no run does that): 29 s in, the keeper still
      // trusts the 31 s of lease it knows of, which is what proves no run could have taken it over.
      await takeOver(db, T0 + 2 * LEASE_MS);
      clock.set(T0 + 29_000);
      await expect(keeper.confirm(row!.id)).resolves.toBe(true);

      // With less than half the lease left (a pause, a heartbeat that failed) it asks the database.
      clock.set(T0 + 31_000);
      await expect(keeper.confirm(row!.id)).resolves.toBe(false);
      // What the database said is kept: the delivery is no longer this run's.
      clock.set(T0 + 1_000);
      await expect(keeper.confirm(row!.id)).resolves.toBe(false);
    });
  });

  test('a confirmation in the database renews the lease it knows of, and so does the heartbeat', async () => {
    const ws = workspace();
    await ws.run(async ({ db }) => {
      await onePendingDelivery(db);
      const clock = handClock(T0);
      const keeper = new ClaimKeeper(db, { runId: 'run-a', leaseMs: LEASE_MS, clock });
      const [row] = await claimDeliveries(db, { runId: 'run-a', limit: 10, nowMs: T0, leaseUntil: T0 + LEASE_MS });
      keeper.claimed(row!.id, T0 + LEASE_MS);

      // 40 s in: checked in the database, still ours, and renewed to 100 s.
      clock.set(T0 + 40_000);
      await expect(keeper.confirm(row!.id)).resolves.toBe(true);
      const [{ lease_until: renewed }] = (await db.selectFrom('webhook_deliveries').select('lease_until').execute()) as [{ lease_until: number }];
      expect(Number(renewed)).toBe(T0 + 100_000);

      // Behind its back again: at 65 s the keeper knows of 35 s left, trusts it, and does not see the change.
      await takeOver(db, T0 + 200_000);
      clock.set(T0 + 65_000);
      await expect(keeper.confirm(row!.id)).resolves.toBe(true);

      // A heartbeat at 90 s renewed the run's running leases to 150 s: at 110 s the keeper still trusts 40 s.
      keeper.renewed(T0 + 90_000, T0 + 150_000);
      clock.set(T0 + 110_000);
      await expect(keeper.confirm(row!.id)).resolves.toBe(true);
      // A heartbeat does not bring back a lease that had already run out before it.
      keeper.renewed(T0 + 160_000, T0 + 220_000);
      clock.set(T0 + 161_000);
      await expect(keeper.confirm(row!.id)).resolves.toBe(false);
    });
  });
});
