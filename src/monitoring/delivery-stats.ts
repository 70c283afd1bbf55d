// The pure part of `deliveries stats`: per endpoint the success rate, response-time percentiles, error classes, last success and failure streak, from the grouped attempts and the recent history the database returns.
import { formatUtc, parseUtc } from '../time.js';

/**
 * What one attempt came to. The error classes are read from the texts the sender stores in
 * `webhook_attempts.error` (postOnce's transport errors, "timed out after N ms") and from the status code.
 */
export type AttemptClass =
  | 'success'
  | 'http_3xx'
  | 'http_4xx'
  | 'http_429'
  | 'http_5xx'
  | 'timeout'
  | 'connection_refused'
  | 'dns'
  | 'tls'
  | 'connection_closed'
  | 'unreachable'
  | 'protocol'
  | 'other';

export type ErrorClass = Exclude<AttemptClass, 'success'>;

/** Every error class, in the order `deliveries stats` shows them. */
export const ERROR_CLASSES: readonly ErrorClass[] = [
  'connection_refused',
  'dns',
  'timeout',
  'tls',
  'connection_closed',
  'unreachable',
  'protocol',
  'http_3xx',
  'http_4xx',
  'http_429',
  'http_5xx',
  'other',
];

// Checked in this order: our own timeout text first, TLS before "closed" (a reset handshake names TLS), protocol last.
const TRANSPORT_CLASSES: ReadonlyArray<[ErrorClass, RegExp]> = [
  // postOnce's own "timed out after N ms"; a TCP connect timeout (ETIMEDOUT); undici's connect/headers/body timeouts.
  ['timeout', /^timed out after \d+ ms$|\bETIMEDOUT\b|UND_ERR_(?:CONNECT|HEADERS|BODY)_TIMEOUT|timeout/i],
  // "getaddrinfo ENOTFOUND host", "getaddrinfo EAI_AGAIN host" (the resolver did not answer).
  ['dns', /\bgetaddrinfo\b|\bENOTFOUND\b|\bEAI_(?:AGAIN|FAIL|NONAME|NODATA)\b/],
  ['connection_refused', /\bECONNREFUSED\b/],
  // OpenSSL's "SSL routines:…", ERR_SSL_*, ERR_TLS_*, certificate problems (CERT_HAS_EXPIRED, UNABLE_TO_VERIFY_LEAF_SIGNATURE, …).
  ['tls', /\bSSL\b|\bTLS\b|ERR_SSL_|ERR_TLS_|\bEPROTO\b|certificate|CERT_|_SIGNATURE\b/i],
  ['unreachable', /\bE(?:HOST|NET)(?:UNREACH|DOWN)\b|\bEADDRNOTAVAIL\b/],
  // llhttp's parse errors: "Response does not match the HTTP/1.1 protocol (…)", HPE_* codes; a status code outside 100–599.
  ['protocol', /does not match the HTTP|\bHPE_[A-Z_]+\b|which is not an HTTP status/],
  // "other side closed (UND_ERR_SOCKET)", "read ECONNRESET", "socket hang up", "terminated", EPIPE.
  ['connection_closed', /other side closed|\bECONNRESET\b|socket hang up|UND_ERR_SOCKET|\bEPIPE\b|\bterminated\b|\bclosed\b/i],
];

/** The class of one attempt: by its status code when it has one, by its error text when no response came back. */
export function classifyAttempt(attempt: { statusCode: number | null; error: string | null }): AttemptClass {
  const status = attempt.statusCode;
  if (status !== null) {
    if (status >= 200 && status <= 299) return 'success';
    if (status === 429) return 'http_429';
    if (status >= 300 && status <= 399) return 'http_3xx';
    if (status >= 400 && status <= 499) return 'http_4xx';
    if (status >= 500 && status <= 599) return 'http_5xx';
    return 'other';
  }
  const text = attempt.error ?? '';
  for (const [name, pattern] of TRANSPORT_CLASSES) if (pattern.test(text)) return name;
  return 'other';
}

/** Per-delivery counts of one endpoint, by status: one `GROUP BY endpoint, status` and one `MIN(created_at)` in the database. */
export interface EndpointDeliveryCounts {
  endpoint: string;
  delivered?: number;
  pending?: number;
  deferred?: number;
  parked?: number;
  abandoned?: number;
  superseded?: number;
  /** When the oldest delivery not yet delivered, superseded or abandoned was recorded (pending, delivering, deferred, parked). */
  oldestUndeliveredAt?: Date | string | null;
}

export interface EndpointStats {
  endpoint: string;
  attempts: number;
  succeeded: number;
  /** succeeded / attempts, from 0 to 1; null when there was no attempt. */
  successRate: number | null;
  /**
   * Nearest-rank percentiles of the duration of attempts that got an HTTP response (a timeout or a refused
   * connection says nothing about how fast the receiver answers; they are counted in `errors`). Whole ms.
   */
  responseMs: { median: number | null; p95: number | null };
  /** Attempts that failed, by class; every class is present (0 when none). */
  errors: Record<ErrorClass, number>;
  /** When the newest successful attempt started (UTC, `YYYY-MM-DDTHH:MM:SSZ`); null when none succeeded. */
  lastSuccessAt: string | null;
  lastAttemptAt: string | null;
  /** Failed attempts since the newest success (all of them when none succeeded). */
  consecutiveFailures: number;
  deliveries: { delivered: number; pending: number; deferred: number; parked: number; abandoned: number; superseded: number };
  /** How long the oldest delivery still to be delivered has waited, in whole seconds; null when nothing waits. */
  oldestUndeliveredAgeSeconds: number | null;
}

