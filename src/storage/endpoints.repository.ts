import type { Kysely } from 'kysely';
import type { Database } from './database.table.js';

/** An endpoint as stored: its row, its extra headers and the earlier secrets still on record (valid or not). */
export interface StoredEndpoint {
  name: string;
  url: string;
  secret: string | null;
  previousSecrets: Array<{ secret: string; validUntil: string }>;
  /** null takes every type. */
  events: string[] | null;
  enabled: boolean;
  headers: Record<string, string>;
  maxInFlight: number | null;
  signing: string;
  createdAt: string;
  updatedAt: string;
}

/** Every endpoint in the database, by name. */
export async function listStoredEndpoints(db: Kysely<Database>): Promise<StoredEndpoint[]> {
  const rows = await db.selectFrom('endpoints').selectAll().orderBy('name').execute();
  if (rows.length === 0) return [];
  const headers = await db.selectFrom('endpoint_headers').selectAll().orderBy('name').execute();
  const secrets = await db.selectFrom('endpoint_secrets').selectAll().orderBy('valid_until', 'desc').orderBy('id', 'desc').execute();
  return rows.map((row) => ({
    name: row.name,
    url: row.url,
    secret: row.secret,
    previousSecrets: secrets.filter((entry) => entry.endpoint_id === row.id).map((entry) => ({ secret: entry.secret, validUntil: entry.valid_until })),
    events: row.events === null ? null : row.events.split(','),
    enabled: Number(row.enabled) === 1,
    headers: Object.fromEntries(headers.filter((header) => header.endpoint_id === row.id).map((header) => [header.name, header.value])),
    maxInFlight: row.max_in_flight,
    signing: row.signing,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  }));
}

