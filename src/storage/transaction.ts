import type { Kysely, Transaction } from 'kysely';
import type { Database } from './database.table.js';

/**
 * `db.transaction()` that reports the error which ended the transaction. When SQLite rolls back on its own
 * (SQLITE_FULL, SQLITE_IOERR), Kysely's ROLLBACK then fails with "cannot rollback - no transaction is
 * active", and that second error would replace the cause the user needs to see.
 */
export async function inTransaction<T>(db: Kysely<Database>, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  let cause: unknown;
  try {
    return await db.transaction().execute(async (trx) => {
      try {
        return await fn(trx);
      } catch (error) {
        cause = error;
        throw error;
      }
    });
  } catch (error) {
    throw cause ?? error;
  }
}
