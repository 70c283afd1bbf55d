import { sql, type Kysely, type Migration } from 'kysely';
import { perDialect } from '../src/sql/dialect-for.js';
import { rebuildSqliteTable } from '../src/sql/sqlite-rebuild.js';
import { tablePrefixOf } from '../src/sql/table-prefix.js';
import { columnTypes, createIndex, dropIndex, hasColumn } from './column-types.js';

// Retries that outlive a run (issue 19). A delivery may now wait between runs: `deferred` until `next_attempt_at`
// (a retryable failure, an open circuit, a Retry-After), `parked` while its endpoint is disabled (by an operator,
// or by a 410 Gone), `superseded` when the license changed while it waited; `status_reason` says why. What a run
// learns about an endpoint (its circuit, a 410 that disabled it) is kept in `endpoint_states`, by endpoint
// name: `default` and the config file's endpoints have no `endpoints` row. `runs` counts what a run deferred,
// parked and superseded. Every step checks what is there first: MySQL commits DDL at once, so a migrate cut
// off half-way is simply run again.
const DELIVERIES = 'webhook_deliveries';
const OLD_STATUSES = ['pending', 'delivering', 'delivered', 'abandoned'] as const;
const STATUSES = ['pending', 'delivering', 'delivered', 'deferred', 'parked', 'superseded', 'abandoned'] as const;
/** The name the new check gets (prefixed): PostgreSQL named 0001's the same, MySQL and MariaDB did not. */
const STATUS_CHECK = 'webhook_deliveries_status_check';
/** "Deferred and due, oldest first", per endpoint as runs claim: `status = 'deferred' and endpoint = ? and next_attempt_at <= ? order by id`. */
const DUE_INDEX = 'webhook_deliveries_status_endpoint_next_attempt';
const RUN_COUNTS = ['deferred', 'parked', 'superseded'] as const;

const statusList = (statuses: readonly string[]) => sql.raw(statuses.map((status) => `'${status}'`).join(', '));

export const retries: Migration = {
  async up(db: Kysely<any>) {
    const t = columnTypes(db);
    // Times as every other time column: `YYYY-MM-DDTHH:MM:SSZ`, sorting as text.
    if (!(await hasColumn(db, DELIVERIES, 'next_attempt_at'))) await db.schema.alterTable(DELIVERIES).addColumn('next_attempt_at', t.key(40)).execute();
    // Bounded on every dialect, as 0008's columns (no TEXT on MySQL, whose TEXT is cut at 64 KiB): the engine keeps a reason under 2,000 characters.
    if (!(await hasColumn(db, DELIVERIES, 'status_reason'))) await db.schema.alterTable(DELIVERIES).addColumn('status_reason', t.key(2048)).execute();
    await allowStatuses(db, STATUSES);
    await createIndex(db, DUE_INDEX, DELIVERIES, ['status', 'endpoint', 'next_attempt_at', 'id']);
    await t
      .table(db.schema.createTable('endpoint_states').ifNotExists())
      .addColumn('endpoint', t.key(64), (col) => col.primaryKey())
      // src/delivery/circuit.ts StoredCircuit as JSON; null: closed and never failed.
      .addColumn('circuit', t.key(4096))
      // Set when a 410 Gone disabled the endpoint; `endpoints enable` clears both.
      .addColumn('disabled_at', t.key(40))
      .addColumn('disabled_reason', t.key(1024))
      .addColumn('updated_at', t.key(40), (col) => col.notNull())
      .execute();
    for (const column of RUN_COUNTS) {
      if (!(await hasColumn(db, 'runs', column)))
        await db.schema
          .alterTable('runs')
          .addColumn(column, 'integer', (col) => col.notNull().defaultTo(0))
          .execute();
    }
  },

  async down(db: Kysely<any>) {
    // The waiting states go back to what the schema before knows: waiting to be sent, or given up.
    await db.updateTable(DELIVERIES).set({ status: 'pending' }).where('status', 'in', ['deferred', 'parked']).execute();
    await db.updateTable(DELIVERIES).set({ status: 'abandoned' }).where('status', '=', 'superseded').execute();
    for (const column of RUN_COUNTS) await db.schema.alterTable('runs').dropColumn(column).execute();
    await db.schema.dropTable('endpoint_states').execute();
    await dropIndex(db, DUE_INDEX, DELIVERIES);
    await allowStatuses(db, OLD_STATUSES);
    await db.schema.alterTable(DELIVERIES).dropColumn('status_reason').execute();
    await db.schema.alterTable(DELIVERIES).dropColumn('next_attempt_at').execute();
  },
};

