import fs from 'node:fs';
import { expect, test } from '@jest/globals';
import type { Clock } from '../../src/clock.js';
import { processExpirations, type ProcessExpirationsRun } from '../../src/commands/process-expirations.js';
import { status } from '../../src/commands/status.js';
import { deferEndpoint } from '../../src/storage/deliveries/endpoint-holds.repository.js';
import { formatUtc } from '../../src/time.js';
import type { Receiver, ReceivedRequest } from '../helpers/receiver.js';
import { aLicense, forEachDialect, proxyFor, receiverFor, workspace as sqliteWorkspace, type Workspace } from '../helpers/workspace.js';

// Retries across runs (issue 19): deferred deliveries, Retry-After and 429, 410 Gone, a circuit per endpoint.
const T0 = new Date('2025-01-23T10:00:00Z');
const at = (ms: number) => new Date(T0.getTime() + ms);
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** Licenses that expired the day before T0: one license.expired each at T0. */
async function seeded(ws: Workspace, count: number): Promise<void> {
  fs.chmodSync(ws.configFile, 0o600);
  await ws.ready();
  await ws.seed(Array.from({ length: count }, (_, index) => aLicense({ license_code: `EXP-${index}`, expires_at: '2025-01-22T10:00:00Z' })));
}

/** One process-expirations run with the rules at T0 and the engine's clock at `when` (the cross-run backoff reads it). */
function runAt(ws: Workspace, when: Date): Promise<ProcessExpirationsRun> {
  const clock: Clock = { now: () => when };
  return ws.run((context) => processExpirations(context, { now: T0, clock }));
}

const ok = (request: ReceivedRequest) => String(request.headers['x-webhook-id']);
/** Event ids the receiver acknowledged (2xx), each as often as it was. */
function acknowledged(target: Receiver, answered: (index: number) => boolean): string[] {
  return target.requests.filter((_request, index) => answered(index)).map(ok);
}

interface Row {
  id: number;
  status: string;
  next_attempt_at: string | null;
  status_reason: string | null;
  attempts: number;
  endpoint: string;
}
const rowsOf = (ws: Workspace, endpoint = 'default') =>
  ws.rows<Row>(`select id, status, next_attempt_at, status_reason, attempts, endpoint from webhook_deliveries where endpoint = '${endpoint}' order by id`);

