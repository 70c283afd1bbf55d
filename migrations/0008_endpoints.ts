import { sql, type Kysely, type Migration } from 'kysely';
import { perDialect } from '../src/sql/dialect-for.js';
import { rebuildSqliteTable } from '../src/sql/sqlite-rebuild.js';
import { tablePrefixOf } from '../src/sql/table-prefix.js';
import { columnTypes, createIndex, dropIndex } from './column-types.js';

// Several receivers. `endpoints` holds the endpoints an operator adds (the configured webhooks.url/secret, or
// Botble's settings, stay the endpoint `default` and are no row). Each delivery belongs to one endpoint: rows
// written before this migration belong to `default`, and one event is recorded once per endpoint, so the
// unique keys become (event_key, endpoint) and (event_id, endpoint): the event id stays the same for every
// receiver, as Svix's message id does. Every step checks what is there first: MySQL commits DDL at once, so a
// migrate cut off half-way is simply run again.
const DELIVERIES = 'webhook_deliveries';
const OLD_UNIQUE = ['event_id', 'event_key'] as const;
const NEW_UNIQUE = [
  ['webhook_deliveries_event_id_endpoint', ['event_id', 'endpoint']],
  ['webhook_deliveries_event_key_endpoint', ['event_key', 'endpoint']],
] as const;

const STATUS_ENDPOINT_INDEX = 'webhook_deliveries_status_endpoint';

export const endpoints: Migration = {
  async up(db: Kysely<any>) {
    const t = columnTypes(db);
    const time = t.key(40);
    // Bounded columns on every dialect (no TEXT on MySQL): the caps are those of src/webhooks/endpoint-spec.ts
    // and src/config/schema.ts. Headers and earlier secrets have a row each, not a JSON document.
    await t
      .table(db.schema.createTable('endpoints').ifNotExists())
      .addColumn('id', t.idType, t.id)
      .addColumn('name', t.key(64), (col) => col.notNull().unique())
      .addColumn('url', t.key(8192), (col) => col.notNull())
      .addColumn('secret', t.key(1024))
      // Comma-separated event types; null takes every type.
      .addColumn('events', t.key(1024))
      .addColumn('enabled', 'integer', (col) => col.notNull().defaultTo(1))
      .addColumn('max_in_flight', 'integer')
      .addColumn('signing', t.key(16), (col) => col.notNull().defaultTo('botble'))
      .addColumn('created_at', time, (col) => col.notNull())
      .addColumn('updated_at', time, (col) => col.notNull())
      .execute();
    // Secrets replaced by a rotation that stay valid until `valid_until` (src/webhooks/secret-rotation.ts).
    await t
      .table(db.schema.createTable('endpoint_secrets').ifNotExists())
      .addColumn('id', t.idType, t.id)
      .addColumn('endpoint_id', 'integer', (col) => col.notNull().references('endpoints.id').onDelete('cascade'))
      .addColumn('secret', t.key(1024), (col) => col.notNull())
      .addColumn('valid_until', time, (col) => col.notNull())
      .execute();
    await t
      .table(db.schema.createTable('endpoint_headers').ifNotExists())
      .addColumn('endpoint_id', 'integer', (col) => col.notNull().references('endpoints.id').onDelete('cascade'))
      .addColumn('name', t.key(256), (col) => col.notNull())
      .addColumn('value', t.key(4096), (col) => col.notNull())
      .addPrimaryKeyConstraint(`${tablePrefixOf(db)}endpoint_headers_pkey`, ['endpoint_id', 'name'])
      .execute();
    await perDialect(db, { sqlite: () => rebuildSqlite(db), postgres: () => upPostgres(db), mysql: () => upMysql(db) });
    // Each endpoint is claimed on its own: pending rows of one endpoint in id order, past any parked ones.
    await createIndex(db, STATUS_ENDPOINT_INDEX, DELIVERIES, ['status', 'endpoint', 'id']);
  },

  async down(db: Kysely<any>) {
    // Deliveries to the other endpoints go: the schema before has no place for them.
    await db.deleteFrom(DELIVERIES).where('endpoint', '<>', 'default').execute();
    await dropIndex(db, STATUS_ENDPOINT_INDEX, DELIVERIES);
    await perDialect(db, {
      sqlite: () => rebuildSqlite(db, 'down'),
      postgres: () =>
        downServer(db, (name) =>
          db.schema
            .alterTable(DELIVERIES)
            .dropConstraint(`${tablePrefixOf(db)}${name}`)
            .execute(),
        ),
      mysql: () => downServer(db, (name) => db.schema.dropIndex(name).on(DELIVERIES).execute()),
    });
    await db.schema.dropTable('endpoint_headers').execute();
    await db.schema.dropTable('endpoint_secrets').execute();
    await db.schema.dropTable('endpoints').execute();
  },
};

