import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { $Fetch } from 'ofetch';
import { systemClock, type Clock } from '../clock.js';
import { settingAdvice } from '../config/botble-settings.js';
import { EXIT, ExitError, runExitCode, usageError } from '../errors.js';
import { eventDetails, eventSubject, readDates } from '../expirations/license-events.js';
import {
  decide,
  parseEventKey,
  scanBounds,
  type DueEvent,
  type EventType,
  type ExpirationPolicy,
  RecordedEvents,
  type RecordedEvent,
} from '../expirations/rules.js';
import type { Database } from '../storage/database.table.js';
import { recordedEventKeys, recordEvents, type NewDeliveries } from '../storage/deliveries.repository.js';
import type { LicenseSource } from '../storage/license-source.js';
import type { LicenseRow } from '../storage/licenses.repository.js';
import { formatUtc } from '../time.js';
import { deliveryPolicy } from '../webhooks/deliver.js';
import { buildEventBody } from '../webhooks/payload.js';
import { abandonedDeliveries, type AbandonedDelivery } from './abandoned.js';
import { webhookTarget, type CommandContext, type WebhookTarget } from './context.js';
import { checkFinishRun, finishRun, startRun } from '../storage/runs.repository.js';
import type { RunStatus } from '../storage/database.table.js';
import { deliverPending, type DeliverPendingOptions, type DeliverPendingResult, type DeliveryOutcome } from '../delivery/deliver-pending.js';

/** How far ahead of the real clock `--now` may be without --dry-run (clock skew between machines). */
const FUTURE_NOW_TOLERANCE_MS = 60_000;

export interface ProcessExpirationsOptions {
  /** The instant the rules are applied at; defaults to the clock's. */
  now?: Date;
  dryRun?: boolean;
  /** Real time for leases and attempts, and the limit for `now`. */
  clock?: Clock;
  stop?: AbortSignal;
  fetch?: $Fetch;
  onWarning?: (message: string) => void;
  /** Called once the new events are known (recorded, unless a dry run) and before any is sent. */
  onPlan?: (plan: PlanLine[]) => void;
  onProgress?: DeliverPendingOptions['onProgress'];
  /** See DeliverPendingOptions.leaseMs. */
  leaseMs?: number;
}

/** How many new events of one type (and, for warnings, one threshold) this run sends. */
export interface PlanLine {
  type: EventType;
  threshold?: number;
  count: number;
}

interface DueEventReport {
  type: EventType;
  licenseId: number;
  licenseCode: string;
  date: string;
  daysUntilExpiry?: number;
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
  /** Events due at `now` that no earlier run recorded. */
  due: DueEventReport[];
  dueCounts: Record<EventType, number>;
  /** The same events counted by type and threshold (what `onPlan` got). */
  plan: PlanLine[];
  /** Rows this run added to webhook_deliveries. */
  recorded: number;
  /** Licenses whose status this run set to `expired` (with or without an event). */
  markedExpired: number;
  /** Licenses that expired longer ago than lookbackDays, never announced: `expired` with no event (counted, not written, on a dry run). */
  expiredWithoutEvent: number;
  /** Renewed licenses this run set back from `expired` to `active`. */
  reactivated: number;
  /** Rows skipped for bad data (unparsable dates). */
  skipped: number;
  delivered: number;
  abandoned: number;
  released: number;
  /** Taken over by another run while this one was paused. */
  dropped: number;
  /** When stopped early: deliveries still to send (released ones and those never claimed). */
  left: number;
  /** Due deliveries another database session held row locks on: left pending (exit 1), the next run sends them. */
  locked: number;
  /** The first deliveries to end (see MAX_LISTED); `unlisted` counts the rest. */
  deliveries: DeliveryOutcome[];
  unlisted: number;
  /** The abandoned ones, with license codes: what the operator must look at. */
  abandonedDeliveries: AbandonedDelivery[];
}

type LicenseEvent = { event: DueEvent; license: LicenseRow };

interface Findings {
  events: LicenseEvent[];
  expire: Array<Pick<LicenseRow, 'id' | 'expires_at'>>;
  reactivate: number[];
  beyondLookback: number[];
  skipped: number;
}

/** Reads the candidates, applies the rules, and keeps only events no earlier record covers. */
async function findNewEvents(
  db: Kysely<Database>,
  licenses: LicenseSource,
  now: Date,
  policy: ExpirationPolicy,
  onWarning: (message: string) => void,
): Promise<Findings> {
  const candidates = await licenses.findDueCandidates(db, scanBounds(now, policy));
  const due: LicenseEvent[] = [];
  const findings: Findings = { events: [], expire: [], reactivate: [], beyondLookback: [], skipped: 0 };
  for (const license of candidates) {
    const dates = readDates(license, policy.timeZone);
    if ('problem' in dates) {
      findings.skipped += 1;
      onWarning(`Skipped license id ${license.id}${license.license_code ? ` (${license.license_code})` : ''}: ${dates.problem}.`);
      continue;
    }
    const decision = decide({ id: license.id, status: license.status, ...dates }, now, policy);
    for (const event of decision.events) due.push({ event, license });
    if (decision.status === 'expired') findings.expire.push({ id: license.id, expires_at: license.expires_at });
    if (decision.status === 'active') findings.reactivate.push(license.id);
    if (decision.beyondLookback) findings.beyondLookback.push(license.id);
  }
  // Dates that do not look like dates sit outside every window; name them so they can be fixed.
  const warned = new Set(candidates.map((license) => license.id));
  for (const bad of await licenses.findUnreadableDates(db, 100)) {
    if (warned.has(bad.id)) continue;
    warned.add(bad.id);
    findings.skipped += 1;
    onWarning(`Skipped license id ${bad.id}${bad.license_code ? ` (${bad.license_code})` : ''}: ${bad.column} "${bad.value}" is not a date.`);
  }
  findings.events = await notYetRecorded(db, due, policy.timeZone);
  return findings;
}

