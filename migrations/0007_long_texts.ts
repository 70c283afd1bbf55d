import { sql, type Kysely, type Migration } from 'kysely';
import { perDialect } from '../src/sql/dialect-for.js';

// MySQL/MariaDB's TEXT holds 65,535 bytes: an event body with a long customer name or product name passed it,
// and a lax server cut it (the receiver got invalid JSON under a valid signature). LONGTEXT holds 4 GiB, as
// TEXT does on SQLite and PostgreSQL (a no-op there). MODIFY restates each column whole, so each step may
// run twice (MySQL commits DDL at once: a migrate cut off half-way is simply run again).
const LONG_COLUMNS: ReadonlyArray<readonly [table: string, column: string, notNull: boolean]> = [
  ['licenses', 'product_id', false],
  ['licenses', 'product_name', false],
  ['licenses', 'customer_id', false],
  ['licenses', 'email', false],
  ['settings', 'value', true],
  ['webhook_deliveries', 'body', true],
  ['webhook_deliveries', 'last_error', false],
  ['webhook_attempts', 'error', false],
  ['runs', 'error', false],
];

export const longTexts: Migration = {
  async up(db: Kysely<any>) {
    await retype(db, 'longtext');
  },

  async down(db: Kysely<any>) {
    // Fails, changing nothing in that column, while a value longer than TEXT holds is stored (sessions are strict).
    await retype(db, 'text');
  },
};

async function retype(db: Kysely<any>, type: 'longtext' | 'text'): Promise<void> {
  await perDialect(db, {
    sqlite: async () => undefined,
    postgres: async () => undefined,
    mysql: async () => {
      for (const [table, column, notNull] of LONG_COLUMNS) {
        await db.schema
          .alterTable(table)
          .modifyColumn(column, sql.raw(type), (col) => (notNull ? col.notNull() : col))
          .execute();
      }
    },
  });
}
