// src/delivery: the delivery engine — claims, leases, the concurrent work loop, attempt logging, the HTTP transport; used by commands.
import { setMaxListeners } from 'node:events';
import type { Kysely } from 'kysely';
import type { $Fetch } from 'ofetch';
import { systemClock, type Clock } from '../clock.js';
import type { Database } from '../storage/database.table.js';
import { checkSendingPrivileges, type DeliveryEnd } from '../storage/deliveries/attempts.repository.js';
import {
  claimAbandoned,
  claimDeliveries,
  countAbandoned,
  countClaimable,
  endClaimed,
  releaseDelivery,
  supersedeDeliveries,
  type ResendSelection,
} from '../storage/deliveries/claims.repository.js';
import { parkEndpoint, waitingByEndpoint, type WaitingDeliveries } from '../storage/deliveries/endpoint-holds.repository.js';
import { endpointStates, goneEndpoints } from '../storage/endpoint-states.repository.js';
import type { DeliveryRow } from '../storage/deliveries/log.repository.js';
import { formatUtc } from '../time.js';
import { deliver, type AttemptTrace, type DeliveryPolicy, type DeliveryResult } from '../webhooks/deliver.js';
import { CrossRunRetries } from './cross-run.js';
import type { StoredCircuit } from './circuit.js';
import { AttemptWriter } from './attempt-writer.js';
import { FairSlots } from './fair-slots.js';
import { DatabaseGate } from './database-gate.js';
import { ClaimKeeper, DEFAULT_LEASE_MS, freeClaimsOfDeadRuns, newRunId, startHeartbeat, TakeOver } from './leases.js';
import { StorageRefusal } from '../storage/storage-refusal.js';
import { databaseLeaseClock, hostLeaseClock, skewWarning, type LeaseClock } from './lease-clock.js';
import { LazyTransport } from './lazy-transport.js';
import type { StaleCheck } from './stale-notices.js';
import type { EndpointSwitches } from './endpoint-switches.js';

// Deliveries one run holds at once, those waiting for a retry included: a receiver that is down makes every
// delivery wait out its whole schedule, and each held delivery keeps its body in memory.
const MAX_HELD = 10_000;
// Outcomes listed in a result: a run (or a re-send) of any size keeps bounded memory; the counts stay exact.
export const MAX_LISTED = 10_000;
// How often, and how far apart, a run that claims nothing while deliveries are due looks again before it
// reports them as locked: another worker's claim holds its rows for milliseconds.
const LOCK_CHECKS = 3;
const LOCK_CHECK_MS = 200;
// Take-overs in a row that claimed nothing before a run stops asking (see the loop's backstop).
const MAX_FRUITLESS_TAKE_OVERS = 3;

/** One receiver as the engine sees it: where and how its deliveries are sent, and its own limit of attempts in flight. */
export interface EngineEndpoint {
  name: string;
  policy: DeliveryPolicy;
  maxInFlight?: number;
}

export interface DeliverPendingOptions {
  /** Who holds the claims; a fresh id per run unless a test needs to know it. */
  runId?: string;
  /** The policy of the endpoint `default` (timeouts and retries of every endpoint). */
  policy: DeliveryPolicy;
  /**
   * The enabled endpoints, `default` among them: each is claimed on its own and shares the slots fairly.
   * Deliveries of any other endpoint (disabled, or removed from the config file) stay parked. When left
   * out, every delivery goes by `policy`, as before endpoints existed.
   */
  endpoints?: readonly EngineEndpoint[];
  concurrency: number;
  /**
   * Real time, for attempt times and leases (never the `--now` of the expiry rules). With the system clock,
   * leases on a server database are on the database server's clock (see databaseLeaseClock).
   */
  clock?: Clock | undefined;
  stop?: AbortSignal | undefined;
  /** How long a claim holds without renewal (tests shorten it); DEFAULT_LEASE_MS otherwise. */
  leaseMs?: number | undefined;
  /**
   * Asked about each claimed window before any of it is sent (see staleNoticeCheck): the deliveries it names
   * are `superseded` with that reason and not sent. Left out, everything claimed is sent (`deliveries retry --force`).
   */
  recheck?: StaleCheck;
  /** Re-send these abandoned deliveries (`deliveries retry`), each with a new schedule; otherwise every pending or lapsed one. */
  resend?: ResendSelection;
  /**
   * The switches of the endpoints that can be disabled or removed while the run sends (those stored in the
   * database), read again about once a second (see EndpointSwitches): no attempt to one found disabled or removed
   * starts, nor any claim for it. What the run holds of a disabled one is parked, of a removed one superseded.
   */
  switches?: EndpointSwitches | undefined;
  fetch?: $Fetch | undefined;
  /** Trouble worth telling the operator that does not stop the run (a lease that could not be renewed). */
  onWarning?: ((message: string) => void) | undefined;
  /** Called as deliveries finish and as they start or stop waiting for a retry; `total` is what was claimable when the run began. */
  onProgress?: ((progress: DeliveryProgress) => void) | undefined;
  /** Told the counts so far as deliveries end, without onProgress's count of the claimable (a run that fails keeps them). */
  onCounts?:
    | ((counts: {
        readonly delivered: number;
        readonly abandoned: number;
        readonly deferred: number;
        readonly parked: number;
        readonly superseded: number;
      }) => void)
    | undefined;
  /**
   * `webhooks.retryWindowHours`: a delivery whose last outcome was retryable is deferred to a later run until this
   * long after its event was recorded (Retry-After, 410 Gone and a circuit per endpoint with it). 0 (the default
   * here) is the reference's behaviour exactly: abandoned once the in-run schedule is spent.
   */
  retryWindowHours?: number;
  /** 0 to 1: the jitter of cross-run backoffs (Math.random unless a test fixes it). */
  random?: () => number;
  /** Tracing: told as each attempt starts (its span), with headers to add to the request; see AttemptTrace. */
  traceAttempt?: ((attempt: TracedAttempt) => AttemptTrace) | undefined;
}

