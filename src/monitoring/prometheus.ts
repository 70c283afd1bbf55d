// The Prometheus textfile (monitoring.textfile, `status --format prometheus`): metrics rendered in the text exposition format from a plain snapshot, and written atomically for node_exporter.
import { randomBytes } from 'node:crypto';
import { access, constants, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { EXPIRED_REMINDER } from '../expirations/after-expiry.js';
import { DELIVERY_STATUSES } from '../storage/database.table.js';
import { EVENT_TYPES } from '../webhooks/event-types.js';

// Copied, not imported: loading the reminder rule (and the payload builder behind it) only for its name costs a status call.
const REMINDER_TYPE: typeof EXPIRED_REMINDER = 'license.expired_reminder';
/** Every event type a run may record: each has its series from the start, at 0 until one is recorded. */
const KNOWN_EVENT_TYPES: readonly string[] = [...EVENT_TYPES, REMINDER_TYPE];

/**
 * One endpoint's state, from the deliveries and circuit of that endpoint.
 * Each field says where the database has it.
 */
interface EndpointMetrics {
  /** The endpoint's name (`default` for webhooks.url). */
  name: string;
  /** Deliveries waiting for a later run: `COUNT(*) WHERE status = 'deferred'`. */
  deferred: number;
  /** Deliveries held while the endpoint is disabled: `COUNT(*) WHERE status = 'parked'`. */
  parked: number;
  /** Deliveries given up on and not re-sent since: `COUNT(*) WHERE status = 'abandoned'`. */
  abandoned: number;
  /** Failed attempts to it since its last success (its circuit's count, or deliveries stats' streak). */
  consecutiveFailures: number;
  /** When the oldest delivery still to be delivered (pending, delivering, deferred, parked) was recorded: `MIN(created_at)`; null when none. */
  oldestUndeliveredAt: Date | null;
  /** Whether its circuit is open (runs start no attempt to it); left out of the file when unknown. */
  circuitOpen?: boolean;
}

/** Everything the textfile shows: filled from the database after a run (or by `status`), never from one run's memory alone. */
export interface MetricsSnapshot {
  /** This tool's version (package.json), for `license_manager_build_info`. */
  version: string;
  /**
   * When the newest run that exited 0 finished: `MAX(finished_at) FROM runs WHERE exit_code = 0`. Read from the
   * table, so a failed run never moves it; null before the first success (shown as 0, which alerts).
   */
  lastSuccessAt: Date | null;
  /** The newest finished run, whatever its exit code: `runs` ordered by `finished_at` desc, limit 1; null before the first. */
  lastRun: { startedAt: Date; finishedAt: Date; exitCode: number } | null;
  /** Events recorded since the database began, by type: `COUNT(*) … GROUP BY event_type` (one row per event, however many endpoints take it). */
  eventsRecorded: ReadonlyArray<{ eventType: string; count: number }>;
  /** Deliveries by event type and current status: `COUNT(*) FROM webhook_deliveries GROUP BY event_type, status`. */
  deliveries: ReadonlyArray<{ eventType: string; status: string; count: number }>;
  endpoints: ReadonlyArray<EndpointMetrics>;
}

type MetricType = 'gauge' | 'counter';

interface Sample {
  labels: Record<string, string>;
  value: number;
}

interface Family {
  name: string;
  type: MetricType;
  help: string;
  samples: Sample[];
}

/** Label values: backslash, double quote and line feed are escaped; everything else is UTF-8 as it is (exposition format). */
function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** HELP text: backslash and line feed are escaped. */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** Go's ParseFloat reads every form String(number) gives; infinities and NaN have names of their own. */
function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

function seconds(date: Date): number {
  return date.getTime() / 1000;
}

function labelsText(labels: Record<string, string>): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return '';
  return `{${entries.map(([name, value]) => `${name}="${escapeLabelValue(value)}"`).join(',')}}`;
}

/** Samples with the same labels are added up (two rows for one key are one series), then sorted, so the file is the same for the same state. */
function merged(samples: Sample[]): Sample[] {
  const byKey = new Map<string, Sample>();
  for (const sample of samples) {
    const key = labelsText(sample.labels);
    const existing = byKey.get(key);
    if (existing) existing.value += sample.value;
    else byKey.set(key, { labels: sample.labels, value: sample.value });
  }
  return [...byKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, sample]) => sample);
}

