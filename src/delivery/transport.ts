import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { createFetch, type $Fetch } from 'ofetch';
// undici's index loads all of undici (fetch, WebSocket, caches, mock agents, proxies): 220 ms of CPU here, where
// these three parts, all a webhook POST uses, take 60. Deep paths (see undici-parts.d.ts); the version is pinned
// to its minor release in package.json, and every transport test runs through them.
import Agent from 'undici/lib/dispatcher/agent.js';
import buildConnector from 'undici/lib/core/connect.js';
import { request } from 'undici/lib/api/index.js';
import type { Dispatcher } from 'undici';
import { takesPlainSignals } from '../webhooks/post.js';
import { UnusableStatus, unusableStatusLine } from '../webhooks/status.js';

/** ofetch, and the connection pool under it; close it when the run is done so no socket keeps the process alive. */
export interface Transport {
  fetch: $Fetch;
  /**
   * Once every attempt has ended: drops the connections and whatever undici still holds, without waiting for it
   * (an attempt given up on while its connection was being made stays queued there until undici's own connect
   * timeout, 10 s, and sends nothing; waiting for it would hold the process that long).
   */
  close(): Promise<void>;
}

// An interim `100 Continue` (RFC 9110 §15.2: a client must accept one even when it did not ask) and its
// header lines. undici treats one as a broken response and drops the connection, so it is removed here.
const INTERIM_CONTINUE = /^HTTP\/1\.[01] 100[^\r\n]*\r\n(?:[^\r\n]+\r\n)*\r\n/;
const STATUS_LINES = ['HTTP/1.1 100', 'HTTP/1.0 100'];
// An interim response longer than this is not one we wait for: the bytes go to undici as they are.
const MAX_INTERIM_BYTES = 8192;

/**
 * Lets undici read a socket as if the receiver never sent `100 Continue`, and ends the exchange with an
 * UnusableStatus when the status line's code is no HTTP status (999, 1000, 099: undici's parser would
 * report an assertion or "does not match the HTTP/1.1 protocol"). undici sends one request per connection
 * at a time and writes it whole, so the first bytes read after a write start the response: only there is
 * an interim response looked for (and held back until complete).
 */
function watchResponseStart(socket: Socket): void {
  const read = socket.read.bind(socket);
  const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
  let atResponseStart = false;
  let held: Buffer | null = null;
  socket.write = ((...args: unknown[]) => {
    atResponseStart = true;
    return write(...args);
  }) as Socket['write'];
  socket.read = ((size?: number) => {
    const chunk = read(size) as Buffer | null;
    if (!atResponseStart) return chunk;
    if (chunk === null) return null;
    let data: Buffer = held ? Buffer.concat([held, chunk]) : chunk;
    held = null;
    for (;;) {
      const head = data.subarray(0, MAX_INTERIM_BYTES).toString('latin1');
      const unusable = unusableStatusLine(head);
      if (unusable !== undefined) {
        socket.destroy(new UnusableStatus(unusable));
        return null;
      }
      const interim = INTERIM_CONTINUE.exec(head);
      if (interim) {
        data = data.subarray(interim[0].length);
        if (data.length === 0) return null;
        continue;
      }
      const couldBeInterim = STATUS_LINES.some((line) => head.startsWith(line) || line.startsWith(head));
      if (couldBeInterim && !head.includes('\r\n\r\n') && data.length < MAX_INTERIM_BYTES) {
        held = data; // wait for the rest of it; the next 'readable' brings it
        return null;
      }
      atResponseStart = false;
      return data;
    }
  }) as Socket['read'];
}

// Responses that may not carry a body (Fetch standard, "null body status").
const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

/** HTTP whitespace around a header value, which the WHATWG Headers strip too. */
const OUTER_WHITESPACE = /^[\t\n\r ]+|[\t\n\r ]+$/g;

/** Tab, line feed, carriage return and space: HTTP whitespace. */
const isHttpWhitespace = (code: number) => code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d;

/** `value` without outer HTTP whitespace; the regular expression runs only when there is some (seldom). */
function withoutOuterWhitespace(value: string): string {
  if (value.length === 0 || (!isHttpWhitespace(value.charCodeAt(0)) && !isHttpWhitespace(value.charCodeAt(value.length - 1)))) return value;
  return value.replace(OUTER_WHITESPACE, '');
}

