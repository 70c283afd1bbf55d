import { sql, type Expression, type ExpressionBuilder, type Kysely, type Selectable, type SqlBool } from 'kysely';
import type { Database, DeliveryStatus, WebhookAttemptsTable, WebhookDeliveriesTable } from './database.table.js';
import { dialectOf, retryOnDeadlock, type SqlDialect } from './dialect.js';
import { writeStatusChanges, type StatusChangeCounts, type StatusChanges } from './licenses.repository.js';

/** Writes the status changes where the licenses' statuses live (ours, or the derived table beside Botble's). */
export type StatusWriter = (trx: Kysely<Database>, changes: StatusChanges, now: string) => Promise<StatusChangeCounts>;

export type DeliveryRow = Selectable<WebhookDeliveriesTable>;
export type AttemptRow = Selectable<WebhookAttemptsTable>;

export interface NewDelivery {
  event_id: string;
  event_key: string;
  event_type: string;
  license_id: number | null;
  body: string;
}

// SQLite allows 32766 bound parameters; stay well below it.
const CHUNK = 500;

/** The event keys already recorded for these licenses (sent, pending or abandoned), by the license_id index. */
export async function recordedEventKeys(db: Kysely<Database>, licenseIds: readonly number[]): Promise<string[]> {
  const keys: string[] = [];
  const ids = [...new Set(licenseIds)];
  for (let index = 0; index < ids.length; index += CHUNK) {
    const rows = await db
      .selectFrom('webhook_deliveries')
      .select('event_key')
      .where('license_id', 'in', ids.slice(index, index + CHUNK))
      .execute();
    for (const row of rows) keys.push(row.event_key);
  }
  return keys;
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
  setStatuses: StatusWriter = writeStatusChanges,
): Promise<{ inserted: number; expired: number; reactivated: number }> {
  if (deliveries.length === 0 && changes.expired.length === 0 && changes.reactivated.length === 0) return { inserted: 0, expired: 0, reactivated: 0 };
  const dialect = dialectOf(db);
  return retryOnDeadlock(() => db.transaction().execute(async (trx) => {
    let inserted = 0;
    for (let index = 0; index < deliveries.length; index += CHUNK / 10) {
      const rows = deliveries.slice(index, index + CHUNK / 10).map((delivery) => ({ ...delivery, status: 'pending' as const, created_at: now }));
      const insert = trx.insertInto('webhook_deliveries').values(rows);
      // MySQL has no ON CONFLICT: INSERT IGNORE skips the rows whose event_key exists.
      const result = await (dialect === 'mysql' ? insert.ignore() : insert.onConflict((conflict) => conflict.column('event_key').doNothing())).executeTakeFirst();
      inserted += Number(result.numInsertedOrUpdatedRows ?? 0n);
    }
    // Through the license source: where a license's status lives is its business, not the event log's.
    const { expired, reactivated } = await setStatuses(trx, changes, now);
    return { inserted, expired, reactivated };
  }));
}

export interface ClaimOptions {
  runId: string;
  limit: number;
  /** Epoch ms; the lease of a claim runs out then unless renewed. */
  leaseUntil: number;
  nowMs: number;
  /** Claim only these ids (for `deliveries retry`); otherwise every pending or lapsed one. */
  ids?: readonly number[];
}

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

async function claimWhere(
  db: Kysely<Database>,
  options: ClaimOptions,
  limit: number,
  filter: (eb: ExpressionBuilder<Database, 'webhook_deliveries'>) => Expression<SqlBool>,
): Promise<DeliveryRow[]> {
  const candidates = (on: Kysely<Database>) => {
    const query = on.selectFrom('webhook_deliveries').select('id').where(filter).orderBy('id').limit(limit);
    return options.ids ? query.where('id', 'in', options.ids.length > 0 ? [...options.ids] : [-1]) : query;
  };
  const claim = { status: 'delivering' as const, claimed_by: options.runId, lease_until: options.leaseUntil };
  const dialect = dialectOf(db);
  if (dialect === 'sqlite') {
    return db.updateTable('webhook_deliveries').set(claim).where('id', 'in', candidates(db)).returningAll().execute();
  }
  // Servers: lock the candidates and pass over rows another worker holds locked at this moment.
  if (dialect === 'postgres') {
    return db.updateTable('webhook_deliveries').set(claim).where('id', 'in', candidates(db).forUpdate().skipLocked()).returningAll().execute();
  }
  // MySQL has no UPDATE … RETURNING and cannot update a table its own subquery reads: lock, update, read back.
  return retryOnDeadlock(() => db.transaction().execute(async (trx) => {
    const ids = (await candidates(trx).forUpdate().skipLocked().execute()).map((row) => row.id);
    if (ids.length === 0) return [];
    await trx.updateTable('webhook_deliveries').set(claim).where('id', 'in', ids).execute();
    return trx.selectFrom('webhook_deliveries').selectAll().where('id', 'in', ids).orderBy('id').execute();
  }));
}

