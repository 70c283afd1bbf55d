// The cross-run retry policy, pure: what an attempt's outcome means, what Retry-After asks for, and when a deferred delivery goes next or is abandoned.
import { formatUtc } from '../time.js';

const MINUTE_MS = 60 * 1000;
export const HOUR_MS = 60 * MINUTE_MS;
/** Waits between runs' attempts of one delivery, then BACKOFF_REPEAT_MS for as long as the window lasts (close to the Standard Webhooks example schedule). */
export const BACKOFF_MS: readonly number[] = [5 * MINUTE_MS, 30 * MINUTE_MS, 2 * HOUR_MS, 6 * HOUR_MS];
const BACKOFF_REPEAT_MS = 12 * HOUR_MS;
/** At most this share of a backoff is added at random, so deliveries deferred together do not all come back in the same second (spec, "Deliverability"). */
export const JITTER_RATIO = 0.1;
/** A Retry-After longer than this is treated as this: a receiver's typo (milliseconds for seconds) must not park a delivery for years. */
export const MAX_RETRY_AFTER_MS = 30 * 24 * HOUR_MS;
/**
 * The soonest a deferred delivery is due again: a second after it was deferred, whatever the receiver asked
 * (`Retry-After: 0`, a date in the past). Times are stored to the second, so this puts it past the second of the
 * run that deferred it, which claims only what was due when it started: never what it deferred itself.
 */
export const MIN_DEFERRAL_MS = 1000;

/**
 * `delivered` 2xx. `gone` 410: the receiver wants no more (disable the endpoint, park its deliveries).
 * `throttle`: the receiver is alive but overloaded; retry later and slow this run's sending to it.
 * `retry`: no answer, or a failure that may pass. `final`: it will not pass by waiting (abandon).
 */
export type OutcomeClass = 'delivered' | 'retry' | 'throttle' | 'gone' | 'final';

export interface AttemptOutcome {
  /** null when no HTTP response came back (timeout, refused, reset, TLS). */
  statusCode: number | null;
  transportError?: string | null;
}

/** Status codes the Standard Webhooks spec says to throttle on (429, 502, 504), plus 503, RFC 9110 §15.6.4's "overloaded or in maintenance". */
const THROTTLE = new Set([429, 502, 503, 504]);

/** What one attempt's outcome means for the delivery (spec, "Delivery success and failure"; the contract, "Retries across runs"). */
export function classifyOutcome(outcome: AttemptOutcome): OutcomeClass {
  const status = outcome.statusCode;
  if (status === null) return 'retry';
  if (status >= 200 && status <= 299) return 'delivered';
  if (status === 410) return 'gone';
  if (THROTTLE.has(status)) return 'throttle';
  // 408 Request Timeout: the receiver gave up waiting for us, which may pass (RFC 9110 §15.5.9).
  if (status === 408 || status >= 500) return 'retry';
  // Every other 4xx, every 3xx (redirects are not followed), and anything below 200 (never sent by fetch).
  return 'final';
}

/** True when the delivery should be tried again later (deferred once this run's schedule is spent). */
export function isRetryable(outcome: OutcomeClass): boolean {
  return outcome === 'retry' || outcome === 'throttle';
}

const DAY_NAMES = '(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)';
const LONG_DAY_NAMES = '(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)';
const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const MONTH = '(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)';
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})';
// RFC 9110 §5.6.7: IMF-fixdate, and the two obsolete forms a recipient must still accept.
const IMF_FIXDATE = new RegExp(`^${DAY_NAMES}, (\\d{2}) ${MONTH} (\\d{4}) ${TIME} GMT$`, 'i');
const RFC850_DATE = new RegExp(`^${LONG_DAY_NAMES}, (\\d{2})-${MONTH}-(\\d{2}) ${TIME} GMT$`, 'i');
const ASCTIME_DATE = new RegExp(`^${DAY_NAMES} ${MONTH} ([ \\d]\\d) ${TIME} (\\d{4})$`, 'i');

function utc(year: number, month: string, day: number, hour: number, minute: number, second: number): number | undefined {
  const monthIndex = MONTHS.indexOf(month.toLowerCase());
  if (hour > 23 || minute > 59 || second > 60) return undefined;
  const time = Date.UTC(year, monthIndex, day, hour, minute, Math.min(second, 59));
  // Date.UTC rolls 31 Feb over into March; a date that does not exist is garbage, not a time.
  const check = new Date(time);
  if (check.getUTCFullYear() !== year || check.getUTCMonth() !== monthIndex || check.getUTCDate() !== day) return undefined;
  return time;
}

/** An HTTP-date in any of its three forms, as epoch ms; undefined when it is not one. */
function parseHttpDate(value: string, now: Date): number | undefined {
  let match = IMF_FIXDATE.exec(value);
  if (match) return utc(Number(match[3]), match[2]!, Number(match[1]), Number(match[4]), Number(match[5]), Number(match[6]));
  match = RFC850_DATE.exec(value);
  if (match) {
    // RFC 9110 §5.6.7: a two-digit year more than 50 years ahead is the most recent past year with those digits.
    const nowYear = now.getUTCFullYear();
    let year = Math.floor(nowYear / 100) * 100 + Number(match[3]);
    if (year > nowYear + 50) year -= 100;
    return utc(year, match[2]!, Number(match[1]), Number(match[4]), Number(match[5]), Number(match[6]));
  }
  match = ASCTIME_DATE.exec(value);
  if (match) return utc(Number(match[6]), match[1]!, Number(match[2]!.trim()), Number(match[3]), Number(match[4]), Number(match[5]));
  return undefined;
}

