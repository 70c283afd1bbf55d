// OpenTelemetry wired into the CLI: the spans of a real process-expirations run arriving at a real OTLP/HTTP JSON receiver on 127.0.0.1, the parent from TRACEPARENT, traceparent on the webhooks of the endpoints that ask, nothing secret in a span, bad OTEL_* variables as one warning, and no SDK loaded when nothing asks.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, test } from '@jest/globals';
import { BIN, childEnv } from '../helpers/cli.js';
import { attributes, spansOf, type OtlpExport, type OtlpSpan } from '../helpers/otlp.js';
import { closedPortUrl } from '../helpers/receiver.js';
import { tempDir } from '../helpers/temp-dir.js';
import { aLicense, forEachDialect, receiverFor, workspace, type Workspace } from '../helpers/workspace.js';

const NOW = '2025-01-23T10:00:00Z';
const SECRET = 'webhook-secret-never-in-a-span';
const EMAIL = 'alice.secret@example.com';
const PARENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_SPAN = '00f067aa0ba902b7';

/** The OTLP/HTTP receiver: the collector's JSON path, every body kept. */
async function collector(): Promise<{ env: Record<string, string>; bodies: string[]; spans(): OtlpSpan[]; resource(): Record<string, unknown> }> {
  const started = await receiverFor();
  const exports = () =>
    started.requests.filter((request) => request.url === '/v1/traces').map((request) => JSON.parse(request.body.toString('utf8')) as OtlpExport);
  return {
    env: { OTEL_EXPORTER_OTLP_ENDPOINT: new URL(started.url).origin, OTEL_SERVICE_NAME: 'license-job' },
    get bodies() {
      return started.requests.map((request) => request.body.toString('utf8'));
    },
    spans: () => spansOf(exports()),
    resource: () => attributes(exports()[0]?.resourceSpans[0]?.resource.attributes ?? []),
  };
}

async function seeded(ws: Workspace, count = 2): Promise<void> {
  fs.chmodSync(ws.configFile, 0o600);
  await ws.ready();
  await ws.seed(
    Array.from({ length: count }, (_, index) => aLicense({ email: index === 0 ? EMAIL : `c${index}@example.com`, expires_at: '2025-01-22T10:00:00Z' })),
  );
}

forEachDialect('OpenTelemetry spans of a run', ({ workspace: dialectWorkspace }) => {
  test('one run span (CLI conventions) with recording and attempt spans under it, parented by TRACEPARENT; no secret or e-mail anywhere', async () => {
    const otlp = await collector();
    const main = await receiverFor();
    const crm = await receiverFor((_request, index) => (index === 0 ? 503 : 200));
    const ws = dialectWorkspace({
      webhooks: { enabled: true, url: main.url, secret: SECRET, endpoints: [{ name: 'crm', url: `${crm.url}?token=crm-query-token`, secret: SECRET }] },
      monitoring: { traceparent: ['crm'] },
    });
    await seeded(ws);
    const run = await ws.cli(['process-expirations', '--now', NOW], { env: { ...otlp.env, TRACEPARENT: `00-${PARENT_TRACE}-${PARENT_SPAN}-01` } });
    expect([run.code, run.stderr]).toEqual([0, '']);

    const spans = otlp.spans();
    const root = spans.filter((span) => span.name === 'license-manager');
    expect(root).toHaveLength(1);
    expect(root[0]).toMatchObject({ traceId: PARENT_TRACE, parentSpanId: PARENT_SPAN, kind: 1 });
    expect(attributes(root[0]!.attributes)).toMatchObject({
      'process.executable.name': 'license-manager',
      'process.exit.code': 0,
      'license_manager.command': 'process-expirations',
    });
    expect(otlp.resource()).toMatchObject({ 'service.name': 'license-job', 'service.version': '0.1.0' });

    const recording = spans.filter((span) => span.name === 'record events');
    expect(recording).toHaveLength(1);
    expect(recording[0]!.parentSpanId).toBe(root[0]!.spanId);
    expect(attributes(recording[0]!.attributes)['license_manager.events.recorded']).toBe(2);

    const posts = spans.filter((span) => span.name === 'POST');
    // 2 to default, 2 to crm plus the one retry after its 503.
    expect(posts).toHaveLength(5);
    for (const span of posts) {
      expect(span.parentSpanId).toBe(root[0]!.spanId);
      expect(span.traceId).toBe(PARENT_TRACE);
      expect(span.kind).toBe(3);
    }
    const attempts = posts.map((span) => attributes(span.attributes));
    expect(
      attempts
        .filter((a) => a['license_manager.endpoint'] === 'default')
        .map((a) => [a['license_manager.event.type'], a['http.response.status_code'], a['license_manager.delivery.attempt']]),
    ).toEqual([
      ['license.expired', 200, 1],
      ['license.expired', 200, 1],
    ]);
    const failed = posts.find((span) => attributes(span.attributes)['http.response.status_code'] === 503)!;
    expect(attributes(failed.attributes)).toMatchObject({ 'license_manager.endpoint': 'crm', 'error.type': '503', 'license_manager.delivery.attempt': 1 });
    expect(failed.status.code).toBe(2);
    expect(
      attempts.some((a) => a['license_manager.endpoint'] === 'crm' && a['license_manager.delivery.attempt'] === 2 && a['http.request.resend_count'] === 1),
    ).toBe(true);
    // The query of an endpoint's URL (a token) is redacted.
    expect(attempts.find((a) => a['license_manager.endpoint'] === 'crm')!['url.full']).toContain('token=REDACTED');
    for (const body of otlp.bodies) expect(body).not.toMatch(new RegExp(`${SECRET}|${EMAIL.replace('.', '\\.')}|crm-query-token`));

    // traceparent on crm's webhooks (it asks for it): the attempt span's own context; none on default's.
    for (const request of main.requests) expect(request.headers.traceparent).toBeUndefined();
    const sentParents = crm.requests.map((request) => String(request.headers.traceparent));
    const crmSpanIds = posts
      .filter((span) => attributes(span.attributes)['license_manager.endpoint'] === 'crm')
      .map((span) => `00-${PARENT_TRACE}-${span.spanId}-01`);
    expect(sentParents.sort()).toEqual(crmSpanIds.sort());
  });
});

