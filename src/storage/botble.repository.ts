import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { RawLicense } from '../expirations/license.js';
import type { Database } from './database.table.js';
import { chunksOf } from '../sql/chunks.js';
import { classifyDbError } from '../sql/db-errors.js';
import { dialectFor } from '../sql/dialect-for.js';
import { FIRST_DATE, LAST_DATE } from '../sql/sql-dialect.js';
import { tablePrefixOf } from '../sql/table-prefix.js';
import { StorageRefusal } from './storage-refusal.js';
import type { LicenseFilter, LicenseRow, LongPastExpiries, StatusChangeCounts, StatusChanges, UnreadableDate } from './licenses.repository.js';

/**
 * A Botble License Manager database, read as it is (see shared/reference/botble-schema.md): licenses from
 * `<prefix>licenses` joined to `<prefix>products`, settings from Botble's `settings`. Nothing here writes a
 * Botble table; the one table written, `botble_license_states`, is ours (under our own prefix).
 */

/** Table names of one Botble install, and of our derived-state table beside it. */
interface BotbleTables {
  licenses: string;
  products: string;
  states: string;
}

// Our prefix plugin renames only our own table names; Botble's are queried without it, by their full names.
function tablesOf(db: Kysely<Database>, botblePrefix: string): { raw: Kysely<any>; tables: BotbleTables } {
  return {
    raw: db.withoutPlugins() as unknown as Kysely<any>,
    tables: { licenses: `${botblePrefix}licenses`, products: `${botblePrefix}products`, states: `${tablePrefixOf(db)}botble_license_states` },
  };
}

/** Runs a read of Botble's tables; a missing table is a configuration to fix, not a schema to migrate. */
async function readBotble<T>(names: readonly string[], read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    // A wrong botble.tablePrefix, or not a Botble database.
    if (classifyDbError(error) !== 'no-table') throw error;
    throw new StorageRefusal({ kind: 'botble-table-missing', tables: [...names], detail: (error as Error).message }, { cause: error });
  }
}

/** Botble's date columns that this tool reads: DATE in Botble's schema. */
const DATE_COLUMNS = ['expires_at', 'updates_until'] as const;

/**
 * Refuses a licenses table whose date columns are not DATE, as Botble's schema has them (a DATETIME or timestamp,
 * on the servers; SQLite declares no binding types): every read here takes them for dates alone, compared and
 * stored as their YYYY-MM-DD text. A missing table or column is left to the reads, which name it.
 */
export async function checkBotbleDateColumns(db: Kysely<Database>, botblePrefix: string): Promise<void> {
  const { raw, tables } = tablesOf(db, botblePrefix);
  const types = await dialectFor(db).declaredTypes(raw, tables.licenses, DATE_COLUMNS);
  const columns = DATE_COLUMNS.flatMap((column) => {
    const type = types.get(column);
    return type === undefined || type === 'date' ? [] : [{ column, type }];
  });
  if (columns.length > 0) throw new StorageRefusal({ kind: 'botble-column-type', table: tables.licenses, columns });
}

/** A scalar as a driver returns it for a VARCHAR, DATE, TIMESTAMP, TINYINT or BOOLEAN column. */
type Scalar = string | number | bigint | boolean | Date | null;

/** One row of selectLicenses: Botble's columns as the drivers return them, and our derived state. */
interface BotbleLicenseRow {
  id: number | string | bigint;
  license_code: string | null;
  product_reference_id: string | null;
  product_name: string | null;
  customer_id: Scalar;
  email: string | null;
  expires_at: Scalar;
  updates_until: Scalar;
  is_valid: Scalar;
  created_at: Scalar;
  updated_at: Scalar;
  derived_status: string | null;
  derived_expires_at: string | null;
}

/** The text of a column that may come back as a number (a customer id stored as INT on an older install). */
function text(value: Scalar | undefined): string | null {
  if (value === null || value === undefined) return null;
  return value instanceof Date ? value.toISOString() : String(value);
}

