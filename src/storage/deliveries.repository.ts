import { sql, type Expression, type ExpressionBuilder, type Kysely, type Selectable, type SqlBool } from 'kysely';
import { inTransaction } from './transaction.js';
import type { Database, DeliveryStatus, WebhookAttemptsTable, WebhookDeliveriesTable } from './database.table.js';

export type DeliveryRow = Selectable<WebhookDeliveriesTable>;
export type AttemptRow = Selectable<WebhookAttemptsTable>;

export interface NewDelivery {
  event_id: string;
  event_key: string;
  event_type: string;
  license_id: number | null;
  body: string;
}

// Bound parameters per statement stay under 999, SQLite's limit before 3.32 and far below PostgreSQL's and
// MySQL's 65,535: any list longer than that goes in chunks.
const MAX_PARAMETERS = 999;
// Ids or keys in one `IN (…)` list.
const IDS_PER_STATEMENT = 500;
// webhook_deliveries rows in one multi-row INSERT: 7 bound columns each.
const DELIVERY_ROWS_PER_INSERT = Math.floor(MAX_PARAMETERS / 7);
// Attempts per write: 6 bound columns in the INSERT, 6 more in the UPDATE's VALUES list.
const ATTEMPTS_PER_STATEMENT = Math.floor((MAX_PARAMETERS - 10) / 6);

/** The event keys already recorded for these licenses (sent, pending or abandoned), by the license_id index. */
export async function recordedEventKeys(db: Kysely<Database>, licenseIds: readonly number[]): Promise<string[]> {
  const keys: string[] = [];
  const ids = [...new Set(licenseIds)];
  for (let index = 0; index < ids.length; index += IDS_PER_STATEMENT) {
    const rows = await db
      .selectFrom('webhook_deliveries')
      .select('event_key')
      .where('license_id', 'in', ids.slice(index, index + IDS_PER_STATEMENT))
      .execute();
    for (const row of rows) keys.push(row.event_key);
  }
  return keys;
}

/** Status changes the rules decided, written with the events so a run that dies leaves neither. */
interface StatusChanges {
  /** Licenses that passed their expiry: `active` -> `expired`. */
  expired: readonly number[];
  /** Renewed licenses: `expired` -> `active`. */
  reactivated: readonly number[];
}

/**
 * Records events as `pending` and writes the status changes, in one transaction. An event another run
 * recorded first is skipped (the unique event_key), so overlapping runs record each event once.
 * Returns how many delivery rows and license status changes this call made (another run may have made the rest).
 */
export async function recordEvents(
  db: Kysely<Database>,
  deliveries: readonly NewDelivery[],
  changes: StatusChanges,
  now: string,
): Promise<{ inserted: number; expired: number; reactivated: number }> {
  if (deliveries.length === 0 && changes.expired.length === 0 && changes.reactivated.length === 0) return { inserted: 0, expired: 0, reactivated: 0 };
  return inTransaction(db, async (trx) => {
    let inserted = 0;
    for (let index = 0; index < deliveries.length; index += DELIVERY_ROWS_PER_INSERT) {
      const rows = deliveries.slice(index, index + DELIVERY_ROWS_PER_INSERT).map((delivery) => ({ ...delivery, status: 'pending' as const, created_at: now }));
      const result = await trx
        .insertInto('webhook_deliveries')
        .values(rows)
        .onConflict((conflict) => conflict.column('event_key').doNothing())
        .executeTakeFirst();
      inserted += Number(result.numInsertedOrUpdatedRows ?? 0n);
    }
    const setStatus = async (ids: readonly number[], from: string, to: string) => {
      let changed = 0;
      for (let index = 0; index < ids.length; index += IDS_PER_STATEMENT) {
        const result = await trx
          .updateTable('licenses')
          .set({ status: to, updated_at: now })
          .where('id', 'in', ids.slice(index, index + IDS_PER_STATEMENT))
          .where('status', '=', from)
          .executeTakeFirst();
        changed += Number(result.numUpdatedRows);
      }
      return changed;
    };
    const expired = await setStatus(changes.expired, 'active', 'expired');
    const reactivated = await setStatus(changes.reactivated, 'expired', 'active');
    return { inserted, expired, reactivated };
  });
}

