import { sql, type Expression, type ExpressionBuilder, type Kysely, type SqlBool } from 'kysely';
import { chunksOf } from '../../sql/chunks.js';
import { retryOnDeadlock } from '../../sql/db-errors.js';
import { dialectFor } from '../../sql/dialect-for.js';
import type { Database, DeliveryStatus } from '../database.table.js';
import { inTransaction } from '../transaction.js';
import type { DeliveryEnd } from './attempts.repository.js';
import type { DeliveryRow } from './log.repository.js';

// Claims and leases: which run holds which delivery, for how long, and how a claim ends without an attempt.
export interface ClaimOptions {
  runId: string;
  limit: number;
  /** Epoch ms; the lease of a claim runs out then unless renewed. */
  leaseUntil: number;
  nowMs: number;
  /** Only deliveries to these endpoints (by name): the others are parked (disabled) or not this claim's. All when left out. */
  endpoints?: readonly string[];
  /** Deferred deliveries due at this time (`next_attempt_at` at or before it) are claimed first; none when left out. */
  dueAt?: string;
}

type RowFilter = (eb: ExpressionBuilder<Database, 'webhook_deliveries'>) => Expression<SqlBool>;

/** Claims whose lease ran out, of other runs: a run's own lapsed claims (it was paused, or its database froze) may still be in its hands. */
function lapsedClaimOf(runId: string | undefined, nowMs: number, endpoints?: readonly string[]): RowFilter {
  return (eb) =>
    eb.and([
      eb('status', '=', 'delivering'),
      eb('lease_until', '<', nowMs),
      ...(runId === undefined ? [] : [eb('claimed_by', '<>', runId)]),
      ...endpointIn(eb, endpoints),
    ]);
}

/** `endpoint in (…)` when a list is given: nothing (every endpoint) otherwise, so a run without endpoints claims as before. */
function endpointIn(eb: ExpressionBuilder<Database, 'webhook_deliveries'>, endpoints: readonly string[] | undefined): Array<Expression<SqlBool>> {
  if (endpoints === undefined) return [];
  // An empty list matches nothing (`in ()` is not SQL; nor is a bound boolean to SQLite).
  return [endpoints.length === 0 ? sql<SqlBool>`1 = 0` : eb('endpoint', 'in', [...endpoints])];
}

/**
 * Takes up to `limit` deliveries that are pending, or whose claim lapsed (its run died), in one statement:
 * SQLite's write lock makes it atomic, so two runs never hold the same delivery. A run never takes back its
 * own lapsed claims: it may hold them still (waiting for a retry, or sent and not yet written), and would send
 * them twice; it drops them when it confirms them, and the next run takes them over.
 */
export async function claimDeliveries(db: Kysely<Database>, options: ClaimOptions): Promise<DeliveryRow[]> {
  // Two index range scans on (status, id) rather than one OR, which would scan the whole table per claim.
  const lapsed = await claimWhere(db, options, options.limit, lapsedClaimOf(options.runId, options.nowMs, options.endpoints));
  let room = options.limit - lapsed.length;
  // Due deferred ones next, oldest first: each gets one attempt (schedule_base moves up to attempts; next_attempt_at stays, marking it).
  const due =
    room > 0 && options.dueAt !== undefined
      ? await claimRows(db, room, dueDeferred(options.dueAt, options.endpoints), (eb) => ({
          status: 'delivering',
          claimed_by: options.runId,
          lease_until: options.leaseUntil,
          schedule_base: eb.ref('attempts'),
        }))
      : [];
  room -= due.length;
  const pending = room > 0 ? await claimWhere(db, options, room, (eb) => eb.and([eb('status', '=', 'pending'), ...endpointIn(eb, options.endpoints)])) : [];
  return [...lapsed, ...due, ...pending];
}

/** Deferred deliveries whose next attempt is due at `dueAt` (the index on status, endpoint, next_attempt_at, id). */
function dueDeferred(dueAt: string, endpoints: readonly string[] | undefined): RowFilter {
  return (eb) => eb.and([eb('status', '=', 'deferred'), eb('next_attempt_at', '<=', dueAt), ...endpointIn(eb, endpoints)]);
}

async function claimWhere(db: Kysely<Database>, options: ClaimOptions, limit: number, filter: RowFilter): Promise<DeliveryRow[]> {
  return claimRows(db, limit, filter, () => ({ status: 'delivering', claimed_by: options.runId, lease_until: options.leaseUntil }));
}

