import { describe, expect, test } from '@jest/globals';
import { buildEventBody } from '../../src/webhooks/payload.js';
import { signBody } from '../../src/webhooks/sign.js';
import { verifySignature } from '../../src/webhooks/verify.js';

const secret = 'verify-secret';
const body = buildEventBody(
  { type: 'license.expiring', expiresAt: new Date('2024-01-22T10:30:00Z'), daysUntilExpiry: 7 },
  { license_id: 1, license_code: 'LIC-1', product_id: 'P', product_reference_id: 'Product', customer_id: 'C', email: 'c@example.com' },
  new Date('2024-01-15T10:30:00Z'),
);
const signature = signBody(body, secret);
const check = (received: string, given: string, key = secret) => verifySignature(Buffer.from(received), given, key).verdict;

describe('verify diagnoses', () => {
  test('valid', () => expect(check(body, signature)).toBe('valid'));
  test('sha256= prefix', () => expect(check(body, `sha256=${signature}`)).toBe('sha256-prefix'));
  test('upper-case hex', () => expect(check(body, signature.toUpperCase())).toBe('uppercase-hex'));
  test('trailing newline added to the body', () => expect(check(`${body}\n`, signature)).toBe('trailing-newline'));
  test('pretty-printed body', () => expect(check(JSON.stringify(JSON.parse(body), null, 2), signature)).toBe('re-serialised'));
  test('keys re-ordered', () => {
    const data = JSON.parse(body);
    const shuffled = JSON.stringify({
      payload: Object.fromEntries(Object.entries(data.payload).reverse()),
      timestamp: data.timestamp,
      event_type: data.event_type,
    });
    expect(check(shuffled, signature)).toBe('re-serialised');
  });
  test('empty secret', () => expect(check(body, signature, '')).toBe('empty-secret'));
  test('no signature header', () => expect(check(body, '')).toBe('missing-signature'));
  test('wrong secret', () => {
    const result = verifySignature(Buffer.from(body), signature, 'another-secret');
    expect(result.verdict).toBe('wrong-secret-or-body');
    expect(result.valid).toBe(false);
    expect(result.explanation).toMatch(/wrong secret/);
  });
  test('a truncated signature is named as one, not blamed on the secret', () => {
    const result = verifySignature(Buffer.from(body), signature.slice(0, 20), secret);
    expect(result.verdict).toBe('malformed-signature');
    expect(result.explanation).toContain('20 characters, not 64');
    expect(result.explanation).toMatch(/truncated or malformed/);
    expect(result.explanation).not.toMatch(/wrong secret/);
  });
  test('a value that is not hex, with or without the sha256= prefix, is malformed', () => {
    expect(check(body, `${signature.slice(0, 63)}g`)).toBe('malformed-signature');
    expect(check(body, `sha256=${signature.slice(0, 40)}`)).toBe('malformed-signature');
    expect(verifySignature(Buffer.from(body), `${signature.slice(0, 63)}g`, secret).explanation).toContain('not hexadecimal');
    // 64 hex characters made with another secret: still the wrong secret, as before.
    expect(check(body, signature, 'another-secret')).toBe('wrong-secret-or-body');
  });
  test('a changed value is not excused as re-serialisation', () => expect(check(body.replace('LIC-1', 'LIC-2'), signature)).toBe('wrong-secret-or-body'));
});
