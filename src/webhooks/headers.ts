import { signBody } from './sign.js';

const USER_AGENT = 'LicenseManager-Webhook/1.0';

export interface OutgoingEvent {
  eventId: string;
  eventType: string;
  /** The exact bytes to send and to sign. */
  body: string;
  /** Sent by `send-test-event`: marked with X-Webhook-Test, so a receiver answers it without acting on it. */
  test?: boolean;
}

/** The header that marks a test event; the body stays the reference's, byte for byte. */
const TEST_EVENT_HEADER = 'X-Webhook-Test';

/**
 * The reference's headers, plus X-Webhook-Id so receivers can drop duplicates, and the Accept that ofetch
 * sends with a JSON body anyway (named here so that send-test-event prints every header that goes out).
 */
export function webhookHeaders(event: OutgoingEvent, secret: string | null): Record<string, string> {
  const headers: Record<string, string> = {
    'Content-Type': 'application/json',
    Accept: 'application/json',
    'X-Webhook-Event': event.eventType,
    'X-Webhook-Id': event.eventId,
    'User-Agent': USER_AGENT,
  };
  if (event.test) headers[TEST_EVENT_HEADER] = 'true';
  if (secret) headers['X-Webhook-Signature'] = signBody(event.body, secret);
  return headers;
}
