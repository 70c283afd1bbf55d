import { describe, expect, test } from '@jest/globals';
import { skewWarning } from '../../src/delivery/lease-clock.js';
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
