import { heldByGoneRuns } from '../delivery/leases.js';
import { settingProblemMessage, type EffectiveSetting, type SettingProblem } from '../config/settings.js';
import { EXIT, type ExitCode } from '../errors.js';
import { plural } from '../plural.js';
import { deliveryCounts } from '../storage/deliveries.repository.js';
import { deliveryCountsByEndpoint } from '../storage/endpoints.repository.js';
import { databaseTimeMs } from '../storage/database-time.js';
import { anyRunBefore, lastFinishedRun, lastRuns, type RunRow } from '../storage/runs.repository.js';
import { formatUtc, parseUtc } from '../time.js';
import { maskCredentials } from '../credentials.js';
import { layerOf, webhookTarget, type CommandContext, type WebhookTarget } from './context.js';
import { commandLine } from '../command-line.js';
import { displayPingUrl } from '../monitoring/heartbeat.js';
import { lastPing, textfilePath, type LastPing } from './monitoring.js';

/** A daily job that has not finished a run for this long has stopped (a day plus slack for a slow or late run). */
const STALE_AFTER_HOURS = 26;
const SHOWN_RUNS = 5;

export interface RunSummary {
  startedAt: string;
  finishedAt: string | null;
  status: RunRow['status'];
  exitCode: number | null;
  recorded: number;
  delivered: number;
  abandoned: number;
  /** Licenses the run marked expired with no event (expired longer ago than lookbackDays). */
  expiredWithoutEvent?: number;
  error: string | null;
}

/** Notices customers lost: licenses the last finished run marked expired with no event, though it was not the first run. */
export interface ExpiredWithoutEvent {
  licenses: number;
  /** When that run started. */
  runStartedAt: string;
  /** The `process-expirations --announce-since` date that announces them after all. */
  announceSince: string | null;
}

export interface StatusResult {
  now: string;
  configFile: string | null;
  database: string;
  webhooks: WebhookTarget;
  timeZone: { value: string; source: string };
  settingProblems: SettingProblem[];
  /** Settings used in part (with what was dropped) or that need a word on what they do here (Botble mode). */
  settingNotes: Array<Pick<EffectiveSetting, 'key' | 'warning' | 'note'>>;
  licenses: { total: number; byStatus: Record<string, number> };
  /** `byEndpoint` only once a delivery goes to an endpoint other than default. */
  deliveries: { total: number; byStatus: Record<string, number>; byEndpoint?: Record<string, Record<string, number>> };
  /** Newest first. */
  runs: RunSummary[];
  /** The exit code a monitoring check acts on, and why. */
  health: { exitCode: ExitCode; reason: string };
  /** A warning that does not change the exit code: the job works, but customers lost a notice. */
  expiredWithoutEvent: ExpiredWithoutEvent | null;
  /**
   * Deliveries claimed by a run that is gone (its lease lapsed, or its process died on this host): no worker
   * was left to take them over, so they wait for the next run. A warning; the exit code stays the job's.
   */
  heldByGoneRuns: number;
  /** The heartbeat (the URL with its keys masked) and what became of the last run's pings; the metrics file. */
  monitoring: { ping: { target: string; kind: string } | null; lastPing: LastPing | null; textfile: string | null };
}

function summary(row: RunRow): RunSummary {
  return {
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    status: row.status,
    exitCode: row.exit_code,
    recorded: Number(row.recorded),
    delivered: Number(row.delivered),
    abandoned: Number(row.abandoned),
    expiredWithoutEvent: Number(row.expired_without_event ?? 0),
    error: row.error,
  };
}

/** The last finished run's licenses expired with no event; none on the first run, whose history before it is expected to be silent. */
async function expiredWithoutEvent(context: CommandContext, last: RunRow | undefined): Promise<ExpiredWithoutEvent | null> {
  const licenses = Number(last?.expired_without_event ?? 0);
  if (!last || licenses === 0 || !(await anyRunBefore(context.db, last))) return null;
  return { licenses, runStartedAt: last.started_at, announceSince: last.announce_since };
}

/**
 * The verdict (pure): 1 when the job has stopped or its last run failed, or the next run cannot start; 3 when
 * the last run abandoned deliveries; else 0.
 */