/** Every family of the file, in the file's order (a family with no samples is left out of the text). */
function metricFamilies(snapshot: MetricsSnapshot, now: Date): Family[] {
  const names = new Set<string>();
  for (const endpoint of snapshot.endpoints) {
    if (names.has(endpoint.name)) throw new RangeError(`endpoint "${endpoint.name}" appears twice in the metrics snapshot`);
    names.add(endpoint.name);
  }
  const endpoints = [...snapshot.endpoints].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const run = snapshot.lastRun;
  const families: Family[] = [
    {
      name: 'license_manager_build_info',
      type: 'gauge',
      help: 'Always 1; the version label says which license-manager wrote this file.',
      samples: [{ labels: { version: snapshot.version }, value: 1 }],
    },
    {
      name: 'license_manager_last_success_timestamp_seconds',
      type: 'gauge',
      help: 'When the last process-expirations run that exited 0 finished, in Unix seconds; 0 before the first. Alert on time() minus this.',
      samples: [{ labels: {}, value: snapshot.lastSuccessAt ? seconds(snapshot.lastSuccessAt) : 0 }],
    },
    {
      name: 'license_manager_last_run_timestamp_seconds',
      type: 'gauge',
      help: 'When the last process-expirations run finished, whatever its exit status, in Unix seconds.',
      samples: run ? [{ labels: {}, value: seconds(run.finishedAt) }] : [],
    },
    {
      name: 'license_manager_last_run_duration_seconds',
      type: 'gauge',
      help: 'How long the last process-expirations run took, to the second (runs record whole seconds).',
      samples: run ? [{ labels: {}, value: Math.max(0, seconds(run.finishedAt) - seconds(run.startedAt)) }] : [],
    },
    {
      name: 'license_manager_last_run_exit_code',
      type: 'gauge',
      help: 'The exit status of the last process-expirations run: 0 done, 1 failed, 2 bad usage or configuration, 3 deliveries abandoned, 4 deliveries waiting on a failing receiver.',
      samples: run ? [{ labels: {}, value: run.exitCode }] : [],
    },
    {
      name: 'license_manager_events_recorded_total',
      type: 'counter',
      help: 'Events recorded for delivery since the database began, by event type.',
      // Every known type at 0 first: a counter that appears only with its first event hides that event from rate() and increase().
      samples: merged([
        ...KNOWN_EVENT_TYPES.map((eventType) => ({ labels: { event_type: eventType }, value: 0 })),
        ...snapshot.eventsRecorded.map((row) => ({ labels: { event_type: row.eventType }, value: row.count })),
      ]),
    },
    {
      name: 'license_manager_deliveries',
      type: 'gauge',
      help: 'Deliveries (one per event and endpoint) by event type and current status.',
      // Every known type and status at 0 first, so an alert on a status (abandoned > 0) has a series before the first one.
      samples: merged([
        ...KNOWN_EVENT_TYPES.flatMap((eventType) => DELIVERY_STATUSES.map((status) => ({ labels: { event_type: eventType, status }, value: 0 }))),
        ...snapshot.deliveries.map((row) => ({ labels: { event_type: row.eventType, status: row.status }, value: row.count })),
      ]),
    },
    {
      name: 'license_manager_endpoint_deliveries',
      type: 'gauge',
      help: 'Deliveries to an endpoint that are deferred to a later run, parked while it is disabled, or abandoned.',
      samples: endpoints.flatMap((endpoint) =>
        (['abandoned', 'deferred', 'parked'] as const).map((status) => ({ labels: { endpoint: endpoint.name, status }, value: endpoint[status] })),
      ),
    },
    {
      name: 'license_manager_endpoint_consecutive_failures',
      type: 'gauge',
      help: 'Failed delivery attempts to an endpoint since its last success.',
      samples: endpoints.map((endpoint) => ({ labels: { endpoint: endpoint.name }, value: endpoint.consecutiveFailures })),
    },
    {
      name: 'license_manager_endpoint_oldest_undelivered_age_seconds',
      type: 'gauge',
      help: 'How long the oldest delivery to an endpoint that is not delivered yet has waited since it was recorded; 0 when none waits.',
      samples: endpoints.map((endpoint) => ({
        labels: { endpoint: endpoint.name },
        value: endpoint.oldestUndeliveredAt ? Math.max(0, Math.floor((now.getTime() - endpoint.oldestUndeliveredAt.getTime()) / 1000)) : 0,
      })),
    },
    {
      name: 'license_manager_endpoint_circuit_open',
      type: 'gauge',
      help: '1 while the circuit of an endpoint is open (runs start no attempt to it until a probe succeeds), else 0.',
      samples: endpoints.flatMap((endpoint) =>
        endpoint.circuitOpen === undefined ? [] : [{ labels: { endpoint: endpoint.name }, value: endpoint.circuitOpen ? 1 : 0 }],
      ),
    },
  ];
  return families;
}