interface Running {
  attempts: number;
  succeeded: number;
  /** Duration in whole ms → how many responses took that long: exact percentiles in memory bounded by the timeout, not by the row count. */
  durations: Map<number, number>;
  responses: number;
  errors: Record<ErrorClass, number>;
  lastSuccessAt: number | null;
  lastAttemptAt: number | null;
  consecutiveFailures: number;
  counts: EndpointDeliveryCounts | null;
}

function toTime(value: Date | string, what: string): number {
  const time = value instanceof Date ? value.getTime() : (parseUtc(value)?.getTime() ?? Number.NaN);
  if (Number.isNaN(time)) throw new RangeError(`${what} is not a time: ${String(value)}`);
  return time;
}

function emptyErrors(): Record<ErrorClass, number> {
  return Object.fromEntries(ERROR_CLASSES.map((name) => [name, 0])) as Record<ErrorClass, number>;
}

/** The nearest-rank percentile (the smallest value with at least `p` of all values at or below it), from a value → count map. */
function percentile(durations: Map<number, number>, total: number, p: number): number | null {
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(p * total));
  let seen = 0;
  for (const value of [...durations.keys()].sort((a, b) => a - b)) {
    seen += durations.get(value)!;
    if (seen >= rank) return value;
  }
  return null;
}

/**
 * Builds the statistics from what the database groups and orders: attempts grouped by endpoint, status code,
 * duration and error (addAttemptGroup), so a million of them arrive as a few thousand groups; each endpoint's
 * last success and failure streak, read from its newest attempts (setRecent); and its delivery counts. Each
 * endpoint keeps a histogram of whole-millisecond durations (at most the timeout in ms entries), which gives
 * exact percentiles.
 */
export class DeliveryStatsAccumulator {
  private readonly endpoints = new Map<string, Running>();

  private entry(endpoint: string): Running {
    let running = this.endpoints.get(endpoint);
    if (!running) {
      running = {
        attempts: 0,
        succeeded: 0,
        durations: new Map(),
        responses: 0,
        errors: emptyErrors(),
        lastSuccessAt: null,
        lastAttemptAt: null,
        consecutiveFailures: 0,
        counts: null,
      };
      this.endpoints.set(endpoint, running);
    }
    return running;
  }

  /**
   * `count` attempts alike (one row of a GROUP BY endpoint, status code, duration / error in the database): they add
   * to the counts, classes and histogram. The streak and last success come from setRecent, since a group has no order.
   */
  addAttemptGroup(group: { endpoint: string; statusCode: number | null; error: string | null; durationMs: number; count: number }): void {
    const running = this.entry(group.endpoint);
    const kind = classifyAttempt(group);
    running.attempts += group.count;
    if (group.statusCode !== null) {
      const ms = Math.max(0, Math.round(group.durationMs));
      running.durations.set(ms, (running.durations.get(ms) ?? 0) + group.count);
      running.responses += group.count;
    }
    if (kind === 'success') running.succeeded += group.count;
    else running.errors[kind] += group.count;
  }

  /** The endpoint's last success, last attempt and failures since, over its whole history (the database keeps them in order). */
  setRecent(recent: { endpoint: string; lastSuccessAt: Date | string | null; lastAttemptAt: Date | string | null; consecutiveFailures: number }): void {
    const running = this.entry(recent.endpoint);
    running.lastSuccessAt = recent.lastSuccessAt === null ? null : toTime(recent.lastSuccessAt, `the last success of endpoint "${recent.endpoint}"`);
    running.lastAttemptAt = recent.lastAttemptAt === null ? null : toTime(recent.lastAttemptAt, `the last attempt of endpoint "${recent.endpoint}"`);
    running.consecutiveFailures = recent.consecutiveFailures;
  }

  /** An endpoint with no attempt and no delivery yet still gets its (empty) line. */
  addEndpoint(endpoint: string): void {
    this.entry(endpoint);
  }

  addCounts(counts: EndpointDeliveryCounts): void {
    this.entry(counts.endpoint).counts = counts;
  }

  /** Per endpoint, by name; ages are counted to `now`. */
  result(now: Date): EndpointStats[] {
    return [...this.endpoints.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([endpoint, running]) => {
        const counts = running.counts;
        const oldest = counts?.oldestUndeliveredAt ? toTime(counts.oldestUndeliveredAt, `the oldest undelivered time of endpoint "${endpoint}"`) : null;
        return {
          endpoint,
          attempts: running.attempts,
          succeeded: running.succeeded,
          successRate: running.attempts === 0 ? null : running.succeeded / running.attempts,
          responseMs: { median: percentile(running.durations, running.responses, 0.5), p95: percentile(running.durations, running.responses, 0.95) },
          errors: { ...running.errors },
          lastSuccessAt: running.lastSuccessAt === null ? null : formatUtc(new Date(running.lastSuccessAt)),
          lastAttemptAt: running.lastAttemptAt === null ? null : formatUtc(new Date(running.lastAttemptAt)),
          consecutiveFailures: running.consecutiveFailures,
          deliveries: {
            delivered: counts?.delivered ?? 0,
            pending: counts?.pending ?? 0,
            deferred: counts?.deferred ?? 0,
            parked: counts?.parked ?? 0,
            abandoned: counts?.abandoned ?? 0,
            superseded: counts?.superseded ?? 0,
          },
          oldestUndeliveredAgeSeconds: oldest === null ? null : Math.max(0, Math.floor((now.getTime() - oldest) / 1000)),
        };
      });
  }
}
