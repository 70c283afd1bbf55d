import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { $Fetch } from 'ofetch';
import { systemClock, type Clock } from '../clock.js';
import { leaseNowMs } from '../storage/database-time.js';
import { settingAdvice } from '../config/botble-settings.js';
import { usageError } from '../errors.js';
import { failedRunOutcome, refusedRunOutcome, runOutcome, type RunOutcome } from '../run-outcome.js';
import { EXPIRED_REMINDER } from '../expirations/after-expiry.js';
import { eventBody, eventSubject } from '../expirations/license-events.js';
import {
  expiredWithoutEvent,
  LISTED_WITHOUT_EVENT,
  planExpirations,
  RecordedNotices,
  scanWindow,
  schedulesOf,
  type ExpirationPlan,
  type LicenseEvent,
  type NoticeType,
  type PlanLine,
  type PlanPolicy,
  type SkippedLicense,
} from '../expirations/plan-expirations.js';
import type { EventType } from '../expirations/rules.js';
import type { Database } from '../storage/database.table.js';
import { followEndpointSwitches, type WaitingDeliveries } from '../storage/deliveries/endpoint-holds.repository.js';
import { maxDeliveryId } from '../storage/deliveries/log.repository.js';
import { recordEvents, type NewDeliveries, type Rearming } from '../storage/deliveries/record.repository.js';
import { supersededByLicense } from '../expirations/stale-notice.js';
import { endpointNarrowed, endpointTakes, recordedNotices, type EndpointTakes } from './recorded-notices.js';
import { endpointStates, goneEndpoints } from '../storage/endpoint-states.repository.js';
import type { StoredCircuit } from '../delivery/circuit.js';
import type { LicenseSource } from '../storage/license-source.js';
import type { LongPastExpiries } from '../storage/licenses.repository.js';
import { formatUtc, parseUtc } from '../time.js';
import { plural } from '../plural.js';
import { commandLine } from '../command-line.js';
import { dateInZone, daysBetween } from '../expirations/calendar.js';
import { deliveryPolicy } from '../webhooks/deliver.js';
import { abandonedDeliveries, type AbandonedDelivery } from './abandoned.js';
import { webhookTarget, type CommandContext, type WebhookTarget } from './context.js';
import { withRefusalWords } from './database-messages.js';
import { checkFinishRun, finishRun, latestRunNow, newRunId, otherRunStartedTogether, recordRefusedRun, startRun } from '../storage/runs.repository.js';
import { resolveEndpoints } from '../config/endpoints.js';
import { endpointSwitches, engineEndpoints, fanOutOf } from '../delivery/endpoint-policies.js';
import { deliverPending, type DeliverPendingOptions, type DeliverPendingResult, type DeliveryOutcome } from '../delivery/deliver-pending.js';
import { staleNoticeCheck } from '../delivery/stale-notices.js';
import { attemptTracer, type RunMonitor, type RunTracing } from './monitoring.js';

// How long ago a claim's lease must have run out before a run parks it for an endpoint no run claims (see followEndpointSwitches).
const LAPSED_SLACK_MS = 60_000;
/** How far ahead of the real clock `--now` may be without --dry-run (clock skew between machines). */
export const FUTURE_NOW_TOLERANCE_MS = 60_000;
/** How far behind the latest earlier run a run may apply the rules before it is told it is a catch-up after the fact (workers' clock skew). */
const EARLIER_NOW_TOLERANCE_MS = 60_000;

export interface ProcessExpirationsOptions {
  /** The instant the rules are applied at; defaults to the clock's. */
  now?: Date | undefined;
  dryRun?: boolean | undefined;
  /** Real time for leases and attempts, and the limit for `now`. */
  clock?: Clock;
  stop?: AbortSignal;
  fetch?: $Fetch;
  onWarning?: (message: string) => void;
  /**
   * Called once the new events are known (recorded, unless a dry run) and before any is sent; `alsoTo` names the
   * enabled endpoints beside default that take some of them, `parkedFor` the disabled ones that take some, with how
   * many of this run's deliveries are parked there for them (a dry run: would be).
   */
  onPlan?: (plan: PlanLine[], alsoTo: string[], parkedFor: ParkedForDisabled[]) => void;
  onProgress?: DeliverPendingOptions['onProgress'];
  /** See DeliverPendingOptions.leaseMs. */
  leaseMs?: number | undefined;
  /** 'YYYY-MM-DD': this run announces expiries (and update-support ends) from this date on, if that reaches further back than lookbackDays. */
  announceSince?: string | undefined;
  /** Heartbeat pings and the metrics file of a real run (./monitoring.ts); a dry run uses none. */
  monitor?: RunMonitor;
  /** The command's span: recording and each attempt get a child span (./monitoring.ts). */
  tracing?: RunTracing | undefined;
}

