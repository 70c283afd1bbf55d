// The documented `--json` shape of every command (README "JSON output", docs/contract.md), as zod schemas.
// Strict objects: a key that is renamed, dropped or added without being documented here fails `parse`, naming the key.
// The schemas follow what the commands print (src/commands/*.ts result types); the README's "JSON output" table lists
// the same keys, so a key added to one and not the other shows up here.
import { z } from 'zod';
import { ERROR_CLASSES, type ErrorClass } from '../../src/monitoring/delivery-stats.js';

// --- values ---------------------------------------------------------------------------------------------------------

/** The one UTC text format of stored and printed instants: `YYYY-MM-DDTHH:MM:SSZ`. */
const instant = z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/, 'a UTC instant YYYY-MM-DDTHH:MM:SSZ');
/** An instant as `Date.toJSON` writes it, with milliseconds: what send-test-event's attempts and the heartbeat's pings carry. */
const instantMs = z.iso.datetime({ precision: 3 });
/** A calendar date in the business zone: `YYYY-MM-DD`. */
const calendarDate = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'a date YYYY-MM-DD');
/** A license date as stored: a date alone (Botble's DATE), or a date and time with or without an offset. */
const storedDate = z.string().regex(/^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/, 'a stored license date');
const count = z.number().int().nonnegative();
const id = z.number().int().positive();
const httpStatus = z.number().int().min(100).max(599);
const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'lower-case hex SHA-256');
const uuid = z.uuid();
/** A secret as every output shows it. */
const masked = z.literal('********');

/** Botble's three events and the after-expiry reminder. */
const noticeType = z.enum(['license.expiring', 'license.expired', 'license.expired_reminder', 'license.update_support_expired']);
const licenseStatus = z.enum(['active', 'suspended', 'revoked', 'expired']);
/** A stored delivery's status (contract: "Delivery statuses"). */
const deliveryStatus = z.enum(['pending', 'delivering', 'delivered', 'deferred', 'parked', 'superseded', 'abandoned']);
/** How a run ended for one delivery: the README's "In a delivery result" names the first four; the rest come with retries across runs. */
const outcomeStatus = z.enum(['delivered', 'abandoned', 'released', 'dropped', 'deferred', 'parked', 'superseded']);
/** `waiting` is a run that exited 4. */
const runStatus = z.enum(['running', 'succeeded', 'abandoned', 'waiting', 'failed', 'stopped', 'refused']);
const exitCode = z.union([z.literal(0), z.literal(1), z.literal(2), z.literal(3), z.literal(4)]);
const signing = z.enum(['botble', 'standard', 'both']);
const settingSource = z.enum(['env', 'settings', 'botble', 'config', 'default']);
const verdict = z.enum([
  'valid',
  'empty-secret',
  'missing-signature',
  'sha256-prefix',
  'uppercase-hex',
  'malformed-signature',
  'trailing-newline',
  're-serialised',
  'wrong-secret-or-body',
]);
/** A Standard Webhooks signature's verdicts (webhook-signature), passed through as they are. */
const standardVerdict = z.enum(['valid', 'missing-headers', 'bad-secret', 'bad-timestamp', 'too-old', 'too-new', 'no-v1-signature', 'key-format', 'no-match']);
/** Counts by a status, only the statuses that occur. */
const countsBy = <K extends z.core.util.EnumLike>(keys: z.ZodEnum<K>) => z.partialRecord(keys, count);

// --- shared parts -----------------------------------------------------------------------------------------------------

/** Where deliveries go, with the layer that set each (`config /path`, `settings`, `env NAME`, `default`). */
const webhookTarget = z.strictObject({ url: z.string().nullable(), urlSource: z.string(), enabled: z.boolean(), enabledSource: z.string() });

const dueEvent = z.strictObject({
  type: noticeType,
  licenseId: id,
  licenseCode: z.string(),
  /** The instant the event is about (expires_at, updates_until) in UTC. */
  date: instant,
  daysUntilExpiry: z.number().int().optional(),
  /** license.expired_reminder only. */
  daysSinceExpiry: count.optional(),
  threshold: count.optional(),
});