/** The events no earlier record covers: records of these licenses under today's keys or the first release's. */
async function notYetRecorded(db: Kysely<Database>, events: LicenseEvent[], timeZone: string): Promise<LicenseEvent[]> {
  const recorded: RecordedEvent[] = [];
  for (const key of await recordedEventKeys(db, events.map(({ license }) => license.id))) {
    const parsed = parseEventKey(key, timeZone);
    if (parsed) recorded.push(parsed);
  }
  const earlier = new RecordedEvents(recorded);
  return events.filter(({ event }) => !earlier.covers(event));
}

/** The deliveries of these events, their bodies built a slice at a time as they are inserted. */
function deliveriesFor(events: LicenseEvent[], now: Date, timeZone: string): NewDeliveries {
  return {
    count: events.length,
    slice: (start, end) =>
      events.slice(start, end).map(({ event, license }) => ({
        event_id: randomUUID(),
        event_key: event.key,
        event_type: event.type,
        license_id: license.id,
        body: buildEventBody(eventDetails(event), eventSubject(license), now),
      })),
    // Another run recorded while this one waited its turn: most of these events are likely recorded now.
    stillNew: async (trx) => deliveriesFor(await notYetRecorded(trx, events, timeZone), now, timeZone),
  };
}

/** Counts by type and threshold, largest threshold first. */
function planOf(events: readonly DueEvent[]): PlanLine[] {
  const lines = new Map<string, PlanLine>();
  for (const event of events) {
    const key = `${event.type}:${event.threshold ?? ''}`;
    const line = lines.get(key) ?? { type: event.type, ...(event.threshold === undefined ? {} : { threshold: event.threshold }), count: 0 };
    line.count += 1;
    lines.set(key, line);
  }
  return [...lines.values()].sort((a, b) => a.type.localeCompare(b.type) || (b.threshold ?? 0) - (a.threshold ?? 0));
}

/**
 * The cron job: record every due event once, then deliver everything pending. A real run (not a dry run) is
 * written to `runs` when it starts and finished however it ends, so `status` can tell a stopped job from a quiet one.
 */
export async function processExpirations(context: CommandContext, options: ProcessExpirationsOptions = {}): Promise<ProcessExpirationsResult> {
  const clock = options.clock ?? systemClock;
  const now = options.now ?? clock.now();
  checkRun(context, now, clock.now(), options);
  if (options.dryRun) return findAndDeliver(context, now, clock, options);
  const runId = randomUUID();
  await startRun(context.db, { id: runId, command: 'process-expirations', startedAt: formatUtc(clock.now()) });
  let result: ProcessExpirationsResult | undefined;
  let failure: unknown;
  try {
    await checkFinishRun(context.db);
    result = await findAndDeliver(context, now, clock, options);
    return result;
  } catch (error) {
    failure = error;
    throw error;
  } finally {
    const stopped = Boolean(options.stop?.aborted);
    const exitCode = result ? runExitCode({ abandoned: result.abandoned, stopped, locked: result.locked }) : failure instanceof ExitError ? failure.code : EXIT.failure;
    const status: Exclude<RunStatus, 'running'> = !result || result.locked > 0 ? 'failed' : stopped ? 'stopped' : result.abandoned > 0 ? 'abandoned' : 'succeeded';
    const message = failure === undefined ? (result?.locked ? lockedMessage(result.locked) : null) : failure instanceof Error ? failure.message : JSON.stringify(failure);
    // A run whose database has gone away cannot record its end; the original failure is what matters then.
    await finishRun(context.db, runId, {
      finishedAt: formatUtc(clock.now()),
      status,
      exitCode,
      recorded: result?.recorded ?? 0,
      delivered: result?.delivered ?? 0,
      abandoned: result?.abandoned ?? 0,
      error: message,
    }).catch((error: unknown) => {
      if (failure === undefined) throw error;
    });
  }
}

/** What a run that passed over locked deliveries says, on stderr and in its `runs` row (which `status` shows). */
export function lockedMessage(locked: number): string {
  return `left ${locked} due ${locked === 1 ? 'delivery' : 'deliveries'} pending: another database session held row locks on ${locked === 1 ? 'it' : 'them'} (an open transaction, a report). The next run sends ${locked === 1 ? 'it' : 'them'}; if this repeats, find and end that session.`;
}

