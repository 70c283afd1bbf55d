import { Readable } from 'node:stream';
import { createFetch, type $Fetch } from 'ofetch';
import { Agent, request } from 'undici';

/** ofetch, and the connection pool under it; close it when the run is done so no socket keeps the process alive. */
export interface Transport {
  fetch: $Fetch;
  close(): Promise<void>;
}

// Responses that may not carry a body (Fetch standard, "null body status").
const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

/**
 * ofetch over undici's `request` instead of the global fetch. Same ofetch API, same options; measured here
 * 2-4x more POSTs per second than global fetch, whose per-request cost (WHATWG Request, signals,
 * streams) made the HTTP client the bottleneck of a run. `request` never follows redirects, which is
 * what the contract wants.
 */
export function createTransport(): Transport {
  const agent = new Agent({ keepAliveTimeout: 10_000 });
  const fetch = async (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const url = typeof input === 'string' || input instanceof URL ? String(input) : input.url;
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((value, name) => (headers[name] = value));
    const response = await request(url, {
      method: (init.method ?? 'GET') as 'POST',
      headers,
      body: (init.body ?? null) as string | null,
      signal: init.signal ?? undefined,
      dispatcher: agent,
    });
    const responseHeaders = new Headers();
    for (const [name, value] of Object.entries(response.headers)) {
      for (const one of Array.isArray(value) ? value : [value]) if (one !== undefined) responseHeaders.append(name, one);
    }
    if (NULL_BODY_STATUS.has(response.statusCode)) {
      response.body.resume();
      return new Response(null, { status: response.statusCode, headers: responseHeaders });
    }
    return new Response(Readable.toWeb(response.body) as ReadableStream<Uint8Array>, { status: response.statusCode, headers: responseHeaders });
  };
  return {
    fetch: createFetch({ fetch: fetch as typeof globalThis.fetch, Headers, AbortController }),
    close: () => agent.close(),
  };
}

/** Runs `fn` with the given fetch (tests), or with a fresh transport that is closed when `fn` ends. */
export async function withTransport<T>(fetch: $Fetch | undefined, fn: (fetch: $Fetch) => Promise<T>): Promise<T> {
  if (fetch) return fn(fetch);
  const transport = createTransport();
  try {
    return await fn(transport.fetch);
  } finally {
    await transport.close();
  }
}
