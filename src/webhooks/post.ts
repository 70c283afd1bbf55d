import { EventEmitter } from 'node:events';
import type { Readable } from 'node:stream';
import type { $Fetch } from 'ofetch';
import { unusableStatusIn } from './status.js';
import { splitUrlCredentials } from './url.js';

/** How much of a response body is kept for the log: receivers may answer with megabytes. */
const RESPONSE_PREFIX_BYTES = 2048;
/**
 * How long the body prefix may take once the status is in: the status decides the attempt, so a body that
 * stalls, never ends or is cut off costs at most this, and never turns a 2xx into a failure.
 */
export const RESPONSE_BODY_MS = 1000;

export interface PostOptions {
  timeoutMs: number;
  /** The ofetch instance to send with: a run's transport (delivery/transport.ts), or a ping's client over the global fetch. */
  fetch: $Fetch;
}

export interface PostOutcome {
  /** null when no HTTP response came back (timeout, refused, reset, not HTTP). */
  statusCode: number | null;
  /** Response headers worth showing: Location on a redirect, for one. */
  location: string | null;
  /** The Retry-After header as sent (a 429 or 503 may carry one); null when absent or no response. */
  retryAfter: string | null;
  /** The first RESPONSE_PREFIX_BYTES of the body, decoded as UTF-8. */
  responsePrefix: string;
  /** Why the attempt did not succeed at the transport level; null when a response was read. */
  transportError: string | null;
}

/**
 * The ofetch instances whose fetch hands `signal` to undici's `request` as it is: the run's transport
 * (delivery/transport.ts). undici takes an EventEmitter there, so an attempt needs no AbortController, whose
 * AbortSignal (an EventTarget) cost more to make and to listen to than the rest of postOnce: 14 µs of a run's
 * main-thread CPU per event, of about 250. The global fetch (a ping's client) takes only a real AbortSignal.
 */
const plainSignalFetches = new WeakSet<$Fetch>();

/** Marks `fetch` as one whose requests may be aborted with a plain EventEmitter signal (see plainSignalFetches). */
export function takesPlainSignals(fetch: $Fetch): $Fetch {
  plainSignalFetches.add(fetch);
  return fetch;
}

/** What undici reads of a signal: `aborted`, `reason`, and an `abort` event (its listeners are added with `once`). */
class PlainAbortSignal extends EventEmitter {
  aborted = false;
  reason: unknown = undefined;
}

/** The part of AbortController that postOnce uses, over a PlainAbortSignal. */
class PlainAbortController {
  readonly signal = new PlainAbortSignal();

  abort(reason: unknown): void {
    if (this.signal.aborted) return;
    this.signal.aborted = true;
    this.signal.reason = reason;
    this.signal.emit('abort');
  }
}

class AttemptTimeout extends Error {
  constructor(timeoutMs: number) {
    super(`timed out after ${timeoutMs} ms`);
    this.name = 'AttemptTimeout';
  }
}

/**
 * One POST of the exact body bytes. The timeout covers the request up to the response's status and
 * headers; then at most RESPONSE_PREFIX_BYTES of the body are read, within RESPONSE_BODY_MS of their own
 * (ofetch's own `timeout` stops at the headers, so a receiver that stalls the body would hang us). What
 * the body does after the status (ends early, stalls, never ends) does not change the outcome: the
 * status does. Redirects are not followed (`redirect: 'manual'`): a 3xx comes back as a status.
 */
