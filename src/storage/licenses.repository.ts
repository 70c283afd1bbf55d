import { sql, type Kysely, type Selectable } from 'kysely';
import type { Database, LicensesTable } from './database.table.js';
import { dialectOf, tablePrefixOf, type SqlDialect } from './dialect.js';

export type LicenseRow = Selectable<LicensesTable>;

export const LICENSE_STATUSES = ['active', 'suspended', 'revoked', 'expired'] as const;
export type LicenseStatus = (typeof LICENSE_STATUSES)[number];

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

export interface UpsertResult {
  inserted: number;
  updated: number;
}

const UPDATABLE = ['product_id', 'product_name', 'customer_id', 'email', 'status', 'expires_at', 'updates_until'] as const;

// Rows per INSERT: 500 rows of at most 10 columns stay far below SQLite's 32,766 and the servers' 65,535 bound parameters.
const BATCH_ROWS = 500;

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
type ImportCodes = { import_codes: { license_code: string; position: number } };

/**
 * Inserts or updates by `license_code`, all rows or none (one transaction), in batched
 * `insert ... on conflict (license_code) do update`. A column the input leaves out keeps its stored
 * value, so a file with only `license_code,expires_at` renews without touching the rest: rows are batched
 * by the set of columns they carry. Inputs may be a stream; a repeated `license_code` throws
 * RepeatedLicenseCode (and nothing is written). For rows where `renews` holds, a stored `expired` becomes
 * `active` (`expired` is derived, never sticky).
 */
export async function upsertLicenses(
  db: Kysely<Database>,
  inputs: Iterable<LicenseInput> | AsyncIterable<LicenseInput>,
  now: string,
  renews: (input: LicenseInput) => boolean = () => false,
): Promise<UpsertResult> {
  return db.transaction().execute(async (trx) => {
    const totals = { inserted: 0, updated: 0 };
    const batches = new Map<string, LicenseInput[]>();
    // Codes waiting in a batch -> position; once a batch is written they move to the temp table.
    const pending = new Map<string, number>();
    const codesTable = trx.withTables<ImportCodes>();
    const dialect = dialectOf(trx);
    await createImportCodesTable(trx, dialect);
    await codesTable.deleteFrom('import_codes').execute();
    const flush = async (batch: LicenseInput[], renewing: boolean) => {
      const codes = batch.map((input) => input.license_code);
      const earlier = await codesTable.selectFrom('import_codes').select(['license_code', 'position']).where('license_code', 'in', codes).executeTakeFirst();
      if (earlier) throw new RepeatedLicenseCode(earlier.license_code, earlier.position, pending.get(earlier.license_code)!);
      await codesTable
        .insertInto('import_codes')
        .values(codes.map((code) => ({ license_code: code, position: pending.get(code)! })))
        .execute();
      for (const code of codes) pending.delete(code);
      const existing = await trx.selectFrom('licenses').select(['id', 'license_code']).where('license_code', 'in', codes).execute();
      const storedIds = new Map(existing.map((row) => [row.license_code, row.id]));
      const columns = UPDATABLE.filter((column) => batch[0]![column] !== undefined);
      // MySQL's ON DUPLICATE KEY fires on the primary key too: an id that belongs to another code must fail, not overwrite that row.
      if (dialect === 'mysql' && batch[0]!.id !== undefined) await refuseTakenIds(trx, batch);
      const stored = sql.ref<string>('licenses.status');
      const renewed = sql<string>`case when ${stored} = 'expired' then 'active' else ${stored} end`;
      const write = async (rows: LicenseInput[]) => {
        if (rows.length === 0) return;
        const insert = trx.insertInto('licenses').values(rows.map((input) => ({ ...input, created_at: now, updated_at: now })));
        await (dialect === 'mysql'
          ? insert.onDuplicateKeyUpdate({
              ...Object.fromEntries(columns.map((column) => [column, sql`values(${sql.ref(column)})`])),
              ...(renewing ? { status: renewed } : {}),
              updated_at: now,
            })
          : insert.onConflict((conflict) =>
              conflict.column('license_code').doUpdateSet((eb) => ({
                ...Object.fromEntries(columns.map((column) => [column, eb.ref(`excluded.${column}`)])),
                ...(renewing ? { status: renewed } : {}),
                updated_at: now,
              })),
            )
        ).execute();
      };
      // A row that updates carries its stored id: the servers would otherwise draw (and waste) a new one for it.
      const withId = batch.map((input) => (input.id === undefined && storedIds.has(input.license_code) ? { ...input, id: storedIds.get(input.license_code)! } : input));
      await write(withId.filter((input) => input.id !== undefined));
      await write(withId.filter((input) => input.id === undefined));
      // PostgreSQL's serial does not move past an id given explicitly: move it, as SQLite and MySQL do on their own.
      if (dialect === 'postgres' && batch[0]!.id !== undefined) {
        await sql`select setval(pg_get_serial_sequence(${`${tablePrefixOf(trx)}licenses`}, 'id'), (select max(id) from ${sql.table('licenses')}))`.execute(trx);
      }
      totals.updated += existing.length;
      totals.inserted += batch.length - existing.length;
    };
    let position = 0;
    for await (const input of inputs) {
      position += 1;
      const first = pending.get(input.license_code);
      if (first !== undefined) throw new RepeatedLicenseCode(input.license_code, first, position);
      pending.set(input.license_code, position);
      const renewing = renews(input);
      const shape = `${Object.keys(input).filter((key) => input[key as keyof LicenseInput] !== undefined).sort().join(',')}${renewing ? ':renews' : ''}`;
      const batch = batches.get(shape) ?? [];
      batches.set(shape, batch);
      batch.push(input);
      if (batch.length >= BATCH_ROWS) await flush(batches.get(shape)!.splice(0), renewing);
    }
    for (const [shape, batch] of batches) if (batch.length > 0) await flush(batch, shape.endsWith(':renews'));
    await codesTable.deleteFrom('import_codes').execute();
    return totals;
  });
}

