import type { Kysely } from 'kysely';
import { chunksOf, IDS_PER_STATEMENT, MAX_PARAMETERS } from '../../sql/chunks.js';
import { classifyDbError, messageOf, retryOnDeadlock } from '../../sql/db-errors.js';
import { dialectFor } from '../../sql/dialect-for.js';
import { tablePrefixOf } from '../../sql/table-prefix.js';
import type { Database, DeliveryStatus } from '../database.table.js';
import { writeStatusChanges, type StatusChangeCounts, type StatusChanges } from '../licenses.repository.js';
import { StorageRefusal } from '../storage-refusal.js';
import { inTransaction } from '../transaction.js';

// Recording the outbox: each new event once per endpoint, as pending (or delivered by another sender), with the status changes it goes with.
/** Writes the status changes where the licenses' statuses live (ours, or the derived table beside Botble's). */
export type StatusWriter = (trx: Kysely<Database>, changes: StatusChanges, now: string) => Promise<StatusChangeCounts>;

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

// webhook_deliveries rows in one multi-row INSERT: at most 11 bound columns each (10 for a pending delivery).
const DELIVERY_ROWS_PER_INSERT = Math.floor(MAX_PARAMETERS / 11);

/** A delivery row as the rules read it: its event key and instant, and what re-arming it asks (see ../../commands/recorded-notices.ts). */
export interface RecordedKey {
  id: number;
  event_key: string;
  event_instant: string | null;
  event_type: string;
  endpoint: string;
  status: DeliveryStatus;
  status_reason: string | null;
  created_at: string;
}

/** The deliveries already recorded for these licenses (any status: sent, pending, abandoned, superseded), by the license_id index. */
export async function recordedEventKeys(db: Kysely<Database>, licenseIds: readonly number[]): Promise<RecordedKey[]> {
  const keys: RecordedKey[] = [];
  const ids = [...new Set(licenseIds)];
  for (const chunk of chunksOf(ids)) {
    const rows = await db
      .selectFrom('webhook_deliveries')
      .select(['id', 'event_key', 'event_instant', 'event_type', 'endpoint', 'status', 'status_reason', 'created_at'])
      .where('license_id', 'in', chunk)
      .execute();
    keys.push(...rows);
  }
  return keys;
}

/** Of these deliveries, those a receiver ever answered 2xx (delivered once, whatever their status says now). */
export async function answeredDeliveries(db: Kysely<Database>, deliveryIds: readonly number[]): Promise<Set<number>> {
  const answered = new Set<number>();
  for (const chunk of chunksOf([...new Set(deliveryIds)])) {
    const rows = await db
      .selectFrom('webhook_attempts')
      .select('delivery_id')
      .distinct()
      .where('delivery_id', 'in', chunk)
      .where('status_code', '>=', 200)
      .where('status_code', '<', 300)
      .execute();
    for (const row of rows) answered.add(Number(row.delivery_id));
  }
  return answered;
}

/**
 * Earlier events the rules call for again, whose deliveries ended superseded (see ../../commands/recorded-notices.ts),
 * made a slice at a time. `mayRearm` says which of an event's superseded rows may go again (its endpoint takes the
 * event, and the license, not an operator, ended it).
 */
export interface Rearming {
  count: number;
  slice(
    start: number,
    end: number,
  ): Array<{
    event_key: string;
    mayRearm(row: { endpoint: string; status_reason: string | null; created_at: string }): boolean;
  }>;
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
  rearming?: Rearming,
): Promise<{ inserted: number; fannedOut: number; fannedOutTo: Record<string, number>; rearmed: number; expired: number; reactivated: number }> {
  if (deliveries.count === 0 && changes.expired.length === 0 && changes.reactivated.length === 0 && !rearming?.count)
    return { inserted: 0, fannedOut: 0, fannedOutTo: {}, rearmed: 0, expired: 0, reactivated: 0 };
  return retryOnDeadlock(() =>
    inTransaction(db, async (trx) => {
      const waited = await waitForRecordingTurn(trx);
      // Under the same turn as new events: of two runs, the one that re-arms a delivery first has it (see rearm).
      const rearmed = rearming ? await rearm(trx, rearming, now) : 0;
      const todo = waited && deliveries.stillNew ? await deliveries.stillNew(trx) : deliveries;
      let inserted = 0;
      let fannedOut = 0;
      // Per endpoint other than default: a run names those it parks for a disabled endpoint.
      const fannedOutTo: Record<string, number> = {};
      for (let index = 0; index < todo.count; index += DELIVERY_ROWS_PER_INSERT) {
        const slice = todo.slice(index, index + DELIVERY_ROWS_PER_INSERT).map((delivery) => ({ status: 'pending' as const, ...delivery, created_at: now }));
        // `default`'s rows (one per event: what a run reports as recorded) and the other endpoints' rows go in
        // INSERTs of their own, each within the parameter limit.
        inserted += await insertRows(
          trx,
          slice.filter((row) => row.endpoint === undefined),
        );
        // One INSERT per endpoint (endpoints are few), so each one's count is known.
        for (const endpoint of new Set(slice.map((row) => row.endpoint).filter((name) => name !== undefined))) {
          const count = await insertRows(
            trx,
            slice.filter((row) => row.endpoint === endpoint),
          );
          fannedOut += count;
          if (count > 0) fannedOutTo[endpoint] = (fannedOutTo[endpoint] ?? 0) + count;
        }
      }
      // Through the license source: where a license's status lives is its business, not the event log's.
      const { expired, reactivated } = await setStatuses(trx, changes, now);
      return { inserted, fannedOut, fannedOutTo, rearmed, expired, reactivated };
    }),
  );
}

