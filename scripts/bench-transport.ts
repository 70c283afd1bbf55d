/**
 * `npm run bench:transport`: how fast the HTTP client alone can go, with no database and no engine, warmed up.
 * In one process with its receiver on 127.0.0.1 (as the bare Pool loop of `npm run bench` is), `--rounds` rounds of
 * `--events` signed bodies at `--concurrency`, through four clients, after one pass of each that is not counted:
 *
 * - `pool`: an undici Pool, the limit (`npm run bench`'s bare loop, which runs once, cold);
 * - `transport`: ofetch over the run's transport (src/delivery/transport.ts), the request and nothing more;
 * - `postOnce`: the same with what each attempt adds (src/webhooks/post.ts: its two timeouts, the body prefix);
 * - `ofetch`: ofetch over Node's global fetch (the client before the run's transport).
 *
 * It tells how much of the limit the client the design keeps allows before any per-event work of a run. Not a
 * test: it asserts nothing, it measures. Every loop is bounded by the counts given (at most 100 rounds of 100,000).
 *
 *   npm run bench:transport -- [--events 4000] [--concurrency 8] [--rounds 3]
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHmac } from 'node:crypto';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { ofetch } from 'ofetch';
import { Pool } from 'undici';
import { createTransport } from '../src/delivery/transport.js';
import { postOnce } from '../src/webhooks/post.js';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '4000' },
    concurrency: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '3' },
  },
});
const bounded = (name: string, value: string | undefined, max: number) => {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1 || number > max) throw new Error(`--${name} must be a whole number from 1 to ${max}`);
  return number;
};
const events = bounded('events', values.events, 100_000);
const concurrency = bounded('concurrency', values.concurrency, 256);
const rounds = bounded('rounds', values.rounds, 100);

const bodies = Array.from({ length: events }, (_, index) =>
  JSON.stringify({ event: 'license.expiring', data: { license_id: index, license_code: `LIC-${index}`, expires_at: '2025-01-22T08:00:00Z', days_left: 7 } }),
);
const headers = (body: string, index: number): Record<string, string> => ({
  'Content-Type': 'application/json',
  Accept: 'application/json',
  'X-Webhook-Event': 'license.expiring',
  'X-Webhook-Id': `bench-${index}`,
  'User-Agent': 'LicenseManager-Webhook/1.0',
  'X-Webhook-Signature': createHmac('sha256', 'bench-secret').update(body).digest('hex'),
});

const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => res.end('OK'));
});
server.keepAliveTimeout = 60_000;
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhook`;

let failed = 0;
/** What a client's post ends with: a body counts only when the receiver answered 200. */
const answered = (status: number | null) => {
  if (status !== 200) failed += 1;
};

/** `concurrency` workers taking the next body until none is left; bodies a second. */
async function loop(post: (body: string, index: number) => Promise<void>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < events) {
        const index = next;
        next += 1;
        await post(bodies[index]!, index);
      }
    }),
  );
  return events / ((performance.now() - started) / 1000);
}

const pool = new Pool(new URL(url).origin, { connections: concurrency, keepAliveTimeout: 10_000 });
const transport = createTransport();
const clients: Record<string, (body: string, index: number) => Promise<void>> = {
  pool: async (body, index) => {
    const response = await pool.request({ path: '/webhook', method: 'POST', body, headers: headers(body, index) });
    await response.body.text();
    answered(response.statusCode);
  },
  transport: async (body, index) => {
    const response = await transport.fetch.raw(url, {
      method: 'POST',
      body,
      headers: headers(body, index),
      retry: 0,
      redirect: 'manual',
      ignoreResponseError: true,
      responseType: 'stream',
    });
    // The run's transport hands over undici's Node stream as the body: read to its end, as the Pool's is.
    await finished((response._data as unknown as Readable).resume());
    answered(response.status);
  },
  postOnce: async (body, index) => {
    const outcome = await postOnce(url, body, headers(body, index), { timeoutMs: 10_000, fetch: transport.fetch });
    answered(outcome.transportError === null ? outcome.statusCode : null);
  },
  ofetch: async (body, index) => {
    const response = await ofetch.raw(url, { method: 'POST', body, headers: headers(body, index), retry: 0, redirect: 'manual', responseType: 'text' });
    answered(response.status);
  },
};

try {
  // A pass of each client first, not counted: V8 optimizes what runs often, and the first pass of each is much slower.
  for (const post of Object.values(clients)) await loop(post);
  const best: Record<string, number> = {};
  const order = Object.entries(clients);
  for (let round = 1; round <= rounds; round += 1) {
    // Each round starts with another client, so none is always measured first.
    for (const [name, post] of [...order.slice(round % order.length), ...order.slice(0, round % order.length)]) {
      const perSecond = await loop(post);
      best[name] = Math.max(best[name] ?? 0, perSecond);
      console.log(`round ${round}  ${name.padEnd(9)} ${Math.round(perSecond).toLocaleString('en-US').padStart(7)} bodies/s`);
    }
  }
  if (failed > 0) throw new Error(`${failed} posts were not answered 200: the figures above count them and are not to be used`);
  console.log(`\nbest of ${rounds} rounds after a warm-up pass, ${events.toLocaleString('en-US')} bodies each, concurrency ${concurrency}:`);
  for (const [name, perSecond] of Object.keys(clients).map((client) => [client, best[client]!] as const)) {
    console.log(`${name.padEnd(9)} ${Math.round(perSecond).toLocaleString('en-US').padStart(7)} bodies/s  ${(perSecond / best.pool!).toFixed(2)} of the Pool`);
  }
} finally {
  await pool.close();
  await transport.close();
  server.close();
}