type ClaimChanges = (eb: ExpressionBuilder<Database, 'webhook_deliveries'>) => {
  status: 'delivering';
  claimed_by: string;
  lease_until: number;
  completed_at?: null;
  status_reason?: null;
  schedule_base?: Expression<number>;
  next_attempt_at?: null;
};

/**
 * Sets `changes` on the first `limit` rows matching `filter`, in id order, and returns them. SQLite's write
 * lock makes one UPDATE … RETURNING atomic; on a server the candidates are locked with FOR UPDATE SKIP
 * LOCKED, so a worker passes over rows another worker is claiming at that moment instead of waiting.
 */
async function claimRows(db: Kysely<Database>, limit: number, filter: RowFilter, changes: ClaimChanges): Promise<DeliveryRow[]> {
  return dialectFor(db).updateReturning<Database, DeliveryRow>(db, {
    table: 'webhook_deliveries',
    select: (on) => on.selectFrom('webhook_deliveries').select('id').where(filter).orderBy('id').limit(limit),
    update: (on, ids) => on.updateTable('webhook_deliveries').set(changes).where('id', 'in', ids),
    skipLocked: true,
    readBack: 'rows',
  });
}

/** Which abandoned deliveries `deliveries retry` re-sends: all (optionally recorded since a time), or these ids. */
export interface ResendSelection {
  since?: string | undefined;
  ids?: readonly number[];
  /** Delivered and superseded ones too (`--force`, with ids): for a receiver that answered 2xx and lost the event, or a notice to send whatever its license says now. */
  delivered?: boolean | undefined;
  /** Only deliveries to these endpoints (the enabled ones); all when left out. */
  endpoints?: readonly string[] | undefined;
}

function abandonedIn(selection: ResendSelection, afterId: number, ids?: readonly number[]): RowFilter {
  return (eb) =>
    eb.and([
      // Named by id, a deferred one is sent now too (`deliveries retry <id>`); with --force a delivered or superseded one too.
      ids !== undefined
        ? eb('status', 'in', selection.delivered ? ['abandoned', 'deferred', 'delivered', 'superseded'] : ['abandoned', 'deferred'])
        : eb('status', '=', 'abandoned'),
      eb('id', '>', afterId),
      ...(selection.since === undefined ? [] : [eb('created_at', '>=', selection.since)]),
      ...(ids === undefined ? [] : [eb('id', 'in', [...ids])]),
      ...endpointIn(eb, selection.endpoints),
    ]);
}

/**
 * Claims the next abandoned deliveries of a re-send, in id order after `afterId`: a range scan, so any
 * number of them is re-sent a window at a time. Each starts a new retry schedule after the attempts it has.
 * With `selection.ids`, pass the next ids to try (at most `limit`) as `ids`.
 */
export async function claimAbandoned(
  db: Kysely<Database>,
  options: ClaimOptions & { selection: ResendSelection; afterId: number; ids?: readonly number[] | undefined },
): Promise<DeliveryRow[]> {
  if (options.ids?.length === 0) return [];
  return claimRows(db, options.limit, abandonedIn(options.selection, options.afterId, options.ids), (eb) => ({
    status: 'delivering',
    claimed_by: options.runId,
    lease_until: options.leaseUntil,
    completed_at: null,
    // A superseded one sent with --force: the reason it was held back no longer describes it.
    status_reason: null,
    schedule_base: eb.ref('attempts'),
    // A full schedule now, not the one attempt of a deferred delivery claimed when due.
    next_attempt_at: null,
  }));
}

/** The first `limit` abandoned deliveries a re-send selects, by id, without their bodies. */
export async function listAbandoned(
  db: Kysely<Database>,
  selection: ResendSelection,
  limit: number,
): Promise<Array<{ id: number; event_id: string; event_type: string; license_id: number | null }>> {
  let query = db.selectFrom('webhook_deliveries').select(['id', 'event_id', 'event_type', 'license_id']).where('status', '=', 'abandoned');
  if (selection.since !== undefined) query = query.where('created_at', '>=', selection.since);
  if (selection.endpoints !== undefined) query = query.where((eb) => eb.and(endpointIn(eb, selection.endpoints)));
  return query.orderBy('id').limit(limit).execute();
}

/** Abandoned deliveries by endpoint (recorded at or after `since`, of `endpoints` when given): what `--abandoned` could take. */
export async function abandonedByEndpoint(db: Kysely<Database>, selection: Pick<ResendSelection, 'since' | 'endpoints'>): Promise<Map<string, number>> {
  const rows = await db
    .selectFrom('webhook_deliveries')
    .select(['endpoint', sql<number>`count(*)`.as('count')])
    .where(abandonedIn(selection, 0))
    .groupBy('endpoint')
    .execute();
  return new Map(rows.map((row) => [row.endpoint, Number(row.count)]));
}