/**
 * Re-arms the superseded deliveries of these events that `mayRearm` allows and no receiver ever answered 2xx: each
 * keeps its row, event id and body (every receiver of one event id gets the same bytes; a receiver that saw a
 * timed-out attempt can drop the duplicate) and becomes pending: created_at `now` (its retry window and backoff
 * count from here), a new retry schedule, the reason cleared. The UPDATE takes a row only while it is
 * still the superseded row this run read: of two runs at once, the second finds it pending (PostgreSQL re-reads a
 * row another transaction changed; InnoDB's UPDATE reads the latest committed version; SQLite writes one at a
 * time) and leaves it. Returns how many events had a delivery re-armed by this call.
 */
async function rearm(trx: Kysely<Database>, rearming: Rearming, now: string): Promise<number> {
  let events = 0;
  for (let index = 0; index < rearming.count; index += IDS_PER_STATEMENT) {
    const byKey = new Map(rearming.slice(index, index + IDS_PER_STATEMENT).map((event) => [event.event_key, event]));
    const rows = await trx
      .selectFrom('webhook_deliveries')
      .select(['id', 'event_key', 'endpoint', 'status_reason', 'attempts', 'created_at'])
      .where('event_key', 'in', [...byKey.keys()])
      .where('status', '=', 'superseded')
      .orderBy('id')
      .execute();
    const candidates = rows.filter((row) => byKey.get(row.event_key)?.mayRearm(row));
    const answered = await answeredDeliveries(
      trx,
      candidates.map((row) => row.id),
    );
    const done = new Set<string>();
    for (const row of candidates) {
      if (answered.has(row.id)) continue;
      const result = await trx
        .updateTable('webhook_deliveries')
        .set((eb) => ({
          status: 'pending',
          created_at: now,
          completed_at: null,
          status_reason: null,
          next_attempt_at: null,
          claimed_by: null,
          lease_until: null,
          schedule_base: eb.ref('attempts'),
        }))
        .where('id', '=', row.id)
        .where('status', '=', 'superseded')
        .where('attempts', '=', row.attempts)
        .where('created_at', '=', row.created_at)
        .executeTakeFirst();
      if (Number(result.numUpdatedRows) > 0) done.add(row.event_key);
    }
    events += done.size;
  }
  return events;
}

async function insertRows(trx: Kysely<Database>, slice: Array<Omit<NewDelivery, 'status'> & { status: DeliveryStatus; created_at: string }>): Promise<number> {
  // The caller's slice is within DELIVERY_ROWS_PER_INSERT already; long bodies may split it further.
  let inserted = 0;
  for (const rows of byBodyBytes(slice)) inserted += await insertNew(trx, rows);
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
 * Inserts the rows whose (event_key, endpoint) is not recorded yet and returns how many it inserted. Where the
 * dialect cannot tell an insert from a skip (MySQL), the event ids (new for every event) are counted back.
 */
async function insertNew(trx: Kysely<Database>, rows: Array<Omit<NewDelivery, 'status'> & { status: DeliveryStatus; created_at: string }>): Promise<number> {
  try {
    const inserted = await dialectFor(trx).insertIgnore(trx.insertInto('webhook_deliveries').values(rows), ['event_key', 'endpoint']);
    if (inserted !== undefined) return inserted;
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

/** A refusal naming the event, its license and the field when a row did not fit its column; undefined for any other error. */
function tooLongToStore(trx: Kysely<Database>, error: unknown, rows: ReadonlyArray<Omit<NewDelivery, 'status'>>): StorageRefusal | undefined {
  if (classifyDbError(error) !== 'too-long') return undefined;
  const match = TOO_LONG.exec((error as { sqlMessage?: string }).sqlMessage ?? messageOf(error));
  const field = match?.[1] ?? 'body';
  const row = match ? rows[Number(match[2]) - 1] : rows.length === 1 ? rows[0] : undefined;
  const value = row && (field === 'body' || field === 'event_key' || field === 'event_type') ? row[field] : undefined;
  return new StorageRefusal(
    {
      kind: 'event-too-long',
      event: row && { type: row.event_type, licenseId: row.license_id, licenseCode: licenseCodeIn(row.body) },
      field,
      bytes: value === undefined ? undefined : Buffer.byteLength(value),
      table: `${tablePrefixOf(trx)}webhook_deliveries`,
      detail: messageOf(error),
    },
    { cause: error },
  );
}

/** The license code as the event's body gives it, when it does. */
function licenseCodeIn(body: string): string | undefined {
  const code = /"license_code":("(?:[^"\\]|\\.)*")/.exec(body.slice(0, 4096))?.[1];
  try {
    return code ? String(JSON.parse(code)) : undefined;
  } catch {
    // Not JSON after all: the id alone.
    return undefined;
  }
}

// How long a run waits for its turn to record before it goes ahead without it (the holder may be paused).
export const RECORDING_TURN_WAIT_MS = 5_000;

/**
 * Runs that share the database record their new events one at a time, under a transaction-scoped turn named
 * after our table prefix (PostgreSQL's advisory locks; the other dialects take no turns). True when this run had to wait: the run
 * before it may have recorded the same events, so they are looked up again instead of built and sent to
 * the server only to be skipped. A saving, not a guarantee: the unique event key alone keeps each event
 * recorded once, on every dialect. So the wait is bounded: a turn held by a run that was paused, or cut
 * off without the server noticing, does not stop the others; after RECORDING_TURN_WAIT_MS they go ahead.
 */
function waitForRecordingTurn(trx: Kysely<Database>): Promise<boolean> {
  return dialectFor(trx).waitForTurn(trx, `license-manager:record:${tablePrefixOf(trx)}`, RECORDING_TURN_WAIT_MS);
}
