// Heartbeat pings: the URLs each service expects, and a pinger that stays within its bound against a real receiver that errs, hangs or is down.
import { afterEach, describe, expect, test } from '@jest/globals';
import {
  CRONITOR_MESSAGE_LIMIT,
  displayPingUrl,
  endPing,
  HEALTHCHECKS_BODY_LIMIT_BYTES,
  pingWarning,
  pingWentTo,
  sendPing,
  startPing,
} from '../../src/monitoring/heartbeat.js';
import { pingSchema, type PingTarget } from '../../src/config/ping.js';
import { closedPortUrl, startReceiver, type Receiver } from '../helpers/receiver.js';

const RUN = '0b7c3d4e-1f20-4a3b-8c4d-5e6f7a8b9c0d';
const clock = { now: () => new Date('2026-03-01T02:00:00Z') };
const hc = (url: string): PingTarget => ({ url, kind: 'healthchecks' });

let receiver: Receiver | undefined;
afterEach(async () => {
  await receiver?.close();
  receiver = undefined;
});

describe('the URLs each service expects', () => {
  test("Healthchecks: /start, then the URL itself on exit 0 or /<exit status>, with the run id; the operator's query stays", () => {
    const target = hc('https://hc-ping.com/5e1d0a4c-93a2-4e55-9e5f-0d6a2f1b7c11?create=1');
    expect(startPing(target, RUN)).toEqual({
      phase: 'start',
      url: `https://hc-ping.com/5e1d0a4c-93a2-4e55-9e5f-0d6a2f1b7c11/start?create=1&rid=${RUN}`,
      body: '',
    });
    expect(endPing(target, { runId: RUN, exitCode: 0, summary: '3 events recorded, 3 delivered' })).toEqual({
      phase: 'end',
      url: `https://hc-ping.com/5e1d0a4c-93a2-4e55-9e5f-0d6a2f1b7c11?create=1&rid=${RUN}`,
      body: '3 events recorded, 3 delivered',
    });
    expect(endPing(target, { runId: RUN, exitCode: 3, summary: 'x' }).url).toBe(
      `https://hc-ping.com/5e1d0a4c-93a2-4e55-9e5f-0d6a2f1b7c11/3?create=1&rid=${RUN}`,
    );
    expect(endPing(target, { runId: RUN, exitCode: 4, summary: 'x' }).url).toContain('/4?');
    // Healthchecks takes exit statuses 0 to 255; anything else is still a failure.
    expect(endPing(target, { runId: RUN, exitCode: 300, summary: 'x' }).url).toContain('/fail?');
    expect(endPing(target, { runId: RUN, exitCode: -1, summary: 'x' }).url).toContain('/fail?');
  });

  test('Healthchecks: a trailing slash, a ping key with a slug, and a fragment', () => {
    expect(startPing(hc('https://hc-ping.com/KEY-abc/nightly/'), RUN).url).toBe(`https://hc-ping.com/KEY-abc/nightly/start?rid=${RUN}`);
    expect(startPing(hc('https://hc.example.com/ping/abc#frag'), RUN).url).toBe(`https://hc.example.com/ping/abc/start?rid=${RUN}`);
    // A rid already in the operator's URL is replaced, never sent twice.
    expect(startPing(hc('https://hc-ping.com/abc?rid=old'), RUN).url).toBe(`https://hc-ping.com/abc/start?rid=${RUN}`);
  });

  test('Cronitor: state=run|complete|fail with the series, the exit status and the summary as message (at most 2000 characters)', () => {
    const target: PingTarget = { url: 'https://cronitor.link/p/0123456789abcdef0123456789abcdef/license-expirations?env=production', kind: 'cronitor' };
    expect(startPing(target, RUN).url).toBe(
      `https://cronitor.link/p/0123456789abcdef0123456789abcdef/license-expirations?env=production&state=run&series=${RUN}`,
    );
    const ok = new URL(endPing(target, { runId: RUN, exitCode: 0, summary: '2 recorded,\n2 delivered' }).url);
    expect(Object.fromEntries(ok.searchParams)).toEqual({
      env: 'production',
      state: 'complete',
      series: RUN,
      status_code: '0',
      message: '2 recorded, 2 delivered',
    });
    const failed = endPing(target, { runId: RUN, exitCode: 3, summary: 'é'.repeat(5000) });
    const params = new URL(failed.url).searchParams;
    expect(params.get('state')).toBe('fail');
    expect(params.get('status_code')).toBe('3');
    expect(params.get('message')).toBe('é'.repeat(CRONITOR_MESSAGE_LIMIT));
    expect(failed.body).toBe('');
  });

  test('Sentry Crons: status=in_progress|ok|error with our run id as check_in_id, and the duration in seconds', () => {
    const target: PingTarget = { url: 'https://o0.ingest.sentry.io/api/0/cron/license-expirations/examplePublicKey/?environment=prod', kind: 'sentry' };
    expect(startPing(target, RUN).url).toBe(
      `https://o0.ingest.sentry.io/api/0/cron/license-expirations/examplePublicKey/?environment=prod&status=in_progress&check_in_id=${RUN}`,
    );
    const ok = new URL(endPing(target, { runId: RUN, exitCode: 0, summary: 'fine', durationMs: 12_345 }).url);
    expect(Object.fromEntries(ok.searchParams)).toEqual({ environment: 'prod', status: 'ok', check_in_id: RUN, duration: '12.345' });
    const failed = endPing(target, { runId: RUN, exitCode: 1, summary: 'broke' });
    expect(new URL(failed.url).searchParams.get('status')).toBe('error');
    expect(new URL(failed.url).searchParams.has('duration')).toBe(false);
    expect(failed.body).toBe('');
  });

  test('the run id must be a UUID (both Healthchecks and Sentry refuse anything else)', () => {
    expect(() => startPing(hc('https://hc-ping.com/abc'), '42')).toThrow('a ping\'s run id must be a UUID, not "42"');
    expect(() => endPing({ url: 'https://x.example/', kind: 'sentry' }, { runId: 'run-1', exitCode: 0, summary: '' })).toThrow(RangeError);
  });

  test('the summary body: credentials masked, and cut to 100 kB on a character boundary', () => {
    const end = endPing(hc('https://hc-ping.com/abc'), { runId: RUN, exitCode: 0, summary: 'sent to https://alice:hunter2@hooks.example.com/in' });
    expect(end.body).toBe('sent to https://alice:****@hooks.example.com/in');
    const long = endPing(hc('https://hc-ping.com/abc'), { runId: RUN, exitCode: 0, summary: `a${'€'.repeat(50_000)}` });
    expect(Buffer.byteLength(long.body)).toBeLessThanOrEqual(HEALTHCHECKS_BODY_LIMIT_BYTES);
    expect(Buffer.byteLength(long.body)).toBeGreaterThan(HEALTHCHECKS_BODY_LIMIT_BYTES - 3);
    expect(long.body).not.toContain('\uFFFD');
  });
});

