// HTTP attempts in flight shared fairly between endpoints: a global limit, an optional limit per endpoint, and free slots going to the endpoint that holds fewest.

interface EndpointSlots {
  inFlight: number;
  /** Its own maxInFlight; undefined when only the global limit applies. */
  limit: number | undefined;
  waiting: Array<{ grant: () => void }>;
  /** When it was last handed a slot: among endpoints holding as many, the one served longest ago goes first (round-robin). */
  lastServed: number;
}

/** What a caller of today's `Slots` needs: one endpoint's view of the shared slots. */
export interface EndpointSlotView {
  acquire(signal?: AbortSignal): Promise<() => void>;
}

/**
 * A counting semaphore shared by endpoints. A freed slot goes to the waiting endpoint with the fewest
 * attempts in flight, ties round-robin; each endpoint's waiters are served in order. Round-robin on
 * grants alone is not enough: a slow endpoint keeps its slots for a whole timeout while a fast one
 * hands each back at once, so "next in turn" would drift every slot to the slow one.
 */
export class FairSlots {
  private free: number;
  private readonly endpoints = new Map<string, EndpointSlots>();
  private served = 0;

  constructor(size: number, endpointLimits: Readonly<Record<string, number | undefined>> = {}) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`the number of slots must be a whole number >= 1, not ${size}`);
    this.free = size;
    for (const [endpoint, limit] of Object.entries(endpointLimits)) this.setEndpointLimit(endpoint, limit);
  }

  /** Changes an endpoint's own limit during a run (e.g. lowered to 1 after a 429); undefined removes it. */
  setEndpointLimit(endpoint: string, limit: number | undefined): void {
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 1))
      throw new RangeError(`maxInFlight of "${endpoint}" must be a whole number >= 1, not ${limit}`);
    this.endpoint(endpoint).limit = limit;
    // A raised limit may let waiters go now; a lowered one lets attempts in flight finish and starts no more.
    this.dispatch();
  }

  /** Waits for a slot for `endpoint`; the returned function gives it back (calling it twice is harmless). Rejects if `signal` aborts first. */
  acquire(endpoint: string, signal?: AbortSignal): Promise<() => void> {
    const slots = this.endpoint(endpoint);
    if (signal?.aborted) return Promise.reject(signal.reason);
    // No eligible waiter exists while a slot is free (dispatch keeps it so), and a waiter of this endpoint means it is at its limit.
    if (this.free > 0 && slots.waiting.length === 0 && this.underLimit(slots)) {
      this.take(slots);
      return Promise.resolve(this.releaser(slots));
    }
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        const index = slots.waiting.indexOf(waiter);
        if (index !== -1) slots.waiting.splice(index, 1);
        reject(signal!.reason);
      };
      const waiter = {
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve(this.releaser(slots));
        },
      };
      slots.waiting.push(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** One endpoint's view, shaped like today's `Slots`, for code that sends to one endpoint. */
  forEndpoint(endpoint: string): EndpointSlotView {
    return { acquire: (signal?: AbortSignal) => this.acquire(endpoint, signal) };
  }

  /** Counts for logs and tests. */
  snapshot(): { free: number; endpoints: Record<string, { inFlight: number; waiting: number; limit?: number }> } {
    const endpoints: Record<string, { inFlight: number; waiting: number; limit?: number }> = {};
    for (const [name, slots] of this.endpoints) {
      endpoints[name] = { inFlight: slots.inFlight, waiting: slots.waiting.length, ...(slots.limit === undefined ? {} : { limit: slots.limit }) };
    }
    return { free: this.free, endpoints };
  }

  private endpoint(name: string): EndpointSlots {
    let slots = this.endpoints.get(name);
    if (!slots) {
      slots = { inFlight: 0, limit: undefined, waiting: [], lastServed: 0 };
      this.endpoints.set(name, slots);
    }
    return slots;
  }

  private underLimit(slots: EndpointSlots): boolean {
    return slots.limit === undefined || slots.inFlight < slots.limit;
  }

  private take(slots: EndpointSlots): void {
    this.free -= 1;
    slots.inFlight += 1;
    this.served += 1;
    slots.lastServed = this.served;
  }

  private releaser(slots: EndpointSlots): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      slots.inFlight -= 1;
      this.free += 1;
      this.dispatch();
    };
  }

  /** Hands free slots to waiters: fewest in flight first, then the endpoint served longest ago. */
  private dispatch(): void {
    while (this.free > 0) {
      let next: EndpointSlots | undefined;
      for (const slots of this.endpoints.values()) {
        if (slots.waiting.length === 0 || !this.underLimit(slots)) continue;
        if (!next || slots.inFlight < next.inFlight || (slots.inFlight === next.inFlight && slots.lastServed < next.lastServed)) next = slots;
      }
      if (!next) return;
      this.take(next);
      next.waiting.shift()!.grant();
    }
  }
}
