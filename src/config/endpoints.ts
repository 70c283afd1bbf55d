// The endpoints of an installation: `default` (the configured webhooks.url/secret, or Botble's settings), those
// of the config file's webhooks.endpoints, and those stored in the database.
import type { Kysely } from 'kysely';
import type { Database } from '../storage/database.table.js';
import { listStoredEndpoints } from '../storage/endpoints.repository.js';
import { DEFAULT_ENDPOINT_NAME, type EndpointEntry, type SigningScheme } from '../webhooks/endpoint-spec.js';
import type { Config } from './schema.js';

type EndpointSource = 'default' | 'config' | 'database';

export interface ResolvedEndpoint {
  name: string;
  /** null only for `default` when no webhook URL is set. */
  url: string | null;
  /** The current secret first, then earlier ones still valid (a rotation's overlap); empty when unsigned. */
  secrets: string[];
  /** The event types it takes; null takes every type. */
  events: readonly string[] | null;
  enabled: boolean;
  headers: Readonly<Record<string, string>>;
  maxInFlight: number | undefined;
  signing: SigningScheme;
  source: EndpointSource;
}

const SCHEMES: readonly string[] = ['botble', 'standard', 'both'];

/**
 * Every endpoint, `default` first. A name declared in the config file and stored in the database too is the
 * config file's (the file is what the operator deploys; `endpoints add` refuses such a name).
 */
export async function resolveEndpoints(db: Kysely<Database>, webhooks: Config['webhooks'], now: Date): Promise<ResolvedEndpoint[]> {
  const fromConfig = (webhooks.endpoints ?? []).map((entry: EndpointEntry): ResolvedEndpoint => ({
    name: entry.name,
    url: entry.url,
    secrets: entry.secret === null ? [] : [entry.secret],
    events: entry.events ?? null,
    enabled: entry.enabled,
    headers: entry.headers,
    maxInFlight: entry.maxInFlight,
    signing: entry.signing,
    source: 'config',
  }));
  const declared = new Set(fromConfig.map((endpoint) => endpoint.name));
  const stored = (await listStoredEndpoints(db))
    .filter((endpoint) => !declared.has(endpoint.name))
    .map((endpoint): ResolvedEndpoint => ({
      name: endpoint.name,
      url: endpoint.url,
      secrets:
        endpoint.secret === null
          ? []
          : [endpoint.secret, ...endpoint.previousSecrets.filter((entry) => Date.parse(entry.validUntil) > now.getTime()).map((entry) => entry.secret)],
      events: endpoint.events,
      enabled: endpoint.enabled,
      headers: endpoint.headers,
      maxInFlight: endpoint.maxInFlight ?? undefined,
      signing: SCHEMES.includes(endpoint.signing) ? (endpoint.signing as SigningScheme) : 'botble',
      source: 'database',
    }));
  const fallback: ResolvedEndpoint = {
    name: DEFAULT_ENDPOINT_NAME,
    url: webhooks.url,
    secrets: webhooks.secret === null ? [] : [webhooks.secret],
    events: null,
    enabled: true,
    headers: {},
    maxInFlight: undefined,
    signing: 'botble',
    source: 'default',
  };
  return [fallback, ...fromConfig, ...stored];
}
