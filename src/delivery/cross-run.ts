// Retries that outlive a run: what becomes of a delivery when its in-run schedule ends, Retry-After and 429, 410 Gone, and a circuit per endpoint.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Kysely } from 'kysely';
import type { Clock } from '../clock.js';
import type { Database } from '../storage/database.table.js';
import { deferEndpoint, parkEndpoint } from '../storage/deliveries/endpoint-holds.repository.js';
import type { DeliveryEnd } from '../storage/deliveries/attempts.repository.js';
import type { DeliveryRow } from '../storage/deliveries/log.repository.js';
import { disableGoneEndpoint, endpointStates, GONE_REASON, saveCircuit } from '../storage/endpoint-states.repository.js';
import { formatUtc, parseUtc } from '../time.js';
import { admit, cancelAttempt, circuitForRun, parseStoredCircuit, recordAttempt, storedCircuit, type Circuit, type StoredCircuit } from './circuit.js';
import { BACKOFF_MS, classifyOutcome, deferralsAt, HOUR_MS, JITTER_RATIO, MIN_DEFERRAL_MS, nextAttemptAt, parseRetryAfter } from './retry-policy.js';
import { clip } from '../clip.js';
import { commandLine } from '../command-line.js';

/**
 * The longest Retry-After of a 429 a run waits out before its next attempt to that endpoint. A longer one ends
 * the run's sending to it: its deliveries are deferred to that time, as an open circuit defers them.
 */
const MAX_IN_RUN_PAUSE_MS = 10_000;
/** The pauses a run waits out for one endpoint's 429s with no 2xx between, in all. */
const MAX_THROTTLED_PAUSE_MS = 30_000;
/** Added to the reason of a delivery deferred to the end of its retry window: the attempt then is its last. */
const LAST_ATTEMPT_NOTE = ' (the last attempt: its retry window ends then)';

/** One attempt as the engine saw it (deliver.ts's AttemptRecord, the part that matters here). */
export interface AttemptSeen {
  statusCode: number | null;
  error: string | null;
  retryAfter: string | null;
}

interface EndpointRun {
  circuit: Circuit;
  /** The circuit as loaded: saved again only when this run changed it. */
  touched: boolean;
  /** Set once the endpoint answered 410 Gone: nothing more is sent to it. */
  gone: boolean;
  /** Epoch ms (performance clock) before which no attempt to it starts (a 429's Retry-After). */
  pausedUntil: number;
  throttled: boolean;
  /** The pauses its 429s asked for since its last 2xx, in ms: past MAX_THROTTLED_PAUSE_MS the run sends it no more. */
  pausedTotalMs: number;
  /** Deliveries waiting for the probe's outcome. */
  waiters: Array<() => void>;
  /** The run sends no more to it (open circuit, gone, a long Retry-After): its stream claims nothing more. */
  closed: boolean;
  /** The one delivery whose attempt is this run's probe, while it is out. */
  probe: number | undefined;
}

export interface CrossRunOptions {
  windowHours: number;
  clock: Clock;
  random: () => number;
  /** Whether each endpoint is claimed on its own, so that its waiting deliveries can be deferred or parked in one statement. */
  perEndpointClaims: boolean;
  onWarning?: ((message: string) => void) | undefined;
}

/** What the run's send loop gives once it exists. */
interface RunHooks {
  /** Lowers (1) or restores ('own': the endpoint's own limit) an endpoint's attempts in flight. */
  setLimit: (endpoint: string, limit: number | 'own') => void;
  stop: AbortSignal;
  /**
   * An endpoint's waiting deliveries were just parked in one statement (410 Gone), with no delivery in the run's
   * hands: those this run had ended as deferred are now counted as parked by the run; returns how many, which the
   * statement's own count leaves out.
   */
  ownDeferredParked: (endpoint: string) => number;
}

/** What a run did across runs, for its result. */
export interface CrossRunCounts {
  deferred: number;
  parked: number;
  abandoned: number;
}

/**
 * The cross-run policy of one run. Loaded with each endpoint's stored circuit and 410 disablement; asked before
 * each attempt (may it go?) and after it (how does the delivery end?); saves the circuits at the end.
 */
