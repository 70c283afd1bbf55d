import type { $Fetch } from 'ofetch';
import { systemClock, type Clock } from '../clock.js';
import { settingAdvice } from '../config/botble-settings.js';
import { usageError } from '../errors.js';
import type { EventType } from '../expirations/rules.js';
import type { EXPIRED_REMINDER } from '../expirations/after-expiry.js';
import type { DeliveryStatus } from '../storage/database.table.js';
import { abandonedByEndpoint, countAbandoned, listAbandoned } from '../storage/deliveries/claims.repository.js';
import { endpointStates, goneEndpoints } from '../storage/endpoint-states.repository.js';
import {
  countDeliveries,
  deliveriesByIds,
  findDelivery,
  listDeliveries,
  type AttemptRow,
  type DeliveryListItem,
} from '../storage/deliveries/log.repository.js';
import { withLicenseCodes } from '../storage/license-source.js';
import { endpointDeliveries } from '../storage/monitoring.repository.js';
import { formatUtc } from '../time.js';
import { deliveryPolicy } from '../webhooks/deliver.js';
import { abandonedDeliveries, type AbandonedDelivery } from './abandoned.js';
import type { CommandContext } from './context.js';
import { resolveEndpoints } from '../config/endpoints.js';
import { DEFAULT_ENDPOINT_NAME } from '../webhooks/endpoint-spec.js';
import { endpointSwitches, engineEndpoints } from '../delivery/endpoint-policies.js';
import { deliverPending, MAX_LISTED, nothingSent, type DeliverPendingOptions, type DeliverPendingResult } from '../delivery/deliver-pending.js';
import { staleNoticeCheck } from '../delivery/stale-notices.js';
import { commandLine } from '../command-line.js';
import { endpointNarrowed } from './recorded-notices.js';

export interface ListDeliveriesOptions {
  status?: DeliveryStatus | undefined;
  eventType?: EventType | typeof EXPIRED_REMINDER | undefined;
  licenseCode?: string | undefined;
  /** Only deliveries to this endpoint. */
  endpoint?: string | undefined;
  since?: Date | undefined;
  /** At most this many rows; undefined for all of them. */
  limit?: number | undefined;
  /** Where the endpoints are resolved from (a rotated secret's validity); the system clock when not given. */
  clock?: Clock;
}

export interface DeliveriesListResult {
  rows: DeliveryListItem[];
  /** How many match, whatever the limit: more than rows.length means the list was cut. */
  total: number;
}

export async function deliveriesList(context: CommandContext, options: ListDeliveriesOptions): Promise<DeliveriesListResult> {
  const { db, licenses } = context;
  const { licenseCode, clock, ...rest } = options;
  if (options.endpoint !== undefined) await knownEndpoint(context, options.endpoint, clock, { orInLog: true });
  // A code is looked up where the licenses are (ours or Botble's); one that names no license matches no delivery.
  const licenseIds = licenseCode === undefined ? undefined : await licenses.idsOfCode(db, licenseCode);
  if (licenseIds?.length === 0) return { rows: [], total: 0 };
  const filter = { ...rest, licenseIds, since: options.since && formatUtc(options.since) };
  const rows = await withLicenseCodes(licenses, db, await listDeliveries(db, filter));
  const total = options.limit !== undefined && rows.length === options.limit ? await countDeliveries(db, filter) : rows.length;
  return { rows, total };
}

/** One delivery and its attempts as `deliveries show` prints them (its --json is this object). */
export interface DeliveryDetails {
  delivery: DeliveryListItem;
  attempts: AttemptRow[];
}
export type { DeliveryStatus };

export async function deliveriesShow(context: CommandContext, id: number): Promise<DeliveryDetails> {
  const found = await findDelivery(context.db, id);
  if (!found) throw usageError(`No delivery with id ${id}. See "${commandLine('deliveries list')}".`);
  const [delivery] = await withLicenseCodes(context.licenses, context.db, [found.delivery]);
  return { delivery: delivery!, attempts: found.attempts };
}

/**
 * Refuses a name that is no endpoint (exit 2), so a typo in --endpoint never reads as "nothing to do". With `orInLog`
 * (listing), a name the log still has deliveries of is known too: an endpoint removed, or taken out of the config file.
 */