export type { LicenseEvent, PlanLine } from '../expirations/plan-expirations.js';

/** A disabled endpoint and how many deliveries of this run's events are parked for it (the operator's switch: never exit 4). */
export interface ParkedForDisabled {
  endpoint: string;
  parked: number;
}

export interface DueEventReport {
  type: NoticeType;
  licenseId: number;
  licenseCode: string;
  date: string;
  daysUntilExpiry?: number;
  /** Only for license.expired_reminder: today - the expiry date. */
  daysSinceExpiry?: number;
  threshold?: number;
}

export interface ProcessExpirationsResult {
  now: string;
  /** The business time zone and the date of `now` there. */
  timeZone: string;
  today: string;
  dryRun: boolean;
  webhooksEnabled: boolean;
  /** Where this run sends (credentials masked) and which layer set the URL and the switch. */
  target: WebhookTarget;
  /** False when the licenses table is empty: a scheduled job pointed at the wrong database looks like this. */
  hasLicenses: boolean;
  /** Where the licenses and webhook settings were read: our own tables, or a Botble database. */
  licenseSource: 'own' | 'botble';
  /** Events due at `now` that no earlier run recorded, and those re-armed (see `rearmed`). */
  due: DueEventReport[];
  /** By type: the three of the rules always; license.expired_reminder too when after-expiry days are set anywhere. */
  dueCounts: Partial<Record<NoticeType, number>> & Record<EventType, number>;
  /** The same events counted by type and threshold (what `onPlan` got). */
  plan: PlanLine[];
  /** Events this run recorded: rows it added to webhook_deliveries (one per event: default's), and the events it re-armed. */
  recorded: number;
  /**
   * Earlier events whose deliveries ended superseded because of a license change that was undone (the rules call for
   * them again): set pending again, same event id, a new body. Part of `recorded`.
   */
  rearmed: number;
  /** Licenses whose status this run set to `expired` (with or without an event). */
  markedExpired: number;
  /** Licenses that expired longer ago than lookbackDays, never announced: `expired` with no event (counted, not written, on a dry run). Part of markedExpired. */
  expiredWithoutEvent: number;
  /** The first of them by expiry (LISTED_WITHOUT_EVENT): their customers got no license.expired. */
  expiredWithoutEventLicenses: Array<{ licenseId: number; licenseCode: string; expiresAt: string }>;
  /** The date to give `--announce-since` to announce them after all (the oldest one's expiry date); null when there are none. */
  announceSince: string | null;
  /** The latest instant an earlier real run applied the rules at (null: this is the first run). */
  lastRunNow: string | null;
  /** Renewed licenses this run set back from `expired` to `active`. */
  reactivated: number;
  /** Rows skipped for bad data (unparsable dates). */
  skipped: number;
  delivered: number;
  abandoned: number;
  /** Deliveries that waited and were not sent: their license changed or expired since (renewed, suspended, deleted, expired, …); each outcome says why. */
  superseded: number;
  released: number;
  /** Not sent: no longer this run's when it checked (its lease lapsed, as when paused, and another run sends them; or the delivery was removed). */
  dropped: number;
  /** When stopped early: deliveries still to send (released ones and those never claimed). */
  left: number;
  /** Due deliveries another database session held row locks on: left pending (exit 1), the next run sends them. */
  locked: number;
  /** The first deliveries to end (see MAX_LISTED); `unlisted` counts the rest. */
  deliveries: DeliveryOutcome[];
  unlisted: number;
  /** Delivered and abandoned per endpoint; only when an endpoint other than default took part. */
  byEndpoint?: Record<string, { delivered: number; abandoned: number }>;
  /** The abandoned ones, with license codes: what the operator must look at. */
  abandonedDeliveries: AbandonedDelivery[];
  /** Deferred to a later run by this run, and parked by it (410 Gone). */
  deferred: number;
  parked: number;
  /**
   * Deliveries of the events this run recorded that went straight to `parked` because their endpoint is disabled
   * (`endpoints disable`, `enabled: false`): kept, sent once it is enabled; never exit 4. By endpoint in
   * parkedDisabledByEndpoint. Not part of `parked`, which counts parking by a 410.
   */
  parkedDisabled: number;
  parkedDisabledByEndpoint: Record<string, number>;
  /** Per endpoint, what waits on a failing receiver once the run is over (deferred and parked, every run's): exit 4 when any and nothing abandoned. */
  waiting: WaitingDeliveries[];
  /** Endpoints this run disabled because they answered 410 Gone. */
  gone: Array<{ endpoint: string; reason: string }>;
  /** Each endpoint's circuit as the run leaves it (those it sent to). */
  circuits: Record<string, StoredCircuit>;
}