export class CrossRunRetries {
  private readonly endpoints = new Map<string, EndpointRun>();
  private readonly pending = new Set<Promise<void>>();
  private failure: unknown;
  readonly counts: CrossRunCounts = { deferred: 0, parked: 0, abandoned: 0 };
  readonly gone: Array<{ endpoint: string; reason: string }> = [];
  private hooks: RunHooks = { setLimit: () => undefined, stop: new AbortController().signal, ownDeferredParked: () => 0 };
  /** When the run started: an endpoint closed by it defers the deliveries due then, not those this run deferred itself since. */
  private readonly startedAt: string;

  private constructor(
    private readonly db: Kysely<Database>,
    private readonly options: CrossRunOptions,
    private readonly stored: Map<string, { circuit: StoredCircuit | undefined; disabledReason: string | null }>,
  ) {
    this.startedAt = formatUtc(options.clock.now());
  }

  /** Reads the stored endpoint states; a stored circuit that cannot be read is warned about and starts closed. */
  static async load(db: Kysely<Database>, options: CrossRunOptions): Promise<CrossRunRetries> {
    const stored = new Map<string, { circuit: StoredCircuit | undefined; disabledReason: string | null }>();
    for (const [name, state] of await endpointStates(db)) {
      const circuit = state.circuit === undefined ? undefined : parseStoredCircuit(state.circuit);
      if (state.circuit !== undefined && circuit === undefined)
        options.onWarning?.(`the stored circuit of endpoint ${name} could not be read; it starts closed.`);
      stored.set(name, { circuit, disabledReason: state.disabledAt === null ? null : (state.disabledReason ?? GONE_REASON) });
    }
    return new CrossRunRetries(db, options, stored);
  }

  /** The send loop's slots and stop signal. */
  attach(hooks: RunHooks): void {
    this.hooks = hooks;
  }

  /** Endpoints a 410 Gone disabled (until `endpoints enable`), by name, with the reason. */
  disabled(): Map<string, string> {
    return new Map([...this.stored].flatMap(([name, state]) => (state.disabledReason === null ? [] : [[name, state.disabledReason] as const])));
  }

  /** Parks the waiting deliveries of endpoints a 410 disabled (new events were recorded for them since). */
  async parkDisabled(names: Iterable<string>): Promise<void> {
    for (const name of names) this.counts.parked += await parkEndpoint(this.db, name, this.stored.get(name)?.disabledReason ?? GONE_REASON);
  }

  private endpoint(name: string): EndpointRun {
    let run = this.endpoints.get(name);
    if (!run) {
      run = {
        circuit: circuitForRun(this.stored.get(name)?.circuit),
        touched: false,
        gone: false,
        pausedUntil: 0,
        throttled: false,
        pausedTotalMs: 0,
        waiters: [],
        closed: false,
        probe: undefined,
      };
      this.endpoints.set(name, run);
    }
    return run;
  }

  /** Whether the run sends nothing more to this endpoint (its stream stops claiming). */
  isClosed(name: string): boolean {
    return this.endpoints.get(name)?.closed ?? false;
  }

  /** Before each attempt, holding no slot: waits out a 429's pause, then asks the circuit. `hold`: no attempt; see `held`. */
  async beforeSlot(row: DeliveryRow): Promise<'go' | 'hold'> {
    const endpoint = this.endpoint(row.endpoint);
    for (;;) {
      if (endpoint.gone || endpoint.closed) return 'hold';
      const pause = endpoint.pausedUntil - performance.now();
      if (pause > 0) {
        await sleep(pause, undefined, { signal: this.hooks.stop }).catch(() => undefined);
        // A stopped run starts no attempt: deliver() sees the stop once the slot is taken.
        if (this.hooks.stop.aborted) return 'go';
        continue;
      }
      const { circuit, admission } = admit(endpoint.circuit);
      endpoint.circuit = circuit;
      if (admission === 'attempt') return 'go';
      if (admission === 'probe') {
        endpoint.probe = row.id;
        endpoint.touched = true;
        return 'go';
      }
      if (admission === 'defer') return 'hold';
      // The probe is out: its outcome decides (or the stop signal ends the wait).
      await new Promise<void>((resolve) => {
        endpoint.waiters.push(resolve);
        this.hooks.stop.addEventListener('abort', () => resolve(), { once: true });
      });
      if (this.hooks.stop.aborted) return 'go';
    }
  }

