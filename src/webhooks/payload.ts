import type { EventType } from './event-types.js';
import { formatUtc } from '../time.js';

/** Who an event is about, in the reference's field names and order. */
export interface EventSubject {
  license_id: number;
  license_code: string;
  /** The product reference id. */
  product_id: string | null;
  /** The product name: the reference puts the name in this field, and receivers rely on it. */
  product_reference_id: string | null;
  customer_id: string | null;
  email: string | null;
}

export type EventDetails =
  | { type: 'license.expiring'; expiresAt: Date; daysUntilExpiry: number }
  | { type: 'license.expired'; expiresAt: Date }
  | { type: 'license.update_support_expired'; updatesUntil: Date };

/**
 * The exact body bytes of an event, keys in the reference's order:
 * `{"event_type":…,"timestamp":…,"payload":{license_id, license_code, product_id, product_reference_id,
 * customer_id, email, then expires_at + days_until_expiry | expired_at | updates_until}}`.
 */
export function buildEventBody(details: EventDetails, subject: EventSubject, timestamp: Date): string {
  const payload: Record<string, unknown> = {
    license_id: subject.license_id,
    license_code: subject.license_code,
    product_id: subject.product_id,
    product_reference_id: subject.product_reference_id,
    customer_id: subject.customer_id,
    email: subject.email,
  };
  switch (details.type) {
    case 'license.expiring':
      payload.expires_at = formatUtc(details.expiresAt);
      payload.days_until_expiry = details.daysUntilExpiry;
      break;
    case 'license.expired':
      payload.expired_at = formatUtc(details.expiresAt);
      break;
    case 'license.update_support_expired':
      payload.updates_until = formatUtc(details.updatesUntil);
      break;
  }
  const event: { event_type: EventType; timestamp: string; payload: Record<string, unknown> } = {
    event_type: details.type,
    timestamp: formatUtc(timestamp),
    payload,
  };
  return JSON.stringify(event);
}