export type { WaitingDeliveries };

/** A run's result and how it ended: the exit status and the `runs` row's status, decided once (src/run-outcome.ts). Not part of --json. */
export interface ProcessExpirationsRun extends ProcessExpirationsResult {
  outcome: RunOutcome;
}

function withOutcome(result: ProcessExpirationsResult, stop: AbortSignal | undefined): ProcessExpirationsRun {
  return {
    ...result,
    outcome: runOutcome({ abandoned: result.abandoned, waiting: waitingCount(result), stopped: Boolean(stop?.aborted), locked: result.locked }),
  };
}

/** How many deliveries wait on a failing receiver (deferred or parked) after a run. */
function waitingCount(result: Pick<ProcessExpirationsResult, 'waiting'>): number {
  return result.waiting.reduce((total, endpoint) => total + endpoint.deferred + endpoint.parked, 0);
}

/** Reads the candidates and the records of their licenses, and plans the run (../expirations/plan-expirations.ts); names each license it skips. */
export async function findNewEvents(
  db: Kysely<Database>,
  licenses: LicenseSource,
  now: Date,
  policy: PlanPolicy,
  onWarning: (message: string) => void,
  takes?: EndpointTakes,
): Promise<ExpirationPlan> {
  const window = scanWindow(now, policy);
  const candidates = await licenses.findDueCandidates(db, window);
  // Before fromDay is the long-past scan's range (expireLongPast), which passes over what is no date.
  const unreadable: SkippedLicense[] = (await licenses.findUnreadableDates(db, 100, window.fromDay)).map((bad) => ({
    id: bad.id,
    code: bad.license_code,
    problem: bad.problem ?? `${bad.column} "${bad.value}" is not a date`,
  }));
  const recorded = await recordedNotices(
    db,
    candidates.map((license) => license.id),
    policy.timeZone,
    takes,
  );
  const plan = planExpirations({ candidates, unreadable }, recorded, now, policy);
  for (const skipped of plan.skipped) onWarning(`Skipped license id ${skipped.id}${skipped.code ? ` (${skipped.code})` : ''}: ${skipped.problem}.`);
  return plan;
}

/** The events no earlier record covers. */
async function notYetRecorded(db: Kysely<Database>, events: LicenseEvent[], timeZone: string): Promise<LicenseEvent[]> {
  const earlier = new RecordedNotices(
    await recordedNotices(
      db,
      events.map(({ license }) => license.id),
      timeZone,
    ),
  );
  return events.filter(({ event }) => !earlier.covers(event));
}

/** The deliveries of these events, their bodies built a slice at a time as they are inserted. */
export function deliveriesFor(events: LicenseEvent[], now: Date, timeZone: string, fanOut: (type: string) => readonly string[] = () => []): NewDeliveries {
  return {
    count: events.length,
    // One event, one id and one body: a row for `default`, then one for each other endpoint that takes its type.
    slice: (start, end) =>
      events.slice(start, end).flatMap(({ event, license }) => {
        const delivery = {
          event_id: randomUUID(),
          event_key: event.key,
          event_type: event.type,
          license_id: license.id,
          event_instant: formatUtc(event.date),
          body: eventBody(event, eventSubject(license), now),
        };
        return [delivery, ...fanOut(event.type).map((endpoint) => ({ ...delivery, endpoint }))];
      }),
    // Another run recorded while this one waited its turn: most of these events are likely recorded now.
    stillNew: async (trx) => deliveriesFor(await notYetRecorded(trx, events, timeZone), now, timeZone, fanOut),
  };
}