// Botble's id is BIGINT UNSIGNED: beyond 2^53 a JS number would round it into another license's id. Such a
// license is left out of every read and named by findBotbleUnreadable instead.
const MAX_EXACT_ID = Number.MAX_SAFE_INTEGER;

/** The columns the reference lists (extra columns are never read), plus our derived state. */
function selectLicenses(raw: Kysely<any>, tables: BotbleTables) {
  return raw
    .selectFrom(`${tables.licenses} as l`)
    .leftJoin(`${tables.products} as p`, 'p.reference_id', 'l.product_reference_id')
    .leftJoin(`${tables.states} as s`, 's.license_id', 'l.id')
    .select([
      'l.id',
      'l.license_code',
      'l.product_reference_id',
      'p.name as product_name',
      'l.customer_id',
      'l.email',
      'l.expires_at',
      'l.updates_until',
      'l.is_valid',
      'l.created_at',
      'l.updated_at',
      // A state recorded for a date that is none (an earlier release marked '0000-00-00' expired) is not read.
      sql<string | null>`case when ${readable(raw)} then s.status end`.as('derived_status'),
      's.expires_at as derived_expires_at',
    ])
    .where('l.id', '<=', MAX_EXACT_ID);
}

/** A DATE as the 'YYYY-MM-DD' text it holds: the drivers are set up to return text (a Date here would be a day off west of UTC). */
function dateText(value: Scalar, column: string): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return value;
  throw new Error(
    `${column} came back as ${value instanceof Date ? 'a Date' : typeof value}, not as the text of a date: the driver is not set to return DATE as text`,
  );
}

/** A timestamp as text: Botble's created_at/updated_at only show in listings. */
function timeText(value: Scalar): string {
  return text(value)?.replace(/\.\d{3}Z$/, 'Z') ?? '';
}

/** `is_valid = 0` is a license an admin blocked: our `suspended`. */
function isBlocked(value: Scalar): boolean {
  return value === false || (value !== null && value !== undefined && Number(value) === 0);
}

/** One Botble row as the raw license the domain reads (a missing code stays missing); `expired` holds while Botble's date is the one it was derived from. */
function toRawLicense(row: BotbleLicenseRow): RawLicense {
  const expiresAt = dateText(row.expires_at, 'expires_at');
  const derivedExpired = row.derived_status === 'expired' && expiresAt !== null && row.derived_expires_at === expiresAt;
  return {
    id: Number(row.id),
    license_code: row.license_code,
    product_id: row.product_reference_id,
    product_name: row.product_name,
    customer_id: text(row.customer_id),
    email: row.email,
    status: isBlocked(row.is_valid) ? 'suspended' : derivedExpired ? 'expired' : 'active',
    expires_at: expiresAt,
    updates_until: dateText(row.updates_until, 'updates_until'),
  };
}

/** One Botble row in the shape of our own table, for the listings (`licenses list`, `licenses show`), which print that shape. */
function toLicenseRow(row: BotbleLicenseRow): LicenseRow {
  const license = toRawLicense(row);
  return { ...license, license_code: license.license_code ?? '', created_at: timeText(row.created_at), updated_at: timeText(row.updated_at) };
}

/**
 * Licenses that may have an event due: two range scans, on expires_at and on updates_until (index range
 * scans once the operator adds the indexes the README gives; Botble has none on these columns).
 */