export async function postOnce(url: string, body: string, headers: Record<string, string>, options: PostOptions): Promise<PostOutcome> {
  const fetcher = options.fetch;
  const controller = plainSignalFetches.has(fetcher) ? new PlainAbortController() : new AbortController();
  let timer = setTimeout(() => controller.abort(new AttemptTimeout(options.timeoutMs)), options.timeoutMs);
  const target = splitUrlCredentials(url);
  try {
    const response = await fetcher.raw(target.url, {
      method: 'POST',
      body,
      headers: target.authorization ? { ...headers, Authorization: target.authorization } : headers,
      retry: 0,
      redirect: 'manual',
      ignoreResponseError: true,
      responseType: 'stream',
      // A PlainAbortSignal reaches only undici's request (see plainSignalFetches), which takes it.
      signal: controller.signal as AbortSignal,
    });
    clearTimeout(timer);
    timer = setTimeout(() => controller.abort(new AttemptTimeout(RESPONSE_BODY_MS)), RESPONSE_BODY_MS);
    const responsePrefix = await readPrefix(response._data as ReadableStream<Uint8Array> | Readable | undefined, RESPONSE_PREFIX_BYTES);
    return {
      statusCode: response.status,
      location: response.headers.get('location'),
      retryAfter: response.headers.get('retry-after'),
      responsePrefix,
      transportError: null,
    };
  } catch (error) {
    const unusable = unusableStatusIn(error);
    const reason = unusable
      ? unusable.message
      : controller.signal.aborted && controller.signal.reason instanceof AttemptTimeout
        ? controller.signal.reason.message
        : describeTransportError(error);
    return { statusCode: null, location: null, retryAfter: null, responsePrefix: '', transportError: reason };
  } finally {
    clearTimeout(timer);
  }
}

async function readPrefix(stream: ReadableStream<Uint8Array> | Readable | undefined, limit: number): Promise<string> {
  if (!stream) return '';
  if (!('getReader' in stream)) return readNodePrefix(stream, limit);
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < limit) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
  } catch {
    // Cut off, or past RESPONSE_BODY_MS: the status already came, and what arrived of the body is kept.
  } finally {
    // Drop the rest without reading it; the connection is not reused when a body is abandoned.
    await reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks).subarray(0, limit).toString('utf8');
}

/**
 * The same from a Node stream (the run's transport hands undici's body over as it is): chunks until `limit`
 * bytes, the end, an error or the body timeout's abort, then the rest is dropped.
 */
function readNodePrefix(stream: Readable, limit: number): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = () => {
      stream.off('data', onData);
      stream.off('end', done);
      stream.off('error', done);
      stream.off('close', done);
      // Drop the rest without reading it; the connection is not reused when a body is abandoned.
      // undici reports that as an abort on the stream: nobody is listening for it any more.
      if (!stream.readableEnded) stream.on('error', () => undefined).destroy();
      resolve(Buffer.concat(chunks, size).subarray(0, limit).toString('utf8'));
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.byteLength;
      if (size >= limit) done();
    };
    stream.on('data', onData);
    stream.once('end', done);
    // Cut off, or past RESPONSE_BODY_MS (the abort destroys the stream): what arrived of the body is kept.
    stream.once('error', done);
    stream.once('close', done);
  });
}

/** fetch hides the real reason in a chain of causes: "fetch failed" ← "connect ECONNREFUSED 127.0.0.1:9". */
function describeTransportError(error: unknown): string {
  const messages: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current && depth < 6; depth += 1) {
    // Duck-typed: errors from Node's internals may come from another realm (vm contexts), failing instanceof.
    if (typeof current === 'object' && 'message' in current) {
      const { code, message: raw } = current as { code?: unknown; message: unknown };
      const message = String(raw)
        .replace(/^\[POST\] "[^"]*": /, '')
        .replace(/^<no response> /, '');
      const text = typeof code === 'string' && !message.includes(code) ? `${message} (${code})` : message;
      if (text && !messages.includes(text)) messages.push(text);
      current = (current as { cause?: unknown }).cause;
    } else {
      messages.push(typeof current === 'string' ? current : 'network error');
      break;
    }
  }
  // The innermost cause is the most useful: "connect ECONNREFUSED 127.0.0.1:9".
  const useful = messages.filter((message) => !/^fetch failed$/i.test(message));
  // One line: TLS errors carry OpenSSL's multi-line text, and last_error is shown in tables.
  return ((useful.length > 0 ? useful[useful.length - 1] : messages[0]) ?? 'network error').replace(/\s+/g, ' ').trim();
}
