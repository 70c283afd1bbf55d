import { sql, type Kysely, type Migration } from 'kysely';
import { dialectFor } from '../src/sql/dialect-for.js';
import { addColumn, columnTypes } from './column-types.js';

// The field of each event's payload that holds the instant the event is about (the reference's names).
const INSTANT_FIELDS = [
  ['license.expiring', 'expires_at'],
  ['license.expired', 'expired_at'],
  ['license.update_support_expired', 'updates_until'],
] as const;

// An event key holds the date in the zone of the run that recorded it; the instant beside it lets a run in
// another zone (time-zone changed) see the same expiry. A run's `now_at` (its --now, or the clock) lets a
// later run tell a catch-up after the fact; `expired_without_event` and `announce_since` (the --announce-since
// date that would announce them) are what `status` reports as lost notices.
export const eventInstants: Migration = {
  async up(db: Kysely<any>) {
    const t = columnTypes(db);
    await addColumn(db, 'webhook_deliveries', 'event_instant', t.key(40));
    // Bodies are JSON.stringify output: `"expires_at":"` cannot occur inside a string value (its quotes would be
    // escaped), so its first occurrence is the field, followed by the 20 characters `YYYY-MM-DDTHH:MM:SSZ`.
    for (const [type, field] of INSTANT_FIELDS) {
      const marker = `"${field}":"`;
      const position = dialectFor(db).position(sql.ref('body'), marker);
      await db
        .updateTable('webhook_deliveries')
        .set({ event_instant: sql`substr(body, ${position} + ${sql.lit(marker.length)}, 20)` })
        .where('event_type', '=', type)
        .where(position, '>', 0)
        .execute();
    }
    await addColumn(db, 'runs', 'now_at', t.key(40));
    // Earlier runs did not keep their --now: the time they started stands in for it.
    await db
      .updateTable('runs')
      .set({ now_at: sql.ref('started_at') })
      .where('now_at', 'is', null)
      .execute();
    await addColumn(db, 'runs', 'expired_without_event', 'integer', (col) => col.notNull().defaultTo(0));
    await addColumn(db, 'runs', 'announce_since', t.key(10));
  },

  async down(db: Kysely<any>) {
    await db.schema.alterTable('runs').dropColumn('announce_since').execute();
    await db.schema.alterTable('runs').dropColumn('expired_without_event').execute();
    await db.schema.alterTable('runs').dropColumn('now_at').execute();
    await db.schema.alterTable('webhook_deliveries').dropColumn('event_instant').execute();
  },
};