/** What a trace of one attempt may name: never the secret, the body or the license. */
export interface TracedAttempt {
  endpoint: string;
  eventType: string;
  /** Counted over the delivery's whole history (a re-send goes on from its earlier attempts). */
  attempt: number;
  url: string;
}

/** The per-attempt tracer of one delivery row. */
function traceOf(
  trace: (attempt: TracedAttempt) => AttemptTrace,
  row: Pick<DeliveryRow, 'endpoint' | 'event_type' | 'schedule_base'>,
  policy: DeliveryPolicy,
): (attempt: number) => AttemptTrace {
  return (attempt) => trace({ endpoint: row.endpoint, eventType: row.event_type, attempt: row.schedule_base + attempt, url: policy.url });
}

interface DeliveryProgress {
  done: number;
  total: number;
  delivered: number;
  abandoned: number;
  /** Deliveries waiting for their next attempt. */
  waiting: number;
}

export interface DeliveryOutcome {
  id: number;
  eventId: string;
  eventType: string;
  status: Exclude<DeliveryResult['status'], 'held'> | 'deferred' | 'parked' | 'superseded';
  /** Why it was superseded. */
  reason?: string;
  attempts: number;
  lastStatusCode: number | null;
  lastError: string | null;
}

export interface DeliverPendingResult {
  delivered: number;
  abandoned: number;
  /** Not sent: what they said is no longer true of their license (see `recheck`). */
  superseded: number;
  /** Handed back as pending because the run was stopped before their next attempt. */
  released: number;
  /** Not sent by this run: no longer its own when it checked (its lease lapsed, as when paused, and another run sends them; or the delivery was removed). */
  dropped: number;
  /** When stopped early: every delivery of the run's scope still to send (released, and never claimed). */
  left: number;
  /**
   * Deliveries due that no claim could take, because another database session held row locks on them (an
   * open transaction, a report): left pending for the next run.
   */
  locked: number;
  /** The first MAX_LISTED deliveries to end, by id; `unlisted` counts the rest. */
  outcomes: DeliveryOutcome[];
  unlisted: number;
  /** Delivered and abandoned per endpoint; only when an endpoint other than default took part. */
  byEndpoint?: Record<string, { delivered: number; abandoned: number }>;
  /** Deferred to a later run by this run (after their in-run schedule, by Retry-After, or at once by an open circuit). */
  deferred: number;
  /** Parked by this run: their endpoint answered 410 Gone, or was disabled while the run held them. */
  parked: number;
  /** With retries across runs: per endpoint, what waits on a failing receiver once the run is over (deferred and parked, all runs'). */
  waiting: WaitingDeliveries[];
  /** With retries across runs: each endpoint's circuit as this run leaves it, by name (those the run sent to). */
  circuits: Record<string, StoredCircuit>;
  /** Endpoints this run disabled because they answered 410 Gone. */
  gone: Array<{ endpoint: string; reason: string }>;
}

/** The result of a run that sent nothing (yet). */
export function nothingSent(): DeliverPendingResult {
  return {
    delivered: 0,
    abandoned: 0,
    superseded: 0,
    released: 0,
    dropped: 0,
    left: 0,
    locked: 0,
    outcomes: [],
    unlisted: 0,
    deferred: 0,
    parked: 0,
    waiting: [],
    circuits: {},
    gone: [],
  };
}

/** Where a run's deliveries come from: one claim of up to `limit` rows, and how many it has not claimed yet. */
interface ClaimSource {
  next(limit: number, nowMs: number, leaseUntil: number): Promise<DeliveryRow[]>;
  remaining(nowMs: number): Promise<number>;
}

