import type { Kysely, Selectable } from 'kysely';
import type { Database, LicensesTable } from './database.table.js';

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

/**
 * Inserts or updates by `license_code`, all rows or none. A column the input leaves out keeps its stored
 * value, so a file with only `license_code,expires_at` renews without touching the rest; for the codes in
 * `renewedCodes` a stored `expired` becomes `active` (`expired` is derived, never sticky).
 */
export async function upsertLicenses(
  db: Kysely<Database>,
  inputs: readonly LicenseInput[],
  now: string,
  renewedCodes: ReadonlySet<string> = new Set(),
): Promise<UpsertResult> {
  return db.transaction().execute(async (trx) => {
    let inserted = 0;
    let updated = 0;
    for (const input of inputs) {
      const existing = await trx
        .selectFrom('licenses')
        .select(['id', 'status'])
        .where('license_code', '=', input.license_code)
        .executeTakeFirst();
      if (existing) {
        const changes: Partial<LicenseInput> = {};
        for (const column of UPDATABLE) if (input[column] !== undefined) Object.assign(changes, { [column]: input[column] });
        if (existing.status === 'expired' && renewedCodes.has(input.license_code)) changes.status = 'active';
        await trx.updateTable('licenses').set({ ...changes, updated_at: now }).where('id', '=', existing.id).execute();
        updated += 1;
      } else {
        await trx
          .insertInto('licenses')
          .values({ ...input, created_at: now, updated_at: now })
          .execute();
        inserted += 1;
      }
    }
    return { inserted, updated };
  });
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

/** Row counts per status, e.g. `{ active: 3, expired: 1 }`. */
export async function licenseCounts(db: Kysely<Database>): Promise<Record<string, number>> {
  const rows = await db.selectFrom('licenses').select(['status', db.fn.countAll<number>().as('count')]).groupBy('status').execute();
  return Object.fromEntries(rows.map((row) => [row.status, Number(row.count)]));
}

/** Whether the table holds any license at all (a job pointed at the wrong, empty database has none). */
export async function hasLicenses(db: Kysely<Database>): Promise<boolean> {
  return (await db.selectFrom('licenses').select('id').limit(1).executeTakeFirst()) !== undefined;
}
