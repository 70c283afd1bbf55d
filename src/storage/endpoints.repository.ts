import type { Kysely } from 'kysely';
import { clip } from '../clip.js';
import type { Database } from './database.table.js';
import { inTransaction } from './transaction.js';

// status_reason holds at most this many characters (2,048 in the schema).
const MAX_REASON_LENGTH = 2000;

/** An endpoint as stored: its row, its extra headers and the earlier secrets still on record (valid or not). */
export interface StoredEndpoint {
  /** Its row's id: an endpoint removed and added again under the same name has another. */
  id: number;
  name: string;
  url: string;
  secret: string | null;
  previousSecrets: Array<{ secret: string; validUntil: string }>;
  /** null takes every type. */
  events: string[] | null;
  enabled: boolean;
  headers: Record<string, string>;
  maxInFlight: number | null;
  signing: string;
  createdAt: string;
  updatedAt: string;
}

/**
 * When each endpoint stored in the database now was added, by name: its failure streak counts from then, not an
 * earlier endpoint's of the same name (removed, or taken out of the config file).
 */
export async function storedEndpointsAddedAt(db: Kysely<Database>): Promise<Map<string, string>> {
  const rows = await db.selectFrom('endpoints').select(['name', 'created_at']).execute();
  return new Map(rows.map((row) => [row.name, row.created_at]));
}

/** Every endpoint in the database, by name. */
export async function listStoredEndpoints(db: Kysely<Database>): Promise<StoredEndpoint[]> {
  const rows = await db.selectFrom('endpoints').selectAll().orderBy('name').execute();
  if (rows.length === 0) return [];
  const headers = await db.selectFrom('endpoint_headers').selectAll().orderBy('name').execute();
  const secrets = await db.selectFrom('endpoint_secrets').selectAll().orderBy('valid_until', 'desc').orderBy('id', 'desc').execute();
  return rows.map((row) => ({
    id: Number(row.id),
    name: row.name,
    url: row.url,
    secret: row.secret,
    previousSecrets: secrets.filter((entry) => entry.endpoint_id === row.id).map((entry) => ({ secret: entry.secret, validUntil: entry.valid_until })),
    events: row.events === null ? null : row.events.split(','),
    enabled: Number(row.enabled) === 1,
    headers: Object.fromEntries(headers.filter((header) => header.endpoint_id === row.id).map((header) => [header.name, header.value])),
    maxInFlight: row.max_in_flight,
    signing: row.signing,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  }));
}

/** The id and switch of the stored endpoints of these names (one small read: what a running run looks at again). */
export async function endpointSwitchRows(db: Kysely<Database>, names: readonly string[]): Promise<Array<{ id: number; name: string; enabled: boolean }>> {
  if (names.length === 0) return [];
  const rows = await db.selectFrom('endpoints').select(['id', 'name', 'enabled']).where('name', 'in', names).execute();
  return rows.map((row) => ({ id: Number(row.id), name: row.name, enabled: Number(row.enabled) === 1 }));
}

/** What `endpoints add` and `update` write: every field of the endpoint, validated by the caller. */
export interface EndpointWrite {
  url: string;
  secret: string | null;
  events: readonly string[] | null;
  enabled: boolean;
  headers: Readonly<Record<string, string>>;
  maxInFlight: number | null;
  signing: string;
}

async function idOf(db: Kysely<Database>, name: string): Promise<number | undefined> {
  return (await db.selectFrom('endpoints').select('id').where('name', '=', name).executeTakeFirst())?.id;
}

async function writeHeaders(trx: Kysely<Database>, id: number, headers: Readonly<Record<string, string>>): Promise<void> {
  await trx.deleteFrom('endpoint_headers').where('endpoint_id', '=', id).execute();
  const rows = Object.entries(headers).map(([name, value]) => ({ endpoint_id: id, name, value }));
  if (rows.length > 0) await trx.insertInto('endpoint_headers').values(rows).execute();
}

const rowOf = (endpoint: EndpointWrite) => ({
  url: endpoint.url,
  secret: endpoint.secret,
  events: endpoint.events === null ? null : endpoint.events.join(','),
  enabled: endpoint.enabled ? 1 : 0,
  max_in_flight: endpoint.maxInFlight,
  signing: endpoint.signing,
});

