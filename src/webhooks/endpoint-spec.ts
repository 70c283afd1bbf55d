// What a valid endpoint definition is (name, URL, secret, events, headers, limits, signing): one set of rules for the config file's zod schema (endpoint-schema.ts) and the `endpoints` CLI. No zod here: the CLI's flag parsers load this module for every command, `--help` included.
import { secretProblem } from './target.js';
import { EVENT_TYPES } from './event-types.js';
import { standardSecretProblem } from './standard-secret.js';

/** The endpoint the configured `webhooks.url` / `webhooks.secret` (or Botble's settings) stand for; never defined by hand. */
export const DEFAULT_ENDPOINT_NAME = 'default';
const MAX_NAME_LENGTH = 64;
/** The global `concurrency` has the same ceiling: an endpoint may not ask for more than the whole run has. */
const MAX_IN_FLIGHT = 256;
// Generous for a gateway's API key or tenant id, small enough that a pasted file is caught.
const MAX_HEADERS = 20;
const MAX_HEADER_NAME_LENGTH = 256;
const MAX_HEADER_VALUE_LENGTH = 4096;

/** The event types an endpoint's filter may name: the reference's three and `license.expired_reminder` (after-expiry reminders); `endpoints --help` lists these. */
export const ENDPOINT_EVENT_TYPES: readonly string[] = [...new Set<string>([...EVENT_TYPES, 'license.expired_reminder'])];

export const SIGNING_SCHEMES = ['botble', 'standard', 'both'] as const;
export type SigningScheme = (typeof SIGNING_SCHEMES)[number];

/**
 * Lower-case letters, digits and `-`, 1 to 64, starting with a letter or digit (a leading `-` would
 * read as a command-line option). `default` is reserved unless `allowDefault` (a command that only
 * refers to an endpoint, such as `endpoints show default`). A reason when it fails.
 */
export function endpointNameProblem(value: string, options: { allowDefault?: boolean } = {}): string | undefined {
  if (value.length === 0) return 'an endpoint name must not be empty';
  if (value.length > MAX_NAME_LENGTH) return `"${value.slice(0, 80)}…" is ${value.length} characters long; an endpoint name has at most ${MAX_NAME_LENGTH}`;
  if (!/^[a-z0-9][a-z0-9-]*$/.test(value)) {
    return `"${value}" is not an endpoint name: use lower-case letters, digits and "-", starting with a letter or digit (e.g. "crm", "billing-eu")`;
  }
  if (value === DEFAULT_ENDPOINT_NAME && !options.allowDefault) {
    return `"${DEFAULT_ENDPOINT_NAME}" is reserved for the URL and secret configured in webhooks.url / webhooks.secret (or the webhook-url and webhook-secret settings): choose another name`;
  }
  return undefined;
}

/** A secret an endpoint can sign with in every scheme: the webhook secret's rules, and a well-formed key when it starts with `whsec_`. */
export function endpointSecretProblem(value: string): string | undefined {
  return secretProblem(value) ?? standardSecretProblem(value);
}

/** Names a known event type the filter does not have: "license.expire" → "license.expired"? A guess, only when it is close. */
function closestEventType(value: string): string | undefined {
  const lower = value.trim().toLowerCase();
  return ENDPOINT_EVENT_TYPES.find((type) => type === lower || type === `license.${lower}` || type === `license.${lower.replace(/^license[._-]?/, '')}`);
}

/** An event filter: known types only, each once, not empty (leave the filter out to take every type). */
export function endpointEventsProblem(values: readonly string[]): string | undefined {
  const known = ENDPOINT_EVENT_TYPES.join(', ');
  if (values.length === 0) return `an empty event list takes no event: leave "events" out to take every type, or disable the endpoint`;
  for (const value of values) {
    if (ENDPOINT_EVENT_TYPES.includes(value)) continue;
    const guess = closestEventType(value);
    return `"${value}" is not an event type${guess ? ` (did you mean "${guess}"?)` : ''}; known types: ${known}`;
  }
  const repeated = values.find((value, index) => values.indexOf(value) !== index);
  if (repeated) return `"${repeated}" is listed twice; name each event type once`;
  return undefined;
}

/** `--events license.expired,license.expiring`: comma-separated, spaces around items allowed. */
export function parseEventsOption(text: string): { events: string[] } | { problem: string } {
  const events = text.split(',').map((item) => item.trim());
  if (events.some((item) => item === '') && text.trim() !== '')
    return { problem: `--events "${text}" has an empty item; separate event types with single commas` };
  const list = text.trim() === '' ? [] : events;
  const problem = endpointEventsProblem(list);
  return problem ? { problem: `--events: ${problem}` } : { events: list };
}

