// OpenTelemetry traces, off unless OTEL_* variables ask for them: the SDK is loaded with import() only then; a run span, child spans for recording and delivery attempts, TRACEPARENT as parent, and a bounded flush.
import type { Context, Span, SpanContext, Tracer } from '@opentelemetry/api';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { maskCredentials } from '../credentials.js';
import { classifyAttempt } from './delivery-stats.js';
import { maskKeyPath } from './heartbeat.js';

type Env = Record<string, string | undefined>;

/** shutdown() returns within this, whatever the collector does (a one-shot CLI that never flushes loses every span). */
const DEFAULT_SHUTDOWN_TIMEOUT_MS = 2000;
/** The OTLP/HTTP default when no endpoint variable is set (the exporter specification's). */
const DEFAULT_TRACES_ENDPOINT = 'http://localhost:4318/v1/traces';
const EXPORTERS = ['otlp', 'console', 'none'] as const;

// The CLI span's process.* attributes are still "Development" in the semantic conventions; OpenTelemetry JS asks that
// unstable names be copied rather than imported from its incubating entry point.
const ATTR_PROCESS_EXECUTABLE_NAME = 'process.executable.name';
const ATTR_PROCESS_EXIT_CODE = 'process.exit.code';
const ATTR_PROCESS_PID = 'process.pid';
// This tool's own attributes: the endpoint's name, the event type and the attempt number (never a secret or a license's e-mail).
const ATTR_COMMAND = 'license_manager.command';
const ATTR_ENDPOINT = 'license_manager.endpoint';
const ATTR_EVENT_TYPE = 'license_manager.event.type';
const ATTR_ATTEMPT = 'license_manager.delivery.attempt';
const ATTR_EVENTS_RECORDED = 'license_manager.events.recorded';

/** What the environment asks for, decided without loading anything. */
export type TracingPlan =
  | { enabled: false; warnings: string[] }
  | {
      enabled: true;
      warnings: string[];
      console: boolean;
      /** The OTLP/HTTP JSON endpoint (the full URL, `/v1/traces` included); null when only the console exporter runs. */
      endpoint: string | null;
      headers: Record<string, string>;
      serviceName: string;
      resourceAttributes: Record<string, string>;
    };

function value(env: Env, name: string): string | undefined {
  const text = env[name]?.trim();
  return text ? text : undefined;
}

/** `key1=value1,key2=value2` with URL-encoded values (OTEL_EXPORTER_OTLP_HEADERS, OTEL_RESOURCE_ATTRIBUTES); bad entries are reported and skipped. */
function parseKeyValueList(text: string | undefined, variable: string, warnings: string[]): Record<string, string> {
  const result: Record<string, string> = {};
  if (!text) return result;
  const bad: string[] = [];
  for (const entry of text.split(',')) {
    if (!entry.trim()) continue;
    const equals = entry.indexOf('=');
    const key = equals > 0 ? entry.slice(0, equals).trim() : '';
    if (!key) {
      bad.push(entry.trim());
      continue;
    }
    try {
      result[key] = decodeURIComponent(entry.slice(equals + 1).trim());
    } catch {
      bad.push(key);
    }
  }
  // The values may be credentials (an API key header): only the keys or the shape are named.
  if (bad.length > 0)
    warnings.push(`${variable} has ${bad.length === 1 ? 'an entry' : `${bad.length} entries`} that is not key=value (URL-encoded): ignored. Check its syntax.`);
  return result;
}

function tracesEndpoint(env: Env, warnings: string[]): string | null {
  const signal = value(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  const base = value(env, 'OTEL_EXPORTER_OTLP_ENDPOINT');
  // The signal's own variable is the full URL; the general one gets /v1/traces appended (OTLP exporter specification).
  const [variable, endpoint] = signal
    ? ['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', signal]
    : base
      ? ['OTEL_EXPORTER_OTLP_ENDPOINT', `${base.replace(/\/+$/, '')}/v1/traces`]
      : ['', DEFAULT_TRACES_ENDPOINT];
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    warnings.push(`${variable} "${maskCredentials(signal ?? base ?? '')}" is not an absolute URL (e.g. http://localhost:4318): traces are not sent over OTLP.`);
    return null;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    warnings.push(`${variable} must be an http: or https: URL, not ${url.protocol}: traces are not sent over OTLP.`);
    return null;
  }
  return url.toString();
}