/**
 * The re-arming of earlier events the rules call for again (ExpirationPlan.rearm), for the superseded rows of its
 * endpoints that a license change ended: each keeps the body it was recorded with (one event id, the same bytes at
 * every receiver).
 */
function rearmingFor(events: LicenseEvent[], takes: EndpointTakes): Rearming {
  return {
    count: events.length,
    slice: (start, end) =>
      events.slice(start, end).map(({ event }) => ({
        event_key: event.key,
        mayRearm: (row: { endpoint: string; status_reason: string | null; created_at: string }) =>
          supersededByLicense(row.status_reason) && takes(row.endpoint, event.type),
      })),
  };
}

/** One due event as a run reports it. */
export function dueEventReport({ event, license }: LicenseEvent): DueEventReport {
  return {
    type: event.type,
    licenseId: license.id,
    licenseCode: license.code,
    date: formatUtc(event.date),
    ...(event.type === EXPIRED_REMINDER ? { daysSinceExpiry: event.daysSinceExpiry, threshold: event.threshold } : {}),
    ...(event.type !== EXPIRED_REMINDER && event.daysUntilExpiry !== undefined ? { daysUntilExpiry: event.daysUntilExpiry, threshold: event.threshold } : {}),
  };
}

/**
 * The cron job: record every due event once, then deliver everything pending. A real run (not a dry run) is
 * written to `runs` when it starts and finished however it ends, so `status` can tell a stopped job from a quiet one.
 */
export async function processExpirations(context: CommandContext, options: ProcessExpirationsOptions = {}): Promise<ProcessExpirationsRun> {
  const clock = options.clock ?? systemClock;
  const now = options.now ?? clock.now();
  checkNow(now, clock.now(), options);
  const monitor = options.dryRun ? undefined : options.monitor;
  try {
    checkTarget(context, options);
    await monitor?.check();
  } catch (error) {
    // The scheduled job hits the same refusal every day: recorded, so that `status` is not OK meanwhile.
    const at = formatUtc(clock.now());
    const id = newRunId(clock.now().getTime());
    const { status, exitCode } = refusedRunOutcome(error);
    await recordRefusedRun(context.db, { id, command: 'process-expirations', startedAt: at, nowAt: formatUtc(now), exitCode }, (error as Error).message).catch(
      () => undefined,
    );
    await monitor?.finished({
      runId: id,
      exitCode,
      status,
      recorded: 0,
      delivered: 0,
      abandoned: 0,
    });
    throw error;
  }
  const latest = await latestRunNow(context.db);
  const latestRun = latest === undefined ? undefined : parseUtc(latest);
  if (latestRun && now.getTime() < latestRun.getTime() - EARLIER_NOW_TOLERANCE_MS) {
    const which = options.now ? `--now ${formatUtc(now)}` : `The clock (${formatUtc(now)})`;
    options.onWarning?.(
      `${which} is earlier than the instant an earlier run applied the rules at (${latest}): a catch-up after the fact. ` +
        'Expiries that run saw pass get no warning and are not taken for renewals; events it recorded are not sent again.',
    );
  }
  if (options.dryRun) return withOutcome(await findAndDeliver(context, now, latestRun, clock, options), options.stop);
  const startedAt = clock.now();
  const runId = newRunId(startedAt.getTime());
  await startRun(context.db, { id: runId, command: 'process-expirations', startedAt: formatUtc(startedAt), nowAt: formatUtc(now) });
  monitor?.started(runId);
  let result: ProcessExpirationsRun | undefined;
  let failure: unknown;
  // What a run that fails got done first, for its runs row and its monitoring: the result goes with the failure.
  const soFar: RunSoFar = { recorded: 0, delivered: 0, abandoned: 0, deferred: 0, parked: 0, superseded: 0 };
  try {
    await checkFinishRun(context.db);
    result = withOutcome(await findAndDeliver(context, now, latestRun, clock, options, { id: runId, startedAt, soFar }), options.stop);
    return result;
  } catch (error) {
    // A refusal of storage (a Botble table missing, an event too long to store) is kept in the operator's words, with its exit code.
    failure = withRefusalWords(context.database, error, true);
    throw failure;
  } finally {
    const { status, exitCode } = result?.outcome ?? failedRunOutcome(failure);
    const message =
      failure === undefined ? (result?.locked ? lockedMessage(result.locked) : null) : failure instanceof Error ? failure.message : JSON.stringify(failure);
    // A run whose database has gone away cannot record its end; the original failure is what matters then.
    const finished = finishRun(context.db, runId, {
      finishedAt: formatUtc(clock.now()),
      status,
      exitCode,
      recorded: result?.recorded ?? soFar.recorded,
      delivered: result?.delivered ?? soFar.delivered,
      abandoned: result?.abandoned ?? soFar.abandoned,
      deferred: result?.deferred ?? soFar.deferred,
      parked: result?.parked ?? soFar.parked,
      superseded: result?.superseded ?? soFar.superseded,
      expiredWithoutEvent: result?.webhooksEnabled ? result.expiredWithoutEvent : 0,
      announceSince: result?.webhooksEnabled ? result.announceSince : null,
      error: message,
    }).catch((error: unknown) => {
      if (failure === undefined) throw error;
    });
    try {
      await finished;
    } finally {
      // What waits once the run is over (every run's, as exit 4 is decided); a run that failed, what it deferred and parked.
      const waiting = result?.waiting;
      await monitor?.finished({
        runId,
        exitCode,
        status,
        recorded: result?.recorded ?? soFar.recorded,
        delivered: result?.delivered ?? soFar.delivered,
        abandoned: result?.abandoned ?? soFar.abandoned,
        deferred: waiting ? waiting.reduce((total, endpoint) => total + endpoint.deferred, 0) : soFar.deferred,
        parked: waiting ? waiting.reduce((total, endpoint) => total + endpoint.parked, 0) : soFar.parked,
        superseded: result?.superseded ?? soFar.superseded,
      });
    }
  }
}