const deliveryOutcome = z.strictObject({
  id,
  eventId: uuid,
  eventType: noticeType,
  status: outcomeStatus,
  reason: z.string().optional(),
  attempts: count,
  lastStatusCode: httpStatus.nullable(),
  lastError: z.string().nullable(),
});

/** An abandoned one of those, with its license's code: what the operator must look at. */
const abandonedDelivery = deliveryOutcome
  .pick({ id: true, eventType: true, attempts: true, lastStatusCode: true, lastError: true })
  .extend({ licenseCode: z.string().nullable() });

const waitingDeliveries = z.strictObject({
  endpoint: z.string(),
  deferred: count,
  parked: count,
  nextAttemptAt: instant.nullable(),
  oldestCreatedAt: instant.nullable(),
  lastError: z.string().nullable(),
  reason: z.string().nullable(),
});

const circuit = z.strictObject({
  state: z.enum(['closed', 'open', 'half-open']),
  consecutiveFailures: count,
  failingSince: instant.nullable(),
  lastSuccessAt: instant.nullable(),
  lastFailureAt: instant.nullable(),
  lastError: z.string().nullable(),
  openedAt: instant.nullable(),
});

/** What a delivery run (process-expirations, deliveries retry) reports of its sending. */
const sendingCounts = {
  delivered: count,
  abandoned: count,
  superseded: count,
  released: count,
  dropped: count,
  left: count,
  locked: count,
  unlisted: count,
  byEndpoint: z.record(z.string(), z.strictObject({ delivered: count, abandoned: count })).optional(),
  abandonedDeliveries: z.array(abandonedDelivery),
  // Retries across runs.
  deferred: count,
  parked: count,
  waiting: z.array(waitingDeliveries),
  gone: z.array(z.strictObject({ endpoint: z.string(), reason: z.string() })),
  circuits: z.record(z.string(), circuit),
};

/** A license row as stored: the table's columns, dates as stored. */
const licenseRow = z.strictObject({
  id,
  license_code: z.string(),
  product_id: z.string().nullable(),
  product_name: z.string().nullable(),
  customer_id: z.string().nullable(),
  email: z.string().nullable(),
  status: licenseStatus,
  expires_at: storedDate.nullable(),
  updates_until: storedDate.nullable(),
  created_at: instant,
  updated_at: instant,
});

/** A `webhook_deliveries` row as `deliveries list|show` give it: every column, plus the license's code. */
const deliveryRow = z.strictObject({
  id,
  event_id: uuid,
  event_key: z.string(),
  event_type: noticeType,
  license_id: id.nullable(),
  event_instant: instant.nullable(),
  body: z.string(),
  status: deliveryStatus,
  attempts: count,
  schedule_base: count,
  last_status_code: httpStatus.nullable(),
  last_error: z.string().nullable(),
  claimed_by: z.string().nullable(),
  lease_until: z.number().int().nullable(),
  created_at: instant,
  completed_at: instant.nullable(),
  endpoint: z.string(),
  next_attempt_at: instant.nullable(),
  status_reason: z.string().nullable(),
  license_code: z.string().nullable(),
});

const attemptRow = z.strictObject({
  id,
  delivery_id: id,
  attempt: id,
  started_at: instant,
  duration_ms: count,
  status_code: httpStatus.nullable(),
  error: z.string().nullable(),
});

/** A setting with its value as a JSON type (`true`, `[7, 1]`); the secret masked unless `get --reveal`. */
const setting = z.strictObject({
  key: z.string(),
  value: z.union([z.string(), z.boolean(), z.array(count), z.null()]),
  source: settingSource,
  origin: z.string().optional(),
  overrides: z.string().optional(),
  invalid: z.string().optional(),
  warning: z.string().optional(),
  note: z.string().optional(),
  description: z.string(),
});

const endpointView = z.strictObject({
  name: z.string().regex(/^[a-z0-9-]+$/),
  url: z.string().nullable(),
  enabled: z.boolean(),
  events: z.array(noticeType).nullable(),
  signing,
  source: z.enum(['default', 'config', 'database']),
  secret: masked.nullable(),
  previousSecrets: z.array(z.strictObject({ validUntil: instant })),
  headers: z.record(z.string(), masked),
  maxInFlight: id.nullable(),
  deliveries: countsBy(deliveryStatus),
  /** Set after a 410 Gone. */
  gone: z.strictObject({ at: instant, reason: z.string() }).nullable(),
});