/** A family's lines: HELP, TYPE, then its samples; none when it has no samples. */
function familyLines(family: Family): string[] {
  if (family.samples.length === 0) return [];
  return [
    `# HELP ${family.name} ${escapeHelp(family.help)}`,
    `# TYPE ${family.name} ${family.type}`,
    ...family.samples.map((sample) => `${family.name}${labelsText(sample.labels)} ${formatValue(sample.value)}`),
  ];
}

/**
 * The metrics in the Prometheus text exposition format (https://prometheus.io/docs/instrumenting/exposition_formats/),
 * each family with HELP and TYPE, no timestamps (node_exporter's textfile collector refuses them). `now` gives the ages.
 */
export function renderMetrics(snapshot: MetricsSnapshot, now: Date): string {
  return `${metricFamilies(snapshot, now).flatMap(familyLines).join('\n')}\n`;
}

/** What a run that could not open its database (nothing recorded) knows of itself for the textfile. */
export interface UnopenedRun {
  /** This tool's version, for `license_manager_build_info`. */
  version: string;
  startedAt: Date;
  finishedAt: Date;
  exitCode: number;
}

/** The families a run that could not open its database knows: the rest are counts and times it could not read. */
const UNOPENED_RUN_FAMILIES = new Set([
  'license_manager_build_info',
  'license_manager_last_run_timestamp_seconds',
  'license_manager_last_run_duration_seconds',
  'license_manager_last_run_exit_code',
]);

