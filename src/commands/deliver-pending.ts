import { setMaxListeners } from 'node:events';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { $Fetch } from 'ofetch';
import { systemClock, type Clock } from '../clock.js';
import type { Database } from '../storage/database.table.js';
import {
  activeClaimants,
  claimDeliveries,
  countClaimable,
  expireClaims,
  releaseDelivery,
  renewLeases,
  type DeliveryRow,
} from '../storage/deliveries.repository.js';
import { formatUtc } from '../time.js';
import { deliver, type DeliveryPolicy, type DeliveryResult } from '../webhooks/deliver.js';
import { Slots } from '../webhooks/slots.js';
import { createTransport } from '../webhooks/transport.js';
import { AttemptWriter } from './attempt-writer.js';

export const DEFAULT_LEASE_MS = 60_000;

/** Identifies one run in `claimed_by`: host and pid let a later run on the same host see that it died. */
export function newRunId(): string {
  return `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
}

/** Whether a process with this pid exists here (EPERM: it exists, but belongs to someone else). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Claims of runs on this host whose process is gone (killed, OOM, reboot) are freed at once rather than
 * after their lease. Runs on other hosts are left to their lease: we cannot see their processes.
 */
export async function freeClaimsOfDeadRuns(db: Kysely<Database>, nowMs: number): Promise<number> {
  let freed = 0;
  const host = hostname();
  for (const claimant of await activeClaimants(db, nowMs)) {
    const [claimHost, pidText] = claimant.split(':');
    const pid = Number(pidText);
    if (claimHost !== host || !Number.isInteger(pid) || pid === process.pid || processAlive(pid)) continue;
    freed += await expireClaims(db, claimant);
  }
  return freed;
}

export interface DeliverPendingOptions {
  runId: string;
  policy: DeliveryPolicy;
  concurrency: number;
  /** Real time, for leases and attempt times (never the `--now` of the expiry rules). */
  clock?: Clock;
  stop?: AbortSignal;
  leaseMs?: number;
  /** Only these deliveries (`deliveries retry`); otherwise every pending or lapsed one. */
  ids?: readonly number[];
  fetch?: $Fetch;
  /** Called as deliveries finish; `total` is what was claimable when the run began. */
  onProgress?: (progress: DeliveryProgress) => void;
}

export interface DeliveryProgress {
  done: number;
  total: number;
  delivered: number;
  abandoned: number;
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
  const slots = new Slots(options.concurrency);
  // Every delivery waiting for a retry listens for the stop signal: many listeners are expected here.
  if (options.stop) setMaxListeners(0, options.stop);
  const windowSize = Math.max(options.concurrency * 16, 64);
  const result: DeliverPendingResult = { delivered: 0, abandoned: 0, released: 0, outcomes: [] };
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;

  const writer = new AttemptWriter(db, options.runId);
  const maxAttempts = options.policy.retryDelaysMs.length + 1;

  const run = async (row: DeliveryRow) => {
    const previousAttempts = row.attempts;
    const outcome = await deliver({ eventId: row.event_id, eventType: row.event_type, body: row.body }, options.policy, {
      clock,
      slots,
      stop: options.stop,
      fetch: options.fetch ?? transport!.fetch,
      onAttempt: (attempt, verdict) =>
        writer.write({
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
        }),
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
    options.onProgress?.({ done: result.outcomes.length, total: Math.max(total, result.outcomes.length), delivered: result.delivered, abandoned: result.abandoned });
  };

  await freeClaimsOfDeadRuns(db, clock.now().getTime());
  const total = options.onProgress ? await countClaimable(db, clock.now().getTime(), options.ids) : 0;
  // Owned from here on, and released in the finally below whatever happens.
  const transport = options.fetch ? undefined : createTransport();
  const heartbeat = setInterval(() => {
    renewLeases(db, options.runId, clock.now().getTime() + leaseMs).catch(() => undefined);
  }, Math.max(1000, Math.floor(leaseMs / 3)));
  heartbeat.unref();
  try {
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
  } finally {
    clearInterval(heartbeat);
    await transport?.close();
  }
  if (failure) throw failure;
  result.outcomes.sort((a, b) => a.id - b.id);
  return result;
}