export async function findBotbleDueCandidates(
  db: Kysely<Database>,
  botblePrefix: string,
  window: { fromDay: string; expiresBeforeDay: string; supportBeforeDay: string },
): Promise<RawLicense[]> {
  const { raw, tables } = tablesOf(db, botblePrefix);
  const expiring: BotbleLicenseRow[] = await readBotble([tables.licenses, tables.products], () =>
    selectLicenses(raw, tables).where('l.expires_at', '>=', window.fromDay).where('l.expires_at', '<', window.expiresBeforeDay).execute(),
  );
  const support: BotbleLicenseRow[] = await selectLicenses(raw, tables)
    .where('l.updates_until', '>=', window.fromDay)
    .where('l.updates_until', '<', window.supportBeforeDay)
    .execute();
  const byId = new Map<number, RawLicense>();
  for (const row of [...expiring, ...support]) {
    const license = toRawLicense(row);
    byId.set(license.id, license);
  }
  return [...byId.values()].sort((a, b) => a.id - b.id);
}

export async function listBotbleLicenses(db: Kysely<Database>, botblePrefix: string, filter: LicenseFilter = {}): Promise<LicenseRow[]> {
  const { raw, tables } = tablesOf(db, botblePrefix);
  let query = selectLicenses(raw, tables);
  // Botble stores dates alone: compare with the day part of the bounds.
  if (filter.expiringAfter) query = query.where('l.expires_at', '>=', filter.expiringAfter.slice(0, 10));
  if (filter.expiringBefore) query = query.where('l.expires_at', '<=', filter.expiringBefore.slice(0, 10));
  if (filter.status === 'suspended') query = query.where(validity(db), '=', 0);
  if (filter.status === 'expired') query = query.where('s.status', '=', 'expired');
  query = filter.expiringBefore ? query.orderBy('l.expires_at').orderBy('l.id') : query.orderBy('l.id');
  // The derived status is decided per row, so a status filter is applied after reading (and the limit with it).
  if (filter.limit && !filter.status) query = query.limit(filter.limit);
  let rows = ((await readBotble([tables.licenses, tables.products], () => query.execute())) as BotbleLicenseRow[]).map(toLicenseRow);
  if (filter.status) rows = rows.filter((row) => row.status === filter.status);
  return filter.limit ? rows.slice(0, filter.limit) : rows;
}

export async function findBotbleLicenseByCode(db: Kysely<Database>, botblePrefix: string, code: string): Promise<LicenseRow | undefined> {
  const { raw, tables } = tablesOf(db, botblePrefix);
  const row: BotbleLicenseRow | undefined = await readBotble([tables.licenses, tables.products], () =>
    selectLicenses(raw, tables).where('l.license_code', '=', code).executeTakeFirst(),
  );
  return row ? toLicenseRow(row) : undefined;
}

/** These Botble licenses, read as every command reads them (at most a bounded IN list of ids; ids with no license are absent). */
export async function findBotbleLicensesByIds(db: Kysely<Database>, botblePrefix: string, ids: readonly number[]): Promise<RawLicense[]> {
  if (ids.length === 0) return [];
  const { raw, tables } = tablesOf(db, botblePrefix);
  const rows: BotbleLicenseRow[] = await readBotble([tables.licenses, tables.products], () =>
    selectLicenses(raw, tables)
      .where('l.id', 'in', [...ids])
      .execute(),
  );
  return rows.map(toRawLicense);
}

/**
 * Botble licenses each run names, as they get no events: an id beyond what this tool carries exactly, or, unless an
 * admin blocked the license, a date column holding a value that is no date (MariaDB's '0000-00-00', PostgreSQL's
 * '-infinity' and 'infinity'): they sort outside the dates this tool reads, found by range seeks on both columns
 * (with the README's indexes). A zero month or day within the range ('2025-00-10'), or a day past the month's end
 * (ALLOW_INVALID_DATES; any text in a SQLite copy), is named when it falls in a due window (the run reads it), or in
 * expires_at before `beforeDay`, the long-past scan's range, which passes over it (SqlDialect.isDate): the same
 * range seek. A later one waits for its window, as a later date does.
 */
