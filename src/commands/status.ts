import { heldByGoneRuns } from '../delivery/leases.js';
import { settingProblemMessage, type EffectiveSetting, type SettingProblem } from '../config/settings.js';
import type { Clock } from '../clock.js';
import { EXIT, type ExitCode } from '../errors.js';
import { ranToTheEnd } from '../run-outcome.js';
import { plural } from '../plural.js';
import { waitingByEndpoint } from '../storage/deliveries/endpoint-holds.repository.js';
import { endpointStates, GONE_REASON } from '../storage/endpoint-states.repository.js';
import { parseStoredCircuit } from '../delivery/circuit.js';
import { deliveryCountsByEndpoint } from '../storage/endpoints.repository.js';
import { unansweredSince } from '../storage/monitoring.repository.js';
import { leaseNowMs } from '../storage/database-time.js';
import { anyRunBefore, lastFinishedRun, lastRuns, type RunRow } from '../storage/runs.repository.js';
import { formatUtc, parseUtc } from '../time.js';
import { maskCredentials } from '../credentials.js';
import { layerOf, webhookTarget, type CommandContext, type WebhookTarget } from './context.js';
import { commandLine } from '../command-line.js';
import { resolveEndpoints } from '../config/endpoints.js';
import { displayPingUrl } from '../monitoring/heartbeat.js';
import { lastPing, textfilePath, type LastPing } from './monitoring.js';

/** A daily job that has not finished a run for this long has stopped (a day plus slack for a slow or late run). */
const STALE_AFTER_HOURS = 26;
const SHOWN_RUNS = 5;
/** An endpoint whose deliveries have waited on it (deferred or parked) for longer than this makes `status` exit 4: a day of retries did not get through. */
const FAILING_ENDPOINT_HOURS = 24;

/** Per endpoint, what the runs learned about its receiver and what waits on it. */
interface EndpointHealth {
  name: string;
  lastSuccessAt: string | null;
  consecutiveFailures: number;
  /** `closed`, `open` (the next run probes it with one attempt) or `half-open`. */
  circuit: 'closed' | 'open' | 'half-open';
  /**
   * When its current run of failures began; null when it is not failing. For a receiver that throttles (429, 408:
   * the circuit stays closed, the receiver being up) while deliveries wait on it, when its answers since its last 2xx began.
   */
  failingSince: string | null;
  lastError: string | null;
  deferred: number;
  parked: number;
  /** The earliest next attempt of its deferred deliveries. */
  nextAttemptAt: string | null;
  /** How long its oldest deferred or parked delivery has waited since it was recorded, in whole seconds; null when none waits. */
  oldestUndeliveredAgeSeconds: number | null;
  /** Set when a 410 Gone disabled it (until `endpoints enable`). */
  disabled: { at: string; reason: string } | null;
}