/** What a run that passed over locked deliveries says, on stderr and in its `runs` row (which `status` shows). */
export function lockedMessage(locked: number): string {
  return `left ${locked} due ${locked === 1 ? 'delivery' : 'deliveries'} pending: another database session held row locks on ${locked === 1 ? 'it' : 'them'} (an open transaction, a report). The next run sends ${locked === 1 ? 'it' : 'them'}; if this repeats, find and end that session.`;
}

/** A --now in the future: a mistyped command, refused before anything is written (exit 2, no run recorded). */
function checkNow(now: Date, realNow: Date, options: ProcessExpirationsOptions): void {
  if (!options.dryRun && now.getTime() > realNow.getTime() + FUTURE_NOW_TOLERANCE_MS) {
    throw usageError(
      `--now ${formatUtc(now)} is ahead of the clock (${formatUtc(realNow)}): a real run in the future would announce expiries that have not happened. Add --dry-run to preview it, or give a past instant to catch up.`,
    );
  }
}

/** A configuration that cannot send: refused before anything is sent (exit 2), and recorded as a refused run. */
function checkTarget(context: CommandContext, options: ProcessExpirationsOptions): void {
  const webhooks = context.config.webhooks;
  if (webhooks.enabled && !webhooks.url && !options.dryRun) {
    const source = context.licenses.kind;
    throw usageError(
      `Webhooks are enabled but no webhook URL is set: ${settingAdvice(source, 'webhook-url', '<url>')} (or set LICENSE_MANAGER_WEBHOOK_URL), or disable them (${settingAdvice(source, 'webhooks-enabled', 'false')}).`,
    );
  }
}

/** The counts of a run so far, kept as it goes (see processExpirations). */
interface RunSoFar {
  recorded: number;
  delivered: number;
  abandoned: number;
  deferred: number;
  parked: number;
  superseded: number;
}

/** The disabled endpoints beside default, by name. */
function disabledEndpoints(endpoints: ReadonlyArray<{ name: string; enabled: boolean }>): string[] {
  return endpoints.filter((endpoint) => endpoint.name !== 'default' && !endpoint.enabled).map((endpoint) => endpoint.name);
}

/** What this run recorded for each disabled endpoint: parked at once (followEndpointSwitches), by the operator's switch. */
function parkedForDisabled(endpoints: ReadonlyArray<{ name: string; enabled: boolean }>, fannedOutTo: Readonly<Record<string, number>>): ParkedForDisabled[] {
  return disabledEndpoints(endpoints)
    .map((endpoint) => ({ endpoint, parked: fannedOutTo[endpoint] ?? 0 }))
    .filter((entry) => entry.parked > 0);
}

