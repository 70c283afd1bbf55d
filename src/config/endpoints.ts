// The endpoints of an installation: `default` (the configured webhooks.url/secret, or Botble's settings), those
// of the config file's webhooks.endpoints, and those stored in the database.
import type { Kysely } from 'kysely';
import type { Database } from '../storage/database.table.js';
import { errorCode, messageOf } from '../sql/db-errors.js';
import { tablePrefixOf } from '../sql/table-prefix.js';
import { listStoredEndpoints, type StoredEndpoint } from '../storage/endpoints.repository.js';
import type { EndpointEntry } from '../webhooks/endpoint-schema.js';
import { DEFAULT_ENDPOINT_NAME, type SigningScheme } from '../webhooks/endpoint-spec.js';
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
  /** A database endpoint's row id (see StoredEndpoint.id). */
  id?: number;
}

const SCHEMES: readonly string[] = ['botble', 'standard', 'both'];

/**
 * Every endpoint, `default` first. A name declared in the config file and stored in the database too is the
 * config file's (the file is what the operator deploys; `endpoints add` refuses such a name).
 */
// PostgreSQL's insufficient_privilege; MySQL's table and column access denied.
const NO_PRIVILEGE = new Set(['42501', 'ER_TABLEACCESS_DENIED_ERROR', 'ER_COLUMNACCESS_DENIED_ERROR']);

/**
 * The endpoints stored in the database. A run's user that may not read them (grants made table by table before
 * endpoints existed) is told so through `onWarning` and sends to default and the config file's endpoints, as
 * before; without `onWarning` the refusal stands.
 */
async function storedEndpoints(db: Kysely<Database>, onWarning?: (text: string) => void): Promise<StoredEndpoint[]> {
  try {
    return await listStoredEndpoints(db);
  } catch (error) {
    if (!onWarning || !NO_PRIVILEGE.has(errorCode(error))) throw error;
    const prefix = tablePrefixOf(db);
    onWarning(
      `cannot read the endpoints stored in the database (${messageOf(error)}): only default and the config file's endpoints get this run's events. Grant SELECT on ${prefix}endpoints, ${prefix}endpoint_headers and ${prefix}endpoint_secrets to this user.`,
    );
    return [];
  }
}

export async function resolveEndpoints(
  db: Kysely<Database>,
  webhooks: Config['webhooks'],
  now: Date,
  onWarning?: (text: string) => void,
): Promise<ResolvedEndpoint[]> {
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
  const stored = (await storedEndpoints(db, onWarning))
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
      id: endpoint.id,
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
