// deliveries stats, the pure part: classes, percentiles, streaks and counts from hand-built attempt rows.
import { describe, expect, test } from '@jest/globals';
import {
  classifyAttempt,
  DeliveryStatsAccumulator,
  ERROR_CLASSES,
  type EndpointDeliveryCounts,
  type EndpointStats,
} from '../../src/monitoring/delivery-stats.js';
import { endpointStatsJson } from '../helpers/json-shapes.js';

const t0 = Date.parse('2026-03-01T02:00:00Z');
const at = (seconds: number) => new Date(t0 + seconds * 1000);
const now = at(3600);

interface Group {
  endpoint: string;
  statusCode: number | null;
  error: string | null;
  durationMs: number;
  count: number;
}
type Recent = Parameters<DeliveryStatsAccumulator['setRecent']>[0];

function group(endpoint: string, statusCode: number | null, durationMs = 100, error: string | null = null, count = 1): Group {
  return { endpoint, statusCode, error, durationMs, count };
}

/**
 * What `deliveries stats` does with what the database gives it: grouped attempts, each endpoint's recent history, delivery
 * counts. Each endpoint is parsed with the documented --json shape: every error class present, whole ms, UTC instants.
 */
function stats(groups: readonly Group[], recent: readonly Recent[] = [], counts: readonly EndpointDeliveryCounts[] = []): EndpointStats[] {
  const accumulator = new DeliveryStatsAccumulator();
  for (const entry of groups) accumulator.addAttemptGroup(entry);
  for (const entry of recent) accumulator.setRecent(entry);
  for (const entry of counts) accumulator.addCounts(entry);
  return accumulator.result(now).map((entry) => endpointStatsJson.parse(entry));
}

describe('classifying an attempt', () => {
  test.each([
    [200, null, 'success'],
    [204, null, 'success'],
    [301, 'HTTP 301 redirect to https://elsewhere.example/ (redirects are not followed: set the final URL)', 'http_3xx'],
    [400, 'HTTP 400: bad request', 'http_4xx'],
    [408, 'HTTP 408', 'http_4xx'],
    [410, 'HTTP 410: gone', 'http_4xx'],
    [429, 'HTTP 429: slow down', 'http_429'],
    [500, 'HTTP 500: status 500', 'http_5xx'],
    [503, 'HTTP 503', 'http_5xx'],
    [101, null, 'other'],
    [600, null, 'other'],
  ])('status %s → %s', (statusCode, error, expected) => {
    expect(classifyAttempt({ statusCode, error })).toBe(expected);
  });

  // The texts postOnce writes (test/integration/retry.test.ts, test/cli/recovery.test.ts, and undici's and OpenSSL's own).
  test.each([
    ['timed out after 10000 ms', 'timeout'],
    ['connect ETIMEDOUT 10.0.0.1:443', 'timeout'],
    ['Connect Timeout Error (attempted address: hooks.example.com:443, timeout: 10000ms) (UND_ERR_CONNECT_TIMEOUT)', 'timeout'],
    ['connect ECONNREFUSED 127.0.0.1:9', 'connection_refused'],
    ['getaddrinfo ENOTFOUND hooks.invalid', 'dns'],
    ['getaddrinfo EAI_AGAIN hooks.example.com', 'dns'],
    [
      '800C709AC67F0000:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../deps/openssl/openssl/ssl/record/ssl3_record.c:350: (ERR_SSL_WRONG_VERSION_NUMBER)',
      'tls',
    ],
    ['certificate has expired (CERT_HAS_EXPIRED)', 'tls'],
    ['unable to verify the first certificate (UNABLE_TO_VERIFY_LEAF_SIGNATURE)', 'tls'],
    ["Hostname/IP does not match certificate's altnames: Host: a.example. is not in the cert's altnames: DNS:b.example (ERR_TLS_CERT_ALTNAME_INVALID)", 'tls'],
    ['Client network socket disconnected before secure TLS connection was established (ECONNRESET)', 'tls'],
    ['other side closed (UND_ERR_SOCKET)', 'connection_closed'],
    ['read ECONNRESET', 'connection_closed'],
    ['socket hang up (ECONNRESET)', 'connection_closed'],
    ['terminated', 'connection_closed'],
    ['connect EHOSTUNREACH 10.9.9.9:443', 'unreachable'],
    ['connect ENETUNREACH 2001:db8::1:443', 'unreachable'],
    ['Response does not match the HTTP/1.1 protocol (Invalid status code)', 'protocol'],
    ['Response does not match the HTTP/1.1 protocol (Expected HTTP/) (HPE_INVALID_CONSTANT)', 'protocol'],
    ['bad port', 'other'],
    ['Invalid URL (ERR_INVALID_URL)', 'other'],
    [null, 'other'],
  ])('no response, %j → %s', (error, expected) => {
    expect(classifyAttempt({ statusCode: null, error })).toBe(expected);
  });
});