test('a failing run: the run span carries the exit status as error; without an SDK, TRACEPARENT is passed on as it came', async () => {
  const otlp = await collector();
  const main = await receiverFor(() => 404);
  const ws = workspace({ webhooks: { enabled: true, url: main.url }, monitoring: { traceparent: ['default'] } });
  await seeded(ws, 1);
  const run = await ws.cli(['process-expirations', '--now', NOW], { env: otlp.env });
  expect(run.code).toBe(3);
  const root = otlp.spans().find((span) => span.name === 'license-manager')!;
  expect(attributes(root.attributes)).toMatchObject({ 'process.exit.code': 3, 'error.type': '3' });
  expect(root.status.code).toBe(2);

  // A refusal by throwing: error.type names the kind (usage).
  const refused = await ws.cli(['deliveries', 'stats', '--endpoint', 'nope'], { env: otlp.env });
  expect(refused.code).toBe(2);
  const stats = otlp.spans().find((span) => attributes(span.attributes)['license_manager.command'] === 'deliveries stats')!;
  expect(attributes(stats.attributes)).toMatchObject({ 'process.exit.code': 2, 'error.type': 'usage' });

  // No OTEL_*: nothing is exported, and the caller's TRACEPARENT goes on unchanged to the endpoint that asks.
  const before = otlp.bodies.length;
  await ws.seed([aLicense({ expires_at: '2025-01-22T12:00:00Z' })]);
  const untraced = await ws.cli(['process-expirations', '--now', '2025-01-23T12:00:00Z'], { env: { TRACEPARENT: `00-${PARENT_TRACE}-${PARENT_SPAN}-01` } });
  expect(untraced.code).toBe(3);
  expect(otlp.bodies).toHaveLength(before);
  expect(main.requests.at(-1)!.headers.traceparent).toBe(`00-${PARENT_TRACE}-${PARENT_SPAN}-01`);
});

test("a receiver's answer never reaches a span: a 500 echoing the license is `HTTP 500`, a redirect is `HTTP 302`", async () => {
  const otlp = await collector();
  // The receiver echoes what it was sent (the license's code and e-mail) in its error body and in a redirect's Location.
  const main = await receiverFor((request, index) => {
    const echo = request.body.toString('utf8');
    return index === 0
      ? { status: 500, body: `could not store ${echo}` }
      : { status: 302, body: echo, headers: { location: `https://elsewhere.example.com/?e=${encodeURIComponent(EMAIL)}&code=A-DATE` } };
  });
  const ws = workspace({ webhooks: { enabled: true, url: main.url, secret: SECRET, retryDelaysMs: [10] } });
  fs.chmodSync(ws.configFile, 0o600);
  await ws.ready();
  await ws.seed([aLicense({ license_code: 'A-DATE', email: EMAIL, expires_at: '2025-01-22T10:00:00Z' })]);
  const run = await ws.cli(['process-expirations', '--now', NOW], { env: { ...otlp.env, OTEL_TRACES_EXPORTER: 'otlp,console' } });
  expect(run.code).toBe(3);
  expect(main.requests).toHaveLength(2);
  expect(main.requests[0]!.body.toString('utf8')).toContain('A-DATE');

  const posts = otlp.spans().filter((span) => span.name === 'POST');
  expect(
    posts.map((span) => [attributes(span.attributes)['http.response.status_code'], span.status] as const).sort((a, b) => Number(a[0]) - Number(b[0])),
  ).toEqual([
    [302, { code: 2, message: 'HTTP 302' }],
    [500, { code: 2, message: 'HTTP 500' }],
  ]);
  // Nothing of it in any export, nor in the console exporter's span lines on stderr.
  const consoleSpans = run.stderr.split('\n').filter((line) => line.startsWith('{'));
  expect(consoleSpans.length).toBeGreaterThanOrEqual(3);
  for (const text of [...otlp.bodies, ...consoleSpans]) expect(text).not.toMatch(new RegExp(`A-DATE|${EMAIL.replace('.', '\\.')}|${SECRET}|elsewhere`));
});

