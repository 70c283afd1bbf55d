// src/config: the zod schema, config-file discovery and the env > settings > file > default precedence; imports nothing above storage.
import { z } from 'zod';
import { UTC } from '../expirations/calendar.js';
import { reminderPolicyConfigShape } from '../expirations/reminder-policy.js';
import { parseDatabaseUrl } from '../storage/database-target.js';
import { endpointsSchema } from '../webhooks/endpoint-schema.js';
import { pingSchema } from './ping.js';
import { MAX_URL_LENGTH, secretProblem, webhookUrlProblem } from '../webhooks/target.js';

const DEFAULT_TIMEOUT_MS = 10_000;
// The reference's retry policy: attempt 1 at once, then after 1 s, 2 s and 4 s.
const DEFAULT_RETRY_DELAYS_MS = [1000, 2000, 4000];
const DEFAULT_CONCURRENCY = 8;
// Retries across runs: a failing delivery is tried again for 3 days after its event was recorded (Stripe's window).
const DEFAULT_RETRY_WINDOW_HOURS = 72;
const DEFAULT_WARNING_DAYS = [7, 1];
const DEFAULT_LOOKBACK_DAYS = 7;
const DEFAULT_TIME_ZONE = UTC;
export const DEFAULT_DATABASE_FILENAME = './license-manager.sqlite';
const DEFAULT_BOTBLE_TABLE_PREFIX = 'lm_';

// Path length cap: a 200 MB string in a config file is a mistake to report, not to carry through every printer.
const MAX_PATH_LENGTH = 4096;

const webhookUrlSchema = z.string().superRefine((value, ctx) => {
  const problem = webhookUrlProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** Ten years: a larger warning day is a typo. */
export const MAX_WARNING_DAY = 3650;

export const warningDaysSchema = z
  .array(z.int().min(0, 'a warning day cannot be negative').max(MAX_WARNING_DAY, `a warning day is at most ${MAX_WARNING_DAY}`))
  .refine((days) => new Set(days).size === days.length, 'each warning day may appear only once');

/** An IANA zone name Intl knows, e.g. Europe/Berlin; returns a reason when it is not one. */
export function timeZoneProblem(value: string): string | undefined {
  // UTC, the default, is one without asking Intl (whose first use loads ICU's zone data: see calendar.ts wallMs).
  if (value === DEFAULT_TIME_ZONE) return undefined;
  const problem = `"${value}" is not an IANA time zone (e.g. UTC, Europe/Berlin, America/Los_Angeles)`;
  if (value.trim() === '') return problem;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: value });
    return undefined;
  } catch {
    return problem;
  }
}

/**
 * A valid zone as IANA spells it: `europe/berlin` is stored and shown as `Europe/Berlin`. An alias keeps
 * its own name (`Asia/Kolkata` stays, though ICU would call it `Asia/Calcutta`).
 */
export function canonicalTimeZone(value: string): string {
  if (value === DEFAULT_TIME_ZONE) return value;
  const resolved = new Intl.DateTimeFormat('en-US', { timeZone: value }).resolvedOptions().timeZone;
  return resolved.toLowerCase() === value.toLowerCase() ? resolved : value;
}

const timeZoneSchema = z
  .string()
  .superRefine((value, ctx) => {
    const problem = timeZoneProblem(value);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  })
  .transform((value) => canonicalTimeZone(value.trim()));

const tablePrefixSchema = z
  .string()
  .max(32, 'a table prefix is at most 32 characters')
  .regex(/^[A-Za-z0-9_]*$/, 'a table prefix may use only letters, digits and _ (e.g. "lm_")');