describe('monitoring.ping in the config', () => {
  test('a URL string is the Healthchecks form; an object names its service', () => {
    expect(pingSchema.parse('https://hc-ping.com/abc')).toEqual({ url: 'https://hc-ping.com/abc', kind: 'healthchecks' });
    expect(pingSchema.parse({ url: 'https://cronitor.link/p/k/m', kind: 'cronitor' })).toEqual({ url: 'https://cronitor.link/p/k/m', kind: 'cronitor' });
    expect(pingSchema.parse({ url: 'http://127.0.0.1:8000/ping/abc' })).toEqual({ url: 'http://127.0.0.1:8000/ping/abc', kind: 'healthchecks' });
  });

  test.each([
    ['ftp://hc-ping.com/abc', 'url', 'the ping URL must use http: or https:, not ftp:'],
    ['hc-ping.com/abc', 'url', 'the ping URL is not an absolute URL (expected something like https://hc-ping.com/<uuid>)'],
    [{ url: 'mailto:ops@example.com', kind: 'sentry' }, 'url', 'the ping URL must use http: or https:, not mailto:'],
    [{ url: 'https://x.example/', kind: 'pagerduty' }, 'kind', 'must be one of healthchecks, cronitor, sentry (the service the URL belongs to)'],
    [{ kind: 'cronitor' }, 'url', 'must be the ping URL, a string such as "https://hc-ping.com/<uuid>"'],
    [{ url: 'https://x.example/', every: '5m' }, '', 'Unrecognized key: "every"'],
    [42, '', 'must be a URL string (Healthchecks) or { "url": "https://…", "kind": "healthchecks" | "cronitor" | "sentry" }'],
    [`https://x.example/${'a'.repeat(2100)}`, 'url', 'the ping URL is 2118 characters long; a ping URL may have at most 2048'],
  ])('%j is refused: %s %s', (value, path, message) => {
    const parsed = pingSchema.safeParse(value);
    expect(parsed.success).toBe(false);
    const issue = parsed.error!.issues[0]!;
    expect({ path: issue.path.join('.'), message: issue.message }).toEqual({ path, message });
  });
});

