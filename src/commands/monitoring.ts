// Monitoring of the cron job: the heartbeat pings around a real run, the Prometheus textfile after it, the snapshot `status --format prometheus` prints, and the last ping's result that `status` shows.
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { $Fetch } from 'ofetch';
import { systemClock, type Clock } from '../clock.js';
import { EXIT, usageError } from '../errors.js';
import { commandLine } from '../command-line.js';
import { lastConfigLoad, type LoadedConfig } from '../config/load-config.js';
import { notRegularFile } from '../file-kind.js';
import { parsePingText, type PingTarget } from '../config/ping.js';
import { resolveEndpoints } from '../config/endpoints.js';
import { parseStoredCircuit } from '../delivery/circuit.js';
import type { TracedAttempt } from '../delivery/deliver-pending.js';
import type { RunSpan } from '../monitoring/tracing.js';
import type { AttemptTrace } from '../webhooks/deliver.js';
import { endPing, pingWarning, sendPing, startPing, type PingResult } from '../monitoring/heartbeat.js';
import { renderMetrics, textfileProblem, withUnopenedRun, writeTextfileAtomically, type MetricsSnapshot } from '../monitoring/prometheus.js';
import { endpointStates } from '../storage/endpoint-states.repository.js';
import { storedEndpointsAddedAt } from '../storage/endpoints.repository.js';
import { deliveryTotals, endpointDeliveries, endpointStreaks, readLastPing, runsForMetrics, saveLastPing } from '../storage/monitoring.repository.js';
import { plural } from '../plural.js';
import { formatUtc, parseUtc } from '../time.js';
import { InvalidSettingsError, type CommandContext, type GlobalOptions } from './context.js';

/** What a real process-expirations run tells its monitor; a dry run has none. */
export interface RunMonitor {
  /** Before the run: a monitoring setting that cannot work is exit 2 naming its key (the run is recorded as refused). */
  check(): Promise<void>;
  /** The run is recorded: the start ping goes out beside it (the run does not wait for it). */
  started(runId: string): void;
  /** The run has ended however it ended (refused included): textfile, then end ping. Never throws. */
  finished(end: MonitoredRunEnd): Promise<void>;
}

interface MonitoredRunEnd {
  runId: string;
  exitCode: number;
  /** The `runs` status: succeeded, abandoned, failed, stopped, refused. */
  status: string;
  recorded: number;
  delivered: number;
  abandoned: number;
  /** What waits on a failing receiver as the run ends (deferred; parked by a 410): what makes exit 4. */
  deferred?: number;
  parked?: number;
  /** Not sent: their license changed or expired while they waited. */
  superseded?: number;
}

export interface RunMonitorOptions {
  /** This tool's version: `license_manager_build_info` and the pings' User-Agent. */
  version: string;
  clock?: Clock;
  fetch?: $Fetch;
  onWarning?: (message: string) => void;
  /** The bound of each ping (retry included); the default is heartbeat's 5 s. */
  pingTotalMs?: number;
}

/** What `status` shows of the last run's pings. */
export interface LastPing {
  start: PingResult | null;
  end: PingResult | null;
}

/** The command's span, and whether an SDK records it (without one, spans cost nothing and only TRACEPARENT passes on). */
export interface RunTracing {
  enabled: boolean;
  run: RunSpan;
}

/**
 * The per-attempt tracer of a run: a child span per attempt, and the traceparent header on the webhooks of the
 * endpoints monitoring.traceparent names. Undefined when there is nothing to do, so an untraced run pays nothing.
 */
export function attemptTracer(
  tracing: RunTracing | undefined,
  traceparentEndpoints: readonly string[],
): ((attempt: TracedAttempt) => AttemptTrace) | undefined {
  if (!tracing || (!tracing.enabled && traceparentEndpoints.length === 0)) return undefined;
  const carriers = new Set(traceparentEndpoints);
  return (attempt) => {
    const span = tracing.run.startAttempt(attempt);
    let headers: Record<string, string> | undefined;
    const traceparent = carriers.has(attempt.endpoint) ? span.traceparent() : undefined;
    if (traceparent) {
      const tracestate = span.tracestate();
      headers = { traceparent, ...(tracestate ? { tracestate } : {}) };
    }
    return { ...(headers ? { headers } : {}), end: (outcome) => span.end(outcome) };
  };
}

