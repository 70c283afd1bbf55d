// What monitoring reads: the Prometheus snapshot (runs, deliveries by type and status, per endpoint state), the attempt aggregates of `deliveries stats`, and the last heartbeat ping's result.
import type { Kysely } from 'kysely';
import { SUCCEEDED_EXIT_CODE } from '../run-outcome.js';
import type { Database, DeliveryStatus } from './database.table.js';
import { readSettings, writeSetting } from './settings.repository.js';

/** Kept in the settings table under a key no `settings` command accepts: the result of the last run's pings, as JSON. */
const LAST_PING_KEY = 'monitoring:last-ping';

export async function saveLastPing(db: Kysely<Database>, json: string, now: string): Promise<void> {
  await writeSetting(db, LAST_PING_KEY, json, now);
}

export async function readLastPing(db: Kysely<Database>): Promise<string | undefined> {
  return (await readSettings(db)).get(LAST_PING_KEY);
}

/**
 * Every status a delivery can have, done or still to be delivered (a status added to DeliveryStatus must be placed
 * here). The oldest one still to be delivered is looked up by the status index among the waiting statuses: `not in`
 * the done ones read every delivery's row (0.3 s at 1,000,000 deliveries on SQLite, on every run with a textfile).
 */
const DONE: Record<DeliveryStatus, boolean> = {
  delivered: true,
  abandoned: true,
  superseded: true,
  pending: false,
  delivering: false,
  deferred: false,
  parked: false,
};
const WAITING_STATUSES = (Object.keys(DONE) as DeliveryStatus[]).filter((status) => !DONE[status]);

/** A time column as the drivers return it (UTC text, or a Date on some server drivers). */
type TimeValue = string | Date | null;

export interface RunRowsForMetrics {
  lastSuccessAt: TimeValue;
  lastRun: { startedAt: TimeValue; finishedAt: TimeValue; exitCode: number } | null;
}

/** The newest successful and the newest finished process-expirations run. */
export async function runsForMetrics(db: Kysely<Database>): Promise<RunRowsForMetrics> {
  const success = await db
    .selectFrom('runs')
    .select((eb) => eb.fn.max('finished_at').as('at'))
    .where('command', '=', 'process-expirations')
    .where('exit_code', '=', SUCCEEDED_EXIT_CODE)
    .where('finished_at', 'is not', null)
    .executeTakeFirst();
  const last = await db
    .selectFrom('runs')
    .select(['started_at', 'finished_at', 'exit_code'])
    .where('command', '=', 'process-expirations')
    .where('finished_at', 'is not', null)
    .where('exit_code', 'is not', null)
    .orderBy('finished_at', 'desc')
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
  return {
    lastSuccessAt: (success?.at as TimeValue | undefined) ?? null,
    lastRun: last ? { startedAt: last.started_at, finishedAt: last.finished_at, exitCode: Number(last.exit_code) } : null,
  };
}

/**
 * Events by type and deliveries by type and status, from one grouped scan. Every event has a delivery to `default`
 * (the others are its copies for further endpoints), so those rows count the events.
 */
export async function deliveryTotals(db: Kysely<Database>): Promise<{
  events: Array<{ eventType: string; count: number }>;
  deliveries: Array<{ eventType: string; status: string; count: number }>;
}> {
  const rows = await db
    .selectFrom('webhook_deliveries')
    .select((eb) => ['event_type', 'status', 'endpoint', eb.fn.countAll<number>().as('count')])
    .groupBy(['event_type', 'status', 'endpoint'])
    .execute();
  const events = new Map<string, number>();
  const deliveries = new Map<string, { eventType: string; status: string; count: number }>();
  for (const row of rows) {
    const count = Number(row.count);
    if (row.endpoint === 'default') events.set(row.event_type, (events.get(row.event_type) ?? 0) + count);
    const key = `${row.event_type}\u0000${row.status}`;
    const entry = deliveries.get(key) ?? { eventType: row.event_type, status: row.status, count: 0 };
    entry.count += count;
    deliveries.set(key, entry);
  }
  return { events: [...events].map(([eventType, count]) => ({ eventType, count })), deliveries: [...deliveries.values()] };
}

