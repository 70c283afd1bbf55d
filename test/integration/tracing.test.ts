// OpenTelemetry traces against a real OTLP/HTTP JSON receiver on 127.0.0.1: the spans that arrive, the parent from TRACEPARENT, a bounded flush, and no SDK loaded when nothing asks.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, test } from '@jest/globals';
import { parseTraceparent, planTracing, redactUrl, startTracing } from '../../src/monitoring/tracing.js';
import { attributes, spansOf, type OtlpExport, type OtlpSpan } from '../helpers/otlp.js';
import { closedPortUrl } from '../helpers/receiver.js';
import { tempDir } from '../helpers/temp-dir.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TRACING_JS = path.join(ROOT, 'dist/src/monitoring/tracing.js');
const PARENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_SPAN = '00f067aa0ba902b7';

interface Collector {
  url: string;
  bodies: string[];
  exports: OtlpExport[];
  spans(): OtlpSpan[];
  close(): Promise<void>;
}

/** A plain HTTP server reading OTLP/HTTP JSON at POST /v1/traces; `mode` 'hang' accepts and never answers. */
async function startCollector(mode: 'ok' | 'hang' = 'ok'): Promise<Collector> {
  const bodies: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (mode === 'hang') return;
      if (req.method !== 'POST' || req.url !== '/v1/traces' || !String(req.headers['content-type']).startsWith('application/json')) {
        res.writeHead(404).end();
        return;
      }
      bodies.push(Buffer.concat(chunks).toString('utf8'));
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const exports = (): OtlpExport[] => bodies.map((body) => JSON.parse(body) as OtlpExport);
  return {
    url: `http://127.0.0.1:${port}`,
    bodies,
    get exports() {
      return exports();
    },
    spans: () => spansOf(exports()),
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

let collector: Collector | undefined;
afterEach(async () => {
  await collector?.close();
  collector = undefined;
});

describe('what the environment asks for', () => {
  test.each([
    ['nothing set', {}],
    ['OTEL_SERVICE_NAME alone (hosts set it for everything)', { OTEL_SERVICE_NAME: 'lm' }],
    ['TRACEPARENT alone (a CI job passes it to every child)', { TRACEPARENT: `00-${PARENT_TRACE}-${PARENT_SPAN}-01` }],
    ['OTEL_TRACES_EXPORTER=none, even with an endpoint', { OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }],
    ['OTEL_SDK_DISABLED=true', { OTEL_SDK_DISABLED: 'TRUE', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }],
  ])('off, silently: %s', (_, env) => {
    expect(planTracing(env)).toEqual({ enabled: false, warnings: [] });
  });

  test('an endpoint alone turns OTLP on, with /v1/traces added; the traces endpoint is taken as it is', () => {
    expect(planTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' })).toMatchObject({
      enabled: true,
      endpoint: 'http://collector:4318/v1/traces',
      console: false,
      serviceName: 'license-manager',
      warnings: [],
    });
    expect(
      planTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://ignored:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://collector.example/custom/path' }),
    ).toMatchObject({ enabled: true, endpoint: 'https://collector.example/custom/path' });
    expect(planTracing({ OTEL_TRACES_EXPORTER: 'otlp' })).toMatchObject({ enabled: true, endpoint: 'http://localhost:4318/v1/traces' });
    expect(planTracing({ OTEL_TRACES_EXPORTER: 'console' })).toMatchObject({ enabled: true, endpoint: null, console: true });
    expect(planTracing({ OTEL_TRACES_EXPORTER: ' OTLP , console ' })).toMatchObject({
      enabled: true,
      endpoint: 'http://localhost:4318/v1/traces',
      console: true,
    });
  });

  test('an unknown exporter: one warning naming it, and no tracing', () => {
    expect(planTracing({ OTEL_TRACES_EXPORTER: 'otlp,zipkin', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toEqual({
      enabled: false,
      warnings: ['OTEL_TRACES_EXPORTER names "zipkin", which license-manager does not support (it takes otlp, console or none): no traces are sent.'],
    });
  });

  test('the protocol: http/json as asked; http/protobuf sent as http/json with a note; grpc refused with a warning', () => {
    expect(planTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' })).toMatchObject({
      enabled: true,
      warnings: [],
    });
    expect(planTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf' })).toMatchObject({
      enabled: true,
      endpoint: 'http://c:4318/v1/traces',
      warnings: ['OTEL_EXPORTER_OTLP_PROTOCOL is http/protobuf; license-manager sends OTLP as http/json to the same endpoint.'],
    });
    const grpc =
      'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL is "grpc", which license-manager cannot send (it sends OTLP over http/json; point OTEL_EXPORTER_OTLP_ENDPOINT at the collector\'s HTTP port, usually 4318): no traces are sent over OTLP.';
    expect(
      planTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc' }),
    ).toEqual({ enabled: false, warnings: [grpc] });
    // The console exporter still runs when only OTLP cannot.
    expect(planTracing({ OTEL_TRACES_EXPORTER: 'otlp,console', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc' })).toMatchObject({
      enabled: true,
      endpoint: null,
      console: true,
      warnings: [grpc],
    });
  });

  test('a bad endpoint is a warning without its credentials', () => {
    expect(planTracing({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'collector:4318' })).toEqual({
      enabled: false,
      warnings: ['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT must be an http: or https: URL, not collector:: traces are not sent over OTLP.'],
    });
    expect(planTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://user:pw@[bad' })).toEqual({
      enabled: false,
      warnings: ['OTEL_EXPORTER_OTLP_ENDPOINT "http://user:****@[bad" is not an absolute URL (e.g. http://localhost:4318): traces are not sent over OTLP.'],
    });
  });

  test("headers and resource attributes: key=value lists, URL-decoded, the signal's own winning; the service name from OTEL_SERVICE_NAME first", () => {
    const plan = planTracing({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318',
      OTEL_EXPORTER_OTLP_HEADERS: 'api-key=general,x-team=ops%20team',
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'api-key=traces-only, =novalue,broken',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=prod,service.name=from-attributes',
    });
    expect(plan).toMatchObject({
      enabled: true,
      headers: { 'api-key': 'traces-only', 'x-team': 'ops team' },
      serviceName: 'from-attributes',
      resourceAttributes: { 'deployment.environment': 'prod', 'service.name': 'from-attributes' },
      warnings: ['OTEL_EXPORTER_OTLP_TRACES_HEADERS has 2 entries that is not key=value (URL-encoded): ignored. Check its syntax.'],
    });
    expect(
      planTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SERVICE_NAME: 'lm-prod', OTEL_RESOURCE_ATTRIBUTES: 'service.name=other' }),
    ).toMatchObject({ serviceName: 'lm-prod' });
  });

  test('TRACEPARENT is read as W3C Trace Context says', () => {
    expect(parseTraceparent(`00-${PARENT_TRACE}-${PARENT_SPAN}-01`, ' vendor=abc ')).toEqual({
      traceId: PARENT_TRACE,
      spanId: PARENT_SPAN,
      traceFlags: 1,
      traceState: 'vendor=abc',
    });
    expect(parseTraceparent(`01-${PARENT_TRACE}-${PARENT_SPAN}-03-future`)).toEqual({ traceId: PARENT_TRACE, spanId: PARENT_SPAN, traceFlags: 3 });
    for (const bad of [
      undefined,
      '',
      `00-${PARENT_TRACE}-${PARENT_SPAN}-01-extra`,
      `ff-${PARENT_TRACE}-${PARENT_SPAN}-01`,
      `00-${'0'.repeat(32)}-${PARENT_SPAN}-01`,
      `00-${PARENT_TRACE}-${'0'.repeat(16)}-01`,
      `00-${PARENT_TRACE.toUpperCase()}-${PARENT_SPAN}-01`,
      `00-${PARENT_TRACE}-${PARENT_SPAN}`,
    ]) {
      expect(parseTraceparent(bad)).toBeUndefined();
    }
  });

  test('url.full hides credentials and query values', () => {
    expect(redactUrl('https://alice:hunter2@hooks.example.com/in?token=abc&x=1#frag')).toBe(
      'https://REDACTED:REDACTED@hooks.example.com/in?token=REDACTED&x=REDACTED',
    );
    expect(redactUrl('https://hooks.example.com/in')).toBe('https://hooks.example.com/in');
  });

  test('url.full hides key-like path segments as the ping URL does (Slack, Discord, a UUID), and keeps slugs', () => {
    expect(redactUrl('https://hooks.slack.com/services/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')).toBe(
      'https://hooks.slack.com/services/T0A1B2C3D/B0A1B2C3D/REDACTED',
    );
    expect(redactUrl('https://discord.com/api/webhooks/1234567890123456789/aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5zA7bC9dE1fG3hI5jK7lM9nO1pQ3rS5t')).toBe(
      'https://discord.com/api/webhooks/1234567890123456789/REDACTED',
    );
    expect(redactUrl('https://crm.example.com/hooks/5e1d0a4c-93a2-4e55-9e5f-0d6a2f1b7c11/license-expired?x=1')).toBe(
      'https://crm.example.com/hooks/REDACTED/license-expired?x=REDACTED',
    );
    expect(redactUrl('https://crm.example.com/api/v2/license-manager-webhooks')).toBe('https://crm.example.com/api/v2/license-manager-webhooks');
  });
});

