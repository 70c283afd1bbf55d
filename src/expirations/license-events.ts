import { buildEventBody, type EventDetails, type EventSubject } from '../webhooks/payload.js';
import { EXPIRED_REMINDER, expiredReminderPayload, type DueReminder } from './after-expiry.js';
import { parseInZone } from './calendar.js';
import type { DueEvent } from './rules.js';

/** The fields of a stored license read here: own tables and the Botble adapter both give them. */
export interface LicenseFields {
  id: number;
  license_code: string;
  product_id: string | null;
  product_name: string | null;
  customer_id: string | null;
  email: string | null;
  expires_at: string | null;
  updates_until: string | null;
}

/** A license row's dates as instants (read in the business zone), or a reason they cannot be read. */
export function readDates(row: LicenseFields, timeZone: string): { expiresAt: Date | null; updatesUntil: Date | null } | { problem: string } {
  // Rows written by other systems: an event without a license code would reach receivers unusable.
  if (row.license_code.trim() === '') return { problem: 'license_code is empty' };
  const expiresAt = row.expires_at === null ? null : parseInZone(row.expires_at, timeZone)?.instant;
  if (expiresAt === undefined) return { problem: `expires_at "${row.expires_at}" is not a date` };
  const updatesUntil = row.updates_until === null ? null : parseInZone(row.updates_until, timeZone)?.instant;
  if (updatesUntil === undefined) return { problem: `updates_until "${row.updates_until}" is not a date` };
  return { expiresAt, updatesUntil };
}

export function eventSubject(row: LicenseFields): EventSubject {
  return {
    license_id: row.id,
    license_code: row.license_code,
    product_id: row.product_id,
    product_reference_id: row.product_name,
    customer_id: row.customer_id,
    email: row.email,
  };
}

function eventDetails(event: Pick<DueEvent, 'type' | 'date' | 'daysUntilExpiry'>): EventDetails {
  switch (event.type) {
    case 'license.expiring':
      return { type: event.type, expiresAt: event.date, daysUntilExpiry: event.daysUntilExpiry ?? 0 };
    case 'license.expired':
      return { type: event.type, expiresAt: event.date };
    case 'license.update_support_expired':
      return { type: event.type, updatesUntil: event.date };
  }
}

/** The exact body bytes of a due event or reminder, recorded at `now`. */
export function eventBody(event: DueEvent | DueReminder, subject: EventSubject, now: Date): string {
  if (event.type === EXPIRED_REMINDER) return expiredReminderPayload(subject, event.date, event.daysSinceExpiry, now);
  return buildEventBody(eventDetails(event), subject, now);
}