/** The single-column unique keys back, the per-endpoint ones (dropped by `dropUnique`) and the column gone. */
async function downServer(db: Kysely<any>, dropUnique: (name: string) => Promise<unknown>): Promise<void> {
  for (const column of OLD_UNIQUE)
    await db.schema
      .alterTable(DELIVERIES)
      .addUniqueConstraint(`${tablePrefixOf(db)}${DELIVERIES}_${column}_key`, [column])
      .execute();
  for (const [name] of NEW_UNIQUE) await dropUnique(name);
  await db.schema.alterTable(DELIVERIES).dropColumn('endpoint').execute();
}

async function upPostgres(db: Kysely<any>): Promise<void> {
  const prefix = tablePrefixOf(db);
  await sql`alter table ${sql.table(DELIVERIES)} add column if not exists endpoint varchar(64) collate "C" not null default 'default'`.execute(db);
  // Constraint (and index) names share one namespace per schema: the prefix keeps two installations apart.
  for (const [name, columns] of NEW_UNIQUE) {
    const { rows } = await sql<{ found: number }>`select 1 as found from pg_constraint where conname = ${prefix + name}`.execute(db);
    if (rows.length === 0)
      await db.schema
        .alterTable(DELIVERIES)
        .addUniqueConstraint(`${prefix}${name}`, [...columns])
        .execute();
  }
  // The single-column unique constraints of 0001, whatever the server named them.
  const { rows } = await sql<{ name: string; definition: string }>`
    select conname as name, pg_get_constraintdef(oid) as definition from pg_constraint
    where contype = 'u' and conrelid = ${`"${prefix}${DELIVERIES}"`}::regclass`.execute(db);
  for (const row of rows) {
    if (OLD_UNIQUE.some((column) => row.definition === `UNIQUE (${column})`)) await db.schema.alterTable(DELIVERIES).dropConstraint(row.name).execute();
  }
}

async function upMysql(db: Kysely<any>): Promise<void> {
  const table = `${tablePrefixOf(db)}${DELIVERIES}`;
  const { rows: columns } = await sql<{ found: number }>`
    select 1 as found from information_schema.columns where table_schema = database() and table_name = ${table} and column_name = 'endpoint'`.execute(db);
  if (columns.length === 0) {
    await db.schema
      .alterTable(DELIVERIES)
      .addColumn('endpoint', sql`varchar(64)`, (col) => col.notNull().defaultTo('default'))
      .execute();
  }
  const indexes = async () =>
    (
      await sql<{ name: string; columns: string }>`
        select index_name as name, group_concat(column_name order by seq_in_index) as columns from information_schema.statistics
        where table_schema = database() and table_name = ${table} and non_unique = 0 group by index_name`.execute(db)
    ).rows;
  const before = await indexes();
  for (const [name, wanted] of NEW_UNIQUE) {
    // The table prefix plugin prefixes index names too.
    if (!before.some((index) => index.name === `${tablePrefixOf(db)}${name}`))
      await db.schema
        .createIndex(name)
        .on(DELIVERIES)
        .columns([...wanted])
        .unique()
        .execute();
  }
  // Added first, dropped after: the event stays unique at every moment, and lookups by event id keep an index.
  for (const index of before) {
    if ((OLD_UNIQUE as readonly string[]).includes(index.columns)) await sql`alter table ${sql.table(DELIVERIES)} drop index ${sql.id(index.name)}`.execute(db);
  }
}

/** SQLite cannot drop a column's UNIQUE: the table is rebuilt (src/sql/sqlite-rebuild.ts), with or without `endpoint`. */
async function rebuildSqlite(db: Kysely<any>, direction: 'up' | 'down' = 'up'): Promise<void> {
  await rebuildSqliteTable(db, DELIVERIES, {
    dropColumns: ['endpoint'],
    rewrite: (create) => {
      if (/"endpoint"/.test(create) === (direction === 'up')) return undefined;
      let definition = create;
      if (direction === 'up') {
        for (const column of OLD_UNIQUE) definition = definition.replace(new RegExp(`("${column}" text not null) unique`), '$1');
        return definition.replace(/\)\s*$/, `, "endpoint" text default 'default' not null, unique ("event_id", "endpoint"), unique ("event_key", "endpoint"))`);
      }
      for (const column of OLD_UNIQUE) definition = definition.replace(new RegExp(`("${column}" text not null)`), '$1 unique');
      return definition.replace(
        /, "endpoint" text default 'default' not null, unique \("event_id", "endpoint"\), unique \("event_key", "endpoint"\)\)\s*$/,
        ')',
      );
    },
  });
}
