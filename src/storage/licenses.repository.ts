import { sql, type ExpressionBuilder, type Kysely, type RawBuilder, type Selectable } from 'kysely';
import type { Database, LicensesTable } from './database.table.js';
import { chunksOf, IDS_PER_STATEMENT } from '../sql/chunks.js';
import { errorCode } from '../sql/db-errors.js';
import { dialectFor } from '../sql/dialect-for.js';
import type { SqlDialect } from '../sql/sql-dialect.js';
import type { LicenseStatus } from '../expirations/license-status.js';
import { temporaryTableRefused } from './mysql-privileges.js';

export type LicenseRow = Selectable<LicensesTable>;

export { LICENSE_STATUSES, type LicenseStatus } from '../expirations/license-status.js';

/** A validated import row: `license_code` always, other columns only when the file has them. */
export interface LicenseInput {
  id?: number;
  license_code: string;
  product_id?: string | null;
  product_name?: string | null;
  customer_id?: string | null;
  email?: string | null;
  status?: LicenseStatus;
  expires_at?: string | null;
  updates_until?: string | null;
}

/** What a value must fit in our licenses table on each dialect (the column types of src/sql's dialects). */
export interface LicenseColumnLimits {
  /** Largest id: a 64-bit integer everywhere (migration 0006), as far as a JS number is exact. */
  maxId: number;
  /** license_code: VARCHAR(255) on MySQL, counted in characters. */
  maxCodeCharacters?: number;
  /** product_id, product_name, customer_id, email: a byte limit, where a column has one (none since migration 0007 made MySQL's LONGTEXT). */
  maxTextBytes?: number;
  /** PostgreSQL's text cannot hold the NUL character (U+0000). */
  noNul?: boolean;
}

/** What a value must fit in our licenses table on `db`'s dialect; SQLite's, the widest, without one. */
export function licenseColumnLimits(db?: Kysely<Database>): LicenseColumnLimits {
  const { keyCharacters, noNul } = db ? dialectFor(db).textLimits : {};
  return {
    maxId: Number.MAX_SAFE_INTEGER,
    ...(keyCharacters === undefined ? {} : { maxCodeCharacters: keyCharacters }),
    ...(noNul === undefined ? {} : { noNul }),
  };
}

export interface UpsertResult {
  inserted: number;
  updated: number;
  /** Rows that matched the stored license in every column they carry: not written. */
  unchanged: number;
}

const UPDATABLE = ['product_id', 'product_name', 'customer_id', 'email', 'status', 'expires_at', 'updates_until'] as const;

/**
 * An import row's id belongs to another license_code: said by us on every dialect, with the row (`position`, 1-based
 * in the inputs) and both codes. The primary key of SQLite and PostgreSQL would refuse it too, but naming neither;
 * MySQL's upsert would silently update the other license.
 */
export class LicenseIdTaken extends Error {
  constructor(
    readonly id: number,
    readonly owner: string,
    readonly licenseCode: string,
    readonly position: number,
  ) {
    super(`id ${id} belongs to license_code "${owner}", not "${licenseCode}"`);
    this.name = 'LicenseIdTaken';
  }
}

/**
 * An import row gives an id that is not the id of the stored license with its license_code: an import never
 * changes a license's id (deliveries and Botble refer to it), and silently keeping the stored one hid the mistake.
 * `input` is the row as given, so the caller can name its line.
 */
export class LicenseIdMismatch extends Error {
  constructor(
    readonly id: number,
    readonly storedId: number,
    readonly licenseCode: string,
    readonly position: number,
    readonly input: LicenseInput,
  ) {
    super(`id ${id} does not match license_code "${licenseCode}"'s id ${storedId}`);
    this.name = 'LicenseIdMismatch';
  }
}