export interface ClaimOptions {
  runId: string;
  limit: number;
  /** Epoch ms; the lease of a claim runs out then unless renewed. */
  leaseUntil: number;
  nowMs: number;
}

type RowFilter = (eb: ExpressionBuilder<Database, 'webhook_deliveries'>) => Expression<SqlBool>;

/**
 * Takes up to `limit` deliveries that are pending, or whose claim lapsed (its run died), in one statement:
 * SQLite's write lock makes it atomic, so two runs never hold the same delivery.
 */
export async function claimDeliveries(db: Kysely<Database>, options: ClaimOptions): Promise<DeliveryRow[]> {
  // Two index range scans on (status, id) rather than one OR, which would scan the whole table per claim.
  const lapsed = await claimWhere(db, options, options.limit, (eb) => eb.and([eb('status', '=', 'delivering'), eb('lease_until', '<', options.nowMs)]));
  const room = options.limit - lapsed.length;
  const pending = room > 0 ? await claimWhere(db, options, room, (eb) => eb('status', '=', 'pending')) : [];
  return [...lapsed, ...pending];
}

async function claimWhere(db: Kysely<Database>, options: ClaimOptions, limit: number, filter: RowFilter): Promise<DeliveryRow[]> {
  const candidates = db.selectFrom('webhook_deliveries').select('id').where(filter).orderBy('id').limit(limit);
  return db
    .updateTable('webhook_deliveries')
    .set({ status: 'delivering', claimed_by: options.runId, lease_until: options.leaseUntil })
    .where('id', 'in', candidates)
    .returningAll()
    .execute();
}

/** Which abandoned deliveries `deliveries retry` re-sends: all (optionally recorded since a time), or these ids. */
export interface ResendSelection {
  since?: string;
  ids?: readonly number[];
}

function abandonedIn(selection: ResendSelection, afterId: number, ids?: readonly number[]): RowFilter {
  return (eb) =>
    eb.and([
      eb('status', '=', 'abandoned'),
      eb('id', '>', afterId),
      ...(selection.since === undefined ? [] : [eb('created_at', '>=', selection.since)]),
      ...(ids === undefined ? [] : [eb('id', 'in', [...ids])]),
    ]);
}

/**
 * Claims the next abandoned deliveries of a re-send, in id order after `afterId`: a range scan, so any
 * number of them is re-sent a window at a time. Each starts a new retry schedule after the attempts it has.
 * With `selection.ids`, pass the next ids to try (at most `limit`) as `ids`.
 */
export async function claimAbandoned(
  db: Kysely<Database>,
  options: ClaimOptions & { selection: ResendSelection; afterId: number; ids?: readonly number[] },
): Promise<DeliveryRow[]> {
  if (options.ids?.length === 0) return [];
  const candidates = db
    .selectFrom('webhook_deliveries')
    .select('id')
    .where(abandonedIn(options.selection, options.afterId, options.ids))
    .orderBy('id')
    .limit(options.limit);
  return db
    .updateTable('webhook_deliveries')
    .set((eb) => ({
      status: 'delivering',
      claimed_by: options.runId,
      lease_until: options.leaseUntil,
      completed_at: null,
      schedule_base: eb.ref('attempts'),
    }))
    .where('id', 'in', candidates)
    .returningAll()
    .execute();
}

/** The first `limit` abandoned deliveries a re-send selects, by id, without their bodies. */
export async function listAbandoned(
  db: Kysely<Database>,
  selection: ResendSelection,
  limit: number,
): Promise<Array<{ id: number; event_id: string; event_type: string; license_code: string | null }>> {
  let query = db
    .selectFrom('webhook_deliveries as d')
    .leftJoin('licenses as l', 'l.id', 'd.license_id')
    .select(['d.id', 'd.event_id', 'd.event_type', 'l.license_code'])
    .where('d.status', '=', 'abandoned');
  if (selection.since !== undefined) query = query.where('d.created_at', '>=', selection.since);
  return query.orderBy('d.id').limit(limit).execute();
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
  for (let index = 0; index < selection.ids.length; index += IDS_PER_STATEMENT) total += await count(selection.ids.slice(index, index + IDS_PER_STATEMENT));
  return total;
}