async function knownEndpoint(context: CommandContext, name: string, clock: Clock = systemClock, options: { orInLog?: boolean } = {}): Promise<void> {
  const endpoints = (await resolveEndpoints(context.db, context.config.webhooks, clock.now())).map((endpoint) => endpoint.name);
  if (endpoints.includes(name)) return;
  if (options.orInLog && (await endpointDeliveries(context.db, name)).length > 0) return;
  const inLog = options.orInLog ? (await endpointDeliveries(context.db)).map((row) => row.endpoint) : [];
  const known = [...new Set([...endpoints, ...inLog.sort()])];
  throw usageError(`No endpoint named "${name}" (known: ${known.join(', ')}). See "${commandLine('endpoints list')}".`);
}

export interface RetryOptions {
  ids: readonly number[];
  /** With `abandoned`: only those of this endpoint. */
  endpoint?: string;
  abandoned?: boolean;
  /** Re-send delivered and superseded ones among `ids` too, without checking their licenses again. */
  force?: boolean;
  since?: Date;
  dryRun?: boolean;
  clock?: Clock;
  stop?: AbortSignal;
  fetch?: $Fetch;
  onProgress?: DeliverPendingOptions['onProgress'];
  onWarning?: (message: string) => void;
  /** See DeliverPendingOptions.leaseMs. */
  leaseMs?: number | undefined;
}

export interface RetryResult extends DeliverPendingResult {
  dryRun: boolean;
  /** The deliveries chosen for re-sending: the first MAX_LISTED by id; `selectedCount` counts them all. */
  selected: Array<{ id: number; eventId: string; eventType: string; licenseCode: string | null }>;
  selectedCount: number;
  /** How many of the selected had been delivered and are sent again (`--force`). */
  forced: number;
  /** How many of the selected had been superseded and are sent anyway (`--force`). */
  forcedSuperseded: number;
  /**
   * A dry run without --force: those of the listed ones a re-send would supersede instead of sending (their license
   * read again now, as the re-send reads it), with the reason; empty otherwise.
   */
  wouldSupersede: Array<{ id: number; reason: string }>;
  /** The ones abandoned again (of those listed in outcomes), with license codes. */
  abandonedDeliveries: AbandonedDelivery[];
  /**
   * `--abandoned`: abandoned deliveries left out because their endpoint cannot be sent to now (taken out of the
   * config file or removed; disabled, by the operator or a 410 Gone), by endpoint. Never counted as selected.
   */
  skippedEndpoints: SkippedEndpoint[];
}

export interface SkippedEndpoint {
  endpoint: string;
  deliveries: number;
  reason: 'no longer defined' | 'disabled';
  /** Why it is disabled, when a 410 Gone did it. */
  detail?: string;
}

/** What `deliveries retry --abandoned` says about the deliveries it left out, and what would let it send them. */
export function skippedEndpointMessage(skipped: SkippedEndpoint): string {
  const them = skipped.deliveries === 1 ? 'it' : 'them';
  const what = `skipped ${skipped.deliveries} abandoned ${skipped.deliveries === 1 ? 'delivery' : 'deliveries'} to the endpoint "${skipped.endpoint}"`;
  if (skipped.reason === 'no longer defined') {
    // Not `endpoints add`: an endpoint added under the name is a new one, which ends what an earlier one left unsent.
    return `${what}, which is no longer defined: nothing can send ${them}. Put "${skipped.endpoint}" back in the config file's webhooks.endpoints and retry to re-send ${them}, or end ${them} unsent with "${commandLine(`endpoints remove ${skipped.endpoint} --force`)}".`;
  }
  return `${what}, which is disabled${skipped.detail ? ` (${skipped.detail})` : ''}: "${commandLine(`endpoints enable ${skipped.endpoint}`)}" first, then retry to re-send ${them}.`;
}

/**
 * Which endpoints' abandoned deliveries `--abandoned` leaves out, and which it takes: the engine re-sends to an
 * enabled endpoint only (the same reading: defined, enabled, with a URL, not disabled by a 410).
 */