/** The same id twice in one import (for two license_codes): `first` and `repeat` are 1-based positions in the inputs. */
export class RepeatedLicenseId extends Error {
  constructor(
    readonly id: number,
    readonly first: number,
    readonly repeat: number,
  ) {
    super(`id ${id} at position ${repeat} repeats position ${first}`);
    this.name = 'RepeatedLicenseId';
  }
}

/** The same license_code twice in one import: `first` and `repeat` are 1-based positions in the inputs. */
export class RepeatedLicenseCode extends Error {
  constructor(
    readonly licenseCode: string,
    readonly first: number,
    readonly repeat: number,
  ) {
    super(`license_code "${licenseCode}" at position ${repeat} repeats position ${first}`);
    this.name = 'RepeatedLicenseCode';
  }
}

// Codes already written by this import, kept by the database (a temp table spills to disk) rather than in a
// Map: a million codes in the heap made the process's memory double the file's size.
type ImportCodes = { import_codes: { license_code: string; position: number }; import_ids: { id: number; position: number } };

// A temporary table per session; codes compare byte for byte, as license_code does in each dialect.
const MYSQL_REFUSED = new Set(['ER_DBACCESS_DENIED_ERROR', 'ER_TABLEACCESS_DENIED_ERROR', 'ER_SPECIFIC_ACCESS_DENIED_ERROR']);

function importCodesTables(dialect: SqlDialect): Array<RawBuilder<unknown>> {
  return [
    sql`create temporary table if not exists import_codes (license_code ${dialect.binaryKeyType} primary key, position integer not null)`,
    // The ids the file gives, so that one id given to two codes is refused naming both rows.
    sql`create temporary table if not exists import_ids (id bigint primary key, position integer not null)`,
  ];
}

/**
 * Inserts or updates by `license_code`, all rows or none (one transaction), in batched
 * `insert ... on conflict (license_code) do update`. A column the input leaves out keeps its stored
 * value, so a file with only `license_code,expires_at` renews without touching the rest: rows are batched
 * by the set of columns they carry. Inputs may be a stream; a repeated `license_code` throws
 * RepeatedLicenseCode (and nothing is written). For each row, a stored status that `activates` lists becomes
 * `active` (`expired` is derived, never sticky; Botble's is_valid 1 lifts a suspension). A row that would
 * change nothing is not written (its updated_at stays) and counts as unchanged.
 */
