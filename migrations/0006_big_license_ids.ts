import { sql, type Kysely, type Migration } from 'kysely';
import { perDialect } from '../src/sql/dialect-for.js';
import { tablePrefixOf } from '../src/sql/table-prefix.js';

// Botble's lm_licenses.id is BIGINT: an id past 2,147,483,647 failed every PostgreSQL run ("out of range") and
// was clamped on MySQL/MariaDB. Every column that holds a license id is 64-bit from here on: SQLite's
// INTEGER already is, and botble_license_states.license_id was created bigint. Each step may run twice
// (MySQL commits DDL at once, so a migrate cut off half-way is simply run again).
export const bigLicenseIds: Migration = {
  async up(db: Kysely<any>) {
    await widen(db, 'bigint');
  },

  async down(db: Kysely<any>) {
    // Fails, changing nothing on PostgreSQL, while an id above 2,147,483,647 is stored.
    await widen(db, 'integer');
  },
};

async function widen(db: Kysely<any>, type: 'bigint' | 'integer'): Promise<void> {
  await perDialect(db, {
    sqlite: async () => undefined,
    postgres: async () => {
      await db.schema
        .alterTable('licenses')
        .alterColumn('id', (column) => column.setDataType(type))
        .execute();
      // The serial's sequence is typed too: an integer sequence stops at 2^31 - 1, and setval() above it fails.
      // Quoted: the name is read as SQL, and a prefix with capitals would otherwise be folded to lower case.
      const { rows } = await sql<{ name: string | null }>`select pg_get_serial_sequence(${`"${tablePrefixOf(db)}licenses"`}, 'id') as name`.execute(db);
      if (rows[0]?.name) await sql`alter sequence ${sql.raw(rows[0].name)} as ${sql.raw(type)}`.execute(db);
      await db.schema
        .alterTable('webhook_deliveries')
        .alterColumn('license_id', (column) => column.setDataType(type))
        .execute();
    },
    mysql: async () => {
      // MODIFY restates the whole column: the primary key (an index) stays, auto_increment and NOT NULL are repeated.
      await db.schema
        .alterTable('licenses')
        .modifyColumn('id', type, (column) => column.notNull().autoIncrement())
        .execute();
      await db.schema.alterTable('webhook_deliveries').modifyColumn('license_id', type).execute();
    },
  });
}