/** A dry run: how many of the planned events each disabled endpoint takes (they would be parked for it). */
function wouldParkForDisabled(
  endpoints: ReadonlyArray<{ name: string; enabled: boolean; events: readonly string[] | null }>,
  plan: readonly PlanLine[],
): ParkedForDisabled[] {
  return endpoints
    .filter((endpoint) => endpoint.name !== 'default' && !endpoint.enabled)
    .map((endpoint) => ({
      endpoint: endpoint.name,
      parked: plan.filter((line) => endpoint.events === null || endpoint.events.includes(line.type)).reduce((sum, line) => sum + line.count, 0),
    }))
    .filter((entry) => entry.parked > 0);
}

/** The enabled endpoints beside default that take some of the planned events, by name. */
function alsoTo(endpoints: ReadonlyArray<{ name: string; enabled: boolean; events: readonly string[] | null }>, plan: readonly PlanLine[]): string[] {
  const types = new Set<string>(plan.map((line) => line.type));
  return endpoints
    .filter((endpoint) => endpoint.name !== 'default' && endpoint.enabled && (endpoint.events === null || endpoint.events.some((type) => types.has(type))))
    .map((endpoint) => endpoint.name);
}

/** What a run read, decided and (unless a dry run or webhooks are off) recorded. */
interface Planned {
  policy: PlanPolicy;
  plan: ExpirationPlan;
  hasLicenses: boolean;
  /** Active licenses expired before the scan window: marked `expired` with no event (only counted when nothing is recorded). */
  longPast: LongPastExpiries;
  /** What recording wrote; absent when nothing is recorded. */
  written?: { inserted: number; fannedOutTo: Record<string, number>; rearmed: number; expired: number; reactivated: number };
}

/** What the delivery engine did with everything pending, and the abandoned deliveries with their license codes. */
interface Delivered {
  sent: DeliverPendingResult;
  abandoned: AbandonedDelivery[];
  /** What this run recorded for disabled endpoints (parked at once). */
  parkedFor: ParkedForDisabled[];
}

// Workers of one run are started together: another run at the same --now that started this close to this one is one of them.
const STARTED_TOGETHER_MS = 60_000;