/** monitoring.textfile as an absolute path: a relative one is relative to the config file, like database.filename. */
export function textfilePath(context: Pick<CommandContext, 'config' | 'configFile'>): string | null {
  const file = context.config.monitoring.textfile;
  if (file === null) return null;
  return path.resolve(context.configFile ? path.dirname(context.configFile) : process.cwd(), file);
}

function toDate(value: string | Date | null): Date | null {
  if (value === null) return null;
  if (value instanceof Date) return value;
  return parseUtc(value) ?? null;
}

/** Everything the textfile shows, read from the database (never from one run's memory alone). */
async function metricsSnapshot(context: Pick<CommandContext, 'db' | 'config'>, version: string, now: Date): Promise<MetricsSnapshot> {
  const { db } = context;
  const [runs, totals, allDeliveries, states, defined, addedAt] = await Promise.all([
    runsForMetrics(db),
    deliveryTotals(db),
    endpointDeliveries(db),
    endpointStates(db),
    resolveEndpoints(db, context.config.webhooks, now),
    storedEndpointsAddedAt(db),
  ]);
  // An endpoint no longer defined stays only while deliveries still wait on it (or were abandoned): one removed, its
  // undelivered ones ended, leaves the metrics, or an alert on its failures would fire for ever.
  const names = new Set(defined.map((endpoint) => endpoint.name));
  const left = (row: (typeof allDeliveries)[number]) =>
    (['pending', 'delivering', 'deferred', 'parked', 'abandoned'] as const).some((status) => (row.byStatus[status] ?? 0) > 0);
  const deliveries = allDeliveries.filter((row) => names.has(row.endpoint) || left(row));
  const withDeliveries = deliveries.map((row) => row.endpoint);
  const streaks = await endpointStreaks(db, withDeliveries, addedAt);
  const streakOf = new Map(streaks.map((streak) => [streak.endpoint, streak]));
  // The circuit as the last run stored it: open (or half-open, waiting for the next run's probe) is 1, closed or none stored is 0,
  // one that cannot be read is left out. A 410 disablement is not an open circuit: it shows in the parked deliveries.
  const circuitOpen = (name: string): { circuitOpen?: boolean } => {
    const stored = states.get(name)?.circuit;
    if (stored === undefined) return { circuitOpen: false };
    const circuit = parseStoredCircuit(stored);
    return circuit === undefined ? {} : { circuitOpen: circuit.state !== 'closed' };
  };
  const lastRun =
    runs.lastRun && toDate(runs.lastRun.startedAt) && toDate(runs.lastRun.finishedAt)
      ? { startedAt: toDate(runs.lastRun.startedAt)!, finishedAt: toDate(runs.lastRun.finishedAt)!, exitCode: runs.lastRun.exitCode }
      : null;
  return {
    version,
    lastSuccessAt: toDate(runs.lastSuccessAt),
    lastRun,
    eventsRecorded: totals.events,
    deliveries: totals.deliveries,
    endpoints: deliveries.map((row) => ({
      name: row.endpoint,
      deferred: row.byStatus.deferred ?? 0,
      parked: row.byStatus.parked ?? 0,
      abandoned: row.byStatus.abandoned ?? 0,
      consecutiveFailures: streakOf.get(row.endpoint)?.consecutiveFailures ?? 0,
      oldestUndeliveredAt: toDate(row.oldestUndeliveredAt),
      ...circuitOpen(row.endpoint),
    })),
  };
}

/** The metrics text at `now`: what the textfile holds and `status --format prometheus` prints. */
export async function metricsText(context: Pick<CommandContext, 'db' | 'config'>, version: string, now: Date): Promise<string> {
  return renderMetrics(await metricsSnapshot(context, version, now), now);
}

/** The last run's pings as stored; null before the first, or when what is stored cannot be read. */
export async function lastPing(context: Pick<CommandContext, 'db'>): Promise<LastPing | null> {
  const text = await readLastPing(context.db);
  if (text === undefined) return null;
  try {
    const parsed = JSON.parse(text) as Partial<LastPing>;
    return { start: parsed.start ?? null, end: parsed.end ?? null };
  } catch {
    return null;
  }
}

/** The one-line summary the end ping carries: counts and the outcome, never license data. */
function runSummary(end: MonitoredRunEnd, durationMs: number): string {
  // The counts that explain an exit 4 (and a notice not sent) only when there are any: a good day's line stays short.
  const more = [
    end.deferred ? `${end.deferred} deferred` : '',
    end.parked ? `${end.parked} parked` : '',
    end.superseded ? `${end.superseded} superseded` : '',
  ].filter(Boolean);
  return `license-manager process-expirations ${end.status} (exit ${end.exitCode}) in ${(durationMs / 1000).toFixed(1)} s: ${plural(end.recorded, 'event')} recorded, ${end.delivered} delivered, ${end.abandoned} abandoned${more.map((part) => `, ${part}`).join('')}`;
}

