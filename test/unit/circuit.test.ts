import { describe, expect, test } from '@jest/globals';
import {
  admit,
  cancelAttempt,
  CIRCUIT_FAILURE_THRESHOLD,
  circuitForRun,
  closedCircuit,
  failingForMs,
  parseStoredCircuit,
  recordAttempt,
  storedCircuit,
  type Circuit,
} from '../../src/delivery/circuit.js';

const t0 = new Date('2026-03-01T02:00:00Z');
const at = (seconds: number) => new Date(t0.getTime() + seconds * 1000);
const refused = { statusCode: null, transportError: 'connect ECONNREFUSED 127.0.0.1:9' };
const ok = { statusCode: 200, transportError: null };

/** Records `n` refused connections, one second apart from `start`. */
function fail(circuit: Circuit, n: number, start = 0): Circuit {
  let current = circuit;
  for (let index = 0; index < n; index += 1) current = recordAttempt(current, refused, at(start + index));
  return current;
}

describe('within a run', () => {
  test('successes within one second leave a closed circuit as it is; the next second, or a failure before, moves it', () => {
    const first = recordAttempt(circuitForRun(undefined), ok, at(0));
    expect(first.lastSuccessAt).toBe('2026-03-01T02:00:00Z');
    // The same second: the very same circuit (a run of thousands of successes copies nothing).
    expect(recordAttempt(first, ok, new Date(t0.getTime() + 999))).toBe(first);
    expect(recordAttempt(first, ok, at(1))).toEqual({ ...first, lastSuccessAt: '2026-03-01T02:00:01Z' });
    const failedOnce = recordAttempt(first, refused, at(0));
    expect(recordAttempt(failedOnce, ok, at(0))).toEqual({ ...failedOnce, consecutiveFailures: 0, failingSince: null });
  });

  test(`closed until ${CIRCUIT_FAILURE_THRESHOLD} consecutive failures, then open: no new attempt starts`, () => {
    const almost = fail(circuitForRun(undefined), CIRCUIT_FAILURE_THRESHOLD - 1);
    expect(almost.state).toBe('closed');
    expect(admit(almost).admission).toBe('attempt');
    const open = fail(almost, 1, 10);
    expect(open).toMatchObject({
      state: 'open',
      consecutiveFailures: CIRCUIT_FAILURE_THRESHOLD,
      failingSince: '2026-03-01T02:00:00Z',
      lastFailureAt: '2026-03-01T02:00:10Z',
      openedAt: '2026-03-01T02:00:10Z',
      lastError: 'connect ECONNREFUSED 127.0.0.1:9',
    });
    expect(admit(open).admission).toBe('defer');
  });

  test('a success between failures starts the count again', () => {
    const circuit = fail(recordAttempt(fail(circuitForRun(undefined), 4), ok, at(5)), 4, 6);
    expect(circuit).toMatchObject({ state: 'closed', consecutiveFailures: 4, lastSuccessAt: '2026-03-01T02:00:05Z', failingSince: '2026-03-01T02:00:06Z' });
  });

  test('5xx and timeouts count; 4xx, 429 and 3xx are answers and reset the count', () => {
    let circuit = circuitForRun(undefined);
    circuit = recordAttempt(circuit, { statusCode: 503, transportError: null }, at(1));
    circuit = recordAttempt(circuit, { statusCode: null, transportError: 'timed out after 10000 ms' }, at(2));
    expect(circuit).toMatchObject({ consecutiveFailures: 2, lastError: 'timed out after 10000 ms' });
    for (const statusCode of [404, 429, 301, 410]) {
      const answered = recordAttempt(circuit, { statusCode, transportError: null }, at(3));
      expect(answered).toMatchObject({ state: 'closed', consecutiveFailures: 0, failingSince: null, lastSuccessAt: null });
    }
    expect(recordAttempt(circuit, { statusCode: 500 }, at(3)).lastError).toBe('HTTP 500');
  });

  test('attempts that started before it opened still count when they end; a late success closes it', () => {
    const open = fail(circuitForRun(undefined), CIRCUIT_FAILURE_THRESHOLD);
    const later = fail(open, 2, 20);
    expect(later).toMatchObject({ state: 'open', consecutiveFailures: CIRCUIT_FAILURE_THRESHOLD + 2, openedAt: '2026-03-01T02:00:04Z' });
    expect(recordAttempt(later, ok, at(30))).toMatchObject({ state: 'closed', consecutiveFailures: 0, openedAt: null });
  });

  test('the threshold is a parameter', () => {
    expect(fail(circuitForRun(undefined), 1).state).toBe('closed');
    expect(recordAttempt(circuitForRun(undefined), refused, t0, 1).state).toBe('open');
  });
});

