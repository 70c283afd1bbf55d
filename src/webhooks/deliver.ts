// src/webhooks: one event on the wire — payload bytes, signature, headers, the retrying POST; knows events, not licenses or tables.
import { setTimeout as sleep } from 'node:timers/promises';
import type { $Fetch } from 'ofetch';
import type { Clock } from '../clock.js';
import { webhookHeaders, type OutgoingEvent } from './headers.js';
import { postOnce, type PostOutcome } from './post.js';
import type { SlotSource } from './slots.js';
import type { SigningScheme } from './endpoint-spec.js';
import { standardHeaders } from './standard-signature.js';

export interface DeliveryPolicy {
  url: string;
  secret: string | null;
  /** An endpoint's extra request headers (never one of ours: endpoint-spec.ts refuses those). */
  headers?: Readonly<Record<string, string>>;
  /** `botble` (X-Webhook-Signature, as the reference) when left out; `standard` or `both` add Standard Webhooks headers. */
  signing?: SigningScheme;
  /** Earlier secrets still valid (a rotation's overlap): Standard Webhooks signatures are made with each, after the current one. */
  previousSecrets?: readonly string[];
  timeoutMs: number;
  /** Waits before each retry: [1000, 2000, 4000] is the reference's 4 attempts. */
  retryDelaysMs: readonly number[];
}

/** The policy the `webhooks` config describes, sending to `url` (the configured one, or an override). */
export function deliveryPolicy(
  webhooks: { secret: string | null; timeoutMs: number; retryDelaysMs: readonly number[] },
  url: string,
  secret: string | null = webhooks.secret,
): DeliveryPolicy {
  return { url, secret, timeoutMs: webhooks.timeoutMs, retryDelaysMs: webhooks.retryDelaysMs };
}

interface AttemptRecord {
  /** 1-based within the retry schedule (a delivery continued from an earlier run starts past 1). */
  attempt: number;
  startedAt: Date;
  durationMs: number;
  statusCode: number | null;
  error: string | null;
  responsePrefix: string;
  /** The response's Retry-After header, as sent. */
  retryAfter: string | null;
  headers: Record<string, string>;
}

/** How one delivery attempt loop ended, for the caller (not the stored status of a row, which is storage's DeliveryStatus). */
type SendOutcome = 'delivered' | 'abandoned' | 'released' | 'dropped' | 'held';

export interface DeliveryResult {
  /**
   * `released`: the run was asked to stop before the next attempt, or `beforeAttempt` said to hand the event back
   *   (`release`); it goes back to pending.
   * `dropped`: `beforeAttempt` said the delivery is no longer ours to send.
   * `held`: `beforeSlot` kept the next attempt back (the endpoint's circuit is open, or it is gone); the caller decides what becomes of it.
   */
  status: SendOutcome;
  attempts: AttemptRecord[];
  lastStatusCode: number | null;
  lastError: string | null;
}

export interface DeliverOptions {
  clock: Clock;
  /** Bounds attempts in flight across deliveries; a retry's wait holds no slot. */
  slots?: SlotSource;
  /** Called after every attempt, before the next wait, so the log is written as it happens. */
  onAttempt?: (attempt: AttemptRecord, verdict: Verdict) => Promise<void> | void;
  /** Aborted when the run should stop: no new attempt starts after it. */
  stop?: AbortSignal;
  fetch: $Fetch;
  /** Attempts of this schedule made earlier (by a run that stopped): the budget carries over, the next one goes at once. */
  spent?: number;
  /**
   * Asked with the slot held, just before each attempt: false means the event is no longer ours to send; `release`
   * that it goes back unsent (it could not be confirmed ours in time); `hold` as for beforeSlot (a plain true when
   * known at once).
   */
  beforeAttempt?: () => boolean | 'hold' | 'release' | Promise<boolean | 'hold' | 'release'>;
  /** Told when the event starts (true) and stops (false) waiting for a retry. */
  onWaiting?: (waiting: boolean) => void;
  /** Told each attempt's outcome as soon as it is known, before its slot is given back (so that a 429 can pause the next one). */
  onOutcome?: (attempt: AttemptRecord) => void;
  /** Asked before each attempt, before a slot is taken (it may wait, holding none): `hold` sends no more attempts. */
  beforeSlot?: () => Promise<'go' | 'hold'>;
  /** Told as each attempt starts (tracing): headers to add to its request (traceparent), and told its outcome. */
  traceAttempt?: (attempt: number) => AttemptTrace;
}

export interface AttemptTrace {
  headers?: Record<string, string>;
  /** `error` is the transport error (timeout, refused, …) when no response came, never text from a response. */
  end(outcome: { statusCode: number | null; error: string | null }): void;
}

type Verdict = 'delivered' | 'final' | 'retry';

