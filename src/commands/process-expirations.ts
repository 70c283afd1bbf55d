import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { $Fetch } from 'ofetch';
import { systemClock, type Clock } from '../clock.js';
import { usageError } from '../errors.js';
import { dueEvents, dueWindows, type DueEvent, type EventType, type ExpirationPolicy } from '../expirations/rules.js';
import type { Database } from '../storage/database.table.js';
import { existingEventKeys, recordEvents, type NewDelivery } from '../storage/deliveries.repository.js';
import { findDueCandidates, findUnreadableDates, type LicenseRow } from '../storage/licenses.repository.js';
import { DAY_MS, formatUtc, parseUtc } from '../time.js';
import { deliveryPolicy } from '../webhooks/deliver.js';
import { buildEventBody, type EventDetails, type EventSubject } from '../webhooks/payload.js';
import type { CommandContext } from './context.js';
import { deliverPending, type DeliverPendingOptions, type DeliverPendingResult, type DeliveryOutcome } from '../delivery/deliver-pending.js';

export interface ProcessExpirationsOptions {
  /** The instant the rules are applied at; defaults to the clock's. */
  now?: Date;
  dryRun?: boolean;
  /** Real time for leases and attempts. */
  clock?: Clock;
  stop?: AbortSignal;
  fetch?: $Fetch;
  onWarning?: (message: string) => void;
  onProgress?: DeliverPendingOptions['onProgress'];
  /** See DeliverPendingOptions.leaseMs. */
  leaseMs?: number;
}

interface DueEventReport {
  type: EventType;
  licenseId: number;
  licenseCode: string;
  date: string;
  daysUntilExpiry?: number;
}

export interface ProcessExpirationsResult {
  now: string;
  dryRun: boolean;
  webhooksEnabled: boolean;
  /** Events due at `now` that no earlier run recorded. */
  due: DueEventReport[];
  dueCounts: Record<EventType, number>;
  /** Rows this run added to webhook_deliveries. */
  recorded: number;
  /** Licenses whose status this run set to `expired`. */
  markedExpired: number;
  /** Rows skipped for bad data (unparsable dates). */
  skipped: number;
  delivered: number;
  abandoned: number;
  released: number;
  /** Taken over by another run while this one was paused. */
  dropped: number;
  /** When stopped early: deliveries still to send (released ones and those never claimed). */
  left: number;
  /** The first deliveries to end (see MAX_LISTED); `unlisted` counts the rest. */
  deliveries: DeliveryOutcome[];
  unlisted: number;
}

/** A license row as the rules see it, or a reason it cannot be read. */
function readDates(row: LicenseRow): { expiresAt: Date | null; updatesUntil: Date | null } | { problem: string } {
  // Rows written by other systems: an event without a license code would reach receivers unusable.
  if (row.license_code.trim() === '') return { problem: 'license_code is empty' };
  const expiresAt = row.expires_at === null ? null : parseUtc(row.expires_at);
  if (expiresAt === undefined) return { problem: `expires_at "${row.expires_at}" is not a date` };
  const updatesUntil = row.updates_until === null ? null : parseUtc(row.updates_until);
  if (updatesUntil === undefined) return { problem: `updates_until "${row.updates_until}" is not a date` };
  return { expiresAt, updatesUntil };
}

export function eventSubject(row: LicenseRow): EventSubject {
  return {
    license_id: row.id,
    license_code: row.license_code,
    product_id: row.product_id,
    product_reference_id: row.product_name,
    customer_id: row.customer_id,
    email: row.email,
  };
}

function eventDetails(event: DueEvent): EventDetails {
  switch (event.type) {
    case 'license.expiring':
      return { type: event.type, expiresAt: event.date, daysUntilExpiry: event.daysUntilExpiry ?? 0 };
    case 'license.expired':
      return { type: event.type, expiresAt: event.date };
    case 'license.update_support_expired':
      return { type: event.type, updatesUntil: event.date };
  }
}