// RFC 9110 §5.6.2: a field name is a token.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Headers that this tool sets (the wire format and the signature depend on them) or that the HTTP client owns (RFC 9110 §7.6.1 hop-by-hop, framing).
const RESERVED_HEADERS: Record<string, string> = {
  'content-type': 'the body is always application/json (the wire format)',
  'user-agent': 'the User-Agent is part of the wire format',
  'content-length': 'the HTTP client sets it from the body',
  'content-encoding': 'the body is sent as it is signed, never encoded',
  'transfer-encoding': 'the HTTP client frames the body',
  host: 'the host comes from the endpoint URL',
  connection: 'it is hop-by-hop (RFC 9110 §7.6.1); the HTTP client manages connections',
  'keep-alive': 'it is hop-by-hop (RFC 9110 §7.6.1); the HTTP client manages connections',
  'proxy-connection': 'it is hop-by-hop; the HTTP client manages connections',
  te: 'it is hop-by-hop (RFC 9110 §7.6.1)',
  trailer: 'the request has no trailers',
  upgrade: 'it is hop-by-hop (RFC 9110 §7.6.1)',
  expect: 'the request is sent whole, without 100-continue',
};
const RESERVED_PREFIXES = [
  ['x-webhook-', 'X-Webhook-* headers carry the event, its id and its signature'],
  ['webhook-', 'webhook-* headers are the Standard Webhooks id, timestamp and signature'],
] as const;

/** A header name an endpoint may add; the reason names the header when it may not. */
export function headerNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'a header name must not be empty';
  if (name.length > MAX_HEADER_NAME_LENGTH) return `header name "${name.slice(0, 60)}…" is longer than ${MAX_HEADER_NAME_LENGTH} characters`;
  if (!TOKEN.test(name)) return `"${name}" is not a header name: letters, digits and !#$%&'*+-.^_\`|~ only, no spaces or ":" (RFC 9110 §5.6.2)`;
  const lower = name.toLowerCase();
  const reserved = RESERVED_HEADERS[lower];
  if (reserved) return `header "${name}" cannot be set on an endpoint: ${reserved}`;
  for (const [prefix, why] of RESERVED_PREFIXES) {
    if (lower.startsWith(prefix)) return `header "${name}" cannot be set on an endpoint: ${why}`;
  }
  return undefined;
}

/** A header value an endpoint may send: printable ASCII (undici refuses most others), no line breaks (header injection), not empty. */
function headerValueProblem(name: string, value: string): string | undefined {
  if (value.trim() === '') return `header "${name}" has an empty value (an unset shell variable?); give a value or leave the header out`;
  if (value.length > MAX_HEADER_VALUE_LENGTH) return `header "${name}" has a value of ${value.length} characters; at most ${MAX_HEADER_VALUE_LENGTH}`;
  if (/[\r\n\0]/.test(value)) return `header "${name}" has a line break or NUL in its value; a header value is one line`;
  if (!/^[\t\x20-\x7e]*$/.test(value))
    return `header "${name}" has a character outside printable ASCII in its value; encode it (percent- or base64-encoding) first`;
  return undefined;
}

/** `--header "Name: value"` (repeatable): split at the first ":", spaces around the value dropped. */
export function parseHeaderOption(text: string): { name: string; value: string } | { problem: string } {
  const colon = text.indexOf(':');
  if (colon === -1) return { problem: `--header "${text}" has no ":"; write it as "Name: value", e.g. --header "X-Api-Key: abc123"` };
  const name = text.slice(0, colon).trim();
  const value = text.slice(colon + 1).trim();
  const problem = headerNameProblem(name) ?? headerValueProblem(name, value);
  return problem ? { problem: `--header: ${problem}` } : { name, value };
}

/** A whole set of extra headers: each valid, at most MAX_HEADERS, and no name twice in any case (HTTP names are case-insensitive). */
export function endpointHeadersProblem(headers: Readonly<Record<string, string>>): string | undefined {
  const names = Object.keys(headers);
  if (names.length > MAX_HEADERS) return `${names.length} extra headers; an endpoint has at most ${MAX_HEADERS}`;
  for (const name of names) {
    const problem = headerNameProblem(name) ?? headerValueProblem(name, headers[name]!);
    if (problem) return problem;
  }
  const lower = names.map((name) => name.toLowerCase());
  const twice = names.find((_, index) => lower.indexOf(lower[index]!) !== index);
  if (twice) return `header "${twice}" is given twice (header names ignore case)`;
  return undefined;
}

/** 1 to MAX_IN_FLIGHT attempts at once to this endpoint. */
export function maxInFlightProblem(value: number): string | undefined {
  if (!Number.isInteger(value) || value < 1 || value > MAX_IN_FLIGHT) return `maxInFlight must be a whole number from 1 to ${MAX_IN_FLIGHT}, not ${value}`;
  return undefined;
}

/** `--max-in-flight <n>` as given on the command line. */
export function parseMaxInFlightOption(text: string): { maxInFlight: number } | { problem: string } {
  const value = /^\s*\d+\s*$/.test(text) ? Number(text) : Number.NaN;
  const problem = Number.isNaN(value) ? `maxInFlight must be a whole number from 1 to ${MAX_IN_FLIGHT}, not "${text}"` : maxInFlightProblem(value);
  return problem ? { problem: `--max-in-flight: ${problem}` } : { maxInFlight: value };
}

export function signingProblem(value: string): string | undefined {
  if ((SIGNING_SCHEMES as readonly string[]).includes(value)) return undefined;
  return `signing "${value}" is not a scheme: use "botble" (X-Webhook-Signature, as today), "standard" (Standard Webhooks headers) or "both"`;
}