// --- one schema per command output ----------------------------------------------------------------------------------

/** `--version --json`. */
export const versionJson = z.strictObject({ version: z.string().regex(/^\d+\.\d+\.\d+/) });

/** `migrate`. */
export const migrateJson = z.strictObject({ database: z.string(), applied: z.array(z.string().regex(/^\d{4}_[a-z0-9_]+$/)), upToDate: z.literal(true) });

/** `process-expirations` (and `--dry-run`, `--announce-since`). */
export const processExpirationsJson = z.strictObject({
  database: z.string(),
  now: instant,
  timeZone: z.string(),
  today: calendarDate,
  dryRun: z.boolean(),
  webhooksEnabled: z.boolean(),
  licenseSource: z.enum(['own', 'botble']),
  target: webhookTarget,
  hasLicenses: z.boolean(),
  due: z.array(dueEvent),
  // The reminder's count only while some schedule has after-expiry days.
  dueCounts: z.strictObject({
    'license.expiring': count,
    'license.expired': count,
    'license.update_support_expired': count,
    'license.expired_reminder': count.optional(),
  }),
  plan: z.array(z.strictObject({ type: noticeType, threshold: count.optional(), count: id })),
  recorded: count,
  rearmed: count,
  markedExpired: count,
  expiredWithoutEvent: count,
  expiredWithoutEventLicenses: z.array(z.strictObject({ licenseId: id, licenseCode: z.string(), expiresAt: storedDate })).max(20),
  announceSince: calendarDate.nullable(),
  lastRunNow: instant.nullable(),
  reactivated: count,
  skipped: count,
  deliveries: z.array(deliveryOutcome),
  ...sendingCounts,
  // Parked at once for endpoints the operator disabled (never exit 4).
  parkedDisabled: count,
  parkedDisabledByEndpoint: z.record(z.string(), id),
});

/** `process-expirations --mark-sent-through <date>`. */
export const markSentJson = z.strictObject({
  database: z.string(),
  now: instant,
  timeZone: z.string(),
  today: calendarDate,
  through: calendarDate,
  dryRun: z.boolean(),
  licenseSource: z.enum(['own', 'botble']),
  marked: z.array(dueEvent),
  recorded: count,
  markedExpired: count,
  left: z.array(dueEvent.extend({ reason: z.string() })),
  reason: z.string(),
});

const sentAttempt = z.strictObject({
  attempt: id,
  startedAt: instantMs,
  durationMs: count,
  statusCode: httpStatus.nullable(),
  error: z.string().nullable(),
  responsePrefix: z.string(),
  // Beyond the README's table: the response's Retry-After, and the headers of this attempt.
  retryAfter: z.string().nullable(),
  headers: z.record(z.string(), z.string()),
});

/** `send-test-event`. */
export const sendTestEventJson = z.strictObject({
  url: z.string(),
  eventId: uuid,
  eventType: noticeType,
  signed: z.boolean(),
  headers: z.record(z.string(), z.string()),
  body: z.string(),
  delivery: z.strictObject({
    status: z.enum(['delivered', 'abandoned']),
    attempts: z.array(sentAttempt).min(1),
    lastStatusCode: httpStatus.nullable(),
    lastError: z.string().nullable(),
  }),
});

/** `settings list`. */
export const settingsListJson = z.array(setting);
/** `settings get <key>`. */
export const settingsGetJson = setting;
/** `settings set` / `settings unset`. */
export const settingChangeJson = z.strictObject({
  key: z.string(),
  stored: z.string().nullable(),
  shadowedBy: z.string().optional(),
  removed: z.boolean().optional(),
  /** Beyond the README's table. */
  warnings: z.array(z.string()).optional(),
});

/** `licenses import <file>`. */
export const licensesImportJson = z.strictObject({
  file: z.string(),
  format: z.enum(['json', 'ndjson', 'csv']),
  rows: count,
  inserted: count,
  updated: count,
  unchanged: count,
});

/** `licenses list`. */
export const licensesListJson = z.array(licenseRow);

