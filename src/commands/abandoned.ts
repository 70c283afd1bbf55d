import type { Kysely } from 'kysely';
import type { DeliveryOutcome } from '../delivery/deliver-pending.js';
import type { Database } from '../storage/database.table.js';
import { licenseIdsOfDeliveries } from '../storage/deliveries/log.repository.js';
import { licenseCodes, type LicenseSource } from '../storage/license-source.js';

/** An abandoned delivery as every run reports it: which license, which event, and why. */
export interface AbandonedDelivery {
  id: number;
  eventType: string;
  licenseCode: string | null;
  attempts: number;
  lastStatusCode: number | null;
  lastError: string | null;
}

/** The abandoned outcomes of a run, each with its license code from the license source (looked up only for these). */
export async function abandonedDeliveries(db: Kysely<Database>, licenses: LicenseSource, outcomes: readonly DeliveryOutcome[]): Promise<AbandonedDelivery[]> {
  const abandoned = outcomes.filter((outcome) => outcome.status === 'abandoned');
  if (abandoned.length === 0) return [];
  const licenseIds = await licenseIdsOfDeliveries(
    db,
    abandoned.map((outcome) => outcome.id),
  );
  const codes = await licenseCodes(licenses, db, licenseIds.values());
  return abandoned.map((outcome) => {
    const licenseId = licenseIds.get(outcome.id);
    return {
      id: outcome.id,
      eventType: outcome.eventType,
      licenseCode: licenseId === undefined ? null : (codes.get(licenseId) ?? null),
      attempts: outcome.attempts,
      lastStatusCode: outcome.lastStatusCode,
      lastError: outcome.lastError,
    };
  });
}
