// Heartbeat pings (monitoring.ping): the start and end URLs Healthchecks, Cronitor and Sentry Crons understand, and a pinger that never fails or holds up the run.
import type { $Fetch } from 'ofetch';
import type { Clock } from '../clock.js';
import type { PingTarget } from '../config/ping.js';
import { maskCredentials } from '../credentials.js';
import { formatUtc } from '../time.js';

/** The whole ping, both attempts and the pause between them, ends within this (the job waits for the end ping). */
const DEFAULT_PING_TOTAL_MS = 5000;
/** Before the one retry: long enough for a blip to pass, short enough to stay well inside the bound. */
const RETRY_PAUSE_MS = 250;
/** Healthchecks logs the first 100 kB of a ping's body (https://healthchecks.io/docs/attaching_logs/). */
export const HEALTHCHECKS_BODY_LIMIT_BYTES = 100_000;
/** Cronitor's `message` parameter holds at most 2000 characters (its telemetry API). */
export const CRONITOR_MESSAGE_LIMIT = 2000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** One ping to send: always a POST (all three services take one), with the summary as its body where the service keeps it. */
export interface PingRequest {
  phase: 'start' | 'end';
  url: string;
  body: string;
}

function checkRunId(runId: string): void {
  // Healthchecks' rid and Sentry's check_in_id must both be UUIDs, or the service refuses the ping.
  if (!UUID.test(runId)) throw new RangeError(`a ping's run id must be a UUID, not "${runId}"`);
}

/** The target with `segment` added to its path and `params` set in its query; the operator's own query (?create=1, env=…) stays. */
function withPathAndQuery(target: string, segment: string | null, params: Record<string, string>): string {
  const url = new URL(target);
  url.hash = '';
  if (segment !== null) url.pathname = `${url.pathname.replace(/\/+$/, '')}/${segment}`;
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  return url.toString();
}

/**
 * The start ping: Healthchecks `/start?rid=`, Cronitor `state=run&series=`, Sentry `status=in_progress&check_in_id=`.
 * Sentry's ingest endpoint hands out no check-in id any more ("generate it client-side"); without one, the end ping
 * would close whichever check-in is in progress, so overlapping runs would be paired wrongly. The run id is that id.
 */
export function startPing(target: PingTarget, runId: string): PingRequest {
  checkRunId(runId);
  switch (target.kind) {
    case 'healthchecks':
      return { phase: 'start', url: withPathAndQuery(target.url, 'start', { rid: runId }), body: '' };
    case 'cronitor':
      return { phase: 'start', url: withPathAndQuery(target.url, null, { state: 'run', series: runId }), body: '' };
    case 'sentry':
      return { phase: 'start', url: withPathAndQuery(target.url, null, { status: 'in_progress', check_in_id: runId }), body: '' };
  }
}

export interface RunEnd {
  runId: string;
  exitCode: number;
  /** The run's one-line summary (counts only: it must hold no license data). URL credentials in it are masked. */
  summary: string;
  /** How long the run took; Sentry takes it as `duration` (seconds). */
  durationMs?: number;
}

/** The first `limit` bytes of `text` as UTF-8, never cutting a character in two. */
function truncateUtf8(text: string, limit: number): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= limit) return text;
  let end = limit;
  // Back up over continuation bytes (10xxxxxx) to the start of the character that does not fit.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end -= 1;
  return bytes.subarray(0, end).toString('utf8');
}

/**
 * The end ping. Healthchecks: `<url>?rid=` on exit 0, `<url>/<exit status>?rid=` otherwise (it takes 0 to 255;
 * anything else is `/fail`), with the summary as the POST body. Cronitor: `state=complete|fail`, `series`,
 * `status_code` (the exit status) and the summary as `message` (it reads no body). Sentry:
 * `status=ok|error`, `check_in_id`, and `duration` when known; its check-in has no field for a message.
 */