/** `licenses show <code>`, and one every run skips: its dates as stored (no date, for one), with `problem` and nothing to come. */
const licenseShow = z.strictObject({
  license: licenseRow,
  timeZone: z.string(),
  expiryDate: calendarDate.nullable(),
  updatesUntilDate: calendarDate.nullable(),
  schedule: z.strictObject({ warningDays: z.array(count), afterExpiryDays: z.array(id), enabled: z.boolean(), source: z.enum(['product', 'global']) }),
  sent: z.array(
    z.strictObject({
      id,
      type: noticeType,
      endpoint: z.string(),
      status: deliveryStatus,
      recordedAt: instant,
      completedAt: instant.nullable(),
      attempts: count,
      lastStatusCode: httpStatus.nullable(),
      lastError: z.string().nullable(),
      days: count.optional(),
    }),
  ),
  toCome: z.array(z.strictObject({ date: calendarDate, type: noticeType, days: count.optional() })),
});
export const licensesShowJson = z.union([
  licenseShow,
  licenseShow.extend({
    license: licenseRow.extend({ expires_at: z.string().nullable(), updates_until: z.string().nullable() }),
    toCome: z.tuple([]),
    problem: z.string(),
  }),
]);

/** `licenses forecast`: every type on every day. */
export const licensesForecastJson = z.strictObject({
  days: z.array(z.strictObject({ date: calendarDate, counts: z.record(noticeType, count) })),
});

/** `endpoints list`. */
export const endpointsListJson = z.array(endpointView);
/** `endpoints show|add|update <name>`: one element of `endpoints list`. */
export const endpointJson = endpointView;
/** `endpoints enable|disable <name>`. */
export const endpointEnabledJson = z.strictObject({ name: z.string(), enabled: z.boolean(), parked: count, held: count, discarded: count });
/** `endpoints remove <name>`. */
export const endpointRemovedJson = z.strictObject({ name: z.string(), defined: z.boolean(), dropped: count, sending: count });
/** `endpoints rotate-secret <name>`: the new secret, shown once. */
export const endpointRotatedJson = z.strictObject({
  name: z.string(),
  signing,
  enabled: z.boolean(),
  secret: z.string().min(1),
  previousValidUntil: instant.nullable(),
  previousValidIn: z.array(z.literal('webhook-signature')),
  revoked: count,
});

/** `deliveries list`. */
export const deliveriesListJson = z.array(deliveryRow);
/** `deliveries show <id>`. */
export const deliveriesShowJson = z.strictObject({ delivery: deliveryRow, attempts: z.array(attemptRow) });

/** `deliveries retry`. */
export const deliveriesRetryJson = z.strictObject({
  dryRun: z.boolean(),
  selected: z.array(z.strictObject({ id, eventId: uuid, eventType: noticeType, licenseCode: z.string().nullable() })),
  selectedCount: count,
  forced: count,
  forcedSuperseded: count,
  wouldSupersede: z.array(z.strictObject({ id, reason: z.string().min(1) })),
  outcomes: z.array(deliveryOutcome),
  ...sendingCounts,
  skippedEndpoints: z.array(
    z.strictObject({ endpoint: z.string(), deliveries: count, reason: z.enum(['no longer defined', 'disabled']), detail: z.string().optional() }),
  ),
});

/** Every class is present in `errors`, 0 when none. */
const errorClass = z.enum(ERROR_CLASSES as [ErrorClass, ...ErrorClass[]]);

/** One endpoint of `deliveries stats`: what the pure accumulator (src/monitoring/delivery-stats.ts) returns. */
export const endpointStatsJson = z.strictObject({
  endpoint: z.string(),
  attempts: count,
  succeeded: count,
  successRate: z.number().min(0).max(1).nullable(),
  /** Whole ms, of attempts that got a response. */
  responseMs: z.strictObject({ median: count.nullable(), p95: count.nullable() }),
  errors: z.record(errorClass, count),
  lastSuccessAt: instant.nullable(),
  lastAttemptAt: instant.nullable(),
  consecutiveFailures: count,
  deliveries: z.strictObject({ delivered: count, pending: count, deferred: count, parked: count, abandoned: count, superseded: count }),
  oldestUndeliveredAgeSeconds: count.nullable(),
});

