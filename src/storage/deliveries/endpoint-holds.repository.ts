import type { ExpressionBuilder, Kysely } from 'kysely';
import { retryOnDeadlock } from '../../sql/db-errors.js';
import { formatUtc, parseUtc } from '../../time.js';
import type { Database, DeliveryStatus } from '../database.table.js';

const HOUR_MS = 3_600_000;

// Deliveries held back for their endpoint: deferred by an open circuit, parked while it is gone or disabled.
/**
 * What an endpoint's circuit opening does to the deliveries no run holds: pending ones and due deferred ones
 * (at `dueAt`) are deferred to `nextAttemptAt` without an attempt, except those recorded at `windowStart` or
 * before, whose retry window has ended: they are abandoned. One whose window ends before `nextAttemptAt` (a long
 * Retry-After) goes at its window's end instead, `lastReason` added: its last attempt, as a deferral after an
 * attempt would be. Returns how many of each.
 */
export async function deferEndpoint(
  db: Kysely<Database>,
  endpoint: string,
  change: {
    dueAt: string;
    nextAttemptAt: string;
    reason: string;
    windowStart: string;
    windowHours: number;
    lastReason: string;
    completedAt: string;
    abandonReason: string;
  },
): Promise<{ deferred: number; abandoned: number }> {
  const waiting = (eb: ExpressionBuilder<Database, 'webhook_deliveries'>) =>
    eb.and([
      eb('endpoint', '=', endpoint),
      eb.or([eb('status', '=', 'pending'), eb.and([eb('status', '=', 'deferred'), eb('next_attempt_at', '<=', change.dueAt)])]),
    ]);
  const abandoned = await db
    .updateTable('webhook_deliveries')
    .set({ status: 'abandoned', completed_at: change.completedAt, next_attempt_at: null, status_reason: change.abandonReason })
    // Its window ended at windowStart or before (recorded windowHours before now, or earlier): no attempt is left.
    .where((eb) => eb.and([waiting(eb), eb('created_at', '<=', change.windowStart)]))
    .executeTakeFirst();
  // Recorded before this, a delivery's window ends before nextAttemptAt. Timestamps are stored as UTC text, so the
  // window's end is worked out here, once per recording time (a run records all its events at one), not in SQL.
  const windowMs = change.windowHours * HOUR_MS;
  const endsSooner = formatUtc(new Date(Date.parse(change.nextAttemptAt) - windowMs));
  const recordings = await db.selectFrom('webhook_deliveries').select('created_at').distinct().where(waiting).where('created_at', '<', endsSooner).execute();
  let deferred = 0;
  for (const { created_at } of recordings) {
    const recordedAt = parseUtc(created_at);
    if (!recordedAt) continue;
    const capped = await db
      .updateTable('webhook_deliveries')
      .set({ status: 'deferred', next_attempt_at: formatUtc(new Date(recordedAt.getTime() + windowMs)), status_reason: `${change.reason}${change.lastReason}` })
      .where((eb) => eb.and([waiting(eb), eb('created_at', '=', created_at)]))
      .executeTakeFirst();
    deferred += Number(capped.numUpdatedRows);
  }
  // The rest, not those just capped: one capped to a time at or before dueAt would still be waiting here.
  const rest = await db
    .updateTable('webhook_deliveries')
    .set({ status: 'deferred', next_attempt_at: change.nextAttemptAt, status_reason: change.reason })
    .where((eb) => eb.and([waiting(eb), eb('created_at', '>=', endsSooner)]))
    .executeTakeFirst();
  return { deferred: deferred + Number(rest.numUpdatedRows), abandoned: Number(abandoned.numUpdatedRows) };
}

/**
 * Parks every delivery of an endpoint that no run holds and that waits (pending or deferred): the endpoint is gone
 * (410) or disabled. With `lapsedBefore` (epoch ms), also those a run claimed whose lease ran out before then (a run
 * that is gone, which no run takes over while the endpoint is disabled).
 */
