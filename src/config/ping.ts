// What `monitoring.ping` (and the `ping` setting) may be: a heartbeat URL and the service it belongs to. The pinging itself is src/monitoring/heartbeat.ts.
import { z } from 'zod';
import { httpUrlProblem } from '../webhooks/target.js';

const PING_KINDS = ['healthchecks', 'cronitor', 'sentry'] as const;
type PingKind = (typeof PING_KINDS)[number];

/** A parsed `monitoring.ping`: a URL string is the Healthchecks form. */
export interface PingTarget {
  url: string;
  kind: PingKind;
}

const MAX_PING_URL_LENGTH = 2048;

/** Why `value` cannot be a ping URL, or undefined when it can. The URL itself is not repeated: its path is the check's key. */
function pingUrlProblem(value: string): string | undefined {
  return httpUrlProblem(value, { what: 'a ping URL', maxLength: MAX_PING_URL_LENGTH, example: 'https://hc-ping.com/<uuid>' });
}

const pingUrlSchema = z.string({ error: 'must be the ping URL, a string such as "https://hc-ping.com/<uuid>"' }).superRefine((value, ctx) => {
  const problem = pingUrlProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: `the ping URL ${problem}` });
});

/** `monitoring.ping`: "https://hc-ping.com/<uuid>" or { "url": …, "kind": "healthchecks" | "cronitor" | "sentry" }. */
export const pingSchema = z.preprocess(
  (value) => (typeof value === 'string' ? { url: value } : value),
  z.strictObject(
    {
      url: pingUrlSchema,
      kind: z.enum(PING_KINDS, { error: `must be one of ${PING_KINDS.join(', ')} (the service the URL belongs to)` }).default('healthchecks'),
    },
    {
      error: (issue) =>
        issue.code === 'invalid_type'
          ? 'must be a URL string (Healthchecks) or { "url": "https://…", "kind": "healthchecks" | "cronitor" | "sentry" }'
          : undefined,
    },
  ),
);

/**
 * The `ping` setting's text: `<url>` (Healthchecks), `cronitor <url>` or `sentry <url>`; `none` turns off a ping the
 * config file sets. The same rules as monitoring.ping.
 */
export function parsePingText(text: string): { value: PingTarget | null } | { problem: string } {
  const trimmed = text.trim();
  if (trimmed.toLowerCase() === 'none') return { value: null };
  const match = /^(?:([a-z]+)\s+)?(\S+)$/i.exec(trimmed);
  const shown = trimmed.length > 80 ? `${trimmed.slice(0, 80)}...` : trimmed;
  if (!match) return { problem: `"${shown}" is not "<url>", "cronitor <url>", "sentry <url>" or none` };
  const kind = (match[1]?.toLowerCase() ?? 'healthchecks') as PingKind;
  if (!(PING_KINDS as readonly string[]).includes(kind))
    return { problem: `"${match[1]}" is not a ping service: write ${PING_KINDS.join(', ')} before the URL (or the URL alone for Healthchecks)` };
  const problem = pingUrlProblem(match[2]!);
  // The URL is a secret (it reports the job healthy): its problem is named, the URL not echoed back.
  if (problem) return { problem: `the ping URL ${problem}` };
  return { value: { url: match[2]!, kind } };
}

/** The setting's text of a ping target (parsePingText's inverse). */
export function formatPingText(target: PingTarget): string {
  return target.kind === 'healthchecks' ? target.url : `${target.kind} ${target.url}`;
}
