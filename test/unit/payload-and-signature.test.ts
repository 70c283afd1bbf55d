import { describe, expect, test } from '@jest/globals';
import { webhookHeaders } from '../../src/webhooks/headers.js';
import { buildEventBody, type EventSubject } from '../../src/webhooks/payload.js';
import { signBody } from '../../src/webhooks/sign.js';

// The reference's own example values (license-manager-webhooks.txt, "Event Details").
const subject: EventSubject = {
  license_id: 123,
  license_code: 'LIC-ABC-123',
  product_id: 'PROD-001',
  product_reference_id: 'My Product',
  customer_id: 'CUST-001',
  email: 'customer@example.com',
};
const timestamp = new Date('2024-01-15T10:30:00Z');
const head =
  '{"event_type":"%TYPE%","timestamp":"2024-01-15T10:30:00Z","payload":{"license_id":123,"license_code":"LIC-ABC-123","product_id":"PROD-001","product_reference_id":"My Product","customer_id":"CUST-001","email":"customer@example.com",';

describe('event bodies', () => {
  test('license.expiring has the reference keys, order and formats', () => {
    const body = buildEventBody({ type: 'license.expiring', expiresAt: new Date('2024-01-22T10:30:00Z'), daysUntilExpiry: 7 }, subject, timestamp);
    expect(body).toBe(`${head.replace('%TYPE%', 'license.expiring')}"expires_at":"2024-01-22T10:30:00Z","days_until_expiry":7}}`);
    expect(Object.keys(JSON.parse(body))).toEqual(['event_type', 'timestamp', 'payload']);
  });

  test('license.expired carries expired_at', () => {
    const body = buildEventBody({ type: 'license.expired', expiresAt: new Date('2024-01-15T00:00:00Z') }, subject, timestamp);
    expect(body).toBe(`${head.replace('%TYPE%', 'license.expired')}"expired_at":"2024-01-15T00:00:00Z"}}`);
  });

  test('license.update_support_expired carries updates_until', () => {
    const body = buildEventBody({ type: 'license.update_support_expired', updatesUntil: new Date('2024-01-15T00:00:00Z') }, subject, timestamp);
    expect(body).toBe(`${head.replace('%TYPE%', 'license.update_support_expired')}"updates_until":"2024-01-15T00:00:00Z"}}`);
  });

  test('times drop milliseconds and are always UTC with Z', () => {
    const body = buildEventBody({ type: 'license.expired', expiresAt: new Date('2024-01-15T01:02:03.987+02:00') }, subject, new Date('2024-01-15T10:30:00.5Z'));
    const parsed = JSON.parse(body);
    expect(parsed.timestamp).toBe('2024-01-15T10:30:00Z');
    expect(parsed.payload.expired_at).toBe('2024-01-14T23:02:03Z');
  });

  test('missing optional fields are null, not left out', () => {
    const body = buildEventBody({ type: 'license.expired', expiresAt: timestamp }, { ...subject, product_id: null, email: null }, timestamp);
    expect(JSON.parse(body).payload).toMatchObject({ product_id: null, email: null });
  });
});

describe('signature', () => {
  const body = `${head.replace('%TYPE%', 'license.expiring')}"expires_at":"2024-01-22T10:30:00Z","days_until_expiry":7}}`;

  test('known answer: lowercase hex HMAC-SHA256 of the exact bytes (computed independently with openssl)', () => {
    expect(signBody(body, 'your-webhook-secret')).toBe('b320c0748465e5a79b4ad1382551d43ebb0656e7535aacac6cfeaa714b8a9ff7');
  });

  test('one changed byte changes the signature', () => {
    expect(signBody(`${body} `, 'your-webhook-secret')).not.toBe(signBody(body, 'your-webhook-secret'));
  });

  test("headers: the reference four plus X-Webhook-Id and the HTTP client's Accept; no signature header without a secret", () => {
    const event = { eventId: 'evt-1', eventType: 'license.expiring', body };
    expect(webhookHeaders(event, 'your-webhook-secret')).toEqual({
      'Content-Type': 'application/json',
      Accept: 'application/json',
      'X-Webhook-Event': 'license.expiring',
      'X-Webhook-Id': 'evt-1',
      'User-Agent': 'LicenseManager-Webhook/1.0',
      'X-Webhook-Signature': 'b320c0748465e5a79b4ad1382551d43ebb0656e7535aacac6cfeaa714b8a9ff7',
    });
    expect(webhookHeaders(event, null)).not.toHaveProperty('X-Webhook-Signature');
  });
});
