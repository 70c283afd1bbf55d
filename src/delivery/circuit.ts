// A circuit per endpoint, pure: after a run of failures a run stops starting attempts to it, and the next run sends one probe to see if it is back.
import { z } from 'zod';
import { formatUtc } from '../time.js';
import type { AttemptOutcome } from './retry-policy.js';

/**
 * Consecutive connection failures, timeouts or 5xx that open the circuit. Five: more than one event's
 * whole in-run schedule (4 attempts), so one unlucky event never opens it, yet 1,000 events to a dead
 * receiver cost 5 attempts in a run, not 4,000.
 */
export const CIRCUIT_FAILURE_THRESHOLD = 5;

const POSITIONS = ['closed', 'open', 'half-open'] as const;
type CircuitPosition = (typeof POSITIONS)[number];

/** What is kept per endpoint between runs (JSON as it is); also what `status` shows. Times are `YYYY-MM-DDTHH:MM:SSZ`. */
export interface StoredCircuit {
  state: CircuitPosition;
  consecutiveFailures: number;
  /** When the current run of failures began; null since the last answer. `status` warns when it is old. */
  failingSince: string | null;
  lastSuccessAt: string | null;
  lastFailureAt: string | null;
  /** The last failure's reason: "connect ECONNREFUSED …", "HTTP 503". */
  lastError: string | null;
  openedAt: string | null;
}

/** The circuit during one run: the stored part plus whether this run's one probe is out. */
export interface Circuit extends StoredCircuit {
  probeInFlight: boolean;
}

/**
 * `attempt`: go. `defer`: the circuit is open; defer the delivery without an attempt.
 * `probe`: go; this attempt decides whether the endpoint is back. `wait`: the probe is out; ask again once it is recorded.
 */
export type Admission = 'attempt' | 'probe' | 'wait' | 'defer';

const storedCircuitSchema = z.strictObject({
  state: z.enum(POSITIONS),
  consecutiveFailures: z.int().min(0),
  failingSince: z.string().nullable(),
  lastSuccessAt: z.string().nullable(),
  lastFailureAt: z.string().nullable(),
  lastError: z.string().nullable(),
  openedAt: z.string().nullable(),
});

export function closedCircuit(): StoredCircuit {
  return { state: 'closed', consecutiveFailures: 0, failingSince: null, lastSuccessAt: null, lastFailureAt: null, lastError: null, openedAt: null };
}

/** A stored circuit read back (JSON from the database); undefined when it is not one, so the caller can say so and start closed. */
export function parseStoredCircuit(value: unknown): StoredCircuit | undefined {
  const parsed = storedCircuitSchema.safeParse(value);
  return parsed.success ? parsed.data : undefined;
}

/** The circuit a run starts with: one left open by an earlier run is half-open now (one probe). */
export function circuitForRun(stored: StoredCircuit | undefined): Circuit {
  const base = stored ?? closedCircuit();
  return { ...base, state: base.state === 'open' ? 'half-open' : base.state, probeInFlight: false };
}

/** What to keep for the next run; a probe still out counts as not sent (the run ended before it was recorded). */
export function storedCircuit(circuit: Circuit): StoredCircuit {
  const { probeInFlight: _probe, ...stored } = circuit;
  return stored;
}

/** Whether a delivery to this endpoint may start an attempt now. */
export function admit(circuit: Circuit): { circuit: Circuit; admission: Admission } {
  if (circuit.state === 'closed') return { circuit, admission: 'attempt' };
  if (circuit.state === 'open') return { circuit, admission: 'defer' };
  if (circuit.probeInFlight) return { circuit, admission: 'wait' };
  return { circuit: { ...circuit, probeInFlight: true }, admission: 'probe' };
}

/** An admitted probe that was not sent (the run stopped, the delivery was superseded): the next delivery may probe instead. */
export function cancelAttempt(circuit: Circuit): Circuit {
  return circuit.probeInFlight ? { ...circuit, probeInFlight: false } : circuit;
}

/**
 * `failure`: no answer or a 5xx, the receiver is down or broken. `success`: 2xx. `answered`: any other
 * status (a 4xx, 429, 3xx): the receiver is up, so the circuit has no reason to stay open.
 */
function circuitOutcome(outcome: Pick<AttemptOutcome, 'statusCode'>): 'success' | 'failure' | 'answered' {
  const status = outcome.statusCode;
  if (status === null || status >= 500) return 'failure';
  if (status >= 200 && status <= 299) return 'success';
  return 'answered';
}

/** A closed circuit's failure fields as a success leaves them. */
function isAtRest(circuit: Circuit): boolean {
  return circuit.consecutiveFailures === 0 && circuit.failingSince === null && circuit.openedAt === null;
}

/** The circuit after one attempt's outcome, at `now` (when the attempt ended). */
export function recordAttempt(circuit: Circuit, outcome: AttemptOutcome, now: Date, threshold: number = CIRCUIT_FAILURE_THRESHOLD): Circuit {
  const kind = circuitOutcome(outcome);
  const at = formatUtc(now);
  // The usual case, a success on a closed circuit within the second of the last one: nothing changes (no copy per attempt).
  if (kind === 'success' && circuit.state === 'closed' && !circuit.probeInFlight && circuit.lastSuccessAt === at && isAtRest(circuit)) return circuit;
  if (kind !== 'failure') {
    return {
      ...circuit,
      state: 'closed',
      consecutiveFailures: 0,
      failingSince: null,
      openedAt: null,
      probeInFlight: false,
      lastSuccessAt: kind === 'success' ? at : circuit.lastSuccessAt,
    };
  }
  const consecutiveFailures = circuit.consecutiveFailures + 1;
  // A failed probe re-opens at once; a closed circuit opens at the threshold; an open one stays open (attempts that started before it opened).
  const opens = circuit.state === 'half-open' || (circuit.state === 'closed' && consecutiveFailures >= threshold);
  return {
    ...circuit,
    state: opens || circuit.state === 'open' ? 'open' : 'closed',
    consecutiveFailures,
    failingSince: circuit.failingSince ?? at,
    lastFailureAt: at,
    lastError: outcome.transportError ?? (outcome.statusCode === null ? 'no response' : `HTTP ${outcome.statusCode}`),
    openedAt: opens ? at : circuit.openedAt,
    probeInFlight: false,
  };
}

/** How long the endpoint has failed without an answer, in ms at `now`; 0 when it is not failing. */
export function failingForMs(stored: StoredCircuit, now: Date): number {
  return stored.failingSince === null ? 0 : Math.max(0, now.getTime() - Date.parse(stored.failingSince));
}