export interface EndpointDeliveryRows {
  endpoint: string;
  /** Deliveries by current status (whatever statuses exist). */
  byStatus: Record<string, number>;
  /** `created_at` of the oldest delivery not yet delivered, abandoned or superseded; null when none waits. */
  oldestUndeliveredAt: TimeValue;
}

/** Per endpoint: deliveries by status, and the oldest still waiting; `endpoint` narrows it to one. */
export async function endpointDeliveries(db: Kysely<Database>, endpoint?: string): Promise<EndpointDeliveryRows[]> {
  let counts = db.selectFrom('webhook_deliveries').select((eb) => ['endpoint', 'status', eb.fn.countAll<number>().as('count')]);
  let oldest = db
    .selectFrom('webhook_deliveries')
    .select((eb) => ['endpoint', eb.fn.min('created_at').as('oldest')])
    .where('status', 'in', WAITING_STATUSES);
  if (endpoint !== undefined) {
    counts = counts.where('endpoint', '=', endpoint);
    oldest = oldest.where('endpoint', '=', endpoint);
  }
  const byEndpoint = new Map<string, EndpointDeliveryRows>();
  const entry = (name: string) => {
    let found = byEndpoint.get(name);
    if (!found) byEndpoint.set(name, (found = { endpoint: name, byStatus: {}, oldestUndeliveredAt: null }));
    return found;
  };
  for (const row of await counts.groupBy(['endpoint', 'status']).execute()) entry(row.endpoint).byStatus[row.status] = Number(row.count);
  for (const row of await oldest.groupBy('endpoint').execute()) entry(row.endpoint).oldestUndeliveredAt = row.oldest as TimeValue;
  return [...byEndpoint.values()];
}

export interface EndpointStreak {
  endpoint: string;
  /** `started_at` of its newest successful (2xx) attempt; null when none succeeded. */
  lastSuccessAt: TimeValue;
  lastAttemptAt: TimeValue;
  /** Attempts written after its newest success (all of them when none succeeded). */
  consecutiveFailures: number;
}

/** An endpoint's attempts (joined to their deliveries), from `since` (UTC text, whole seconds) when given. */
function endpointAttempts(db: Kysely<Database>, name: string, since?: string) {
  const query = db.selectFrom('webhook_attempts as a').innerJoin('webhook_deliveries as d', 'd.id', 'a.delivery_id').where('d.endpoint', '=', name);
  return since === undefined ? query : query.where('a.started_at', '>=', since);
}

/** The newest 2xx of those attempts: read backwards by id, stopping at the first. */
function newestSuccess(attempts: ReturnType<typeof endpointAttempts>) {
  return attempts
    .select(['a.id as id', 'a.started_at as started_at'])
    .where('a.status_code', '>=', 200)
    .where('a.status_code', '<=', 299)
    .orderBy('a.id', 'desc')
    .limit(1)
    .executeTakeFirst();
}

/**
 * Per endpoint, over its whole history: the last success, the last attempt, and the failed attempts since the last
 * success, in the order the attempts were written (their ids). Each is read backwards from the newest attempt and
 * stops at the first match, so a healthy endpoint costs a few index reads however long its log. `names`: the endpoints
 * to read (those with deliveries: endpointDeliveries names them; asking the deliveries for their distinct endpoints
 * read a whole index).
 */