  /** With the slot held, just before the attempt: false when the circuit opened (or the endpoint went) since beforeSlot let it go. */
  stillAdmitted(row: DeliveryRow): boolean {
    const endpoint = this.endpoint(row.endpoint);
    return !endpoint.gone && !endpoint.closed && endpoint.circuit.state !== 'open';
  }

  private wake(endpoint: EndpointRun): void {
    const waiters = endpoint.waiters.splice(0);
    for (const waiter of waiters) waiter();
  }

  /** A delivery admitted (perhaps as the probe) that made no attempt after all (stopped, taken over): another may probe. */
  notSent(row: DeliveryRow): void {
    const endpoint = this.endpoints.get(row.endpoint);
    if (!endpoint || endpoint.probe !== row.id) return;
    endpoint.probe = undefined;
    endpoint.circuit = cancelAttempt(endpoint.circuit);
    this.wake(endpoint);
  }

  /**
   * After each attempt: the circuit learns the outcome, a 429 slows the endpoint, a 410 disables it. Returns how
   * the delivery ends when this attempt was its last in this run (`last`: the in-run schedule is spent, or
   * deliver.ts stopped at a final status); undefined while it goes on retrying within the run.
   */
  afterAttempt(row: DeliveryRow, attempt: AttemptSeen, last: boolean): DeliveryEnd | undefined {
    const now = this.options.clock.now();
    const endpoint = this.endpoint(row.endpoint);
    const outcome = {
      statusCode: attempt.statusCode,
      transportError: attempt.statusCode === null && attempt.error !== null ? clip(attempt.error, 1000) : null,
    };
    const wasOpen = endpoint.circuit.state === 'open';
    endpoint.circuit = recordAttempt(endpoint.circuit, outcome, now);
    endpoint.touched = true;
    if (endpoint.probe === row.id) {
      endpoint.probe = undefined;
      this.wake(endpoint);
    }
    if (!wasOpen && endpoint.circuit.state === 'open') this.close(row.endpoint, endpoint, 'circuit');
    const kind = classifyOutcome(outcome);
    if (kind === 'delivered') {
      endpoint.pausedTotalMs = 0;
      if (endpoint.throttled) {
        endpoint.throttled = false;
        this.hooks.setLimit(row.endpoint, 'own');
      }
      return last ? { status: 'delivered', completedAt: formatUtc(now) } : undefined;
    }
    if (kind === 'gone') {
      this.disableGone(row.endpoint, endpoint, now);
      return { status: 'parked', completedAt: null, reason: this.goneReason(row.endpoint) };
    }
    const retryAfterMs = kind === 'throttle' ? parseRetryAfter(attempt.retryAfter, now) : undefined;
    if (attempt.statusCode === 429) {
      // Slow down, not hammer: one attempt in flight, and none before Retry-After (1 s when it names none, or less).
      const pause = Math.max(MIN_DEFERRAL_MS, retryAfterMs ?? 0);
      if (!endpoint.throttled) {
        endpoint.throttled = true;
        this.hooks.setLimit(row.endpoint, 1);
      }
      endpoint.pausedTotalMs += pause;
      // One long pause, or short ones that add up (a receiver answering every attempt 429, Retry-After: 5, held a
      // run for 2 × deliveries × 5 s): the run sends it no more, and what waits goes with a later run.
      if (pause > MAX_IN_RUN_PAUSE_MS || endpoint.pausedTotalMs > MAX_THROTTLED_PAUSE_MS)
        this.close(row.endpoint, endpoint, 'throttled', new Date(now.getTime() + pause));
      else endpoint.pausedUntil = Math.max(endpoint.pausedUntil, performance.now() + pause);
    }
    if (kind === 'final')
      return last
        ? { status: 'abandoned', completedAt: formatUtc(now), reason: `${describe(attempt)}: a final answer (only 408, 429 and 5xx are retried)` }
        : undefined;
    if (!last) return undefined;
    return this.waitFor(row, now, describe(attempt), retryAfterMs === undefined ? {} : { retryAfterMs, retryAfter: attempt.retryAfter });
  }