forEachDialect('retries across runs', ({ workspace }) => {
  test('a receiver down for the first run: deferred (none abandoned), not sent before its time, then delivered once when due', async () => {
    let down = true;
    const target = await receiverFor(() => (down ? 503 : 200));
    const ws = workspace({ webhooks: { enabled: true, url: target.url, retryWindowHours: 72 } });
    await seeded(ws, 3);

    const first = await runAt(ws, T0);
    expect(first).toMatchObject({ recorded: 3, delivered: 0, abandoned: 0, deferred: 3 });
    expect(first.waiting).toEqual([expect.objectContaining({ endpoint: 'default', deferred: 3, parked: 0 })]);
    const deferred = await rowsOf(ws);
    for (const row of deferred) {
      expect(row.status).toBe('deferred');
      // The first backoff step, 5 min, plus at most 10 % jitter.
      expect(row.next_attempt_at! >= '2025-01-23T10:05:00Z' && row.next_attempt_at! <= '2025-01-23T10:05:30Z').toBe(true);
      expect(row.status_reason).toMatch(/HTTP 503|circuit open/);
    }
    // The circuit opened at 5 consecutive failures: the rest of the schedules were not spent.
    // The fifth failure opens it; at most the two other deliveries' attempts were already on the wire then.
    expect(target.requests.length).toBeGreaterThanOrEqual(5);
    expect(target.requests.length).toBeLessThanOrEqual(7);
    expect(first.circuits.default).toMatchObject({ state: 'open' });
    expect(first.circuits.default!.consecutiveFailures).toBeGreaterThanOrEqual(5);

    // Not due yet: nothing is sent.
    const sentBefore = target.requests.length;
    expect(await runAt(ws, at(2 * MINUTE))).toMatchObject({ delivered: 0, abandoned: 0, deferred: 0 });
    expect(target.requests.length).toBe(sentBefore);

    // Back, and due: one probe, then the rest; each event acknowledged exactly once.
    down = false;
    const back = await runAt(ws, at(10 * MINUTE));
    expect(back).toMatchObject({ delivered: 3, abandoned: 0, deferred: 0, waiting: [] });
    const ids = acknowledged(target, (index) => index >= sentBefore);
    expect(ids).toHaveLength(3);
    expect(new Set(ids).size).toBe(3);
    expect((await rowsOf(ws)).map((row) => [row.status, row.next_attempt_at, row.status_reason])).toEqual(Array(3).fill(['delivered', null, null]));
    expect(back.circuits.default).toMatchObject({ state: 'closed', consecutiveFailures: 0 });
  }, 60_000);

  test('429 with Retry-After: 2 defers that delivery to 2 s later and slows this run to the endpoint; a final 4xx is abandoned at once', async () => {
    const target = await receiverFor((request, index) => {
      if (index === 0) return { status: 429, headers: { 'retry-after': '2' } };
      return request.body.toString('utf8').includes('EXP-2') ? 400 : 200;
    });
    const ws = workspace({ webhooks: { enabled: true, url: target.url, retryWindowHours: 72, concurrency: 1 } });
    await seeded(ws, 3);
    const first = await runAt(ws, T0);
    expect(first).toMatchObject({ delivered: 1, abandoned: 1, deferred: 1 });
    const rows = await rowsOf(ws);
    const throttled = rows.find((row) => row.status === 'deferred')!;
    expect(throttled).toMatchObject({ next_attempt_at: '2025-01-23T10:00:02Z', status_reason: 'HTTP 429, Retry-After 2' });
    expect(rows.find((row) => row.status === 'abandoned')!.status_reason).toMatch(/^HTTP 400.*a final answer/);
    // After the 429 nothing went to the endpoint for Retry-After (without the pause the next would have gone at once).
    expect(target.requests[1]!.at - target.requests[0]!.at).toBeGreaterThanOrEqual(1900);

    const second = await runAt(ws, at(3000));
    expect(second).toMatchObject({ delivered: 1, abandoned: 0, deferred: 0 });
    expect(target.requests).toHaveLength(4);
  }, 60_000);

  test('a receiver that keeps answering 429 with Retry-After: 0 or 1: each delivery is tried at most twice in the run, which ends by itself', async () => {
    // On a clock that moves, a short Retry-After makes the run's own deferrals due while it works: it claims each
    // again once; deferred a second time, it waits the first backoff step. Without that bound this run never ended.
    const target = await receiverFor((_request, index) => ({ status: 429, headers: { 'retry-after': index % 2 === 0 ? '0' : '1' } }));
    const ws = workspace({ webhooks: { enabled: true, url: target.url, retryWindowHours: 72, concurrency: 1 } });
    await seeded(ws, 3);
    const stop = new AbortController();
    const guard = setTimeout(() => stop.abort(), 20_000);
    const started = Date.now();
    const clock: Clock = { now: () => new Date(T0.getTime() + Date.now() - started) };
    const result = await ws.run((context) => processExpirations(context, { now: T0, clock, stop: stop.signal }));
    clearTimeout(guard);
    expect(stop.signal.aborted).toBe(false);
    const perEvent = new Map<string, number>();
    for (const request of target.requests) perEvent.set(ok(request), (perEvent.get(ok(request)) ?? 0) + 1);
    expect(perEvent.size).toBe(3);
    for (const count of perEvent.values()) expect(count).toBeLessThanOrEqual(2);
    // Counted once each, by how the run left them.
    expect(result).toMatchObject({ delivered: 0, abandoned: 0, deferred: 3 });
    expect(result.deliveries.map((outcome) => outcome.status)).toEqual(['deferred', 'deferred', 'deferred']);
    // Throttled: a second at the least between attempts to the endpoint, even after Retry-After: 0.
    for (let index = 1; index < target.requests.length; index += 1)
      expect(target.requests[index]!.at - target.requests[index - 1]!.at).toBeGreaterThanOrEqual(900);
    const rows = await ws.rows<{ event_id: string; status: string; next_attempt_at: string }>(
      'select event_id, status, next_attempt_at from webhook_deliveries order by id',
    );
    expect(rows.map((row) => row.status)).toEqual(['deferred', 'deferred', 'deferred']);
    const endedAt = T0.getTime() + Date.now() - started;
    // Tried twice: not due before the first backoff step (5 min); tried once: at least a second on.
    for (const row of rows) {
      const twice = perEvent.get(row.event_id) === 2;
      expect(Date.parse(row.next_attempt_at!)).toBeGreaterThanOrEqual(twice ? endedAt + 4 * MINUTE : T0.getTime() + 1000);
    }
    const counted = await ws.rows<{ deferred: number }>('select deferred from runs');
    expect(counted.map((row) => Number(row.deferred))).toEqual([3]);
  }, 60_000);

  test('an endpoint taken out of the config file while its deliveries wait: parked as the operator did it, no exit 4; put back, it sends them once', async () => {
    const main = await receiverFor();
    let crmUp = false;
    const crm = await receiverFor(() => (crmUp ? 200 : 503));
    const base = { enabled: true, url: main.url, retryWindowHours: 72 };
    const withCrm = { webhooks: { ...base, endpoints: [{ name: 'crm', url: crm.url }] } };
    const ws = workspace(withCrm);
    await seeded(ws, 1);
    expect(await runAt(ws, T0)).toMatchObject({ delivered: 1, deferred: 1 });
    ws.configure({ webhooks: base });
    // The run that parks them says so once (a warning: cron mails it); the next finds them parked and says nothing.
    const warned: string[] = [];
    const laterAt = at(10 * 24 * HOUR);
    const later = await ws.run((context) => processExpirations(context, { now: T0, clock: { now: () => laterAt }, onWarning: (text) => warned.push(text) }));
    expect(later.outcome.exitCode).toBe(0);
    expect(later.waiting).toEqual([]);
    expect(warned).toEqual([
      expect.stringMatching(/^1 delivery to crm parked: the endpoint is no longer defined \(taken out of the config file, or removed\)/),
    ]);
    const quiet: string[] = [];
    await ws.run((context) => processExpirations(context, { now: T0, clock: { now: () => laterAt }, onWarning: (text) => quiet.push(text) }));
    expect(quiet).toEqual([]);
    expect(await rowsOf(ws, 'crm')).toEqual([
      expect.objectContaining({ status: 'parked', next_attempt_at: null, status_reason: expect.stringMatching(/^endpoint no longer defined/) }),
    ]);
    const health = await ws.run((context) => status(context, { now: at(10 * 24 * HOUR), clock: { now: () => at(10 * 24 * HOUR) } }));
    expect(health.health.exitCode).toBe(0);
    const crmRequests = crm.requests.length;
    crmUp = true;
    ws.configure(withCrm);
    expect(await runAt(ws, at(10 * 24 * HOUR + MINUTE))).toMatchObject({ delivered: 1 });
    expect(crm.requests.length).toBe(crmRequests + 1);
    expect((await rowsOf(ws, 'crm')).map((row) => row.status)).toEqual(['delivered']);
  }, 60_000);

  test('410 Gone disables the endpoint (a config-file one) and parks its deliveries; the others go on; enable sends them', async () => {
    let gone = true;
    const main = await receiverFor();
    const crm = await receiverFor(() => (gone ? 410 : 200));
    const ws = workspace({ webhooks: { enabled: true, url: main.url, retryWindowHours: 72, endpoints: [{ name: 'crm', url: crm.url }] } });
    await seeded(ws, 3);
    const first = await runAt(ws, T0);
    expect(first).toMatchObject({ delivered: 3, abandoned: 0, gone: [{ endpoint: 'crm', reason: expect.stringMatching(/410 Gone/) }] });
    expect(first.parked).toBe(3);
    expect(crm.requests.length).toBeLessThanOrEqual(3);
    expect((await rowsOf(ws, 'crm')).map((row) => row.status)).toEqual(['parked', 'parked', 'parked']);
    expect(await ws.rows('select endpoint, disabled_reason from endpoint_states where disabled_at is not null')).toEqual([
      { endpoint: 'crm', disabled_reason: expect.stringMatching(/410 Gone/) },
    ]);

    // Disabled until enabled: a later run sends it nothing, and what was recorded for it since is parked too.
    await ws.seed([aLicense({ license_code: 'LATE', expires_at: '2025-01-22T12:00:00Z' })]);
    const sentToCrm = crm.requests.length;
    const second = await runAt(ws, at(HOUR));
    expect(second).toMatchObject({ delivered: 1, parked: 1 });
    expect(crm.requests.length).toBe(sentToCrm);
    expect(second.waiting).toEqual([expect.objectContaining({ endpoint: 'crm', parked: 4 })]);

    gone = false;
    const enabled = await ws.cli(['endpoints', 'enable', 'crm']);
    expect(enabled.code).toBe(0);
    expect(enabled.stdout).toMatch(/4 parked deliveries go out with the next process-expirations/);
    const third = await runAt(ws, at(2 * HOUR));
    expect(third).toMatchObject({ delivered: 4, parked: 0, waiting: [] });
    expect(new Set(crm.requests.slice(sentToCrm).map(ok)).size).toBe(4);
  }, 60_000);

  test('an endpoint a 410 disabled, taken out of the config file and put back: its deliveries wait for endpoints enable again, and say so', async () => {
    const main = await receiverFor();
    const crm = await receiverFor(() => 410);
    const endpoints = [{ name: 'crm', url: crm.url }];
    const base = { enabled: true, url: main.url, retryWindowHours: 72 };
    const ws = workspace({ webhooks: { ...base, endpoints } });
    await seeded(ws, 1);
    expect((await runAt(ws, T0)).outcome.exitCode).toBe(4);
    ws.configure({ webhooks: base });
    const out = await runAt(ws, at(MINUTE));
    expect(out.outcome.exitCode).toBe(0);
    expect((await rowsOf(ws, 'crm')).map((row) => row.status_reason)).toEqual([expect.stringMatching(/^endpoint no longer defined/)]);
    ws.configure({ webhooks: { ...base, endpoints } });
    const back = await runAt(ws, at(2 * MINUTE));
    expect(back.outcome.exitCode).toBe(4);
    expect(crm.requests).toHaveLength(1);
    expect((await rowsOf(ws, 'crm')).map((row) => [row.status, row.status_reason])).toEqual([['parked', expect.stringMatching(/410 Gone/)]]);
  }, 60_000);

  test('a 410 after this run deferred another delivery of the endpoint: both parked, each counted once, as parked', async () => {
    const target = await receiverFor((_request, index) => (index === 0 ? 503 : 410));
    const ws = workspace({ webhooks: { enabled: true, url: target.url, retryWindowHours: 72, concurrency: 1, retryDelaysMs: [] } });
    await seeded(ws, 2);
    const run = await runAt(ws, T0);
    expect((await rowsOf(ws)).map((row) => row.status)).toEqual(['parked', 'parked']);
    expect(run).toMatchObject({ deferred: 0, parked: 2 });
    expect(run.deliveries.map((outcome) => outcome.status)).toEqual(['parked', 'parked']);
    const [counted] = await ws.rows<{ deferred: number; parked: number }>('select deferred, parked from runs');
    expect([Number(counted!.deferred), Number(counted!.parked)]).toEqual([0, 2]);
  }, 60_000);

  test('a short Retry-After deferral comes due, then a long Retry-After closes the endpoint: each delivery counted once', async () => {
    const target = await receiverFor((_request, index) => ({ status: 429, headers: { 'retry-after': index === 0 ? '0' : '30' } }));
    const ws = workspace({ webhooks: { enabled: true, url: target.url, retryWindowHours: 72, concurrency: 1, retryDelaysMs: [] } });
    await seeded(ws, 2);
    const started = Date.now();
    const clock: Clock = { now: () => new Date(T0.getTime() + Date.now() - started) };
    const run = await ws.run((context) => processExpirations(context, { now: T0, clock }));
    expect((await rowsOf(ws)).map((row) => row.status)).toEqual(['deferred', 'deferred']);
    expect(run.deferred).toBe(2);
    const [counted] = await ws.rows<{ deferred: number }>('select deferred from runs');
    expect(Number(counted!.deferred)).toBe(2);
  }, 60_000);

  test("a Retry-After beyond the retry window: what waits is deferred to its own window's end at the latest, never past it (more than one claim window)", async () => {
    let answer: 'down' | 'throttled' = 'down';
    const target = await receiverFor(() => (answer === 'down' ? 503 : { status: 429, headers: { 'retry-after': String(5 * 24 * 3600) } }));
    const ws = workspace({ webhooks: { enabled: true, url: target.url, retryWindowHours: 72, retryDelaysMs: [] } });
    await seeded(ws, 150);
    // Recorded at T0, deferred by the open circuit.
    expect(await runAt(ws, T0)).toMatchObject({ recorded: 150, delivered: 0, abandoned: 0 });
    // 150 more recorded an hour later; the receiver now asks for 5 days, longer than either group's window.
    await ws.seed(Array.from({ length: 150 }, (_, index) => aLicense({ license_code: `LATER-${index}`, expires_at: '2025-01-22T11:00:00Z' })));
    answer = 'throttled';
    const laterAt = at(HOUR);
    const later = await ws.run((context) => processExpirations(context, { now: laterAt, clock: { now: () => laterAt } }));
    // Each delivery counted once: those the run held and those it deferred in one statement.
    expect(later).toMatchObject({ delivered: 0, abandoned: 0, deferred: 300 });
    const rows = await ws.rows<{ status: string; created_at: string; next_attempt_at: string | null; status_reason: string | null }>(
      "select status, created_at, next_attempt_at, status_reason from webhook_deliveries where endpoint = 'default' order by id",
    );
    expect(rows).toHaveLength(300);
    const byGroup = new Map<string, Set<string>>();
    for (const row of rows) {
      expect(row.status).toBe('deferred');
      const windowEnd = new Date(Date.parse(row.created_at) + 72 * HOUR).toISOString().replace('.000Z', 'Z');
      // Each at its own window's end: one last attempt there, never after it (5 days would be past it).
      expect([row.created_at, row.next_attempt_at]).toEqual([row.created_at, windowEnd]);
      expect(row.status_reason).toMatch(/\(the last attempt: its retry window ends then\)$/);
      byGroup.set(row.created_at, (byGroup.get(row.created_at) ?? new Set()).add(row.next_attempt_at!));
    }
    expect([...byGroup.keys()].sort()).toEqual(['2025-01-23T10:00:00Z', '2025-01-23T11:00:00Z']);
  }, 60_000);

  test('what waits when the endpoint closes: a window that ends on that second is abandoned, one that ends a second later goes then, each counted once', async () => {
    const target = await receiverFor(() => 503);
    const ws = workspace({ webhooks: { enabled: true, url: target.url, retryWindowHours: 72, retryDelaysMs: [] } });
    await seeded(ws, 3);
    await runAt(ws, T0);
    const change = (windowStart: Date) => ({
      dueAt: '2030-01-01T00:00:00Z',
      nextAttemptAt: formatUtc(at(80 * HOUR)),
      reason: 'endpoint throttled',
      windowStart: formatUtc(windowStart),
      windowHours: 72,
      lastReason: ' (the last attempt)',
      completedAt: formatUtc(at(72 * HOUR)),
      abandonReason: 'window ended',
    });
    // Now is a second before the window's end (T0 + 72 h): capped there, once.
    expect(await ws.run((context) => deferEndpoint(context.db, 'default', change(at(-1000))))).toEqual({ deferred: 3, abandoned: 0 });
    expect((await rowsOf(ws)).map((row) => [row.status, row.next_attempt_at, row.status_reason])).toEqual(
      Array.from({ length: 3 }, () => ['deferred', '2025-01-26T10:00:00Z', 'endpoint throttled (the last attempt)']),
    );
    // Now is the window's end: nothing is left of it.
    expect(await ws.run((context) => deferEndpoint(context.db, 'default', change(T0)))).toEqual({ deferred: 0, abandoned: 3 });
    expect((await rowsOf(ws)).map((row) => row.status)).toEqual(['abandoned', 'abandoned', 'abandoned']);
  }, 60_000);

  test('a probe deferred by a second (503, Retry-After: 0) to an endpoint the run closed is not "locked" when it comes due before the run ends', async () => {
    const main = await receiverFor(() => ({ status: 503, headers: { 'retry-after': '0' } }));
    // The other endpoint keeps the run busy past that second: each attempt waits out the timeout.
    const slow = await receiverFor(() => 'hang');
    const ws = workspace({
      webhooks: { enabled: true, url: main.url, retryWindowHours: 72, retryDelaysMs: [], timeoutMs: 1500, endpoints: [{ name: 'slow', url: slow.url }] },
    });
    await seeded(ws, 8);
    const first = await runAt(ws, T0);
    expect(first).toMatchObject({ delivered: 0, abandoned: 0, locked: 0 });
    // A day on, each circuit lets one probe through: both fail, and the run ends with nothing of theirs claimable.
    const started = Date.now();
    const dayOn = T0.getTime() + 24 * HOUR;
    const clock: Clock = { now: () => new Date(dayOn + Date.now() - started) };
    const later = await ws.run((context) => processExpirations(context, { now: T0, clock }));
    expect(later.locked).toBe(0);
    expect(later.outcome.exitCode).toBe(4);
  }, 60_000);

  test('an endpoint a 410 disabled stays disabled when retries across runs are turned off since: what it gets is parked, not sent', async () => {
    const main = await receiverFor();
    const crm = await receiverFor(() => 410);
    const endpoints = [{ name: 'crm', url: crm.url }];
    const ws = workspace({ webhooks: { enabled: true, url: main.url, retryWindowHours: 72, endpoints } });
    await seeded(ws, 1);
    expect(await runAt(ws, T0)).toMatchObject({ delivered: 1, parked: 1 });
    expect(crm.requests).toHaveLength(1);
    ws.configure({ webhooks: { enabled: true, url: main.url, retryWindowHours: 0, endpoints } });
    await ws.seed([aLicense({ license_code: 'LATER', expires_at: '2025-01-22T11:00:00Z' })]);
    const later = await runAt(ws, at(MINUTE));
    expect(later).toMatchObject({ delivered: 1, parked: 1, abandoned: 0 });
    expect([main.requests.length, crm.requests.length]).toEqual([2, 1]);
    expect((await rowsOf(ws, 'crm')).map((row) => [row.status, row.status_reason])).toEqual([
      ['parked', expect.stringMatching(/^endpoint gone: its receiver answered 410 Gone/)],
      ['parked', expect.stringMatching(/^endpoint gone: its receiver answered 410 Gone/)],
    ]);
  }, 60_000);

  test('a circuit per endpoint: a receiver that refuses connections costs a few attempts, its deliveries are deferred; the other endpoint goes on', async () => {
    const behind = await receiverFor();
    const proxy = await proxyFor(behind);
    await proxy.refuse();
    const healthy = await receiverFor();
    const ws = workspace({
      webhooks: { enabled: true, url: proxy.via(behind.url), retryWindowHours: 72, concurrency: 4, endpoints: [{ name: 'crm', url: healthy.url }] },
    });
    await seeded(ws, 40);
    const first = await runAt(ws, T0);
    expect(first).toMatchObject({ delivered: 40, abandoned: 0, deferred: 40 });
    expect(first.circuits.default).toMatchObject({ state: 'open', lastError: expect.stringMatching(/ECONNREFUSED/) });
    const attempts = await ws.rows<{ n: number }>(
      "select count(*) as n from webhook_attempts a join webhook_deliveries d on d.id = a.delivery_id where d.endpoint = 'default'",
    );
    // The threshold (5) plus what was in flight when it opened (at most the concurrency), not 40 x 4.
    expect(Number(attempts[0]!.n)).toBeLessThanOrEqual(5 + 4 * 4);
    expect(healthy.requests).toHaveLength(40);

    // Still refusing at the next due run: one probe, and everything deferred again at once.
    const second = await runAt(ws, at(10 * MINUTE));
    expect(second).toMatchObject({ delivered: 0, abandoned: 0, deferred: 40 });
    const afterProbe = await ws.rows<{ n: number }>(
      "select count(*) as n from webhook_attempts a join webhook_deliveries d on d.id = a.delivery_id where d.endpoint = 'default'",
    );
    expect(Number(afterProbe[0]!.n)).toBe(Number(attempts[0]!.n) + 1);

    await proxy.accept();
    // Due by then: the circuit's deferrals at 10 min + 5, the failed probe on its own backoff at 10 min + 30.
    const third = await runAt(ws, at(45 * MINUTE));
    expect(third).toMatchObject({ delivered: 40, abandoned: 0, deferred: 0 });
    const ids = behind.requests.map(ok);
    expect(ids).toHaveLength(40);
    expect(new Set(ids).size).toBe(40);
  }, 90_000);

  test('past its retry window a deferred delivery is abandoned with the reason; retryWindowHours 0 abandons after the in-run schedule', async () => {
    const target = await receiverFor(() => 500);
    const ws = workspace({ webhooks: { enabled: true, url: target.url, retryWindowHours: 1 } });
    await seeded(ws, 1);
    expect(await runAt(ws, T0)).toMatchObject({ deferred: 1, abandoned: 0 });
    const late = await runAt(ws, at(HOUR + MINUTE));
    expect(late).toMatchObject({ deferred: 0, abandoned: 1 });
    expect((await rowsOf(ws))[0]!.status_reason).toMatch(/retry window ended/);

    const reference = workspace({ webhooks: { enabled: true, url: target.url, retryWindowHours: 0 } });
    await seeded(reference, 1);
    const from = target.requests.length;
    expect(await runAt(reference, T0)).toMatchObject({ deferred: 0, abandoned: 1, waiting: [] });
    expect(target.requests.length - from).toBe(4);
  }, 60_000);

  test("retryWindowHours set to 0 while deliveries are deferred: they are still sent once due (the reference's schedule), or abandoned, never left waiting", async () => {
    const target = await receiverFor(() => 503);
    const ws = workspace({ webhooks: { enabled: true, url: target.url, retryWindowHours: 72 } });
    await seeded(ws, 2);
    expect(await runAt(ws, T0)).toMatchObject({ deferred: 2, abandoned: 0 });
    ws.configure({ webhooks: { enabled: true, url: target.url, retryWindowHours: 0 } });
    // Not due yet: left as they are.
    expect(await runAt(ws, at(MINUTE))).toMatchObject({ delivered: 0, abandoned: 0, deferred: 0 });
    expect((await rowsOf(ws)).map((row) => row.status)).toEqual(['deferred', 'deferred']);
    // Due, the receiver back for one of them: one delivered, the other abandoned after the reference's four attempts.
    let answered = 0;
    const from = target.requests.length;
    const back = await receiverFor(() => (answered++ === 0 ? 200 : 503));
    ws.configure({ webhooks: { enabled: true, url: back.url, retryWindowHours: 0 } });
    expect(await runAt(ws, at(HOUR))).toMatchObject({ delivered: 1, abandoned: 1, deferred: 0 });
    expect(target.requests.length).toBe(from);
    expect(back.requests).toHaveLength(5);
    expect((await rowsOf(ws)).map((row) => row.status).sort()).toEqual(['abandoned', 'delivered']);
  }, 60_000);

  test('due deferred deliveries picked up by a run stopped half-way and then by two workers at once: each is sent once', async () => {
    let phase: 'down' | 'slow' = 'down';
    const stopFirst = new AbortController();
    let slowAnswers = 0;
    const target = await receiverFor(() => {
      if (phase === 'down') return 503;
      slowAnswers += 1;
      if (slowAnswers === 5) stopFirst.abort();
      return { delayMs: 20, status: 200 };
    });
    const ws = workspace({ webhooks: { enabled: true, url: target.url, retryWindowHours: 72, concurrency: 2 } });
    await seeded(ws, 20);
    expect(await runAt(ws, T0)).toMatchObject({ deferred: 20, abandoned: 0 });

    phase = 'slow';
    const from = target.requests.length;
    const clock: Clock = { now: () => at(10 * MINUTE) };
    const stopped = await ws.run((context) => processExpirations(context, { now: T0, clock, stop: stopFirst.signal }));
    expect(stopped.delivered).toBeGreaterThanOrEqual(4);
    expect(stopped.delivered).toBeLessThan(20);
    // What the stopped run had claimed and not sent is deferred again, and still due.
    expect(await ws.rows("select count(*) as n from webhook_deliveries where status in ('delivering', 'pending')")).toEqual([{ n: 0 }]);

    const [one, two] = await Promise.all([runAt(ws, at(11 * MINUTE)), runAt(ws, at(11 * MINUTE))]);
    expect(stopped.delivered + one.delivered + two.delivered).toBe(20);
    const ids = target.requests.slice(from).map(ok);
    expect(ids).toHaveLength(20);
    expect(new Set(ids).size).toBe(20);
    expect(await ws.rows('select status, count(*) as n from webhook_deliveries group by status')).toEqual([{ status: 'delivered', n: 20 }]);
  }, 90_000);
});

