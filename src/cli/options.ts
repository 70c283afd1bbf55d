import { createRequire } from 'node:module';
import { InvalidArgumentError } from 'commander';
import { secretProblem } from '../webhooks/target.js';
import { parseEventsOption, parseHeaderOption, parseMaxInFlightOption, signingProblem } from '../webhooks/endpoint-spec.js';
import { parseDuration } from '../webhooks/secret-rotation.js';
import { usageError } from '../errors.js';
import { parseUtc } from '../time.js';

/**
 * Flag text -> typed value, for commander's `argParser`. A bad value throws InvalidArgumentError, which
 * commander reports with the flag's name ("option '--limit <n>' argument 'x' is invalid") and exit 2.
 */

/** `--now`, `--since`: an ISO-8601 date or date-time. */
export function isoDate(text: string): Date {
  const date = parseUtc(text);
  if (!date) throw new InvalidArgumentError('Expected an ISO-8601 date or date-time such as 2025-01-15T08:00:00Z.');
  return date;
}

// The instants a run's `--now` may name: calendar arithmetic and the YYYY-MM-DD format hold well inside them.
const EARLIEST_NOW = Date.UTC(1970, 0, 1);
const LATEST_NOW = Date.UTC(3000, 0, 1);

/** `--now`: an ISO-8601 instant a run could be at; year 1 or 9999 is a typo, not a catch-up run. */
export function runInstant(text: string): Date {
  const date = isoDate(text);
  if (date.getTime() < EARLIEST_NOW || date.getTime() >= LATEST_NOW) {
    throw new InvalidArgumentError('Expected an instant from 1970-01-01 to 2999-12-31 (a catch-up run goes back days or months, not centuries).');
  }
  return date;
}

// node:net is loaded when `--host` is given, not for every command line (it brings in streams and sockets).
const requireBuiltin = createRequire(import.meta.url);

/** `--host`: an IP address or a host name; `256.1.1.1` looks like an address and is none. */
export function listenHost(text: string): string {
  const host = text.trim();
  if ((requireBuiltin('node:net') as typeof import('node:net')).isIP(host)) return host;
  if (/^[\d.]+$/.test(host))
    throw new InvalidArgumentError('Not an IPv4 address: four numbers from 0 to 255, such as 127.0.0.1 (this machine only) or 0.0.0.0 (every interface).');
  if (!/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/.test(host) || host.length > 253) {
    throw new InvalidArgumentError('Expected an IP address (127.0.0.1, 0.0.0.0, ::1) or a host name of this machine (localhost).');
  }
  return host;
}

/** A whole number from `min` up to `max`; anything larger is refused rather than rounded by a float. */
export function wholeNumber(min: number, max: number): (text: string) => number {
  return (text) => {
    const trimmed = text.trim();
    const value = Number(trimmed);
    if (!/^\d+$/.test(trimmed) || value < min || value > max) throw new InvalidArgumentError(`Expected a whole number from ${min} to ${max}.`);
    return value;
  };
}

/** Delivery ids as a variadic argument: each one parsed, accumulated in order. */
export function deliveryIds(text: string, previous: number[] = []): number[] {
  const trimmed = text.trim();
  if (!/^\d+$/.test(trimmed) || Number(trimmed) < 1 || !Number.isSafeInteger(Number(trimmed))) {
    throw new InvalidArgumentError('A delivery id is a positive whole number (see "license-manager deliveries list").');
  }
  return [...previous, Number(trimmed)];
}

/**
 * `--secret <s>` or `--secret-env <name>`: the second keeps the secret out of the arguments every user
 * sees in `ps`. Undefined when neither is given (the configured secret applies).
 */