/**
 * A real run that failed before its database was open (the server is down, the schema is not migrated, the config
 * or a stored setting cannot be used): no run is recorded and no start ping went out, but its monitors still hear
 * of it, as a run's do when it ends: the textfile, then the end ping. Never throws.
 */
export async function monitorUnopenedRun(
  globals: GlobalOptions,
  exitCode: number,
  durationMs: number,
  options: RunMonitorOptions,
  error?: unknown,
): Promise<void> {
  // As the command loaded it: a JS config is not run twice, nor one that never finishes waited on twice. A config
  // that cannot be read names no textfile and no ping: the error already says what is wrong with it.
  const loaded = await lastConfigLoad({ file: globals.config, cwd: globals.cwd }).catch(() => undefined);
  if (loaded) {
    await writeUnopenedTextfile(loaded, exitCode, durationMs, options).catch((error: unknown) =>
      options.onWarning?.(
        `the metrics file was not updated: ${error instanceof Error ? error.message : String(error)}. The run's exit status does not change.`,
      ),
    );
  }
  await pingUnopenedRun(globals, loaded, exitCode, options, error);
}

/**
 * The textfile of a run that could not open its database: the last run's exit status, time and duration (and the
 * build info) are this run's, every other line is left as the file had it (counts from a database this run could
 * not read), so an alert on the exit status sees the failure instead of the run before it. Written atomically.
 */
async function writeUnopenedTextfile(loaded: LoadedConfig, exitCode: number, durationMs: number, options: RunMonitorOptions): Promise<void> {
  const textfile = textfilePath({ config: loaded.config, configFile: loaded.filepath });
  if (textfile === null) return;
  const warn = (message: string) => options.onWarning?.(`${message} The run's exit status does not change.`);
  let existing: string | null = null;
  let unreadable: string | undefined;
  try {
    // Not opened unless a regular file (a FIFO would block the read): the rename replaces anything else, or says why not.
    if (!notRegularFile(textfile)) existing = await readFile(textfile, 'utf8');
  } catch (error) {
    // No file yet (or no folder: the write names that). Any other error (a file of another user this one may not
    // read, say): the file is replaced all the same, as a run's is (the rename needs only the folder), else it would
    // keep the previous run's exit status and the failure would not show; its counts and last success are lost.
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') unreadable = (error as NodeJS.ErrnoException).message ?? String(error);
  }
  // To the second, as a recorded run's times are.
  const finishedAt = new Date(Math.floor((options.clock ?? systemClock).now().getTime() / 1000) * 1000);
  const startedAt = new Date(finishedAt.getTime() - Math.max(0, Math.round(durationMs / 1000)) * 1000);
  const text = withUnopenedRun(existing, { version: options.version, startedAt, finishedAt, exitCode }, { unreadable: unreadable !== undefined });
  const written = await writeTextfileAtomically(textfile, text);
  if (!written.ok) warn(written.error);
  else if (unreadable !== undefined) {
    warn(
      `the metrics file ${textfile} could not be read (${unreadable}): it was replaced with this run's exit status, time and duration and the build info only; the counts and the last success come back with the next run that opens the database.`,
    );
  }
}

/**
 * The end ping of a run that could not open its database, with the exit status under a fresh run id. The ping is
 * what LICENSE_MANAGER_PING or the config file names (a stored setting cannot be read without the database); for a
 * run refused by an invalid stored setting (`error`), the database was read: the ping is the one the run would have
 * used, the stored `ping` setting applied when it is valid. Bounded as every ping; never throws.
 */