/** Lapsed claims, due deferred deliveries (when `dueAt` is given: retries across runs) and pending ones of some endpoints (all when `endpoints` is left out). */
function pendingSource(db: Kysely<Database>, runId: string, endpoints: readonly string[] | undefined, dueAt?: () => string): ClaimSource {
  return {
    next: (limit, nowMs, leaseUntil) =>
      claimDeliveries(db, { runId, limit, nowMs, leaseUntil, ...(endpoints ? { endpoints } : {}), ...(dueAt ? { dueAt: dueAt() } : {}) }),
    remaining: (nowMs) => countClaimable(db, nowMs, runId, endpoints, dueAt?.()),
  };
}

function claimSource(db: Kysely<Database>, runId: string, resend: ResendSelection | undefined, dueAt?: () => string): ClaimSource {
  if (!resend) return pendingSource(db, runId, undefined, dueAt);
  // A re-send walks the ids upwards: each claim is a range scan after the last id taken, whatever the count.
  let afterId = 0;
  const ids = resend.ids && [...new Set(resend.ids)].sort((a, b) => a - b);
  return {
    async next(limit, nowMs, leaseUntil) {
      for (;;) {
        const batch = ids?.filter((id) => id > afterId).slice(0, limit);
        if (batch?.length === 0) return [];
        const rows = await claimAbandoned(db, { runId, limit, nowMs, leaseUntil, selection: resend, afterId, ids: batch });
        afterId = Math.max(afterId, ...(batch ?? []), ...rows.map((row) => row.id));
        // Given ids that are no longer abandoned claim nothing: go on to the next ones.
        if (rows.length > 0 || !batch) return rows.sort((a, b) => a.id - b.id);
      }
    },
    remaining: () => countAbandoned(db, resend, afterId),
  };
}

/**
 * Claims pending deliveries a window at a time and sends them concurrently: `concurrency` bounds the HTTP
 * attempts in flight, while a delivery waiting for its retry holds no slot and no room in the window, so
 * claiming goes on while retries wait (up to MAX_HELD held at once). Every attempt is logged as it ends;
 * before each attempt the claim is confirmed (see ClaimKeeper) and leases are renewed. A run that dies leaves its claims to
 * lapse and be taken over. The first failed database write stops every further attempt.
 */
export async function deliverPending(db: Kysely<Database>, options: DeliverPendingOptions): Promise<DeliverPendingResult> {
  const clock = options.clock ?? systemClock;
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  const runId = options.runId ?? newRunId();
  // Every delivery waiting for a retry listens for the stop signal: many listeners are expected here.
  if (options.stop) setMaxListeners(0, options.stop);

  await checkSendingPrivileges(db);
  // A test's own clock is taken as it is; the real one defers to the database server's for leases.
  const leaseClock = clock === systemClock ? await databaseLeaseClock(db, clock) : hostLeaseClock(clock);
  const skew = skewWarning(leaseClock.skewMs);
  if (skew) options.onWarning?.(skew);
  try {
    return await deliverWith(db, { ...options, runId, clock, leaseMs }, leaseClock);
  } finally {
    leaseClock.close();
  }
}