/** Replaces the CHECK on `webhook_deliveries.status` with one that takes exactly `statuses`, unless it already does. */
async function allowStatuses(db: Kysely<any>, statuses: readonly string[]): Promise<void> {
  const wanted = (clause: string) =>
    statuses.every((status) => clause.includes(`'${status}'`)) && !STATUSES.some((status) => !statuses.includes(status) && clause.includes(`'${status}'`));
  return perDialect(db, {
    sqlite: () =>
      rebuildSqliteTable(db, DELIVERIES, {
        rewrite: (create) => {
          const check = /check \(status in \(([^)]*)\)\)/.exec(create);
          if (!check) throw new Error(`${tablePrefixOf(db)}${DELIVERIES} has no check on status to replace`);
          return wanted(check[1]!) ? undefined : create.replace(check[0], `check (status in (${statuses.map((status) => `'${status}'`).join(', ')}))`);
        },
      }),
    postgres: async () => {
      const checks = async () =>
        (
          await sql<{ name: string; definition: string }>`
            select conname as name, pg_get_constraintdef(oid) as definition from pg_constraint
            where contype = 'c' and conrelid = ${`"${tablePrefixOf(db)}${DELIVERIES}"`}::regclass`.execute(db)
        ).rows.filter((row) => row.definition.includes("'delivering'"));
      const before = await checks();
      if (before.some((row) => wanted(row.definition))) return;
      for (const row of before) await db.schema.alterTable(DELIVERIES).dropConstraint(row.name).execute();
      await db.schema
        .alterTable(DELIVERIES)
        .addCheckConstraint(`${tablePrefixOf(db)}${STATUS_CHECK}`, sql`status in (${statusList(statuses)})`)
        .execute();
    },
    mysql: async () => {
      // MariaDB keeps 0001's column-level check under the column's name (another table's may share it) and drops it
      // only with the column's definition; MySQL 8 made it a table check named <table>_chk_1, dropped by name.
      const checks = async () =>
        (
          await sql<{ name: string; clause: string }>`
            select tc.constraint_name as name, cc.check_clause as clause from information_schema.table_constraints tc
            join information_schema.check_constraints cc on cc.constraint_schema = tc.constraint_schema and cc.constraint_name = tc.constraint_name
            where tc.table_schema = database() and tc.table_name = ${`${tablePrefixOf(db)}${DELIVERIES}`} and tc.constraint_type = 'CHECK'`.execute(db)
        ).rows.filter((row) => row.clause.includes("'delivering'"));
      let before = await checks();
      if (before.some((row) => wanted(row.clause))) return;
      if (before.length > 0) {
        await db.schema
          .alterTable(DELIVERIES)
          .modifyColumn('status', sql`varchar(16)`, (col) => col.notNull())
          .execute();
        before = await checks();
      }
      for (const row of before) await sql`alter table ${sql.table(DELIVERIES)} drop constraint ${sql.id(row.name)}`.execute(db);
      await db.schema
        .alterTable(DELIVERIES)
        .addCheckConstraint(`${tablePrefixOf(db)}${STATUS_CHECK}`, sql`status in (${statusList(statuses)})`)
        .execute();
    },
  });
}