export async function upsertLicenses(
  db: Kysely<Database>,
  inputs: Iterable<LicenseInput> | AsyncIterable<LicenseInput>,
  now: string,
  activates: (input: LicenseInput) => readonly LicenseStatus[] = () => [],
): Promise<UpsertResult> {
  return db.transaction().execute(async (trx) => {
    const totals = { inserted: 0, updated: 0, unchanged: 0 };
    const batches = new Map<string, { inputs: LicenseInput[]; activating: readonly LicenseStatus[] }>();
    // Codes waiting in a batch -> position; once a batch is written they move to the temp table.
    const pending = new Map<string, number>();
    const codesTable = trx.withTables<ImportCodes>();
    // Ids waiting in a batch -> position, as `pending` for codes.
    const pendingIds = new Map<number, number>();
    const dialect = dialectFor(trx);
    for (const create of importCodesTables(dialect)) {
      await create.execute(trx).catch(async (error: unknown) => {
        // MySQL: "Access denied … to database" names no privilege; this one is CREATE TEMPORARY TABLES.
        if (MYSQL_REFUSED.has(errorCode(error))) throw await temporaryTableRefused(trx, error);
        throw error;
      });
    }
    await codesTable.deleteFrom('import_codes').execute();
    await codesTable.deleteFrom('import_ids').execute();
    const flush = async (all: LicenseInput[], activating: readonly LicenseStatus[]) => {
      const codes = all.map((input) => input.license_code);
      const positions = new Map(codes.map((code) => [code, pending.get(code)!]));
      const earlier = await codesTable.selectFrom('import_codes').select(['license_code', 'position']).where('license_code', 'in', codes).executeTakeFirst();
      if (earlier) throw new RepeatedLicenseCode(earlier.license_code, earlier.position, pending.get(earlier.license_code)!);
      await codesTable
        .insertInto('import_codes')
        .values(codes.map((code) => ({ license_code: code, position: pending.get(code)! })))
        .execute();
      for (const code of codes) pending.delete(code);
      const ids = all.flatMap((input) => (input.id === undefined ? [] : [input.id]));
      if (ids.length > 0) {
        const earlierId = await codesTable.selectFrom('import_ids').select(['id', 'position']).where('id', 'in', ids).executeTakeFirst();
        if (earlierId) throw new RepeatedLicenseId(Number(earlierId.id), earlierId.position, pendingIds.get(Number(earlierId.id))!);
        await codesTable
          .insertInto('import_ids')
          .values(ids.map((id) => ({ id, position: pendingIds.get(id)! })))
          .execute();
        for (const id of ids) pendingIds.delete(id);
      }
      const columns = UPDATABLE.filter((column) => all[0]![column] !== undefined);
      const stored = new Map((await trx.selectFrom('licenses').selectAll().where('license_code', 'in', codes).execute()).map((row) => [row.license_code, row]));
      const moved = all.find((input) => input.id !== undefined && stored.has(input.license_code) && Number(stored.get(input.license_code)!.id) !== input.id);
      if (moved)
        throw new LicenseIdMismatch(moved.id!, Number(stored.get(moved.license_code)!.id), moved.license_code, positions.get(moved.license_code)!, moved);
      const batch = all.filter((input) => !unchanged(input, stored.get(input.license_code), columns, activating));
      const existing = batch.filter((input) => stored.has(input.license_code)).length;
      totals.unchanged += all.length - batch.length;
      totals.updated += existing;
      totals.inserted += batch.length - existing;
      if (batch.length === 0) return;
      if (batch[0]!.id !== undefined) await refuseTakenIds(trx, batch, positions);
      // sql.ref, not the bare name: the table prefix applies to it.
      const status = sql.ref('licenses.status');
      const renewed = activating.length > 0 ? { status: sql<string>`case when ${status} in (${sql.join(activating)}) then 'active' else ${status} end` } : {};
      const insert = trx.insertInto('licenses').values(batch.map((input) => ({ ...input, created_at: now, updated_at: now })));
      await dialect
        .upsert(insert, ['license_code'], {
          ...Object.fromEntries(columns.map((column) => [column, dialect.refused(column)])),
          ...renewed,
          updated_at: now,
        })
        .execute();
      if (batch[0]!.id !== undefined) await dialect.afterExplicitIds(trx, 'licenses');
    };
    let position = 0;
    for await (const input of inputs) {
      position += 1;
      const first = pending.get(input.license_code);
      if (first !== undefined) throw new RepeatedLicenseCode(input.license_code, first, position);
      pending.set(input.license_code, position);
      if (input.id !== undefined) {
        const firstWithId = pendingIds.get(input.id);
        if (firstWithId !== undefined) throw new RepeatedLicenseId(input.id, firstWithId, position);
        pendingIds.set(input.id, position);
      }
      const activating = activates(input);
      const shape = `${Object.keys(input)
        .filter((key) => input[key as keyof LicenseInput] !== undefined)
        .sort()
        .join(',')}:${activating.join(',')}`;
      const batch = batches.get(shape) ?? { inputs: [], activating };
      batches.set(shape, batch);
      batch.inputs.push(input);
      // IDS_PER_STATEMENT rows of at most 10 columns: within every dialect's bound parameters (src/sql/chunks.ts).
      if (batch.inputs.length >= IDS_PER_STATEMENT) await flush(batch.inputs.splice(0), activating);
    }
    for (const batch of batches.values()) if (batch.inputs.length > 0) await flush(batch.inputs, batch.activating);
    await codesTable.deleteFrom('import_codes').execute();
    await codesTable.deleteFrom('import_ids').execute();
    return totals;
  });
}