export async function findBotbleUnreadable(db: Kysely<Database>, botblePrefix: string, limit: number, beforeDay: string): Promise<UnreadableDate[]> {
  const { raw, tables } = tablesOf(db, botblePrefix);
  const rows: Array<{ id: number | string | bigint; license_code: string | null }> = await readBotble([tables.licenses], () =>
    raw.selectFrom(tables.licenses).select(['id', 'license_code']).where('id', '>', MAX_EXACT_ID).orderBy('id').limit(limit).execute(),
  );
  const found: UnreadableDate[] = rows.map((row) => ({
    id: String(row.id),
    license_code: row.license_code ?? '',
    column: 'id',
    value: String(row.id),
    problem: `its id is larger than ${MAX_EXACT_ID}, the largest this tool carries exactly, so it gets no events (give it a smaller id in Botble)`,
  }));
  // One statement for both columns: without the README's indexes, one scan of the table rather than two.
  const outside = (column: string) => sql<boolean>`(${sql.ref(column)} < ${FIRST_DATE} or ${sql.ref(column)} > ${LAST_DATE})`;
  // isDate is null, not false, for some of these on MariaDB (last_day of a zero month).
  const longPastNoDate = sql<boolean>`(l.expires_at >= ${FIRST_DATE} and l.expires_at < ${beforeDay} and not coalesce(${readable(raw)}, false))`;
  const badExpires = sql<boolean>`(${outside('l.expires_at')} or ${longPastNoDate})`;
  const dates: Array<{
    id: number | string | bigint;
    license_code: string | null;
    expires_at: Scalar;
    updates_until: Scalar;
    bad_expires: number | string | boolean;
    bad_updates: number | string | boolean;
  }> = await raw
    .selectFrom(`${tables.licenses} as l`)
    .select([
      'l.id',
      'l.license_code',
      'l.expires_at',
      'l.updates_until',
      sql<number>`case when ${badExpires} then 1 else 0 end`.as('bad_expires'),
      sql<number>`case when ${outside('l.updates_until')} then 1 else 0 end`.as('bad_updates'),
    ])
    .where((where) => where.or([badExpires, outside('l.updates_until')]))
    .where(validity(db), '<>', 0)
    .where('l.id', '<=', MAX_EXACT_ID)
    .orderBy('l.id')
    .limit(limit)
    .execute();
  for (const row of dates) {
    const license = { id: Number(row.id), license_code: row.license_code ?? '' };
    if (Number(row.bad_expires) === 1) found.push({ ...license, column: 'expires_at', value: text(row.expires_at) ?? '' });
    if (Number(row.bad_updates) === 1) found.push({ ...license, column: 'updates_until', value: text(row.updates_until) ?? '' });
  }
  return found;
}

/** The id and code of these Botble licenses (at most a bounded IN list of ids; ids with no license are absent). */
export async function botbleLicenseCodesOf(
  db: Kysely<Database>,
  botblePrefix: string,
  ids: readonly number[],
): Promise<Array<{ id: number; license_code: string | null }>> {
  const { raw, tables } = tablesOf(db, botblePrefix);
  const rows: Array<{ id: number | string | bigint; license_code: string | null }> = await readBotble([tables.licenses], () =>
    raw
      .selectFrom(tables.licenses)
      .select(['id', 'license_code'])
      .where('id', 'in', [...ids])
      .execute(),
  );
  return rows.map((row) => ({ id: Number(row.id), license_code: row.license_code }));
}

/** The ids of the Botble licenses with this code: none or one (Botble's license_code is unique). */
export async function botbleLicenseIdsOfCode(db: Kysely<Database>, botblePrefix: string, code: string): Promise<number[]> {
  const { raw, tables } = tablesOf(db, botblePrefix);
  const rows: Array<{ id: number | string | bigint }> = await readBotble([tables.licenses], () =>
    raw.selectFrom(tables.licenses).select('id').where('license_code', '=', code).where('id', '<=', MAX_EXACT_ID).execute(),
  );
  return rows.map((row) => Number(row.id));
}

