import { describe, expect, test } from '@jest/globals';
import { FairSlots } from '../../src/delivery/fair-slots.js';

/** Lets every granted acquire's continuation run: grants resolve promises, which settle before the next macrotask. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Acquires a slot and records, in order, which label got it and its release function. */
function recorder(slots: FairSlots) {
  const granted: string[] = [];
  const releases = new Map<string, () => void>();
  const request = (endpoint: string, label: string, signal?: AbortSignal) =>
    slots.acquire(endpoint, signal).then((release) => {
      granted.push(label);
      releases.set(label, release);
    });
  const release = (label: string) => {
    const fn = releases.get(label);
    if (!fn) throw new Error(`${label} holds no slot`);
    fn();
  };
  return { granted, request, release };
}

describe('limits', () => {
  test('the global limit: a third acquire waits until one is released', async () => {
    const slots = new FairSlots(2);
    const { granted, request, release } = recorder(slots);
    void request('a', 'a1');
    void request('a', 'a2');
    void request('a', 'a3');
    await settle();
    expect(granted).toEqual(['a1', 'a2']);
    expect(slots.snapshot()).toEqual({ free: 0, endpoints: { a: { inFlight: 2, waiting: 1 } } });
    release('a1');
    await settle();
    expect(granted).toEqual(['a1', 'a2', 'a3']);
  });

  test("an endpoint's maxInFlight holds it back while others use the rest", async () => {
    const slots = new FairSlots(8, { a: 2 });
    const { granted, request, release } = recorder(slots);
    for (const label of ['a1', 'a2', 'a3', 'a4']) void request('a', label);
    void request('b', 'b1');
    void request('b', 'b2');
    await settle();
    expect(granted).toEqual(['a1', 'a2', 'b1', 'b2']);
    expect(slots.snapshot()).toEqual({ free: 4, endpoints: { a: { inFlight: 2, waiting: 2, limit: 2 }, b: { inFlight: 2, waiting: 0 } } });
    release('b1');
    await settle();
    expect(granted).toHaveLength(4);
    release('a1');
    await settle();
    expect(granted).toEqual(['a1', 'a2', 'b1', 'b2', 'a3']);
  });

  test('a limit lowered during a run (a 429) starts no more until attempts drain; raised again, waiters go at once', async () => {
    const slots = new FairSlots(8);
    const { granted, request, release } = recorder(slots);
    void request('a', 'a1');
    void request('a', 'a2');
    await settle();
    slots.setEndpointLimit('a', 1);
    void request('a', 'a3');
    await settle();
    expect(granted).toEqual(['a1', 'a2']);
    release('a1');
    await settle();
    expect(granted).toEqual(['a1', 'a2']);
    release('a2');
    await settle();
    expect(granted).toEqual(['a1', 'a2', 'a3']);
    void request('a', 'a4');
    void request('a', 'a5');
    await settle();
    slots.setEndpointLimit('a', undefined);
    await settle();
    expect(granted).toEqual(['a1', 'a2', 'a3', 'a4', 'a5']);
  });

  test('releasing twice gives back one slot', async () => {
    const slots = new FairSlots(1);
    const release = await slots.acquire('a');
    release();
    release();
    expect(slots.snapshot().free).toBe(1);
  });

  test('bad sizes are refused', () => {
    expect(() => new FairSlots(0)).toThrow(RangeError);
    expect(() => new FairSlots(4, { a: 0 })).toThrow('maxInFlight of "a"');
    expect(() => new FairSlots(4).setEndpointLimit('a', 1.5)).toThrow(RangeError);
  });
});