describe('across runs', () => {
  const openAtEnd = storedCircuit(fail(circuitForRun(undefined), CIRCUIT_FAILURE_THRESHOLD));

  test('the next run starts half-open: one probe, the others wait for it', () => {
    const start = circuitForRun(openAtEnd);
    expect(start.state).toBe('half-open');
    const first = admit(start);
    expect(first.admission).toBe('probe');
    expect(admit(first.circuit).admission).toBe('wait');
    expect(admit(first.circuit).circuit).toBe(first.circuit);
  });

  test('a probe that succeeds closes it, and the rest go', () => {
    const probing = admit(circuitForRun(openAtEnd)).circuit;
    const closed = recordAttempt(probing, ok, at(3600));
    expect(closed).toMatchObject({ state: 'closed', consecutiveFailures: 0, failingSince: null, lastSuccessAt: '2026-03-01T03:00:00Z', probeInFlight: false });
    expect(admit(closed).admission).toBe('attempt');
  });

  test('a probe that fails re-opens it at once, and the rest are deferred', () => {
    const probing = admit(circuitForRun(openAtEnd)).circuit;
    const reopened = recordAttempt(probing, refused, at(3600));
    expect(reopened).toMatchObject({
      state: 'open',
      consecutiveFailures: CIRCUIT_FAILURE_THRESHOLD + 1,
      openedAt: '2026-03-01T03:00:00Z',
      failingSince: '2026-03-01T02:00:00Z',
    });
    expect(admit(reopened).admission).toBe('defer');
  });

  test('a probe admitted but not sent lets the next delivery probe', () => {
    const probing = admit(circuitForRun(openAtEnd)).circuit;
    expect(admit(cancelAttempt(probing)).admission).toBe('probe');
    const closed = circuitForRun(undefined);
    expect(cancelAttempt(closed)).toBe(closed);
  });

  test('a run that ends with its probe still out stores half-open, and the next run probes again', () => {
    const probing = admit(circuitForRun(openAtEnd)).circuit;
    const stored = storedCircuit(probing);
    expect(stored).not.toHaveProperty('probeInFlight');
    expect(admit(circuitForRun(stored)).admission).toBe('probe');
  });

  test('a closed circuit stays closed, with its counts', () => {
    const stored = storedCircuit(fail(circuitForRun(undefined), 2));
    expect(circuitForRun(stored)).toMatchObject({ state: 'closed', consecutiveFailures: 2, probeInFlight: false });
  });
});

describe('storage and status', () => {
  test('the stored form survives JSON and is read back; anything else is refused', () => {
    const stored = storedCircuit(fail(circuitForRun(undefined), CIRCUIT_FAILURE_THRESHOLD));
    expect(parseStoredCircuit(JSON.parse(JSON.stringify(stored)))).toEqual(stored);
    expect(parseStoredCircuit(closedCircuit())).toEqual(closedCircuit());
    expect(parseStoredCircuit({ ...stored, state: 'ajar' })).toBeUndefined();
    expect(parseStoredCircuit({ ...stored, consecutiveFailures: -1 })).toBeUndefined();
    expect(parseStoredCircuit({ ...stored, probeInFlight: true })).toBeUndefined();
    expect(parseStoredCircuit('open')).toBeUndefined();
  });

  test('failingForMs: how long since the first failure of the current run of failures', () => {
    const failing = storedCircuit(fail(circuitForRun(undefined), 3));
    expect(failingForMs(failing, at(3600))).toBe(3600 * 1000);
    expect(failingForMs(storedCircuit(recordAttempt(circuitForRun(failing), ok, at(10))), at(3600))).toBe(0);
    expect(failingForMs(closedCircuit(), at(3600))).toBe(0);
  });
});
