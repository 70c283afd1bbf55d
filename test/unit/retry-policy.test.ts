import { describe, expect, test } from '@jest/globals';
import {
  classifyOutcome,
  deferralsAt,
  isRetryable,
  MAX_RETRY_AFTER_MS,
  nextAttemptAt,
  parseRetryAfter,
  type NextAttemptInput,
} from '../../src/delivery/retry-policy.js';

const MINUTE = 60 * 1000;
const HOUR = 60 * MINUTE;

describe('classifyOutcome', () => {
  test.each([
    [200, 'delivered'],
    [204, 'delivered'],
    [299, 'delivered'],
    [410, 'gone'],
    [429, 'throttle'],
    [502, 'throttle'],
    [503, 'throttle'],
    [504, 'throttle'],
    [500, 'retry'],
    [501, 'retry'],
    [599, 'retry'],
    [408, 'retry'],
    [400, 'final'],
    [401, 'final'],
    [404, 'final'],
    [409, 'final'],
    [301, 'final'],
    [302, 'final'],
    [304, 'final'],
    [101, 'final'],
  ] as const)('HTTP %d is %s', (statusCode, expected) => {
    expect(classifyOutcome({ statusCode, transportError: null })).toBe(expected);
  });

  test('no response (refused, timeout) is retry', () => {
    expect(classifyOutcome({ statusCode: null, transportError: 'connect ECONNREFUSED 127.0.0.1:9' })).toBe('retry');
    expect(classifyOutcome({ statusCode: null, transportError: 'timed out after 10000 ms' })).toBe('retry');
  });

  test('retry and throttle are retryable; the rest are not', () => {
    expect(['delivered', 'retry', 'throttle', 'gone', 'final'].filter((verdict) => isRetryable(verdict as never))).toEqual(['retry', 'throttle']);
  });
});