export interface RunSummary {
  startedAt: string;
  finishedAt: string | null;
  status: RunRow['status'];
  exitCode: number | null;
  recorded: number;
  delivered: number;
  abandoned: number;
  /** Deliveries the run deferred to a later run, and parked (410 Gone). */
  deferred?: number;
  parked?: number;
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
  /** Endpoints with a stored circuit, a 410 disablement, or deliveries waiting on them (by name). */
  endpoints: EndpointHealth[];
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
    deferred: Number(row.deferred ?? 0),
    parked: Number(row.parked ?? 0),
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
  /** Per endpoint, since when deliveries have waited on it (deferred or parked; `parked` of them, 0 when not given): exit 4 past FAILING_ENDPOINT_HOURS. */
  failing?: ReadonlyArray<{ name: string; since: string; waiting: number; parked?: number }>;
  /** Per endpoint that answered its last attempt, the deliveries it still has deferred (waiting for their next attempt, not on a failure). */
  recovered?: ReadonlyArray<{ name: string; waiting: number }>;
  /**
   * Abandoned deliveries `deliveries retry --abandoned` skips, by endpoint: those of an endpoint no longer defined
   * (taken out of the config file) or disabled (by the operator, or after a 410).
   */
  abandonedUnsendable?: ReadonlyArray<{ name: string; abandoned: number; reason: 'no longer defined' | 'disabled' }>;
}): StatusResult['health'] {
  const { now, lastFinished, licenses, settingProblems } = input;
  const abandonedNow = input.abandonedNow ?? (lastFinished?.exitCode === EXIT.abandoned ? lastFinished.abandoned : 0);
  if (settingProblems.length > 0)
    return { exitCode: EXIT.failure, reason: `the next run will refuse to start: ${settingProblems.map(settingProblemMessage).join(' ')}` };
  const finishedAt = lastFinished?.finishedAt ? parseUtc(lastFinished.finishedAt) : undefined;
  const stale = !finishedAt || now.getTime() - finishedAt.getTime() > STALE_AFTER_HOURS * 3_600_000;
  if (licenses > 0 && stale) {
    const last = lastFinished?.finishedAt ? `the last one finished at ${lastFinished.finishedAt}` : 'none has ever finished';
    return {
      exitCode: EXIT.failure,
      reason: `no process-expirations run finished in the last ${STALE_AFTER_HOURS} hours (${last}): check the cron job or timer`,
    };
  }
  if (!lastFinished)
    return {
      exitCode: EXIT.ok,
      reason:
        'no licenses in this database and no run so far: if this is not a new installation, check the database path (database.filename or LICENSE_MANAGER_DB)',
    };
  if (lastFinished.status === 'refused') {
    return {
      exitCode: EXIT.failure,
      reason: `the last run (${lastFinished.finishedAt}) refused to start${lastFinished.error ? `: ${lastFinished.error}` : ''}`,
    };
  }
  if (!ranToTheEnd(lastFinished.exitCode)) {
    return {
      exitCode: EXIT.failure,
      reason: `the last run (${lastFinished.finishedAt}) ${lastFinished.status === 'stopped' ? 'was stopped' : 'failed'} with exit code ${String(lastFinished.exitCode)}${lastFinished.error ? `: ${lastFinished.error}` : ''}`,
    };
  }
  // What is undelivered now, not what the last run left: abandoned deliveries re-sent since are done with.
  if (abandonedNow > 0) {
    const which =
      lastFinished.exitCode === EXIT.abandoned ? ` (the last run, ${lastFinished.finishedAt}, abandoned ${plural(lastFinished.abandoned, 'delivery')})` : '';
    // `deliveries retry --abandoned` skips those of an endpoint no longer defined or disabled: each is named with what lets them go.
    const unsendable = input.abandonedUnsendable ?? [];
    const stuck = unsendable.reduce((total, endpoint) => total + endpoint.abandoned, 0);
    const retry =
      stuck === 0
        ? `, re-send with "${commandLine('deliveries retry --abandoned')}"`
        : stuck < abandonedNow
          ? `, re-send the other ${abandonedNow - stuck} with "${commandLine('deliveries retry --abandoned')}"`
          : '';
    const remove = unsendable
      .map((endpoint) => {
        const them = endpoint.abandoned === 1 ? 'it' : 'them';
        const what = `; ${plural(endpoint.abandoned, 'delivery')} to ${endpoint.name}, which is ${endpoint.reason}`;
        return endpoint.reason === 'disabled'
          ? `${what}: "${commandLine(`endpoints enable ${endpoint.name}`)}" first, then retry to re-send ${them}`
          : `${what}: put it back in the config file to re-send ${them}, or end ${them} with "${commandLine(`endpoints remove ${endpoint.name} --force`)}"`;
      })
      .join('');
    return {
      exitCode: EXIT.abandoned,
      reason: `${plural(abandonedNow, 'delivery')} abandoned and not re-sent${which}: see "${commandLine('deliveries list --status abandoned')}"${retry}${remove}`,
    };
  }
  // Where to look: deferred ones, parked ones (a 410), or both, as they are.
  const listWaiting = (endpoints: ReadonlyArray<{ waiting: number; parked?: number }>) => {
    const parked = endpoints.reduce((total, endpoint) => total + (endpoint.parked ?? 0), 0);
    const deferred = endpoints.reduce((total, endpoint) => total + endpoint.waiting, 0) - parked;
    const statuses = [...(deferred > 0 || parked === 0 ? ['deferred'] : []), ...(parked > 0 ? ['parked'] : [])];
    return `see ${statuses.map((state) => `"${commandLine(`deliveries list --status ${state}`)}"`).join(' and ')}`;
  };
  // How many wait, as what: deferred ones go with a later run, parked ones (a 410) wait for `endpoints enable`.
  const waitingCounts = (endpoint: { waiting: number; parked?: number }) => {
    const parked = endpoint.parked ?? 0;
    const deferred = endpoint.waiting - parked;
    return [deferred > 0 ? `${plural(deferred, 'delivery')} deferred` : '', parked > 0 ? `${plural(parked, 'delivery')} parked` : '']
      .filter(Boolean)
      .join(', ');
  };
  const enableHint = (endpoints: ReadonlyArray<{ name: string; parked?: number }>) => {
    const gone = endpoints.filter((endpoint) => (endpoint.parked ?? 0) > 0);
    if (gone.length === 0) return '';
    const them = gone.reduce((total, endpoint) => total + (endpoint.parked ?? 0), 0) === 1 ? 'it' : 'them';
    return `; ${gone.map((endpoint) => `"${commandLine(`endpoints enable ${endpoint.name}`)}"`).join(', ')} sends ${them} again once the receiver is back`;
  };
  const overdue = (input.failing ?? []).filter(
    (endpoint) => now.getTime() - (parseUtc(endpoint.since)?.getTime() ?? now.getTime()) > FAILING_ENDPOINT_HOURS * 3_600_000,
  );
  if (overdue.length > 0) {
    return {
      exitCode: EXIT.waiting,
      reason: `${overdue.map((endpoint) => `endpoint ${endpoint.name} has been failing since ${endpoint.since} (${waitingCounts(endpoint)})`).join('; ')}: more than ${FAILING_ENDPOINT_HOURS} hours. Check the receiver; ${listWaiting(overdue)}${enableHint(overdue)}`,
    };
  }
  if (lastFinished.exitCode === EXIT.abandoned) {
    return {
      exitCode: EXIT.ok,
      reason: `the last run finished at ${lastFinished.finishedAt}; the ${plural(lastFinished.abandoned, 'delivery')} it abandoned ${lastFinished.abandoned === 1 ? 'has' : 'have'} been re-sent since`,
    };
  }
  const recovered = input.recovered ?? [];
  const recoveredWaiting = recovered.reduce((total, endpoint) => total + endpoint.waiting, 0);
  const stillDeferred = `${plural(recoveredWaiting, 'delivery')} to ${recovered.map((endpoint) => endpoint.name).join(', ')} ${recoveredWaiting === 1 ? 'waits' : 'wait'} for ${recoveredWaiting === 1 ? 'its' : 'their'} next attempt, the endpoint having answered since: the next run sends ${recoveredWaiting === 1 ? 'it' : 'them'} (see "${commandLine('deliveries list --status deferred')}")`;
  if (lastFinished.exitCode === EXIT.waiting) {
    const waiting = (input.failing ?? []).reduce((total, endpoint) => total + endpoint.waiting, 0);
    const gone = (input.failing ?? []).filter((endpoint) => (endpoint.parked ?? 0) > 0);
    const parked = gone.reduce((total, endpoint) => total + (endpoint.parked ?? 0), 0);
    // Parked ones (a 410) wait for the operator, not for a later run.
    const enable = `${gone.map((endpoint) => `"${commandLine(`endpoints enable ${endpoint.name}`)}"`).join(', ')} sends the parked ${parked === 1 ? 'one' : 'ones'} again`;
    const then =
      parked === 0 ? `later runs retry ${waiting === 1 ? 'it' : 'them'}` : parked === waiting ? enable : `later runs retry the deferred ones, ${enable}`;
    const left =
      waiting > 0
        ? `${plural(waiting, 'delivery')} ${waiting === 1 ? 'waits' : 'wait'} on a failing receiver (${then}; status exits ${EXIT.waiting} once an endpoint has failed for ${FAILING_ENDPOINT_HOURS} hours): ${listWaiting(input.failing ?? [])}`
        : recoveredWaiting > 0
          ? stillDeferred
          : 'what it left waiting on a failing receiver has been sent since';
    return { exitCode: EXIT.ok, reason: `the last run finished at ${lastFinished.finishedAt} (exit ${EXIT.waiting}); ${left}` };
  }
  if (recoveredWaiting > 0) return { exitCode: EXIT.ok, reason: `the last run finished at ${lastFinished.finishedAt}; ${stillDeferred}` };
  return { exitCode: EXIT.ok, reason: `the last run finished at ${lastFinished.finishedAt} and succeeded` };
}

