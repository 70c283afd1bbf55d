// What is recorded for some licenses, as the rules read it (process-expirations, licenses show and forecast): every
// delivery's event, and which deliveries the rules may re-arm when they call for their event again.
import type { Kysely } from 'kysely';
import type { ResolvedEndpoint } from '../config/endpoints.js';
import { parseEventKey, type RecordedEvent } from '../expirations/rules.js';
import { supersededByLicense } from '../expirations/stale-notice.js';
import type { Database } from '../storage/database.table.js';
import { answeredDeliveries, recordedEventKeys } from '../storage/deliveries/record.repository.js';
import { DEFAULT_ENDPOINT_NAME } from '../webhooks/endpoint-spec.js';

/** Whether an endpoint (by name) takes events of a type. */
export type EndpointTakes = (endpoint: string, type: string) => boolean;

/** What the endpoints take: default every type; another endpoint defined now, its types (disabled ones too: theirs are parked). */
export function endpointTakes(endpoints: readonly ResolvedEndpoint[]): EndpointTakes {
  const byName = new Map(endpoints.map((endpoint) => [endpoint.name, endpoint]));
  return (name, type) => {
    if (name === DEFAULT_ENDPOINT_NAME) return true;
    const endpoint = byName.get(name);
    return endpoint !== undefined && (endpoint.events === null || endpoint.events.includes(type));
  };
}

/**
 * Why an endpoint defined now no longer takes events of a type (its `events` list was narrowed since a delivery was
 * recorded for it), or undefined when it takes them (default, an endpoint taking every type, or one no longer
 * defined: what waits for that is parked, not judged here).
 */
export function endpointNarrowed(endpoints: readonly ResolvedEndpoint[]): (endpoint: string, type: string) => string | undefined {
  const byName = new Map(endpoints.map((endpoint) => [endpoint.name, endpoint]));
  return (name, type) => {
    const events = byName.get(name)?.events;
    if (name === DEFAULT_ENDPOINT_NAME || !events || events.includes(type)) return undefined;
    return `endpoint ${name} no longer takes ${type} events (it takes ${events.join(', ')} since its events were changed)`;
  };
}

/**
 * The earlier records of these licenses, under today's keys or the first release's, one per delivery row. A row is
 * `rearmable` when it ended superseded because of its license (renewed, suspended, deleted, … : supersededByLicense,
 * never what an operator ended), no receiver ever answered it 2xx, and its endpoint takes it (`takes`; default
 * alone when not given).
 */
export async function recordedNotices(
  db: Kysely<Database>,
  licenseIds: readonly number[],
  timeZone: string,
  takes: EndpointTakes = (endpoint) => endpoint === DEFAULT_ENDPOINT_NAME,
): Promise<RecordedEvent[]> {
  const rows = await recordedEventKeys(db, licenseIds);
  const candidates = rows.filter((row) => row.status === 'superseded' && supersededByLicense(row.status_reason) && takes(row.endpoint, row.event_type));
  const answered =
    candidates.length === 0
      ? new Set<number>()
      : await answeredDeliveries(
          db,
          candidates.map((row) => row.id),
        );
  const rearmable = new Set(candidates.filter((row) => !answered.has(row.id)).map((row) => row.id));
  const recorded: RecordedEvent[] = [];
  for (const row of rows) {
    const parsed = parseEventKey(row.event_key, timeZone, row.event_instant);
    if (parsed) recorded.push({ ...parsed, key: row.event_key, ...(rearmable.has(row.id) ? { rearmable: true } : {}) });
  }
  return recorded;
}