export async function endpointStreaks(
  db: Kysely<Database>,
  names: readonly string[],
  /** By name, when the endpoint now under that name was added: an earlier one's attempts (made before) are not its own. */
  addedAt: ReadonlyMap<string, string> = new Map(),
): Promise<EndpointStreak[]> {
  const streaks: EndpointStreak[] = [];
  for (const name of names) {
    const attempts = () => endpointAttempts(db, name, addedAt.get(name));
    const last = await attempts().select(['a.id as id', 'a.started_at as started_at']).orderBy('a.id', 'desc').limit(1).executeTakeFirst();
    if (!last) continue;
    const ok = await newestSuccess(attempts());
    let failures = attempts().select((eb) => eb.fn.countAll<number>().as('count'));
    if (ok) failures = failures.where('a.id', '>', ok.id);
    const counted = await failures.executeTakeFirstOrThrow();
    streaks.push({
      endpoint: name,
      lastSuccessAt: (ok?.started_at as TimeValue | undefined) ?? null,
      lastAttemptAt: last.started_at as TimeValue,
      consecutiveFailures: Number(counted.count),
    });
  }
  return streaks;
}

/**
 * Per endpoint whose newest attempt was not a 2xx: when the attempts since its newest 2xx began (the first written
 * after it, by id: attempts are written in the order they end), as UTC text. An endpoint whose newest attempt was a
 * 2xx, or that has no attempt, is left out. A 429 or 408 leaves the circuit closed (the receiver is up), so only the
 * attempt log tells a receiver that answered 2xx since from one that throttles everything after one old 2xx.
 */
export async function unansweredSince(db: Kysely<Database>, names: readonly string[]): Promise<Map<string, string>> {
  const since = new Map<string, string>();
  for (const name of names) {
    const ok = await newestSuccess(endpointAttempts(db, name));
    let after = endpointAttempts(db, name).select('a.started_at as started_at');
    if (ok) after = after.where('a.id', '>', ok.id);
    const first = await after.orderBy('a.id', 'asc').limit(1).executeTakeFirst();
    const at = first?.started_at as TimeValue | undefined;
    if (at) since.set(name, at instanceof Date ? at.toISOString().replace(/\.\d{3}Z$/, 'Z') : at);
  }
  return since;
}

export interface AttemptGroup {
  endpoint: string;
  statusCode: number | null;
  /** The stored error text (only for attempts that got no response). */
  error: string | null;
  /** Whole milliseconds (only for attempts that got a response: the response-time histogram). */
  durationMs: number;
  count: number;
}

/**
 * The attempts since `since` (UTC text) grouped as `deliveries stats` needs them: responses by endpoint, status code
 * and duration (an exact histogram: durations are whole milliseconds below the timeout), failures without a
 * response by endpoint and error text. A few thousand rows, whatever the number of attempts.
 */
export async function attemptGroups(db: Kysely<Database>, filter: { since?: string | undefined; endpoint?: string | undefined }): Promise<AttemptGroup[]> {
  const base = () => {
    let query = db.selectFrom('webhook_attempts as a').innerJoin('webhook_deliveries as d', 'd.id', 'a.delivery_id');
    if (filter.since !== undefined) query = query.where('a.started_at', '>=', filter.since);
    if (filter.endpoint !== undefined) query = query.where('d.endpoint', '=', filter.endpoint);
    return query;
  };
  const responses = await base()
    .select((eb) => ['d.endpoint as endpoint', 'a.status_code as status_code', 'a.duration_ms as duration_ms', eb.fn.countAll<number>().as('count')])
    .where('a.status_code', 'is not', null)
    .groupBy(['d.endpoint', 'a.status_code', 'a.duration_ms'])
    .execute();
  const failures = await base()
    .select((eb) => ['d.endpoint as endpoint', 'a.error as error', eb.fn.countAll<number>().as('count')])
    .where('a.status_code', 'is', null)
    .groupBy(['d.endpoint', 'a.error'])
    .execute();
  return [
    ...responses.map((row) => ({
      endpoint: row.endpoint,
      statusCode: Number(row.status_code),
      error: null,
      durationMs: Number(row.duration_ms),
      count: Number(row.count),
    })),
    ...failures.map((row) => ({ endpoint: row.endpoint, statusCode: null, error: row.error, durationMs: 0, count: Number(row.count) })),
  ];
}
