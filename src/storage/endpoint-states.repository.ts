import type { Kysely } from 'kysely';
import type { Database } from './database.table.js';
import { dialectFor } from '../sql/dialect-for.js';

/** What runs learned about one endpoint (by name): its circuit as stored (JSON, read back by delivery/circuit.ts), and a 410 that disabled it. */
export interface EndpointState {
  endpoint: string;
  /** The stored circuit, parsed from JSON; undefined when none was stored or it is not JSON. */
  circuit: unknown;
  disabledAt: string | null;
  disabledReason: string | null;
}

/** Every endpoint's stored state, by name. */
export async function endpointStates(db: Kysely<Database>): Promise<Map<string, EndpointState>> {
  const rows = await db.selectFrom('endpoint_states').selectAll().execute();
  return new Map(
    rows.map((row) => {
      let circuit: unknown;
      try {
        circuit = row.circuit === null ? undefined : JSON.parse(row.circuit);
      } catch {
        circuit = undefined;
      }
      return [row.endpoint, { endpoint: row.endpoint, circuit, disabledAt: row.disabled_at, disabledReason: row.disabled_reason }];
    }),
  );
}

/** What a 410 disablement stored without a reason is said to be. */
export const GONE_REASON = 'endpoint gone (410)';

/** Endpoints a 410 Gone disabled (until `endpoints enable`), by name, with the reason. */
export function goneEndpoints(states: ReadonlyMap<string, EndpointState>): Map<string, string> {
  return new Map([...states].flatMap(([name, state]) => (state.disabledAt === null ? [] : [[name, state.disabledReason ?? GONE_REASON] as const])));
}

type StateChange = { circuit: string | null } | { disabled_at: string | null; disabled_reason: string | null };

/** Writes part of an endpoint's state (its circuit, or its disablement), creating the row when there is none. */
async function upsert(db: Kysely<Database>, endpoint: string, change: StateChange, now: string): Promise<void> {
  const insert = db.insertInto('endpoint_states').values({ endpoint, circuit: null, disabled_at: null, disabled_reason: null, ...change, updated_at: now });
  const update = { ...change, updated_at: now };
  await dialectFor(db).upsert(insert, ['endpoint'], update).execute();
}

/** Keeps an endpoint's circuit (StoredCircuit as JSON) for the next run. */
export async function saveCircuit(db: Kysely<Database>, endpoint: string, circuit: object, now: string): Promise<void> {
  await upsert(db, endpoint, { circuit: JSON.stringify(circuit) }, now);
}

/** Disables an endpoint because its receiver answered 410 Gone: kept until `endpoints enable` clears it. */
export async function disableGoneEndpoint(db: Kysely<Database>, endpoint: string, reason: string, now: string): Promise<void> {
  await upsert(db, endpoint, { disabled_at: now, disabled_reason: reason }, now);
}

/** Clears a 410 disablement and the circuit (`endpoints enable`): the endpoint starts afresh. True when there was a disablement. */
export async function clearEndpointState(db: Kysely<Database>, endpoint: string): Promise<boolean> {
  const before = await db.selectFrom('endpoint_states').select('disabled_at').where('endpoint', '=', endpoint).executeTakeFirst();
  await db.deleteFrom('endpoint_states').where('endpoint', '=', endpoint).execute();
  return before?.disabled_at != null;
}
