import type { Kysely } from 'kysely';
import { dialectFor } from '../sql/dialect-for.js';

/**
 * The database server's clock, in whole epoch milliseconds (as lease_until holds them); undefined on
 * SQLite, whose clock is this host's.
 */
export async function databaseTimeMs(db: Kysely<any>): Promise<number | undefined> {
  return dialectFor(db).serverTimeMs(db);
}
