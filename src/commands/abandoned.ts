import type { Kysely } from 'kysely';
import type { DeliveryOutcome } from '../delivery/deliver-pending.js';
import type { Database } from '../storage/database.table.js';
import { licenseCodesOfDeliveries } from '../storage/deliveries.repository.js';

/** An abandoned delivery as every run reports it: which license, which event, and why. */
export interface AbandonedDelivery {
  id: number;
  eventType: string;
  licenseCode: string | null;
  attempts: number;
  lastStatusCode: number | null;
  lastError: string | null;
}

/** The abandoned outcomes of a run, each with its license code (looked up only for these). */
export async function abandonedDeliveries(db: Kysely<Database>, outcomes: readonly DeliveryOutcome[]): Promise<AbandonedDelivery[]> {
  const abandoned = outcomes.filter((outcome) => outcome.status === 'abandoned');
  if (abandoned.length === 0) return [];
  const codes = await licenseCodesOfDeliveries(
    db,
    abandoned.map((outcome) => outcome.id),
  );
  return abandoned.map((outcome) => ({
    id: outcome.id,
    eventType: outcome.eventType,
    licenseCode: codes.get(outcome.id) ?? null,
    attempts: outcome.attempts,
    lastStatusCode: outcome.lastStatusCode,
    lastError: outcome.lastError,
  }));
}
