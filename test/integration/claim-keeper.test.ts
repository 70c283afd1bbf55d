import { expect, test } from '@jest/globals';
import type { Kysely } from 'kysely';
import { ClaimKeeper, startHeartbeat } from '../../src/delivery/leases.js';
import type { Database } from '../../src/storage/database.table.js';
import { claimDeliveries, renewLeases } from '../../src/storage/deliveries/claims.repository.js';
import { forEachDialect } from '../helpers/workspace.js';

const LEASE_MS = 60_000;
const T0 = Date.parse('2025-01-15T08:00:00Z');

/** A clock the test moves by hand. */
function handClock(startMs: number) {
  let nowMs = startMs;
  return { now: () => new Date(nowMs), set: (ms: number) => (nowMs = ms), advance: (ms: number) => (nowMs += ms) };
}

/**
 * `db` as a run sees it that pauses (SIGSTOP, a frozen VM) for `pauseMs(n)` after its n-th UPDATE ran in the
 * database and before it reads the answer: the hand clock jumps between the two.
 */
function pausingAfterUpdates(db: Kysely<Database>, clock: ReturnType<typeof handClock>, pauseMs: (update: number) => number) {
  const updates = new WeakSet<object>();
  let count = 0;
  const paused = db.withPlugin({
    transformQuery: ({ node, queryId }) => {
      if (node.kind === 'UpdateQueryNode') updates.add(queryId);
      return node;
    },
    transformResult: ({ result, queryId }) => {
      if (updates.has(queryId)) clock.advance(pauseMs((count += 1)));
      return Promise.resolve(result);
    },
  });
  return { db: paused, updates: () => count };
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

/** One delivery, claimed by run A at T0 with a lease of LEASE_MS, and run A's keeper on a hand clock (and `keeperDb`). */
async function claimedByRunA(db: Kysely<Database>, minLeftMs: number, keeperDb?: (clock: ReturnType<typeof handClock>) => Kysely<Database>) {
  await onePendingDelivery(db);
  const clock = handClock(T0);
  const keeper = new ClaimKeeper(keeperDb?.(clock) ?? db, { runId: 'run-a', leaseMs: LEASE_MS, clock, minLeftMs });
  const [row] = await claimDeliveries(db, { runId: 'run-a', limit: 10, nowMs: T0, leaseUntil: T0 + LEASE_MS });
  keeper.claimed(row!.id, T0 + LEASE_MS);
  return { clock, keeper, row: row! };
}

/**
 * Taken over behind the keeper's back (no run does that within a lease; here it shows what the keeper
 * relies on): at `trustedAtMs` it still answers "held" from the lease it knows of, at `checkedAtMs` it asks
 * the database and sees the take-over.
 */
async function expectTrustedThenChecked(
  db: Kysely<Database>,
  { clock, keeper, row }: Awaited<ReturnType<typeof claimedByRunA>>,
  trustedAtMs: number,
  checkedAtMs: number,
): Promise<void> {
  await takeOver(db, T0 + 1_000_000);
  clock.set(trustedAtMs);
  await expect(keeper.confirm(row.id)).resolves.toBe(true);
  clock.set(checkedAtMs);
  await expect(keeper.confirm(row.id)).resolves.toBe(false);
}

forEachDialect('the claim keeper', ({ workspace }) => {
  test('with half its lease left a claim is trusted without asking the database; past that it is checked, and a take-over is seen', async () => {
    const ws = workspace();
    await ws.run(async ({ db }) => {
      const claim = await claimedByRunA(db, LEASE_MS / 2);
      const { clock, keeper, row } = claim;
      // 29 s in, the keeper trusts the 31 s of lease it knows of; at 31 s (less than half left: a pause, or
      // a delivery held for a while) it asks the database.
      await expectTrustedThenChecked(db, claim, T0 + 29_000, T0 + 31_000);
      // What the database said is kept: the delivery is no longer this run's.
      clock.set(T0 + 1_000);
      await expect(keeper.confirm(row.id)).resolves.toBe(false);
    });
  });

  test('a confirmation in the database renews the lease it knows of; a heartbeat that arrives late shortens no lease', async () => {
    const ws = workspace();
    await ws.run(async ({ db }) => {
      const claim = await claimedByRunA(db, LEASE_MS / 2);
      const { clock, keeper, row } = claim;
      const leaseInDatabase = async () => Number((await db.selectFrom('webhook_deliveries').select('lease_until').executeTakeFirstOrThrow()).lease_until);

      // 40 s in: checked in the database, still ours, and renewed to 100 s.
      clock.set(T0 + 40_000);
      await expect(keeper.confirm(row.id)).resolves.toBe(true);
      expect(await leaseInDatabase()).toBe(T0 + 100_000);

      // A heartbeat started at 35 s that reaches the database only now would set 95 s: it leaves 100 s.
      await renewLeases(db, 'run-a', T0 + 35_000, T0 + 95_000);
      expect(await leaseInDatabase()).toBe(T0 + 100_000);
      // A timely one extends it.
      await renewLeases(db, 'run-a', T0 + 50_000, T0 + 110_000);
      expect(await leaseInDatabase()).toBe(T0 + 110_000);

      // The keeper trusts what it wrote itself (100 s), not the heartbeat's 110 s: at 65 s it trusts the 35 s
      // left; at 71 s it asks the database.
      await expectTrustedThenChecked(db, claim, T0 + 65_000, T0 + 71_000);
    });
  });

  test('an answer read with under half its lease left (the run paused after the database renewed it) is not trusted: the keeper asks again', async () => {
    const ws = workspace();
    await ws.run(async ({ db }) => {
      let spy: ReturnType<typeof pausingAfterUpdates> | undefined;
      // Paused 40 s after the first confirmation's UPDATE only.
      const { clock, keeper, row } = await claimedByRunA(db, LEASE_MS / 2, (clock) => (spy = pausingAfterUpdates(db, clock, (n) => (n === 1 ? 40_000 : 0))).db);
      const leaseInDatabase = async () => Number((await db.selectFrom('webhook_deliveries').select('lease_until').executeTakeFirstOrThrow()).lease_until);
      // 40 s in: asked; the database renews to 100 s, but the answer is read at 80 s, 20 s before that lease
      // lapses, when another run may already be waiting for it. Asked again at 80 s: renewed to 140 s.
      clock.set(T0 + 40_000);
      await expect(keeper.confirm(row.id)).resolves.toBe(true);
      expect(spy!.updates()).toBe(2);
      expect(await leaseInDatabase()).toBe(T0 + 140_000);
    });
  });

  test('an answer read after the lease it wrote had lapsed is not trusted: asked again, the claim is no longer held', async () => {
    const ws = workspace();
    await ws.run(async ({ db }) => {
      // Paused 70 s after the first confirmation's UPDATE: its lease (to 100 s) had lapsed at the reading (110 s),
      // when another run may have taken the delivery over and sent it.
      const { clock, keeper, row } = await claimedByRunA(db, LEASE_MS / 2, (clock) => pausingAfterUpdates(db, clock, (n) => (n === 1 ? 70_000 : 0)).db);
      clock.set(T0 + 40_000);
      await expect(keeper.confirm(row.id)).resolves.toBe(false);
    });
  });

  test('a claim whose every answer comes back with under half its lease left is unconfirmed after three asks', async () => {
    const ws = workspace();
    await ws.run(async ({ db }) => {
      let spy: ReturnType<typeof pausingAfterUpdates> | undefined;
      const { clock, keeper, row } = await claimedByRunA(db, LEASE_MS / 2, (clock) => (spy = pausingAfterUpdates(db, clock, () => 40_000)).db);
      clock.set(T0 + 40_000);
      // The caller hands it back (see the delivery engine's tests): the keeper only says so.
      await expect(keeper.confirm(row.id)).resolves.toBe('unconfirmed');
      expect(spy!.updates()).toBe(3);
      // Still this run's claim, with the lease of the last ask: another run takes it over once that lapses.
      expect(await db.selectFrom('webhook_deliveries').select(['claimed_by', 'lease_until']).executeTakeFirstOrThrow()).toMatchObject({ claimed_by: 'run-a' });
    });
  });

  test('an answer that took longer than half the lease by the monotonic clock is not trusted, whatever the lease clock says', async () => {
    const ws = workspace();
    await ws.run(async ({ db }) => {
      await onePendingDelivery(db);
      // A 200 ms lease on a clock that never moves, and a database that takes 150 ms to answer: only the
      // monotonic clock sees each answer come back too late.
      const leaseMs = 200;
      const clock = handClock(T0);
      const slow = db.withPlugin({
        transformQuery: ({ node }) => node,
        transformResult: async ({ result }) => {
          await new Promise((resolve) => setTimeout(resolve, 150));
          return result;
        },
      });
      const keeper = new ClaimKeeper(slow, { runId: 'run-a', leaseMs, clock, minLeftMs: 10_000 });
      const [row] = await claimDeliveries(db, { runId: 'run-a', limit: 10, nowMs: T0, leaseUntil: T0 + leaseMs });
      keeper.claimed(row!.id, T0 + leaseMs);
      await expect(keeper.confirm(row!.id)).resolves.toBe('unconfirmed');
    });
  });

  test('a heartbeat renewal that fails after the heartbeat stopped is not reported; one that fails before is', async () => {
    const ws = workspace();
    await ws.run(async ({ db }) => {
      // Renewals every second (a third of a 3 s lease), each failing: the first at once, the second only when the
      // test lets it, after the heartbeat has stopped.
      let started = 0;
      let letSecondFail = () => undefined as void;
      const secondMayFail = new Promise<void>((resolve) => (letSecondFail = resolve));
      const failing = db.withPlugin({
        transformQuery: ({ node }) => {
          if (node.kind === 'UpdateQueryNode') started += 1;
          return node;
        },
        transformResult: async () => {
          if (started > 1) await secondMayFail;
          throw new Error('driver has already been destroyed');
        },
      });
      const reported: string[] = [];
      const until = async (done: () => boolean) => {
        for (let waited = 0; !done() && waited < 10_000; waited += 5) await new Promise((resolve) => setTimeout(resolve, 5));
      };
      const stop = startHeartbeat(failing, { runId: 'run-a', leaseMs: 3000, clock: handClock(T0), onError: (error) => reported.push(String(error)) });
      await until(() => reported.length > 0);
      expect(reported).toEqual(['Error: driver has already been destroyed']);
      await until(() => started > 1);
      stop();
      letSecondFail();
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(reported).toHaveLength(1);
    });
  }, 15_000);

  test('an attempt that may outlast half the lease starts only with its timeout left, or after asking the database', async () => {
    const ws = workspace();
    await ws.run(async ({ db }) => {
      // A 50 s attempt timeout: the keeper wants 50 s of lease left, not 30.
      // 9 s in, 51 s are left: trusted; at 11 s, 49 s are left: asked.
      await expectTrustedThenChecked(db, await claimedByRunA(db, 50_000), T0 + 9_000, T0 + 11_000);
    });
  });
});
