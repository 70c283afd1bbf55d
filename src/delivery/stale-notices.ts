// The check before a waiting delivery is sent: its license read again, a claimed window at a time, and judged by expirations/stale-notice.ts.
import type { Kysely } from 'kysely';
import { parseInZone } from '../expirations/calendar.js';
import { readLicense, type RawLicense } from '../expirations/license.js';
import { policyFor, type ProductSchedules } from '../expirations/reminder-policy.js';
import { parseEventKey, type RecordedEvent } from '../expirations/rules.js';
import { recordedAtRunInstant, recordedByThisRun, staleNotice, type LicenseNow } from '../expirations/stale-notice.js';
import type { Database } from '../storage/database.table.js';
import { formatUtc } from '../time.js';
import { chunksOf } from '../sql/chunks.js';
import { recordedEventKeys } from '../storage/deliveries/record.repository.js';
import type { DeliveryRow } from '../storage/deliveries/log.repository.js';
import type { LicenseSource } from '../storage/license-source.js';

/** The reason each superseded delivery of a claimed window must not be sent, by delivery id (absent: send it). */
export type StaleCheck = (rows: readonly DeliveryRow[], now: Date) => Promise<Map<number, string>>;

export interface StaleNoticeCheckOptions {
  /** Where the licenses are read (our tables or Botble's). */
  licenses: LicenseSource;
  /** The business zone the rules count dates in. */
  timeZone: string;
  /** Per product its schedule (`expirations.products`): a notice of a product whose notices are turned off since is not sent. */
  products?: ProductSchedules;
  /** The largest delivery id before this run read the licenses: newer rows never attempted were recorded by it and are not checked. */
  freshAfterId?: number;
  /**
   * The instant the run applied the rules at, and whether a worker of the same run started together with it: a
   * warning such a worker recorded at this same instant is judged at it (see recordedAtRunInstant). Asked only when
   * a claimed window holds a row recorded at that instant and never attempted.
   */
  workers?: { rulesNow: Date; startedTogether: () => Promise<boolean> };
  /**
   * Why an endpoint no longer takes a delivery's event type (its `events` narrowed since it was recorded), or
   * undefined when it does: such a delivery is not sent.
   */
  narrowed?: (endpoint: string, eventType: string) => string | undefined;
}

/**
 * The check a run makes before sending the deliveries it claimed: those that waited (every row but the ones
 * it recorded itself) have their licenses read again, in one query per claimed window (and one more for the
 * events recorded for the licenses of waiting warnings), never one per delivery.
 */
export function staleNoticeCheck(db: Kysely<Database>, options: StaleNoticeCheckOptions): StaleCheck {
  const workers = options.workers;
  const rulesInstant = workers && formatUtc(workers.rulesNow);
  // A worker that started together stays so: once one is found, later windows do not ask again (until then each
  // window that holds such a row asks, as a worker may start after this run's first window).
  let together = false;
  return async (rows, now) => {
    const reasons = new Map<number, string>();
    const waiting = rows.filter((row) => row.license_id !== null && !recordedByThisRun(row, options.freshAfterId));
    if (waiting.length === 0) return reasons;
    if (workers && !together && waiting.some((row) => recordedAtRunInstant(row, rulesInstant))) together = await workers.startedTogether();
    const sameRunAt = together ? workers?.rulesNow : undefined;
    const ids = [...new Set(waiting.map((row) => row.license_id!))];
    const licenses = new Map<number, RawLicense>();
    for (const chunk of chunksOf(ids)) for (const license of await options.licenses.findByIds(db, chunk)) licenses.set(license.id, license);
    // Only a warning is judged against what else was recorded (the expired, or a later warning, of its expiry).
    const warned = [...new Set(waiting.filter((row) => row.event_type === 'license.expiring').map((row) => row.license_id!))];
    const recorded = new Map<number, RecordedEvent[]>();
    for (const row of warned.length === 0 ? [] : await recordedEventKeys(db, warned)) {
      const event = parseEventKey(row.event_key, options.timeZone, row.event_instant);
      if (event) recorded.set(event.licenseId, [...(recorded.get(event.licenseId) ?? []), event]);
    }
    for (const row of waiting) {
      const narrowed = options.narrowed?.(row.endpoint, row.event_type);
      if (narrowed !== undefined) {
        reasons.set(row.id, narrowed);
        continue;
      }
      const raw = licenses.get(row.license_id!);
      if (raw && options.products && !policyFor(raw.product_id, NO_DAYS, options.products).enabled) {
        reasons.set(row.id, `notices for product ${raw.product_id} are turned off (expirations.products.${raw.product_id}.enabled is false)`);
        continue;
      }
      const notice = { eventType: row.event_type, licenseId: row.license_id, eventKey: row.event_key, eventInstant: row.event_instant };
      const verdict = staleNotice(
        notice,
        licenseNow(licenses.get(row.license_id!), options.timeZone),
        recorded.get(row.license_id!) ?? [],
        sameRunAt && recordedAtRunInstant(row, rulesInstant) ? sameRunAt : now,
        options.timeZone,
      );
      if (!verdict.send) reasons.set(row.id, verdict.reason);
    }
    return reasons;
  };
}

/** Only a product's `enabled` is asked of its schedule here. */
const NO_DAYS = { warningDays: [], afterExpiryDays: [] };

/** A license row as the rule takes it: status and dates in the zone, why its dates cannot be read, or undefined when it is gone. */
function licenseNow(raw: RawLicense | undefined, timeZone: string): LicenseNow {
  if (!raw) return undefined;
  const license = readLicense(raw, timeZone);
  if ('problem' in license) return license;
  // A date alone or a time with no offset is read in the zone (kind date or local); one with Z or an offset is an instant.
  const wallTime = (text: string | null) => text !== null && parseInZone(text, timeZone)?.kind !== 'instant';
  return {
    status: license.status,
    expiresAt: license.expiresAt,
    updatesUntil: license.updatesUntil,
    wallTime: { expiresAt: wallTime(raw.expires_at), updatesUntil: wallTime(raw.updates_until) },
  };
}