describe('per endpoint statistics', () => {
  test('success rate and classes from the groups; last success, last attempt and the failure streak as the database read them', () => {
    const groups = [
      group('billing', 200, 120),
      group('billing', 500, 80, 'HTTP 500: oops'),
      group('billing', 200, 140),
      group('billing', null, 10_000, 'timed out after 10000 ms'),
      group('billing', null, 3, 'connect ECONNREFUSED 10.0.0.5:443'),
      group('billing', 429, 20, 'HTTP 429'),
    ];
    const [billing] = stats(groups, [{ endpoint: 'billing', lastSuccessAt: at(20), lastAttemptAt: at(50), consecutiveFailures: 3 }]);
    expect(billing).toMatchObject({
      endpoint: 'billing',
      attempts: 6,
      succeeded: 2,
      successRate: 2 / 6,
      lastSuccessAt: '2026-03-01T02:00:20Z',
      lastAttemptAt: '2026-03-01T02:00:50Z',
      consecutiveFailures: 3,
    });
    expect(billing!.errors).toEqual({
      ...Object.fromEntries(ERROR_CLASSES.map((name) => [name, 0])),
      http_5xx: 1,
      timeout: 1,
      connection_refused: 1,
      http_429: 1,
    });
    // Response times count only attempts that got a response: 20, 80, 120, 140 ms.
    expect(billing!.responseMs).toEqual({ median: 80, p95: 140 });
  });

  test('nearest-rank percentiles on 1..100 ms and on one value; none without a response', () => {
    const groups = Array.from({ length: 100 }, (_, index) => group('a', 200, 100 - index));
    groups.push(group('b', 200, 7), group('c', null, 10_000, 'timed out after 10000 ms'));
    expect(stats(groups).map((entry) => [entry.endpoint, entry.responseMs])).toEqual([
      ['a', { median: 50, p95: 95 }],
      ['b', { median: 7, p95: 7 }],
      ['c', { median: null, p95: null }],
    ]);
  });

  test('a million-attempt shape stays exact: a group counts as many attempts as it holds; durations are whole ms, rounded and never negative', () => {
    const groups = Array.from({ length: 1000 }, (_, ms) => group('default', 200, ms + 0.4, null, 200));
    groups.push(group('default', 204, -5));
    const [result] = stats(groups);
    expect(result!.attempts).toBe(200_001);
    // 200 of each of 0..999 ms plus one 0: the 100,001st value is 499 ms, the 190,001st is 949 ms.
    expect(result!.responseMs).toEqual({ median: 499, p95: 949 });
  });

  test('no success at all: the rate is 0 and the streak is what the database counted', () => {
    const [result] = stats([group('x', 404, 5, 'HTTP 404', 2)], [{ endpoint: 'x', lastSuccessAt: null, lastAttemptAt: at(1), consecutiveFailures: 2 }]);
    expect(result).toMatchObject({ successRate: 0, consecutiveFailures: 2, lastSuccessAt: null });
    expect(result!.errors.http_4xx).toBe(2);
  });

  test('delivery counts and the oldest undelivered age; an endpoint with counts and no attempt is listed', () => {
    const result = stats(
      [group('default', 200)],
      [],
      [
        { endpoint: 'default', delivered: 10, abandoned: 1, oldestUndeliveredAt: null },
        { endpoint: 'crm', deferred: 3, parked: 2, pending: 1, oldestUndeliveredAt: '2026-03-01T01:00:00Z' },
      ],
    );
    expect(result.map((entry) => entry.endpoint)).toEqual(['crm', 'default']);
    expect(result[0]).toMatchObject({
      attempts: 0,
      successRate: null,
      consecutiveFailures: 0,
      deliveries: { delivered: 0, pending: 1, deferred: 3, parked: 2, abandoned: 0, superseded: 0 },
      oldestUndeliveredAgeSeconds: 2 * 3600,
    });
    expect(result[1]).toMatchObject({ deliveries: { delivered: 10, abandoned: 1, pending: 0 }, oldestUndeliveredAgeSeconds: null });
  });

  test('stored UTC text is read as the database gives it; an unreadable time is refused by name', () => {
    const [result] = stats(
      [group('a', 200, 1)],
      [{ endpoint: 'a', lastSuccessAt: '2026-03-01 02:00:05', lastAttemptAt: '2026-03-01 02:00:05', consecutiveFailures: 0 }],
    );
    expect(result!.lastSuccessAt).toBe('2026-03-01T02:00:05Z');
    expect(() => stats([], [{ endpoint: 'a', lastSuccessAt: 'yesterday', lastAttemptAt: null, consecutiveFailures: 0 }])).toThrow(
      'the last success of endpoint "a" is not a time: yesterday',
    );
  });
});