/** How many deliveries a run would claim now: pending ones and lapsed claims (for progress, and what a stop leaves). */
export async function countClaimable(db: Kysely<Database>, nowMs: number): Promise<number> {
  const query = db
    .selectFrom('webhook_deliveries')
    .select(sql<number>`count(*)`.as('count'))
    .where((eb) => eb.or([eb('status', '=', 'pending'), eb.and([eb('status', '=', 'delivering'), eb('lease_until', '<', nowMs)])]));
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

/** Ends the leases of a run known to be dead, so its deliveries are claimed at once instead of after the lease. */
export async function expireClaims(db: Kysely<Database>, runId: string): Promise<number> {
  const result = await db
    .updateTable('webhook_deliveries')
    .set({ lease_until: 0 })
    .where('claimed_by', '=', runId)
    .where('status', '=', 'delivering')
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/**
 * Keeps a live run's claims from lapsing while it works through them. A lease that already ran out stays
 * out: another run may have seen it lapse, and the run that held it must not act as if it never had.
 */
export async function renewLeases(db: Kysely<Database>, runId: string, nowMs: number, leaseUntil: number): Promise<void> {
  await db
    .updateTable('webhook_deliveries')
    .set({ lease_until: leaseUntil })
    .where('claimed_by', '=', runId)
    .where('status', '=', 'delivering')
    .where('lease_until', '>=', nowMs)
    .execute();
}

/**
 * Before attempts: which of these deliveries this run still holds with a running lease, renewing those
 * leases in the same statement. A delivery not returned was taken over (or its lease ran out while the
 * run was paused) and must not be sent by this run.
 */
export async function confirmClaims(db: Kysely<Database>, runId: string, ids: readonly number[], nowMs: number, leaseUntil: number): Promise<Set<number>> {
  const held = new Set<number>();
  for (let index = 0; index < ids.length; index += IDS_PER_STATEMENT) {
    const rows = await db
      .updateTable('webhook_deliveries')
      .set({ lease_until: leaseUntil })
      .where('id', 'in', ids.slice(index, index + IDS_PER_STATEMENT))
      .where('claimed_by', '=', runId)
      .where('status', '=', 'delivering')
      .where('lease_until', '>=', nowMs)
      .returning('id')
      .execute();
    for (const row of rows) held.add(row.id);
  }
  return held;
}

interface AttemptInput {
  attempt: number;
  started_at: string;
  duration_ms: number;
  status_code: number | null;
  error: string | null;
}

/** One attempt of one delivery, and, on its last attempt, how the delivery ends. */
export interface AttemptWrite {
  deliveryId: number;
  attempt: AttemptInput;
  /** How the delivery ended, when this was its last attempt. */
  final?: { status: Extract<DeliveryStatus, 'delivered' | 'abandoned'>; completedAt: string };
}

/**
 * Writes a batch of attempts in one transaction: the attempt rows (every request that went out is history),
 * then each delivery's summary columns (`attempts`, `last_status_code`, `last_error`) and, for final
 * attempts, its status. The summary and status are written only while this run still holds the claim.
 */
export async function recordAttempts(db: Kysely<Database>, runId: string, writes: readonly AttemptWrite[]): Promise<void> {
  if (writes.length === 0) return;
  await inTransaction(db, async (trx) => {
    for (let index = 0; index < writes.length; index += ATTEMPTS_PER_STATEMENT) {
      const chunk = writes.slice(index, index + ATTEMPTS_PER_STATEMENT);
      await trx
        .insertInto('webhook_attempts')
        .values(chunk.map((write) => ({ delivery_id: write.deliveryId, ...write.attempt })))
        .execute();
      const rows = chunk.map(
        (write) =>
          sql`(${write.deliveryId}, ${write.attempt.attempt}, ${write.attempt.status_code}, ${write.attempt.error}, ${write.final?.status ?? null}, ${write.final?.completedAt ?? null})`,
      );
      // UPDATE … FROM (VALUES …): one statement for the chunk instead of one per delivery.
      await sql`
        update webhook_deliveries as d set
          attempts = v.column2,
          last_status_code = v.column3,
          last_error = v.column4,
          status = coalesce(v.column5, d.status),
          completed_at = coalesce(v.column6, d.completed_at),
          lease_until = case when v.column5 is not null then null else d.lease_until end,
          claimed_by = case when v.column5 is not null then null else d.claimed_by end
        from (values ${sql.join(rows)}) as v
        where d.id = v.column1 and d.claimed_by = ${runId}`.execute(trx);
    }
  });
}

/** Ends a delivery that has no attempt left in its schedule (a shorter `retryDelaysMs` since it began). */
export async function abandonSpent(db: Kysely<Database>, deliveryId: number, runId: string, completedAt: string): Promise<void> {
  await db
    .updateTable('webhook_deliveries')
    .set({ status: 'abandoned', completed_at: completedAt, claimed_by: null, lease_until: null })
    .where('id', '=', deliveryId)
    .where('claimed_by', '=', runId)
    .execute();
}

/** Hands a claim back as pending: the run is stopping before this delivery's next attempt. */
export async function releaseDelivery(db: Kysely<Database>, deliveryId: number, runId: string): Promise<void> {
  await db
    .updateTable('webhook_deliveries')
    .set({ status: 'pending', claimed_by: null, lease_until: null })
    .where('id', '=', deliveryId)
    .where('claimed_by', '=', runId)
    .execute();
}

export interface DeliveryFilter {
  status?: DeliveryStatus;
  eventType?: string;
  licenseCode?: string;
  since?: string;
  limit?: number;
}

export interface DeliveryListItem extends DeliveryRow {
  license_code: string | null;
}

function filteredDeliveries(db: Kysely<Database>, filter: DeliveryFilter) {
  let query = db.selectFrom('webhook_deliveries as d').leftJoin('licenses as l', 'l.id', 'd.license_id');
  if (filter.status) query = query.where('d.status', '=', filter.status);
  if (filter.eventType) query = query.where('d.event_type', '=', filter.eventType);
  if (filter.licenseCode) query = query.where('l.license_code', '=', filter.licenseCode);
  if (filter.since) query = query.where('d.created_at', '>=', filter.since);
  return query;
}

export async function listDeliveries(db: Kysely<Database>, filter: DeliveryFilter = {}): Promise<DeliveryListItem[]> {
  const query = filteredDeliveries(db, filter).selectAll('d').select('l.license_code').orderBy('d.id', 'desc');
  return (filter.limit === undefined ? query : query.limit(filter.limit)).execute();
}

/** How many deliveries match the filter, whatever the limit (so a cut-off list can say it is one). */
export async function countDeliveries(db: Kysely<Database>, filter: DeliveryFilter = {}): Promise<number> {
  const row = await filteredDeliveries(db, filter).select(db.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
  return Number(row.count);
}

/** The license code of each delivery id (deliveries of deleted licenses are absent). */
export async function licenseCodesOfDeliveries(db: Kysely<Database>, ids: readonly number[]): Promise<Map<number, string>> {
  const codes = new Map<number, string>();
  // Bounded IN lists: SQLite and the server databases all cap bound parameters.
  for (let start = 0; start < ids.length; start += 500) {
    const rows = await db
      .selectFrom('webhook_deliveries as d')
      .innerJoin('licenses as l', 'l.id', 'd.license_id')
      .select(['d.id', 'l.license_code'])
      .where('d.id', 'in', ids.slice(start, start + 500))
      .execute();
    for (const row of rows) codes.set(row.id, row.license_code);
  }
  return codes;
}

export async function findDelivery(db: Kysely<Database>, id: number): Promise<{ delivery: DeliveryListItem; attempts: AttemptRow[] } | undefined> {
  const delivery = await db
    .selectFrom('webhook_deliveries as d')
    .leftJoin('licenses as l', 'l.id', 'd.license_id')
    .selectAll('d')
    .select('l.license_code')
    .where('d.id', '=', id)
    .executeTakeFirst();
  if (!delivery) return undefined;
  const attempts = await db.selectFrom('webhook_attempts').selectAll().where('delivery_id', '=', id).orderBy('attempt').execute();
  return { delivery, attempts };
}

/** Row counts per status. */
export async function deliveryCounts(db: Kysely<Database>): Promise<Partial<Record<DeliveryStatus, number>>> {
  const rows = await db.selectFrom('webhook_deliveries').select(['status', db.fn.countAll<number>().as('count')]).groupBy('status').execute();
  return Object.fromEntries(rows.map((row) => [row.status, Number(row.count)]));
}
