import type { Kysely } from 'kysely';
import {
  countBotbleLicenses,
  expireBotbleLongPast,
  findBotbleDueCandidates,
  findBotbleLicenseByCode,
  hasBotbleLicenses,
  listBotbleLicenses,
  setBotbleStatuses,
} from './botble.repository.js';
import type { Database } from './database.table.js';
import type { StatusWriter } from './deliveries.repository.js';
import {
  expireLongPast,
  findDueCandidates,
  findLicenseByCode,
  findUnreadableDates,
  hasLicenses,
  licenseCounts,
  listLicenses,
  writeStatusChanges,
  type LicenseFilter,
  type LicenseRow,
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
  findDueCandidates(db: Kysely<Database>, window: { fromDay: string; expiresBeforeDay: string; supportBeforeDay: string }): Promise<LicenseRow[]>;
  /** Rows whose dates are text that is not a date (a DATE column holds none). */
  findUnreadableDates(db: Kysely<Database>, limit: number): Promise<UnreadableDate[]>;
  expireLongPast(db: Kysely<Database>, beforeDay: string, now: string, write: boolean): Promise<number>;
  setStatuses: StatusWriter;
  list(db: Kysely<Database>, filter?: LicenseFilter): Promise<LicenseRow[]>;
  findByCode(db: Kysely<Database>, code: string): Promise<LicenseRow | undefined>;
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
  list: listLicenses,
  findByCode: findLicenseByCode,
  counts: licenseCounts,
  hasAny: hasLicenses,
};

function botbleLicenses(tablePrefix: string): LicenseSource {
  return {
    kind: 'botble',
    description: `Botble's ${tablePrefix}licenses`,
    findDueCandidates: (db, window) => findBotbleDueCandidates(db, tablePrefix, window),
    findUnreadableDates: async () => [],
    expireLongPast: (db, beforeDay, now, write) => expireBotbleLongPast(db, tablePrefix, beforeDay, now, write),
    setStatuses: setBotbleStatuses,
    list: (db, filter) => listBotbleLicenses(db, tablePrefix, filter),
    findByCode: (db, code) => findBotbleLicenseByCode(db, tablePrefix, code),
    counts: (db) => countBotbleLicenses(db, tablePrefix),
    hasAny: (db) => hasBotbleLicenses(db, tablePrefix),
  };
}

/** The source the config names (`licenses.source`, `botble.tablePrefix`). */
export function licenseSourceFor(config: { licenses: { source: 'own' | 'botble' }; botble: { tablePrefix: string } }): LicenseSource {
  return config.licenses.source === 'botble' ? botbleLicenses(config.botble.tablePrefix) : ownLicenses;
}