  /**
   * A delivery `beforeSlot` held back: parked (its endpoint is gone) or deferred without an attempt (open circuit, long
   * Retry-After). With `why`, one that has no attempt left in this run for that reason: deferred on its own backoff.
   */
  held(row: DeliveryRow, why?: string): DeliveryEnd {
    const now = this.options.clock.now();
    const endpoint = this.endpoint(row.endpoint);
    if (endpoint.gone) return { status: 'parked', completedAt: null, reason: this.goneReason(row.endpoint) };
    if (why !== undefined) return this.waitFor(row, now, why, {});
    // Until the receiver asked (a long Retry-After), or the first backoff step: the next run's probe decides, at one attempt per run.
    const until = this.closedUntil.get(row.endpoint) ?? this.circuitRetryAt(now);
    return this.waitFor(row, now, this.closedReason(row.endpoint, endpoint), { until });
  }

  /** When deliveries deferred by an open circuit are due: the first backoff step, jittered. */
  private circuitRetryAt(now: Date): Date {
    return new Date(now.getTime() + Math.round(BACKOFF_MS[0]! * (1 + JITTER_RATIO * this.options.random())));
  }

  /** How long this delivery's endpoint is still paused by a 429 (ms; 0 or less: not paused). */
  pauseMs(row: DeliveryRow): number {
    return this.endpoint(row.endpoint).pausedUntil - performance.now();
  }

  /** With the slot held, before the attempt: a 429 answered while this one waited for its slot pauses it too. */
  async waitOutPause(row: DeliveryRow): Promise<void> {
    const pause = this.pauseMs(row);
    if (pause > 0) await sleep(pause, undefined, { signal: this.hooks.stop }).catch(() => undefined);
  }

  /** Deliveries this run deferred: one that comes due again while the run works is claimed again, once. */
  private readonly deferredHere = new Set<number>();

  /**
   * The end of a delivery that waits on a failing receiver: deferred to the backoff (or Retry-After), or abandoned
   * when its window has ended. A short Retry-After (a second at the least) can make it due again while this run
   * still works, which then claims it again; deferred a second time by the same run it waits at least the first
   * backoff step, so a receiver that keeps answering 429 with `Retry-After: 0` gets two attempts per delivery and
   * run, and the run ends.
   */
  private waitFor(row: DeliveryRow, now: Date, cause: string, after: { retryAfterMs?: number; retryAfter?: string | null; until?: Date }): DeliveryEnd {
    // The reason fits status_reason (2,048 characters) whatever the error text.
    const why = clip(cause, 1200);
    const recordedAt = parseUtc(row.created_at) ?? now;
    let retryAfterMs = after.until ? Math.max(0, after.until.getTime() - now.getTime()) : after.retryAfterMs;
    if (retryAfterMs !== undefined && this.deferredHere.has(row.id)) retryAfterMs = Math.max(retryAfterMs, BACKOFF_MS[0]!);
    const next = nextAttemptAt({
      recordedAt,
      deferrals: deferralsAt(recordedAt, now),
      now,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
      windowHours: this.options.windowHours,
      jitter: this.options.random(),
    });
    if ('abandon' in next) return { status: 'abandoned', completedAt: formatUtc(now), reason: `${why}; ${next.reason}` };
    this.deferredHere.add(row.id);
    const asked = after.retryAfter ? `, Retry-After ${clip(after.retryAfter.trim(), 100)}` : '';
    return {
      status: 'deferred',
      completedAt: null,
      nextAttemptAt: formatUtc(next.at),
      reason: `${why}${asked}${next.last ? LAST_ATTEMPT_NOTE : ''}`,
    };
  }

  private readonly closedUntil = new Map<string, Date>();

  private closedReason(name: string, endpoint: EndpointRun): string {
    if (this.closedUntil.has(name)) return `endpoint throttled (429, Retry-After until ${formatUtc(this.closedUntil.get(name)!)})`;
    return `circuit open: ${endpoint.circuit.consecutiveFailures} consecutive failures, the last ${endpoint.circuit.lastError ?? 'no response'}`;
  }

