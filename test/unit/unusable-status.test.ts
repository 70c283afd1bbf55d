import { describe, expect, test } from '@jest/globals';
import { MAX_RESYNC_ROUND_TRIP_MS, resyncedOffset, skewWarning } from '../../src/delivery/lease-clock.js';
import { UnusableStatus, unusableStatusIn, unusableStatusLine } from '../../src/webhooks/status.js';

describe('a status line whose code is no HTTP status', () => {
  test.each([
    ['HTTP/1.1 999 Odd\r\n', '999'],
    ['HTTP/1.1 600 Odd\r\n', '600'],
    ['HTTP/1.1 099 Odd\r\n', '099'],
    ['HTTP/1.1 1000 Odd\r\n', '1000'],
    ['HTTP/1.0 42\r\n', '42'],
  ])('%j is named by its code', (head, code) => {
    expect(unusableStatusLine(head)).toBe(code);
  });

  test.each([
    'HTTP/1.1 200 OK\r\n',
    'HTTP/1.1 100 Continue\r\n',
    'HTTP/1.1 599 Odd\r\n',
    'HTTP/1.1 204\r\n',
    'HTTP/1.1 banana\r\n',
    'HTTP/1.1 20',
    'SSH-2.0-OpenSSH',
  ])('%j is left to the HTTP parser', (head) => {
    expect(unusableStatusLine(head)).toBeUndefined();
  });

  test('found through the causes fetch wraps it in', () => {
    const error = new TypeError('fetch failed', { cause: new Error('socket', { cause: new UnusableStatus('999') }) });
    expect(unusableStatusIn(error)?.message).toBe(
      'the receiver answered with status 999, which is not an HTTP status (RFC 9110 §15: 100 to 599): fix the receiver',
    );
    expect(unusableStatusIn(new Error('other'))).toBeUndefined();
  });
});

describe('the clock skew warning', () => {
  test('within 10 s nothing; beyond, how far and which way', () => {
    expect(skewWarning(9_999)).toBeUndefined();
    expect(skewWarning(-9_999)).toBeUndefined();
    expect(skewWarning(60_040)).toMatch(/^this host's clock is 60\.0 s ahead of the database server's/);
    expect(skewWarning(-12_500)).toMatch(/^this host's clock is 12\.5 s behind the database server's/);
  });
});

describe("the lease clock's later measurements of the database's clock", () => {
  test('a quick one gives the offset at the middle of its round trip; one slower than MAX_RESYNC_ROUND_TRIP_MS is not used', () => {
    // The database read 1,000,050 when this host read 1,000,000 before asking and 1,000,040 after: 30 ms ahead.
    expect(resyncedOffset(1_000_000, 1_000_050, 1_000_040)).toBe(30);
    expect(resyncedOffset(1_000_000, 1_000_500, 1_000_000 + MAX_RESYNC_ROUND_TRIP_MS)).toBe(0);
    // A run paused for 60 s between asking and reading would have moved its lease clock by 30 s.
    expect(resyncedOffset(1_000_000, 1_000_020, 1_060_000)).toBeUndefined();
    expect(resyncedOffset(1_000_000, 1_000_020, 1_000_001 + MAX_RESYNC_ROUND_TRIP_MS)).toBeUndefined();
  });
});
