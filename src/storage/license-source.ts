import type { Kysely } from 'kysely';
import type { RawLicense } from '../expirations/license.js';
import {
  botbleLicenseCodesOf,
  botbleLicenseIdsOfCode,
  checkBotbleDateColumns,
  countBotbleLicenses,
  expireBotbleLongPast,
  findBotbleDueCandidates,
  findBotbleLicenseByCode,
  findBotbleLicensesByIds,
  findBotbleUnreadable,
  hasBotbleLicenses,
  listBotbleLicenses,
  setBotbleStatuses,
} from './botble.repository.js';
import type { Database } from './database.table.js';
import { IDS_PER_STATEMENT } from '../sql/chunks.js';
import type { StatusWriter } from './deliveries/record.repository.js';
import {
  expireLongPast,
  findDueCandidates,
  findLicenseByCode,
  findLicensesByIds,
  findUnreadableDates,
  hasLicenses,
  licenseCodesOf,
  licenseCounts,
  licenseIdsOfCode,
  readLicenseRows,
  writeStatusChanges,
  type LicenseFilter,
  type LicenseRow,
  type LongPastExpiries,
  type UnreadableDate,
} from './licenses.repository.js';

/**
 * Where the commands read licenses from, and where the statuses they derive are written: our own
 * `licenses` table (filled by `licenses import`), or a Botble License Manager database read as it is.
 * Every function takes `db` first, as the repositories do.
 */
export interface LicenseSource {
  kind: 'own' | 'botble';
  /** How messages name where the licenses are: "the licenses table", "Botble's lm_licenses". */
  description: string;
  /** The licenses that may have an event due or a status to change: raw rows, read by the domain (readLicense). */
  findDueCandidates(db: Kysely<Database>, window: { fromDay: string; expiresBeforeDay: string; supportBeforeDay: string }): Promise<RawLicense[]>;
  /**
   * Rows whose dates are text that is not a date (a DATE column holds none), or whose id a number cannot hold;
   * `beforeDay` is where the due scans start, the long-past scan's bound: what lies before it no due scan reads.
   */
  findUnreadableDates(db: Kysely<Database>, limit: number, beforeDay: string): Promise<UnreadableDate[]>;
  /** Marks (or counts, `write` false) active licenses expired before `beforeDay` as `expired`, naming the first `list`. */
  expireLongPast(db: Kysely<Database>, beforeDay: string, now: string, write: boolean, list?: number): Promise<LongPastExpiries>;
  setStatuses: StatusWriter;
  list(db: Kysely<Database>, filter?: LicenseFilter): Promise<LicenseRow[]>;
  findByCode(db: Kysely<Database>, code: string): Promise<LicenseRow | undefined>;
  /** At most IDS_PER_STATEMENT of these licenses, whole (absent ones are left out): how a waiting delivery's license is read again. */
  findByIds(db: Kysely<Database>, ids: readonly number[]): Promise<RawLicense[]>;
  /** The ids of the licenses with this code (none or one): how the delivery log filters by a code. */
  idsOfCode(db: Kysely<Database>, code: string): Promise<number[]>;
  /** Id and code of at most IDS_PER_STATEMENT of these licenses (absent ones are left out): how the delivery log names licenses. */
  codesOf(db: Kysely<Database>, ids: readonly number[]): Promise<Array<{ id: number; license_code: string | null }>>;
  /** Licenses per status, for `status`. */
  counts(db: Kysely<Database>): Promise<Record<string, number>>;
  /** Whether there is any license at all (a job pointed at an empty database has none). */
  hasAny(db: Kysely<Database>): Promise<boolean>;
}

const ownLicenses: LicenseSource = {
  kind: 'own',
  description: 'the licenses table',
  findDueCandidates,
  findUnreadableDates,
  expireLongPast,
  setStatuses: writeStatusChanges,
  list: readLicenseRows,
  findByCode: findLicenseByCode,
  findByIds: findLicensesByIds,
  idsOfCode: licenseIdsOfCode,
  codesOf: licenseCodesOf,
  counts: licenseCounts,
  hasAny: hasLicenses,
};

function botbleLicenses(tablePrefix: string): LicenseSource {
  // Every read of Botble's dates first checks, once per command, that they are DATE columns (a StorageRefusal
  // before any license is read); reading ids and codes does not need them.
  let checked: Promise<void> | undefined;
  const datesChecked = (db: Kysely<Database>): Promise<void> =>
    (checked ??= checkBotbleDateColumns(db, tablePrefix).catch((error: unknown) => {
      checked = undefined;
      throw error;
    }));
  const readingDates =
    <A extends unknown[], R>(read: (db: Kysely<Database>, ...args: A) => Promise<R>) =>
    async (db: Kysely<Database>, ...args: A): Promise<R> => {
      await datesChecked(db);
      return read(db, ...args);
    };
  return {
    kind: 'botble',
    description: `Botble's ${tablePrefix}licenses`,
    findDueCandidates: readingDates((db, window) => findBotbleDueCandidates(db, tablePrefix, window)),
    findUnreadableDates: readingDates((db, limit: number, beforeDay: string) => findBotbleUnreadable(db, tablePrefix, limit, beforeDay)),
    expireLongPast: readingDates((db, beforeDay: string, now: string, write: boolean, list?: number) =>
      expireBotbleLongPast(db, tablePrefix, beforeDay, now, write, list),
    ),
    setStatuses: setBotbleStatuses,
    list: readingDates((db, filter?: LicenseFilter) => listBotbleLicenses(db, tablePrefix, filter)),
    findByCode: readingDates((db, code: string) => findBotbleLicenseByCode(db, tablePrefix, code)),
    findByIds: readingDates((db, ids: readonly number[]) => findBotbleLicensesByIds(db, tablePrefix, ids)),
    idsOfCode: (db, code) => botbleLicenseIdsOfCode(db, tablePrefix, code),
    codesOf: (db, ids) => botbleLicenseCodesOf(db, tablePrefix, ids),
    counts: readingDates((db) => countBotbleLicenses(db, tablePrefix)),
    hasAny: (db) => hasBotbleLicenses(db, tablePrefix),
  };
}

/** The source the config names (`licenses.source`, `botble.tablePrefix`). */
export function licenseSourceFor(config: { licenses: { source: 'own' | 'botble' }; botble: { tablePrefix: string } }): LicenseSource {
  return config.licenses.source === 'botble' ? botbleLicenses(config.botble.tablePrefix) : ownLicenses;
}

/** The code of each license these ids name, asked of the source a bounded list at a time (absent: no such license, or no code). */
export async function licenseCodes(source: LicenseSource, db: Kysely<Database>, licenseIds: Iterable<number | null>): Promise<Map<number, string>> {
  const ids = [...new Set([...licenseIds].filter((id): id is number => id !== null))];
  const codes = new Map<number, string>();
  for (let start = 0; start < ids.length; start += IDS_PER_STATEMENT) {
    for (const row of await source.codesOf(db, ids.slice(start, start + IDS_PER_STATEMENT))) if (row.license_code !== null) codes.set(row.id, row.license_code);
  }
  return codes;
}

/** Rows of the delivery log with the code of the license each names (null: no license, or one since deleted). */
export async function withLicenseCodes<T extends { license_id: number | null }>(
  source: LicenseSource,
  db: Kysely<Database>,
  rows: readonly T[],
): Promise<Array<T & { license_code: string | null }>> {
  const codes = await licenseCodes(
    source,
    db,
    rows.map((row) => row.license_id),
  );
  return rows.map((row) => ({ ...row, license_code: row.license_id === null ? null : (codes.get(row.license_id) ?? null) }));
}