/** The run once its lease clock is known: claims, heartbeat, the database gate and the transport around the loop. */
async function deliverWith(
  db: Kysely<Database>,
  options: DeliverPendingOptions & { runId: string; clock: Clock; leaseMs: number },
  leaseClock: LeaseClock,
): Promise<DeliverPendingResult> {
  const { runId, leaseMs } = options;
  await freeClaimsOfDeadRuns(db, leaseClock.now().getTime());
  const windowHours = options.retryWindowHours ?? 0;
  const crossRun =
    windowHours > 0
      ? await CrossRunRetries.load(db, {
          windowHours,
          clock: options.clock,
          random: options.random ?? Math.random,
          perEndpointClaims: !options.resend && options.endpoints !== undefined,
          onWarning: options.onWarning,
        })
      : undefined;
  // Endpoints a 410 Gone disabled are sent nothing until `endpoints enable`: what waits for them is parked. So
  // too with retries across runs off since (retryWindowHours 0), while the disablement stands.
  const disabled = crossRun?.disabled() ?? goneEndpoints(await endpointStates(db));
  const goneNames = (options.endpoints ?? []).filter((endpoint) => disabled.has(endpoint.name)).map((endpoint) => endpoint.name);
  let parkedFirst = 0;
  if (crossRun) await crossRun.parkDisabled(goneNames);
  else for (const name of goneNames) parkedFirst += await parkEndpoint(db, name, disabled.get(name)!);
  const endpoints = options.endpoints?.filter((endpoint) => !disabled.has(endpoint.name));
  options = { ...options, ...(endpoints ? { endpoints } : {}) };
  // Deferred deliveries are claimed once due even when retries across runs are off now (retryWindowHours set to 0
  // after they were deferred): then they get the reference's schedule and end delivered or abandoned, never stuck.
  // One that comes due while the run works (a short Retry-After) is claimed again by it, once (see CrossRunRetries.waitFor).
  const dueAt = () => formatUtc(options.clock.now());
  const names = options.endpoints?.map((endpoint) => endpoint.name);
  // A re-send goes to enabled endpoints only (and to the one it names, `deliveries retry --endpoint`).
  const resendTo = names && options.resend ? (options.resend.endpoints ?? names).filter((name) => names.includes(name)) : options.resend?.endpoints;
  const source = claimSource(db, runId, options.resend && { ...options.resend, ...(resendTo ? { endpoints: resendTo } : {}) }, dueAt);
  const overall = options.resend || !names ? source : pendingSource(db, runId, names, dueAt);
  // Each endpoint is claimed on its own, so one whose deliveries wait (a slow or failing receiver) never fills the
  // window the others are claimed into. A re-send walks its selection in id order, whatever the endpoint.
  const streams: ClaimStream[] =
    options.resend || !options.endpoints
      ? [{ name: undefined, source, maxInFlight: undefined }]
      : options.endpoints.map((endpoint) => ({
          name: endpoint.name,
          source: pendingSource(db, runId, [endpoint.name], dueAt),
          maxInFlight: endpoint.maxInFlight,
        }));
  const total = options.onProgress ? await overall.remaining(leaseClock.now().getTime()) : 0;
  let heartbeatFailed = false;
  // Half the lease, or more when an attempt may take longer: an attempt starts with at least that much left.
  const keeper = new ClaimKeeper(db, { runId, leaseMs, clock: leaseClock, minLeftMs: Math.max(leaseMs / 2, options.policy.timeoutMs) });
  const stopHeartbeat = startHeartbeat(db, {
    runId,
    leaseMs,
    clock: leaseClock,
    onError: (error) => {
      if (heartbeatFailed) return;
      heartbeatFailed = true;
      // A lease that lapses lets another run take these deliveries over: a duplicate becomes possible.
      options.onWarning?.(
        `could not renew this run's delivery leases (${error instanceof Error ? error.message : String(error)}); if it stays lapsed, another run may send the same events again.`,
      );
    },
  });
  const gate = new DatabaseGate(db);
  // Every endpoint's attempts have the default policy's timeout (the `policy` option): connecting is bounded by it too.
  const transport = new LazyTransport(options.fetch, options.policy.timeoutMs);
  try {
    return await workThrough(db, { ...options, leaseClock, transport, keeper, gate, crossRun, parkedFirst }, overall, streams, total);
  } finally {
    await transport.close().finally(() => {
      stopHeartbeat();
      gate.close();
    });
  }
}

/** The deliveries of one endpoint (or of all, `name` undefined), claimed into a window of their own. */
interface ClaimStream {
  name: string | undefined;
  source: ClaimSource;
  maxInFlight: number | undefined;
}

interface StreamState {
  stream: ClaimStream;
  windowSize: number;
  /** Claimed and not ended. */
  held: number;
  /** Of those, waiting for a retry (holding no slot). */
  waiting: number;
  /** Set when a claim found nothing; a delivery that ends clears it (another run's lease may have lapsed since). */
  drained: boolean;
}