describe('the ping URL as printed', () => {
  test.each([
    ['https://hc-ping.com/5e1d0a4c-93a2-4e55-9e5f-0d6a2f1b7c11?create=1', 'https://hc-ping.com/****'],
    ['https://hc-ping.com/fqOOd6-F4MMNuCEnzTU01w/nightly-license-job', 'https://hc-ping.com/****/nightly-license-job'],
    ['https://hc.example.com/ping/5e1d0a4c-93a2-4e55-9e5f-0d6a2f1b7c11/', 'https://hc.example.com/ping/****/'],
    ['https://cronitor.link/p/0123456789abcdef0123456789abcdef/nightly', 'https://cronitor.link/p/****/nightly'],
    ['https://cronitor.link/p/short/nightly', 'https://cronitor.link/p/****/nightly'],
    ['https://o0.ingest.sentry.io/api/0/cron/nightly/examplePublicKey/', 'https://o0.ingest.sentry.io/api/0/cron/nightly/****/'],
    ['https://ops:s3cret@hc.example.com/ping/abc', 'https://ops:****@hc.example.com/ping/abc'],
  ])('%s → %s', (url, shown) => {
    expect(displayPingUrl(url)).toBe(shown);
  });
});

describe('whether a ping went to the check status reads (its "(to <url>)")', () => {
  const shownOf = (target: PingTarget) => ({ target: displayPingUrl(target.url), kind: target.kind });
  const sent = (target: PingTarget) => [
    startPing(target, RUN),
    ...[0, 1, 3, 255, 256, -1].map((exitCode) => endPing(target, { runId: RUN, exitCode, summary: 's' })),
  ];
  test.each([
    hc('https://hc-ping.com/5e1d0a4c-93a2-4e55-9e5f-0d6a2f1b7c11?create=1'),
    hc('https://hc-ping.com/fqOOd6-F4MMNuCEnzTU01w/nightly-license-job'),
    hc('https://hc.example.com/ping/5e1d0a4c-93a2-4e55-9e5f-0d6a2f1b7c11/'),
    hc('https://ops:s3cret@hc.example.com/ping/abc'),
    { url: 'https://cronitor.link/p/0123456789abcdef0123456789abcdef/nightly', kind: 'cronitor' as const },
    { url: 'https://o0.ingest.sentry.io/api/0/cron/nightly/examplePublicKey/', kind: 'sentry' as const },
  ])('every ping to %j went there: /start and /<exit status> are its own', (target) => {
    for (const request of sent(target))
      expect([request.url, pingWentTo(shownOf(target), { phase: request.phase, target: displayPingUrl(request.url) })]).toEqual([request.url, true]);
  });

  test('a ping to another base did not: another path, host or service, or a path below the check that no ping adds', () => {
    const reads = shownOf(hc('https://hc.example.com/ping/nightly'));
    for (const other of [hc('https://hc.example.com/ping/weekly'), hc('https://hc2.example.com/ping/nightly'), hc('https://hc.example.com/ping/nightly/start')])
      for (const request of sent(other)) expect(pingWentTo(reads, { phase: request.phase, target: displayPingUrl(request.url) })).toBe(false);
    expect(pingWentTo(reads, { phase: 'end', target: 'https://hc.example.com/ping/nightly/start' })).toBe(false);
    expect(pingWentTo(reads, { phase: 'start', target: 'https://hc.example.com/ping/nightly/1' })).toBe(false);
    expect(pingWentTo(reads, { phase: 'end', target: 'https://hc.example.com/ping/nightly/256' })).toBe(false);
    // Cronitor's and Sentry's pings add no path: a segment after their URL is another monitor.
    const cronitor = shownOf({ url: 'https://cronitor.link/p/0123456789abcdef0123456789abcdef/nightly', kind: 'cronitor' });
    expect(pingWentTo(cronitor, { phase: 'start', target: `${cronitor.target}/start` })).toBe(false);
  });
});