/**
 * A new endpoint with its headers, in one transaction (the unique name refuses a second one). Deliveries left
 * under its name undelivered (abandoned ones too) were recorded for an earlier endpoint of that name (removed
 * while a run held them, or taken out of the config file): an endpoint added later receives only the events
 * recorded after it, so they end unsent (superseded) in the same transaction, before any run can claim them for
 * it. Returns how many. Those a running run holds are left to it: it finds their endpoint gone and ends them so.
 */
export async function insertEndpoint(db: Kysely<Database>, name: string, endpoint: EndpointWrite, now: string, leaseNowMs?: number): Promise<number> {
  return inTransaction(db, async (trx) => {
    await trx
      .insertInto('endpoints')
      .values({ name, ...rowOf(endpoint), created_at: now, updated_at: now })
      .execute();
    await writeHeaders(trx, (await idOf(trx, name))!, endpoint.headers);
    // Those ended earlier (superseded) keep their reason behind a prefix that says whose they were: a reason of the
    // license no longer reads as one, so undoing the license change never re-arms them for the new endpoint.
    const earlier = await trx
      .selectFrom('webhook_deliveries')
      .select(['id', 'status_reason'])
      .where('endpoint', '=', name)
      .where('status', '=', 'superseded')
      .where('status_reason', 'is not', null)
      .where('status_reason', 'not like', 'of an earlier endpoint named %')
      .execute();
    const prefix = `of an earlier endpoint named ${name} (before "endpoints add ${name}" at ${now}): `;
    for (const row of earlier) {
      await trx
        .updateTable('webhook_deliveries')
        .set({ status_reason: clip(prefix + row.status_reason!, MAX_REASON_LENGTH) })
        .where('id', '=', row.id)
        .execute();
    }
    return discardUndelivered(
      trx,
      name,
      `recorded for an earlier endpoint named ${name}, before "endpoints add ${name}" at ${now}: an endpoint added later receives only the events recorded after it`,
      now,
      true,
      leaseNowMs,
    );
  });
}

/** How many deliveries under this name a run holds with a lease still running at `nowMs` (epoch ms). */
export async function heldUnder(db: Kysely<Database>, name: string, nowMs: number): Promise<number> {
  const row = await db
    .selectFrom('webhook_deliveries')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .where('endpoint', '=', name)
    .where('status', '=', 'delivering')
    .where('lease_until', '>=', nowMs)
    .executeTakeFirst();
  return Number(row?.count ?? 0);
}

/** Replaces an endpoint's fields and headers; its earlier secrets are replaced when `previousSecrets` is given. */
export async function updateEndpoint(
  db: Kysely<Database>,
  name: string,
  endpoint: EndpointWrite,
  now: string,
  previousSecrets?: ReadonlyArray<{ secret: string; validUntil: string }>,
): Promise<void> {
  await inTransaction(db, async (trx) => {
    const id = await idOf(trx, name);
    if (id === undefined) throw new Error(`endpoint ${name} is gone`);
    await trx
      .updateTable('endpoints')
      .set({ ...rowOf(endpoint), updated_at: now })
      .where('id', '=', id)
      .execute();
    await writeHeaders(trx, id, endpoint.headers);
    if (previousSecrets) {
      await trx.deleteFrom('endpoint_secrets').where('endpoint_id', '=', id).execute();
      if (previousSecrets.length > 0) {
        await trx
          .insertInto('endpoint_secrets')
          .values(previousSecrets.map((entry) => ({ endpoint_id: id, secret: entry.secret, valid_until: entry.validUntil })))
          .execute();
      }
    }
  });
}

/** What an endpoint has not delivered yet: pending (also while it is disabled), being sent, deferred to a later run, or parked after a 410. */
const UNDELIVERED = ['pending', 'delivering', 'deferred', 'parked'] as const;

/** Deliveries of an endpoint not delivered yet (UNDELIVERED; with `abandoned`, those too: what removing it ends). */
export async function countUndelivered(db: Kysely<Database>, name: string, abandoned = false): Promise<number> {
  const row = await db
    .selectFrom('webhook_deliveries')
    .select(db.fn.countAll<number>().as('count'))
    .where('endpoint', '=', name)
    .where('status', 'in', abandoned ? [...UNDELIVERED, 'abandoned'] : [...UNDELIVERED])
    .executeTakeFirstOrThrow();
  return Number(row.count);
}

