// What `endpoints disable` and `endpoints remove` do to a run already sending: the run reads the switches again.
import type { DeliveryEnd } from '../storage/deliveries/attempts.repository.js';
import { OPERATOR_DISABLED_REASON } from '../storage/deliveries/endpoint-holds.repository.js';

/** An endpoint as a run finds it when it looks again: still enabled (`on`), disabled (`off`), or removed (`gone`: taken away, or replaced by a new endpoint of the same name). */
export type EndpointSwitch = 'on' | 'off' | 'gone';

/**
 * How often a run reads the switches of its endpoints again, at most: one small query a second whatever the run's
 * size. An attempt (or a claim) that finds the last read older than this waits for a new one, shared by every
 * attempt that finds it so; the others know the answer at once.
 */
const SWITCH_READ_MS = 1000;

/** The reason of a delivery a run held when its endpoint was removed: ended unsent (superseded). */
function removedReason(endpoint: string): string {
  return `endpoint ${endpoint} removed while a run held this delivery: ended unsent (an endpoint added later under the name receives only the events recorded after it)`;
}

/**
 * The switches of a run's endpoints that can change while it runs: those stored in the database, which
 * `endpoints disable` and `endpoints remove` change at once (the config file's are read once per run). Read again
 * at most every SWITCH_READ_MS, one read at a time; until the first read every endpoint counts as on. A read that
 * fails keeps what the last one said (a lost database stops the run by its own way).
 */
export class EndpointSwitches {
  private states: ReadonlyMap<string, EndpointSwitch> = new Map();
  private readAt = Number.NEGATIVE_INFINITY;
  private reading: Promise<void> | undefined;

  constructor(
    private readonly read: () => Promise<ReadonlyMap<string, EndpointSwitch>>,
    private readonly intervalMs = SWITCH_READ_MS,
  ) {}

  /** As last read (`on` for an endpoint it does not watch). */
  stateOf(endpoint: string): EndpointSwitch {
    return this.states.get(endpoint) ?? 'on';
  }

  /** undefined when the last read is recent enough; otherwise the read (the one under way, or a new one). */
  fresh(): Promise<void> | undefined {
    if (performance.now() - this.readAt < this.intervalMs) return undefined;
    return (this.reading ??= this.read()
      .then(
        (states) => {
          this.states = states;
        },
        () => undefined,
      )
      .finally(() => {
        this.readAt = performance.now();
        this.reading = undefined;
      }));
  }

  /**
   * How a delivery of `endpoint` ends that the run held and will not send after all: parked while the endpoint is
   * disabled (sent once it is enabled again), superseded once it is removed (never sent to an endpoint added later
   * under the name). undefined while it is on.
   */
  endOf(endpoint: string, completedAt: () => string): DeliveryEnd | undefined {
    const state = this.stateOf(endpoint);
    if (state === 'off') return { status: 'parked', completedAt: null, reason: OPERATOR_DISABLED_REASON };
    if (state === 'gone') return { status: 'superseded', completedAt: completedAt(), reason: removedReason(endpoint) };
    return undefined;
  }
}