describe('parseRetryAfter (RFC 9110 §10.2.3)', () => {
  const now = new Date('2026-03-01T12:00:00Z');

  test('delay-seconds', () => {
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter(' 2 ', now)).toBe(2000);
    expect(parseRetryAfter('0', now)).toBe(0);
  });

  test('the three HTTP-date forms', () => {
    expect(parseRetryAfter('Sun, 01 Mar 2026 12:05:00 GMT', now)).toBe(5 * MINUTE);
    // RFC 850 with a two-digit year, and asctime with a space-padded day.
    expect(parseRetryAfter('Sunday, 01-Mar-26 13:00:00 GMT', now)).toBe(HOUR);
    expect(parseRetryAfter('Sun Mar  1 12:00:30 2026', now)).toBe(30_000);
    expect(parseRetryAfter('Tue Mar 10 12:00:00 2026', now)).toBe(9 * 24 * HOUR);
  });

  test('a two-digit year more than 50 years ahead is in the past: retry now', () => {
    // 2099 is more than 50 years after 2026, so "99" is 1999.
    expect(parseRetryAfter('Wednesday, 01-Mar-99 12:00:00 GMT', now)).toBe(0);
    // 2076 is not more than 50 years ahead: a future date, so capped rather than 0.
    expect(parseRetryAfter('Sunday, 01-Mar-76 12:00:00 GMT', now)).toBe(MAX_RETRY_AFTER_MS);
  });

  test('a date in the past means now', () => {
    expect(parseRetryAfter('Sun, 01 Mar 2026 11:00:00 GMT', now)).toBe(0);
  });

  test('absurd values are capped', () => {
    expect(parseRetryAfter('99999999999', now)).toBe(MAX_RETRY_AFTER_MS);
    expect(parseRetryAfter('9'.repeat(400), now)).toBe(MAX_RETRY_AFTER_MS);
    expect(parseRetryAfter('Fri, 01 Jan 9999 00:00:00 GMT', now)).toBe(MAX_RETRY_AFTER_MS);
  });

  test.each([
    '',
    '   ',
    '-5',
    '1.5',
    '1e3',
    '0x10',
    'soon',
    '120 seconds',
    'Sun, 31 Feb 2026 12:00:00 GMT',
    'Sun, 01 Mar 2026 25:00:00 GMT',
    'Sun, 01 Mar 2026 12:00:00 CET',
    '2026-03-01T12:05:00Z',
  ])('%j is not a Retry-After: undefined', (value) => {
    expect(parseRetryAfter(value, now)).toBeUndefined();
  });

  test('no header', () => {
    expect(parseRetryAfter(null, now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });
});

describe('nextAttemptAt', () => {
  const recordedAt = new Date('2026-03-01T02:00:00Z');
  const input = (overrides: Partial<NextAttemptInput>): NextAttemptInput => ({
    recordedAt,
    deferrals: 0,
    now: recordedAt,
    windowHours: 72,
    jitter: 0,
    ...overrides,
  });
  const after = (start: Date, ms: number) => new Date(start.getTime() + ms);

  test('5 min, 30 min, 2 h, 6 h, then every 12 h', () => {
    const delays = [5 * MINUTE, 30 * MINUTE, 2 * HOUR, 6 * HOUR, 12 * HOUR, 12 * HOUR, 12 * HOUR];
    delays.forEach((delay, deferrals) => {
      expect(nextAttemptAt(input({ deferrals }))).toEqual({ at: after(recordedAt, delay), last: false });
    });
  });

  test('the whole schedule over a dead receiver: counted from each failure, the last attempt on the window end, then abandoned', () => {
    const attempts: string[] = [];
    let now = recordedAt;
    for (let deferrals = 0; deferrals < 20; deferrals += 1) {
      const next = nextAttemptAt(input({ deferrals, now }));
      if ('abandon' in next) {
        expect(next.reason).toContain('retry window ended at 2026-03-04T02:00:00Z');
        break;
      }
      attempts.push(next.at.toISOString() + (next.last ? ' last' : ''));
      now = next.at;
    }
    expect(attempts).toEqual([
      '2026-03-01T02:05:00.000Z',
      '2026-03-01T02:35:00.000Z',
      '2026-03-01T04:35:00.000Z',
      '2026-03-01T10:35:00.000Z',
      '2026-03-01T22:35:00.000Z',
      '2026-03-02T10:35:00.000Z',
      '2026-03-02T22:35:00.000Z',
      '2026-03-03T10:35:00.000Z',
      '2026-03-03T22:35:00.000Z',
      '2026-03-04T02:00:00.000Z last',
    ]);
  });

  test('jitter adds at most 10 % of the backoff, exactly as given', () => {
    expect(nextAttemptAt(input({ deferrals: 1, jitter: 1 }))).toEqual({ at: after(recordedAt, 33 * MINUTE), last: false });
    expect(nextAttemptAt(input({ deferrals: 1, jitter: 0.5 }))).toEqual({ at: after(recordedAt, 31.5 * MINUTE), last: false });
  });

  test('Retry-After replaces the backoff, without jitter, capped by the window', () => {
    const now = after(recordedAt, HOUR);
    expect(nextAttemptAt(input({ now, deferrals: 3, retryAfterMs: 2000, jitter: 1 }))).toEqual({ at: after(now, 2000), last: false });
    // A second at the least (Retry-After: 0, a date gone by): past the second of the run that deferred it.
    expect(nextAttemptAt(input({ now, retryAfterMs: 0 }))).toEqual({ at: after(now, 1000), last: false });
    expect(nextAttemptAt(input({ now, retryAfterMs: 999 }))).toEqual({ at: after(now, 1000), last: false });
    expect(nextAttemptAt(input({ now, retryAfterMs: 100 * HOUR }))).toEqual({ at: after(recordedAt, 72 * HOUR), last: true });
  });

  test('the window counts from when the event was recorded, not from the first failure', () => {
    const now = after(recordedAt, 71 * HOUR);
    expect(nextAttemptAt(input({ now }))).toEqual({ at: after(now, 5 * MINUTE), last: false });
    expect(nextAttemptAt(input({ now: after(recordedAt, 71 * HOUR + 58 * MINUTE) }))).toEqual({ at: after(recordedAt, 72 * HOUR), last: true });
    expect(nextAttemptAt(input({ now: after(recordedAt, 72 * HOUR - 400) }))).toEqual({ at: after(recordedAt, 72 * HOUR + 600), last: true });
    expect(nextAttemptAt(input({ now: after(recordedAt, 72 * HOUR) }))).toMatchObject({ abandon: true });
    expect(nextAttemptAt(input({ windowHours: 1, now: after(recordedAt, HOUR + 1) }))).toMatchObject({ abandon: true });
  });

  test('windowHours 0 never defers: the reference behaviour', () => {
    expect(nextAttemptAt(input({ windowHours: 0 }))).toEqual({ abandon: true, reason: expect.stringContaining('retryWindowHours is 0') });
    expect(nextAttemptAt(input({ windowHours: 0, retryAfterMs: 1000 }))).toMatchObject({ abandon: true });
  });

  test('nonsense input is a programming error', () => {
    expect(() => nextAttemptAt(input({ deferrals: -1 }))).toThrow(RangeError);
    expect(() => nextAttemptAt(input({ deferrals: 1.5 }))).toThrow(RangeError);
    expect(() => nextAttemptAt(input({ jitter: 2 }))).toThrow('jitter must be from 0 to 1');
    expect(() => nextAttemptAt(input({ jitter: Number.NaN }))).toThrow(RangeError);
    expect(() => nextAttemptAt(input({ windowHours: -1 }))).toThrow(RangeError);
    expect(() => nextAttemptAt(input({ retryAfterMs: -5 }))).toThrow(RangeError);
  });
});

describe('deferralsAt: the backoff steps count from when the event was recorded', () => {
  const recordedAt = new Date('2025-01-23T02:00:00Z');
  const after = (ms: number) => new Date(recordedAt.getTime() + ms);
  test('steps passed at 5 min, 35 min, 2 h 35 min, 8 h 35 min, then every 12 h', () => {
    expect(
      [0, 5 * MINUTE - 1, 5 * MINUTE, 35 * MINUTE - 1, 35 * MINUTE, 155 * MINUTE, 515 * MINUTE - 1, 515 * MINUTE].map((ms) =>
        deferralsAt(recordedAt, after(ms)),
      ),
    ).toEqual([0, 0, 1, 1, 2, 3, 3, 4]);
    expect(deferralsAt(recordedAt, after(515 * MINUTE + 12 * HOUR - 1))).toBe(4);
    expect(deferralsAt(recordedAt, after(515 * MINUTE + 12 * HOUR))).toBe(5);
    // A clock behind the recording (another host): no step passed.
    expect(deferralsAt(recordedAt, after(-HOUR))).toBe(0);
  });

  test('with nextAttemptAt, a delivery failing at each due time goes near recorded + 5 min, 35 min, 2 h 35 min, 8 h 35 min, 20 h 35 min', () => {
    let now = after(10_000);
    const times: string[] = [];
    for (let step = 0; step < 5; step += 1) {
      const next = nextAttemptAt({ recordedAt, deferrals: deferralsAt(recordedAt, now), now, windowHours: 72, jitter: 0 });
      if ('abandon' in next) throw new Error('abandoned early');
      times.push(next.at.toISOString());
      now = next.at;
    }
    expect(times).toEqual([
      '2025-01-23T02:05:10.000Z',
      '2025-01-23T02:35:10.000Z',
      '2025-01-23T04:35:10.000Z',
      '2025-01-23T10:35:10.000Z',
      '2025-01-23T22:35:10.000Z',
    ]);
  });

  test("a run that came late: the step's whole wait from that failure, as the README's example says", () => {
    // Recorded at 19:06, failing again at 20:06 (an hourly cron): past 35 min, so the 2 h step, due at 22:06 (not 21:41).
    const recorded = new Date('2026-12-07T19:06:00Z');
    const failedAt = new Date('2026-12-07T20:06:00Z');
    expect(nextAttemptAt({ recordedAt: recorded, deferrals: deferralsAt(recorded, failedAt), now: failedAt, windowHours: 72, jitter: 0 })).toEqual({
      at: new Date('2026-12-07T22:06:00Z'),
      last: false,
    });
  });
});
