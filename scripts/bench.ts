/**
 * `npm run bench`: builds a SQLite database of N licenses (about 1% due), starts a receiver on 127.0.0.1,
 * runs the built CLI's process-expirations against it, and compares with two bare loops posting the same
 * bodies, each signed with HMAC-SHA256, at the same concurrency to the same receiver: one through ofetch
 * (the CLI's client) and one straight through an undici `Pool` (what the transport allows at best). The Pool loop
 * runs twice: warm, in the receiver's process, and cold, in a process of its own beside the receiver, as the CLI
 * runs (bench-pool-child.ts); the CPU per event of that process and of the CLI's send phase (read from /proc, with
 * one worker) tell what a run adds to a bare client. The CLI's is read by the receiver at its first request and its
 * last, so it leaves out finding the events and the run's last writes; the loop's covers its whole loop; the
 * receiver's (this process, its RSS sampling included) covers the CLI's send phase, the receiver's own warm-up
 * with it. /proc counts in the kernel's ticks (10 ms), so a run of a few hundred events reads coarsely. Not a test:
 * it asserts nothing, it measures.
 *
 *   npm run bench -- [--licenses 1000000] [--due-percent 1] [--latency-ms 0] [--concurrency 8] [--out bench-results.json]
 *                    [--db postgres://…|mysql://…] [--workers 1] [--endpoints 1] [--startup-runs 10]
 *
 * `--db` runs it on a server database (which must exist) under a fresh table prefix, dropped afterwards;
 * `--workers N` starts N `process-expirations` processes at once for the timed run. `--endpoints N` adds N - 1
 * endpoints beside `default` (the same receiver, another path): every due event becomes N deliveries.
 * `--startup-runs N` times `--help`, `--version` and a nothing-due run N times each and reports the medians.
 * `--keep` leaves the SQLite database and its config in their directory (printed) for profiling runs by hand, with
 * `pristine.sqlite` beside them: the database as built, before any run (copy it over `bench.sqlite` and run `sync`
 * to run again: a copy not yet on disk makes the run's first sync write it all).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import SQLite from 'better-sqlite3';
import { sql, type Kysely } from 'kysely';
import { ofetch } from 'ofetch';
import { parseDatabaseUrl, type DatabaseTarget } from '../src/storage/database-target.js';
import type { Database } from '../src/storage/database.table.js';
import { openDatabase } from '../src/storage/open-database.js';
import { barePool, cpuTimes, loop, SECRET, signedHeaders, type CpuTimes } from './bench-loops.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = path.join(root, 'bin', 'license-manager.js');
const NOW = new Date('2025-01-15T08:00:00Z');
const DAY = 24 * 3600 * 1000;
// Every loop here is bounded: by the row count, and each child process by this time limit.
const CHILD_TIME_LIMIT_MS = 10 * 60 * 1000;

const USAGE = `npm run bench -- [options]   (or: node dist/scripts/bench.js [options], after npm run build)

  --licenses <n>        licenses in the database (default 1000000)
  --due-percent <p>     share of them with an event due (default 1)
  --latency-ms <ms>     how long the receiver takes to answer (default 0)
  --concurrency <n>     webhooks.concurrency, and the bare loops' (default 8)
  --db <url>            postgres://… or mysql://… instead of SQLite, under a fresh table prefix dropped afterwards
  --workers <n>         process-expirations processes started at once for the timed run (default 1)
  --endpoints <n>       endpoints in all, on the same receiver: every due event becomes n deliveries (default 1)
  --startup-runs <n>    runs of --help, --version and a nothing-due run, for their medians (default 10)
  --out <file>          where the results go as JSON (default bench-results.json)
  --keep                leave the SQLite database, pristine.sqlite and the config in their directory
  -h, --help            this text

The README's "Performance" section says what each row of the table means.`;

function parsedArguments() {
  try {
    return parseArgs({ options: OPTIONS });
  } catch (error) {
    process.stderr.write(`bench: ${(error as Error).message.split('\n')[0]}\n\n${USAGE}\n`);
    process.exit(2);
  }
}

const OPTIONS = {
  licenses: { type: 'string', default: '1000000' },
  'due-percent': { type: 'string', default: '1' },
  'latency-ms': { type: 'string', default: '0' },
  concurrency: { type: 'string', default: '8' },
  out: { type: 'string', default: 'bench-results.json' },
  db: { type: 'string' },
  workers: { type: 'string', default: '1' },
  endpoints: { type: 'string', default: '1' },
  'startup-runs': { type: 'string', default: '10' },
  keep: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;
const { values } = parsedArguments();
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
for (const name of ['startup-runs', 'workers', 'endpoints'] as const) {
  if (!/^[1-9]\d*$/.test(values[name])) {
    process.stderr.write(`bench: --${name} must be a whole number from 1, not "${values[name]}"\n`);
    process.exit(2);
  }
}
const startupRuns = Math.min(100, Number(values['startup-runs']));
const workers = Number(values.workers);
const endpointCount = Number(values.endpoints);
const licenses = Number(values.licenses);
const duePercent = Number(values['due-percent']);
const latencyMs = Number(values['latency-ms']);
const concurrency = Number(values.concurrency);
for (const [name, value] of Object.entries({ licenses, 'due-percent': duePercent, 'latency-ms': latencyMs, concurrency })) {
  if (!Number.isFinite(value) || value < 0) {
    process.stderr.write(`bench: --${name} must be a non-negative number, not "${values[name as keyof typeof values] as string}"\n`);
    process.exit(2);
  }
}

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

type BenchRow = [code: string, customer: string, email: string, expiresAt: string | null, updatesUntil: string | null];

/** Writes a file's cached pages to disk (fsync), so that no later sync pays for them. */
function flushToDisk(filename: string): void {
  const fd = fs.openSync(filename, 'r+');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** N licenses: `duePercent` of them with one event due at NOW (a third each kind), the rest not due. */
function* licenseRows(counter: { due: number }): Generator<BenchRow> {
  const dueEvery = duePercent > 0 ? Math.max(1, Math.round(100 / duePercent)) : Number.POSITIVE_INFINITY;
  for (let index = 0; index < licenses; index += 1) {
    let expires: number | null;
    let updates: number | null = null;
    if (index % dueEvery === 0) {
      const kind = counter.due % 3;
      counter.due += 1;
      expires = kind === 0 ? NOW.getTime() + 3 * DAY : kind === 1 ? NOW.getTime() - DAY : NOW.getTime() + 200 * DAY;
      if (kind === 2) updates = NOW.getTime() - DAY;
    } else {
      // Spread over the next 3 years, outside the due windows; every tenth one is a lifetime license.
      expires = index % 10 === 0 ? null : NOW.getTime() + (30 + (index % 1000)) * DAY;
    }
    yield [`LIC-${index}`, `CUST-${index}`, `customer${index}@example.com`, expires === null ? null : iso(expires), updates === null ? null : iso(updates)];
  }
}

/** Creates the schema and fills it; returns how many licenses have an event due. */
async function buildDatabase(target: DatabaseTarget): Promise<number> {
  const counter = { due: 0 };
  const db = await openDatabase(target, { migrate: true });
  if (target.dialect !== 'sqlite') {
    try {
      // Multi-row inserts of 1,000 (10 parameters each): far below the servers' 65,535 bound parameters.
      let batch: BenchRow[] = [];
      const flush = async () => {
        if (batch.length === 0) return;
        await db
          .insertInto('licenses')
          .values(
            batch.map(([license_code, customer_id, email, expires_at, updates_until]) => ({
              license_code,
              product_id: 'PROD-001',
              product_name: 'My Product',
              customer_id,
              email,
              status: 'active',
              expires_at,
              updates_until,
              created_at: '2024-01-01T00:00:00Z',
              updated_at: '2024-01-01T00:00:00Z',
            })),
          )
          .execute();
        batch = [];
      };
      for (const row of licenseRows(counter)) {
        batch.push(row);
        if (batch.length === 1000) await flush();
      }
      await flush();
      // Fresh statistics, as a production table has: the planner then uses the (status, date) indexes.
      await sql`analyze ${sql.raw(target.dialect === 'mysql' ? 'table ' : '')}${sql.table('licenses')}`.execute(db);
    } finally {
      await db.destroy();
    }
    return counter.due;
  }
  await db.destroy();
  const sqlite = new SQLite(target.filename);
  sqlite.pragma('journal_mode = WAL');
  const insert = sqlite.prepare(
    `insert into licenses (license_code, product_id, product_name, customer_id, email, status, expires_at, updates_until, created_at, updated_at)
     values (?, 'PROD-001', 'My Product', ?, ?, 'active', ?, ?, '2024-01-01T00:00:00Z', '2024-01-01T00:00:00Z')`,
  );
  const rows = licenseRows(counter);
  const fill = sqlite.transaction((count: number) => {
    for (let index = 0; index < count; index += 1) {
      const next = rows.next();
      if (next.done) return false;
      insert.run(...next.value);
    }
    return true;
  });
  while (fill(50_000));
  sqlite.close();
  return counter.due;
}

/** Drops every table a server bench created under its own prefix (those of later migrations too). */
async function dropServerTables(target: DatabaseTarget): Promise<void> {
  if (target.dialect === 'sqlite') return;
  const db = await openDatabase(target, { migrate: true });
  try {
    const schema = target.dialect === 'postgres' ? sql`current_schema()` : sql`database()`;
    const listed = await sql<{ name: string }>`select table_name as name from information_schema.tables where table_schema = ${schema}`.execute(db);
    let left = listed.rows.map((row) => row.name).filter((name) => name.startsWith(target.tablePrefix));
    // A table another one references goes after it: a few passes, each dropping what it can.
    for (let pass = 0; pass < 5 && left.length > 0; pass += 1) {
      const failed: string[] = [];
      for (const table of left) await sql`drop table if exists ${sql.id(table)}`.execute(db).catch(() => failed.push(table));
      left = failed;
    }
    if (left.length > 0) throw new Error(`still there: ${left.join(', ')}`);
  } finally {
    await db.destroy();
  }
}

/** The receiver counts requests and keeps the times of the first and the last one (the sending span). */
/**
 * The CLI process whose CPU the receiver reads (from /proc) as the first of `expected` requests comes in and as the
 * last does: its CPU in the send phase. Only with one worker.
 */
interface CpuWatch {
  pid: number;
  expected: number;
  first?: CpuTimes | null;
  last?: CpuTimes | null;
  /** The bench's own process (the receiver, and the sampling of peak RSS) over the same span, µs. */
  receiverFirstUs?: number;
  receiverLastUs?: number;
}

/** This process's CPU time so far (all threads), µs. */
const ownCpuUs = () => {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
};

function startReceiver(): Promise<{
  url: string;
  count: () => number;
  span: () => { firstMs: number; lastMs: number } | null;
  watch: (watch: CpuWatch | undefined) => void;
  close(): void;
}> {
  let watched: CpuWatch | undefined;
  let received = 0;
  let firstMs = 0;
  let lastMs = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received += 1;
      lastMs = performance.now();
      if (received === 1) firstMs = lastMs;
      if (watched && received === 1) {
        watched.first = cpuTimes(watched.pid);
        watched.receiverFirstUs = ownCpuUs();
      }
      if (watched && received === watched.expected) {
        watched.last = cpuTimes(watched.pid);
        watched.receiverLastUs = ownCpuUs();
      }
      if (latencyMs > 0) setTimeout(() => res.end('OK'), latencyMs);
      else res.end('OK');
    });
  });
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhook`,
        count: () => received,
        span: () => (received === 0 ? null : { firstMs, lastMs }),
        watch: (watch) => (watched = watch),
        close: () => {
          server.closeAllConnections();
          server.close();
        },
      }),
    ),
  );
}

interface Timed {
  wallMs: number;
  peakRssMb: number | null;
  code: number | null;
  stdout: string;
}

/** Runs the CLI (or another script, as the cold Pool loop); peak RSS is the kernel's high-water mark (VmHWM), read until the process exits. */
function timeScript(args: string[], cwd: string, script = bin, onStart?: (pid: number) => void): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    // BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the CLI runs.
    const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const child = spawn(process.execPath, [...(script === bin ? nodeArgs : []), script, ...args], { cwd, stdio: ['ignore', 'pipe', 'inherit'] });
    if (child.pid !== undefined) onStart?.(child.pid);
    let stdout = '';
    let peakKb: number | null = null;
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
    const sample = () => {
      try {
        const status = fs.readFileSync(`/proc/${child.pid}/status`, 'utf8');
        const match = /VmHWM:\s+(\d+) kB/.exec(status);
        if (match) peakKb = Math.max(peakKb ?? 0, Number(match[1]));
      } catch {
        // exited between samples, or no /proc here
      }
    };
    const sampler = setInterval(sample, 20);
    const limit = setTimeout(() => child.kill('SIGKILL'), CHILD_TIME_LIMIT_MS);
    child.on('error', reject);
    child.on('exit', () => sample());
    child.on('close', (code) => {
      clearInterval(sampler);
      clearTimeout(limit);
      resolve({ wallMs: performance.now() - started, peakRssMb: peakKb === null ? null : Math.round(peakKb / 1024), code, stdout });
    });
  });
}

/** The same bodies and headers, posted by a bare ofetch loop at the same concurrency: what the CLI's client allows. */
function bareOfetch(url: string, bodies: string[]): Promise<number> {
  return loop(bodies, concurrency, async (body, index) => {
    await ofetch.raw(url, { method: 'POST', body, headers: signedHeaders(body, index), retry: 0, redirect: 'manual', responseType: 'text' });
  });
}

/**
 * The bare Pool loop again, in a process of its own (bench-pool-child.ts): cold, and beside the receiver as the CLI
 * is, where the loop above runs warm in the receiver's own process. Its CPU per event is what a bare client costs.
 */
async function barePoolOwnProcess(url: string, bodies: readonly string[], dir: string): Promise<{ wallMs: number; cpu: CpuTimes | null }> {
  const file = path.join(dir, 'bodies.json');
  fs.writeFileSync(file, JSON.stringify(bodies));
  try {
    const child = await timeScript([url, file, String(concurrency)], dir, path.join(root, 'dist', 'scripts', 'bench-pool-child.js'));
    if (child.code !== 0) throw new Error(`the bare Pool loop's process exited with ${child.code}`);
    return JSON.parse(child.stdout) as { wallMs: number; cpu: CpuTimes | null };
  } finally {
    fs.rmSync(file, { force: true });
  }
}