/** A session-local table of the codes one import has written (dropped with the connection). */
async function createImportCodesTable(trx: Kysely<Database>, dialect: SqlDialect): Promise<void> {
  if (dialect === 'mysql') {
    await sql`create temporary table if not exists import_codes (license_code varchar(255) not null primary key, position integer not null) default charset = utf8mb4 collate = utf8mb4_bin`.execute(trx);
  } else {
    await sql`create temp table if not exists import_codes (license_code text primary key, position integer not null)`.execute(trx);
  }
}

/** Throws a duplicate-key error (as the other dialects do) when an input's id belongs to a license with another code. */
async function refuseTakenIds(trx: Kysely<Database>, batch: readonly LicenseInput[]): Promise<void> {
  const ids = batch.map((input) => input.id!);
  const taken = await trx.selectFrom('licenses').select(['id', 'license_code']).where('id', 'in', ids).execute();
  const codeOf = new Map(batch.map((input) => [input.id!, input.license_code]));
  const clash = taken.find((row) => codeOf.get(row.id) !== row.license_code);
  if (clash) {
    throw Object.assign(new Error(`id ${clash.id} already belongs to license_code "${clash.license_code}", not "${codeOf.get(clash.id)}"`), { code: 'ER_DUP_ENTRY' });
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

// SQLite allows 32766 bound parameters; stay well below it.
const CHUNK = 500;

/** Writes the status changes to our `licenses` table, in the caller's transaction; returns how many rows changed. */
export async function setLicenseStatuses(trx: Kysely<Database>, changes: StatusChanges, now: string): Promise<StatusChangeCounts> {
  const setStatus = async (ids: readonly number[], from: string, to: string) => {
    let changed = 0;
    for (let index = 0; index < ids.length; index += CHUNK) {
      const result = await trx
        .updateTable('licenses')
        .set({ status: to, updated_at: now })
        .where('id', 'in', ids.slice(index, index + CHUNK))
        .where('status', '=', from)
        .executeTakeFirst();
      changed += Number(result.numUpdatedRows);
    }
    return changed;
  };
  const expired = await setStatus(changes.expired.map((license) => license.id), 'active', 'expired');
  const reactivated = await setStatus(changes.reactivated, 'expired', 'active');
  return { expired, reactivated };
}

export interface LicenseFilter {
  status?: LicenseStatus;
  /** Only licenses whose expires_at lies in [now, now + days]. */
  expiringBefore?: string;
  expiringAfter?: string;
  limit?: number;
}

export async function listLicenses(db: Kysely<Database>, filter: LicenseFilter = {}): Promise<LicenseRow[]> {
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

/**
 * Licenses that may have an event due or a status to change, by range scans of the (status, date) indexes.
 * The bounds are whole-day prefixes (`2024-01-08` sorts before every time on that day, whatever its format),
 * so a date written as `2024-01-08 10:30:00` or with an offset is still found; the caller applies the exact
 * rules. `expired` licenses from `fromDay` on are read too: a renewal makes them active again.
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
  const expiredOrRenewed = await db
    .selectFrom('licenses')
    .selectAll()
    .where('status', '=', 'expired')
    .where('expires_at', '>=', window.fromDay)
    .execute();
  const support = await db
    .selectFrom('licenses')
    .selectAll()
    .where('status', 'in', ['active', 'expired'])
    .where('updates_until', '>=', window.fromDay)
    .where('updates_until', '<', window.supportBeforeDay)
    .execute();
  const byId = new Map<number, LicenseRow>();
  for (const row of [...expiring, ...expiredOrRenewed, ...support]) byId.set(row.id, row);
  return [...byId.values()].sort((a, b) => a.id - b.id);
}

/**
 * Active licenses whose expiry lies wholly before `beforeDay` (text that starts with a date, so "N/A" is
 * never taken for an old date): expired longer ago than the lookback. Marks them `expired` in one UPDATE by
 * range, or only counts them when `write` is false.
 */
export async function expireLongPast(db: Kysely<Database>, beforeDay: string, now: string, write: boolean): Promise<number> {
  if (!write) {
    const row = await db
      .selectFrom('licenses')
      .select((eb) => eb.fn.countAll<number>().as('count'))
      .where('status', '=', 'active')
      .where('expires_at', '>=', '0')
      .where('expires_at', '<', beforeDay)
      .where('expires_at', 'like', '____-__-__%')
      .executeTakeFirstOrThrow();
    return Number(row.count);
  }
  const result = await db
    .updateTable('licenses')
    .set({ status: 'expired', updated_at: now })
    .where('status', '=', 'active')
    .where('expires_at', '>=', '0')
    .where('expires_at', '<', beforeDay)
    .where('expires_at', 'like', '____-__-__%')
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

export interface UnreadableDate {
  id: number;
  license_code: string;
  column: 'expires_at' | 'updates_until';
  value: string;
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
    for (const [operator, bound] of [['<', '0'], ['>=', ':']] as const) {
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