/** `status`: where this installation stands, read-only. `now` judges the runs (--now); `clock` is the real time leases are compared in. */
export async function status(context: CommandContext, options: { now: Date; clock: Clock }): Promise<StatusResult> {
  const { db } = context;
  const [licenses, byEndpoint, runs, lastFinished] = await Promise.all([
    context.licenses.counts(db),
    deliveryCountsByEndpoint(db),
    lastRuns(db, SHOWN_RUNS),
    lastFinishedRun(db),
  ]);
  // By status: the per-endpoint counts added up (one grouped read of the deliveries, not two), statuses in name order.
  const deliveries: Partial<Record<string, number>> = {};
  for (const counts of Object.values(byEndpoint)) for (const [state, count] of Object.entries(counts)) deliveries[state] = (deliveries[state] ?? 0) + count;
  const byStatus = Object.fromEntries(Object.entries(deliveries).sort(([a], [b]) => (a < b ? -1 : 1))) as Record<string, number>;
  const sum = (counts: Record<string, number>) => Object.values(counts).reduce((total, count) => total + count, 0);
  const timeZone = context.settings.find((setting) => setting.key === 'time-zone')!;
  const licenseTotal = sum(licenses);
  const endpoints = await endpointHealth(context, options.now);
  const defined = new Map((await resolveEndpoints(db, context.config.webhooks, options.now)).map((endpoint) => [endpoint.name, endpoint]));
  const gone = new Set(endpoints.filter((endpoint) => endpoint.disabled !== null).map((endpoint) => endpoint.name));
  // An endpoint that answered its last attempt with a 2xx is not failing: what it still has deferred waits for its
  // next attempt (a delivery deferred before the receiver came back), which the next run makes. One that throttles
  // since (429, 408) has a failingSince here (endpointHealth), and fails as any other.
  const answered = (endpoint: EndpointHealth) => !endpoint.disabled && endpoint.failingSince === null && endpoint.lastSuccessAt !== null;
  const recovered = endpoints.flatMap((endpoint) =>
    answered(endpoint) && endpoint.deferred + endpoint.parked > 0 ? [{ name: endpoint.name, waiting: endpoint.deferred + endpoint.parked }] : [],
  );
  const failing = endpoints.flatMap((endpoint) => {
    if (answered(endpoint)) return [];
    const waiting = endpoint.deferred + endpoint.parked;
    const oldest =
      endpoint.oldestUndeliveredAgeSeconds === null ? null : formatUtc(new Date(options.now.getTime() - endpoint.oldestUndeliveredAgeSeconds * 1000));
    const since = [endpoint.failingSince, endpoint.disabled?.at ?? null, oldest].filter((value): value is string => value !== null).sort()[0];
    return waiting > 0 && since ? [{ name: endpoint.name, since, waiting, parked: endpoint.parked }] : [];
  });
  return {
    now: formatUtc(options.now),
    configFile: context.configFile ?? null,
    database: maskCredentials(context.databaseLabel),
    webhooks: webhookTarget(context),
    timeZone: { value: context.config.expirations.timeZone, source: layerOf(timeZone) },
    settingProblems: context.problems,
    settingNotes: context.settings
      .filter((setting) => setting.warning || setting.note)
      .map(({ key, warning, note }) => ({ key, ...(warning ? { warning } : {}), ...(note ? { note } : {}) })),
    licenses: { total: licenseTotal, byStatus: licenses },
    deliveries: { total: sum(byStatus), byStatus, ...(Object.keys(byEndpoint).some((name) => name !== 'default') ? { byEndpoint } : {}) },
    runs: runs.map(summary),
    health: judgeHealth({
      now: options.now,
      lastFinished: lastFinished && summary(lastFinished),
      licenses: licenseTotal,
      settingProblems: context.problems,
      abandonedNow: byStatus.abandoned ?? 0,
      failing,
      recovered,
      abandonedUnsendable: Object.entries(byEndpoint).flatMap(([name, counts]) => {
        const endpoint = defined.get(name);
        const reason = !endpoint ? 'no longer defined' : !endpoint.enabled || gone.has(name) ? 'disabled' : undefined;
        return (counts.abandoned ?? 0) > 0 && reason ? [{ name, abandoned: counts.abandoned!, reason }] : [];
      }),
    }),
    expiredWithoutEvent: await expiredWithoutEvent(context, lastFinished),
    // Real time, not --now: leases are written in real time (the database server's on a server, the run's clock on SQLite).
    heldByGoneRuns: await heldByGoneRuns(db, await leaseNowMs(db, options.clock.now().getTime())),
    endpoints,
    monitoring: {
      ping: context.config.monitoring.ping && { target: displayPingUrl(context.config.monitoring.ping.url), kind: context.config.monitoring.ping.kind },
      lastPing: await lastPing(context),
      textfile: textfilePath(context),
    },
  };
}