async function abandonedBySendability(
  context: CommandContext,
  selection: { since?: string | undefined; endpoints?: readonly string[] | undefined },
  now: Date,
): Promise<{ sendable: string[]; skipped: SkippedEndpoint[] }> {
  const counts = await abandonedByEndpoint(context.db, selection);
  if (counts.size === 0) return { sendable: [], skipped: [] };
  const resolved = await resolveEndpoints(context.db, context.config.webhooks, now);
  const gone = goneEndpoints(await endpointStates(context.db));
  const sendable: string[] = [];
  const skipped: SkippedEndpoint[] = [];
  for (const [name, deliveries] of [...counts].sort(([a], [b]) => a.localeCompare(b))) {
    const endpoint = resolved.find((candidate) => candidate.name === name);
    const goneReason = gone.get(name);
    if (!endpoint) skipped.push({ endpoint: name, deliveries, reason: 'no longer defined' });
    else if (goneReason !== undefined) skipped.push({ endpoint: name, deliveries, reason: 'disabled', detail: goneReason });
    else if (name !== DEFAULT_ENDPOINT_NAME && (!endpoint.enabled || endpoint.url === null)) skipped.push({ endpoint: name, deliveries, reason: 'disabled' });
    else sendable.push(name);
  }
  return { sendable, skipped };
}

/**
 * Re-sends abandoned deliveries with the current URL and secret: same event_id and body, the full retry
 * policy, the new attempts appended to the old ones.
 */
