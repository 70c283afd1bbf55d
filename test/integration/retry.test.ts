import fs from 'node:fs';
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { systemClock } from '../../src/clock.js';
import { processExpirations } from '../../src/commands/process-expirations.js';
import { deliver as deliverEvent, type DeliverOptions, type DeliveryPolicy } from '../../src/webhooks/deliver.js';
import { createTransport, type Transport } from '../../src/delivery/transport.js';
import { postOnce, RESPONSE_BODY_MS } from '../../src/webhooks/post.js';
import { ofetch } from 'ofetch';
import { closedPortUrl, startDroppingPort, startGarbageServer, startReceiver, type Receiver, type Reply } from '../helpers/receiver.js';
import { aLicense, forEachDialect } from '../helpers/workspace.js';

const now = new Date('2024-01-15T10:30:00Z');
const event = { eventId: 'evt-retry', eventType: 'license.expired', body: '{"event_type":"license.expired"}' };
const FAST = { secret: 'retry-secret', timeoutMs: 1000, retryDelaysMs: [10, 20, 40] };

let receiver: Receiver | undefined;
afterEach(async () => {
  await receiver?.close();
  receiver = undefined;
});

// Every case runs on both HTTP clients: ofetch over the global fetch, and ofetch over undici's request (what runs use).
describe.each(['global fetch', 'undici transport'])('retry policy (%s)', (client) => {
  let transport: Transport | undefined;
  beforeEach(() => {
    transport = client === 'undici transport' ? createTransport() : undefined;
  });
  afterEach(async () => {
    await transport?.close();
  });
  const deliver = (e: typeof event, policy: DeliveryPolicy, options: Omit<DeliverOptions, 'fetch'>) =>
    deliverEvent(e, policy, { ...options, fetch: transport?.fetch ?? ofetch });
  async function deliverAgainst(replies: Reply[], policy: Partial<typeof FAST> = {}) {
    receiver = await startReceiver((_request, index) => replies[Math.min(index, replies.length - 1)]!);
    return deliver(event, { url: receiver.url, ...FAST, ...policy }, { clock: systemClock });
  }

  test('500 four times: 4 attempts, then abandoned with the last status', async () => {
    const result = await deliverAgainst([500]);
    expect(result.status).toBe('abandoned');
    expect(result.attempts.map((attempt) => attempt.statusCode)).toEqual([500, 500, 500, 500]);
    expect(result.lastError).toBe('HTTP 500: status 500');
    expect(receiver!.requests).toHaveLength(4);
    // every retry carries the same id and the same bytes
    expect(new Set(receiver!.requests.map((request) => request.headers['x-webhook-id']))).toEqual(new Set(['evt-retry']));
    expect(new Set(receiver!.requests.map((request) => request.body.toString()))).toEqual(new Set([event.body]));
  });

  test('500, 500, 200: delivered on the 3rd attempt', async () => {
    const result = await deliverAgainst([500, 500, 200]);
    expect(result.status).toBe('delivered');
    expect(result.attempts.map((attempt) => attempt.statusCode)).toEqual([500, 500, 200]);
  });

  test('404: one attempt, abandoned at once', async () => {
    const result = await deliverAgainst([404]);
    expect(result).toMatchObject({ status: 'abandoned', lastStatusCode: 404 });
    expect(receiver!.requests).toHaveLength(1);
  });

  test('301 with a Location: one attempt, the redirect is not followed', async () => {
    const result = await deliverAgainst([{ status: 301, headers: { location: '/elsewhere' } }]);
    expect(result).toMatchObject({ status: 'abandoned', lastStatusCode: 301 });
    expect(result.lastError).toContain('redirect to /elsewhere');
    expect(receiver!.requests.map((request) => request.url)).toEqual(['/webhook']);
  });

  test('a receiver that never answers: each attempt times out and is retried', async () => {
    const result = await deliverAgainst(['hang'], { timeoutMs: 200 });
    expect(result.status).toBe('abandoned');
    expect(result.attempts).toHaveLength(4);
    for (const attempt of result.attempts) {
      expect(attempt).toMatchObject({ statusCode: null, error: 'timed out after 200 ms' });
      expect(attempt.durationMs).toBeGreaterThanOrEqual(190);
    }
    expect(receiver!.requests).toHaveLength(4); // the retries reached the server, not a stale aborted signal
  });

  test('a host that drops connection attempts: each attempt ends at its own timeout, not the connect timeout (10 s)', async () => {
    const dropping = await startDroppingPort();
    try {
      const started = Date.now();
      const result = await deliver(event, { url: dropping.url, ...FAST, timeoutMs: 300, retryDelaysMs: [10] }, { clock: systemClock });
      expect(result.status).toBe('abandoned');
      expect(result.attempts).toHaveLength(2);
      for (const attempt of result.attempts) {
        expect(attempt).toMatchObject({ statusCode: null, error: 'timed out after 300 ms' });
        expect(attempt.durationMs).toBeLessThan(2000);
      }
      expect(Date.now() - started).toBeLessThan(4000);
      // Closing drops what undici still holds of those attempts instead of waiting out its connect timeout.
      const closing = Date.now();
      await transport?.close();
      transport = undefined;
      expect(Date.now() - closing).toBeLessThan(1000);
    } finally {
      await dropping.close();
    }
  });

  test('hang then 200: the timeout is retried and delivered', async () => {
    const result = await deliverAgainst(['hang', 200], { timeoutMs: 200 });
    expect(result.status).toBe('delivered');
    expect(result.attempts.map((attempt) => attempt.statusCode)).toEqual([null, 200]);
  });

  test('connection refused: retried, then abandoned with the reason', async () => {
    const url = await closedPortUrl();
    const result = await deliver(event, { url, ...FAST }, { clock: systemClock });
    expect(result.status).toBe('abandoned');
    expect(result.attempts).toHaveLength(4);
    expect(result.lastError).toMatch(/ECONNREFUSED/);
  });

  test('a dropped connection is retried', async () => {
    const result = await deliverAgainst(['drop', 'drop', 204]);
    expect(result.status).toBe('delivered');
    expect(result.attempts[0]!.error).toMatch(/socket|closed|reset|terminated/i);
  });

  test('a 200 then a stalled body: the status stands, and the body costs its own short deadline, not a hang', async () => {
    const started = Date.now();
    const result = await deliverAgainst(['stall-body'], { timeoutMs: 300, retryDelaysMs: [] });
    expect(result).toMatchObject({ status: 'delivered', lastStatusCode: 200, lastError: null });
    expect(Date.now() - started).toBeLessThan(RESPONSE_BODY_MS + 1000);
  });

  test('a multi-megabyte error body is cut to a short prefix', async () => {
    const result = await deliverAgainst(['huge-body'], { retryDelaysMs: [] });
    expect(result.lastStatusCode).toBe(500);
    expect(result.attempts[0]!.responsePrefix.length).toBeLessThanOrEqual(2048);
    expect(result.lastError!.length).toBeLessThan(300);
  });

  test('malformed HTTP and a non-HTTP port end as clear errors', async () => {
    const malformed = await deliverAgainst(['malformed'], { retryDelaysMs: [] });
    expect(malformed).toMatchObject({ status: 'abandoned', lastStatusCode: null });
    expect(malformed.lastError).toMatch(/^Response does not match the HTTP\/1\.1 protocol \(Invalid (response )?status/);
    const garbage = await startGarbageServer();
    try {
      const result = await deliver(event, { url: garbage.url, ...FAST, retryDelaysMs: [] }, { clock: systemClock });
      expect(result).toMatchObject({ status: 'abandoned', lastStatusCode: null });
      expect(result.lastError).toMatch(/^Response does not match the HTTP\/1\.1 protocol \(Expected HTTP\//);
    } finally {
      await garbage.close();
    }
  });

  // The waits are deliver()'s own, whichever client sends: their 7 s are spent once, on the client runs use.
  if (client === 'undici transport') {
    test('the real default schedule: retries 1 s, 2 s and 4 s apart', async () => {
      const result = await deliverAgainst([503], { retryDelaysMs: [1000, 2000, 4000] });
      expect(result.attempts).toHaveLength(4);
      const times = receiver!.requests.map((request) => request.at);
      const gaps = times.slice(1).map((time, index) => time - times[index]!);
      [1000, 2000, 4000].forEach((expected, index) => {
        expect(gaps[index]).toBeGreaterThanOrEqual(expected - 5);
        expect(gaps[index]).toBeLessThan(expected + 500);
      });
    }, 20_000);
  }
});

forEachDialect('the delivery log', ({ workspace }) => {
  test('an abandoned delivery keeps attempts, last status and error, and every attempt row', async () => {
    receiver = await startReceiver((_request, index) => (index < 4 ? 502 : 200));
    const ws = workspace({ webhooks: { enabled: true, url: receiver.url } });
    await ws.seed([aLicense({ expires_at: '2024-01-14T00:00:00Z' })]);
    const result = await ws.run((context) => processExpirations(context, { now }));
    expect(result).toMatchObject({ delivered: 0, abandoned: 1 });
    const { delivery, attempts } = await ws.run(async (context) => ({
      delivery: await context.db.selectFrom('webhook_deliveries').selectAll().executeTakeFirstOrThrow(),
      attempts: await context.db.selectFrom('webhook_attempts').selectAll().orderBy('attempt').execute(),
    }));
    expect(delivery).toMatchObject({ status: 'abandoned', attempts: 4, last_status_code: 502, last_error: 'HTTP 502: status 502', claimed_by: null });
    expect(delivery.completed_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    expect(attempts.map((attempt) => [attempt.attempt, attempt.status_code])).toEqual([
      [1, 502],
      [2, 502],
      [3, 502],
      [4, 502],
    ]);
    expect(attempts.every((attempt) => attempt.duration_ms >= 0 && attempt.error === 'HTTP 502: status 502')).toBe(true);
  });

  test('concurrency: a slow event does not hold up the others', async () => {
    receiver = await startReceiver((request) => (request.body.toString().includes('SLOW') ? { delayMs: 1500, status: 200 } : 200));
    const ws = workspace({ webhooks: { enabled: true, url: receiver.url, concurrency: 4 } });
    await ws.seed([
      aLicense({ license_code: 'SLOW', expires_at: '2024-01-14T00:00:00Z' }),
      ...Array.from({ length: 20 }, () => aLicense({ expires_at: '2024-01-14T00:00:00Z' })),
    ]);
    const result = await ws.run((context) => processExpirations(context, { now }));
    expect(result.delivered).toBe(21);
    const fastOnes = receiver.requests.filter((request) => !request.body.toString().includes('SLOW'));
    const slow = receiver.requests.find((request) => request.body.toString().includes('SLOW'))!;
    // Every other event reached the receiver while the slow one was still unanswered (counted from the slow request,
    // not from before the context opened, so a loaded machine's start-up does not count against the claim).
    expect(Math.max(...fastOnes.map((request) => request.at))).toBeLessThan(slow.at + 1500);
  });

  test('an event waiting for its retry holds no concurrency slot', async () => {
    receiver = await startReceiver((request) => (request.body.toString().includes('FLAKY') ? 500 : 200));
    const ws = workspace({ webhooks: { enabled: true, url: receiver.url, concurrency: 1, retryDelaysMs: [400, 400, 400] } });
    await ws.seed([
      aLicense({ license_code: 'FLAKY', expires_at: '2024-01-14T00:00:00Z' }),
      ...Array.from({ length: 5 }, () => aLicense({ expires_at: '2024-01-14T00:00:00Z' })),
    ]);
    const result = await ws.run((context) => processExpirations(context, { now }));
    expect(result).toMatchObject({ delivered: 5, abandoned: 1 });
    const flaky = receiver.requests.filter((request) => request.body.toString().includes('FLAKY'));
    const others = receiver.requests.filter((request) => !request.body.toString().includes('FLAKY'));
    expect(flaky).toHaveLength(4);
    // With one slot, the other five went out while FLAKY waited for its first retry, not after its last.
    expect(Math.max(...others.map((request) => request.at))).toBeLessThan(flaky[1]!.at);
  });
});

// The kernel's table of sockets is Linux's; elsewhere the count cannot be read, and the case says so.
const kernelSockets = fs.existsSync('/proc/net/tcp');
(kernelSockets ? describe : describe.skip)(
  `the run's transport against a host that drops connection attempts${kernelSockets ? '' : ' (no /proc/net/tcp)'}`,
  () => {
    /** Sockets of this machine still connecting (SYN sent, no answer) to a port on 127.0.0.1, from the kernel's table. */
    const connectingTo = (url: string) => {
      const port = Number(new URL(url).port).toString(16).toUpperCase().padStart(4, '0');
      return fs
        .readFileSync('/proc/net/tcp', 'utf8')
        .split('\n')
        .slice(1)
        .map((line) => line.trim().split(/\s+/))
        .filter((fields) => fields[2] === `0100007F:${port}` && fields[3] === '02').length;
    };

    // An attempt given up on while connecting frees its slot at once; its socket must not outlive the run's
    // attempt timeout (the connect timeout a run gives its transport), or a dropping host piles sockets past the concurrency.
    test.each([
      ['the run’s attempt timeout (300 ms)', 0, 300],
      ['undici’s default (10 s), as before', 8, undefined],
    ])('connect timeout %s: %i of 8 timed-out attempts still connecting after a second', async (_, left, connectTimeoutMs) => {
      const dropping = await startDroppingPort();
      const transport = createTransport(connectTimeoutMs === undefined ? {} : { connectTimeoutMs });
      try {
        const before = connectingTo(dropping.url);
        const outcomes = await Promise.all(
          Array.from({ length: 8 }, () => postOnce(dropping.url, '{}', { 'Content-Type': 'application/json' }, { timeoutMs: 300, fetch: transport.fetch })),
        );
        expect(outcomes.map((outcome) => outcome.transportError)).toEqual(Array.from({ length: 8 }, () => 'timed out after 300 ms'));
        // undici checks connect timeouts on its own coarse timer (about a second here): wait up to 3 s for them to end,
        // and at least a second, which undici's default of 10 s outlasts.
        const waitedFrom = Date.now();
        let still = connectingTo(dropping.url) - before;
        while (Date.now() - waitedFrom < 3000 && (still > left || Date.now() - waitedFrom < 1000)) {
          await new Promise((resolve) => setTimeout(resolve, 50));
          still = connectingTo(dropping.url) - before;
        }
        expect(still).toBe(left);
      } finally {
        await transport.close();
        await dropping.close();
      }
    });
  },
);
