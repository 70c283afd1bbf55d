import type { Kysely } from 'kysely';
import type { Database } from './database.table.js';
import { dialectFor } from '../sql/dialect-for.js';

export async function readSettings(db: Kysely<Database>): Promise<Map<string, string>> {
  const rows = await db.selectFrom('settings').select(['key', 'value']).execute();
  return new Map(rows.map((row) => [row.key, row.value]));
}

export async function writeSetting(db: Kysely<Database>, key: string, value: string, now: string): Promise<void> {
  await dialectFor(db)
    .upsert(db.insertInto('settings').values({ key, value, updated_at: now }), ['key'], { value, updated_at: now })
    .execute();
}

/** Returns whether a stored value was removed. */
export async function deleteSetting(db: Kysely<Database>, key: string): Promise<boolean> {
  const result = await db.deleteFrom('settings').where('key', '=', key).executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}