/**
 * The part of the WHATWG Headers that ofetch uses (it builds one for every request), over a plain object
 * keyed by lower-case name, as the WHATWG class keys them: the same names and values go on the wire, while
 * the class's validation and iteration cost more than the rest of a webhook POST. Values are checked where
 * they are sent (undici refuses a line break or NUL).
 */
class PlainHeaders {
  readonly record: Record<string, string> = Object.create(null) as Record<string, string>;

  constructor(init?: RequestInit['headers'] | PlainHeaders | null) {
    if (!init) return;
    if (init instanceof PlainHeaders) Object.assign(this.record, init.record);
    else if (Array.isArray(init) || Symbol.iterator in init) for (const [name, value] of init as Iterable<[string, string]>) this.append(name, value);
    else for (const [name, value] of Object.entries(init as Record<string, string>)) this.append(name, value);
  }

  get(name: string): string | null {
    return this.record[name.toLowerCase()] ?? null;
  }

  has(name: string): boolean {
    return this.record[name.toLowerCase()] !== undefined;
  }

  set(name: string, value: string): void {
    this.record[name.toLowerCase()] = withoutOuterWhitespace(String(value));
  }

  append(name: string, value: string): void {
    const key = name.toLowerCase();
    const normalized = withoutOuterWhitespace(String(value));
    const before = this.record[key];
    this.record[key] = before === undefined ? normalized : `${before}, ${normalized}`;
  }

  delete(name: string): void {
    delete this.record[name.toLowerCase()];
  }

  forEach(fn: (value: string, name: string) => void): void {
    for (const [name, value] of this.entries()) fn(value, name);
  }

  entries(): IterableIterator<[string, string]> {
    return Object.entries(this.record)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      [Symbol.iterator]();
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }
}

/**
 * A response's headers as undici hands them over (names in lower case, a value or a list of them), read
 * only when asked: postOnce asks for two (Location and Retry-After), and ofetch none, since postOnce asks for
 * `responseType: 'stream'` (ofetch reads Content-Type only to guess a type). The rest are never copied. Values
 * come back as the WHATWG Headers return them (a list joined with ", ", outer whitespace removed). Only `get`
 * exists: a caller that needs more of the Headers API must add it here.
 */
class ResponseHeaders {
  constructor(private readonly raw: Record<string, string | string[] | undefined>) {}

  get(name: string): string | null {
    const value = this.raw[name.toLowerCase()];
    if (value === undefined) return null;
    return withoutOuterWhitespace(Array.isArray(value) ? value.map(withoutOuterWhitespace).join(', ') : value);
  }
}

/**
 * The part of a fetch Response that ofetch and postOnce read: the status, the headers, and the body as
 * undici's Node stream (postOnce reads its first bytes and drops the rest). No WHATWG Response or web
 * stream is made for an answer whose body is two bytes of "OK".
 */
class PlainResponse {
  readonly statusText = '';
  readonly redirected = false;
  readonly type = 'basic';
  _data: unknown;

  constructor(
    readonly url: string,
    readonly status: number,
    readonly headers: ResponseHeaders,
    readonly body: Readable | null,
  ) {}

  get ok(): boolean {
    return this.status >= 200 && this.status <= 299;
  }
}

/** The origin and path of a URL, parsed once: a run posts to the same few URLs thousands of times. */
const parsedUrls = new Map<string, { origin: string; path: string }>();
const MAX_PARSED_URLS = 256;

function parsedUrl(url: string): { origin: string; path: string } {
  let parsed = parsedUrls.get(url);
  if (!parsed) {
    const whole = new URL(url);
    parsed = { origin: whole.origin, path: `${whole.pathname}${whole.search}` };
    if (parsedUrls.size >= MAX_PARSED_URLS) parsedUrls.clear();
    parsedUrls.set(url, parsed);
  }
  return parsed;
}

/** undici's own connect timeout, and the most a run's transport waits for a connection. */
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/**
 * The EventEmitter signal postOnce gives the run's transport (webhooks/post.ts), or an AbortSignal from any other
 * caller of its fetch.
 */
type AnySignal = AbortSignal | (NodeJS.EventEmitter & { aborted: boolean; reason: unknown });

/**
 * `pending`, or its signal's reason as soon as the signal aborts. undici keeps an abort that comes before the
 * connection is made until the socket connects or its own connect timeout (10 s) runs out, so an attempt to a
 * receiver whose host drops connection attempts outlived its timeout by that much, holding its slot. undici still
 * sends nothing once the signal has aborted (its handler checks the reason when the socket connects), and an
 * answer that comes after all is dropped unread.
 */