/** Whether writing `input` over the stored row would change nothing (an id given is the row's own: flush refuses any other). */
function unchanged(
  input: LicenseInput,
  row: LicenseRow | undefined,
  columns: readonly (typeof UPDATABLE)[number][],
  activating: readonly LicenseStatus[],
): boolean {
  if (!row) return false;
  if (columns.some((column) => column !== 'status' && (input[column] ?? null) !== row[column])) return false;
  const status = input.status ?? (activating.includes(row.status as LicenseStatus) ? 'active' : row.status);
  return status === row.status;
}

/**
 * An id that belongs to another license_code, refused naming the row and both codes, before the upsert. MySQL's
 * ON DUPLICATE KEY UPDATE fires on any unique key, the primary key included, so it would silently update that
 * license; SQLite's and PostgreSQL's primary key would refuse it, but in words that name no row or value.
 */
async function refuseTakenIds(trx: Kysely<Database>, batch: readonly LicenseInput[], positions: ReadonlyMap<string, number>): Promise<void> {
  const wanted = new Map(batch.map((input) => [input.id!, input.license_code]));
  const taken = await trx
    .selectFrom('licenses')
    .select(['id', 'license_code'])
    .where('id', 'in', [...wanted.keys()])
    .execute();
  const clash = taken.find((row) => wanted.get(row.id) !== row.license_code);
  if (clash) {
    const code = wanted.get(clash.id)!;
    throw new LicenseIdTaken(Number(clash.id), clash.license_code, code, positions.get(code)!);
  }
}

/** Status changes the rules decided, written with the events so a run that dies leaves neither. */
export interface StatusChanges {
  /** Licenses that passed their expiry: `active` -> `expired` (with the expiry they passed). */
  expired: ReadonlyArray<Pick<LicenseRow, 'id' | 'expires_at'>>;
  /** Renewed licenses: `expired` -> `active`. */
  reactivated: readonly number[];
}

export interface StatusChangeCounts {
  expired: number;
  reactivated: number;
}

/**
 * Writes the derived status changes (inside the caller's transaction, with the events they go with).
 * Only a row still in the expected status changes, so two runs at once change each license once.
 */
export async function writeStatusChanges(trx: Kysely<Database>, changes: StatusChanges, now: string): Promise<StatusChangeCounts> {
  const setStatus = async (ids: readonly number[], from: LicenseStatus, to: LicenseStatus) => {
    let changed = 0;
    for (const chunk of chunksOf(ids)) changed += Number((await statusChange(trx, chunk, from, to, now).executeTakeFirst()).numUpdatedRows);
    return changed;
  };
  return {
    expired: await setStatus(
      changes.expired.map((license) => license.id),
      'active',
      'expired',
    ),
    reactivated: await setStatus(changes.reactivated, 'expired', 'active'),
  };
}

/**
 * The UPDATE that moves these licenses (a bounded IN list of ids) from `from` to `to`, where they still are in `from`.
 * The rows are found by their ids: the status only filters them (see SqlDialect.unindexed). With the status as a
 * plain condition SQLite scanned the (status, date) index's every active license for each chunk of ids, which made
 * a run at 1M licenses with 3,300 expiries spend about a second on it.
 */
export function statusChange(trx: Kysely<Database>, ids: readonly number[], from: LicenseStatus, to: LicenseStatus, now: string) {
  return trx
    .updateTable('licenses')
    .set({ status: to, updated_at: now })
    .where('id', 'in', [...ids])
    .where(dialectFor(trx).unindexed('status'), '=', from);
}

export interface LicenseFilter {
  status?: LicenseStatus | undefined;
  /** Only licenses whose expires_at text lies in [expiringAfter, expiringBefore] (text bounds; the caller applies the rules). */
  expiringBefore?: string;
  expiringAfter?: string;
  limit?: number | undefined;
}