/** The median wall time of `startupRuns` runs of the CLI with these arguments, in ms. */
async function medianCli(args: string[], cwd: string): Promise<{ medianMs: number; minMs: number; maxMs: number }> {
  const times: number[] = [];
  for (let run = 0; run < startupRuns; run += 1) times.push((await timeScript(args, cwd)).wallMs);
  times.sort((a, b) => a - b);
  const middle = Math.floor(times.length / 2);
  const medianMs = times.length % 2 === 1 ? times[middle]! : (times[middle - 1]! + times[middle]!) / 2;
  return { medianMs: Math.round(medianMs), minMs: Math.round(times[0]!), maxMs: Math.round(times[times.length - 1]!) };
}

/** The bench's database: a SQLite file in `dir`, or the --db server under a fresh table prefix. */
function benchTarget(dir: string): DatabaseTarget {
  const file = path.join(dir, 'bench.sqlite');
  if (!values.db) return { dialect: 'sqlite', filename: file, tablePrefix: '', label: file };
  const parsed = parseDatabaseUrl(values.db, `bench_${randomBytes(3).toString('hex')}_`);
  if ('problem' in parsed) throw new Error(`--db: ${parsed.problem}`);
  if ('sqlitePath' in parsed) return { dialect: 'sqlite', filename: path.resolve(parsed.sqlitePath), tablePrefix: '', label: parsed.sqlitePath };
  return parsed;
}

