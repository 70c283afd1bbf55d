import { sql, type Expression, type ExpressionBuilder, type Kysely, type Selectable, type SqlBool } from 'kysely';
import { EXIT, ExitError } from '../errors.js';
import { inTransaction } from './transaction.js';
import type { Database, DeliveryStatus, WebhookAttemptsTable, WebhookDeliveriesTable } from './database.table.js';
import { dialectOf, errorCode, messageOf, retryOnDeadlock, tablePrefixOf, type SqlDialect } from './dialect.js';
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
  /** The instant the event is about (see WebhookDeliveriesTable). */
  event_instant?: string | null;
  body: string;
  /** The endpoint it goes to; `default` when left out. */
  endpoint?: string;
  /** Recorded as already `delivered` by another sender (`--mark-sent-through`), with why in last_error; pending otherwise. */
  status?: Extract<DeliveryStatus, 'delivered'>;
  completed_at?: string;
  last_error?: string;
}

// Bound parameters per statement stay under 999, SQLite's limit before 3.32 and far below PostgreSQL's and
// MySQL's 65,535: any list longer than that goes in chunks.
const MAX_PARAMETERS = 999;
// Ids or keys in one `IN (…)` list.
export const IDS_PER_STATEMENT = 500;
// webhook_deliveries rows in one multi-row INSERT: at most 11 bound columns each (10 for a pending delivery).
const DELIVERY_ROWS_PER_INSERT = Math.floor(MAX_PARAMETERS / 11);
// Attempts per write: 6 bound columns in the INSERT, 6 more in the UPDATE's VALUES list.
const ATTEMPTS_PER_STATEMENT = Math.floor((MAX_PARAMETERS - 10) / 8);

/** The event keys already recorded for these licenses (sent, pending or abandoned), with their instants, by the license_id index. */
export async function recordedEventKeys(
  db: Kysely<Database>,
  licenseIds: readonly number[],
): Promise<Array<{ event_key: string; event_instant: string | null }>> {
  const keys: Array<{ event_key: string; event_instant: string | null }> = [];
  const ids = [...new Set(licenseIds)];
  for (let index = 0; index < ids.length; index += IDS_PER_STATEMENT) {
    const rows = await db
      .selectFrom('webhook_deliveries')
      .select(['event_key', 'event_instant'])
      .where('license_id', 'in', ids.slice(index, index + IDS_PER_STATEMENT))
      .execute();
    keys.push(...rows);
  }
  return keys;
}

/**
 * New deliveries, made a slice at a time as they are inserted: a large run never holds all its bodies at
 * once. A slice may be asked for again (a transaction retried after a deadlock).
 */
export interface NewDeliveries {
  count: number;
  slice(start: number, end: number): NewDelivery[];
  /** Those of them still not recorded, asked after this run waited for another to record (see waitForRecordingTurn). */
  stillNew?(trx: Kysely<Database>): Promise<NewDeliveries>;
}

/**
 * Records events as `pending` (or as `delivered` by another sender, when marked so) and writes the status changes, in one transaction. An event another run
 * recorded first is skipped (the unique event_key), so overlapping runs record each event once.
 * Returns how many delivery rows and license status changes this call made (another run may have made the rest).
 */
export async function recordEvents(
  db: Kysely<Database>,
  deliveries: NewDeliveries,
  changes: StatusChanges,
  now: string,
  setStatuses: StatusWriter = writeStatusChanges,
): Promise<{ inserted: number; fannedOut: number; expired: number; reactivated: number }> {
  if (deliveries.count === 0 && changes.expired.length === 0 && changes.reactivated.length === 0)
    return { inserted: 0, fannedOut: 0, expired: 0, reactivated: 0 };
  const dialect = dialectOf(db);
  return retryOnDeadlock(() =>
    inTransaction(db, async (trx) => {
      const waited = await waitForRecordingTurn(trx);
      const todo = waited && deliveries.stillNew ? await deliveries.stillNew(trx) : deliveries;
      let inserted = 0;
      let fannedOut = 0;
      for (let index = 0; index < todo.count; index += DELIVERY_ROWS_PER_INSERT) {
        const slice = todo.slice(index, index + DELIVERY_ROWS_PER_INSERT).map((delivery) => ({ status: 'pending' as const, ...delivery, created_at: now }));
        // `default`'s rows (one per event: what a run reports as recorded) and the other endpoints' rows go in
        // INSERTs of their own, each within the parameter limit.
        inserted += await insertRows(
          trx,
          dialect,
          slice.filter((row) => row.endpoint === undefined),
        );
        fannedOut += await insertRows(
          trx,
          dialect,
          slice.filter((row) => row.endpoint !== undefined),
        );
      }
      // Through the license source: where a license's status lives is its business, not the event log's.
      const { expired, reactivated } = await setStatuses(trx, changes, now);
      return { inserted, fannedOut, expired, reactivated };
    }),
  );
}