export function endPing(target: PingTarget, end: RunEnd): PingRequest {
  checkRunId(end.runId);
  const summary = maskCredentials(end.summary);
  const success = end.exitCode === 0;
  switch (target.kind) {
    case 'healthchecks': {
      const segment = success ? null : Number.isInteger(end.exitCode) && end.exitCode > 0 && end.exitCode <= 255 ? String(end.exitCode) : 'fail';
      return { phase: 'end', url: withPathAndQuery(target.url, segment, { rid: end.runId }), body: truncateUtf8(summary, HEALTHCHECKS_BODY_LIMIT_BYTES) };
    }
    case 'cronitor': {
      const params: Record<string, string> = { state: success ? 'complete' : 'fail', series: end.runId, status_code: String(end.exitCode) };
      const message = Array.from(summary.replace(/\s+/g, ' ').trim()).slice(0, CRONITOR_MESSAGE_LIMIT).join('');
      if (message) params.message = message;
      return { phase: 'end', url: withPathAndQuery(target.url, null, params), body: '' };
    }
    case 'sentry': {
      const params: Record<string, string> = { status: success ? 'ok' : 'error', check_in_id: end.runId };
      if (end.durationMs !== undefined && Number.isFinite(end.durationMs) && end.durationMs >= 0) params.duration = (end.durationMs / 1000).toFixed(3);
      return { phase: 'end', url: withPathAndQuery(target.url, null, params), body: '' };
    }
  }
}

const URL_SAFE_RUN = /^[A-Za-z0-9_-]{16,}$/;

/** A path segment that looks like a key (a UUID, a base64url ping key, a hex API key) rather than a slug such as `nightly-job`. */
function keyLike(segment: string): boolean {
  if (UUID.test(segment)) return true;
  if (!URL_SAFE_RUN.test(segment)) return false;
  return /[A-Z_]/.test(segment) || (/\d/.test(segment) && /[a-z]/.test(segment));
}

/**
 * A URL's path with every segment that is a key replaced by `mask`: a Healthchecks UUID or ping key, Cronitor's API
 * key after `/p/`, Sentry's public key, a Slack or Discord webhook token. Shared by the ping URL as printed and a
 * webhook's URL in a trace span (url.full).
 */
export function maskKeyPath(pathname: string, mask = '****'): string {
  const segments = pathname.split('/');
  return segments
    .map((segment, index) => {
      const previous = segments[index - 1];
      // Cronitor: /p/<api key>/<monitor>; Sentry: /api/<project>/cron/<monitor>/<public key>/.
      if (previous === 'p' || segments[index - 2] === 'cron') return segment ? mask : segment;
      return keyLike(segment) ? mask : segment;
    })
    .join('/');
}

/**
 * The ping URL as it may be printed (warnings, `status`): the password of any credentials, the path segments that
 * are keys (maskKeyPath) and the query are dropped. Anyone holding a ping URL can report the job as healthy, so it
 * is treated as a secret.
 */
export function displayPingUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return '(an invalid URL)';
  }
  const credentials = url.username ? `${decodeURIComponent(url.username)}${url.password ? ':****' : ''}@` : '';
  return `${url.protocol}//${credentials}${url.host}${maskKeyPath(url.pathname)}`;
}

/**
 * Whether a ping shown as `shown.target` (a PingResult's, the URL displayPingUrl printed) went to the check
 * `configured` names (its URL as displayPingUrl prints it, and its kind): what `status` asks before it says
 * "(to <url>)". The bases are compared, not the URLs: Cronitor's and Sentry's pings only add query parameters,
 * which the printed URL drops, but a Healthchecks ping adds a path segment, `/start` to the start ping and the
 * exit status (`/1` to `/255`, else `/fail`) to the end ping of a failed run. Keys are masked on both sides: two
 * checks on one host whose URLs differ only in a key look the same.
 */
export function pingWentTo(configured: { target: string; kind: string }, shown: Pick<PingResult, 'phase' | 'target'>): boolean {
  if (shown.target === configured.target) return true;
  if (configured.kind !== 'healthchecks') return false;
  // withPathAndQuery's segment goes after the path with its trailing slashes dropped.
  const stem = `${configured.target.replace(/\/+$/, '')}/`;
  if (!shown.target.startsWith(stem)) return false;
  const segment = shown.target.slice(stem.length);
  return shown.phase === 'start' ? segment === 'start' : segment === 'fail' || (/^[1-9]\d{0,2}$/.test(segment) && Number(segment) <= 255);
}

/** What became of one ping: a value for a warning on stderr and for `status`; a ping never throws. */
export interface PingResult {
  phase: 'start' | 'end';
  ok: boolean;
  /** The URL as it may be printed (displayPingUrl). */
  target: string;
  /** When the first attempt started (the clock's time, UTC ISO). */
  at: string;
  attempts: number;
  /** The last attempt's HTTP status; null when no response came back. */
  statusCode: number | null;
  /** Why the ping failed (the last attempt), credentials masked; null when it succeeded. */
  error: string | null;
  durationMs: number;
}