/** The metric name a line of the text format is about (a sample's, or the one its HELP or TYPE names); undefined for another comment. */
function lineFamily(line: string): string | undefined {
  return /^(?:# (?:HELP|TYPE) +)?([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line)?.[1];
}

const LABEL = /[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"/.source;
const VALUE = /(?:[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?Inf|NaN)/.source;
/** A sample line as a run writes one: `name{labels} value`, no timestamp (node_exporter refuses one); [1] is its series. */
const SAMPLE_LINE = new RegExp(`^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\\{(?:${LABEL}(?:,${LABEL})*,?)?\\})?) ${VALUE}$`);

/**
 * The textfile after a real run that could not open its database (server down, SQLite file missing, schema not
 * migrated) or was refused by an invalid stored setting. `existing` is the file as the last run left it: null when
 * there is none, or when there is one this run may not read (`unreadable`).
 *
 * The last run's time, duration and exit status, and the build info, are this run's. Every other family (the
 * counts, the endpoints, the last success: they come from the database, which this run could not read, and a
 * failed run never moves the last success) keeps the file's samples, under the HELP and TYPE a run writes, in a
 * run's order. Only what a run writes is kept, so the file stays one that node_exporter (which drops a whole file
 * it cannot parse) and promtool accept: CR LF line ends are read as LF; comments, families no run writes, lines
 * that are not samples, a family's second block and a series' second sample are dropped.
 * With no file, the last success is 0, as a run writes it before the first success, so an alert on its age fires;
 * with an unreadable one it is left out: this run cannot know it.
 */
export function withUnopenedRun(existing: string | null, run: UnopenedRun, { unreadable = false }: { unreadable?: boolean } = {}): string {
  const ours = metricFamilies({ version: run.version, lastSuccessAt: null, lastRun: run, eventsRecorded: [], deliveries: [], endpoints: [] }, run.finishedAt);
  // The file's samples by family (series -> line), from each family's first block only.
  const kept = new Map<string, Map<string, string>>();
  const ended = new Set<string>();
  let current: string | undefined;
  for (const line of existing === null || unreadable ? [] : existing.split(/\r?\n/)) {
    const family = lineFamily(line);
    // A comment of no family (or a blank line) is dropped, and does not end the block it is in.
    if (family === undefined) continue;
    if (family !== current) {
      if (current !== undefined) ended.add(current);
      current = family;
    }
    if (ended.has(family) || line.startsWith('#')) continue;
    const series = SAMPLE_LINE.exec(line)?.[1];
    if (series === undefined || lineFamily(series) !== family) continue;
    const samples = kept.get(family) ?? new Map<string, string>();
    kept.set(family, samples);
    if (!samples.has(series)) samples.set(series, line);
  }
  const lines = ours.flatMap((family): string[] => {
    if (UNOPENED_RUN_FAMILIES.has(family.name)) return familyLines(family);
    const samples = kept.get(family.name);
    if (samples) return [`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`, ...samples.values()];
    // With no file of ours yet (none, empty, or nothing a run writes: a new installation), 0 as a run writes before
    // the first success, so the age alert has a series.
    // A file without it (written by an earlier run that could not read the file before it) leaves it unknown, not "never".
    if (family.name === 'license_manager_last_success_timestamp_seconds' && kept.size === 0 && !unreadable) return familyLines(family);
    return [];
  });
  return `${lines.join('\n')}\n`;
}

export type TextfileWriteResult = { ok: true; path: string } | { ok: false; path: string; error: string };

function describeWriteError(error: unknown, target: string, folder: string): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const where = `Cannot write the metrics file ${target}`;
  switch (code) {
    case 'ENOENT':
      return `${where}: the folder ${folder} does not exist. Create it, or set monitoring.textfile to a file in node_exporter's --collector.textfile.directory.`;
    case 'ENOTDIR':
      return `${where}: ${folder} is not a folder.`;
    case 'EACCES':
    case 'EPERM':
      return `${where}: no permission to create files in ${folder} (the file is written beside the target, then renamed over it). Let this user write there.`;
    case 'EROFS':
      return `${where}: ${folder} is on a read-only file system.`;
    case 'EISDIR':
      return `${where}: it is a folder; give the path of a file, such as ${path.join(target, 'license_manager.prom')}.`;
    case 'ENOSPC':
    case 'EDQUOT':
      return `${where}: no space left on the device (or the quota is used up).`;
    default:
      return `${where}: ${error instanceof Error ? error.message : String(error)}`;
  }
}

/**
 * Writes `text` to `target` so that a reader (node_exporter scraping at any moment) sees the old file or the new one,
 * never half of one: a temporary file in the same folder (hidden, not ending in .prom, so the collector skips it),
 * fsync, rename over the target, then fsync of the folder so the rename survives a crash. Never throws: a missing or
 * unwritable folder is a result naming the path, and the temporary file is removed.
 */
export async function writeTextfileAtomically(target: string, text: string): Promise<TextfileWriteResult> {
  const absolute = path.resolve(target);
  const folder = path.dirname(absolute);
  const temporary = path.join(folder, `.${path.basename(absolute)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let handle: FileHandle | undefined;
  try {
    handle = await open(temporary, 'wx', 0o644);
    await handle.writeFile(text, 'utf8');
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temporary, absolute);
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await rm(temporary, { force: true }).catch(() => undefined);
    return { ok: false, path: absolute, error: describeWriteError(error, absolute, folder) };
  }
  // Best effort: some file systems refuse to fsync a folder, and the file is complete either way.
  try {
    const directory = await open(folder, 'r');
    try {
      await directory.sync();
    } finally {
      await directory.close();
    }
  } catch {
    // The rename is done; only its durability across a power cut is left to the file system.
  }
  return { ok: true, path: absolute };
}

/**
 * Why `target` cannot take the textfile, checked before a run (a config problem is exit 2): its folder must exist
 * and be writable, and the target must not be a folder. Undefined when it can. Root passes the permission check
 * whatever the modes; writeTextfileAtomically still reports what the file system refuses.
 */
export async function textfileProblem(target: string): Promise<string | undefined> {
  const absolute = path.resolve(target);
  const folder = path.dirname(absolute);
  try {
    if (!(await stat(folder)).isDirectory()) return `${folder} is not a folder`;
  } catch {
    return `its folder ${folder} does not exist`;
  }
  try {
    await access(folder, constants.W_OK);
  } catch {
    return `this user may not create files in ${folder}`;
  }
  try {
    if ((await stat(absolute)).isDirectory()) return `${absolute} is a folder; give the path of a file, such as ${path.join(absolute, 'license_manager.prom')}`;
  } catch {
    // No file yet: the first run creates it.
  }
  return undefined;
}
