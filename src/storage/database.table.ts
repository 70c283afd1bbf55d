// src/storage: Kysely row types, repositories and migrations runner; knows rows, imported by commands and delivery, imports no other src folder.
import type { ColumnType, Generated } from 'kysely';

/** Row types of the tables `migrations/` creates. Times are UTC ISO-8601 text (`YYYY-MM-DDTHH:MM:SSZ`). */
export interface LicensesTable {
  id: Generated<number>;
  license_code: string;
  product_id: string | null;
  product_name: string | null;
  customer_id: string | null;
  email: string | null;
  status: Generated<string>;
  expires_at: string | null;
  updates_until: string | null;
  created_at: string;
  updated_at: string;
}

interface SettingsTable {
  key: string;
  value: string;
  updated_at: string;
}

/**
 * `deferred`: waits for `next_attempt_at` (a retryable failure after the in-run schedule, an open circuit, a Retry-After).
 * `parked`: its endpoint is disabled (by an operator or a 410 Gone); sent once it is enabled. `superseded`: the license
 * changed while it waited, so it is not sent. `status_reason` says why for these three and for `abandoned`.
 */
export const DELIVERY_STATUSES = ['pending', 'delivering', 'delivered', 'deferred', 'parked', 'superseded', 'abandoned'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

export interface WebhookDeliveriesTable {
  id: Generated<number>;
  event_id: string;
  /** What makes an event happen once: type, license, threshold and the date it is about. */
  event_key: string;
  event_type: string;
  license_id: number | null;
  /** The instant the event is about (`expires_at`/`expired_at`/`updates_until` of its body); null on rows of other writers. */
  event_instant: ColumnType<string | null, string | null | undefined, string | null>;
  body: string;
  status: DeliveryStatus;
  attempts: Generated<number>;
  /** `attempts` when the current retry schedule began: a re-send (`deliveries retry`) starts a new one. */
  schedule_base: Generated<number>;
  last_status_code: number | null;
  last_error: string | null;
  /** Which run holds the delivery while it is `delivering`, and until when (epoch ms). */
  claimed_by: string | null;
  lease_until: number | null;
  created_at: string;
  completed_at: string | null;
  /** The endpoint (its name) this delivery goes to: `default` for the configured webhooks.url, and for every row written before endpoints existed. */
  endpoint: ColumnType<string, string | undefined, string>;
  /** When a `deferred` delivery is due (`YYYY-MM-DDTHH:MM:SSZ`); null otherwise. */
  next_attempt_at: ColumnType<string | null, string | null | undefined, string | null>;
  /** Why it is deferred, parked, superseded or abandoned: "circuit open", "HTTP 503, Retry-After 120 s", "endpoint gone (410)". */
  status_reason: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface WebhookAttemptsTable {
  id: Generated<number>;
  delivery_id: number;
  attempt: number;
  started_at: string;
  duration_ms: number;
  status_code: number | null;
  error: string | null;
}

/** `waiting`: finished with nothing abandoned, but deliveries wait on a failing receiver (exit 4). `refused`: the run would not start (exit 2: webhooks enabled with no URL); recorded so that `status` says so. */
export type RunStatus = 'running' | 'succeeded' | 'abandoned' | 'waiting' | 'failed' | 'stopped' | 'refused';

/** One process-expirations run: written when it starts, finished when it ends (whatever way it ends). */
export interface RunsTable {
  id: string;
  command: string;
  started_at: string;
  /** The instant the run applied the rules at: its --now, or the clock. */
  now_at: ColumnType<string | null, string | null | undefined, string | null>;
  finished_at: string | null;
  status: RunStatus;
  exit_code: number | null;
  recorded: Generated<number>;
  delivered: Generated<number>;
  abandoned: Generated<number>;
  /** Licenses the run marked `expired` with no event (expired longer ago than the lookback). */
  expired_without_event: Generated<number>;
  /** The `--announce-since` date that would announce those (the oldest one's expiry date). */
  announce_since: ColumnType<string | null, string | null | undefined, string | null>;
  /** Deliveries the run left deferred (they wait on a failing receiver), parked (endpoint disabled) and superseded. */
  deferred: Generated<number>;
  parked: Generated<number>;
  superseded: Generated<number>;
  error: string | null;
}

/** The status derived for a Botble license (Botble's own tables are never written). */
interface BotbleLicenseStatesTable {
  license_id: number;
  status: string;
  /** Botble's expires_at ('YYYY-MM-DD') the status was derived from: it holds while Botble's date is still this one. */
  expires_at: string;
  updated_at: string;
}

/** An endpoint an operator added (`default` is configuration, never a row). */
interface EndpointsTable {
  id: Generated<number>;
  name: string;
  url: string;
  secret: string | null;
  /** Comma-separated event types; null takes every type. */
  events: string | null;
  /** 1 or 0. */
  enabled: Generated<number>;
  max_in_flight: number | null;
  signing: Generated<string>;
  created_at: string;
  updated_at: string;
}

/** Earlier secrets of an endpoint, valid until a time (a rotation's overlap). */
interface EndpointSecretsTable {
  id: Generated<number>;
  endpoint_id: number;
  secret: string;
  valid_until: string;
}

/** Extra request headers of an endpoint, one row each. */
interface EndpointHeadersTable {
  endpoint_id: number;
  name: string;
  value: string;
}

/**
 * What runs learn about an endpoint, kept between runs, by endpoint name (also `default` and the config file's
 * endpoints, which have no `endpoints` row): its circuit, and a 410 Gone that disabled it.
 */
interface EndpointStatesTable {
  endpoint: string;
  /** src/delivery/circuit.ts StoredCircuit as JSON; null when closed and never failed. */
  circuit: string | null;
  /** When and why a 410 Gone disabled the endpoint; null while it is not disabled that way. */
  disabled_at: string | null;
  disabled_reason: string | null;
  updated_at: string;
}

export interface Database {
  licenses: LicensesTable;
  settings: SettingsTable;
  webhook_deliveries: WebhookDeliveriesTable;
  webhook_attempts: WebhookAttemptsTable;
  runs: RunsTable;
  botble_license_states: BotbleLicenseStatesTable;
  endpoints: EndpointsTable;
  endpoint_secrets: EndpointSecretsTable;
  endpoint_headers: EndpointHeadersTable;
  endpoint_states: EndpointStatesTable;
}
