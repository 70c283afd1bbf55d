import { sql, type Kysely } from 'kysely';
import { dialectOf } from './dialect.js';

/**
 * The database server's clock, in whole epoch milliseconds (as lease_until holds them); undefined on
 * SQLite, whose clock is this host's.
 * MySQL/MariaDB: microseconds since the epoch from UTC_TIMESTAMP, which no session time zone converts.
 */
export async function databaseTimeMs(db: Kysely<any>): Promise<number | undefined> {
  switch (dialectOf(db)) {
    case 'sqlite':
      return undefined;
    case 'postgres': {
      const { rows } = await sql<{ ms: string | number }>`select extract(epoch from clock_timestamp()) * 1000 as ms`.execute(db);
      return Math.floor(Number(rows[0]!.ms));
    }
    case 'mysql': {
      const { rows } = await sql<{ us: string | number }>`select timestampdiff(microsecond, '1970-01-01 00:00:00', utc_timestamp(6)) as us`.execute(db);
      return Math.floor(Number(rows[0]!.us) / 1000);
    }
  }
}
