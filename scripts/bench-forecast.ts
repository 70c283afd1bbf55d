/**
 * `npm run bench:forecast`: builds a SQLite database of N licenses (default 1,000,000) with expiries spread over
 * two years around the forecast's first day, ten products of which two have their own schedules, after-expiry
 * days on, some update-support ends and some recorded notices, then times the built CLI's
 * `licenses forecast --days 30 --json` (and --days 365) as a child process, start to exit. Not a test: it
 * asserts nothing, it measures.
 *
 *   npm run bench:forecast -- [--licenses 1000000] [--days 30,365] [--runs 3] [--keep (the database, to profile)]
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import SQLite from 'better-sqlite3';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = path.join(root, 'bin', 'license-manager.js');
const NOW = '2025-01-15T08:00:00Z';
const DAY = 24 * 3600 * 1000;
// Each child process is bounded by this time limit.
const CHILD_TIME_LIMIT_MS = 10 * 60 * 1000;

const { values } = parseArgs({
  options: {
    licenses: { type: 'string', default: '1000000' },
    days: { type: 'string', default: '30,365' },
    runs: { type: 'string', default: '3' },
    keep: { type: 'boolean', default: false },
  },
});
const licenses = Number(values.licenses);
const runs = Number(values.runs);
const ranges = values.days.split(',').map(Number);

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'license-manager-forecast-bench-'));
try {
  fs.writeFileSync(
    path.join(dir, 'license-manager.config.json'),
    JSON.stringify({
      database: { filename: './bench.sqlite' },
      expirations: {
        warningDays: [30, 7, 1],
        afterExpiryDays: [3, 14],
        products: { 'PROD-1': { warningDays: [60, 14, 3], afterExpiryDays: [30] }, 'PROD-2': { enabled: false } },
      },
    }),
  );
  const migrate = spawnSync(process.execPath, [bin, 'migrate'], { cwd: dir, encoding: 'utf8' });
  if (migrate.status !== 0) throw new Error(`migrate failed: ${migrate.stderr}`);
  const started = Date.now();
  const sqlite = new SQLite(path.join(dir, 'bench.sqlite'));
  sqlite.pragma('journal_mode = WAL');
  const insert = sqlite.prepare(
    `insert into licenses (license_code, product_id, product_name, customer_id, email, status, expires_at, updates_until, created_at, updated_at)
     values (?, ?, 'Product', ?, ?, ?, ?, ?, '2024-01-01T00:00:00Z', '2024-01-01T00:00:00Z')`,
  );
  const record = sqlite.prepare(
    `insert into webhook_deliveries (event_id, event_key, event_type, license_id, event_instant, body, status, attempts, created_at, completed_at)
     values (?, ?, 'license.expiring', ?, ?, '{}', 'delivered', 1, ?, ?)`,
  );
  const start = Date.parse(NOW) - 365 * DAY;
  const fill = sqlite.transaction((from: number, to: number) => {
    for (let index = from; index < to; index += 1) {
      // Spread over two years around NOW; every tenth a lifetime license, every twentieth suspended.
      const expires = index % 10 === 0 ? null : start + ((index * 7919) % 730) * DAY + (index % 24) * 3_600_000;
      const updates = index % 4 === 0 && expires !== null ? expires - 90 * DAY : null;
      const status = index % 20 === 1 ? 'suspended' : expires !== null && expires < Date.parse(NOW) ? 'expired' : 'active';
      const info = insert.run(
        `LIC-${index}`,
        `PROD-${index % 10}`,
        `CUST-${index}`,
        `c${index}@example.com`,
        status,
        expires === null ? null : iso(expires),
        updates === null ? null : iso(updates),
      );
      // A 30-day warning already recorded for some of those expiring in the coming month.
      if (expires !== null && expires > Date.parse(NOW) && expires < Date.parse(NOW) + 30 * DAY && index % 3 === 0) {
        const day = iso(expires).slice(0, 10);
        record.run(`bench-${index}`, `license.expiring:${info.lastInsertRowid}:${day}:30d`, info.lastInsertRowid, iso(expires), NOW, NOW);
      }
    }
  });
  for (let from = 0; from < licenses; from += 50_000) fill(from, Math.min(licenses, from + 50_000));
  sqlite.exec('analyze');
  sqlite.close();
  console.log(`built ${licenses.toLocaleString('en')} licenses in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  // CPU time (user + system) beside wall time: on a shared machine the wall time also counts waiting for a core.
  const timeBin = fs.existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  console.log(
    `load average before the timed runs: ${os
      .loadavg()
      .map((load) => load.toFixed(2))
      .join(', ')} on ${os.cpus().length} cores`,
  );
  for (const days of ranges) {
    const times: number[] = [];
    const cpu: number[] = [];
    const memory: number[] = [];
    let total = 0;
    for (let run = 0; run < runs; run += 1) {
      const args = [bin, 'licenses', 'forecast', '--now', NOW, '--days', String(days), '--json'];
      const before = process.hrtime.bigint();
      const child = timeBin
        ? spawnSync(timeBin, ['-f', 'TIME %U %S %M', process.execPath, ...args], {
            cwd: dir,
            encoding: 'utf8',
            maxBuffer: 64 * 1024 * 1024,
            timeout: CHILD_TIME_LIMIT_MS,
          })
        : spawnSync(process.execPath, args, { cwd: dir, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: CHILD_TIME_LIMIT_MS });
      times.push(Number(process.hrtime.bigint() - before) / 1e6);
      if (child.status !== 0) throw new Error(`forecast failed (${child.status}): ${child.stderr}`);
      const measured = /TIME ([\d.]+) ([\d.]+) (\d+)/.exec(child.stderr);
      if (measured) {
        cpu.push((Number(measured[1]) + Number(measured[2])) * 1000);
        memory.push(Number(measured[3]) / 1024);
      }
      const result = JSON.parse(child.stdout) as { days: Array<{ counts: Record<string, number> }> };
      total = result.days.reduce((sum, day) => sum + Object.values(day.counts).reduce((a, b) => a + b, 0), 0);
    }
    times.sort((a, b) => a - b);
    console.log(
      `licenses forecast --days ${days}: ${total.toLocaleString('en')} notices; wall time per run (process start to exit) median ${(median(times) / 1000).toFixed(2)} s, ` +
        `min ${(times[0]! / 1000).toFixed(2)} s, max ${(times.at(-1)! / 1000).toFixed(2)} s` +
        (cpu.length > 0 ? `; CPU time (user + system) median ${(median(cpu) / 1000).toFixed(2)} s, peak memory ${Math.round(median(memory))} MiB` : ''),
    );
  }
} finally {
  if (values.keep) console.log(`kept ${dir}`);
  else fs.rmSync(dir, { recursive: true, force: true });
}