  private goneReason(name: string): string {
    return this.gone.find((entry) => entry.endpoint === name)?.reason ?? this.stored.get(name)?.disabledReason ?? GONE_REASON;
  }

  /** The run sends no more to this endpoint: what waits for it (pending, due deferred) is deferred in one statement, when claims are per endpoint. */
  private close(name: string, endpoint: EndpointRun, why: 'circuit' | 'throttled', until?: Date): void {
    if (endpoint.closed) return;
    endpoint.closed = true;
    if (until) this.closedUntil.set(name, until);
    this.wake(endpoint);
    if (!this.options.perEndpointClaims) return;
    const now = this.options.clock.now();
    // Due at the first backoff step (the next run's probe decides), or when the receiver asked.
    const nextAt = until ?? this.circuitRetryAt(now);
    const reason = why === 'circuit' ? this.closedReason(name, endpoint) : `endpoint throttled (429, Retry-After until ${formatUtc(until!)})`;
    this.track(
      deferEndpoint(this.db, name, {
        dueAt: this.startedAt,
        nextAttemptAt: formatUtc(nextAt),
        reason,
        windowStart: formatUtc(new Date(now.getTime() - this.options.windowHours * HOUR_MS)),
        windowHours: this.options.windowHours,
        lastReason: LAST_ATTEMPT_NOTE,
        completedAt: formatUtc(now),
        abandonReason: `${reason}; its retry window (webhooks.retryWindowHours ${this.options.windowHours}) has ended`,
      }).then(({ deferred, abandoned }) => {
        this.counts.deferred += deferred;
        this.counts.abandoned += abandoned;
      }),
    );
  }

  private disableGone(name: string, endpoint: EndpointRun, now: Date): void {
    if (endpoint.gone) return;
    endpoint.gone = true;
    endpoint.closed = true;
    this.wake(endpoint);
    const reason = `endpoint gone: its receiver answered 410 Gone at ${formatUtc(now)}`;
    this.gone.push({ endpoint: name, reason });
    this.options.onWarning?.(
      `endpoint ${name} answered 410 Gone: it is disabled and its deliveries are parked until "${commandLine(`endpoints enable ${name}`)}".`,
    );
    this.track(disableGoneEndpoint(this.db, name, reason, formatUtc(now)));
    // What waits for it is parked once the run's deliveries in hand have ended (see settle): those this run deferred
    // are then written and counted, so the run counts each once, as parked.
    this.whenSettled.push(async () => {
      const parked = await parkEndpoint(this.db, name, reason);
      this.counts.parked += Math.max(0, parked - this.hooks.ownDeferredParked(name));
    });
  }

  private track(work: Promise<void>): void {
    const tracked = work.catch((error: unknown) => {
      this.failure ??= error;
    });
    this.pending.add(tracked);
    void tracked.finally(() => this.pending.delete(tracked));
  }

  /** Waits for the statements the run started (deferring or parking an endpoint's deliveries); rethrows the first failure. */
  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all(this.pending);
    for (let work = this.whenSettled.shift(); work; work = this.whenSettled.shift()) {
      this.track(work());
      while (this.pending.size > 0) await Promise.all(this.pending);
    }
    if (this.failure) throw this.failure;
  }

  /** Statements that wait until no delivery is in the run's hands (settle is called then). */
  private readonly whenSettled: Array<() => Promise<void>> = [];

  /** Each endpoint's circuit as the run leaves it (those it sent to or probed). */
  circuits(): Record<string, StoredCircuit> {
    return Object.fromEntries(
      [...this.endpoints].filter(([, endpoint]) => endpoint.touched).map(([name, endpoint]) => [name, storedCircuit(endpoint.circuit)]),
    );
  }

  /** Keeps the circuits the run changed for the next run. */
  async save(): Promise<void> {
    const at = formatUtc(this.options.clock.now());
    for (const [name, circuit] of Object.entries(this.circuits())) await saveCircuit(this.db, name, circuit, at);
  }
}

/** What went wrong, at most 1,000 characters (a TLS error can be long): reasons and circuits are stored in bounded columns. */
function describe(attempt: AttemptSeen): string {
  return clip(attempt.error ?? (attempt.statusCode === null ? 'no response' : `HTTP ${attempt.statusCode}`), 1000);
}