/** How many abandoned deliveries a re-send would still take after `afterId` (for progress, and what a stop leaves). */
export async function countAbandoned(db: Kysely<Database>, selection: ResendSelection, afterId = 0): Promise<number> {
  const count = async (ids?: readonly number[]) =>
    Number(
      (
        await db
          .selectFrom('webhook_deliveries')
          .select(sql<number>`count(*)`.as('count'))
          .where(abandonedIn(selection, afterId, ids))
          .executeTakeFirstOrThrow()
      ).count,
    );
  if (!selection.ids) return count();
  let total = 0;
  for (const chunk of chunksOf(selection.ids)) total += await count(chunk);
  return total;
}

/** How many deliveries a run (`runId`, when given) would claim now: pending ones, due deferred ones (at `dueAt`) and lapsed claims (for progress, and what a stop leaves). */
export async function countClaimable(db: Kysely<Database>, nowMs: number, runId?: string, endpoints?: readonly string[], dueAt?: string): Promise<number> {
  const query = db
    .selectFrom('webhook_deliveries')
    .select(sql<number>`count(*)`.as('count'))
    .where((eb) =>
      eb.or([
        eb.and([eb('status', '=', 'pending'), ...endpointIn(eb, endpoints)]),
        lapsedClaimOf(runId, nowMs, endpoints)(eb),
        ...(dueAt === undefined ? [] : [dueDeferred(dueAt, endpoints)(eb)]),
      ]),
    );
  return Number((await query.executeTakeFirstOrThrow()).count);
}

/** The runs holding unexpired claims: a later run checks whether they are still alive. */
export async function activeClaimants(db: Kysely<Database>, nowMs: number): Promise<string[]> {
  const rows = await db
    .selectFrom('webhook_deliveries')
    .select('claimed_by')
    .distinct()
    .where('status', '=', 'delivering')
    .where('lease_until', '>=', nowMs)
    .execute();
  return rows.map((row) => row.claimed_by).filter((claimant): claimant is string => claimant !== null);
}

/** The claims one run holds: how many, how many of them lapsed, and the latest lease among them (epoch ms). */
export interface RunClaims {
  runId: string;
  held: number;
  lapsed: number;
  leaseUntil: number;
}

/** Every run holding deliveries now (of these endpoints, when given), with its claims: a finished worker waits for these, `status` reports the gone ones. */
export async function claimsByRun(db: Kysely<Database>, nowMs: number, endpoints?: readonly string[]): Promise<RunClaims[]> {
  const rows = await db
    .selectFrom('webhook_deliveries')
    .select((eb) => [
      'claimed_by',
      eb.fn.countAll<number>().as('held'),
      eb.fn.sum<number>(eb.case().when('lease_until', '<', nowMs).then(1).else(0).end()).as('lapsed'),
      eb.fn.max<number>('lease_until').as('lease_until'),
    ])
    .where('status', '=', 'delivering')
    .$if(endpoints !== undefined, (query) => query.where((eb) => eb.and(endpointIn(eb, endpoints))))
    .groupBy('claimed_by')
    .execute();
  return rows
    .filter((row) => row.claimed_by !== null)
    .map((row) => ({ runId: row.claimed_by!, held: Number(row.held), lapsed: Number(row.lapsed ?? 0), leaseUntil: Number(row.lease_until ?? 0) }));
}

/** Ends the leases of a run known to be dead, so its deliveries are claimed at once instead of after the lease. */
export async function expireClaims(db: Kysely<Database>, runId: string): Promise<number> {
  // Like renewLeases, it scans the delivering rows while other workers claim and finish theirs, and the workers that
  // outlive a killed one all free its claims at once: on MariaDB it was seen chosen as a deadlock victim (a worker
  // then ended with exit 1). Setting a lease to 0 twice is the same as once, so it is tried again.
  const result = await retryOnDeadlock(() =>
    db.updateTable('webhook_deliveries').set({ lease_until: 0 }).where('claimed_by', '=', runId).where('status', '=', 'delivering').executeTakeFirst(),
  );
  return Number(result.numUpdatedRows);
}

/**
 * Keeps a live run's claims from lapsing while it works through them. A lease that already ran out stays
 * out: another run may have seen it lapse, and the run that held it must not act as if it never had. A
 * renewal that reaches the database late never shortens a lease a later confirmation wrote.
 */