/** `is_valid` as 0 or 1 (null as 1): Laravel's boolean is tinyint(1) on MySQL and boolean on PostgreSQL. */
function validity(db: Kysely<Database>): RawBuilder<number> {
  return sql<number>`coalesce(${dialectFor(db).asInteger(sql.ref('l.is_valid'))}, 1)`;
}

/** Whether Botble's expires_at holds a date this tool reads (MariaDB's '0000-00-00' is none). */
function readable(db: Kysely<any>): RawBuilder<boolean> {
  return dialectFor(db).isDate(sql.ref('l.expires_at'));
}

/** Our stored date text against Botble's DATE column, as each server compares them, for a date this tool reads. */
function sameDate(db: Kysely<Database>): RawBuilder<boolean> {
  return sql<boolean>`${dialectFor(db).sameDate(sql.ref('s.expires_at'), sql.ref('l.expires_at'))} and ${readable(db)}`;
}

/** Botble's DATE as text in an INSERT ... SELECT. */
function dateAsText(db: Kysely<Database>): RawBuilder<string> {
  return dialectFor(db).dateAsText(sql.ref('l.expires_at'));
}

/**
 * Licenses an admin has not blocked whose expiry lies wholly before `beforeDay` and that are not yet
 * `expired` for that date: expired longer ago than the lookback. Records them as `expired` in our table
 * (Botble's rows are not touched), or only counts them when `write` is false; the first `list` are named.
 */
export async function expireBotbleLongPast(
  db: Kysely<Database>,
  botblePrefix: string,
  beforeDay: string,
  now: string,
  write: boolean,
  list = 0,
): Promise<LongPastExpiries> {
  const { raw, tables } = tablesOf(db, botblePrefix);
  const dialect = dialectFor(db);
  const licenses = sql.table(tables.licenses);
  const states = sql.table(tables.states);
  // Text dates (a Botble schema copied into SQLite) that are not dates, such as '', must not count as long past.
  const from = sql`from ${licenses} l left join ${states} s on s.license_id = l.id
    where l.expires_at < ${beforeDay} and ${readable(db)} and ${validity(db)} <> 0
    and (s.license_id is null or s.status <> 'expired' or not (${sameDate(db)}))`;
  const { rows } = await sql<{ count: number | string }>`select count(*) as count ${from}`.execute(raw);
  const count = Number(rows[0]?.count ?? 0);
  const named =
    list === 0 || count === 0
      ? []
      : (
          await sql<{
            id: number | string;
            license_code: string | null;
            expires_at: string;
          }>`select l.id, l.license_code, ${dateAsText(db)} as expires_at ${from} order by l.expires_at, l.id limit ${sql.lit(list)}`.execute(raw)
        ).rows;
  const listed = named.map((row) => ({ id: Number(row.id), license_code: row.license_code ?? '', expires_at: row.expires_at }));
  if (!write || count === 0) return { count, licenses: listed };
  const select = sql`select l.id, 'expired', ${dateAsText(db)}, ${now} ${from}`;
  const columns = sql`(license_id, status, expires_at, updated_at)`;
  const refused = (column: string) => dialect.refused(column);
  const upsert = dialect.upsertClause(['license_id'], { status: refused('status'), expires_at: refused('expires_at'), updated_at: refused('updated_at') });
  await sql`insert into ${states} ${columns} ${select} ${upsert}`.execute(raw);
  return { count, licenses: listed };
}

/**
 * Writes the statuses a run decided into our table, in the caller's transaction: `expired` for the date
 * Botble holds now, and a renewal removes the row. Returns how many licenses changed.
 */