// SQLite: a trigger stands in for a write that fails (a full disk) once the circuit has opened.
test('a run that fails after the circuit opened still saves the circuit and counts what it deferred: the next run probes once', async () => {
  const target = await receiverFor(() => 503);
  // One attempt each in this run: each failure defers its delivery until the circuit opens (five in a row).
  const ws = sqliteWorkspace({ webhooks: { enabled: true, url: target.url, retryWindowHours: 72, concurrency: 1, retryDelaysMs: [] } });
  await seeded(ws, 8);
  await ws.rows(
    "create trigger fail_circuit_deferral before update on webhook_deliveries when new.status = 'deferred' and new.status_reason like 'circuit open%' begin select raise(abort, 'simulated write failure'); end",
  );
  await expect(runAt(ws, T0)).rejects.toThrow(/simulated write failure/);
  const firstRun = target.requests.length;
  expect(firstRun).toBeGreaterThanOrEqual(5);
  const stored = await ws.rows<{ endpoint: string; circuit: string }>('select endpoint, circuit from endpoint_states');
  expect(stored).toEqual([{ endpoint: 'default', circuit: expect.stringContaining('"state":"open"') }]);
  // The failed run's row counts the deliveries it deferred before the failure (each failing one, on its backoff).
  const [run] = await ws.rows<{ status: string; deferred: number }>('select status, deferred from runs');
  const deferredRows = await ws.rows<{ n: number }>("select count(*) as n from webhook_deliveries where status = 'deferred'");
  expect(run!.status).toBe('failed');
  expect(Number(run!.deferred)).toBe(Number(deferredRows[0]!.n));
  expect(Number(run!.deferred)).toBeGreaterThan(0);
  await ws.rows('drop trigger fail_circuit_deferral');
  // Ten minutes on: the stored open circuit lets one probe through (without it, five more failures to learn again).
  await runAt(ws, at(10 * MINUTE));
  expect(target.requests.length - firstRun).toBe(1);
}, 60_000);

