import type { Kysely, Migration } from 'kysely';

// A delivery's retry budget carries over between runs: `attempts - schedule_base` attempts of the current
// schedule are spent. `deliveries retry` starts a new schedule by moving the base up to `attempts`.
export const deliverySchedule: Migration = {
  async up(db: Kysely<any>) {
    await db.schema
      .alterTable('webhook_deliveries')
      .addColumn('schedule_base', 'integer', (col) => col.notNull().defaultTo(0))
      .execute();
  },

  async down(db: Kysely<any>) {
    await db.schema.alterTable('webhook_deliveries').dropColumn('schedule_base').execute();
  },
};
