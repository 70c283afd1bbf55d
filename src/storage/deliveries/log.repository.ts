import type { Kysely, Selectable } from 'kysely';
import { chunksOf } from '../../sql/chunks.js';
import type { Database, DeliveryStatus, WebhookAttemptsTable, WebhookDeliveriesTable } from '../database.table.js';

// The delivery log as commands read it: deliveries list, show and the ids behind them.
export type DeliveryRow = Selectable<WebhookDeliveriesTable>;
export type AttemptRow = Selectable<WebhookAttemptsTable>;

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
  for (const chunk of chunksOf(ids)) {
    const rows = await db.selectFrom('webhook_deliveries').select(['id', 'license_id']).where('id', 'in', chunk).where('license_id', 'is not', null).execute();
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

/** These deliveries (their rows, in id order), read a chunk of ids at a time. */
export async function deliveriesByIds(db: Kysely<Database>, ids: readonly number[]): Promise<DeliveryRow[]> {
  const rows: DeliveryRow[] = [];
  for (const chunk of chunksOf([...ids])) rows.push(...(await db.selectFrom('webhook_deliveries').selectAll().where('id', 'in', chunk).execute()));
  return rows.sort((a, b) => a.id - b.id);
}

/** The largest delivery id so far (0 for none): rows after it were recorded later. */
export async function maxDeliveryId(db: Kysely<Database>): Promise<number> {
  const row = await db
    .selectFrom('webhook_deliveries')
    .select((eb) => eb.fn.max<number | null>('id').as('id'))
    .executeTakeFirst();
  return Number(row?.id ?? 0);
}