async function insertRows(
  trx: Kysely<Database>,
  dialect: SqlDialect,
  slice: Array<Omit<NewDelivery, 'status'> & { status: DeliveryStatus; created_at: string }>,
): Promise<number> {
  // The caller's slice is within DELIVERY_ROWS_PER_INSERT already; long bodies may split it further.
  let inserted = 0;
  for (const rows of byBodyBytes(slice)) inserted += await insertNew(trx, dialect, rows);
  return inserted;
}

// Body bytes in one INSERT: far below the smallest max_allowed_packet in use (MySQL 5.7's 4 MiB), however long the bodies.
const BODY_BYTES_PER_INSERT = 1024 * 1024;

/** Rows cut into INSERTs of at most BODY_BYTES_PER_INSERT body bytes (a body longer than that goes alone). */
function byBodyBytes<T extends { body: string }>(rows: T[]): T[][] {
  const chunks: T[][] = [];
  let bytes = 0;
  for (const row of rows) {
    const size = Buffer.byteLength(row.body);
    const last = chunks[chunks.length - 1];
    if (last && bytes + size <= BODY_BYTES_PER_INSERT) {
      last.push(row);
      bytes += size;
    } else {
      chunks.push([row]);
      bytes = size;
    }
  }
  return chunks;
}

/**
 * Inserts the rows whose event_key is not recorded yet and returns how many it inserted. MySQL has no ON
 * CONFLICT: ON DUPLICATE KEY UPDATE with a no-op assignment skips an existing key, and, unlike INSERT IGNORE,
 * leaves every other error an error (a value too long for its column is refused, never cut). Its row count
 * cannot tell an insert from a skip, so the event ids (new for every event) are counted back.
 */
async function insertNew(
  trx: Kysely<Database>,
  dialect: SqlDialect,
  rows: Array<Omit<NewDelivery, 'status'> & { status: DeliveryStatus; created_at: string }>,
): Promise<number> {
  const insert = trx.insertInto('webhook_deliveries').values(rows);
  try {
    if (dialect !== 'mysql') {
      const result = await insert.onConflict((conflict) => conflict.columns(['event_key', 'endpoint']).doNothing()).executeTakeFirst();
      return Number(result.numInsertedOrUpdatedRows ?? 0n);
    }
    await insert.onDuplicateKeyUpdate({ event_key: (eb) => eb.ref('event_key') }).execute();
    // One event id has a row per endpoint, possibly in another INSERT of this run: its pairs are counted.
    const mine = new Set(rows.map((row) => `${row.endpoint ?? 'default'} ${row.event_id}`));
    const found = await trx
      .selectFrom('webhook_deliveries')
      .select(['event_id', 'endpoint'])
      .where('event_id', 'in', [...new Set(rows.map((row) => row.event_id))])
      .execute();
    return found.filter((row) => mine.has(`${row.endpoint} ${row.event_id}`)).length;
  } catch (error) {
    throw tooLongToStore(trx, error, rows) ?? error;
  }
}

// MySQL's "Data too long for column 'body' at row 2" (ER_DATA_TOO_LONG), with strict sessions; a statement over max_allowed_packet.
const TOO_LONG = /^Data too long for column '([^']+)' at row (\d+)/;

