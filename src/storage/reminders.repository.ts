import type { Kysely } from 'kysely';
import type { Database } from './database.table.js';
import { dialectFor } from '../sql/dialect-for.js';

// The forecast reads up to a few hundred thousand rows by index, each a lookup in the table: memory-mapped
// reads make that 2-3 times faster on SQLite (address space only; this command writes nothing).
const FORECAST_MMAP_BYTES = 1024 * 1024 * 1024;

/**
 * The product ids licenses carry (Botble mode: the reference ids in `<prefix>licenses`), for the warning about
 * a product schedule that names no product. A separate file so the license sources stay as they are.
 */
export async function productIdsInUse(
  db: Kysely<Database>,
  source: { licenses: { source: 'own' | 'botble' }; botble: { tablePrefix: string } },
): Promise<string[]> {
  if (source.licenses.source === 'botble') {
    // Botble's tables carry no prefix of ours: queried by their full names, as botble.repository does.
    const raw = db.withoutPlugins() as unknown as Kysely<Record<string, { product_reference_id: string | null }>>;
    const rows = await raw.selectFrom(`${source.botble.tablePrefix}licenses`).select('product_reference_id').distinct().execute();
    return rows.flatMap((row) => (row.product_reference_id === null ? [] : [String(row.product_reference_id)]));
  }
  const rows = await db.selectFrom('licenses').select('product_id').distinct().execute();
  return rows.flatMap((row) => (row.product_id === null ? [] : [row.product_id]));
}

/** What the forecast reads of a license: no more, so a million rows cost what they must. */
export interface ForecastRow {
  id: number;
  product_id: string | null;
  status: string;
  expires_at: string | null;
  updates_until: string | null;
}

/**
 * Our licenses that may have a notice in a forecast's range: active or expired with expires_at in
 * [fromDay, expiresBeforeDay), or updates_until in [fromDay, supportBeforeDay) (text bounds, as the job's
 * scans). Two range scans on the (status, date) indexes, merged by id.
 */
export async function forecastCandidates(
  db: Kysely<Database>,
  window: { fromDay: string; expiresBeforeDay: string; supportBeforeDay: string },
): Promise<ForecastRow[]> {
  const columns = ['id', 'product_id', 'status', 'expires_at', 'updates_until'] as const;
  await dialectFor(db).beforeLargeScan(db, FORECAST_MMAP_BYTES);
  const scan = (column: 'expires_at' | 'updates_until', before: string) =>
    db
      .selectFrom('licenses')
      .select(columns)
      .where('status', 'in', ['active', 'expired'])
      .where(column, '>=', window.fromDay)
      .where(column, '<', before)
      .execute();
  const byExpiry = await scan('expires_at', window.expiresBeforeDay);
  const bySupport = await scan('updates_until', window.supportBeforeDay);
  if (bySupport.length === 0) return byExpiry;
  const seen = new Set(byExpiry.map((row) => row.id));
  return [...byExpiry, ...bySupport.filter((row) => !seen.has(row.id))];
}