export function givenSecret(options: { secret?: string; secretEnv?: string }, env: NodeJS.ProcessEnv): string | undefined {
  const name = options.secretEnv;
  if (name === undefined) return options.secret;
  const value = env[name];
  if (value === undefined || value === '')
    throw usageError(`--secret-env ${name}: the environment variable ${name} is not set or empty. Export it first, or leave out --secret-env.`);
  const problem = secretProblem(value);
  if (problem) throw usageError(`--secret-env ${name}: the secret in ${name} ${problem}.`);
  return value;
}

/** `--mark-sent-through`, `--announce-since`: a calendar date, 'YYYY-MM-DD', that exists (a day in the business time zone). */
export function calendarDate(text: string): string {
  const trimmed = text.trim();
  const date = /^\d{4}-\d{2}-\d{2}$/.test(trimmed) ? new Date(`${trimmed}T00:00:00Z`) : undefined;
  if (!date || Number.isNaN(date.getTime()) || date.toISOString().slice(0, 10) !== trimmed)
    throw new InvalidArgumentError('Expected a date such as 2025-01-08 (YYYY-MM-DD, a day in the business time zone).');
  return trimmed;
}

/** `--events a,b`: known event types, each once. */
export function endpointEvents(text: string): string[] {
  const parsed = parseEventsOption(text);
  if ('problem' in parsed) throw new InvalidArgumentError(parsed.problem.replace(/^--events: /, ''));
  return parsed.events;
}

/** `--header "Name: value"`, repeatable: collected in order; the same name twice is refused. */
export function endpointHeader(text: string, previous: Record<string, string> = {}): Record<string, string> {
  const parsed = parseHeaderOption(text);
  if ('problem' in parsed) throw new InvalidArgumentError(parsed.problem.replace(/^--header: /, ''));
  if (Object.keys(previous).some((name) => name.toLowerCase() === parsed.name.toLowerCase())) {
    throw new InvalidArgumentError(`header "${parsed.name}" is given twice (header names ignore case)`);
  }
  return { ...previous, [parsed.name]: parsed.value };
}

/** `--max-in-flight <n>`. */
export function endpointMaxInFlight(text: string): number {
  const parsed = parseMaxInFlightOption(text);
  if ('problem' in parsed) throw new InvalidArgumentError(parsed.problem.replace(/^--max-in-flight: /, ''));
  return parsed.maxInFlight;
}

/** `--signing botble|standard|both`. */
export function endpointSigning(text: string): string {
  const problem = signingProblem(text);
  if (problem) throw new InvalidArgumentError(problem);
  return text;
}

/** `--keep-previous 24h` (0 revokes at once). */
export function keepPrevious(text: string): number {
  const parsed = parseDuration(text);
  if ('problem' in parsed) throw new InvalidArgumentError(parsed.problem);
  return parsed.ms;
}

/** `--secret` given several times: each in order. */
export function collectSecret(text: string, previous: string[] = []): string[] {
  return [...previous, text];
}

/** Every `--secret` given, then the one of `--secret-env`; undefined when none is (the configured secret applies). */
export function givenSecrets(options: { secret?: string[]; secretEnv?: string }, env: NodeJS.ProcessEnv): string[] | undefined {
  const fromEnv = options.secretEnv === undefined ? [] : [givenSecret({ secretEnv: options.secretEnv }, env)!];
  const all = [...(options.secret ?? []), ...fromEnv];
  return all.length > 0 ? all : undefined;
}

const DURATION_UNITS_MS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `--since 24h`: a whole number of minutes, hours, days or weeks back from now, as milliseconds (at most ten years). */
export function pastDuration(text: string): number {
  const match = /^(\d{1,6})\s*([mhdw])$/i.exec(text.trim());
  const ms = match ? Number(match[1]) * DURATION_UNITS_MS[match[2]!.toLowerCase()]! : Number.NaN;
  if (!match || ms <= 0 || ms > 3650 * DURATION_UNITS_MS.d!)
    throw new InvalidArgumentError('Expected a duration such as 30m, 24h, 7d or 4w (minutes, hours, days, weeks; more than 0, at most 10 years).');
  return ms;
}