/** Refusals that come before anything is written (exit 2, no run recorded). */
function checkRun(context: CommandContext, now: Date, realNow: Date, options: ProcessExpirationsOptions): void {
  const webhooks = context.config.webhooks;
  if (!options.dryRun && now.getTime() > realNow.getTime() + FUTURE_NOW_TOLERANCE_MS) {
    throw usageError(
      `--now ${formatUtc(now)} is ahead of the clock (${formatUtc(realNow)}): a real run in the future would announce expiries that have not happened. Add --dry-run to preview it, or give a past instant to catch up.`,
    );
  }
  if (webhooks.enabled && !webhooks.url && !options.dryRun) {
    const source = context.licenses.kind;
    throw usageError(
      `Webhooks are enabled but no webhook URL is set: ${settingAdvice(source, 'webhook-url', '<url>')} (or set LICENSE_MANAGER_WEBHOOK_URL), or disable them (${settingAdvice(source, 'webhooks-enabled', 'false')}).`,
    );
  }
}

async function findAndDeliver(context: CommandContext, now: Date, clock: Clock, options: ProcessExpirationsOptions): Promise<ProcessExpirationsResult> {
  const { db, config } = context;
  const webhooks = config.webhooks;
  // Disabled webhooks or a dry run: report only. Nothing is recorded, so enabling them later still announces what is due.
  const url = !options.dryRun && webhooks.enabled ? webhooks.url : null;
  // The licenses read and the bodies recorded end with this call: a long delivery does not keep them in memory.
  const result = await findAndRecord(context, now, url !== null, options);
  if (url === null) {
    // A dry run shows what it would send; with webhooks disabled nothing is about to be sent.
    if (options.dryRun) options.onPlan?.(result.plan);
    return result;
  }
  options.onPlan?.(result.plan);

  const sent: DeliverPendingResult = await deliverPending(db, {
    policy: deliveryPolicy(webhooks, url),
    concurrency: webhooks.concurrency,
    clock,
    stop: options.stop,
    fetch: options.fetch,
    onProgress: options.onProgress,
    leaseMs: options.leaseMs,
    onWarning: options.onWarning,
  });
  result.delivered = sent.delivered;
  result.abandoned = sent.abandoned;
  result.released = sent.released;
  result.dropped = sent.dropped;
  result.left = sent.left;
  result.locked = sent.locked;
  result.deliveries = sent.outcomes;
  result.unlisted = sent.unlisted;
  result.abandonedDeliveries = await abandonedDeliveries(db, context.licenses, sent.outcomes);
  return result;
}

/** Finds the new events and, when `record` is set (webhooks on, not a dry run), records them and the status changes. */
async function findAndRecord(context: CommandContext, now: Date, record: boolean, options: ProcessExpirationsOptions): Promise<ProcessExpirationsResult> {
  const { db, config } = context;
  const policy: ExpirationPolicy = { ...config.expirations };
  const findings = await findNewEvents(db, context.licenses, now, policy, options.onWarning ?? (() => undefined));
  const { events } = findings;

  const dueCounts: Record<EventType, number> = { 'license.expiring': 0, 'license.expired': 0, 'license.update_support_expired': 0 };
  for (const { event } of events) dueCounts[event.type] += 1;
  const bounds = scanBounds(now, policy);
  const result: ProcessExpirationsResult = {
    now: formatUtc(now),
    timeZone: policy.timeZone,
    today: bounds.today,
    dryRun: Boolean(options.dryRun),
    webhooksEnabled: config.webhooks.enabled,
    target: webhookTarget(context),
    hasLicenses: events.length > 0 || (await context.licenses.hasAny(db)),
    licenseSource: context.licenses.kind,
    due: events.map(({ event, license }) => ({
      type: event.type,
      licenseId: license.id,
      licenseCode: license.license_code,
      date: formatUtc(event.date),
      ...(event.daysUntilExpiry === undefined ? {} : { daysUntilExpiry: event.daysUntilExpiry, threshold: event.threshold }),
    })),
    dueCounts,
    plan: planOf(events.map(({ event }) => event)),
    recorded: 0,
    markedExpired: 0,
    expiredWithoutEvent: 0,
    reactivated: 0,
    skipped: findings.skipped,
    delivered: 0,
    abandoned: 0,
    released: 0,
    dropped: 0,
    left: 0,
    locked: 0,
    deliveries: [],
    unlisted: 0,
    abandonedDeliveries: [],
  };
  const recordedAt = formatUtc(now);
  result.expiredWithoutEvent = findings.beyondLookback.length + (await context.licenses.expireLongPast(db, bounds.fromDay, recordedAt, record));
  if (!record) return result;

  const recorded = await recordEvents(db, deliveriesFor(events, now, policy.timeZone), { expired: findings.expire, reactivated: findings.reactivate }, recordedAt, context.licenses.setStatuses);
  result.recorded = recorded.inserted;
  result.markedExpired = recorded.expired + (result.expiredWithoutEvent - findings.beyondLookback.length);
  result.reactivated = recorded.reactivated;
  return result;
}