/** The claim-and-send loop of one run, with its transport and heartbeat already in place. */
async function workThrough(
  db: Kysely<Database>,
  options: DeliverPendingOptions & {
    runId: string;
    clock: Clock;
    leaseClock: Clock;
    leaseMs: number;
    transport: LazyTransport;
    keeper: ClaimKeeper;
    gate: DatabaseGate;
    crossRun: CrossRunRetries | undefined;
    /** Parked before the work began (a 410's disablement read without retries across runs): counted from the start, a failed run's too. */
    parkedFirst: number;
  },
  source: ClaimSource,
  streams: readonly ClaimStream[],
  total: number,
): Promise<DeliverPendingResult> {
  const { clock, leaseClock, leaseMs, keeper, gate, crossRun, switches } = options;
  // Set when the first deliveries are claimed (see LazyTransport).
  let fetch: $Fetch | undefined;
  // Slots are shared fairly by endpoint, each within its own limit, whatever the claiming: a re-send claims every
  // endpoint's deliveries in one stream, and its attempts keep to maxInFlight and to a 429's one in flight too.
  const limits = Object.fromEntries((options.endpoints ?? []).map((endpoint) => [endpoint.name, endpoint.maxInFlight]));
  const slots = new FairSlots(options.concurrency, limits);
  const policies = new Map((options.endpoints ?? []).map((endpoint) => [endpoint.name, endpoint.policy]));
  // One endpoint alone has the window a run always had; an endpoint with its own limit needs no larger one.
  const states: StreamState[] = streams.map((stream) => ({
    stream,
    windowSize: Math.max(Math.min(stream.maxInFlight ?? options.concurrency, options.concurrency) * 16, 64),
    held: 0,
    waiting: 0,
    drained: false,
  }));
  const stateOf = new Map(states.map((state) => [state.stream.name, state]));
  const streamOf = (row: DeliveryRow) => stateOf.get(row.endpoint) ?? states[0]!;
  const result = nothingSent();
  result.parked = options.parkedFirst;
  let ended = 0;
  const perEndpoint: Record<string, { delivered: number; abandoned: number }> = {};
  const inFlight = new Set<Promise<void>>();
  let waiting = 0;
  const report = () => {
    options.onCounts?.(result);
    options.onProgress?.({ done: ended, total: Math.max(total, ended), delivered: result.delivered, abandoned: result.abandoned, waiting });
  };
  options.onCounts?.(result);
  let failure: unknown;
  // A failed write (a full disk) halts the run: no attempt starts whose outcome could not be recorded.
  const halt = new AbortController();
  setMaxListeners(0, halt.signal);
  const stop = options.stop ? AbortSignal.any([options.stop, halt.signal]) : halt.signal;
  setMaxListeners(0, stop);
  const writer = new AttemptWriter(db, options.runId);
  crossRun?.attach({
    setLimit: (endpoint, limit) => slots.setEndpointLimit(endpoint, limit === 'own' ? limits[endpoint] : limit),
    stop,
    ownDeferredParked: (endpoint) => ownDeferredParked(endpoint),
  });
  // The loop sleeps until a delivery ends or starts/stops waiting for a retry.
  let changed = false;
  let wake: () => void = () => undefined;
  const nudge = () => {
    changed = true;
    wake();
  };

  // Before each attempt: the database reachable, the writer caught up, the claim still this run's. Known at
  // once (no promise) in the usual case, where all three hold without asking the database.
  const readyToSend = (id: number): boolean | Promise<boolean | 'release'> => {
    if (gate.isOpen() && writer.isCaughtUp(options.concurrency) && keeper.heldLongEnough(id)) return true;
    return (async () => {
      await gate.open();
      await writer.caughtUp(options.concurrency);
      const held = await keeper.confirm(id);
      if (held !== 'unconfirmed') return held;
      // Not confirmed in time, three asks running (see ClaimKeeper): the database answers too slowly to keep claims
      // safely. The run stops as on a lost database: this delivery and the others not started are handed back
      // unsent (released), the attempts in flight end and are recorded, and the next run sends what is left.
      failure ??= new StorageRefusal({ kind: 'claims-unconfirmed', deliveryId: id, leaseMs });
      halt.abort();
      return 'release';
    })();
  };

  const run = async (row: DeliveryRow, fetch: $Fetch) => {
    const spent = row.attempts - row.schedule_base;
    // With retries across runs, a deferred delivery claimed when due gets one attempt in this run (next_attempt_at marks it).
    const oneShot = crossRun !== undefined && row.next_attempt_at !== null;
    const basePolicy = policies.get(row.endpoint) ?? options.policy;
    const policy = oneShot ? { ...basePolicy, retryDelaysMs: [] } : basePolicy;
    const rowMax = policy.retryDelaysMs.length + 1;
    let outcome: Pick<DeliveryResult, 'status' | 'lastStatusCode' | 'lastError'> & { attempts: unknown[] };
    // How the delivery leaves this run, when the cross-run policy decided it (deferred, parked, or abandoned with a reason).
    let end: DeliveryEnd | undefined;
    const completedNow = () => formatUtc(clock.now());
    // Set when its endpoint was found disabled or removed before an attempt: how it ends unsent (parked, superseded).
    let switchedEnd: DeliveryEnd | undefined;
    // The attempt's own end, or, when it leaves the delivery waiting and its endpoint was disabled or removed
    // meanwhile, parked or superseded instead of deferred: the attempt in flight is recorded, no other follows.
    const endAfterAttempt = (final: DeliveryEnd | undefined): DeliveryEnd | undefined | Promise<DeliveryEnd | undefined> => {
      if (!switches || !final || (final.status !== 'deferred' && final.status !== 'parked')) return final;
      const decide = () => {
        const switched = switches.endOf(row.endpoint, completedNow);
        // A 410's parking stays a 410's while the endpoint is only disabled.
        return switched && (final.status === 'deferred' || switched.status === 'superseded') ? switched : final;
      };
      const reading = switches.fresh();
      return reading ? reading.then(decide) : decide();
    };
    // deliver()'s own rule: a 2xx, 3xx or 4xx ends the schedule; so does its last attempt.
    const attemptIsLast = (attempt: { attempt: number; statusCode: number | null }) =>
      attempt.attempt === rowMax || (attempt.statusCode !== null && attempt.statusCode >= 200 && attempt.statusCode <= 499);
    if (spent >= rowMax) {
      // The schedule ended without a final status being written (retryDelaysMs was shortened since, or a run died after its one attempt).
      end = crossRun
        ? crossRun.held(row, `${row.last_error ?? 'no outcome recorded'} (its attempts in an earlier run were spent)`)
        : { status: 'abandoned', completedAt: formatUtc(clock.now()) };
      await endClaimed(db, row.id, options.runId, end);
      outcome = { status: 'abandoned', attempts: [], lastStatusCode: row.last_status_code, lastError: row.last_error };
    } else {
      outcome = await deliver({ eventId: row.event_id, eventType: row.event_type, body: row.body }, policy, {
        clock,
        slots: slots.forEndpoint(row.endpoint),
        stop,
        fetch,
        spent,
        ...(crossRun ? { beforeSlot: () => crossRun.beforeSlot(row) } : {}),
        // No request starts while the database may be gone, nor while answers wait too long for their write:
        // what a lost database costs in re-sends is the answers it could not record.
        beforeAttempt: () => {
          const check = () => {
            // Disabled or removed since the run began (read again about once a second): no attempt starts.
            switchedEnd = switches?.endOf(row.endpoint, completedNow);
            if (switchedEnd) return 'hold' as const;
            // The circuit may have opened, or a 429 paused the endpoint, while this one waited for its slot.
            if (crossRun && (crossRun.pauseMs(row) > 0 || !crossRun.stillAdmitted(row))) {
              return (async () => {
                await crossRun.waitOutPause(row);
                if (!crossRun.stillAdmitted(row)) return 'hold' as const;
                return readyToSend(row.id);
              })();
            }
            return readyToSend(row.id);
          };
          const reading = switches?.fresh();
          return reading ? reading.then(check) : check();
        },
        ...(options.traceAttempt && { traceAttempt: traceOf(options.traceAttempt, row, policies.get(row.endpoint) ?? options.policy) }),
        onWaiting: (isWaiting) => {
          waiting += isWaiting ? 1 : -1;
          streamOf(row).waiting += isWaiting ? 1 : -1;
          nudge();
          // The bar shows a wait as it begins, not seconds later when the delivery ends.
          report();
        },
        // The cross-run policy learns the outcome with the slot still held: a 429 pauses the next attempt that takes it.
        onOutcome: (attempt) => {
          if (crossRun) end = crossRun.afterAttempt(row, attempt, attemptIsLast(attempt));
        },
        onAttempt: (attempt, verdict) => {
          const last = verdict !== 'retry' || attempt.attempt === rowMax;
          const write = (final: DeliveryEnd | undefined) => {
            if (crossRun) end = final;
            return writer.write({
              deliveryId: row.id,
              attempt: {
                attempt: row.schedule_base + attempt.attempt,
                started_at: formatUtc(attempt.startedAt),
                duration_ms: attempt.durationMs,
                status_code: attempt.statusCode,
                error: attempt.error,
              },
              // The last attempt ends the delivery in the same write, so "delivered" is never a second step.
              final,
            });
          };
          const final = endAfterAttempt(
            crossRun
              ? end
              : verdict === 'delivered'
                ? { status: 'delivered', completedAt: formatUtc(clock.now()) }
                : last
                  ? { status: 'abandoned', completedAt: formatUtc(clock.now()) }
                  : undefined,
          );
          return final instanceof Promise ? final.then(write) : write(final);
        },
      });
      if (switchedEnd) {
        // Its endpoint was disabled (parked: sent once enabled again) or removed (superseded) while the run held it.
        end = switchedEnd;
        crossRun?.notSent(row);
        await endClaimed(db, row.id, options.runId, end);
      } else if (outcome.status === 'held' && crossRun) {
        // Kept back before an attempt (open circuit, gone endpoint, long Retry-After): deferred or parked without one.
        end = crossRun.held(row);
        await endClaimed(db, row.id, options.runId, end);
      } else if (outcome.status === 'released' || outcome.status === 'dropped') crossRun?.notSent(row);
    }
    // Stopped before an attempt or before a retry (or its claim not confirmed in time, which stops the run): the claim
    // goes back (pending, or deferred and due) for the next run.
    if (outcome.status === 'released') await releaseDelivery(db, row.id, options.runId);
    const status: DeliveryOutcome['status'] =
      outcome.status === 'released' || outcome.status === 'dropped'
        ? outcome.status
        : (end?.status ?? (outcome.status === 'held' ? 'deferred' : outcome.status));
    forgetEarlierEnd(row.id);
    result[status] += 1;
    if (status === 'deferred') deferredEarlier.set(row.id, row.endpoint);
    if (status === 'delivered' || status === 'abandoned') {
      const counts = (perEndpoint[row.endpoint] ??= { delivered: 0, abandoned: 0 });
      counts[status] += 1;
    }
    ended += 1;
    list({
      id: row.id,
      eventId: row.event_id,
      eventType: row.event_type,
      status,
      ...(status === 'superseded' && end?.reason ? { reason: end.reason } : {}),
      attempts: row.attempts + outcome.attempts.length,
      lastStatusCode: outcome.attempts.length > 0 ? outcome.lastStatusCode : row.last_status_code,
      lastError: outcome.attempts.length > 0 ? outcome.lastError : row.last_error,
    });
    report();
  };
  const list = (outcome: DeliveryOutcome) => {
    if (result.outcomes.length >= MAX_LISTED) result.unlisted += 1;
    else result.outcomes.push(outcome);
  };
  // Deferred by this run and claimed again once due (a short Retry-After): counted and listed by how it ends last.
  const deferredEarlier = new Map<number, string>();
  // Of those, the ones claimed again and not ended yet: in this run's hands, not deferred in the table.
  const reclaimed = new Set<number>();
  const forgetEarlierEnd = (id: number) => {
    reclaimed.delete(id);
    if (!deferredEarlier.delete(id)) return;
    result.deferred -= 1;
    ended -= 1;
    const index = result.outcomes.findIndex((outcome) => outcome.id === id);
    if (index >= 0) result.outcomes.splice(index, 1);
    else result.unlisted -= 1;
  };
  // Deferred by this run, then parked with the rest of its endpoint's (410 Gone): counted and listed as parked.
  const ownDeferredParked = (endpoint: string): number => {
    let moved = 0;
    for (const [id, of] of deferredEarlier) {
      if (of !== endpoint || reclaimed.has(id)) continue;
      deferredEarlier.delete(id);
      result.deferred -= 1;
      result.parked += 1;
      const listed = result.outcomes.find((outcome) => outcome.id === id);
      if (listed) listed.status = 'parked';
      moved += 1;
    }
    if (moved > 0) report();
    return moved;
  };

  // A delivery that waited is checked against its license before it is sent: one read per claimed window.
  const supersedeStale = async (claimed: DeliveryRow[]): Promise<DeliveryRow[]> => {
    if (!options.recheck || claimed.length === 0) return claimed;
    const reasons = await options.recheck(claimed, clock.now());
    if (reasons.size === 0) return claimed;
    await supersedeDeliveries(db, options.runId, reasons, formatUtc(clock.now()));
    for (const row of claimed) {
      const reason = reasons.get(row.id);
      if (reason === undefined) continue;
      forgetEarlierEnd(row.id);
      result.superseded += 1;
      ended += 1;
      list({
        id: row.id,
        eventId: row.event_id,
        eventType: row.event_type,
        status: 'superseded',
        reason,
        attempts: row.attempts,
        lastStatusCode: row.last_status_code,
        lastError: row.last_error,
      });
    }
    report();
    return claimed.filter((row) => !reasons.has(row.id));
  };

  // Only claims of the endpoints this run still claims are its to take over: a gone run's of an endpoint disabled,
  // removed or with its circuit open here would be found lapsed again and again, and never claimed.
  const claimedEndpoints = () => (options.endpoints ? states.filter((state) => !closed(state)).map((state) => state.stream.name!) : undefined);
  const takeOver = new TakeOver(db, { runId: options.runId, leaseMs, clock: leaseClock, stop, endpoints: claimedEndpoints });
  // A backstop: take-overs that claim nothing several times in a row (another worker was faster, or a claim this
  // run cannot make) end the taking over, so a run never asks forever.
  let fruitlessTakeOvers = 0;
  let tookOver = false;
  let lockChecks = 0;
  // An endpoint the run sends no more to (open circuit, 410, a long Retry-After; disabled or removed since the run
  // began) claims nothing more: its deliveries were deferred or parked (or superseded).
  const closed = (state: StreamState) =>
    state.stream.name !== undefined &&
    ((crossRun?.isClosed(state.stream.name) ?? false) || (switches !== undefined && switches.stateOf(state.stream.name) !== 'on'));
  const drainedAll = () => states.every((state) => state.drained || closed(state));
  const undrain = () => {
    for (const state of states) state.drained = false;
  };
  for (;;) {
    changed = false;
    if (stop.aborted) break;
    let claimedAny = false;
    let claimFailed = false;
    // Each endpoint's window, claimed before any of them starts: started in turns across endpoints, their first
    // attempts share the free slots, where started endpoint by endpoint the first would take them all (and a
    // receiver that hangs would hold the others up for a whole timeout).
    const windows: Array<{ rows: DeliveryRow[]; nowMs: number }> = [];
    for (const state of states) {
      // Stopped (or halted) while an earlier endpoint's window was claimed: claim no more.
      if (stop.aborted) break;
      const active = state.held - state.waiting;
      // Claim when half the window is free: one UPDATE per batch, not per event. Held: what runs, and what this
      // pass claimed and has not started yet.
      const held = inFlight.size + windows.reduce((sum, window) => sum + window.rows.length, 0);
      if (state.drained || closed(state) || active > state.windowSize / 2 || held >= MAX_HELD) continue;
      // Each claim knows the endpoint's switch as of the last second at most.
      const reading = switches?.fresh();
      if (reading) {
        await reading;
        if (closed(state)) continue;
      }
      const nowMs = leaseClock.now().getTime();
      let claimed: DeliveryRow[];
      try {
        const window = await state.stream.source.next(Math.min(state.windowSize - active, MAX_HELD - held), nowMs, nowMs + leaseMs);
        state.drained = window.length === 0;
        claimedAny ||= window.length > 0;
        claimed = await supersedeStale(window);
        if (claimed.length > 0) fetch ??= await options.transport.fetch();
      } catch (error) {
        // The deliveries in hand end (none starts a new attempt) before the run reports the failure.
        failure ??= error;
        halt.abort();
        claimFailed = true;
        break;
      }
      if (claimed.length > 0) windows.push({ rows: claimed, nowMs });
    }
    // What was claimed starts even when a later claim failed: those deliveries end as a halted run's do (released).
    for (let index = 0, started = true; started; index += 1) {
      started = false;
      for (const window of windows) {
        const row = window.rows[index];
        if (row === undefined) continue;
        started = true;
        keeper.claimed(row.id, window.nowMs + leaseMs);
        if (deferredEarlier.has(row.id)) reclaimed.add(row.id);
        const owner = streamOf(row);
        owner.held += 1;
        // The transport was opened when this window was claimed (above).
        const task: Promise<void> = run(row, fetch!)
          .catch((error: unknown) => {
            failure ??= error;
            halt.abort();
          })
          .finally(() => {
            keeper.forget(row.id);
            inFlight.delete(task);
            owner.held -= 1;
            undrain();
            nudge();
          });
        inFlight.add(task);
      }
    }
    if (claimFailed) break;
    if (claimedAny) {
      fruitlessTakeOvers = 0;
      tookOver = false;
      continue;
    }
    if (tookOver) fruitlessTakeOvers += 1;
    tookOver = false;
    if (inFlight.size === 0 && drainedAll()) {
      // What closing an endpoint deferred or parked is written before anything is counted as left or locked.
      try {
        await crossRun?.settle();
      } catch (error) {
        failure ??= error;
        break;
      }
      if (options.resend || stop.aborted) break;
      // Before exiting: claims of another run that is gone (killed while sending) are taken over now, not by
      // the next run a day later. Waiting for them is bounded by the lease (see TakeOver).
      if (fruitlessTakeOvers < MAX_FRUITLESS_TAKE_OVERS && (await takeOver.next())) {
        tookOver = true;
        undrain();
        continue;
      }
      // Due deliveries that no claim returned are row-locked by another session (SKIP LOCKED passed over
      // them): another worker's claim for a moment, or an open transaction. Look again, then count them. Only
      // those of endpoints the run still claims: one it closed (an open circuit, a Retry-After) claims nothing
      // more, and what it deferred by a second can come due before the run ends.
      const lockNow = leaseClock.now().getTime();
      const counted = await Promise.all(states.filter((state) => !closed(state)).map((state) => state.stream.source.remaining(lockNow)));
      result.locked = counted.reduce((total, count) => total + count, 0);
      if (result.locked === 0 || lockChecks >= LOCK_CHECKS) break;
      lockChecks += 1;
      await new Promise((resolve) => setTimeout(resolve, LOCK_CHECK_MS));
      undrain();
      continue;
    }
    if (!changed) await new Promise<void>((resolve) => (wake = resolve));
  }
  await Promise.all(inFlight);
  if (crossRun && failure) {
    // What the run learned outlives its failure: the statements it started (deferring or parking an endpoint's
    // deliveries) end first, and the circuits are saved when the database still answers (a failed write, a slow
    // confirmation; not a lost connection), so the next run probes a dead receiver once instead of learning again.
    await crossRun.settle().catch(() => undefined);
    result.deferred += crossRun.counts.deferred;
    result.parked += crossRun.counts.parked;
    result.abandoned += crossRun.counts.abandoned;
    report();
    if (gate.isOpen())
      await crossRun.save().catch((error: unknown) => {
        options.onWarning?.(`the receivers' circuits learned in this run could not be saved: ${error instanceof Error ? error.message : String(error)}`);
      });
  }
  if (crossRun && !failure) {
    try {
      await crossRun.settle();
      await crossRun.save();
      result.deferred += crossRun.counts.deferred;
      result.parked += crossRun.counts.parked;
      result.abandoned += crossRun.counts.abandoned;
      result.circuits = crossRun.circuits();
      result.gone = [...crossRun.gone];
      result.waiting = await waitingByEndpoint(db);
    } catch (error) {
      failure = error;
    }
  }
  if (failure) throw failure;
  if (stop.aborted) {
    // What the next run (or the next re-send) has to do: released deliveries are pending again, so the due
    // count already holds them; a re-send's released ones are no longer abandoned.
    const remaining = await source.remaining(leaseClock.now().getTime());
    result.left = options.resend ? result.released + remaining : remaining;
  }
  result.outcomes.sort((a, b) => a.id - b.id);
  if (Object.keys(perEndpoint).some((name) => name !== 'default')) result.byEndpoint = perEndpoint;
  return result;
}