/** The reference's "Expected Response", plus the contract: 3xx is final since redirects are not followed. */
function classify(outcome: Pick<PostOutcome, 'statusCode'>): Verdict {
  const status = outcome.statusCode;
  if (status === null) return 'retry';
  if (status >= 200 && status <= 299) return 'delivered';
  if (status >= 300 && status <= 499) return 'final';
  return 'retry';
}

function describeOutcome(outcome: PostOutcome): string | null {
  if (outcome.transportError) return outcome.transportError;
  const status = outcome.statusCode;
  if (status === null || (status >= 200 && status <= 299)) return null;
  if (status >= 300 && status <= 399) {
    return `HTTP ${status} redirect${outcome.location ? ` to ${outcome.location}` : ''} (redirects are not followed: set the final URL)`;
  }
  const snippet = outcome.responsePrefix.replace(/\s+/g, ' ').trim().slice(0, 200);
  return snippet ? `HTTP ${status}: ${snippet}` : `HTTP ${status}`;
}

/** Sends one event with the retry policy and returns what happened; an abandoned event is a result, not an exception. */
export async function deliver(event: OutgoingEvent, policy: DeliveryPolicy, options: DeliverOptions): Promise<DeliveryResult> {
  const signing = policy.signing ?? 'botble';
  const fixed = { ...webhookHeaders(event, signing === 'standard' ? null : policy.secret), ...policy.headers };
  const secrets = policy.secret === null ? [] : [policy.secret, ...(policy.previousSecrets ?? [])];
  // Standard Webhooks sign the attempt's time: those headers are made anew for each attempt.
  const headersAt = (startedAt: Date): Record<string, string> =>
    signing === 'botble' ? fixed : { ...fixed, ...standardHeaders(event, secrets, Math.floor(startedAt.getTime() / 1000)) };
  const attempts: AttemptRecord[] = [];
  const maxAttempts = policy.retryDelaysMs.length + 1;
  const first = (options.spent ?? 0) + 1;
  for (let attempt = first; attempt <= maxAttempts; attempt += 1) {
    if (attempt > first) {
      options.onWaiting?.(true);
      const waited = await wait(policy.retryDelaysMs[attempt - 2] ?? 0, options.stop);
      options.onWaiting?.(false);
      if (!waited) return finish('released', attempts);
    }
    if (options.beforeSlot && (await options.beforeSlot()) === 'hold') return finish('held', attempts);
    const release = options.slots ? await options.slots.acquire() : undefined;
    let record: AttemptRecord;
    let verdict: Verdict;
    try {
      // Checked after the slot is ours: a run told to stop while this event queued starts no new attempt.
      if (options.stop?.aborted) return finish('released', attempts);
      if (options.beforeAttempt) {
        const check = options.beforeAttempt();
        const allowed = check === true ? true : await check;
        if (allowed === 'hold') return finish('held', attempts);
        if (allowed === 'release') return finish('released', attempts);
        if (!allowed) return finish('dropped', attempts);
      }
      if (options.stop?.aborted) return finish('released', attempts);
      const startedAt = options.clock.now();
      const trace = options.traceAttempt?.(attempt);
      const headers = trace?.headers ? { ...headersAt(startedAt), ...trace.headers } : headersAt(startedAt);
      const started = performance.now();
      const outcome = await postOnce(policy.url, event.body, headers, { timeoutMs: policy.timeoutMs, fetch: options.fetch });
      // The span gets the transport error alone: describeOutcome quotes the response body, which may echo the license.
      trace?.end({ statusCode: outcome.statusCode, error: outcome.transportError });
      record = {
        attempt,
        startedAt,
        durationMs: Math.round(performance.now() - started),
        statusCode: outcome.statusCode,
        error: describeOutcome(outcome),
        responsePrefix: outcome.responsePrefix,
        retryAfter: outcome.retryAfter,
        headers,
      };
      verdict = classify(outcome);
      options.onOutcome?.(record);
    } finally {
      release?.();
    }
    attempts.push(record);
    // Recorded before the next wait, and outside the slot: logging never holds up another event's attempt.
    await options.onAttempt?.(record, verdict);
    if (verdict === 'delivered') return finish('delivered', attempts);
    if (verdict === 'final') return finish('abandoned', attempts);
  }
  return finish('abandoned', attempts);
}

function finish(status: SendOutcome, attempts: AttemptRecord[]): DeliveryResult {
  const last = attempts[attempts.length - 1];
  return { status, attempts, lastStatusCode: last?.statusCode ?? null, lastError: last?.error ?? null };
}

/** Resolves true after `ms`, or false as soon as `stop` aborts. */
async function wait(ms: number, stop?: AbortSignal): Promise<boolean> {
  try {
    await sleep(ms, undefined, { signal: stop });
    return true;
  } catch {
    return false;
  }
}
