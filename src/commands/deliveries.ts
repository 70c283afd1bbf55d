import type { $Fetch } from 'ofetch';
import type { Clock } from '../clock.js';
import { usageError } from '../errors.js';
import { EVENT_TYPES } from '../expirations/rules.js';
import type { DeliveryStatus } from '../storage/database.table.js';
import {
  findDelivery,
  listDeliveries,
  requeueDeliveries,
  type AttemptRow,
  type DeliveryListItem,
} from '../storage/deliveries.repository.js';
import { formatUtc } from '../time.js';
import { deliveryPolicy } from '../webhooks/deliver.js';
import type { CommandContext } from './context.js';
import { deliverPending, newRunId, type DeliverPendingOptions, type DeliverPendingResult } from './deliver-pending.js';
import { dateOption, wholeNumber } from './options.js';

const DELIVERY_STATUSES: readonly DeliveryStatus[] = ['pending', 'delivering', 'delivered', 'abandoned'];

export interface ListDeliveriesOptions {
  status?: string;
  event?: string;
  license?: string;
  since?: string;
  limit?: string;
}

function sinceOption(text: string | undefined): string | undefined {
  const date = dateOption('--since', text);
  return date && formatUtc(date);
}

export async function deliveriesList(context: CommandContext, options: ListDeliveriesOptions): Promise<DeliveryListItem[]> {
  if (options.status !== undefined && !DELIVERY_STATUSES.includes(options.status as DeliveryStatus)) {
    throw usageError(`--status must be one of ${DELIVERY_STATUSES.join(', ')}, not "${options.status}".`);
  }
  if (options.event !== undefined && !(EVENT_TYPES as readonly string[]).includes(options.event)) {
    throw usageError(`--event must be one of ${EVENT_TYPES.join(', ')}, not "${options.event}".`);
  }
  const limit = options.limit === undefined ? 50 : wholeNumber('--limit', options.limit);
  if (limit < 1) throw usageError('--limit must be at least 1.');
  return listDeliveries(context.db, {
    status: options.status as DeliveryStatus | undefined,
    eventType: options.event,
    licenseCode: options.license,
    since: sinceOption(options.since),
    limit,
  });
}

export function deliveryId(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text))) throw usageError(`A delivery id is a positive whole number, not "${text}". See "license-manager deliveries list".`);
  return Number(text);
}

export async function deliveriesShow(context: CommandContext, idText: string): Promise<{ delivery: DeliveryListItem; attempts: AttemptRow[] }> {
  const id = deliveryId(idText);
  const found = await findDelivery(context.db, id);
  if (!found) throw usageError(`No delivery with id ${id}. See "license-manager deliveries list".`);
  return found;
}

export interface RetryOptions {
  ids: string[];
  abandoned?: boolean;
  since?: string;
  dryRun?: boolean;
  clock?: Clock;
  stop?: AbortSignal;
  fetch?: $Fetch;
  onProgress?: DeliverPendingOptions['onProgress'];
}

export interface RetryResult extends DeliverPendingResult {
  dryRun: boolean;
  /** The deliveries chosen for re-sending. */
  selected: Array<{ id: number; eventId: string; eventType: string; licenseCode: string | null }>;
}

/**
 * Re-sends abandoned deliveries with the current URL and secret: same event_id and body, the full retry
 * policy, the new attempts appended to the old ones.
 */
export async function deliveriesRetry(context: CommandContext, options: RetryOptions): Promise<RetryResult> {
  const { webhooks } = context.config;
  if (options.ids.length > 0 && options.abandoned) throw usageError('Give delivery ids or --abandoned, not both.');
  if (options.ids.length === 0 && !options.abandoned) throw usageError('Say which deliveries to re-send: ids (see "deliveries list --status abandoned") or --abandoned.');
  let selected: DeliveryListItem[];
  if (options.abandoned) {
    selected = await listDeliveries(context.db, { status: 'abandoned', since: sinceOption(options.since), limit: Number.MAX_SAFE_INTEGER });
  } else {
    selected = [];
    for (const text of options.ids) {
      const { delivery } = await deliveriesShow(context, text);
      if (delivery.status !== 'abandoned') {
        throw usageError(`Delivery ${delivery.id} is ${delivery.status}, not abandoned: only abandoned deliveries are re-sent (pending ones go out with the next process-expirations).`);
      }
      selected.push(delivery);
    }
  }
  selected.sort((a, b) => a.id - b.id);
  const summary = selected.map((row) => ({ id: row.id, eventId: row.event_id, eventType: row.event_type, licenseCode: row.license_code }));
  const empty: RetryResult = { dryRun: Boolean(options.dryRun), selected: summary, delivered: 0, abandoned: 0, released: 0, outcomes: [] };
  if (options.dryRun || selected.length === 0) return empty;
  if (!webhooks.url) throw usageError('No webhook URL is set: run "license-manager settings set webhook-url <url>" first.');

  const ids = selected.map((row) => row.id);
  await requeueDeliveries(context.db, ids);
  const sent = await deliverPending(context.db, {
    runId: newRunId(),
    policy: deliveryPolicy(webhooks, webhooks.url),
    concurrency: webhooks.concurrency,
    clock: options.clock,
    stop: options.stop,
    fetch: options.fetch,
    onProgress: options.onProgress,
    ids,
  });
  return { ...empty, ...sent };
}