/** Reads the due window, decides which events are new, and returns them with their licenses. */
async function findNewEvents(
  db: Kysely<Database>,
  now: Date,
  policy: ExpirationPolicy,
  onWarning: (message: string) => void,
): Promise<{ events: Array<{ event: DueEvent; license: LicenseRow }>; skipped: number }> {
  const windows = dueWindows(now, policy);
  // A day of margin each side covers offsets up to ±14 h in dates written by other systems.
  const day = (date: Date, shiftDays: number) => formatUtc(new Date(date.getTime() + shiftDays * DAY_MS)).slice(0, 10);
  const candidates = await findDueCandidates(db, {
    fromDay: day(windows.oldest, -1),
    expiresBeforeDay: day(windows.expiresBefore, 2),
    supportBeforeDay: day(now, 2),
  });
  const due: Array<{ event: DueEvent; license: LicenseRow }> = [];
  let skipped = 0;
  for (const license of candidates) {
    const dates = readDates(license);
    if ('problem' in dates) {
      skipped += 1;
      onWarning(`Skipped license id ${license.id}${license.license_code ? ` (${license.license_code})` : ''}: ${dates.problem}.`);
      continue;
    }
    for (const event of dueEvents({ id: license.id, status: license.status, ...dates }, now, policy)) due.push({ event, license });
  }
  // Dates that do not look like dates sit outside every window; name them so they can be fixed.
  const warned = new Set(candidates.map((license) => license.id));
  for (const bad of await findUnreadableDates(db, 100)) {
    if (warned.has(bad.id)) continue;
    warned.add(bad.id);
    skipped += 1;
    onWarning(`Skipped license id ${bad.id}${bad.license_code ? ` (${bad.license_code})` : ''}: ${bad.column} "${bad.value}" is not a date.`);
  }
  const existing = await existingEventKeys(db, due.map(({ event }) => event.key));
  return { events: due.filter(({ event }) => !existing.has(event.key)), skipped };
}

/** The cron job: record every due event once, then deliver everything pending. */
export async function processExpirations(context: CommandContext, options: ProcessExpirationsOptions = {}): Promise<ProcessExpirationsResult> {
  const { db, config } = context;
  const clock = options.clock ?? systemClock;
  const now = options.now ?? clock.now();
  const webhooks = config.webhooks;
  if (webhooks.enabled && !webhooks.url && !options.dryRun) {
    throw usageError('Webhooks are enabled but no webhook URL is set. Run "license-manager settings set webhook-url <url>" (or set LICENSE_MANAGER_WEBHOOK_URL), or disable them with "settings set webhooks-enabled false".');
  }
  const policy: ExpirationPolicy = { warningDays: config.expirations.warningDays, lookbackDays: config.expirations.lookbackDays };
  const { events, skipped } = await findNewEvents(db, now, policy, options.onWarning ?? (() => undefined));

  const dueCounts: Record<EventType, number> = { 'license.expiring': 0, 'license.expired': 0, 'license.update_support_expired': 0 };
  for (const { event } of events) dueCounts[event.type] += 1;
  const result: ProcessExpirationsResult = {
    now: formatUtc(now),
    dryRun: Boolean(options.dryRun),
    webhooksEnabled: webhooks.enabled,
    due: events.map(({ event, license }) => ({
      type: event.type,
      licenseId: license.id,
      licenseCode: license.license_code,
      date: formatUtc(event.date),
      ...(event.daysUntilExpiry === undefined ? {} : { daysUntilExpiry: event.daysUntilExpiry }),
    })),
    dueCounts,
    recorded: 0,
    markedExpired: 0,
    skipped,
    delivered: 0,
    abandoned: 0,
    released: 0,
    dropped: 0,
    left: 0,
    deliveries: [],
    unlisted: 0,
  };
  // Disabled webhooks: report only. Nothing is recorded, so enabling them later still announces what is due.
  if (options.dryRun || !webhooks.enabled || !webhooks.url) return result;

  const recordedAt = formatUtc(now);
  const deliveries: NewDelivery[] = events.map(({ event, license }) => ({
    event_id: randomUUID(),
    event_key: event.key,
    event_type: event.type,
    license_id: license.id,
    body: buildEventBody(eventDetails(event), eventSubject(license), now),
  }));
  const expiredIds = events.filter(({ event }) => event.type === 'license.expired').map(({ license }) => license.id);
  const recorded = await recordEvents(db, deliveries, expiredIds, recordedAt);
  result.recorded = recorded.inserted;
  result.markedExpired = recorded.expired;

  const sent: DeliverPendingResult = await deliverPending(db, {
    policy: deliveryPolicy(webhooks, webhooks.url),
    concurrency: webhooks.concurrency,
    clock,
    stop: options.stop,
    fetch: options.fetch,
    onProgress: options.onProgress,
    leaseMs: options.leaseMs,
  });
  result.delivered = sent.delivered;
  result.abandoned = sent.abandoned;
  result.released = sent.released;
  result.dropped = sent.dropped;
  result.left = sent.left;
  result.deliveries = sent.outcomes;
  result.unlisted = sent.unlisted;
  return result;
}
