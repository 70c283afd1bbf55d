import type { Kysely, Transaction } from 'kysely';
import type { Database } from './database.table.js';

/**
 * A transaction that reports the error which ended it. When SQLite rolls back on its own (SQLITE_FULL,
 * SQLITE_IOERR), in a statement or in the COMMIT, the ROLLBACK that follows fails with "cannot rollback -
 * no transaction is active"; `db.transaction()` would throw that second error and hide the cause.
 */
export async function inTransaction<T>(db: Kysely<Database>, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  const trx = await db.startTransaction().execute();
  let result: T;
  try {
    result = await fn(trx);
    await trx.commit().execute();
  } catch (error) {
    // The connection is released whether or not the rollback succeeds.
    await trx
      .rollback()
      .execute()
      .catch(() => undefined);
    throw error;
  }
  return result;
}
