// `deliveries stats`: per endpoint the success rate, response times, error classes, last success, failure streak and what still waits, aggregated in the database so a million attempts cost a few grouped queries.
import { resolveEndpoints } from '../config/endpoints.js';
import { usageError } from '../errors.js';
import { DeliveryStatsAccumulator, type EndpointStats } from '../monitoring/delivery-stats.js';
import { storedEndpointsAddedAt } from '../storage/endpoints.repository.js';
import { attemptGroups, endpointDeliveries, endpointStreaks } from '../storage/monitoring.repository.js';
import { formatUtc } from '../time.js';
import type { CommandContext } from './context.js';
import { commandLine } from '../command-line.js';

export interface DeliveriesStatsOptions {
  /** Attempts that started at or after this instant count towards rates, response times and errors. */
  since?: Date | undefined;
  endpoint?: string | undefined;
  now: Date;
}

export interface DeliveriesStatsResult {
  now: string;
  /** The start of the window of attempts (null: all of them). */
  since: string | null;
  endpoints: EndpointStats[];
}

/**
 * The statistics: attempts within `since` give the success rate, the response-time percentiles and the error classes;
 * the last success, the failure streak and the deliveries still waiting are the endpoint's state now, whatever `since`.
 */
export async function deliveriesStats(context: CommandContext, options: DeliveriesStatsOptions): Promise<DeliveriesStatsResult> {
  const { db } = context;
  const configured = (await resolveEndpoints(db, context.config.webhooks, options.now)).map((endpoint) => endpoint.name);
  const deliveries = await endpointDeliveries(db, options.endpoint);
  if (options.endpoint !== undefined && !configured.includes(options.endpoint) && deliveries.length === 0) {
    const known = [...new Set([...configured, ...(await endpointDeliveries(db)).map((row) => row.endpoint)])].sort();
    throw usageError(`No endpoint named "${options.endpoint}" (known: ${known.join(', ')}). See "${commandLine('endpoints list')}".`);
  }
  const accumulator = new DeliveryStatsAccumulator();
  for (const name of options.endpoint === undefined ? configured : [options.endpoint]) accumulator.addEndpoint(name);
  const since = options.since === undefined ? undefined : formatUtc(options.since);
  for (const group of await attemptGroups(db, { since, endpoint: options.endpoint })) accumulator.addAttemptGroup(group);
  // The endpoints with deliveries (narrowed by --endpoint): one without any has no attempts either.
  const withDeliveries = deliveries.map((row) => row.endpoint);
  for (const streak of await endpointStreaks(db, withDeliveries, await storedEndpointsAddedAt(db))) accumulator.setRecent(streak);
  for (const row of deliveries) {
    const count = (status: string) => row.byStatus[status] ?? 0;
    accumulator.addCounts({
      endpoint: row.endpoint,
      delivered: count('delivered'),
      // Claimed by a run at this moment: still to be delivered, as pending ones are.
      pending: count('pending') + count('delivering'),
      deferred: count('deferred'),
      parked: count('parked'),
      abandoned: count('abandoned'),
      superseded: count('superseded'),
      oldestUndeliveredAt: row.oldestUndeliveredAt,
    });
  }
  return { now: formatUtc(options.now), since: since ?? null, endpoints: accumulator.result(options.now) };
}
