import { buildEventBody, type EventDetails, type EventSubject } from '../webhooks/payload.js';
import { EXPIRED_REMINDER, expiredReminderPayload, type DueReminder } from './after-expiry.js';
import type { License } from './license.js';
import type { DueEvent } from './rules.js';

/** Who an event is about, as the payload names it. */
export function eventSubject(license: License): EventSubject {
  return {
    license_id: license.id,
    license_code: license.code,
    product_id: license.productId,
    product_reference_id: license.productName,
    customer_id: license.customerId,
    email: license.email,
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