test('a run with retries across runs off parks a 410-disabled endpoint at its start, then fails: its runs row counts the parked', async () => {
  const main = await receiverFor();
  const crm = await receiverFor(() => 410);
  const endpoints = [{ name: 'crm', url: crm.url }];
  const ws = sqliteWorkspace({ webhooks: { enabled: true, url: main.url, retryWindowHours: 72, endpoints } });
  await seeded(ws, 1);
  expect(await runAt(ws, T0)).toMatchObject({ delivered: 1, parked: 1 });
  ws.configure({ webhooks: { enabled: true, url: main.url, retryWindowHours: 0, endpoints } });
  await ws.seed([aLicense({ license_code: 'LATER', expires_at: '2025-01-22T11:00:00Z' })]);
  await ws.rows(
    "create trigger fail_delivered before update on webhook_deliveries when new.status = 'delivered' begin select raise(abort, 'simulated write failure'); end",
  );
  await expect(runAt(ws, at(MINUTE))).rejects.toThrow(/simulated write failure/);
  const runs = await ws.rows<{ status: string; parked: number }>('select status, parked from runs order by started_at, id');
  expect(runs.map((run) => [run.status, Number(run.parked)])).toEqual([
    [expect.any(String), 1],
    ['failed', 1],
  ]);
}, 60_000);