/** Deliveries of an endpoint a run holds (being sent): a running run's, or a gone run's whose lease lapsed. */
export async function countHeld(db: Kysely<Database>, name: string): Promise<number> {
  const row = await db
    .selectFrom('webhook_deliveries')
    .select(db.fn.countAll<number>().as('count'))
    .where('endpoint', '=', name)
    .where('status', '=', 'delivering')
    .executeTakeFirstOrThrow();
  return Number(row.count);
}

/**
 * Ends an endpoint's undelivered deliveries unsent: `superseded`, with the reason, attempts kept; returns how many.
 * Never deleted: a delivery row is also the record that its event was found (default's is the only one), and a
 * later run would record the event again and send it. One a running run holds (its lease not run out) is left
 * to that run, which may be about to retry it: marking it would not stop the retry, only hide it.
 */
/** `leaseNowMs`: now on the leases' clock (the database server's on a server), this host's `now` when not given. */
async function discardUndelivered(trx: Kysely<Database>, name: string, reason: string, now: string, abandoned = false, leaseNowMs?: number): Promise<number> {
  const nowMs = leaseNowMs ?? Date.parse(now);
  const result = await trx
    .updateTable('webhook_deliveries')
    .set({ status: 'superseded', status_reason: reason, completed_at: now, next_attempt_at: null, claimed_by: null, lease_until: null })
    .where('endpoint', '=', name)
    .where((eb) =>
      eb.or([
        eb('status', 'in', abandoned ? ['pending', 'deferred', 'parked', 'abandoned'] : ['pending', 'deferred', 'parked']),
        eb.and([eb('status', '=', 'delivering'), eb('lease_until', '<', nowMs)]),
      ]),
    )
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** Enables or disables an endpoint; `discardParked` first ends its undelivered deliveries unsent. Returns how many it ended. */
export async function setEndpointEnabled(
  db: Kysely<Database>,
  name: string,
  enabled: boolean,
  now: string,
  discardParked = false,
  leaseNowMs?: number,
): Promise<number> {
  return inTransaction(db, async (trx) => {
    const dropped = discardParked
      ? await discardUndelivered(trx, name, `discarded by "endpoints enable ${name} --discard-parked" at ${now}`, now, false, leaseNowMs)
      : 0;
    await trx
      .updateTable('endpoints')
      .set({ enabled: enabled ? 1 : 0, updated_at: now })
      .where('name', '=', name)
      .execute();
    return dropped;
  });
}

/** Removes an endpoint, its headers and earlier secrets; its undelivered deliveries end unsent (superseded), all its deliveries stay as history. */
export async function deleteEndpoint(db: Kysely<Database>, name: string, now: string, leaseNowMs?: number): Promise<number> {
  return inTransaction(db, async (trx) => {
    // Its abandoned ones too: with the endpoint gone they could never be re-sent, and would keep status at exit 3.
    const dropped = await discardUndelivered(trx, name, `endpoint ${name} removed with "endpoints remove ${name} --force" at ${now}`, now, true, leaseNowMs);
    const id = await idOf(trx, name);
    if (id !== undefined) {
      await trx.deleteFrom('endpoint_headers').where('endpoint_id', '=', id).execute();
      await trx.deleteFrom('endpoint_secrets').where('endpoint_id', '=', id).execute();
      await trx.deleteFrom('endpoints').where('id', '=', id).execute();
    }
    return dropped;
  });
}

/** Delivery counts per endpoint and status. */
export async function deliveryCountsByEndpoint(db: Kysely<Database>): Promise<Record<string, Record<string, number>>> {
  const rows = await db
    .selectFrom('webhook_deliveries')
    .select(['endpoint', 'status', db.fn.countAll<number>().as('count')])
    .groupBy(['endpoint', 'status'])
    .execute();
  const counts: Record<string, Record<string, number>> = {};
  for (const row of rows) (counts[row.endpoint] ??= {})[row.status] = Number(row.count);
  return counts;
}