describe('pinging a real receiver', () => {
  test("start and end pings arrive as POSTs with the run id, and the summary as the end ping's body", async () => {
    receiver = await startReceiver();
    const target = hc(`http://127.0.0.1:${receiver.port}/ping/5e1d0a4c-93a2-4e55-9e5f-0d6a2f1b7c11?create=1`);
    const start = await sendPing(startPing(target, RUN), { clock, userAgent: 'license-manager/9.9.9' });
    const end = await sendPing(endPing(target, { runId: RUN, exitCode: 3, summary: '5 recorded, 4 delivered, 1 abandoned' }), { clock });
    expect(start).toEqual({
      phase: 'start',
      ok: true,
      target: `http://127.0.0.1:${receiver.port}/ping/****/start`,
      at: '2026-03-01T02:00:00Z',
      attempts: 1,
      statusCode: 200,
      error: null,
      durationMs: expect.any(Number),
    });
    expect(end.ok).toBe(true);
    const [first, second] = receiver.requests;
    expect(first).toMatchObject({ method: 'POST', url: `/ping/5e1d0a4c-93a2-4e55-9e5f-0d6a2f1b7c11/start?create=1&rid=${RUN}` });
    expect(first!.body.length).toBe(0);
    expect(first!.headers['user-agent']).toBe('license-manager/9.9.9');
    expect(second).toMatchObject({ method: 'POST', url: `/ping/5e1d0a4c-93a2-4e55-9e5f-0d6a2f1b7c11/3?create=1&rid=${RUN}` });
    expect(second!.body.toString('utf8')).toBe('5 recorded, 4 delivered, 1 abandoned');
    expect(second!.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(receiver.requests).toHaveLength(2);
  });

  test('credentials in the URL go as an Authorization header and never appear in the result', async () => {
    receiver = await startReceiver(() => 500);
    const url = `http://ops:s3cret@127.0.0.1:${receiver.port}/ping/abc`;
    const result = await sendPing(startPing(hc(url), RUN), { clock, totalMs: 3000 });
    expect(receiver.requests[0]!.headers.authorization).toBe(`Basic ${Buffer.from('ops:s3cret').toString('base64')}`);
    expect(receiver.requests[0]!.url).toBe(`/ping/abc/start?rid=${RUN}`);
    expect(JSON.stringify(result)).not.toContain('s3cret');
    expect(pingWarning(result)).not.toContain('s3cret');
  });

  test('a 5xx is retried once, and a success on the retry is a success', async () => {
    receiver = await startReceiver((_, index) => (index === 0 ? 503 : 200));
    const result = await sendPing(startPing(hc(`${receiver.url}/abc`), RUN), { clock });
    expect(result).toMatchObject({ ok: true, attempts: 2, statusCode: 200, error: null });
    expect(receiver.requests.map((request) => request.url)).toEqual([`/webhook/abc/start?rid=${RUN}`, `/webhook/abc/start?rid=${RUN}`]);
  });

  test('two 5xx: a failure after exactly two attempts, with the reason', async () => {
    receiver = await startReceiver(() => 500);
    const result = await sendPing(endPing(hc(`${receiver.url}/abc`), { runId: RUN, exitCode: 0, summary: 'ok' }), { clock });
    expect(result).toMatchObject({ phase: 'end', ok: false, attempts: 2, statusCode: 500, error: 'HTTP 500: status 500' });
    expect(receiver.requests).toHaveLength(2);
    expect(pingWarning(result)).toBe(
      `warning: the end ping to http://127.0.0.1:${receiver.port}/webhook/abc failed after 2 attempts (HTTP 500: status 500); the run's exit status does not change. Check monitoring.ping.`,
    );
  });

  test('a 4xx (wrong URL) is not retried; a redirect is not followed', async () => {
    receiver = await startReceiver((request) =>
      request.url.startsWith('/moved') ? { status: 301, headers: { location: 'https://hc-ping.com/elsewhere' } } : { status: 404, body: 'not found' },
    );
    const missing = await sendPing(startPing(hc(`${receiver.url}/abc`), RUN), { clock });
    expect(missing).toMatchObject({ ok: false, attempts: 1, statusCode: 404, error: 'HTTP 404: not found' });
    const moved = await sendPing(startPing(hc(`http://127.0.0.1:${receiver.port}/moved`), RUN), { clock });
    expect(moved).toMatchObject({ ok: false, attempts: 1, statusCode: 301 });
    expect(moved.error).toBe('HTTP 301 redirect to https://hc-ping.com/elsewhere (redirects are not followed: use the final URL)');
    expect(receiver.requests).toHaveLength(2);
  });

  test('a receiver that hangs holds the ping no longer than its bound, retry included', async () => {
    receiver = await startReceiver(() => 'hang');
    const started = performance.now();
    const result = await sendPing(endPing(hc(`${receiver.url}/abc`), { runId: RUN, exitCode: 0, summary: 'ok' }), { clock, totalMs: 1200 });
    const elapsed = performance.now() - started;
    expect(result).toMatchObject({ ok: false, attempts: 2, statusCode: null });
    expect(result.error).toMatch(/^timed out after \d+ ms$/);
    expect(elapsed).toBeGreaterThanOrEqual(1000);
    expect(elapsed).toBeLessThan(2500);
    expect(receiver.requests).toHaveLength(2);
  });

  test('the default bound is 5 seconds in all', async () => {
    receiver = await startReceiver(() => 'hang');
    const started = performance.now();
    const result = await sendPing(startPing(hc(`${receiver.url}/abc`), RUN), { clock });
    const elapsed = performance.now() - started;
    expect(result.ok).toBe(false);
    expect(elapsed).toBeGreaterThanOrEqual(4500);
    expect(elapsed).toBeLessThan(6500);
  });

  test('a receiver that is down: a failure value with the reason, after one retry', async () => {
    const url = await closedPortUrl();
    const result = await sendPing(startPing(hc(url), RUN), { clock });
    expect(result).toMatchObject({ ok: false, attempts: 2, statusCode: null });
    expect(result.error).toMatch(/ECONNREFUSED/);
    expect(pingWarning(result)).toMatch(
      /^warning: the start ping to http:\/\/127\.0\.0\.1:\d+\/webhook\/start failed after 2 attempts \(.*ECONNREFUSED.*\); the run's exit status does not change/,
    );
  });

  test('a ping never throws, even for a URL no client can send', async () => {
    const result = await sendPing({ phase: 'start', url: 'http://[::1/', body: '' }, { clock, totalMs: 1000 });
    expect(result.ok).toBe(false);
    expect(result.error).toEqual(expect.any(String));
  });

  test('Cronitor and Sentry pings reach the receiver with their own parameters and no body', async () => {
    receiver = await startReceiver(() => ({ status: 202 }));
    await sendPing(
      endPing(
        { url: `http://127.0.0.1:${receiver.port}/p/0123456789abcdef0123456789abcdef/nightly`, kind: 'cronitor' },
        { runId: RUN, exitCode: 4, summary: '1 deferred' },
      ),
      { clock },
    );
    await sendPing(
      endPing(
        { url: `http://127.0.0.1:${receiver.port}/api/0/cron/nightly/key/`, kind: 'sentry' },
        { runId: RUN, exitCode: 0, summary: 'fine', durationMs: 1500 },
      ),
      { clock },
    );
    expect(receiver.requests.map((request) => [request.method, request.url, request.body.length])).toEqual([
      ['POST', `/p/0123456789abcdef0123456789abcdef/nightly?state=fail&series=${RUN}&status_code=4&message=1+deferred`, 0],
      ['POST', `/api/0/cron/nightly/key/?status=ok&check_in_id=${RUN}&duration=1.500`, 0],
    ]);
    // Sentry reads the query only when the body is not JSON.
    expect(receiver.requests[1]!.headers['content-type'] ?? '').not.toMatch(/json/);
  });
});