describe('fairness', () => {
  test('equal holders are served round-robin, each endpoint in its own order', async () => {
    const slots = new FairSlots(1);
    const { granted, request, release } = recorder(slots);
    void request('x', 'x1');
    for (const [endpoint, label] of [
      ['a', 'a1'],
      ['a', 'a2'],
      ['b', 'b1'],
      ['c', 'c1'],
      ['a', 'a3'],
      ['b', 'b2'],
    ] as const)
      void request(endpoint, label);
    await settle();
    let holder = 'x1';
    for (let step = 0; step < 6; step += 1) {
      release(holder);
      await settle();
      holder = granted[granted.length - 1]!;
    }
    expect(granted).toEqual(['x1', 'a1', 'b1', 'c1', 'a2', 'b2', 'a3']);
  });

  test('a freed slot goes to the endpoint holding fewest, even if another came first', async () => {
    const slots = new FairSlots(4);
    const { granted, request, release } = recorder(slots);
    for (const label of ['slow1', 'slow2', 'slow3', 'slow4', 'slow5', 'slow6']) void request('slow', label);
    void request('fast', 'fast1');
    void request('fast', 'fast2');
    await settle();
    expect(granted).toEqual(['slow1', 'slow2', 'slow3', 'slow4']);
    release('slow1');
    await settle();
    release('slow2');
    await settle();
    // fast held 0, then 1 against slow's 2: both freed slots go to fast although slow5 waited longer.
    expect(granted.slice(4)).toEqual(['fast1', 'fast2']);
    release('slow3');
    await settle();
    expect(granted.slice(6)).toEqual(['slow5']);
  });

  test('a slow endpoint cannot drift into every slot while a fast one keeps sending', async () => {
    // A tick-driven simulation: "slow" holds each slot for 10 ticks (a timeout), "fast" for 1; both always have more to send.
    const slots = new FairSlots(4);
    const held: Array<{ endpoint: string; until: number; release: () => void }> = [];
    const grants = { slow: 0, fast: 0 };
    let tick = 0;
    const keepAsking = (endpoint: 'slow' | 'fast', hold: number) => {
      void slots.acquire(endpoint).then((release) => {
        grants[endpoint] += 1;
        held.push({ endpoint, until: tick + hold, release });
        keepAsking(endpoint, hold);
      });
    };
    // slow asks first and takes all four slots before fast arrives: the worst start.
    for (let index = 0; index < 4; index += 1) keepAsking('slow', 10);
    await settle();
    for (let index = 0; index < 4; index += 1) keepAsking('fast', 1);
    await settle();
    const slowInFlight: number[] = [];
    for (tick = 1; tick <= 100; tick += 1) {
      for (const entry of held.filter((item) => item.until <= tick)) {
        held.splice(held.indexOf(entry), 1);
        entry.release();
        await settle();
      }
      slowInFlight.push(slots.snapshot().endpoints.slow!.inFlight);
    }
    // After the first timeout, slow settles at its fair half and fast gets the rest of the throughput.
    expect(Math.max(...slowInFlight.slice(20))).toBe(2);
    expect(Math.min(...slowInFlight.slice(20))).toBeGreaterThanOrEqual(1);
    expect(grants.fast).toBeGreaterThan(grants.slow * 5);
  });
});

describe('views and cancelling', () => {
  test('forEndpoint is shaped like Slots: acquire() then release()', async () => {
    const slots = new FairSlots(1);
    const view = slots.forEndpoint('crm');
    const release = await view.acquire();
    expect(slots.snapshot().endpoints.crm).toEqual({ inFlight: 1, waiting: 0 });
    release();
    expect(slots.snapshot().endpoints.crm).toEqual({ inFlight: 0, waiting: 0 });
  });

  test('an acquire aborted while waiting rejects, leaves the queue, and never holds a slot', async () => {
    const slots = new FairSlots(1);
    const { granted, request, release } = recorder(slots);
    void request('a', 'a1');
    await settle();
    const stop = new AbortController();
    const aborted = request('a', 'a2', stop.signal);
    void request('b', 'b1');
    await settle();
    stop.abort(new Error('run stopped'));
    await expect(aborted).rejects.toThrow('run stopped');
    expect(slots.snapshot().endpoints.a).toEqual({ inFlight: 1, waiting: 0 });
    release('a1');
    await settle();
    expect(granted).toEqual(['a1', 'b1']);
    release('b1');
    expect(slots.snapshot().free).toBe(1);
  });

  test('an acquire with an already aborted signal rejects at once', async () => {
    const slots = new FairSlots(1);
    const stop = new AbortController();
    stop.abort(new Error('stopped before'));
    await expect(slots.acquire('a', stop.signal)).rejects.toThrow('stopped before');
    expect(slots.snapshot().free).toBe(1);
  });
});