/**
 * What the OTEL_* variables ask for. Traces are on when OTEL_TRACES_EXPORTER names `otlp` or `console`, or an
 * OTLP endpoint variable is set; OTEL_SERVICE_NAME or TRACEPARENT alone turn nothing on (hosts set them for
 * everything). OTEL_SDK_DISABLED=true turns everything off. An exporter or protocol this tool cannot serve is one
 * warning and no tracing of that kind; the job itself runs as ever.
 */
export function planTracing(env: Env): TracingPlan {
  const warnings: string[] = [];
  if (value(env, 'OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return { enabled: false, warnings };
  const listed = (value(env, 'OTEL_TRACES_EXPORTER') ?? '')
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter(Boolean);
  const unknown = listed.filter((name) => !(EXPORTERS as readonly string[]).includes(name));
  if (unknown.length > 0) {
    warnings.push(
      `OTEL_TRACES_EXPORTER names ${unknown.map((name) => `"${name}"`).join(', ')}, which license-manager does not support (it takes otlp, console or none): no traces are sent.`,
    );
    return { enabled: false, warnings };
  }
  const endpointSet = Boolean(value(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') ?? value(env, 'OTEL_EXPORTER_OTLP_ENDPOINT'));
  const exporters = new Set(listed.length > 0 ? listed : endpointSet ? ['otlp'] : []);
  if (exporters.has('none') || exporters.size === 0) return { enabled: false, warnings };
  let endpoint: string | null = null;
  if (exporters.has('otlp')) {
    const protocolVariable = value(env, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL' : 'OTEL_EXPORTER_OTLP_PROTOCOL';
    const protocol = value(env, protocolVariable)?.toLowerCase() ?? 'http/json';
    if (protocol === 'http/json') {
      endpoint = tracesEndpoint(env, warnings);
    } else if (protocol === 'http/protobuf') {
      // An OTLP/HTTP receiver takes JSON on the same path (the collector's does): send that rather than nothing.
      warnings.push(`${protocolVariable} is http/protobuf; license-manager sends OTLP as http/json to the same endpoint.`);
      endpoint = tracesEndpoint(env, warnings);
    } else {
      warnings.push(
        `${protocolVariable} is "${protocol}", which license-manager cannot send (it sends OTLP over http/json; point OTEL_EXPORTER_OTLP_ENDPOINT at the collector's HTTP port, usually 4318): no traces are sent over OTLP.`,
      );
    }
  }
  const console = exporters.has('console');
  if (endpoint === null && !console) return { enabled: false, warnings };
  const resourceAttributes = parseKeyValueList(value(env, 'OTEL_RESOURCE_ATTRIBUTES'), 'OTEL_RESOURCE_ATTRIBUTES', warnings);
  const headers = {
    ...parseKeyValueList(value(env, 'OTEL_EXPORTER_OTLP_HEADERS'), 'OTEL_EXPORTER_OTLP_HEADERS', warnings),
    ...parseKeyValueList(value(env, 'OTEL_EXPORTER_OTLP_TRACES_HEADERS'), 'OTEL_EXPORTER_OTLP_TRACES_HEADERS', warnings),
  };
  const serviceName = value(env, 'OTEL_SERVICE_NAME') ?? resourceAttributes['service.name'] ?? 'license-manager';
  return { enabled: true, warnings, console, endpoint, headers, serviceName, resourceAttributes };
}

/** A parent from TRACEPARENT/TRACESTATE (W3C Trace Context, carried in the environment as the env-carriers specification says). */
interface RemoteParent {
  traceId: string;
  spanId: string;
  traceFlags: number;
  traceState?: string;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** TRACEPARENT parsed as W3C Trace Context level 1 says: unknown versions read by their first four fields, version ff and all-zero ids refused. */
export function parseTraceparent(traceparent: string | undefined, tracestate?: string): RemoteParent | undefined {
  const match = TRACEPARENT.exec(traceparent?.trim() ?? '');
  if (!match) return undefined;
  const [, version, traceId, spanId, flags, rest] = match;
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (/^0+$/.test(traceId!) || /^0+$/.test(spanId!)) return undefined;
  const state = tracestate?.trim();
  return { traceId: traceId!, spanId: spanId!, traceFlags: Number.parseInt(flags!, 16) & 0xff, ...(state ? { traceState: state } : {}) };
}

function formatTraceparent(context: { traceId: string; spanId: string; traceFlags: number }): string {
  return `00-${context.traceId}-${context.spanId}-${(context.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}

/**
 * A URL as a trace may show it (semantic conventions, url.full): user name and password become REDACTED, every
 * query value too (a receiver's token often travels there), and every path segment that looks like a key (Slack's
 * and Discord's /webhooks/<id>/<token>), as the ping URL is shown (maskKeyPath).
 */
export function redactUrl(target: string): string {
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return maskCredentials(target);
  }
  if (url.username || url.password) {
    url.username = 'REDACTED';
    url.password = 'REDACTED';
  }
  if (url.search) {
    const names = [...url.searchParams.keys()];
    url.search = names.map((name) => `${encodeURIComponent(name)}=REDACTED`).join('&');
  }
  url.pathname = maskKeyPath(url.pathname, 'REDACTED');
  url.hash = '';
  return url.toString();
}

interface AttemptSpanInput {
  /** The endpoint's name (`default` for webhooks.url). */
  endpoint: string;
  eventType: string;
  /** 1 for the first attempt of a delivery. */
  attempt: number;
  /** The URL the attempt goes to; credentials and query values are redacted before it is recorded. */
  url: string;
}

interface AttemptSpan {
  /** The `traceparent` header value for this attempt's request (sent when the endpoint asks for it), or undefined. */
  traceparent(): string | undefined;
  /** The `tracestate` header value to send beside it, when there is one. */
  tracestate(): string | undefined;
  end(outcome: { statusCode: number | null; error: string | null }): void;
}

interface RecordingSpan {
  end(outcome: { recorded: number; error?: string }): void;
}

export interface RunSpan {
  startRecording(): RecordingSpan;
  startAttempt(input: AttemptSpanInput): AttemptSpan;
  /** The `traceparent` of the run itself (for something sent outside an attempt), or undefined. */
  traceparent(): string | undefined;
  /** Ends the run: `process.exit.code`; a code other than 0 is status Error with `error.type` (the given class, or the code). */
  end(exitCode: number, errorType?: string): void;
}

interface TracingShutdown {
  /** Why spans may not have reached the collector (a warning for stderr), or null. */
  warning: string | null;
}

export interface Tracing {
  readonly enabled: boolean;
  /** What the CLI should print on stderr once (unknown exporter, unsupported protocol, bad headers). */
  readonly warnings: readonly string[];
  /** One span per command run, named after the executable (semantic conventions for CLI programs). */
  startRun(command: string): RunSpan;
  /** Flushes what is left within the bound, and never throws. */
  shutdown(): Promise<TracingShutdown>;
}

export interface TracingOptions {
  /** The program's name as operators run it; the run span's name and `process.executable.name`. */
  executableName?: string;
  /** This tool's version, as `service.version`. */
  version?: string;
  pid?: number;
  /** Where the console exporter writes one JSON line per span: stderr, since stdout belongs to --json. */
  consoleStream?: { write(text: string): unknown };
  shutdownTimeoutMs?: number;
}

/**
 * Tracing with nothing loaded: spans cost nothing, and a webhook that asks for trace context gets the caller's
 * TRACEPARENT passed through unchanged, as the OpenTelemetry API does when no SDK is installed.
 */
function noopTracing(warnings: string[], parent: RemoteParent | undefined): Tracing {
  const traceparent = () => (parent ? formatTraceparent(parent) : undefined);
  const tracestate = () => parent?.traceState;
  const attempt: AttemptSpan = { traceparent, tracestate, end: () => undefined };
  const run: RunSpan = { startRecording: () => ({ end: () => undefined }), startAttempt: () => attempt, traceparent, end: () => undefined };
  return { enabled: false, warnings, startRun: () => run, shutdown: async () => ({ warning: null }) };
}

/**
 * Starts tracing as `env` asks (see planTracing). When it asks for nothing, no OpenTelemetry module is imported at
 * all. Never throws: an SDK that fails to load is a warning and a no-op tracer.
 */
export async function startTracing(env: Env, options: TracingOptions = {}): Promise<Tracing> {
  const plan = planTracing(env);
  const parent = parseTraceparent(env.TRACEPARENT, env.TRACESTATE);
  if (!plan.enabled) return noopTracing(plan.warnings, parent);
  try {
    return await startSdk(plan, parent, options);
  } catch (error) {
    return noopTracing(
      [...plan.warnings, `OpenTelemetry could not be started (${error instanceof Error ? error.message : String(error)}): no traces are sent.`],
      parent,
    );
  }
}

async function startSdk(plan: Extract<TracingPlan, { enabled: true }>, parent: RemoteParent | undefined, options: TracingOptions): Promise<Tracing> {
  const [api, sdk, resources, semconv] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/semantic-conventions'),
  ]);
  const { trace, ROOT_CONTEXT, SpanKind, SpanStatusCode, createTraceState } = api;
  const bound = options.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_TIMEOUT_MS;
  const executable = options.executableName ?? 'license-manager';
  const pid = options.pid ?? process.pid;
  const failures: string[] = [];
  const processors = [];
  if (plan.endpoint !== null) {
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
    const endpoint = plan.endpoint;
    // Each export gives up before the flush bound, so no request outlives shutdown() and keeps the process up.
    const otlp = new OTLPTraceExporter({ url: endpoint, headers: plan.headers, timeoutMillis: Math.max(100, Math.floor(bound * 0.9)), keepAlive: false });
    const exporter: SpanExporter = {
      export: (spans, done) =>
        otlp.export(spans, (result) => {
          if (result.code !== 0) failures.push(`traces could not be sent to ${maskCredentials(endpoint)}: ${result.error?.message ?? 'export failed'}`);
          done(result);
        }),
      shutdown: () => otlp.shutdown(),
      forceFlush: () => otlp.forceFlush(),
    };
    // A large queue: a 10,000-event run makes that many attempt spans before the first flush can drain them.
    processors.push(
      new sdk.BatchSpanProcessor(exporter, { maxQueueSize: 16_384, maxExportBatchSize: 1024, scheduledDelayMillis: 1000, exportTimeoutMillis: bound }),
    );
  }
  if (plan.console) processors.push(new sdk.SimpleSpanProcessor(consoleExporter(options.consoleStream ?? process.stderr)));
  const provider = new sdk.BasicTracerProvider({
    resource: resources.defaultResource().merge(
      resources.resourceFromAttributes({
        ...plan.resourceAttributes,
        [semconv.ATTR_SERVICE_NAME]: plan.serviceName,
        ...(options.version ? { [semconv.ATTR_SERVICE_VERSION]: options.version } : {}),
      }),
    ),
    // Set here, not read from OTEL_TRACES_SAMPLER in process.env: the caller's sampling decision (TRACEPARENT's flag) is kept.
    sampler: new sdk.ParentBasedSampler({ root: new sdk.AlwaysOnSampler() }),
    spanProcessors: processors,
  });
  const tracer: Tracer = provider.getTracer('license-manager', options.version);
  let rootContext: Context = ROOT_CONTEXT;
  if (parent) {
    const remote: SpanContext = {
      traceId: parent.traceId,
      spanId: parent.spanId,
      traceFlags: parent.traceFlags,
      isRemote: true,
      ...(parent.traceState ? { traceState: createTraceState(parent.traceState) } : {}),
    };
    rootContext = trace.setSpanContext(ROOT_CONTEXT, remote);
  }
  const headerOf = (span: Span) => formatTraceparent(span.spanContext());
  const stateOf = (span: Span) => span.spanContext().traceState?.serialize() || undefined;

  const startRun = (command: string): RunSpan => {
    const run = tracer.startSpan(
      executable,
      { kind: SpanKind.INTERNAL, attributes: { [ATTR_PROCESS_EXECUTABLE_NAME]: executable, [ATTR_PROCESS_PID]: pid, [ATTR_COMMAND]: command } },
      rootContext,
    );
    const runContext = trace.setSpan(rootContext, run);
    return {
      startRecording: () => {
        const span = tracer.startSpan('record events', { kind: SpanKind.INTERNAL }, runContext);
        return {
          end: (outcome) => {
            span.setAttribute(ATTR_EVENTS_RECORDED, outcome.recorded);
            if (outcome.error) span.setStatus({ code: SpanStatusCode.ERROR, message: maskCredentials(outcome.error) });
            span.end();
          },
        };
      },
      startAttempt: (input) => {
        const url = safeUrl(input.url);
        const span = tracer.startSpan(
          'POST',
          {
            kind: SpanKind.CLIENT,
            attributes: {
              [semconv.ATTR_HTTP_REQUEST_METHOD]: 'POST',
              [semconv.ATTR_URL_FULL]: redactUrl(input.url),
              ...(url
                ? { [semconv.ATTR_SERVER_ADDRESS]: url.hostname, [semconv.ATTR_SERVER_PORT]: Number(url.port || (url.protocol === 'https:' ? 443 : 80)) }
                : {}),
              ...(input.attempt > 1 ? { [semconv.ATTR_HTTP_REQUEST_RESEND_COUNT]: input.attempt - 1 } : {}),
              [ATTR_ENDPOINT]: input.endpoint,
              [ATTR_EVENT_TYPE]: input.eventType,
              [ATTR_ATTEMPT]: input.attempt,
            },
          },
          runContext,
        );
        return {
          traceparent: () => headerOf(span),
          tracestate: () => stateOf(span),
          end: (outcome) => {
            if (outcome.statusCode !== null) span.setAttribute(semconv.ATTR_HTTP_RESPONSE_STATUS_CODE, outcome.statusCode);
            const kind = classifyAttempt(outcome);
            if (kind !== 'success') {
              // HTTP semantic conventions: the status code as text for an HTTP failure, a low-cardinality class otherwise.
              span.setAttribute(semconv.ATTR_ERROR_TYPE, outcome.statusCode !== null ? String(outcome.statusCode) : kind);
              // An HTTP failure is its status code only: the response body (or a redirect's Location) may echo the
              // license's code or e-mail, and never goes into a span. A transport error is its own text.
              const message = outcome.statusCode !== null ? `HTTP ${outcome.statusCode}` : maskCredentials(outcome.error ?? kind);
              span.setStatus({ code: SpanStatusCode.ERROR, message });
            }
            span.end();
          },
        };
      },
      traceparent: () => headerOf(run),
      end: (exitCode, errorType) => {
        run.setAttribute(ATTR_PROCESS_EXIT_CODE, exitCode);
        if (exitCode !== 0) {
          run.setAttribute(semconv.ATTR_ERROR_TYPE, errorType ?? String(exitCode));
          run.setStatus({ code: SpanStatusCode.ERROR, message: `exit status ${exitCode}` });
        }
        run.end();
      },
    };
  };

  let closing: Promise<TracingShutdown> | undefined;
  const shutdown = (): Promise<TracingShutdown> => {
    closing ??= (async () => {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), bound);
        timer.unref();
      });
      try {
        const outcome = await Promise.race([provider.shutdown().then(() => 'done' as const), late]);
        if (outcome === 'late')
          failures.push(`traces were not all sent to ${plan.endpoint ? maskCredentials(plan.endpoint) : 'the console'} within ${bound} ms`);
      } catch (error) {
        // An export that failed has said why already; the flush rejects with the same reason.
        if (failures.length === 0) failures.push(`traces could not be flushed: ${error instanceof Error ? error.message : String(error)}`);
      } finally {
        clearTimeout(timer);
      }
      return { warning: failures.length > 0 ? `warning: ${[...new Set(failures)].join('; ')}. The run itself is not affected.` : null };
    })();
    return closing;
  };

  return { enabled: true, warnings: plan.warnings, startRun, shutdown };
}

function safeUrl(text: string): URL | undefined {
  try {
    return new URL(text);
  } catch {
    return undefined;
  }
}

/** The console exporter: one JSON line per span on a stream (stderr), not console.log (stdout carries --json). */
function consoleExporter(stream: { write(text: string): unknown }): SpanExporter {
  return {
    export: (spans: ReadableSpan[], done) => {
      for (const span of spans) {
        const context = span.spanContext();
        stream.write(
          `${JSON.stringify({
            traceId: context.traceId,
            spanId: context.spanId,
            parentSpanId: span.parentSpanContext?.spanId,
            name: span.name,
            kind: span.kind,
            startTime: span.startTime,
            duration: span.duration,
            attributes: span.attributes,
            status: span.status,
          })}\n`,
        );
      }
      done({ code: 0 });
    },
    shutdown: async () => undefined,
  };
}