export const configSchema = z
  .strictObject({
    database: z
      .strictObject({
        filename: z
          .string()
          .min(1)
          .max(MAX_PATH_LENGTH)
          .optional()
          .describe(`SQLite file; a relative path is relative to the config file (default ${DEFAULT_DATABASE_FILENAME})`),
        url: z
          .string()
          .min(1)
          .max(MAX_URL_LENGTH)
          .superRefine((value, ctx) => {
            const parsed = parseDatabaseUrl(value, '');
            if ('problem' in parsed) ctx.addIssue({ code: 'custom', message: parsed.problem });
          })
          .optional()
          .describe('postgres://user:pass@host:5432/db, mysql://user:pass@host:3306/db or sqlite:<file>'),
        tablePrefix: tablePrefixSchema.default('').describe("put in front of this tool's table names, so they can share another application's database"),
      })
      .refine((database) => database.filename === undefined || database.url === undefined, {
        message: 'give database.filename (a SQLite file) or database.url (a server), not both',
      })
      .prefault({}),
    webhooks: z
      .strictObject({
        enabled: z.boolean().default(false).describe('send webhooks at all'),
        url: webhookUrlSchema.nullable().default(null).describe('where events are POSTed'),
        secret: z
          .string()
          .superRefine((value, ctx) => {
            const problem = secretProblem(value);
            if (problem) ctx.addIssue({ code: 'custom', message: value.length === 0 ? 'an empty secret signs nothing: use null' : problem });
          })
          .nullable()
          .default(null)
          .describe('HMAC-SHA256 key for X-Webhook-Signature'),
        timeoutMs: z.int().min(1).max(600_000).default(DEFAULT_TIMEOUT_MS).describe('per-attempt timeout'),
        retryDelaysMs: z
          .array(z.int().min(0).max(3_600_000))
          .max(20)
          .default(DEFAULT_RETRY_DELAYS_MS)
          .describe('waits before each retry; its length is the number of retries'),
        concurrency: z.int().min(1).max(256).default(DEFAULT_CONCURRENCY).describe('HTTP attempts in flight at once'),
        retryWindowHours: z
          .int()
          .min(0)
          .max(8760)
          .default(DEFAULT_RETRY_WINDOW_HOURS)
          .describe(
            'how long after an event was recorded a failing delivery is retried in later runs (deferred); 0: abandoned after the in-run retries, as the reference',
          ),
        endpoints: endpointsSchema.optional().describe('more receivers beside url/secret (the endpoint "default"); see "Several receivers" in the README'),
      })
      .prefault({}),
    expirations: z
      .strictObject({
        warningDays: warningDaysSchema.default(DEFAULT_WARNING_DAYS).describe('days before expiry to send license.expiring; [] turns it off'),
        lookbackDays: z
          .int()
          .min(1, 'must be at least 1 (an expiry of today must still be announced)')
          .max(3650)
          .default(DEFAULT_LOOKBACK_DAYS)
          .describe('how many calendar days old an expiry may be and still be announced'),
        timeZone: timeZoneSchema.default(DEFAULT_TIME_ZONE).describe('IANA zone whose calendar days count (Laravel app.timezone)'),
        ...reminderPolicyConfigShape,
      })
      .prefault({}),
    licenses: z
      .strictObject({
        source: z
          .enum(['own', 'botble'], { error: 'must be "own" (licenses imported into this tool) or "botble" (read a Botble License Manager database)' })
          .default('own')
          .describe('where licenses and webhook settings are read: our own tables, or a Botble License Manager database as it is'),
      })
      .prefault({}),
    monitoring: z
      .strictObject({
        ping: pingSchema
          .nullable()
          .default(null)
          .describe(
            'heartbeat URL pinged when a run starts and ends: "https://hc-ping.com/<uuid>" (Healthchecks) or { "url": …, "kind": "cronitor" | "sentry" }',
          ),
        textfile: z
          .string()
          .min(1)
          .max(MAX_PATH_LENGTH)
          .nullable()
          .default(null)
          .describe(
            "Prometheus textfile written after each run, e.g. in node_exporter's --collector.textfile.directory; a relative path is relative to the config file",
          ),
        traceparent: z
          .array(z.string().min(1).max(64), { error: 'must be a list of endpoint names, e.g. ["default", "crm"]' })
          .max(100)
          .refine((names) => new Set(names).size === names.length, 'each endpoint may appear only once')
          .default([])
          .describe('endpoints ("default" for webhooks.url) whose webhooks carry a W3C traceparent header: the trace of the attempt, or TRACEPARENT passed on'),
      })
      .prefault({}),
    botble: z
      .strictObject({
        tablePrefix: tablePrefixSchema
          .default(DEFAULT_BOTBLE_TABLE_PREFIX)
          .describe("the prefix of Botble's License Manager tables (lm_licenses, lm_products)"),
      })
      .prefault({}),
  })
  .superRefine((config, ctx) => {
    if (config.licenses.source !== 'botble') return;
    // Botble's `settings` has no prefix and its tables use botble.tablePrefix: ours need a prefix of their own.
    const prefix = config.database.tablePrefix;
    if (prefix === '' || prefix === config.botble.tablePrefix) {
      ctx.addIssue({
        code: 'custom',
        path: ['database', 'tablePrefix'],
        message: `licenses.source "botble" keeps this tool's tables (settings, webhook_deliveries, ...) in Botble's database: give them a prefix of their own, e.g. "lmw_"${prefix ? `, not botble.tablePrefix "${prefix}"` : ''}`,
      });
    }
  });