/** A clear refusal naming the license and field when a row did not fit its column; undefined for any other error. */
function tooLongToStore(trx: Kysely<Database>, error: unknown, rows: ReadonlyArray<Omit<NewDelivery, 'status'>>): ExitError | undefined {
  const code = errorCode(error);
  if (code !== 'ER_DATA_TOO_LONG' && code !== 'ER_NET_PACKET_TOO_LARGE') return undefined;
  const match = TOO_LONG.exec((error as { sqlMessage?: string }).sqlMessage ?? messageOf(error));
  const field = match?.[1] ?? 'body';
  const row = match ? rows[Number(match[2]) - 1] : rows.length === 1 ? rows[0] : undefined;
  const what = row ? `The ${row.event_type} event of ${licenseNamed(row)}` : 'An event';
  const value = row && (field === 'body' || field === 'event_key' || field === 'event_type') ? row[field] : undefined;
  const size = value === undefined ? '' : ` (${Buffer.byteLength(value).toLocaleString('en-US')} bytes)`;
  return new ExitError(
    EXIT.failure,
    `${what} cannot be stored: its ${field}${size} is longer than the column ${tablePrefixOf(trx)}webhook_deliveries.${field} (or the server's max_allowed_packet) holds. Nothing of this run was recorded or sent, and nothing was cut; run "license-manager migrate" (migration 0007 makes the column LONGTEXT) or raise max_allowed_packet (${messageOf(error)}).`,
    { cause: error },
  );
}

/** "license 42 (LIC-0042)": the code as the event's body gives it, when it does. */
function licenseNamed(row: Omit<NewDelivery, 'status'>): string {
  const code = /"license_code":("(?:[^"\\]|\\.)*")/.exec(row.body.slice(0, 4096))?.[1];
  let name = '';
  try {
    if (code) name = ` (${String(JSON.parse(code))})`;
  } catch {
    // Not JSON after all: the id alone.
  }
  return row.license_id === null ? `an event without a license${name}` : `license ${row.license_id}${name}`;
}

// How long a run waits for its turn to record before it goes ahead without it (the holder may be paused).
export const RECORDING_TURN_WAIT_MS = 5_000;

/**
 * On PostgreSQL, runs that share the database record their new events one at a time, under a
 * transaction-scoped advisory lock named after our table prefix. True when this run had to wait: the run
 * before it may have recorded the same events, so they are looked up again instead of built and sent to
 * the server only to be skipped. A saving, not a guarantee: the unique event key alone keeps each event
 * recorded once, on every dialect. So the wait is bounded: a turn held by a run that was paused, or cut
 * off without the server noticing, does not stop the others; after RECORDING_TURN_WAIT_MS they go ahead.
 */