/**
 * Retry-After (RFC 9110 §10.2.3) as milliseconds from `now`: delay-seconds or an HTTP-date. A date in the
 * past is 0 (try again now); anything longer than MAX_RETRY_AFTER_MS is that; garbage, a negative or a
 * fractional number is undefined (fall back to the backoff).
 */
export function parseRetryAfter(headerValue: string | null | undefined, now: Date): number | undefined {
  if (headerValue === null || headerValue === undefined) return undefined;
  const value = headerValue.trim();
  if (/^\d+$/.test(value)) {
    // Compared as seconds first: a 400-digit value would lose meaning as a number of milliseconds.
    const seconds = Number(value);
    return seconds * 1000 > MAX_RETRY_AFTER_MS ? MAX_RETRY_AFTER_MS : seconds * 1000;
  }
  const at = parseHttpDate(value, now);
  if (at === undefined) return undefined;
  return Math.min(Math.max(0, at - now.getTime()), MAX_RETRY_AFTER_MS);
}

/**
 * How many backoff steps lie between when the event was recorded and `now`: the steps count from the recording,
 * so a delivery tried at each due time goes near recorded + 5 min, + 35 min, + 2 h 35 min, + 8 h 35 min, then
 * every 12 h, whichever run makes the attempts, and no counter has to be kept. The next wait is BACKOFF_MS[this]
 * (or the repeat), counted from the failure: a run that came late makes the next attempt later too.
 */
export function deferralsAt(recordedAt: Date, now: Date): number {
  const elapsed = now.getTime() - recordedAt.getTime();
  let offset = 0;
  let steps = 0;
  for (const backoff of BACKOFF_MS) {
    offset += backoff;
    if (elapsed < offset) return steps;
    steps += 1;
  }
  return steps + Math.max(0, Math.floor((elapsed - offset) / BACKOFF_REPEAT_MS));
}

export interface NextAttemptInput {
  /** When the event was recorded: the window counts from here, not from the first failure. */
  recordedAt: Date;
  /** How many times this delivery was deferred before (0 for the first deferral). */
  deferrals: number;
  /** When the attempt that failed ended. */
  now: Date;
  /** What the receiver's Retry-After asked for (parseRetryAfter); replaces the backoff when given. */
  retryAfterMs?: number;
  /** `webhooks.retryWindowHours`; 0 defers nothing (the reference's behaviour). */
  windowHours: number;
  /** 0 to 1, from the caller's random source (Math.random() in production, a constant in tests): adds up to JITTER_RATIO of the backoff. */
  jitter: number;
}

export type NextAttempt =
  | {
      at: Date;
      /** The attempt at `at` is the last: it falls on the end of the window. */
      last: boolean;
    }
  | { abandon: true; reason: string };

/** When a delivery whose last outcome was retryable goes next, or that it is abandoned because its window has passed. */
export function nextAttemptAt(input: NextAttemptInput): NextAttempt {
  const { recordedAt, deferrals, now, retryAfterMs, windowHours, jitter } = input;
  if (!Number.isInteger(deferrals) || deferrals < 0) throw new RangeError(`deferrals must be a whole number >= 0, not ${deferrals}`);
  if (!Number.isFinite(windowHours) || windowHours < 0) throw new RangeError(`windowHours must be >= 0, not ${windowHours}`);
  if (!(jitter >= 0 && jitter <= 1)) throw new RangeError(`jitter must be from 0 to 1, not ${jitter}`);
  if (retryAfterMs !== undefined && !(retryAfterMs >= 0)) throw new RangeError(`retryAfterMs must be >= 0, not ${retryAfterMs}`);
  if (windowHours === 0) return { abandon: true, reason: 'webhooks.retryWindowHours is 0: no retry after this run (the reference behaviour)' };
  const deadline = recordedAt.getTime() + windowHours * HOUR_MS;
  if (now.getTime() >= deadline) {
    return {
      abandon: true,
      reason: `its retry window ended at ${formatUtc(new Date(deadline))} (webhooks.retryWindowHours ${windowHours} after it was recorded at ${formatUtc(recordedAt)})`,
    };
  }
  let delay: number;
  if (retryAfterMs !== undefined) {
    // The receiver named a time: go then, without jitter, and no later than the window allows.
    delay = Math.max(MIN_DEFERRAL_MS, Math.min(retryAfterMs, MAX_RETRY_AFTER_MS));
  } else {
    const backoff = BACKOFF_MS[deferrals] ?? BACKOFF_REPEAT_MS;
    delay = Math.round(backoff * (1 + JITTER_RATIO * jitter));
  }
  const at = now.getTime() + delay;
  // Past the window, one last attempt at its end rather than none: the window is how long we keep trying.
  return at >= deadline ? { at: new Date(Math.max(deadline, now.getTime() + MIN_DEFERRAL_MS)), last: true } : { at: new Date(at), last: false };
}