/** Read → plan → record → deliver → report. `run`: the runs row of this run (none for a dry run). */
async function findAndDeliver(
  context: CommandContext,
  now: Date,
  latestRun: Date | undefined,
  clock: Clock,
  options: ProcessExpirationsOptions,
  run?: { id: string; startedAt: Date; soFar?: RunSoFar },
): Promise<ProcessExpirationsResult> {
  const { db, config } = context;
  const webhooks = config.webhooks;
  // Disabled webhooks or a dry run: report only. Nothing is recorded, so enabling them later still announces what is due.
  const url = !options.dryRun && webhooks.enabled ? webhooks.url : null;
  // The licenses read and the bodies recorded end with this call: a long delivery does not keep them in memory.
  // The endpoints as they are when the events are recorded: one added later receives the events recorded after it.
  const endpoints = url === null ? [] : await resolveEndpoints(db, webhooks, clock.now(), options.onWarning);
  // The endpoints the events would also go to, as a real run's plan names them (read, never written).
  const wouldGo =
    url === null && options.dryRun && webhooks.enabled && webhooks.url !== null
      ? await resolveEndpoints(db, webhooks, clock.now(), options.onWarning)
      : endpoints;
  // Deliveries recorded after this point come from the licenses this run reads now: the others waited, and are checked before they go.
  const freshAfterId = url === null ? 0 : await maxDeliveryId(db);
  const recording = options.tracing?.run.startRecording();
  const planned = await planAndRecord(context, now, latestRun, url !== null, options, fanOutOf(endpoints), endpointTakes(wouldGo), clock.now()).catch(
    (error: unknown) => {
      // The span, the runs row and the CLI say it in the same words.
      const failure = withRefusalWords(context.database, error, true);
      recording?.end({ recorded: 0, error: failure instanceof Error ? failure.message : String(failure) });
      throw failure;
    },
  );
  recording?.end({ recorded: (planned.written?.inserted ?? 0) + (planned.written?.rearmed ?? 0) });
  const soFar = run?.soFar;
  if (soFar) soFar.recorded = (planned.written?.inserted ?? 0) + (planned.written?.rearmed ?? 0);
  if (url === null) {
    // A dry run shows what it would send; with webhooks disabled nothing is about to be sent.
    if (options.dryRun) {
      options.onPlan?.(planned.plan.planLines, alsoTo(wouldGo, planned.plan.planLines), wouldParkForDisabled(wouldGo, planned.plan.planLines));
    }
    return report(context, now, latestRun, options, planned);
  }
  const parkedFor = parkedForDisabled(endpoints, planned.written?.fannedOutTo ?? {});
  options.onPlan?.(planned.plan.planLines, alsoTo(endpoints, planned.plan.planLines), parkedFor);

  // The stored statuses follow each endpoint's switch before anything is claimed: a disabled endpoint's deliveries
  // (those just recorded included) are parked, an enabled one's come back pending (unless a 410 disabled it).
  const gone = goneEndpoints(await endpointStates(db));
  // Claims lapsed a minute ago or more (room for a skew between this host's clock and the leases'): a gone run's.
  // Leases are on the database server's clock when the run's is the system's (see databaseLeaseClock).
  const leaseNow = clock === systemClock ? await leaseNowMs(db, clock.now().getTime()) : clock.now().getTime();
  const switched = await followEndpointSwitches(db, endpoints, gone, leaseNow - LAPSED_SLACK_MS);
  // Said once, by the run that parks them (later runs find them parked): an endpoint taken out of the config file by
  // mistake keeps its notices from going out, and nothing else would say so.
  for (const { endpoint, parked } of switched.undefinedParked) {
    options.onWarning?.(
      `${plural(parked, 'delivery')} to ${endpoint} parked: the endpoint is no longer defined (taken out of the config file, or removed). Put back in the config file, it sends ${parked === 1 ? 'it' : 'them'} with the next run; "${commandLine(`deliveries list --endpoint ${endpoint} --status parked`)}" lists ${parked === 1 ? 'it' : 'them'}, "${commandLine(`endpoints remove ${endpoint} --force`)}" ends ${parked === 1 ? 'it' : 'them'} unsent.`,
    );
  }
  const policy = deliveryPolicy(webhooks, url);
  const sent = await deliverPending(db, {
    policy,
    endpoints: engineEndpoints(webhooks, endpoints, policy),
    switches: endpointSwitches(db, endpoints),
    concurrency: webhooks.concurrency,
    clock,
    stop: options.stop,
    fetch: options.fetch,
    onProgress: options.onProgress,
    ...(soFar && {
      onCounts: (counts: Pick<RunSoFar, 'delivered' | 'abandoned' | 'deferred' | 'parked' | 'superseded'>) => {
        soFar.delivered = counts.delivered;
        soFar.abandoned = counts.abandoned;
        soFar.deferred = counts.deferred;
        soFar.parked = counts.parked;
        soFar.superseded = counts.superseded;
      },
    }),
    leaseMs: options.leaseMs,
    onWarning: options.onWarning,
    retryWindowHours: webhooks.retryWindowHours,
    recheck: staleNoticeCheck(db, {
      licenses: context.licenses,
      timeZone: config.expirations.timeZone,
      products: config.expirations.products,
      narrowed: endpointNarrowed(endpoints),
      freshAfterId,
      ...(run && {
        workers: {
          rulesNow: now,
          startedTogether: () =>
            otherRunStartedTogether(db, {
              id: run.id,
              nowAt: formatUtc(now),
              from: formatUtc(new Date(run.startedAt.getTime() - STARTED_TOGETHER_MS)),
              to: formatUtc(new Date(run.startedAt.getTime() + STARTED_TOGETHER_MS)),
            }),
        },
      }),
    }),
    traceAttempt: attemptTracer(options.tracing, config.monitoring.traceparent),
  });
  return report(context, now, latestRun, options, planned, { sent, abandoned: await abandonedDeliveries(db, context.licenses, sent.outcomes), parkedFor });
}

