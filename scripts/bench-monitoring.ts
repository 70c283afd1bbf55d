/**
 * `npm run bench:monitoring`: what monitoring costs, measured with the built CLI in child processes.
 *
 *   npm run bench:monitoring -- [--part stats|startup|tracing|all] [--attempts 1000000] [--events 10000] [--repeat 10]
 *
 * - stats: a SQLite delivery log of N attempts (three endpoints; successes, 4xx/429/5xx, timeouts, refused
 *   connections), then `deliveries stats` and `deliveries stats --since 24h --endpoint crm`, median of 3.
 * - startup: `--help` and a nothing-due `process-expirations`, without and with monitoring (ping to a local
 *   receiver, a textfile, OTEL_* pointing at a local OTLP receiver), median of --repeat each.
 * - tracing: a run of --events due events to a local receiver with tracing off and on, alternated, median of 3.
 * Not a test: it asserts nothing, it measures. Every loop is bounded by its count and each child by a time limit.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import SQLite from 'better-sqlite3';
import { openDatabase } from '../src/storage/open-database.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = path.join(root, 'bin', 'license-manager.js');
const CHILD_TIME_LIMIT_MS = 10 * 60 * 1000;

const { values } = parseArgs({
  options: {
    part: { type: 'string', default: 'all' },
    attempts: { type: 'string', default: '1000000' },
    events: { type: 'string', default: '10000' },
    repeat: { type: 'string', default: '10' },
    keep: { type: 'boolean', default: false },
  },
});
const attempts = Math.max(4, Math.floor(Number(values.attempts)));
const events = Math.max(1, Math.floor(Number(values.events)));
const repeat = Math.min(100, Math.max(1, Math.floor(Number(values.repeat))));

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
const median = (list: number[]) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)]!;

function timeCli(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<{ ms: number; code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const childEnv = { ...process.env, ...env };
    delete childEnv.NODE_OPTIONS;
    const child = spawn(process.execPath, [bin, ...args], { cwd, env: childEnv });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIME_LIMIT_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ ms: performance.now() - started, code, stdout, stderr });
    });
  });
}

/** A receiver on 127.0.0.1 answering 200 to everything; counts requests. */
async function receiver(): Promise<{ url: string; count: () => number; close: () => Promise<void> }> {
  let count = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      count += 1;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/`, count: () => count, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

function workspace(config: Record<string, unknown>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lm-bench-monitoring-'));
  fs.writeFileSync(path.join(dir, 'license-manager.config.json'), JSON.stringify({ database: { filename: './bench.sqlite' }, ...config }), { mode: 0o600 });
  return dir;
}

async function migrated(dir: string): Promise<string> {
  const file = path.join(dir, 'bench.sqlite');
  const db = await openDatabase({ dialect: 'sqlite', filename: file, tablePrefix: '', label: file });
  await db.destroy();
  return file;
}

async function statsPart(): Promise<Record<string, unknown>> {
  const dir = workspace({
    webhooks: {
      enabled: false,
      endpoints: [
        { name: 'crm', url: 'https://crm.example/hook' },
        { name: 'chat', url: 'https://chat.example/hook' },
      ],
    },
  });
  const file = await migrated(dir);
  const sqlite = new SQLite(file);
  const endpoints = ['default', 'crm', 'chat'];
  const perDelivery = 4;
  const deliveries = Math.ceil(attempts / perDelivery);
  const start = Date.parse('2024-01-01T00:00:00Z');
  const insertDelivery = sqlite.prepare(
    "insert into webhook_deliveries (id, event_id, event_key, event_type, license_id, body, status, attempts, created_at, endpoint) values (?, ?, ?, 'license.expiring', ?, '{}', ?, ?, ?, ?)",
  );
  const insertAttempt = sqlite.prepare(
    'insert into webhook_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error) values (?, ?, ?, ?, ?, ?)',
  );
  const generated = performance.now();
  sqlite.transaction(() => {
    let written = 0;
    for (let id = 1; id <= deliveries && written < attempts; id += 1) {
      const endpoint = endpoints[id % endpoints.length]!;
      const at = start + Math.floor((id / deliveries) * 365 * 86_400_000);
      const status = id % 97 === 0 ? 'abandoned' : id % 89 === 0 ? 'pending' : 'delivered';
      insertDelivery.run(id, `evt-${id}`, `key-${id}`, id, status, perDelivery, iso(at), endpoint);
      for (let attempt = 1; attempt <= perDelivery && written < attempts; attempt += 1, written += 1) {
        const kind = (id * 7 + attempt) % 20;
        const [code, error] =
          attempt === perDelivery && status === 'delivered'
            ? [200, null]
            : kind < 6
              ? [500, null]
              : kind < 8
                ? [429, null]
                : kind < 10
                  ? [404, null]
                  : kind < 13
                    ? [null, 'timed out after 10000 ms']
                    : kind < 15
                      ? [null, 'connect ECONNREFUSED 10.0.0.7:443']
                      : [503, null];
        insertAttempt.run(id, attempt, iso(at + attempt * 1000), code === null ? 10_000 : 20 + ((id * 31 + attempt * 17) % 900), code, error);
      }
    }
  })();
  sqlite.close();
  const generateMs = performance.now() - generated;
  const runs: Record<string, number[]> = { all: [], recent: [], baseline: [] };
  for (let i = 0; i < 3; i += 1) {
    // What any command costs on this database (start-up, opening it): the part of the times below that is not the statistics.
    const baseline = await timeCli(['deliveries', 'list', '--limit', '1', '--json'], dir);
    if (baseline.code !== 0) throw new Error(`deliveries list failed: ${baseline.stderr}`);
    runs.baseline!.push(baseline.ms);
    const all = await timeCli(['deliveries', 'stats', '--json'], dir);
    if (all.code !== 0) throw new Error(`deliveries stats failed: ${all.stderr}`);
    runs.all!.push(all.ms);
    const recent = await timeCli(['deliveries', 'stats', '--since', '24h', '--endpoint', 'crm', '--json'], dir);
    if (recent.code !== 0) throw new Error(`deliveries stats --since failed: ${recent.stderr}`);
    runs.recent!.push(recent.ms);
  }
  const sample = JSON.parse((await timeCli(['deliveries', 'stats', '--json'], dir)).stdout) as { endpoints: Array<{ endpoint: string; attempts: number }> };
  if (values.keep) process.stderr.write(`kept ${dir}\n`);
  else fs.rmSync(dir, { recursive: true, force: true });
  return {
    attempts,
    generateMs: Math.round(generateMs),
    counted: sample.endpoints.reduce((sum, endpoint) => sum + endpoint.attempts, 0),
    baselineDeliveriesListMedianMs: Math.round(median(runs.baseline!)),
    statsAllMedianMs: Math.round(median(runs.all!)),
    statsSince24hOneEndpointMedianMs: Math.round(median(runs.recent!)),
  };
}

async function startupPart(): Promise<Record<string, unknown>> {
  const pings = await receiver();
  const otlp = await receiver();
  try {
    const plain = workspace({});
    await migrated(plain);
    const monitored = workspace({ monitoring: { ping: `${pings.url}ping/5e1d0a4c-93a2-4e55-9e5f-0d6a2f1b7c11`, textfile: './license_manager.prom' } });
    await migrated(monitored);
    const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url.replace(/\/$/, ''), OTEL_SERVICE_NAME: 'license-manager-bench' };
    const cases: Array<[string, string[], string, NodeJS.ProcessEnv]> = [
      ['--help, no monitoring', ['--help'], plain, {}],
      ['--help, OTEL_* set', ['--help'], plain, otel],
      ['nothing due, no monitoring', ['process-expirations'], plain, {}],
      ['nothing due, ping + textfile', ['process-expirations'], monitored, {}],
      ['nothing due, ping + textfile + OTEL_*', ['process-expirations'], monitored, otel],
    ];
    const times = new Map<string, number[]>(cases.map(([name]) => [name, []]));
    // Interleaved, so a slow moment of the machine falls on every case alike.
    for (let i = 0; i < repeat; i += 1) {
      for (const [name, args, dir, env] of cases) {
        const run = await timeCli(args, dir, env);
        if (run.code !== 0) throw new Error(`${name} exited ${run.code}: ${run.stderr}`);
        times.get(name)!.push(run.ms);
      }
    }
    return {
      repeat,
      medianMs: Object.fromEntries([...times].map(([name, list]) => [name, Math.round(median(list))])),
      pings: pings.count(),
      otlpRequests: otlp.count(),
    };
  } finally {
    await pings.close();
    await otlp.close();
  }
}

async function tracingPart(): Promise<Record<string, unknown>> {
  const hooks = await receiver();
  const otlp = await receiver();
  try {
    const times: Record<'off' | 'on', number[]> = { off: [], on: [] };
    for (let round = 0; round < 3; round += 1) {
      for (const mode of ['off', 'on'] as const) {
        const dir = workspace({ webhooks: { enabled: true, url: hooks.url, concurrency: 16 } });
        const file = await migrated(dir);
        const sqlite = new SQLite(file);
        const insert = sqlite.prepare(
          "insert into licenses (license_code, customer_id, email, product_id, product_name, status, expires_at, updates_until, created_at, updated_at) values (?, ?, ?, 'P', 'Product', 'active', ?, null, '2024-01-01T00:00:00Z', '2024-01-01T00:00:00Z')",
        );
        sqlite.transaction(() => {
          for (let i = 0; i < events; i += 1) insert.run(`LIC-${i}`, `C-${i}`, `c${i}@example.com`, '2025-01-14T10:00:00Z');
        })();
        sqlite.close();
        const env = mode === 'on' ? { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url.replace(/\/$/, '') } : {};
        const run = await timeCli(['process-expirations', '--now', '2025-01-15T08:00:00Z', '--quiet'], dir, env);
        if (run.code !== 0) throw new Error(`the ${mode} run exited ${run.code}: ${run.stderr}`);
        times[mode].push(run.ms);
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
    const off = median(times.off);
    const on = median(times.on);
    return {
      events,
      offMedianMs: Math.round(off),
      onMedianMs: Math.round(on),
      overheadPercent: Math.round(((on - off) / off) * 1000) / 10,
      webhooks: hooks.count(),
      otlpRequests: otlp.count(),
    };
  } finally {
    await hooks.close();
    await otlp.close();
  }
}

const parts: Record<string, () => Promise<Record<string, unknown>>> = { stats: statsPart, startup: startupPart, tracing: tracingPart };
const chosen = values.part === 'all' ? Object.keys(parts) : [values.part!];
const results: Record<string, unknown> = { node: process.version, cpus: os.cpus().length };
for (const name of chosen) {
  const part = parts[name];
  if (!part) throw new Error(`--part must be one of ${Object.keys(parts).join(', ')} or all`);
  results[name] = await part();
}
process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