function untilAborted(pending: Promise<Dispatcher.ResponseData>, signal: AnySignal): Promise<Dispatcher.ResponseData> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const onAbort = () => {
      if (settled) return;
      settled = true;
      reject(signal.reason);
    };
    const stopListening =
      'addEventListener' in signal
        ? (signal.addEventListener('abort', onAbort, { once: true }), () => signal.removeEventListener('abort', onAbort))
        : (signal.once('abort', onAbort), () => signal.removeListener('abort', onAbort));
    // Aborted before it was asked: undici rejects it too, and sends nothing.
    if (signal.aborted) onAbort();
    pending.then(
      (response) => {
        stopListening();
        // Dropped unread: undici reports that as an error on the body, which nobody waits for.
        if (settled) response.body.on('error', () => undefined).destroy();
        else {
          settled = true;
          resolve(response);
        }
      },
      (error: unknown) => {
        stopListening();
        if (settled) return;
        settled = true;
        reject(error);
      },
    );
  });
}

/**
 * ofetch over undici's `request` instead of the global fetch. Same ofetch API, same options; measured here
 * 2-4x more POSTs per second than global fetch, whose per-request cost (WHATWG Request, signals,
 * streams) made the HTTP client the bottleneck of a run. ofetch gets PlainHeaders and PlainResponse
 * instead of the WHATWG classes (a webhook POST uses none of what they add). `request` never follows
 * redirects, which is what the contract wants.
 */
export function createTransport(options: { connectTimeoutMs?: number } = {}): Transport {
  // An attempt given up on while connecting (see untilAborted) frees its slot at once; its socket goes on connecting
  // until this timeout. At the run's attempt timeout, those sockets end within about a second of their attempts
  // (undici checks on a coarse timer) instead of 10 s later (its default), so a host that drops connection attempts
  // cannot pile up sockets far past the concurrency.
  const connect = buildConnector({ timeout: Math.min(options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_CONNECT_TIMEOUT_MS) });
  const agent = new Agent({
    keepAliveTimeout: 10_000,
    connect: (options, callback) =>
      connect(options, (error, socket) => {
        if (error || !socket) return callback(error ?? new Error('no socket'), null);
        watchResponseStart(socket);
        return callback(null, socket);
      }),
  });
  const fetch = async (input: string | URL | Request, init: RequestInit = {}): Promise<PlainResponse> => {
    const url = typeof input === 'string' || input instanceof URL ? String(input) : input.url;
    const headers = init.headers instanceof PlainHeaders ? init.headers.record : new PlainHeaders(init.headers).record;
    const { origin, path } = parsedUrl(url);
    const signal = init.signal ?? undefined;
    const pending = request.call(agent, {
      origin,
      path,
      method: (init.method ?? 'GET') as 'POST',
      headers,
      body: (init.body ?? null) as string | null,
      signal,
    });
    const response = await (signal ? untilAborted(pending, signal) : pending);
    const responseHeaders = new ResponseHeaders(response.headers);
    // An interim status as the final answer (a Response cannot carry one, nor anything past 599).
    if (response.statusCode < 200 || response.statusCode > 599) {
      response.body.destroy();
      throw new UnusableStatus(String(response.statusCode));
    }
    if (NULL_BODY_STATUS.has(response.statusCode)) {
      response.body.resume();
      return new PlainResponse(url, response.statusCode, responseHeaders, null);
    }
    return new PlainResponse(url, response.statusCode, responseHeaders, response.body);
  };
  return {
    // Its fetch hands the signal to undici's request as it is: postOnce may abort through a plain EventEmitter.
    fetch: takesPlainSignals(
      createFetch({ fetch: fetch as unknown as typeof globalThis.fetch, Headers: PlainHeaders as unknown as typeof Headers, AbortController }),
    ),
    close: () => agent.destroy(),
  };
}

/** Runs `fn` with the given fetch (tests), or with a fresh transport (see createTransport) that is closed when `fn` ends. */
export async function withTransport<T>(fetch: $Fetch | undefined, connectTimeoutMs: number, fn: (fetch: $Fetch) => Promise<T>): Promise<T> {
  if (fetch) return fn(fetch);
  const transport = createTransport({ connectTimeoutMs });
  try {
    return await fn(transport.fetch);
  } finally {
    await transport.close();
  }
}