export async function setBotbleStatuses(trx: Kysely<Database>, changes: StatusChanges, now: string): Promise<StatusChangeCounts> {
  const dialect = dialectFor(trx);
  let expired = 0;
  for (const all of chunksOf(changes.expired)) {
    const chunk = all.filter((license) => license.expires_at !== null);
    if (chunk.length === 0) continue;
    const ids = chunk.map((license) => license.id);
    const current = await trx.selectFrom('botble_license_states').select(['license_id', 'status', 'expires_at']).where('license_id', 'in', ids).execute();
    const already = new Set(
      current
        .filter(
          (state) => state.status === 'expired' && chunk.some((license) => license.id === Number(state.license_id) && license.expires_at === state.expires_at),
        )
        .map((state) => Number(state.license_id)),
    );
    const rows = chunk
      .filter((license) => !already.has(license.id))
      .map((license) => ({ license_id: license.id, status: 'expired', expires_at: license.expires_at!, updated_at: now }));
    if (rows.length === 0) continue;
    await dialect
      .upsert(trx.insertInto('botble_license_states').values(rows), ['license_id'], {
        status: dialect.refused('status'),
        expires_at: dialect.refused('expires_at'),
        updated_at: now,
      })
      .execute();
    expired += rows.length;
  }
  let reactivated = 0;
  for (const chunk of chunksOf(changes.reactivated)) {
    const result = await trx.deleteFrom('botble_license_states').where('license_id', 'in', chunk).executeTakeFirst();
    reactivated += Number(result.numDeletedRows);
  }
  return { expired, reactivated };
}

/**
 * Botble's License Manager settings (License Manager → Settings → General), by key; a missing row is absent.
 * `lm_send_expiration_warnings` is read only to show what Botble's own cron job does with it.
 */
const BOTBLE_SETTING_KEYS = ['lm_enable_webhooks', 'lm_webhook_url', 'lm_webhook_secret', 'lm_expiration_warning_days', 'lm_send_expiration_warnings'] as const;
export type BotbleSettingKey = (typeof BOTBLE_SETTING_KEYS)[number];

/** Reads the License Manager rows of Botble's `settings` table (no prefix; a null value reads as empty). */
export async function readBotbleSettings(db: Kysely<Database>): Promise<Map<BotbleSettingKey, string>> {
  const raw = db.withoutPlugins() as unknown as Kysely<any>;
  const rows: Array<{ key: string; value: string | null }> = await readBotble(['settings'], () =>
    raw
      .selectFrom('settings')
      .select(['key', 'value'])
      .where('key', 'in', [...BOTBLE_SETTING_KEYS])
      .execute(),
  );
  return new Map(rows.map((row) => [row.key as BotbleSettingKey, row.value ?? '']));
}

/** Licenses per derived status (`active`, `expired`, `suspended`), counted by the database: for `status`. */
export async function countBotbleLicenses(db: Kysely<Database>, botblePrefix: string): Promise<Record<string, number>> {
  const { raw, tables } = tablesOf(db, botblePrefix);
  const status = sql<string>`case when ${validity(db)} = 0 then 'suspended' when s.status = 'expired' and ${sameDate(db)} then 'expired' else 'active' end`;
  const rows = await readBotble([tables.licenses], () =>
    raw
      .selectFrom(`${tables.licenses} as l`)
      .leftJoin(`${tables.states} as s`, 's.license_id', 'l.id')
      .select([status.as('status'), sql<number>`count(*)`.as('count')])
      // As licenses list shows them: without ids a number cannot carry (each run names those).
      .where('l.id', '<=', MAX_EXACT_ID)
      .groupBy(status)
      .execute(),
  );
  return Object.fromEntries(rows.map((row: { status: string; count: number | string }) => [row.status, Number(row.count)]));
}

/** Whether Botble holds any license at all. */
export async function hasBotbleLicenses(db: Kysely<Database>, botblePrefix: string): Promise<boolean> {
  const { raw, tables } = tablesOf(db, botblePrefix);
  return (await readBotble([tables.licenses], () => raw.selectFrom(`${tables.licenses} as l`).select('l.id').limit(1).executeTakeFirst())) !== undefined;
}