export async function parkEndpoint(db: Kysely<Database>, endpoint: string, reason: string, lapsedBefore?: number): Promise<number> {
  const result = await db
    .updateTable('webhook_deliveries')
    .set({ status: 'parked', next_attempt_at: null, status_reason: reason, claimed_by: null, lease_until: null })
    .where('endpoint', '=', endpoint)
    .where((eb) =>
      lapsedBefore === undefined
        ? eb('status', 'in', ['pending', 'deferred'])
        : eb.or([eb('status', 'in', ['pending', 'deferred']), eb.and([eb('status', '=', 'delivering'), eb('lease_until', '<', lapsedBefore)])]),
    )
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
 * The status_reason of deliveries parked because their endpoint is no longer defined (taken out of the config
 * file): kept unsent, never sent elsewhere, and waiting on no receiver; defined again, it sends them.
 */
const UNDEFINED_ENDPOINT_REASON = 'endpoint no longer defined (taken out of the config file or removed); defined again, it sends them';
/** Parked by the operator's hand, not by a failing receiver. */
const OPERATOR_REASONS = [OPERATOR_DISABLED_REASON, UNDEFINED_ENDPOINT_REASON];

/**
 * Makes the stored statuses follow each endpoint's switch: the pending and deferred deliveries of a disabled
 * endpoint are parked (reason OPERATOR_DISABLED_REASON; a deferred one comes back pending on enable), and the
 * parked deliveries of an enabled endpoint that no 410 disabled (`gone`, by name with its reason) go back to
 * pending. What waits for an endpoint no longer defined is parked (UNDEFINED_ENDPOINT_REASON); defined again,
 * it follows its switch. Claimed ones (delivering) are left to their run. Returns how many were parked and unparked.
 */
export async function followEndpointSwitches(
  db: Kysely<Database>,
  endpoints: ReadonlyArray<{ name: string; enabled: boolean }>,
  gone: ReadonlyMap<string, string>,
  /**
   * Epoch ms (on the leases' clock, with room for skew): claims whose lease ran out before then are of a run that is
   * gone; of an endpoint no run claims (disabled, or no longer defined) they are parked too, as no run takes them over.
   */
  lapsedBefore?: number,
): Promise<{ parked: number; unparked: number; undefinedParked: Array<{ endpoint: string; parked: number }> }> {
  let parked = 0;
  let unparked = 0;
  const undefinedParked: Array<{ endpoint: string; parked: number }> = [];
  for (const endpoint of endpoints) {
    if (!endpoint.enabled) parked += await parkEndpoint(db, endpoint.name, OPERATOR_DISABLED_REASON, lapsedBefore);
    else if (!gone.has(endpoint.name)) unparked += await unparkEndpoint(db, endpoint.name);
  }
  // Stored endpoints this user may not read (the run was warned) count as defined.
  let stored: string[];
  try {
    stored = (await db.selectFrom('endpoints').select('name').execute()).map((row) => row.name);
  } catch {
    return { parked, unparked, undefinedParked };
  }
  const defined = new Map<string, { name: string; enabled: boolean }>(endpoints.map((endpoint) => [endpoint.name, endpoint] as const));
  const isDefined = (name: string) => defined.has(name) || stored.includes(name);
  // Each is read first (no locks) and written only for the names it finds: most runs write nothing here, and a
  // write that scanned every waiting row would deadlock with other workers' claims (MariaDB's gap locks).
  // An endpoint no longer defined: what waits for it (a 410's parking too) is parked as the operator's doing, so it
  // never keeps runs at exit 4; no run claims it (runs claim the defined endpoints' deliveries only).
  const waitingFor = await db
    .selectFrom('webhook_deliveries')
    .select('endpoint')
    .distinct()
    .where((eb) =>
      eb.or([
        eb('status', 'in', ['pending', 'deferred']),
        eb.and([eb('status', '=', 'parked'), eb.or([eb('status_reason', 'is', null), eb('status_reason', '<>', UNDEFINED_ENDPOINT_REASON)])]),
        ...(lapsedBefore === undefined ? [] : [eb.and([eb('status', '=', 'delivering'), eb('lease_until', '<', lapsedBefore)])]),
      ]),
    )
    .execute();
  for (const { endpoint } of waitingFor) {
    if (isDefined(endpoint)) continue;
    const count = await setParked(db, endpoint, UNDEFINED_ENDPOINT_REASON, ['pending', 'deferred', 'parked'], undefined, lapsedBefore);
    parked += count;
    if (count > 0) undefinedParked.push({ endpoint, parked: count });
  }
  // Defined again: an enabled one's came back above; a disabled one's wait for its switch, a 410's for `endpoints enable`.
  const undefinedBefore = await db
    .selectFrom('webhook_deliveries')
    .select('endpoint')
    .distinct()
    .where('status', '=', 'parked')
    .where('status_reason', '=', UNDEFINED_ENDPOINT_REASON)
    .execute();
  for (const { endpoint } of undefinedBefore) {
    if (!isDefined(endpoint)) continue;
    const reason = gone.get(endpoint) ?? (defined.get(endpoint)?.enabled === false ? OPERATOR_DISABLED_REASON : undefined);
    if (reason !== undefined) await setParked(db, endpoint, reason, ['parked'], UNDEFINED_ENDPOINT_REASON);
  }
  return { parked, unparked, undefinedParked };
}

/**
 * Parks an endpoint's deliveries of these statuses with this reason (only those parked with `onlyReason`, when given;
 * with `lapsedBefore`, claims whose lease ran out before then too); retried on a deadlock.
 */
async function setParked(
  db: Kysely<Database>,
  endpoint: string,
  reason: string,
  statuses: DeliveryStatus[],
  onlyReason?: string,
  lapsedBefore?: number,
): Promise<number> {
  const result = await retryOnDeadlock(() =>
    db
      .updateTable('webhook_deliveries')
      .set({ status: 'parked', next_attempt_at: null, status_reason: reason, claimed_by: null, lease_until: null })
      .where('endpoint', '=', endpoint)
      .where((eb) =>
        lapsedBefore === undefined
          ? eb('status', 'in', statuses)
          : eb.or([eb('status', 'in', statuses), eb.and([eb('status', '=', 'delivering'), eb('lease_until', '<', lapsedBefore)])]),
      )
      .where((eb) =>
        onlyReason === undefined ? eb.or([eb('status_reason', 'is', null), eb('status_reason', '<>', reason)]) : eb('status_reason', '=', onlyReason),
      )
      .executeTakeFirst(),
  );
  return Number(result.numUpdatedRows);
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
    .where((eb) => eb.or([eb('status', '=', 'deferred'), eb('status_reason', 'is', null), eb('status_reason', 'not in', OPERATOR_REASONS)]))
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