describe('spans at a real OTLP receiver', () => {
  test('a run span named after the executable, child spans for recording and each attempt, parented by TRACEPARENT', async () => {
    collector = await startCollector();
    const tracing = await startTracing(
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
        OTEL_SERVICE_NAME: 'lm-test',
        TRACEPARENT: `00-${PARENT_TRACE}-${PARENT_SPAN}-01`,
        TRACESTATE: 'vendor=abc',
      },
      { version: '9.9.9', pid: 4242 },
    );
    expect(tracing.enabled).toBe(true);
    const run = tracing.startRun('process-expirations');
    const recording = run.startRecording();
    recording.end({ recorded: 2 });
    const url = 'https://ops:s3cret@hooks.example.com/in?token=tok-value';
    const first = run.startAttempt({ endpoint: 'crm', eventType: 'license.expired', attempt: 1, url });
    // The caller's text of an HTTP failure may quote the response body: the span keeps the status code only.
    first.end({ statusCode: 503, error: 'HTTP 503: busy for LIC-77 bob@example.com' });
    const second = run.startAttempt({ endpoint: 'crm', eventType: 'license.expired', attempt: 2, url });
    const header = second.traceparent();
    expect(second.tracestate()).toBe('vendor=abc');
    second.end({ statusCode: 200, error: null });
    const refused = run.startAttempt({ endpoint: 'default', eventType: 'license.expiring', attempt: 1, url: 'http://127.0.0.1:9/hook' });
    refused.end({ statusCode: null, error: 'connect ECONNREFUSED 127.0.0.1:9' });
    run.end(3, 'abandoned');
    expect(await tracing.shutdown()).toEqual({ warning: null });

    const spans = collector.spans();
    const byName = (name: string) => spans.filter((span) => span.name === name);
    expect(spans.map((span) => span.name).sort()).toEqual(['POST', 'POST', 'POST', 'license-manager', 'record events']);
    const [runSpan] = byName('license-manager');
    expect(spans.every((span) => span.traceId === PARENT_TRACE)).toBe(true);
    expect(runSpan!.parentSpanId).toBe(PARENT_SPAN);
    expect(runSpan!.kind).toBe(1); // INTERNAL (OTLP's SPAN_KIND_INTERNAL)
    expect(attributes(runSpan!.attributes)).toEqual({
      'process.executable.name': 'license-manager',
      'process.pid': 4242,
      'process.exit.code': 3,
      'error.type': 'abandoned',
      'license_manager.command': 'process-expirations',
    });
    expect(runSpan!.status).toEqual({ code: 2, message: 'exit status 3' }); // STATUS_CODE_ERROR
    const [recordSpan] = byName('record events');
    expect(recordSpan!.parentSpanId).toBe(runSpan!.spanId);
    expect(attributes(recordSpan!.attributes)).toEqual({ 'license_manager.events.recorded': 2 });
    const attempts = byName('POST').map((span) => ({
      parent: span.parentSpanId,
      kind: span.kind,
      attributes: attributes(span.attributes),
      status: span.status,
    }));
    expect(attempts).toEqual(
      expect.arrayContaining([
        {
          parent: runSpan!.spanId,
          kind: 3, // CLIENT
          attributes: {
            'http.request.method': 'POST',
            'url.full': 'https://REDACTED:REDACTED@hooks.example.com/in?token=REDACTED',
            'server.address': 'hooks.example.com',
            'server.port': 443,
            'license_manager.endpoint': 'crm',
            'license_manager.event.type': 'license.expired',
            'license_manager.delivery.attempt': 1,
            'http.response.status_code': 503,
            'error.type': '503',
          },
          status: { code: 2, message: 'HTTP 503' },
        },
        {
          parent: runSpan!.spanId,
          kind: 3,
          attributes: expect.objectContaining({ 'license_manager.delivery.attempt': 2, 'http.request.resend_count': 1, 'http.response.status_code': 200 }),
          status: { code: 0 }, // unset
        },
        {
          parent: runSpan!.spanId,
          kind: 3,
          attributes: expect.objectContaining({ 'server.address': '127.0.0.1', 'server.port': 9, 'error.type': 'connection_refused' }),
          status: { code: 2, message: 'connect ECONNREFUSED 127.0.0.1:9' },
        },
      ]),
    );
    // The webhook's traceparent names the attempt's own span, in the caller's trace.
    const secondSpan = byName('POST').find((span) => attributes(span.attributes)['license_manager.delivery.attempt'] === 2)!;
    expect(header).toBe(`00-${PARENT_TRACE}-${secondSpan.spanId}-01`);
    const resource = attributes(collector.exports[0]!.resourceSpans[0]!.resource.attributes);
    expect(resource).toMatchObject({ 'service.name': 'lm-test', 'service.version': '9.9.9', 'telemetry.sdk.language': 'nodejs' });
    // Nothing secret reaches the collector.
    for (const body of collector.bodies) {
      expect(body).not.toContain('s3cret');
      expect(body).not.toContain('tok-value');
      expect(body).not.toMatch(/LIC-77|bob@example\.com|busy/);
    }
  });

  test('exit 0: no error, status unset; without TRACEPARENT the run span is a root', async () => {
    collector = await startCollector();
    const tracing = await startTracing({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${collector.url}/v1/traces`, OTEL_TRACES_EXPORTER: 'otlp' });
    const run = tracing.startRun('process-expirations');
    run.end(0);
    expect(await tracing.shutdown()).toEqual({ warning: null });
    const [span] = collector.spans();
    expect(span!.parentSpanId ?? '').toBe('');
    expect(attributes(span!.attributes)).toMatchObject({ 'process.exit.code': 0 });
    expect(attributes(span!.attributes)['error.type']).toBeUndefined();
    expect(span!.status.code ?? 0).toBe(0);
  });

  test("the caller's decision not to sample is kept: no span is exported, the flag travels on", async () => {
    collector = await startCollector();
    const tracing = await startTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, TRACEPARENT: `00-${PARENT_TRACE}-${PARENT_SPAN}-00` });
    const run = tracing.startRun('process-expirations');
    const attempt = run.startAttempt({ endpoint: 'default', eventType: 'license.expired', attempt: 1, url: 'https://hooks.example.com/' });
    expect(attempt.traceparent()).toMatch(new RegExp(`^00-${PARENT_TRACE}-[0-9a-f]{16}-00$`));
    attempt.end({ statusCode: 200, error: null });
    run.end(0);
    await tracing.shutdown();
    expect(collector.spans()).toEqual([]);
  });

  test('off: nothing is sent, and a webhook asking for trace context gets TRACEPARENT passed through', async () => {
    const tracing = await startTracing({ TRACEPARENT: `00-${PARENT_TRACE}-${PARENT_SPAN}-01`, TRACESTATE: 'vendor=abc' });
    expect(tracing).toMatchObject({ enabled: false, warnings: [] });
    const run = tracing.startRun('process-expirations');
    const attempt = run.startAttempt({ endpoint: 'default', eventType: 'license.expired', attempt: 1, url: 'https://hooks.example.com/' });
    expect(attempt.traceparent()).toBe(`00-${PARENT_TRACE}-${PARENT_SPAN}-01`);
    expect(attempt.tracestate()).toBe('vendor=abc');
    attempt.end({ statusCode: 200, error: null });
    run.end(0);
    expect(await tracing.shutdown()).toEqual({ warning: null });
    expect((await startTracing({})).startRun('x').traceparent()).toBeUndefined();
  });

  test('an unknown exporter: the warning comes back with a tracer that does nothing', async () => {
    const tracing = await startTracing({ OTEL_TRACES_EXPORTER: 'jaeger' });
    expect(tracing.enabled).toBe(false);
    expect(tracing.warnings).toEqual([
      'OTEL_TRACES_EXPORTER names "jaeger", which license-manager does not support (it takes otlp, console or none): no traces are sent.',
    ]);
  });

  test('the console exporter writes one JSON line per span to the stream it is given (stderr), not stdout', async () => {
    const lines: string[] = [];
    const tracing = await startTracing({ OTEL_TRACES_EXPORTER: 'console' }, { consoleStream: { write: (text: string) => lines.push(text) } });
    const run = tracing.startRun('status');
    run.end(1);
    await tracing.shutdown();
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      name: 'license-manager',
      attributes: { 'process.exit.code': 1, 'error.type': '1', 'license_manager.command': 'status' },
      status: { code: 2 },
    });
  });
});

describe('a collector that is down or hangs', () => {
  test('down: shutdown returns at once with a warning, and never throws', async () => {
    const endpoint = new URL(await closedPortUrl()).origin;
    const tracing = await startTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint });
    tracing.startRun('process-expirations').end(0);
    const started = performance.now();
    const result = await tracing.shutdown();
    expect(performance.now() - started).toBeLessThan(2500);
    expect(result.warning).toMatch(
      new RegExp(`^warning: traces (could not be sent to|were not all sent to) ${endpoint}/v1/traces.*The run itself is not affected\\.$`),
    );
  });

  test('hangs: shutdown returns within its bound', async () => {
    collector = await startCollector('hang');
    const tracing = await startTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: collector.url }, { shutdownTimeoutMs: 1000 });
    tracing.startRun('process-expirations').end(0);
    const started = performance.now();
    const result = await tracing.shutdown();
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(800);
    expect(elapsed).toBeLessThan(1800);
    expect(result.warning).toMatch(/^warning: traces (were not all sent to|could not be sent to) http:\/\/127\.0\.0\.1:\d+\/v1\/traces/);
  });

  test('hangs: the process itself exits soon after the default 2 s bound (no request outlives shutdown)', async () => {
    collector = await startCollector('hang');
    const dir = tempDir();
    const script = path.join(dir, 'run.mjs');
    fs.writeFileSync(
      script,
      `const { startTracing } = await import(${JSON.stringify(pathToFileURL(TRACING_JS).href)});
       const tracing = await startTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: ${JSON.stringify(collector.url)} });
       tracing.startRun('process-expirations').end(0);
       const started = performance.now();
       const result = await tracing.shutdown();
       const returned = performance.now() - started;
       // 'exit' fires only once nothing (no socket, no timer) keeps the event loop alive.
       process.on('exit', () => process.stdout.write(JSON.stringify({ result, returned, exited: performance.now() - started })));`,
    );
    const child = await runNode([script], {});
    expect(child.code).toBe(0);
    const { result, returned, exited } = JSON.parse(child.stdout) as { result: unknown; returned: number; exited: number };
    expect(result).toEqual({
      warning: expect.stringMatching(/^warning: traces (were not all sent to|could not be sent to) http:\/\/127\.0\.0\.1:\d+\/v1\/traces/),
    });
    expect(returned).toBeLessThan(2000 + 300);
    expect(exited).toBeLessThan(2000 + 1000);
  }, 30_000);
});

describe('when nothing asks for traces, no OpenTelemetry module is loaded', () => {
  /** Runs startTracing(env) in a child whose resolve hook logs every module URL it resolves, then lists the loaded @opentelemetry paths. */
  async function loadedModules(env: Record<string, string>): Promise<{ resolved: string[]; required: string[] }> {
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
    fs.writeFileSync(
      path.join(dir, 'run.mjs'),
      `import { createRequire } from 'node:module';
       const { startTracing } = await import(${JSON.stringify(pathToFileURL(TRACING_JS).href)});
       const tracing = await startTracing(${JSON.stringify(env)}, { consoleStream: { write() {} } });
       tracing.startRun('process-expirations').end(0);
       await tracing.shutdown();
       const required = Object.keys(createRequire(import.meta.url).cache).filter((file) => file.includes('@opentelemetry'));
       process.stdout.write(JSON.stringify(required));`,
    );
    const child = await runNode(['--import', pathToFileURL(path.join(dir, 'register.mjs')).href, path.join(dir, 'run.mjs')], { RESOLVE_LOG: log });
    expect(child.stderr).toBe('');
    expect(child.code).toBe(0);
    const resolved = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').filter(Boolean) : [];
    // The hook saw the module under test, so an @opentelemetry import would have been seen too.
    expect(resolved).toContain(pathToFileURL(TRACING_JS).href);
    return { resolved: resolved.filter((url) => url.includes('@opentelemetry')), required: JSON.parse(child.stdout) as string[] };
  }

  test('with no OTEL_* variable (or only TRACEPARENT), neither import() nor require() reaches @opentelemetry', async () => {
    expect(await loadedModules({})).toEqual({ resolved: [], required: [] });
    expect(await loadedModules({ TRACEPARENT: `00-${PARENT_TRACE}-${PARENT_SPAN}-01`, OTEL_SERVICE_NAME: 'lm' })).toEqual({ resolved: [], required: [] });
  }, 30_000);

  test('the same probe does see the SDK when traces are asked for (the check above can fail)', async () => {
    const { resolved, required } = await loadedModules({ OTEL_TRACES_EXPORTER: 'console' });
    expect(resolved.some((url) => url.includes('@opentelemetry/sdk-trace-base'))).toBe(true);
    expect(required.some((file) => file.includes('@opentelemetry/api'))).toBe(true);
    // console alone does not load the OTLP exporter either.
    expect(resolved.some((url) => url.includes('exporter-trace-otlp-http'))).toBe(false);
  }, 30_000);
});

function runNode(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
    delete childEnv.NODE_OPTIONS; // jest's --experimental-vm-modules is not for the child
    for (const name of Object.keys(childEnv)) if (name.startsWith('OTEL_') || name === 'TRACEPARENT' || name === 'TRACESTATE') delete childEnv[name];
    const child = spawn(process.execPath, args, { cwd: ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
