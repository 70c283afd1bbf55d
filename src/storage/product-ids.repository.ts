import type { Kysely } from 'kysely';
import type { Database } from './database.table.js';

/**
 * The product ids licenses carry (Botble mode: the reference ids in `<prefix>licenses`), for the warning about
 * a product schedule that names no product. A separate file so the license sources stay as they are.
 */
export async function productIdsInUse(db: Kysely<Database>, source: { licenses: { source: 'own' | 'botble' }; botble: { tablePrefix: string } }): Promise<string[]> {
  if (source.licenses.source === 'botble') {
    // Botble's tables carry no prefix of ours: queried by their full names, as botble.repository does.
    const raw = db.withoutPlugins() as unknown as Kysely<Record<string, { product_reference_id: string | null }>>;
    const rows = await raw.selectFrom(`${source.botble.tablePrefix}licenses`).select('product_reference_id').distinct().execute();
    return rows.flatMap((row) => (row.product_reference_id === null ? [] : [String(row.product_reference_id)]));
  }
  const rows = await db.selectFrom('licenses').select('product_id').distinct().execute();
  return rows.flatMap((row) => (row.product_id === null ? [] : [row.product_id]));
}
