import { sql, type Expression, type InsertQueryBuilder, type Kysely, type RawBuilder, type UpdateQueryBuilder } from 'kysely';
import { FIRST_DATE, LAST_DATE, type SqlDialect, type Statement, type UpdateReturningSpec, type ValuesUpdate } from './sql-dialect.js';

/** Whether a date (or its text) lies from FIRST_DATE to LAST_DATE: the start of SqlDialect.isDate. */
export function inDateRange(expression: Expression<unknown>): RawBuilder<boolean> {
  return sql<boolean>`${expression} between ${sql.lit(FIRST_DATE)} and ${sql.lit(LAST_DATE)}`;
}

/**
 * What SQLite and PostgreSQL write alike (ON CONFLICT, RETURNING, UPDATE … FROM): sqlite.ts and postgres.ts
 * take these; mysql.ts has its own.
 */
export const standardWrites: Pick<
  SqlDialect,
  'insertIgnore' | 'refused' | 'upsert' | 'upsertClause' | 'updateFromValues' | 'createTable' | 'createIndex' | 'addColumn' | 'dropIndex'
> = {
  async insertIgnore(insert, key) {
    const result = await insert.onConflict((conflict) => conflict.columns([...key]).doNothing()).executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0n);
  },
  refused: (column) => sql`excluded.${sql.id(column)}`,
  upsert: <Q extends InsertQueryBuilder<any, any, any>>(insert: Q, key: readonly string[], set: Record<string, unknown>): Q =>
    insert.onConflict((conflict) => conflict.columns([...key]).doUpdateSet(set)) as Q,
  upsertClause: (key, set) => sql`on conflict (${sql.join(key.map((column) => sql.id(column)))}) do update set ${assignments(set)}`,
  updateFromValues,
  createTable: (db, table) => db.schema.createTable(table),
  async addColumn(db, table, column, type, build = (definition) => definition) {
    await db.schema.alterTable(table).addColumn(column, type, build).execute();
  },
  async createIndex(db, name, table, columns) {
    await db.schema.createIndex(name).on(table).columns(columns).ifNotExists().execute();
  },
  async dropIndex(db, name) {
    await db.schema.dropIndex(name).execute();
  },
};

/** The UPDATE with RETURNING: the whole rows, or their ids. */
export function returning<R>(update: UpdateQueryBuilder<any, any, any, any>, readBack: UpdateReturningSpec<unknown>['readBack']): Promise<R[]> {
  return (readBack === 'rows' ? update.returningAll() : update.returning('id')).execute() as Promise<R[]>;
}

/** `a = x, b = y` of a SET list. */
export function assignments(set: Record<string, Expression<unknown>>): RawBuilder<unknown> {
  return sql.join(Object.entries(set).map(([column, value]) => sql`${sql.id(column)} = ${value}`));
}

/**
 * One `UPDATE … FROM` a named list of values, instead of one statement per row. PostgreSQL receives the
 * parameters in VALUES as text: the first row's casts type each column (SQLite takes the same casts as no-ops).
 */
function updateFromValues(trx: Kysely<any>, update: ValuesUpdate): Statement {
  const columns = Object.keys(update.types);
  const rows = update.rows.map(
    (row, index) =>
      sql`(${sql.join(columns.map((column) => (index === 0 ? sql`cast(${row[column]} as ${sql.raw(update.types[column]!)})` : sql`${row[column]}`)))})`,
  );
  const value = (column: string) => sql.ref(`v.${column}`);
  const stored = (column: string) => sql.ref(`d.${column}`);
  const statement = sql`
    with v (${sql.join(columns.map((column) => sql.id(column)))}) as (values ${sql.join(rows)})
    update ${sql.table(update.table)} as d set ${assignments(update.set(value, stored))}
    from v
    where d.id = v.id and ${update.where(stored)}`;
  return { compile: () => statement.compile(trx) };
}
