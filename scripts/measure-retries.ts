/**
 * `npm run build && node dist/scripts/measure-retries.js`: the numbers of retries across runs, on SQLite in a
 * temp dir, with receivers on 127.0.0.1. Not a test: it asserts nothing, it measures and prints JSON.
 *
 *   1. 1,000 events to a receiver that refuses connections: run time, attempts made, deferred and abandoned.
 *   2. The same 1,000 once it is back, at the next due run (the engine's clock 10 minutes on): delivered, duplicates.
 *   3. 10,000 events to a receiver answering 429 with Retry-After: 1 for its first 2 s: runs (each when the
 *      deferred ones are due), requests, delivered, duplicates.
 *
 *   node dist/scripts/measure-retries.js [--events 1000] [--throttled 10000]
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import type { Clock } from '../src/clock.js';
import { withContext } from '../src/commands/context.js';
import { processExpirations } from '../src/commands/process-expirations.js';
import { upsertLicenses } from '../src/storage/licenses.repository.js';

const { values } = parseArgs({ options: { events: { type: 'string', default: '1000' }, throttled: { type: 'string', default: '10000' } } });
const EVENTS = Math.max(1, Math.min(100_000, Math.floor(Number(values.events))));
const THROTTLED = Math.max(1, Math.min(100_000, Math.floor(Number(values.throttled))));
// Every loop is bounded: runs by count, each phase by this time.
const MAX_RUNS = 20;
const PHASE_LIMIT_MS = 5 * 60 * 1000;

interface Receiver {
  port: number;
  /** Event ids answered 2xx, in order. */
  acknowledged: string[];
  requests: number;
  close(): Promise<void>;
}

function startReceiver(port: number, reply: (startedMs: number) => { status: number; headers?: Record<string, string> }): Promise<Receiver> {
  const started = Date.now();
  const receiver: Receiver = { port, acknowledged: [], requests: 0, close: async () => undefined };
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      receiver.requests += 1;
      const answer = reply(Date.now() - started);
      if (answer.status >= 200 && answer.status < 300) receiver.acknowledged.push(String(req.headers['x-webhook-id']));
      res.writeHead(answer.status, answer.headers).end();
    });
  });
  return new Promise((resolve) =>
    server.listen(port, '127.0.0.1', () => {
      receiver.port = (server.address() as AddressInfo).port;
      receiver.close = () => new Promise((done) => server.close(() => done()));
      server.unref();
      resolve(receiver);
    }),
  );
}

/** A port nothing listens on: connections are refused. */
async function freePort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function project(port: number): { dir: string; config: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lm-retries-'));
  const config = path.join(dir, 'license-manager.config.json');
  fs.writeFileSync(
    config,
    JSON.stringify({ database: { filename: './m.sqlite' }, webhooks: { enabled: true, url: `http://127.0.0.1:${port}/hook`, retryWindowHours: 72 } }),
    { mode: 0o600 },
  );
  return { dir, config };
}

async function seed(where: { dir: string; config: string }, count: number, now: Date): Promise<void> {
  const yesterday = new Date(now.getTime() - 86_400_000).toISOString().slice(0, 19) + 'Z';
  await withContext(
    { config: where.config, cwd: where.dir, env: {} },
    async (context) =>
      void (await upsertLicenses(
        context.db,
        Array.from({ length: count }, (_, index) => ({
          license_code: `M-${index}`,
          product_id: null,
          product_name: null,
          customer_id: null,
          email: null,
          status: 'active',
          expires_at: yesterday,
          updates_until: null,
        })),
        now.toISOString().slice(0, 19) + 'Z',
      )),
    { migrate: true },
  );
}

async function run(where: { dir: string; config: string }, now: Date, clockAt: Date) {
  const startedReal = Date.now();
  // The engine's clock starts at `clockAt` and runs in real time: the cross-run backoff reads it.
  const clock: Clock = { now: () => new Date(clockAt.getTime() + (Date.now() - startedReal)) };
  return withContext({ config: where.config, cwd: where.dir, env: {} }, async (context) => {
    const result = await processExpirations(context, { now, clock });
    const [attempts] = (await sql<{ n: number }>`select count(*) as n from webhook_attempts`.execute(context.db)).rows;
    return { ms: Date.now() - startedReal, result, attempts: Number(attempts?.n ?? 0) };
  });
}

const duplicates = (ids: readonly string[]) => ids.length - new Set(ids).size;

async function main(): Promise<void> {
  const now = new Date();
  // 1 and 2: refused, then back.
  const port = await freePort();
  const where = project(port);
  await seed(where, EVENTS, now);
  const down = await run(where, now, now);
  const receiver = await startReceiver(port, () => ({ status: 200 }));
  const back = await run(where, now, new Date(now.getTime() + 10 * 60_000));
  await receiver.close();

  // 3: 429 with Retry-After: 1 for the first 2 s; then each run when its deferred ones are due.
  const throttledPort = await freePort();
  const throttledWhere = project(throttledPort);
  await seed(throttledWhere, THROTTLED, now);
  const throttled = await startReceiver(throttledPort, (elapsed) => (elapsed < 2000 ? { status: 429, headers: { 'retry-after': '1' } } : { status: 200 }));
  const runs: Array<{ ms: number; delivered: number; deferred: number; abandoned: number }> = [];
  const phaseStart = Date.now();
  let clockAt = now;
  for (let index = 0; index < MAX_RUNS && Date.now() - phaseStart < PHASE_LIMIT_MS; index += 1) {
    const next = await run(throttledWhere, now, clockAt);
    runs.push({ ms: next.ms, delivered: next.result.delivered, deferred: next.result.deferred, abandoned: next.result.abandoned });
    if (next.result.waiting.length === 0) break;
    clockAt = new Date(clockAt.getTime() + next.ms + 2000);
  }
  await throttled.close();

  process.stdout.write(
    `${JSON.stringify(
      {
        refused: {
          events: EVENTS,
          runMs: down.ms,
          attempts: down.attempts,
          deferred: down.result.deferred,
          abandoned: down.result.abandoned,
          exitCircuit: down.result.circuits.default?.state,
        },
        back: {
          runMs: back.ms,
          delivered: back.result.delivered,
          abandoned: back.result.abandoned,
          requests: receiver.requests,
          acknowledged: receiver.acknowledged.length,
          duplicates: duplicates(receiver.acknowledged),
        },
        throttled: {
          events: THROTTLED,
          runs,
          requests: throttled.requests,
          acknowledged: throttled.acknowledged.length,
          uniqueAcknowledged: new Set(throttled.acknowledged).size,
          duplicates: duplicates(throttled.acknowledged),
        },
      },
      null,
      2,
    )}\n`,
  );
  for (const dir of [where.dir, throttledWhere.dir]) fs.rmSync(dir, { recursive: true, force: true });
}

await main();
