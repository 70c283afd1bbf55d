// From the resolved endpoints to what the engine sends with: the enabled ones, each with its URL, secrets, headers and signing.
import type { ResolvedEndpoint } from '../config/endpoints.js';
import { deliveryPolicy, type DeliveryPolicy } from '../webhooks/deliver.js';
import { DEFAULT_ENDPOINT_NAME } from '../webhooks/endpoint-spec.js';
import type { EngineEndpoint } from './deliver-pending.js';
import type { Kysely } from 'kysely';
import type { Database } from '../storage/database.table.js';
import { endpointSwitchRows } from '../storage/endpoints.repository.js';
import { EndpointSwitches, type EndpointSwitch } from './endpoint-switches.js';

type WebhookTimings = Parameters<typeof deliveryPolicy>[0];

/**
 * The endpoints a run sends to: `default` with `defaultPolicy` exactly as before endpoints existed, and every
 * other enabled one with its own URL, secrets, headers and signing (timeouts and retries are the run's).
 * Disabled endpoints are left out: their deliveries stay parked.
 */
export function engineEndpoints(webhooks: WebhookTimings, endpoints: readonly ResolvedEndpoint[], defaultPolicy: DeliveryPolicy): EngineEndpoint[] {
  const engine: EngineEndpoint[] = [];
  for (const endpoint of endpoints) {
    if (endpoint.name === DEFAULT_ENDPOINT_NAME) {
      engine.push({ name: endpoint.name, policy: defaultPolicy });
      continue;
    }
    if (!endpoint.enabled || endpoint.url === null) continue;
    const [current = null, ...previous] = endpoint.secrets;
    engine.push({
      name: endpoint.name,
      policy: { ...deliveryPolicy(webhooks, endpoint.url, current), headers: endpoint.headers, signing: endpoint.signing, previousSecrets: previous },
      ...(endpoint.maxInFlight === undefined ? {} : { maxInFlight: endpoint.maxInFlight }),
    });
  }
  return engine;
}

/**
 * The switches a run looks at again while it sends: those of the enabled endpoints stored in the database (the
 * config file's and `default` change only between runs). Removed, or removed and added again (another row id),
 * is `gone`. undefined when the run sends to none of them: nothing is read.
 */
export function endpointSwitches(db: Kysely<Database>, endpoints: readonly ResolvedEndpoint[]): EndpointSwitches | undefined {
  const watched = new Map(
    endpoints
      .filter((endpoint) => endpoint.source === 'database' && endpoint.enabled && endpoint.url !== null && endpoint.id !== undefined)
      .map((endpoint) => [endpoint.name, endpoint.id!] as const),
  );
  if (watched.size === 0) return undefined;
  return new EndpointSwitches(async () => {
    const rows = new Map((await endpointSwitchRows(db, [...watched.keys()])).map((row) => [row.name, row] as const));
    const states = new Map<string, EndpointSwitch>();
    for (const [name, id] of watched) {
      const row = rows.get(name);
      states.set(name, row === undefined || row.id !== id ? 'gone' : row.enabled ? 'on' : 'off');
    }
    return states;
  });
}

/** The other endpoints that take events of a type (disabled ones too: theirs are parked until enabled). */
export function fanOutOf(endpoints: readonly ResolvedEndpoint[]): (type: string) => string[] {
  const others = endpoints.filter((endpoint) => endpoint.name !== DEFAULT_ENDPOINT_NAME);
  const byType = new Map<string, string[]>();
  return (type) => {
    let names = byType.get(type);
    if (!names) {
      names = others.filter((endpoint) => endpoint.events === null || endpoint.events.includes(type)).map((endpoint) => endpoint.name);
      byType.set(type, names);
    }
    return names;
  };
}