export function judgeHealth(input: {
  now: Date;
  lastFinished: RunSummary | undefined;
  licenses: number;
  settingProblems: readonly SettingProblem[];
  /** Deliveries abandoned now (any run's, not yet re-sent); the last run's own count when not given. */
  abandonedNow?: number;
}): StatusResult['health'] {
  const { now, lastFinished, licenses, settingProblems } = input;
  const abandonedNow = input.abandonedNow ?? (lastFinished?.exitCode === EXIT.abandoned ? lastFinished.abandoned : 0);
  if (settingProblems.length > 0) return { exitCode: EXIT.failure, reason: `the next run will refuse to start: ${settingProblems.map(settingProblemMessage).join(' ')}` };
  const finishedAt = lastFinished?.finishedAt ? parseUtc(lastFinished.finishedAt) : undefined;
  const stale = !finishedAt || now.getTime() - finishedAt.getTime() > STALE_AFTER_HOURS * 3_600_000;
  if (licenses > 0 && stale) {
    const last = lastFinished?.finishedAt ? `the last one finished at ${lastFinished.finishedAt}` : 'none has ever finished';
    return { exitCode: EXIT.failure, reason: `no process-expirations run finished in the last ${STALE_AFTER_HOURS} hours (${last}): check the cron job or timer` };
  }
  if (!lastFinished) return { exitCode: EXIT.ok, reason: 'no licenses in this database and no run so far: if this is not a new installation, check the database path (database.filename or LICENSE_MANAGER_DB)' };
  if (lastFinished.status === 'refused') {
    return { exitCode: EXIT.failure, reason: `the last run (${lastFinished.finishedAt}) refused to start${lastFinished.error ? `: ${lastFinished.error}` : ''}` };
  }
  if (lastFinished.exitCode !== EXIT.ok && lastFinished.exitCode !== EXIT.abandoned) {
    return { exitCode: EXIT.failure, reason: `the last run (${lastFinished.finishedAt}) ${lastFinished.status === 'stopped' ? 'was stopped' : 'failed'} with exit code ${String(lastFinished.exitCode)}${lastFinished.error ? `: ${lastFinished.error}` : ''}` };
  }
  // What is undelivered now, not what the last run left: abandoned deliveries re-sent since are done with.
  if (abandonedNow > 0) {
    const which = lastFinished.exitCode === EXIT.abandoned ? ` (the last run, ${lastFinished.finishedAt}, abandoned ${plural(lastFinished.abandoned, 'delivery')})` : '';
    return {
      exitCode: EXIT.abandoned,
      reason: `${plural(abandonedNow, 'delivery')} abandoned and not re-sent${which}: see "${commandLine('deliveries list --status abandoned')}", re-send with "${commandLine('deliveries retry --abandoned')}"`,
    };
  }
  if (lastFinished.exitCode === EXIT.abandoned) {
    return { exitCode: EXIT.ok, reason: `the last run finished at ${lastFinished.finishedAt}; the ${plural(lastFinished.abandoned, 'delivery')} it abandoned ${lastFinished.abandoned === 1 ? 'has' : 'have'} been re-sent since` };
  }
  return { exitCode: EXIT.ok, reason: `the last run finished at ${lastFinished.finishedAt} and succeeded` };
}

/** `status`: where this installation stands, read-only. */
export async function status(context: CommandContext, options: { now: Date }): Promise<StatusResult> {
  const { db } = context;
  const [licenses, deliveries, runs, lastFinished] = await Promise.all([context.licenses.counts(db), deliveryCounts(db), lastRuns(db, SHOWN_RUNS), lastFinishedRun(db)]);
  const byEndpoint = await deliveryCountsByEndpoint(db);
  const sum = (counts: Record<string, number>) => Object.values(counts).reduce((total, count) => total + count, 0);
  const timeZone = context.settings.find((setting) => setting.key === 'time-zone')!;
  const licenseTotal = sum(licenses);
  return {
    now: formatUtc(options.now),
    configFile: context.configFile ?? null,
    database: maskCredentials(context.databaseFile),
    webhooks: webhookTarget(context),
    timeZone: { value: context.config.expirations.timeZone, source: layerOf(timeZone) },
    settingProblems: context.problems,
    settingNotes: context.settings.filter((setting) => setting.warning || setting.note).map(({ key, warning, note }) => ({ key, ...(warning ? { warning } : {}), ...(note ? { note } : {}) })),
    licenses: { total: licenseTotal, byStatus: licenses },
    deliveries: { total: sum(deliveries), byStatus: deliveries, ...(Object.keys(byEndpoint).some((name) => name !== 'default') ? { byEndpoint } : {}) },
    runs: runs.map(summary),
    health: judgeHealth({ now: options.now, lastFinished: lastFinished && summary(lastFinished), licenses: licenseTotal, settingProblems: context.problems, abandonedNow: deliveries.abandoned ?? 0 }),
    expiredWithoutEvent: await expiredWithoutEvent(context, lastFinished),
    // Real time, not --now: leases are written in real time (the database server's, on a server).
    heldByGoneRuns: await heldByGoneRuns(db, (await databaseTimeMs(db)) ?? Date.now()),
    monitoring: {
      ping: context.config.monitoring.ping && { target: displayPingUrl(context.config.monitoring.ping.url), kind: context.config.monitoring.ping.kind },
      lastPing: await lastPing(context),
      textfile: textfilePath(context),
    },
  };
}