/** How many deliveries a run would claim now: pending ones and lapsed claims (for progress). */
export async function countClaimable(db: Kysely<Database>, nowMs: number, ids?: readonly number[]): Promise<number> {
  let query = db
    .selectFrom('webhook_deliveries')
    .select(sql<number>`count(*)`.as('count'))
    .where((eb) => eb.or([eb('status', '=', 'pending'), eb.and([eb('status', '=', 'delivering'), eb('lease_until', '<', nowMs)])]));
  if (ids) query = query.where('id', 'in', ids.length > 0 ? [...ids] : [-1]);
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

/** Keeps a live run's claims from lapsing while it works through them. */
export async function renewLeases(db: Kysely<Database>, runId: string, leaseUntil: number): Promise<void> {
  await db
    .updateTable('webhook_deliveries')
    .set({ lease_until: leaseUntil })
    .where('claimed_by', '=', runId)
    .where('status', '=', 'delivering')
    .execute();
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
 * Writes a batch of attempts in one transaction: the attempt rows, then each delivery's summary columns
 * (`attempts`, `last_status_code`, `last_error`) and, for final attempts, its status. A final status is
 * written only while this run still holds the claim.
 */
export async function recordAttempts(db: Kysely<Database>, runId: string, writes: readonly AttemptWrite[]): Promise<void> {
  if (writes.length === 0) return;
  const dialect = dialectOf(db);
  await retryOnDeadlock(() => db.transaction().execute(async (trx) => {
    for (let index = 0; index < writes.length; index += 100) {
      const chunk = writes.slice(index, index + 100);
      await trx
        .insertInto('webhook_attempts')
        .values(chunk.map((write) => ({ delivery_id: write.deliveryId, ...write.attempt })))
        .execute();
      await UPDATE_ATTEMPT_SUMMARIES[dialect](trx, runId, chunk);
    }
  }));
}

// One statement per chunk of deliveries, in each dialect's form of "update from a list of values".
const UPDATE_ATTEMPT_SUMMARIES: Record<SqlDialect, (trx: Kysely<Database>, runId: string, chunk: readonly AttemptWrite[]) => Promise<void>> = {
  async sqlite(trx, runId, chunk) {
    const rows = chunk.map(
      (write) =>
        sql`(${write.deliveryId}, ${write.attempt.attempt}, ${write.attempt.status_code}, ${write.attempt.error}, ${write.final?.status ?? null}, ${write.final?.completedAt ?? null})`,
    );
    // UPDATE … FROM (VALUES …): one statement for the chunk instead of one per delivery.
    await sql`
      update ${sql.table('webhook_deliveries')} as d set
        attempts = v.column2,
        last_status_code = v.column3,
        last_error = v.column4,
        status = case when v.column5 is not null and d.claimed_by = ${runId} then v.column5 else d.status end,
        completed_at = case when v.column5 is not null and d.claimed_by = ${runId} then v.column6 else d.completed_at end,
        lease_until = case when v.column5 is not null and d.claimed_by = ${runId} then null else d.lease_until end,
        claimed_by = case when v.column5 is not null and d.claimed_by = ${runId} then null else d.claimed_by end
      from (values ${sql.join(rows)}) as v
      where d.id = v.column1`.execute(trx);
  },
  async postgres(trx, runId, chunk) {
    // Parameters in VALUES arrive as text: the first row carries the casts that type each column.
    const rows = chunk.map((write, row) => {
      const cast = (value: unknown, type: string) => (row === 0 ? sql`cast(${value} as ${sql.raw(type)})` : sql`${value}`);
      return sql`(${cast(write.deliveryId, 'integer')}, ${cast(write.attempt.attempt, 'integer')}, ${cast(write.attempt.status_code, 'integer')}, ${cast(write.attempt.error, 'text')}, ${cast(write.final?.status ?? null, 'text')}, ${cast(write.final?.completedAt ?? null, 'text')})`;
    });
    // Every right-hand side reads the row as it was before the statement, so the claim test is the same for each column.
    await sql`
      update ${sql.table('webhook_deliveries')} as d set
        attempts = v.attempts,
        last_status_code = v.status_code,
        last_error = v.error,
        status = case when v.final is not null and d.claimed_by = ${runId} then v.final else d.status end,
        completed_at = case when v.final is not null and d.claimed_by = ${runId} then v.completed_at else d.completed_at end,
        lease_until = case when v.final is not null and d.claimed_by = ${runId} then null else d.lease_until end,
        claimed_by = case when v.final is not null and d.claimed_by = ${runId} then null else d.claimed_by end
      from (values ${sql.join(rows)}) as v (id, attempts, status_code, error, final, completed_at)
      where d.id = v.id`.execute(trx);
  },
  async mysql(trx, runId, chunk) {
    // MySQL has no UPDATE … FROM, and an UPDATE … JOIN on a derived table scans (and locks) rows of other
    // workers' claims: CASE over the ids, with `id in (…)` so only these rows are locked, in id order.
    // The final status clears claimed_by, which its own condition reads, so it is a second statement.
    const sorted = [...chunk].sort((a, b) => a.deliveryId - b.deliveryId);
    const caseOf = <T>(writes: readonly AttemptWrite[], value: (write: AttemptWrite) => T) =>
      sql<T>`case id ${sql.join(writes.map((write) => sql`when ${write.deliveryId} then ${value(write)}`), sql` `)} end`;
    await trx
      .updateTable('webhook_deliveries')
      .set({
        attempts: caseOf(sorted, (write) => write.attempt.attempt),
        last_status_code: caseOf(sorted, (write) => write.attempt.status_code),
        last_error: caseOf(sorted, (write) => write.attempt.error),
      })
      .where('id', 'in', sorted.map((write) => write.deliveryId))
      .execute();
    const finals = sorted.filter((write) => write.final);
    if (finals.length === 0) return;
    await trx
      .updateTable('webhook_deliveries')
      .set({
        status: caseOf<DeliveryStatus>(finals, (write) => write.final!.status),
        completed_at: caseOf(finals, (write) => write.final!.completedAt),
        lease_until: null,
        claimed_by: null,
      })
      .where('id', 'in', finals.map((write) => write.deliveryId))
      .where('claimed_by', '=', runId)
      .execute();
  },
};

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

export async function listDeliveries(db: Kysely<Database>, filter: DeliveryFilter = {}): Promise<DeliveryListItem[]> {
  let query = db
    .selectFrom('webhook_deliveries as d')
    .leftJoin('licenses as l', 'l.id', 'd.license_id')
    .selectAll('d')
    .select('l.license_code');
  if (filter.status) query = query.where('d.status', '=', filter.status);
  if (filter.eventType) query = query.where('d.event_type', '=', filter.eventType);
  if (filter.licenseCode) query = query.where('l.license_code', '=', filter.licenseCode);
  if (filter.since) query = query.where('d.created_at', '>=', filter.since);
  query = query.orderBy('d.id', 'desc');
  return (filter.limit === undefined ? query : query.limit(filter.limit)).execute();
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

/** Puts abandoned deliveries back to pending so the normal claim path re-sends them with the same event_id and body. */
export async function requeueDeliveries(db: Kysely<Database>, ids: readonly number[]): Promise<number> {
  if (ids.length === 0) return 0;
  const result = await db
    .updateTable('webhook_deliveries')
    .set({ status: 'pending', completed_at: null })
    .where('id', 'in', [...ids])
    .where('status', '=', 'abandoned')
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}