/** Our licenses table's rows that pass the filter, as stored (the command that lists them is commands/licenses.ts). */
export async function readLicenseRows(db: Kysely<Database>, filter: LicenseFilter = {}): Promise<LicenseRow[]> {
  let query = db.selectFrom('licenses').selectAll();
  if (filter.status) query = query.where('status', '=', filter.status);
  if (filter.expiringAfter) query = query.where('expires_at', '>=', filter.expiringAfter);
  if (filter.expiringBefore) query = query.where('expires_at', '<=', filter.expiringBefore);
  query = filter.expiringBefore ? query.orderBy('expires_at').orderBy('id') : query.orderBy('id');
  if (filter.limit) query = query.limit(filter.limit);
  return query.execute();
}

export async function findLicenseByCode(db: Kysely<Database>, code: string): Promise<LicenseRow | undefined> {
  return db.selectFrom('licenses').selectAll().where('license_code', '=', code).executeTakeFirst();
}

/** The id and code of these licenses (at most a bounded IN list of ids; ids with no license are absent). */
export async function licenseCodesOf(db: Kysely<Database>, ids: readonly number[]): Promise<Array<{ id: number; license_code: string }>> {
  return db
    .selectFrom('licenses')
    .select(['id', 'license_code'])
    .where('id', 'in', [...ids])
    .execute();
}

/** These licenses, whole (at most a bounded IN list of ids; ids with no license are absent). */
export async function findLicensesByIds(db: Kysely<Database>, ids: readonly number[]): Promise<LicenseRow[]> {
  return ids.length === 0
    ? []
    : db
        .selectFrom('licenses')
        .selectAll()
        .where('id', 'in', [...ids])
        .execute();
}

/** The ids of the licenses with this code: none or one (license_code is unique). */
export async function licenseIdsOfCode(db: Kysely<Database>, code: string): Promise<number[]> {
  return (await db.selectFrom('licenses').select('id').where('license_code', '=', code).execute()).map((row) => row.id);
}

/**
 * Licenses that may have an event due or a status to change, by range scans of the (status, date) indexes.
 * The bounds are whole-day prefixes (`2024-01-08` sorts before every time on that day, whatever its format),
 * so a date written as `2024-01-08 10:30:00` or with an offset is still found; the caller applies the exact
 * rules. `expired` licenses from `fromDay` on are read too: a renewal makes them active again, and so does an
 * emptied expires_at (made lifetime).
 */
export async function findDueCandidates(
  db: Kysely<Database>,
  window: { fromDay: string; expiresBeforeDay: string; supportBeforeDay: string },
): Promise<LicenseRow[]> {
  const expiring = await db
    .selectFrom('licenses')
    .selectAll()
    .where('status', '=', 'active')
    .where('expires_at', '>=', window.fromDay)
    .where('expires_at', '<', window.expiresBeforeDay)
    .execute();
  const expiredOrRenewed = await db.selectFrom('licenses').selectAll().where('status', '=', 'expired').where('expires_at', '>=', window.fromDay).execute();
  // Its own seek on the same index: an OR with the range could scan every expired license.
  const madeLifetime = await db.selectFrom('licenses').selectAll().where('status', '=', 'expired').where('expires_at', 'is', null).execute();
  const support = await db
    .selectFrom('licenses')
    .selectAll()
    .where('status', 'in', ['active', 'expired'])
    .where('updates_until', '>=', window.fromDay)
    .where('updates_until', '<', window.supportBeforeDay)
    .execute();
  const byId = new Map<number, LicenseRow>();
  for (const row of [...expiring, ...expiredOrRenewed, ...madeLifetime, ...support]) byId.set(row.id, row);
  return [...byId.values()].sort((a, b) => a.id - b.id);
}

/** Licenses marked (or, on a dry run, to be marked) `expired` with no event: how many, and the first few by expiry. */
export interface LongPastExpiries {
  count: number;
  /** At most the `list` asked for, oldest expiry first. */
  licenses: Array<Pick<LicenseRow, 'id' | 'license_code'> & { expires_at: string }>;
}