/** `deliveries stats`. */
export const deliveriesStatsJson = z.strictObject({ now: instant, since: instant.nullable(), endpoints: z.array(endpointStatsJson) });

const pingResult = z.strictObject({
  phase: z.enum(['start', 'end']),
  ok: z.boolean(),
  target: z.string(),
  at: instant,
  attempts: id,
  statusCode: httpStatus.nullable(),
  error: z.string().nullable(),
  durationMs: count,
});

/** `status` and `status --format json`. */
export const statusJson = z.strictObject({
  now: instant,
  configFile: z.string().nullable(),
  database: z.string(),
  webhooks: webhookTarget,
  timeZone: z.strictObject({ value: z.string(), source: z.string() }),
  settingProblems: z.array(z.strictObject({ key: z.string(), problem: z.string() })),
  settingNotes: z.array(z.strictObject({ key: z.string(), warning: z.string().optional(), note: z.string().optional() })),
  licenses: z.strictObject({ total: count, byStatus: countsBy(licenseStatus) }),
  deliveries: z.strictObject({
    total: count,
    byStatus: countsBy(deliveryStatus),
    byEndpoint: z.record(z.string(), countsBy(deliveryStatus)).optional(),
  }),
  runs: z.array(
    z.strictObject({
      startedAt: instant,
      finishedAt: instant.nullable(),
      status: runStatus,
      exitCode: exitCode.nullable(),
      recorded: count,
      delivered: count,
      abandoned: count,
      // Optional in RunSummary (runs recorded before migration 0009 have none), always printed.
      deferred: count.optional(),
      parked: count.optional(),
      expiredWithoutEvent: count.optional(),
      error: z.string().nullable(),
    }),
  ),
  health: z.strictObject({ exitCode, reason: z.string() }),
  expiredWithoutEvent: z.strictObject({ licenses: id, runStartedAt: instant, announceSince: calendarDate.nullable() }).nullable(),
  heldByGoneRuns: count,
  endpoints: z.array(
    z.strictObject({
      name: z.string(),
      lastSuccessAt: instant.nullable(),
      consecutiveFailures: count,
      circuit: z.enum(['closed', 'open', 'half-open']),
      failingSince: instant.nullable(),
      lastError: z.string().nullable(),
      deferred: count,
      parked: count,
      nextAttemptAt: instant.nullable(),
      oldestUndeliveredAgeSeconds: count.nullable(),
      disabled: z.strictObject({ at: instant, reason: z.string() }).nullable(),
    }),
  ),
  monitoring: z.strictObject({
    ping: z.strictObject({ target: z.string(), kind: z.string() }).nullable(),
    lastPing: z.strictObject({ start: pingResult.nullable(), end: pingResult.nullable() }).nullable(),
    textfile: z.string().nullable(),
  }),
});

/**
 * `verify`: with one secret and X-Webhook-Signature the README's four keys; with several secrets or a Standard Webhooks
 * signature also the scheme and which secret matched.
 */
export const verifyJson = z.union([
  z.strictObject({ valid: z.boolean(), verdict, explanation: z.string(), expected: sha256Hex }),
  z.strictObject({
    valid: z.boolean(),
    verdict: z.union([verdict, standardVerdict]),
    explanation: z.string(),
    expected: z.string(),
    scheme: z.enum(['botble', 'standard']),
    /** The 1-based position of the secret whose signature matched (never the secret), also when only the timestamp failed; null when none did. */
    secret: id.nullable(),
  }),
]);

/** `listen`: the first line, as soon as it listens. */
export const listeningJson = z.strictObject({ listening: z.url(), signaturesChecked: z.boolean() });
/** `listen`: one line per request received. */
export const receivedJson = z.strictObject({
  event: z.string().nullable(),
  id: z.string().nullable(),
  headers: z.record(z.string(), z.union([z.string(), z.array(z.string())])),
  body: z.string(),
  signature: z.union([verdict, standardVerdict, z.literal('not checked')]),
  scheme: z.enum(['botble', 'standard']).optional(),
  secret: id.nullable().optional(),
  status: httpStatus,
});