/** N workers at once; the run's wall time is the slowest one's, its peak RSS the largest. */
async function timeWorkers(args: string[], cwd: string, onStart?: (pid: number) => void): Promise<Timed & { delivered: number; abandoned: number }> {
  const started = performance.now();
  const runs = await Promise.all(Array.from({ length: workers }, () => timeScript(args, cwd, bin, workers === 1 ? onStart : undefined)));
  const summaries = runs.map((run) => JSON.parse(run.stdout) as { delivered: number; abandoned: number });
  return {
    wallMs: performance.now() - started,
    peakRssMb: Math.max(...runs.map((run) => run.peakRssMb ?? 0)),
    code: runs.find((run) => run.code !== 0)?.code ?? 0,
    stdout: runs[0]!.stdout,
    delivered: summaries.reduce((sum, summary) => sum + summary.delivered, 0),
    abandoned: summaries.reduce((sum, summary) => sum + summary.abandoned, 0),
  };
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'license-manager-bench-'));
  const target = benchTarget(dir);
  const receiver = await startReceiver();
  try {
    const database = target.dialect === 'sqlite' ? { filename: target.filename } : { url: target.url, tablePrefix: target.tablePrefix };
    const endpoints = Array.from({ length: endpointCount - 1 }, (_, index) => ({ name: `bench-${index + 2}`, url: `${receiver.url}-${index + 2}` }));
    const webhooks = { enabled: true, url: receiver.url, secret: SECRET, concurrency, ...(endpoints.length > 0 ? { endpoints } : {}) };
    // Private, as the CLI asks of a config file that holds a secret.
    fs.writeFileSync(path.join(dir, 'license-manager.config.json'), JSON.stringify({ database, webhooks }), { mode: 0o600 });
    console.error(`building ${licenses.toLocaleString('en')} licenses in ${target.label}${target.tablePrefix ? ` (tables ${target.tablePrefix}*)` : ''} ...`);
    const buildStarted = performance.now();
    const due = await buildDatabase(target);
    const buildMs = performance.now() - buildStarted;
    // The file as built is still in the page cache, unwritten: without this the timed run's first sync writes the
    // whole database (150 ms at 1M licenses), which a database in use for days never has to.
    if (target.dialect === 'sqlite') flushToDisk(target.filename);
    // A copy as built, before any run: `--keep`'s profiling runs by hand start again from it (see the header).
    if (values.keep && target.dialect === 'sqlite') fs.copyFileSync(target.filename, path.join(dir, 'pristine.sqlite'));

    const help = await medianCli(['--help'], dir);
    const version = await medianCli(['--version'], dir);
    const nothingDueArgs = ['process-expirations', '--now', '2020-01-01T00:00:00Z', '--json'];
    const nothingDue = await timeScript(nothingDueArgs, dir);
    const nothingDueMedian = await medianCli(nothingDueArgs, dir);
    const cpuWatch: CpuWatch = { pid: 0, expected: due * endpointCount };
    const run = await timeWorkers(['process-expirations', '--now', NOW.toISOString(), '--json'], dir, (pid) => {
      cpuWatch.pid = pid;
      receiver.watch(cpuWatch);
    });
    receiver.watch(undefined);
    const summary = { delivered: run.delivered, abandoned: run.abandoned };
    // The receiver's view of the timed run alone: from its first request to its last (start-up and finding the events excluded).
    const span = receiver.span();
    const sendingMs = span ? span.lastMs - span.firstMs : 0;
    const rerun = await timeScript(['process-expirations', '--now', NOW.toISOString(), '--json'], dir);

    const db: Kysely<Database> = await openDatabase(target);
    const bodies = (await db.selectFrom('webhook_deliveries').select('body').orderBy('id').execute()).map((row) => row.body);
    await db.destroy();
    const bareMs = bodies.length > 0 ? await bareOfetch(receiver.url, bodies) : 0;
    const poolMs = bodies.length > 0 ? await barePool(receiver.url, bodies, concurrency) : 0;
    const own = bodies.length > 0 ? await barePoolOwnProcess(receiver.url, bodies, dir) : null;

    const eventsPerSecond = summary.delivered / (run.wallMs / 1000);
    const sendingEventsPerSecond = sendingMs > 0 ? summary.delivered / (sendingMs / 1000) : 0;
    const bareEventsPerSecond = bodies.length > 0 ? bodies.length / (bareMs / 1000) : 0;
    const poolEventsPerSecond = bodies.length > 0 ? bodies.length / (poolMs / 1000) : 0;
    const ownEventsPerSecond = own ? bodies.length / (own.wallMs / 1000) : 0;
    // CPU per event in µs: of the CLI between the receiver's first and last request, of the bare loop in its process.
    const perEvent = (ms: number | undefined, count: number) => (ms === undefined || count === 0 ? null : Math.round((ms * 1000) / count));
    const sendCpu =
      cpuWatch.first && cpuWatch.last ? { allMs: cpuWatch.last.allMs - cpuWatch.first.allMs, mainMs: cpuWatch.last.mainMs - cpuWatch.first.mainMs } : undefined;
    const receiverCpuUsPerEvent =
      cpuWatch.receiverFirstUs !== undefined && cpuWatch.receiverLastUs !== undefined && summary.delivered > 0
        ? Math.round((cpuWatch.receiverLastUs - cpuWatch.receiverFirstUs) / summary.delivered)
        : null;
    const sendCpuUsPerEvent = perEvent(sendCpu?.allMs, summary.delivered);
    // The most events/s this machine's cores could run with the CLI and the receiver each costing what they did, were
    // the work spread over the cores perfectly: a bound on the send phase, whatever the client.
    const cpuBound =
      sendCpuUsPerEvent !== null && receiverCpuUsPerEvent !== null ? Math.round((os.cpus().length * 1e6) / (sendCpuUsPerEvent + receiverCpuUsPerEvent)) : null;
    // And the most one JavaScript thread can do at the main thread's CPU per event, where a run's own work of an
    // event (the engine, the HTTP client, the database driver) all runs: a bound whatever the cores.
    const mainThreadCpuUsPerEvent = perEvent(sendCpu?.mainMs, summary.delivered);
    const mainThreadBound = mainThreadCpuUsPerEvent ? Math.round(1e6 / mainThreadCpuUsPerEvent) : null;
    const ratio = (value: number, to: number) => (to > 0 && value > 0 ? +(value / to).toFixed(2) : null);
    const idealMs = latencyMs > 0 ? (summary.delivered * latencyMs) / concurrency : null;
    const results = {
      date: new Date().toISOString(),
      machine: { cpus: os.cpus().length, node: process.version },
      params: { licenses, duePercent, latencyMs, concurrency, workers, endpoints: endpointCount, database: target.dialect },
      buildSeconds: +(buildMs / 1000).toFixed(2),
      due,
      delivered: summary.delivered,
      abandoned: summary.abandoned,
      receiverGot: receiver.count(),
      run: { wallSeconds: +(run.wallMs / 1000).toFixed(2), eventsPerSecond: Math.round(eventsPerSecond), peakRssMb: run.peakRssMb },
      sending: {
        seconds: +(sendingMs / 1000).toFixed(2),
        eventsPerSecond: sendingMs > 0 ? Math.round(sendingEventsPerSecond) : null,
        cpuUsPerEvent: sendCpuUsPerEvent,
        mainThreadCpuUsPerEvent,
        receiverCpuUsPerEvent,
        cpuBoundEventsPerSecond: cpuBound,
        mainThreadBoundEventsPerSecond: mainThreadBound,
      },
      bareOfetch: { wallSeconds: +(bareMs / 1000).toFixed(2), eventsPerSecond: Math.round(bareEventsPerSecond) },
      barePool: { wallSeconds: +(poolMs / 1000).toFixed(2), eventsPerSecond: Math.round(poolEventsPerSecond) },
      barePoolOwnProcess: own && {
        wallSeconds: +(own.wallMs / 1000).toFixed(2),
        eventsPerSecond: Math.round(ownEventsPerSecond),
        cpuUsPerEvent: perEvent(own.cpu?.allMs, bodies.length),
        mainThreadCpuUsPerEvent: perEvent(own.cpu?.mainMs, bodies.length),
      },
      ratioToBareOfetch: ratio(eventsPerSecond, bareEventsPerSecond),
      sendingRatioToBareOfetch: ratio(sendingEventsPerSecond, bareEventsPerSecond),
      ratioToBarePool: ratio(eventsPerSecond, poolEventsPerSecond),
      sendingRatioToBarePool: ratio(sendingEventsPerSecond, poolEventsPerSecond),
      ratioToBarePoolOwnProcess: ratio(eventsPerSecond, ownEventsPerSecond),
      sendingRatioToBarePoolOwnProcess: ratio(sendingEventsPerSecond, ownEventsPerSecond),
      ratioToIdealLatency: idealMs ? +(idealMs / run.wallMs).toFixed(2) : null,
      nothingDue: { wallSeconds: +(nothingDue.wallMs / 1000).toFixed(2), peakRssMb: nothingDue.peakRssMb, ...nothingDueMedian },
      rerunNothingNew: { wallSeconds: +(rerun.wallMs / 1000).toFixed(2) },
      startupRuns,
      help,
      version,
      loadAverage: os.loadavg().map((load) => +load.toFixed(2)),
    };
    const cpuPerEvent = (measured: { cpuUsPerEvent: number | null; mainThreadCpuUsPerEvent: number | null } | null) =>
      measured?.cpuUsPerEvent == null ? '-' : `${measured.cpuUsPerEvent} µs (main thread ${measured.mainThreadCpuUsPerEvent})`;
    const spread = (timed: { medianMs: number; minMs: number; maxMs: number }) =>
      `${timed.medianMs} ms${startupRuns > 1 ? ` (median of ${startupRuns}, ${timed.minMs} to ${timed.maxMs})` : ''}`;
    const rows: Array<[string, string]> = [
      ['database', `${target.dialect}${workers > 1 ? `, ${workers} workers` : ''}${endpointCount > 1 ? `, ${endpointCount} endpoints` : ''}`],
      ['licenses', licenses.toLocaleString('en')],
      ['events due / delivered', `${due} / ${summary.delivered}`],
      ['process-expirations wall time', `${results.run.wallSeconds} s`],
      ['events/s (whole run)', String(results.run.eventsPerSecond)],
      ['events/s (first to last request)', `${results.sending.eventsPerSecond} (${results.sending.seconds} s)`],
      ['bare ofetch loop events/s', String(results.bareOfetch.eventsPerSecond)],
      ['bare undici Pool loop events/s', String(results.barePool.eventsPerSecond)],
      ['whole run / bare ofetch, / bare Pool', `${results.ratioToBareOfetch}, ${results.ratioToBarePool}`],
      ['send phase / bare ofetch, / bare Pool', `${results.sendingRatioToBareOfetch}, ${results.sendingRatioToBarePool}`],
      ['bare Pool loop, own process (cold) events/s', String(results.barePoolOwnProcess?.eventsPerSecond ?? '-')],
      ['whole run, send phase / cold Pool loop', `${results.ratioToBarePoolOwnProcess}, ${results.sendingRatioToBarePoolOwnProcess}`],
      ['CPU per event: send phase; cold Pool loop', `${cpuPerEvent(results.sending)}; ${cpuPerEvent(results.barePoolOwnProcess)}`],
      ['receiver CPU per event', `${results.sending.receiverCpuUsPerEvent ?? '-'} µs (the receiver warms up during the run)`],
      [
        'bounds: cores / (CLI + receiver), 1 / main thread',
        `${results.sending.cpuBoundEventsPerSecond ?? '-'}, ${results.sending.mainThreadBoundEventsPerSecond ?? '-'} events/s`,
      ],
      ...(idealMs ? ([['ratio to ideal N x latency / concurrency', String(results.ratioToIdealLatency)]] as Array<[string, string]>) : []),
      ['peak RSS', `${results.run.peakRssMb} MB`],
      ['nothing due', spread(nothingDueMedian)],
      ['nothing due, peak RSS', `${results.nothingDue.peakRssMb} MB`],
      ['rerun, nothing new', `${results.rerunNothingNew.wallSeconds} s`],
      ['--help', spread(help)],
      ['--version', spread(version)],
      ['load average (1, 5, 15 min)', results.loadAverage.join(', ')],
    ];
    const width = Math.max(...rows.map(([label]) => label.length));
    console.log(rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`).join('\n'));
    fs.writeFileSync(path.resolve(values.out!), `${JSON.stringify(results, null, 2)}\n`);
    console.log(`\nresults written to ${path.resolve(values.out!)}`);
    if (run.code !== 0 || summary.delivered !== due * endpointCount) process.exitCode = 1;
  } finally {
    receiver.close();
    await dropServerTables(target).catch((error: unknown) => console.error(`could not drop the bench tables ${target.tablePrefix}*: ${String(error)}`));
    if (values.keep && target.dialect === 'sqlite') console.error(`kept ${dir}`);
    else fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