/**
 * Active licenses whose expiry lies wholly before `beforeDay` (text that starts with a date, so "N/A" is
 * never taken for an old date): expired longer ago than the lookback. Marks them `expired` in one UPDATE by
 * range, or only counts them when `write` is false; the first `list` of them are named (a customer lost a notice).
 */
export async function expireLongPast(db: Kysely<Database>, beforeDay: string, now: string, write: boolean, list = 0): Promise<LongPastExpiries> {
  const longPast = (eb: ExpressionBuilder<Database, 'licenses'>) =>
    eb.and([eb('status', '=', 'active'), eb('expires_at', '>=', '0'), eb('expires_at', '<', beforeDay), eb('expires_at', 'like', '____-__-__%')]);
  // The first few by expiry, at least one: none found (every day but the first after an outage) is the only query.
  const named = await db
    .selectFrom('licenses')
    .select(['id', 'license_code', 'expires_at'])
    .where(longPast)
    .orderBy('expires_at')
    .orderBy('id')
    .limit(Math.max(list, 1))
    .execute();
  if (named.length === 0) return { count: 0, licenses: [] };
  const licenses = named.slice(0, list).map((row) => ({ id: row.id, license_code: row.license_code, expires_at: row.expires_at! }));
  if (!write) {
    const row = await db
      .selectFrom('licenses')
      .select((eb) => eb.fn.countAll<number>().as('count'))
      .where(longPast)
      .executeTakeFirstOrThrow();
    return { count: Number(row.count), licenses };
  }
  const result = await db.updateTable('licenses').set({ status: 'expired', updated_at: now }).where(longPast).executeTakeFirst();
  const count = Number(result.numUpdatedRows);
  // Another run marked them first: this one names none.
  return { count, licenses: count === 0 ? [] : licenses };
}

export interface UnreadableDate {
  /** Text when the id itself is the problem (too large for a number). */
  id: number | string;
  license_code: string;
  column: 'expires_at' | 'updates_until' | 'id';
  value: string;
  /** Why the row is skipped, when it is not a date that is unreadable. */
  problem?: string;
}

/**
 * Licenses that could have events but whose dates do not start with a digit ("soon", "N/A", ""): the
 * due-window scans never see them, so they are reported here. Two range seeks per column on the
 * (status, date) indexes: below '0' and from ':' (the character after '9') on. A value that starts with a
 * digit but is not a date (12/31/2025) is only caught when it falls in a due window.
 */
export async function findUnreadableDates(db: Kysely<Database>, limit: number): Promise<UnreadableDate[]> {
  const found: UnreadableDate[] = [];
  for (const column of ['expires_at', 'updates_until'] as const) {
    for (const [operator, bound] of [
      ['<', '0'],
      ['>=', ':'],
    ] as const) {
      const rows = await db
        .selectFrom('licenses')
        .select(['id', 'license_code', column])
        .where('status', 'in', column === 'expires_at' ? ['active'] : ['active', 'expired'])
        .where(column, operator, bound)
        .limit(limit)
        .execute();
      for (const row of rows) found.push({ id: row.id, license_code: row.license_code, column, value: String(row[column]) });
    }
  }
  return found;
}

/** Row counts per status, e.g. `{ active: 3, expired: 1 }`. */
export async function licenseCounts(db: Kysely<Database>): Promise<Record<string, number>> {
  const rows = await db
    .selectFrom('licenses')
    .select(['status', db.fn.countAll<number>().as('count')])
    .groupBy('status')
    .execute();
  return Object.fromEntries(rows.map((row) => [row.status, Number(row.count)]));
}

/** Whether the table holds any license at all (a job pointed at the wrong, empty database has none). */
export async function hasLicenses(db: Kysely<Database>): Promise<boolean> {
  return (await db.selectFrom('licenses').select('id').limit(1).executeTakeFirst()) !== undefined;
}