async function waitForRecordingTurn(trx: Kysely<Database>): Promise<boolean> {
  if (dialectOf(trx) !== 'postgres') return false;
  const key = sql`hashtext(${`license-manager:record:${tablePrefixOf(trx)}`})`;
  const deadline = Date.now() + RECORDING_TURN_WAIT_MS;
  for (let tries = 0; ; tries += 1) {
    const { rows } = await sql<{ got: boolean }>`select pg_try_advisory_xact_lock(${key}) as got`.execute(trx);
    if (rows[0]?.got) return tries > 0;
    if (Date.now() >= deadline) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

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
  // An empty list matches nothing (`in ()` is not SQL).
  return [endpoints.length === 0 ? eb.val(false) : eb('endpoint', 'in', [...endpoints])];
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
  const candidates = (on: Kysely<Database>) => on.selectFrom('webhook_deliveries').select('id').where(filter).orderBy('id').limit(limit);
  const dialect = dialectOf(db);
  if (dialect === 'sqlite') return db.updateTable('webhook_deliveries').set(changes).where('id', 'in', candidates(db)).returningAll().execute();
  if (dialect === 'postgres') {
    return db.updateTable('webhook_deliveries').set(changes).where('id', 'in', candidates(db).forUpdate().skipLocked()).returningAll().execute();
  }
  // MySQL has no UPDATE … RETURNING and cannot update a table its own subquery reads: lock, update, read back.
  return retryOnDeadlock(() =>
    inTransaction(db, async (trx) => {
      const ids = (await candidates(trx).forUpdate().skipLocked().execute()).map((row) => row.id);
      if (ids.length === 0) return [];
      await trx.updateTable('webhook_deliveries').set(changes).where('id', 'in', ids).execute();
      return trx.selectFrom('webhook_deliveries').selectAll().where('id', 'in', ids).orderBy('id').execute();
    }),
  );
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

/** Every run holding deliveries now, with its claims: a finished worker waits for these, `status` reports the gone ones. */
export async function claimsByRun(db: Kysely<Database>, nowMs: number): Promise<RunClaims[]> {
  const rows = await db
    .selectFrom('webhook_deliveries')
    .select((eb) => [
      'claimed_by',
      eb.fn.countAll<number>().as('held'),
      eb.fn.sum<number>(eb.case().when('lease_until', '<', nowMs).then(1).else(0).end()).as('lapsed'),
      eb.fn.max<number>('lease_until').as('lease_until'),
    ])
    .where('status', '=', 'delivering')
    .groupBy('claimed_by')
    .execute();
  return rows
    .filter((row) => row.claimed_by !== null)
    .map((row) => ({ runId: row.claimed_by!, held: Number(row.held), lapsed: Number(row.lapsed ?? 0), leaseUntil: Number(row.lease_until ?? 0) }));
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
  const mine = (on: Kysely<Database>, chunk: readonly number[]) =>
    on
      .updateTable('webhook_deliveries')
      .set({ lease_until: leaseUntil })
      .where('id', 'in', chunk)
      .where('claimed_by', '=', runId)
      .where('status', '=', 'delivering')
      .where('lease_until', '>=', nowMs);
  for (let index = 0; index < ids.length; index += IDS_PER_STATEMENT) {
    const chunk = ids.slice(index, index + IDS_PER_STATEMENT);
    if (dialectOf(db) !== 'mysql') {
      for (const row of await mine(db, chunk).returning('id').execute()) held.add(row.id);
      continue;
    }
    // No UPDATE … RETURNING on MySQL: lock the rows this run still holds, then renew exactly those.
    const rows = await retryOnDeadlock(() =>
      inTransaction(db, async (trx) => {
        const locked = await trx
          .selectFrom('webhook_deliveries')
          .select('id')
          .where('id', 'in', chunk)
          .where('claimed_by', '=', runId)
          .where('status', '=', 'delivering')
          .where('lease_until', '>=', nowMs)
          .forUpdate()
          .execute();
        if (locked.length > 0)
          await mine(
            trx,
            locked.map((row) => row.id),
          ).execute();
        return locked;
      }),
    );
    for (const row of rows) held.add(row.id);
  }
  return held;
}

/**
 * Makes sure the database user may write what a run must record after each request (the attempt rows, the
 * deliveries' summaries and statuses), before the first request: a run that could send but not record would
 * send the same events again on every run. Zero-row statements, which the server still checks the privileges
 * of; SQLite has no privileges.
 */
export async function checkSendingPrivileges(db: Kysely<Database>): Promise<void> {
  if (dialectOf(db) === 'sqlite') return;
  const prefix = tablePrefixOf(db);
  const deliveries = sql.table('webhook_deliveries');
  const checks = [
    {
      needed: `INSERT on ${prefix}webhook_attempts, to record each attempt`,
      statement: sql`insert into ${sql.table('webhook_attempts')} (delivery_id, attempt, started_at, duration_ms, status_code, error) select id, attempts, created_at, attempts, last_status_code, last_error from ${deliveries} where 1 = 0`,
    },
    {
      needed: `UPDATE on ${prefix}webhook_deliveries, to claim deliveries and record how they end`,
      statement: sql`update ${deliveries} set status = status where 1 = 0`,
    },
  ];
  for (const { needed, statement } of checks) {
    await statement.execute(db).catch((error: unknown) => {
      // The driver's code decides how it is reported; the message says what the run needs it for.
      throw Object.assign(new Error(`${messageOf(error)} (${needed}; nothing was sent)`, { cause: error }), { code: errorCode(error) });
    });
  }
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
  /** How the delivery ended (or what it waits for), when this was its last attempt in this run. */
  final?: DeliveryEnd | undefined;
}

/** How a claimed delivery leaves this run: delivered or abandoned (completed), or deferred to `nextAttemptAt`, or parked. */
export interface DeliveryEnd {
  status: Extract<DeliveryStatus, 'delivered' | 'abandoned' | 'deferred' | 'parked'>;
  /** Set for delivered and abandoned; null for the waiting states. */
  completedAt: string | null;
  /** For deferred ones. */
  nextAttemptAt?: string | null;
  reason?: string | null;
}

/**
 * Writes a batch of attempts in one transaction: the attempt rows (every request that went out is history),
 * then each delivery's summary columns (`attempts`, `last_status_code`, `last_error`) and, for final
 * attempts, its status. The summary and status are written only while this run still holds the claim.
 */
export async function recordAttempts(db: Kysely<Database>, runId: string, writes: readonly AttemptWrite[]): Promise<void> {
  if (writes.length === 0) return;
  const dialect = dialectOf(db);
  await retryOnDeadlock(() =>
    inTransaction(db, async (trx) => {
      for (let index = 0; index < writes.length; index += ATTEMPTS_PER_STATEMENT) {
        const chunk = writes.slice(index, index + ATTEMPTS_PER_STATEMENT);
        await trx
          .insertInto('webhook_attempts')
          .values(chunk.map((write) => ({ delivery_id: write.deliveryId, ...write.attempt })))
          .execute();
        await UPDATE_ATTEMPT_SUMMARIES[dialect](trx, runId, chunk);
      }
    }),
  );
}

/**
 * SQLite and PostgreSQL: one `UPDATE … FROM` a named list of values per chunk, instead of one statement per
 * delivery. PostgreSQL receives the parameters in VALUES as text: the first row's casts type each column
 * (SQLite takes the same casts as no-ops).
 */
async function updateFromValues(trx: Kysely<Database>, runId: string, chunk: readonly AttemptWrite[]): Promise<void> {
  const rows = chunk.map((write, row) => {
    const cast = (value: unknown, type: string) => (row === 0 ? sql`cast(${value} as ${sql.raw(type)})` : sql`${value}`);
    return sql`(${cast(write.deliveryId, 'integer')}, ${cast(write.attempt.attempt, 'integer')}, ${cast(write.attempt.status_code, 'integer')}, ${cast(write.attempt.error, 'text')}, ${cast(write.final?.status ?? null, 'text')}, ${cast(write.final?.completedAt ?? null, 'text')}, ${cast(write.final?.nextAttemptAt ?? null, 'text')}, ${cast(write.final?.reason ?? null, 'text')})`;
  });
  await sql`
    with v (id, attempts, status_code, error, final, completed_at, next_attempt_at, reason) as (values ${sql.join(rows)})
    update ${sql.table('webhook_deliveries')} as d set
      attempts = v.attempts,
      last_status_code = v.status_code,
      last_error = v.error,
      status = coalesce(v.final, d.status),
      completed_at = coalesce(v.completed_at, d.completed_at),
      next_attempt_at = case when v.final is not null then v.next_attempt_at else d.next_attempt_at end,
      status_reason = case when v.final is not null then v.reason else d.status_reason end,
      lease_until = case when v.final is not null then null else d.lease_until end,
      claimed_by = case when v.final is not null then null else d.claimed_by end
    from v
    where d.id = v.id and d.claimed_by = ${runId}`.execute(trx);
}

// One statement per chunk of deliveries, in each dialect's form of "update from a list of values".
const UPDATE_ATTEMPT_SUMMARIES: Record<SqlDialect, (trx: Kysely<Database>, runId: string, chunk: readonly AttemptWrite[]) => Promise<void>> = {
  sqlite: updateFromValues,
  postgres: updateFromValues,
  async mysql(trx, runId, chunk) {
    // MySQL has no UPDATE … FROM, and an UPDATE … JOIN on a derived table scans (and locks) rows of other
    // workers' claims: CASE over the ids, with `id in (…)` so only these rows are locked, in id order. Each
    // right-hand side reads only its own column or a constant, so MySQL's left-to-right SET is safe.
    const sorted = [...chunk].sort((a, b) => a.deliveryId - b.deliveryId);
    const caseOf = <T>(value: (write: AttemptWrite) => T) =>
      sql<T>`case id ${sql.join(
        sorted.map((write) => sql`when ${write.deliveryId} then ${value(write)}`),
        sql` `,
      )} end`;
    const final = caseOf((write) => write.final?.status ?? null);
    await trx
      .updateTable('webhook_deliveries')
      .set({
        attempts: caseOf((write) => write.attempt.attempt),
        last_status_code: caseOf((write) => write.attempt.status_code),
        last_error: caseOf((write) => write.attempt.error),
        status: sql<DeliveryStatus>`coalesce(${final}, status)`,
        completed_at: sql<string | null>`coalesce(${caseOf((write) => write.final?.completedAt ?? null)}, completed_at)`,
        next_attempt_at: sql<
          string | null
        >`case when ${final} is not null then ${caseOf((write) => write.final?.nextAttemptAt ?? null)} else next_attempt_at end`,
        status_reason: sql<string | null>`case when ${final} is not null then ${caseOf((write) => write.final?.reason ?? null)} else status_reason end`,
        lease_until: sql<number | null>`case when ${final} is not null then null else lease_until end`,
        claimed_by: sql<string | null>`case when ${final} is not null then null else claimed_by end`,
      })
      .where(
        'id',
        'in',
        sorted.map((write) => write.deliveryId),
      )
      .where('claimed_by', '=', runId)
      .execute();
  },
};

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
        for (let index = 0; index < ids.length; index += IDS_PER_STATEMENT) {
          await trx
            .updateTable('webhook_deliveries')
            .set({ status: 'superseded', status_reason: reason, completed_at: completedAt, next_attempt_at: null, claimed_by: null, lease_until: null })
            .where('id', 'in', ids.slice(index, index + IDS_PER_STATEMENT))
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
  await db
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
    .execute();
}

/**
 * What an endpoint's circuit opening does to the deliveries no run holds: pending ones and due deferred ones
 * (at `dueAt`) are deferred to `nextAttemptAt` without an attempt, except those recorded before `windowStart`,
 * whose retry window has ended: they are abandoned. Returns how many of each.
 */
export async function deferEndpoint(
  db: Kysely<Database>,
  endpoint: string,
  change: { dueAt: string; nextAttemptAt: string; reason: string; windowStart: string; completedAt: string; abandonReason: string },
): Promise<{ deferred: number; abandoned: number }> {
  const waiting = (eb: ExpressionBuilder<Database, 'webhook_deliveries'>) =>
    eb.and([
      eb('endpoint', '=', endpoint),
      eb.or([eb('status', '=', 'pending'), eb.and([eb('status', '=', 'deferred'), eb('next_attempt_at', '<=', change.dueAt)])]),
    ]);
  const abandoned = await db
    .updateTable('webhook_deliveries')
    .set({ status: 'abandoned', completed_at: change.completedAt, next_attempt_at: null, status_reason: change.abandonReason })
    .where((eb) => eb.and([waiting(eb), eb('created_at', '<', change.windowStart)]))
    .executeTakeFirst();
  const deferred = await db
    .updateTable('webhook_deliveries')
    .set({ status: 'deferred', next_attempt_at: change.nextAttemptAt, status_reason: change.reason })
    .where(waiting)
    .executeTakeFirst();
  return { deferred: Number(deferred.numUpdatedRows), abandoned: Number(abandoned.numUpdatedRows) };
}

/** Parks every delivery of an endpoint that no run holds and that waits (pending or deferred): the endpoint is gone (410) or disabled. */
export async function parkEndpoint(db: Kysely<Database>, endpoint: string, reason: string): Promise<number> {
  const result = await db
    .updateTable('webhook_deliveries')
    .set({ status: 'parked', next_attempt_at: null, status_reason: reason })
    .where('endpoint', '=', endpoint)
    .where('status', 'in', ['pending', 'deferred'])
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/**
 * The status_reason of deliveries parked because the operator disabled their endpoint (`endpoints disable`, or
 * `enabled: false` in the config file). Unlike those a 410 Gone parked, they wait on no failing receiver: exit 4
 * and `status` health leave them out (waitingByEndpoint).
 */
export const OPERATOR_DISABLED_REASON = 'endpoint disabled';

/**
 * Makes the stored statuses follow each endpoint's switch: the pending and deferred deliveries of a disabled
 * endpoint are parked (reason OPERATOR_DISABLED_REASON; a deferred one comes back pending on enable), and the
 * parked deliveries of an enabled endpoint that no 410 disabled (`gone`) go back to pending. Claimed ones
 * (delivering) are left to their run. Returns how many were parked and unparked.
 */
export async function followEndpointSwitches(
  db: Kysely<Database>,
  endpoints: ReadonlyArray<{ name: string; enabled: boolean }>,
  gone: ReadonlySet<string>,
): Promise<{ parked: number; unparked: number }> {
  let parked = 0;
  let unparked = 0;
  for (const endpoint of endpoints) {
    if (!endpoint.enabled) parked += await parkEndpoint(db, endpoint.name, OPERATOR_DISABLED_REASON);
    else if (!gone.has(endpoint.name)) unparked += await unparkEndpoint(db, endpoint.name);
  }
  return { parked, unparked };
}

/**
 * Parked deliveries of an enabled endpoint go back to pending (`endpoints enable`): the next run sends them, each
 * with a full in-run schedule (schedule_base moves up to its attempts, as a re-send's), so one that was deferred
 * before it was parked is not taken for spent.
 */
export async function unparkEndpoint(db: Kysely<Database>, endpoint: string): Promise<number> {
  const result = await db
    .updateTable('webhook_deliveries')
    .set((eb) => ({ status: 'pending', status_reason: null, next_attempt_at: null, schedule_base: eb.ref('attempts') }))
    .where('endpoint', '=', endpoint)
    .where('status', '=', 'parked')
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** Per endpoint, the deliveries that wait on a failing receiver: deferred and parked (by a 410, not by the operator's switch) counts, the earliest next attempt, the oldest recorded, the latest error. */
export interface WaitingDeliveries {
  endpoint: string;
  deferred: number;
  parked: number;
  nextAttemptAt: string | null;
  oldestCreatedAt: string | null;
  lastError: string | null;
  reason: string | null;
}

export async function waitingByEndpoint(db: Kysely<Database>): Promise<WaitingDeliveries[]> {
  const rows = await db
    .selectFrom('webhook_deliveries')
    .select((eb) => [
      'endpoint',
      'status',
      eb.fn.countAll<number>().as('count'),
      eb.fn.min('next_attempt_at').as('next_at'),
      eb.fn.min('created_at').as('oldest'),
      eb.fn.max('id').as('latest'),
    ])
    .where('status', 'in', ['deferred', 'parked'])
    // Parked by the operator's switch, not by a failing receiver: not waiting on one.
    .where((eb) => eb.or([eb('status', '=', 'deferred'), eb('status_reason', 'is', null), eb('status_reason', '<>', OPERATOR_DISABLED_REASON)]))
    .groupBy(['endpoint', 'status'])
    .execute();
  const byEndpoint = new Map<string, WaitingDeliveries & { latest: number }>();
  for (const row of rows) {
    const entry = byEndpoint.get(row.endpoint) ?? {
      endpoint: row.endpoint,
      deferred: 0,
      parked: 0,
      nextAttemptAt: null,
      oldestCreatedAt: null,
      lastError: null,
      reason: null,
      latest: 0,
    };
    if (row.status === 'deferred') {
      entry.deferred = Number(row.count);
      entry.nextAttemptAt = row.next_at ?? null;
    } else entry.parked = Number(row.count);
    if (entry.oldestCreatedAt === null || (row.oldest !== null && row.oldest < entry.oldestCreatedAt)) entry.oldestCreatedAt = row.oldest;
    entry.latest = Math.max(entry.latest, Number(row.latest));
    byEndpoint.set(row.endpoint, entry);
  }
  // The latest waiting delivery of each endpoint says its last error and why it waits: one read for all of them.
  const entries = [...byEndpoint.values()].sort((a, b) => (a.endpoint < b.endpoint ? -1 : a.endpoint > b.endpoint ? 1 : 0));
  const latest =
    entries.length === 0
      ? []
      : await db
          .selectFrom('webhook_deliveries')
          .select(['id', 'last_error', 'status_reason'])
          .where(
            'id',
            'in',
            entries.map((entry) => entry.latest),
          )
          .execute();
  const byId = new Map(latest.map((row) => [Number(row.id), row]));
  return entries.map(({ latest: id, ...entry }) => ({ ...entry, lastError: byId.get(id)?.last_error ?? null, reason: byId.get(id)?.status_reason ?? null }));
}

/** Hands a claim back: the run is stopping before this delivery's next attempt. A deferred one claimed when due goes back to deferred (still due), any other to pending. */
export async function releaseDelivery(db: Kysely<Database>, deliveryId: number, runId: string): Promise<void> {
  await db
    .updateTable('webhook_deliveries')
    .set({ status: sql<DeliveryStatus>`case when next_attempt_at is null then 'pending' else 'deferred' end`, claimed_by: null, lease_until: null })
    .where('id', '=', deliveryId)
    .where('claimed_by', '=', runId)
    .execute();
}

export interface DeliveryFilter {
  status?: DeliveryStatus | undefined;
  /** Only deliveries to this endpoint. */
  endpoint?: string | undefined;
  eventType?: string | undefined;
  /** Only deliveries for these licenses (the ids of one code, as the license source gives them); never empty. */
  licenseIds?: readonly number[] | undefined;
  since?: string | undefined;
  limit?: number | undefined;
}

/** A delivery with the code of its license, which the license source gives (our licenses table, or Botble's). */
export interface DeliveryListItem extends DeliveryRow {
  license_code: string | null;
}

// The log names licenses by id only: their codes live where the license source reads them, not always in our tables.
function filteredDeliveries(db: Kysely<Database>, filter: DeliveryFilter) {
  let query = db.selectFrom('webhook_deliveries');
  if (filter.status) query = query.where('status', '=', filter.status);
  if (filter.endpoint !== undefined) query = query.where('endpoint', '=', filter.endpoint);
  if (filter.eventType) query = query.where('event_type', '=', filter.eventType);
  if (filter.licenseIds) query = query.where('license_id', 'in', [...filter.licenseIds]);
  if (filter.since) query = query.where('created_at', '>=', filter.since);
  return query;
}

export async function listDeliveries(db: Kysely<Database>, filter: DeliveryFilter = {}): Promise<DeliveryRow[]> {
  const query = filteredDeliveries(db, filter).selectAll().orderBy('id', 'desc');
  return (filter.limit === undefined ? query : query.limit(filter.limit)).execute();
}

/** How many deliveries match the filter, whatever the limit (so a cut-off list can say it is one). */
export async function countDeliveries(db: Kysely<Database>, filter: DeliveryFilter = {}): Promise<number> {
  const row = await filteredDeliveries(db, filter).select(db.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
  return Number(row.count);
}

/** The license id of each of these deliveries (deliveries for no license are absent). */
export async function licenseIdsOfDeliveries(db: Kysely<Database>, ids: readonly number[]): Promise<Map<number, number>> {
  const licenseIds = new Map<number, number>();
  for (let start = 0; start < ids.length; start += IDS_PER_STATEMENT) {
    const rows = await db
      .selectFrom('webhook_deliveries')
      .select(['id', 'license_id'])
      .where('id', 'in', ids.slice(start, start + IDS_PER_STATEMENT))
      .where('license_id', 'is not', null)
      .execute();
    for (const row of rows) licenseIds.set(row.id, row.license_id!);
  }
  return licenseIds;
}

export async function findDelivery(db: Kysely<Database>, id: number): Promise<{ delivery: DeliveryRow; attempts: AttemptRow[] } | undefined> {
  const delivery = await db.selectFrom('webhook_deliveries').selectAll().where('id', '=', id).executeTakeFirst();
  if (!delivery) return undefined;
  const attempts = await db.selectFrom('webhook_attempts').selectAll().where('delivery_id', '=', id).orderBy('attempt').execute();
  return { delivery, attempts };
}

/** The largest delivery id so far (0 for none): rows after it were recorded later. */
export async function maxDeliveryId(db: Kysely<Database>): Promise<number> {
  const row = await db
    .selectFrom('webhook_deliveries')
    .select((eb) => eb.fn.max<number | null>('id').as('id'))
    .executeTakeFirst();
  return Number(row?.id ?? 0);
}
