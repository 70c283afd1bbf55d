// src/delivery: the delivery engine — claims, leases, the concurrent work loop, attempt logging, the HTTP transport; used by commands.
import { setMaxListeners } from 'node:events';
import type { Kysely } from 'kysely';
import type { $Fetch } from 'ofetch';
import { systemClock, type Clock } from '../clock.js';
import type { Database } from '../storage/database.table.js';
import { claimDeliveries, countClaimable, releaseDelivery, type DeliveryRow } from '../storage/deliveries.repository.js';
import { formatUtc } from '../time.js';
import { deliver, type DeliveryPolicy, type DeliveryResult } from '../webhooks/deliver.js';
import { Slots } from '../webhooks/slots.js';
import { AttemptWriter } from './attempt-writer.js';
import { DEFAULT_LEASE_MS, freeClaimsOfDeadRuns, newRunId, startHeartbeat } from './leases.js';
import { withTransport } from './transport.js';

export interface DeliverPendingOptions {
  /** Who holds the claims; a fresh id per run unless a test needs to know it. */
  runId?: string;
  policy: DeliveryPolicy;
  concurrency: number;
  /** Real time, for leases and attempt times (never the `--now` of the expiry rules). */
  clock?: Clock;
  stop?: AbortSignal;
  leaseMs?: number;
  /** Only these deliveries (`deliveries retry`); otherwise every pending or lapsed one. */
  ids?: readonly number[];
  fetch?: $Fetch;
  /** Trouble worth telling the operator that does not stop the run (a lease that could not be renewed). */
  onWarning?: (message: string) => void;
  /** Called as deliveries finish and as attempts fail into a retry wait; `total` is what was claimable when the run began. */
  onProgress?: (progress: DeliveryProgress) => void;
}

interface DeliveryProgress {
  done: number;
  total: number;
  delivered: number;
  abandoned: number;
  /** Deliveries whose last attempt failed and that wait for (or are making) their next one. */
  waiting: number;
}

export interface DeliveryOutcome {
  id: number;
  eventId: string;
  eventType: string;
  status: DeliveryResult['status'];
  attempts: number;
  lastStatusCode: number | null;
  lastError: string | null;
}

export interface DeliverPendingResult {
  delivered: number;
  abandoned: number;
  /** Handed back as pending because the run was stopped between retries. */
  released: number;
  outcomes: DeliveryOutcome[];
}

/**
 * Claims pending deliveries a window at a time and sends them concurrently: `concurrency` bounds the HTTP
 * attempts in flight, while a delivery waiting for its retry holds no slot. Every attempt is logged as it
 * ends; a run that dies leaves its claims to lapse and be taken over.
 */
export async function deliverPending(db: Kysely<Database>, options: DeliverPendingOptions): Promise<DeliverPendingResult> {
  const clock = options.clock ?? systemClock;
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  const runId = options.runId ?? newRunId();
  // Every delivery waiting for a retry listens for the stop signal: many listeners are expected here.
  if (options.stop) setMaxListeners(0, options.stop);

  await freeClaimsOfDeadRuns(db, clock.now().getTime());
  const total = options.onProgress ? await countClaimable(db, clock.now().getTime(), options.ids) : 0;
  let heartbeatFailed = false;
  const stopHeartbeat = startHeartbeat(db, {
    runId,
    leaseMs,
    clock,
    onError: (error) => {
      if (heartbeatFailed) return;
      heartbeatFailed = true;
      // A lease that lapses lets another run take these deliveries over: a duplicate becomes possible.
      options.onWarning?.(`could not renew this run's delivery leases (${error instanceof Error ? error.message : String(error)}); if it stays lapsed, another run may send the same events again.`);
    },
  });
  try {
    return await withTransport(options.fetch, (fetch) => workThrough(db, { ...options, runId, clock, fetch }, total));
  } finally {
    stopHeartbeat();
  }
}

/** The claim-and-send loop of one run, with its transport and heartbeat already in place. */
async function workThrough(
  db: Kysely<Database>,
  options: DeliverPendingOptions & { runId: string; clock: Clock; fetch: $Fetch },
  total: number,
): Promise<DeliverPendingResult> {
  const { clock, fetch } = options;
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  const slots = new Slots(options.concurrency);
  const windowSize = Math.max(options.concurrency * 16, 64);
  const result: DeliverPendingResult = { delivered: 0, abandoned: 0, released: 0, outcomes: [] };
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  const writer = new AttemptWriter(db, options.runId);
  const maxAttempts = options.policy.retryDelaysMs.length + 1;
  const waiting = new Set<number>();
  const report = () =>
    options.onProgress?.({ done: result.outcomes.length, total: Math.max(total, result.outcomes.length), delivered: result.delivered, abandoned: result.abandoned, waiting: waiting.size });

  const run = async (row: DeliveryRow) => {
    const previousAttempts = row.attempts;
    const outcome = await deliver({ eventId: row.event_id, eventType: row.event_type, body: row.body }, options.policy, {
      clock,
      slots,
      stop: options.stop,
      fetch,
      onAttempt: (attempt, verdict) => {
        // A failed attempt with a retry to come: the bar shows it now, not seconds later when the delivery ends.
        if (verdict === 'retry' && attempt.attempt < maxAttempts && !waiting.has(row.id)) {
          waiting.add(row.id);
          report();
        }
        return writer.write({
          deliveryId: row.id,
          attempt: {
            attempt: previousAttempts + attempt.attempt,
            started_at: formatUtc(attempt.startedAt),
            duration_ms: attempt.durationMs,
            status_code: attempt.statusCode,
            error: attempt.error,
          },
          // The last attempt ends the delivery in the same write, so "delivered" is never a second step.
          final:
            verdict === 'delivered'
              ? { status: 'delivered', completedAt: formatUtc(clock.now()) }
              : verdict === 'final' || attempt.attempt === maxAttempts
                ? { status: 'abandoned', completedAt: formatUtc(clock.now()) }
                : undefined,
        });
      },
    });
    // Stopped before an attempt or before a retry: the claim goes back to pending for the next run.
    if (outcome.status === 'released') await releaseDelivery(db, row.id, options.runId);
    result[outcome.status] += 1;
    result.outcomes.push({
      id: row.id,
      eventId: row.event_id,
      eventType: row.event_type,
      status: outcome.status,
      attempts: previousAttempts + outcome.attempts.length,
      lastStatusCode: outcome.lastStatusCode,
      lastError: outcome.lastError,
    });
    waiting.delete(row.id);
    report();
  };

  for (;;) {
    if (options.stop?.aborted || failure) break;
    let claimedAny = false;
    // Claim when half the window is free: one UPDATE per batch, not per event.
    if (windowSize - inFlight.size >= windowSize / 2) {
      const nowMs = clock.now().getTime();
      const claimed = await claimDeliveries(db, {
        runId: options.runId,
        limit: windowSize - inFlight.size,
        leaseUntil: nowMs + leaseMs,
        nowMs,
        ids: options.ids,
      });
      claimedAny = claimed.length > 0;
      for (const row of claimed) {
        const task: Promise<void> = run(row)
          .catch((error: unknown) => {
            failure ??= error;
          })
          .finally(() => inFlight.delete(task));
        inFlight.add(task);
      }
    }
    if (inFlight.size === 0 && !claimedAny) break;
    if (inFlight.size > 0) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  if (failure) throw failure;
  result.outcomes.sort((a, b) => a.id - b.id);
  return result;
}