export async function deliveriesRetry(context: CommandContext, options: RetryOptions): Promise<RetryResult> {
  const { webhooks } = context.config;
  // `retry 3 3` is one delivery: counted, checked and sent once.
  const ids = [...new Set(options.ids)];
  if (ids.length > 0 && options.abandoned) throw usageError('Give delivery ids or --abandoned, not both.');
  if (ids.length === 0 && !options.abandoned)
    throw usageError('Say which deliveries to re-send: ids (see "deliveries list --status abandoned") or --abandoned.');
  if (options.endpoint !== undefined && !options.abandoned) throw usageError('--endpoint goes with --abandoned: delivery ids name their deliveries already.');
  if (options.since !== undefined && !options.abandoned) throw usageError('--since goes with --abandoned: delivery ids name their deliveries already.');
  if (options.endpoint !== undefined) await knownEndpoint(context, options.endpoint, options.clock);
  if (options.force && options.abandoned)
    throw usageError(
      '--force re-sends delivered deliveries named by id; --abandoned takes abandoned ones only. Give the ids instead (see "deliveries list --status delivered").',
    );
  const since = options.since && formatUtc(options.since);
  let endpoints = options.endpoint === undefined ? undefined : [options.endpoint];
  let skippedEndpoints: SkippedEndpoint[] = [];
  let selected: Array<Pick<DeliveryListItem, 'id' | 'event_id' | 'event_type' | 'license_code'>>;
  let selectedCount: number;
  let forced = 0;
  let forcedSuperseded = 0;
  if (options.abandoned) {
    // Only what can be sent is selected: an endpoint no longer defined or disabled keeps its abandoned ones, said by name.
    const sendability = await abandonedBySendability(context, { since, endpoints }, (options.clock ?? systemClock).now());
    skippedEndpoints = sendability.skipped;
    if (skippedEndpoints.length > 0) endpoints = sendability.sendable;
    // Listed up to MAX_LISTED and counted: the re-send itself walks the ids, so any number can go.
    selected = await withLicenseCodes(context.licenses, context.db, await listAbandoned(context.db, { since, endpoints }, MAX_LISTED));
    selectedCount = selected.length < MAX_LISTED ? selected.length : await countAbandoned(context.db, { since, endpoints });
  } else {
    selected = [];
    for (const id of ids) {
      const { delivery } = await deliveriesShow(context, id);
      if (delivery.status === 'delivered' && !options.force) {
        throw usageError(
          `Delivery ${delivery.id} was delivered${delivery.completed_at ? ` at ${delivery.completed_at}` : ''} (HTTP ${delivery.last_status_code ?? '2xx'}), so it is not re-sent. If the receiver acknowledged it and then lost it, send it again with "${commandLine(`deliveries retry ${delivery.id} --force`)}" (the same event id and body, a new retry schedule).`,
        );
      }
      if (delivery.status === 'superseded' && !options.force) {
        throw usageError(
          `Delivery ${delivery.id} was superseded${delivery.completed_at ? ` at ${delivery.completed_at}` : ''}: ${delivery.status_reason ?? 'its license changed or expired since it was recorded'}. It is not re-sent, so the receiver never gets a notice its license contradicts. To send it anyway, exactly as recorded: "${commandLine(`deliveries retry ${delivery.id} --force`)}". Nothing was sent.`,
        );
      }
      if (delivery.status !== 'abandoned' && delivery.status !== 'delivered' && delivery.status !== 'deferred' && delivery.status !== 'superseded') {
        const why =
          delivery.status === 'parked'
            ? `its endpoint is disabled${delivery.status_reason ? ` (${delivery.status_reason})` : ''}: "${commandLine(`endpoints enable ${delivery.endpoint}`)}" sends it with the next process-expirations`
            : 'pending ones go out with the next process-expirations';
        throw usageError(`Delivery ${delivery.id} is ${delivery.status}: only abandoned and deferred deliveries are re-sent (${why}).`);
      }
      if (delivery.endpoint !== DEFAULT_ENDPOINT_NAME) {
        const endpoint = (await resolveEndpoints(context.db, webhooks, (options.clock ?? systemClock).now())).find(
          (candidate) => candidate.name === delivery.endpoint,
        );
        if (!endpoint?.enabled) {
          throw usageError(
            `Delivery ${delivery.id} goes to the endpoint "${delivery.endpoint}", which is ${endpoint ? 'disabled' : 'no longer defined'}: ${endpoint ? `enable it first ("${commandLine(`endpoints enable ${delivery.endpoint}`)}")` : 'it has nowhere to go'}. Nothing was sent.`,
          );
        }
      }
      if (delivery.status === 'delivered') forced += 1;
      if (delivery.status === 'superseded') forcedSuperseded += 1;
      selected.push(delivery);
    }
  }
  selected.sort((a, b) => a.id - b.id);
  selectedCount ??= selected.length;
  const summary = selected.map((row) => ({ id: row.id, eventId: row.event_id, eventType: row.event_type, licenseCode: row.license_code }));
  const empty: RetryResult = {
    dryRun: Boolean(options.dryRun),
    selected: summary,
    selectedCount,
    forced,
    forcedSuperseded,
    wouldSupersede: [],
    ...nothingSent(),
    abandonedDeliveries: [],
    skippedEndpoints,
  };
  const now = () => (options.clock ?? systemClock).now();
  // Each to its own endpoint's URL and secret; those of a disabled endpoint stay as they are.
  const resolved = await resolveEndpoints(context.db, webhooks, now());
  // A re-sent delivery waited: its license is read again first, unless --force says to send it as it is. A dry run
  // asks the same check, written nowhere: it promises no more than the re-send sends.
  const recheck = options.force
    ? undefined
    : staleNoticeCheck(context.db, {
        licenses: context.licenses,
        timeZone: context.config.expirations.timeZone,
        products: context.config.expirations.products,
        narrowed: endpointNarrowed(resolved),
      });
  if (options.dryRun && recheck && selected.length > 0) {
    const reasons = await recheck(
      await deliveriesByIds(
        context.db,
        selected.map((row) => row.id),
      ),
      now(),
    );
    empty.wouldSupersede = [...reasons].sort(([a], [b]) => a - b).map(([id, reason]) => ({ id, reason }));
  }
  if (options.dryRun || selectedCount === 0) return empty;
  if (!webhooks.url) throw usageError(`No webhook URL is set: ${settingAdvice(context.licenses.kind, 'webhook-url', '<url>')} first.`);

  const policy = deliveryPolicy(webhooks, webhooks.url);
  const sent = await deliverPending(context.db, {
    policy,
    endpoints: engineEndpoints(webhooks, resolved, policy),
    switches: endpointSwitches(context.db, resolved),
    concurrency: webhooks.concurrency,
    clock: options.clock,
    stop: options.stop,
    fetch: options.fetch,
    onProgress: options.onProgress,
    onWarning: options.onWarning,
    leaseMs: options.leaseMs,
    retryWindowHours: webhooks.retryWindowHours,
    ...(recheck ? { recheck } : {}),
    // The same selection, claimed a window at a time in id order: no id list of any length in one statement.
    resend: options.abandoned ? { since, ...(endpoints ? { endpoints } : {}) } : { ids, delivered: options.force },
  });
  return { ...empty, ...sent, abandonedDeliveries: await abandonedDeliveries(context.db, context.licenses, sent.outcomes) };
}