/** Reads and plans and, when `record` is set (webhooks on, not a dry run), records the new events and the status changes. */
async function planAndRecord(
  context: CommandContext,
  now: Date,
  latestRun: Date | undefined,
  record: boolean,
  options: ProcessExpirationsOptions,
  fanOut: (type: string) => readonly string[],
  takes: EndpointTakes,
  clockNow: Date,
): Promise<Planned> {
  const { db, config } = context;
  const policy: PlanPolicy = { ...config.expirations, schedules: schedulesOf(config.expirations), latestRun, clockNow };
  // --announce-since reaches back further than lookbackDays for this run only (never less far).
  if (options.announceSince) policy.lookbackDays = Math.max(policy.lookbackDays, daysBetween(options.announceSince, dateInZone(now, policy.timeZone)));
  const plan = await findNewEvents(db, context.licenses, now, policy, options.onWarning ?? (() => undefined), takes);
  const hasLicenses = plan.events.length > 0 || plan.rearm.length > 0 || (await context.licenses.hasAny(db));
  const recordedAt = formatUtc(now);
  const longPast = await context.licenses.expireLongPast(db, scanWindow(now, policy).fromDay, recordedAt, record, LISTED_WITHOUT_EVENT);
  if (!record) return { policy, plan, hasLicenses, longPast };
  const recorded = await recordEvents(
    db,
    deliveriesFor(plan.events, now, policy.timeZone, fanOut),
    { expired: plan.expire, reactivated: plan.reactivate },
    recordedAt,
    context.licenses.setStatuses,
    rearmingFor(plan.rearm, takes),
  );
  return {
    policy,
    plan,
    hasLicenses,
    longPast,
    written: {
      inserted: recorded.inserted,
      fannedOutTo: recorded.fannedOutTo,
      rearmed: recorded.rearmed,
      expired: recorded.expired,
      reactivated: recorded.reactivated,
    },
  };
}

/** The run's result, built once from the plan, what was recorded and what was delivered. */
function report(
  context: CommandContext,
  now: Date,
  latestRun: Date | undefined,
  options: ProcessExpirationsOptions,
  { policy, plan, hasLicenses, longPast, written }: Planned,
  delivery?: Delivered,
): ProcessExpirationsResult {
  // Nothing sent (a dry run, webhooks off): every count zero.
  const {
    delivered = 0,
    abandoned = 0,
    superseded = 0,
    released = 0,
    dropped = 0,
    left = 0,
    locked = 0,
    outcomes = [],
    unlisted = 0,
    deferred = 0,
    parked = 0,
    waiting = [],
    gone = [],
    circuits = {},
    byEndpoint,
  }: Partial<DeliverPendingResult> = delivery?.sent ?? {};
  const withoutEvent = expiredWithoutEvent(plan.beyondLookback, longPast.licenses, policy.timeZone);
  // The reminder's count only where reminders are on: without after-expiry days the output is Botble's three events, as before.
  const dueCounts: ProcessExpirationsResult['dueCounts'] = {
    'license.expiring': 0,
    'license.expired': 0,
    'license.update_support_expired': 0,
    ...(policy.schedules.reminders ? { [EXPIRED_REMINDER]: 0 } : {}),
  };
  const due = [...plan.events, ...plan.rearm];
  for (const { event } of due) dueCounts[event.type] = (dueCounts[event.type] ?? 0) + 1;
  return {
    now: formatUtc(now),
    timeZone: policy.timeZone,
    today: plan.today,
    dryRun: Boolean(options.dryRun),
    webhooksEnabled: context.config.webhooks.enabled,
    target: webhookTarget(context),
    hasLicenses,
    licenseSource: context.licenses.kind,
    due: due.map(dueEventReport),
    dueCounts,
    plan: plan.planLines,
    recorded: (written?.inserted ?? 0) + (written?.rearmed ?? 0),
    rearmed: written?.rearmed ?? 0,
    // Those the rules expired and those expired before the scan window.
    markedExpired: written ? written.expired + longPast.count : 0,
    expiredWithoutEvent: plan.beyondLookback.length + longPast.count,
    expiredWithoutEventLicenses: withoutEvent.licenses,
    announceSince: withoutEvent.announceSince,
    lastRunNow: latestRun ? formatUtc(latestRun) : null,
    reactivated: written?.reactivated ?? 0,
    skipped: plan.skipped.length,
    delivered,
    abandoned,
    superseded,
    released,
    dropped,
    left,
    locked,
    deliveries: outcomes,
    unlisted,
    abandonedDeliveries: delivery?.abandoned ?? [],
    deferred,
    parked,
    parkedDisabled: (delivery?.parkedFor ?? []).reduce((sum, entry) => sum + entry.parked, 0),
    parkedDisabledByEndpoint: Object.fromEntries((delivery?.parkedFor ?? []).map((entry) => [entry.endpoint, entry.parked])),
    waiting,
    gone,
    circuits,
    ...(byEndpoint ? { byEndpoint } : {}),
  };
}
