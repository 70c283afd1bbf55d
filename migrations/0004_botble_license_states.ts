import type { Kysely, Migration } from 'kysely';
import { columnTypes, createTable } from './column-types.js';

// Botble mode never writes Botble's tables: the status this tool derives for a Botble license (`expired`)
// lives here, keyed by Botble's license id, with the expiry date it was derived from. A renewal moves
// Botble's date, so the row no longer matches and the license reads as active again without a write.
export const botbleLicenseStates: Migration = {
  async up(db: Kysely<any>) {
    const t = columnTypes(db);
    await t
      .table(createTable(db, 'botble_license_states'))
      .addColumn('license_id', 'bigint', (col) => col.primaryKey())
      .addColumn('status', t.key(16), (col) => col.notNull())
      .addColumn('expires_at', t.key(40), (col) => col.notNull())
      .addColumn('updated_at', t.key(40), (col) => col.notNull())
      .execute();
  },

  async down(db: Kysely<any>) {
    await db.schema.dropTable('botble_license_states').execute();
  },
};
