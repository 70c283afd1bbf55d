import type { Kysely, Migration } from 'kysely';
import { addColumn } from './column-types.js';

// A delivery's retry budget carries over between runs: `attempts - schedule_base` attempts of the current
// schedule are spent. `deliveries retry` starts a new schedule by moving the base up to `attempts`.
export const deliverySchedule: Migration = {
  async up(db: Kysely<any>) {
    await addColumn(db, 'webhook_deliveries', 'schedule_base', 'integer', (col) => col.notNull().defaultTo(0));
  },

  async down(db: Kysely<any>) {
    await db.schema.alterTable('webhook_deliveries').dropColumn('schedule_base').execute();
  },
};