async function pingUnopenedRun(
  globals: GlobalOptions,
  loaded: LoadedConfig | undefined,
  exitCode: number,
  options: RunMonitorOptions,
  error?: unknown,
): Promise<void> {
  let ping: PingTarget | null = null;
  const settingsRefusal = error instanceof InvalidSettingsError;
  const fromEnv = globals.env.LICENSE_MANAGER_PING;
  if (settingsRefusal) ping = error.ping;
  else if (fromEnv !== undefined && fromEnv !== '') {
    const parsed = parsePingText(fromEnv);
    if ('problem' in parsed) return;
    ping = parsed.value;
  } else if (loaded) ping = loaded.config.monitoring.ping;
  if (ping === null) return;
  const status = exitCode === EXIT.usage ? 'refused' : 'failed';
  const when = settingsRefusal ? 'before it started (a stored setting is invalid)' : 'before its database was open';
  const summary = `license-manager process-expirations ${status} (exit ${exitCode}) ${when}: nothing recorded or sent`;
  const result = await sendPing(endPing(ping, { runId: randomUUID(), exitCode, summary }), {
    clock: options.clock ?? systemClock,
    fetch: options.fetch,
    userAgent: `license-manager/${options.version}`,
    totalMs: options.pingTotalMs,
  });
  const setIn = settingsRefusal ? 'the ping setting or monitoring.ping' : fromEnvSet(globals) ? 'LICENSE_MANAGER_PING' : 'monitoring.ping';
  const warning = pingWarning(result, setIn);
  if (warning) options.onWarning?.(warning.replace(/^warning: /, ''));
}

const fromEnvSet = (globals: GlobalOptions) => globals.env.LICENSE_MANAGER_PING !== undefined && globals.env.LICENSE_MANAGER_PING !== '';

/** Where the run's ping was set, as a failed ping's warning names it. */
function pingSetIn(context: CommandContext): string {
  const source = context.settings.find((setting) => setting.key === 'ping')?.source;
  if (source === 'env') return 'LICENSE_MANAGER_PING';
  if (source === 'settings') return `the ping setting ("${commandLine('settings get ping')}")`;
  return context.configFile ? `monitoring.ping in ${context.configFile}` : 'monitoring.ping';
}

/** The monitor of one run, as the config and settings ask; a monitor that does nothing when neither ping nor textfile is set. */
export function runMonitor(context: CommandContext, options: RunMonitorOptions): RunMonitor {
  const clock = options.clock ?? systemClock;
  const ping = context.config.monitoring.ping;
  const textfile = textfilePath(context);
  const warn = options.onWarning ?? (() => undefined);
  const pingOptions = { clock, fetch: options.fetch, userAgent: `license-manager/${options.version}`, totalMs: options.pingTotalMs };
  let startedAt = performance.now();
  let startPinged: Promise<PingResult> | undefined;
  // A textfile refused by check() is not tried again at the end: the refusal has named it already.
  let textfileRefused = false;

  return {
    check: async () => {
      const carriers = context.config.monitoring.traceparent;
      if (carriers.length > 0) {
        const known = (await resolveEndpoints(context.db, context.config.webhooks, clock.now())).map((endpoint) => endpoint.name);
        const unknown = carriers.filter((name) => !known.includes(name));
        if (unknown.length > 0) {
          throw usageError(
            `monitoring.traceparent names ${unknown.map((name) => `"${name}"`).join(', ')}, which ${unknown.length === 1 ? 'is no endpoint' : 'are no endpoints'} (known: ${known.join(', ')}).`,
          );
        }
      }
      const problem = textfile === null ? undefined : await textfileProblem(textfile);
      if (problem) {
        textfileRefused = true;
        throw usageError(
          `monitoring.textfile ${textfile}: ${problem}. Create the folder (node_exporter's --collector.textfile.directory) and let this user write there, or remove monitoring.textfile${context.configFile ? ` from ${context.configFile}` : ''}.`,
        );
      }
    },
    started: (runId) => {
      startedAt = performance.now();
      if (ping) startPinged = sendPing(startPing(ping, runId), pingOptions);
    },
    finished: async (end) => {
      const durationMs = Math.round(performance.now() - startedAt);
      if (textfile !== null && !textfileRefused) {
        try {
          const written = await writeTextfileAtomically(textfile, await metricsText(context, options.version, clock.now()));
          if (!written.ok) warn(`${written.error} The run's exit status does not change.`);
        } catch (error) {
          warn(
            `the metrics file ${textfile} was not written: ${error instanceof Error ? error.message : String(error)}. The run's exit status does not change.`,
          );
        }
      }
      if (!ping) return;
      const start = startPinged ? await startPinged : null;
      const finish = await sendPing(endPing(ping, { runId: end.runId, exitCode: end.exitCode, summary: runSummary(end, durationMs), durationMs }), pingOptions);
      for (const result of [start, finish]) {
        const warning = result && pingWarning(result, pingSetIn(context));
        if (warning) warn(warning.replace(/^warning: /, ''));
      }
      await saveLastPing(context.db, JSON.stringify({ start, end: finish } satisfies LastPing), formatUtc(clock.now())).catch(() => undefined);
    },
  };
}