export async function renewLeases(db: Kysely<Database>, runId: string, nowMs: number, leaseUntil: number): Promise<void> {
  // It scans the delivering rows while other workers finish theirs: on a server it can be a deadlock victim.
  await retryOnDeadlock(() =>
    db
      .updateTable('webhook_deliveries')
      .set({ lease_until: leaseUntil })
      .where('claimed_by', '=', runId)
      .where('status', '=', 'delivering')
      .where('lease_until', '>=', nowMs)
      .where('lease_until', '<', leaseUntil)
      .execute(),
  );
}

/**
 * Before attempts: which of these deliveries this run still holds with a running lease, renewing those
 * leases in the same statement. A delivery not returned was taken over (or its lease ran out while the
 * run was paused) and must not be sent by this run.
 */
export async function confirmClaims(db: Kysely<Database>, runId: string, ids: readonly number[], nowMs: number, leaseUntil: number): Promise<Set<number>> {
  const held = new Set<number>();
  const stillMine: RowFilter = (eb) => eb.and([eb('claimed_by', '=', runId), eb('status', '=', 'delivering'), eb('lease_until', '>=', nowMs)]);
  for (const chunk of chunksOf(ids)) {
    const rows = await dialectFor(db).updateReturning<Database, { id: number }>(db, {
      table: 'webhook_deliveries',
      select: (on) => on.selectFrom('webhook_deliveries').select('id').where('id', 'in', chunk).where(stillMine),
      update: (on, mine) => on.updateTable('webhook_deliveries').set({ lease_until: leaseUntil }).where('id', 'in', mine).where(stillMine),
      // Waits for a row another session has locked, as a plain UPDATE would.
      skipLocked: false,
      readBack: 'ids',
    });
    for (const row of rows) held.add(row.id);
  }
  return held;
}

/**
 * Ends deliveries this run claimed without sending them: what they say is no longer true of their license.
 * One UPDATE per distinct reason (a window's reasons repeat: "license suspended"), in one transaction; a row
 * another run has taken over meanwhile is left to it.
 */
export async function supersedeDeliveries(db: Kysely<Database>, runId: string, reasons: ReadonlyMap<number, string>, completedAt: string): Promise<void> {
  const byReason = new Map<string, number[]>();
  for (const [id, reason] of reasons) byReason.set(reason, [...(byReason.get(reason) ?? []), id]);
  await retryOnDeadlock(() =>
    inTransaction(db, async (trx) => {
      for (const [reason, ids] of byReason) {
        for (const chunk of chunksOf(ids)) {
          await trx
            .updateTable('webhook_deliveries')
            .set({ status: 'superseded', status_reason: reason, completed_at: completedAt, next_attempt_at: null, claimed_by: null, lease_until: null })
            .where('id', 'in', chunk)
            .where('claimed_by', '=', runId)
            .where('status', '=', 'delivering')
            .execute();
        }
      }
    }),
  );
}

/** Ends a claimed delivery that makes no (further) attempt in this run: deferred by an open circuit, parked for a gone endpoint, or abandoned. */
export async function endClaimed(db: Kysely<Database>, deliveryId: number, runId: string, end: DeliveryEnd): Promise<void> {
  // One row, but its status index changes while other workers claim: a deadlock victim is tried again (the same
  // end written twice is the same end).
  await retryOnDeadlock(() =>
    db
      .updateTable('webhook_deliveries')
      .set({
        status: end.status,
        completed_at: end.completedAt,
        next_attempt_at: end.nextAttemptAt ?? null,
        status_reason: end.reason ?? null,
        claimed_by: null,
        lease_until: null,
      })
      .where('id', '=', deliveryId)
      .where('claimed_by', '=', runId)
      .execute(),
  );
}

/** Hands a claim back: the run is stopping before this delivery's next attempt, or could not confirm its claim in time. A deferred one claimed when due goes back to deferred (still due), any other to pending. */
export async function releaseDelivery(db: Kysely<Database>, deliveryId: number, runId: string): Promise<void> {
  // As endClaimed: a deadlock victim is tried again, and handing a claim back twice is handing it back once.
  await retryOnDeadlock(() =>
    db
      .updateTable('webhook_deliveries')
      .set({ status: sql<DeliveryStatus>`case when next_attempt_at is null then 'pending' else 'deferred' end`, claimed_by: null, lease_until: null })
      .where('id', '=', deliveryId)
      .where('claimed_by', '=', runId)
      .execute(),
  );
}