/** Each endpoint's stored circuit and 410 disablement beside what waits on it. */
async function endpointHealth(context: CommandContext, now: Date): Promise<EndpointHealth[]> {
  const states = await endpointStates(context.db);
  const waiting = new Map((await waitingByEndpoint(context.db)).map((entry) => [entry.endpoint, entry]));
  const names = [...new Set([...states.keys(), ...waiting.keys()])].sort();
  const circuits = new Map(names.map((name) => [name, parseStoredCircuit(states.get(name)?.circuit)]));
  // A circuit that answered since its last success (failingSince null) also follows a 429 or 408, which must not open
  // it: for those with deliveries waiting, the attempt log says whether the last answer was a 2xx, or since when none was.
  const answeredByCircuit = names.filter((name) => {
    const circuit = circuits.get(name);
    return !states.get(name)?.disabledAt && waiting.has(name) && circuit?.failingSince === null && circuit.lastSuccessAt !== null;
  });
  const throttled = answeredByCircuit.length === 0 ? new Map<string, string>() : await unansweredSince(context.db, answeredByCircuit);
  return names.map((name) => {
    const state = states.get(name);
    const circuit = circuits.get(name);
    const wait = waiting.get(name);
    const oldest = wait?.oldestCreatedAt ? parseUtc(wait.oldestCreatedAt) : undefined;
    const throttledSince = throttled.get(name) ?? null;
    // The circuit's last error, unless an answer came after it (a success, or a 429/408 it does not record; times are
    // to the second, and a failure in the success's second is taken as before it): then
    // the latest waiting delivery's says what went wrong last (a 410's, say), or the 410 that disabled it.
    const circuitError =
      circuit?.lastError != null && throttledSince === null && (circuit.lastSuccessAt === null || (circuit.lastFailureAt ?? '') > circuit.lastSuccessAt)
        ? circuit.lastError
        : undefined;
    return {
      name,
      lastSuccessAt: circuit?.lastSuccessAt ?? null,
      consecutiveFailures: circuit?.consecutiveFailures ?? 0,
      circuit: circuit?.state ?? 'closed',
      failingSince: circuit?.failingSince ?? throttledSince,
      lastError: circuitError ?? wait?.lastError ?? (state?.disabledAt ? (state.disabledReason ?? GONE_REASON) : null) ?? circuit?.lastError ?? null,
      deferred: wait?.deferred ?? 0,
      parked: wait?.parked ?? 0,
      nextAttemptAt: wait?.nextAttemptAt ?? null,
      oldestUndeliveredAgeSeconds: oldest ? Math.max(0, Math.floor((now.getTime() - oldest.getTime()) / 1000)) : null,
      disabled: state?.disabledAt ? { at: state.disabledAt, reason: state.disabledReason ?? GONE_REASON } : null,
    };
  });
}