test('bad OTEL_* variables are one clear warning and the job runs; a collector that is down costs a bounded warning, not the exit status', async () => {
  const main = await receiverFor();
  const ws = workspace({ webhooks: { enabled: true, url: main.url } });
  await seeded(ws, 1);
  const unknown = await ws.cli(['process-expirations', '--now', NOW], {
    env: { OTEL_TRACES_EXPORTER: 'zipkin', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' },
  });
  expect(unknown.code).toBe(0);
  expect(unknown.stderr).toBe(
    'warning: OTEL_TRACES_EXPORTER names "zipkin", which license-manager does not support (it takes otlp, console or none): no traces are sent.\n',
  );
  expect(main.requests).toHaveLength(1);

  await ws.seed([aLicense({ expires_at: '2025-01-22T12:00:00Z' })]);
  const started = performance.now();
  const down = await ws.cli(['process-expirations', '--now', '2025-01-23T12:00:00Z'], {
    env: { OTEL_EXPORTER_OTLP_ENDPOINT: new URL(await closedPortUrl()).origin },
  });
  expect(down.code).toBe(0);
  expect(down.stderr).toMatch(
    /^warning: traces (could not be sent|were not all sent) to http:\/\/127\.0\.0\.1:\d+\/v1\/traces.*The run itself is not affected\.\n$/,
  );
  expect(performance.now() - started).toBeLessThan(8000);
  expect(main.requests).toHaveLength(2);
});

test('monitoring.traceparent naming no endpoint is exit 2 naming it', async () => {
  const main = await receiverFor();
  const ws = workspace({ webhooks: { enabled: true, url: main.url } });
  await seeded(ws, 1);
  ws.configure({ webhooks: { enabled: true, url: main.url }, monitoring: { traceparent: ['default', 'crn'] } });
  const run = await ws.cli(['process-expirations', '--now', NOW]);
  expect(run.code).toBe(2);
  expect(run.stderr).toContain('monitoring.traceparent names "crn", which is no endpoint (known: default).');
  expect(main.requests).toEqual([]);
});

describe('no OpenTelemetry module is loaded by the CLI unless OTEL_* asks', () => {
  /** Runs the built CLI in a child whose resolve hook logs every module URL; returns the @opentelemetry ones. */
  async function loaded(args: string[], cwd: string, env: Record<string, string>): Promise<string[]> {
    const dir = tempDir();
    const log = path.join(dir, 'resolved.log');
    fs.writeFileSync(
      path.join(dir, 'hooks.mjs'),
      `import fs from 'node:fs';
       export async function resolve(specifier, context, next) {
         const result = await next(specifier, context);
         fs.appendFileSync(process.env.RESOLVE_LOG, result.url + '\\n');
         return result;
       }`,
    );
    fs.writeFileSync(path.join(dir, 'register.mjs'), `import { register } from 'node:module'; register('./hooks.mjs', import.meta.url);`);
    const childEnvironment = childEnv({ RESOLVE_LOG: log, ...env });
    for (const name of Object.keys(childEnvironment)) if (name.startsWith('OTEL_') && !(name in env)) delete childEnvironment[name];
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', pathToFileURL(path.join(dir, 'register.mjs')).href, BIN, ...args], {
        cwd,
        env: childEnvironment,
        stdio: 'ignore',
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      child.on('error', reject);
      child.on('close', (exit) => {
        clearTimeout(timer);
        resolve(exit);
      });
    });
    expect(code).toBe(0);
    const resolved = fs.readFileSync(log, 'utf8').split('\n').filter(Boolean);
    // The hook saw the CLI's own modules, so an @opentelemetry import would have been seen too.
    expect(resolved.some((url) => url.endsWith('/dist/cli/main.js'))).toBe(true);
    return resolved.filter((url) => url.includes('@opentelemetry'));
  }

  test('--help and a nothing-due run load none; with an OTLP endpoint the same run loads the SDK (the probe can fail)', async () => {
    const ws = workspace({ monitoring: { textfile: 'license_manager.prom' } });
    await seeded(ws, 0);
    expect(await loaded(['--help'], ws.dir, {})).toEqual([]);
    expect(await loaded(['process-expirations'], ws.dir, { TRACEPARENT: `00-${PARENT_TRACE}-${PARENT_SPAN}-01` })).toEqual([]);
    const otlp = await collector();
    const withSdk = await loaded(['process-expirations'], ws.dir, otlp.env);
    expect(withSdk.some((url) => url.includes('@opentelemetry/sdk-trace-base'))).toBe(true);
    expect(otlp.spans().map((span) => span.name)).toContain('license-manager');
  }, 60_000);
});
