import type { Kysely } from 'kysely';
import { dialectFor } from '../sql/dialect-for.js';

/**
 * The database server's clock, in whole epoch milliseconds (as lease_until holds them); undefined on
 * SQLite, whose clock is this host's.
 */
export async function databaseTimeMs(db: Kysely<any>): Promise<number | undefined> {
  return dialectFor(db).serverTimeMs(db);
}

/** Now on the leases' clock, in epoch ms: the database server's, or `hostNowMs` (this host's) on SQLite. */
export async function leaseNowMs(db: Kysely<any>, hostNowMs: number): Promise<number> {
  return (await databaseTimeMs(db)) ?? hostNowMs;
}