export interface PingOptions {
  clock: Clock;
  /** The whole ping, retry included, ends within this. */
  totalMs?: number | undefined;
  /** The ofetch instance; when absent, ofetch over Node's global fetch (what pings always used). */
  fetch?: $Fetch | undefined;
  /** Sent as User-Agent, e.g. `license-manager/0.1.0`; a service shows it beside each ping. */
  userAgent?: string;
}

/** 408, 429 and 5xx may pass in a moment; every other status will not, and a 3xx is not followed (none of the services redirects). */
function worthRetrying(statusCode: number | null): boolean {
  return statusCode === null || statusCode === 408 || statusCode === 429 || statusCode >= 500;
}

function describeFailure(statusCode: number | null, transportError: string | null, location: string | null, responsePrefix: string): string {
  if (transportError) return transportError;
  if (statusCode !== null && statusCode >= 300 && statusCode <= 399) {
    return `HTTP ${statusCode} redirect${location ? ` to ${location}` : ''} (redirects are not followed: use the final URL)`;
  }
  const snippet = responsePrefix.replace(/\s+/g, ' ').trim().slice(0, 200);
  return snippet ? `HTTP ${statusCode}: ${snippet}` : `HTTP ${statusCode}`;
}

/**
 * Sends one ping: a POST, then one retry when no answer came or the service answered 408, 429 or 5xx. Both
 * attempts together end within `totalMs` (the first may take half of it). Redirects are not followed. Never
 * throws: a failure is a result with `ok: false` and the reason.
 */
export async function sendPing(request: PingRequest, options: PingOptions): Promise<PingResult> {
  const totalMs = options.totalMs ?? DEFAULT_PING_TOTAL_MS;
  const started = performance.now();
  const at = formatUtc(options.clock.now());
  const headers: Record<string, string> = { 'User-Agent': options.userAgent ?? 'license-manager' };
  if (request.body) headers['Content-Type'] = 'text/plain; charset=utf-8';
  const result = (ok: boolean, attempts: number, statusCode: number | null, error: string | null): PingResult => ({
    phase: request.phase,
    ok,
    target: displayPingUrl(request.url),
    at,
    attempts,
    statusCode,
    error: error === null ? null : maskCredentials(error),
    durationMs: Math.round(performance.now() - started),
  });
  let statusCode: number | null = null;
  let error: string | null = null;
  // Loaded here, not at the top: status and a run without a ping never load the HTTP client for it. Without a
  // client given, ofetch over Node's global fetch, as ofetch's own default client is made (its headers, and the
  // proxy settings a newer Node's fetch honours), made here so that a run that pings nothing never loads it.
  const [{ postOnce }, { createFetch }] = await Promise.all([import('../webhooks/post.js'), import('ofetch')]);
  const fetch = options.fetch ?? createFetch({ fetch: globalThis.fetch, Headers: globalThis.Headers, AbortController: globalThis.AbortController });
  for (let attempt = 1; attempt <= 2; attempt += 1) {
    const remaining = totalMs - (performance.now() - started);
    const timeoutMs = Math.floor(attempt === 1 ? totalMs / 2 : remaining);
    if (timeoutMs < 1) return result(false, attempt - 1, statusCode, error);
    try {
      const outcome = await postOnce(request.url, request.body, headers, { timeoutMs, fetch });
      statusCode = outcome.statusCode;
      if (statusCode !== null && statusCode >= 200 && statusCode <= 299) return result(true, attempt, statusCode, null);
      error = describeFailure(statusCode, outcome.transportError, outcome.location, outcome.responsePrefix);
    } catch (thrown) {
      // postOnce reports transport failures as values; anything else is a bug that must still not fail the run.
      statusCode = null;
      error = thrown instanceof Error ? thrown.message : String(thrown);
    }
    if (attempt === 2 || !worthRetrying(statusCode)) return result(false, attempt, statusCode, error);
    if (totalMs - (performance.now() - started) <= RETRY_PAUSE_MS) return result(false, attempt, statusCode, error);
    await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
  }
  return result(false, 2, statusCode, error);
}

/**
 * The warning line for a failed ping (null when it succeeded): what, where, why, that the run's exit status stands,
 * and where the ping was set (`setIn`: the config key, the setting or the environment variable it came from).
 */
export function pingWarning(result: PingResult, setIn = 'monitoring.ping'): string | null {
  if (result.ok) return null;
  const tries = result.attempts === 1 ? '1 attempt' : `${result.attempts} attempts`;
  return `warning: the ${result.phase} ping to ${result.target} failed after ${tries} (${result.error ?? 'no answer'}); the run's exit status does not change. Check ${setIn}.`;
}