export type Config = z.output<typeof configSchema>;

/**
 * "webhooks.timeoutMs: Too small: expected number to be >=1", one line per problem; an unknown key (a typo)
 * gets a line of its own naming the nearest known key.
 */
export function describeZodError(error: z.ZodError): string[] {
  return error.issues.flatMap((issue) => {
    // Keys under a record or a list (products.<id>, endpoints.<n>) are not found by walking the shapes:
    // their schema's own message says what is known there.
    if (issue.code === 'unrecognized_keys' && knownKeys(issue.path).length > 0) return issue.keys.map((key) => unknownKeyLine(issue.path, key));
    const key = issue.path.length > 0 ? issue.path.join('.') : '(top level)';
    return [`${key}: ${issue.message}`];
  });
}

/** `webhook: unknown key; did you mean "webhooks"?`, or the keys that are known there. */
function unknownKeyLine(path: readonly PropertyKey[], key: string): string {
  const dotted = (name: string) => [...path.map(String), name].join('.');
  const known = knownKeys(path);
  const nearest = closest(key, known);
  // A key at the top level that belongs to a section: "timeZone" is expirations.timeZone.
  const misplaced =
    path.length === 0
      ? known.flatMap((section) =>
          knownKeys([section])
            .filter((name) => name.toLowerCase() === key.toLowerCase())
            .map((name) => `${section}.${name}`),
        )
      : [];
  const suggestion = nearest ? dotted(nearest) : misplaced[0];
  if (suggestion) return `${dotted(key)}: unknown key; did you mean "${suggestion}"?`;
  return `${dotted(key)}: unknown key (known ${path.length === 0 ? 'sections' : `keys of ${path.map(String).join('.')}`}: ${known.join(', ')})`;
}

/** The keys the config schema has at `path`: the sections for [], a section's keys for ['webhooks']. */
function knownKeys(path: readonly PropertyKey[]): string[] {
  let schema: unknown = configSchema;
  for (const segment of path) schema = objectSchema(schema)?.shape[String(segment)];
  return Object.keys(objectSchema(schema)?.shape ?? {});
}

function objectSchema(schema: unknown): z.ZodObject | undefined {
  let current = schema;
  // Sections are wrapped (prefault, default, optional): look inside.
  while (current !== undefined && !(current instanceof z.ZodObject) && typeof (current as { unwrap?: unknown }).unwrap === 'function') {
    current = (current as { unwrap(): unknown }).unwrap();
  }
  return current instanceof z.ZodObject ? current : undefined;
}

/** The known name a typo most likely meant: ignoring case, at most one edit in three characters (a swap is one). */
function closest(typed: string, known: readonly string[]): string | undefined {
  const limit = Math.max(1, Math.floor(typed.length / 3));
  let best: { name: string; distance: number } | undefined;
  for (const name of known) {
    const distance = editDistance(typed.toLowerCase(), name.toLowerCase());
    if (distance <= limit && (!best || distance < best.distance)) best = { name, distance };
  }
  return best?.name;
}

/** Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours. */
function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i += 1) {
    for (let j = 1; j <= b.length; j += 1) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let value = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) value = Math.min(value, rows[i - 2]![j - 2]! + 1);
      rows[i]![j] = value;
    }
  }
  return rows[a.length]![b.length]!;
}
