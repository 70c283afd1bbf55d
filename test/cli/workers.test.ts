import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { BIN, childEnv, runCli } from '../helpers/cli.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { createServerDatabase, testDialects, type ServerDatabase, type ServerDialect } from '../helpers/servers.js';
import { tempDir } from '../helpers/temp-dir.js';

const NOW = '2025-01-15T08:00:00Z';
const EVENTS = 2000;
const WORKERS = 4;
const servers = testDialects().filter((dialect): dialect is ServerDialect => dialect !== 'sqlite');

let receiver: Receiver | undefined;
afterEach(async () => {
  await receiver?.close();
  receiver = undefined;
});

/** A project on the server database with EVENTS licenses that expired the day before NOW, migrated and imported. */
async function project(server: ServerDatabase, tablePrefix: string, url: string): Promise<string> {
  const cwd = tempDir();
  const config = { database: { url: server.url, tablePrefix }, webhooks: { enabled: true, url, concurrency: 8, retryDelaysMs: [10, 20, 40] } };
  fs.writeFileSync(path.join(cwd, 'license-manager.config.json'), JSON.stringify(config));
  const rows = Array.from({ length: EVENTS }, (_, index) => ({ license_code: `W-${String(index).padStart(5, '0')}`, expires_at: '2025-01-14T08:00:00Z' }));
  fs.writeFileSync(path.join(cwd, 'licenses.json'), JSON.stringify(rows));
  expect((await runCli(['migrate'], { cwd })).code).toBe(0);
  expect((await runCli(['licenses', 'import', 'licenses.json'], { cwd, timeoutMs: 60_000 })).code).toBe(0);
  return cwd;
}

/** One worker: `process-expirations` as its own process. */
function worker(cwd: string) {
  const child = spawn(process.execPath, [BIN, 'process-expirations', '--now', NOW, '--json'], { cwd, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    }),
  );
  return { child, done };
}

const ids = (r: Receiver) => r.requests.map((request) => String(request.headers['x-webhook-id']));

if (servers.length === 0) test.skip('several workers on one server database (no server answered)', () => undefined);

describe.each(servers)('%s: several workers on one database', (dialect) => {
  let server: ServerDatabase;
  beforeAll(async () => {
    server = await createServerDatabase(dialect);
  });
  afterAll(async () => {
    await server.drop();
  });

  test(`${WORKERS} workers at once: ${EVENTS} events recorded once and delivered once`, async () => {
    receiver = await startReceiver();
    const cwd = await project(server, 'together_', receiver.url);
    const results = await Promise.all(Array.from({ length: WORKERS }, () => worker(cwd).done));
    for (const result of results) expect([result.code, result.stderr]).toEqual([0, '']);
    const summaries = results.map((result) => JSON.parse(result.stdout) as { recorded: number; delivered: number });
    expect(summaries.reduce((sum, summary) => sum + summary.recorded, 0)).toBe(EVENTS);
    expect(summaries.reduce((sum, summary) => sum + summary.delivered, 0)).toBe(EVENTS);
    // More than one worker did some of the sending (the claims are shared out, not taken by the first).
    expect(summaries.filter((summary) => summary.delivered > 0).length).toBeGreaterThan(1);
    expect(receiver.requests).toHaveLength(EVENTS);
    expect(new Set(ids(receiver)).size).toBe(EVENTS);
  }, 120_000);

  test('one worker SIGKILLed mid-run: nothing lost, repeats only of its requests in flight', async () => {
    // A little latency keeps the run going long enough to kill a worker in the middle of it.
    receiver = await startReceiver(() => ({ delayMs: 3, status: 200 }));
    const cwd = await project(server, 'killed_', receiver.url);
    const workers = Array.from({ length: WORKERS }, () => worker(cwd));
    const victim = workers[0]!;
    const started = Date.now();
    while (receiver.requests.length < EVENTS / 4 && Date.now() - started < 60_000) await new Promise((resolve) => setTimeout(resolve, 5));
    victim.child.kill('SIGKILL');
    const results = await Promise.all(workers.map((entry) => entry.done));
    expect(results[0]!.signal).toBe('SIGKILL');
    for (const result of results.slice(1)) expect([result.code, result.stderr]).toEqual([0, '']);

    // The next run on this host sees the dead worker's claims and sends what it held at once.
    const after = await runCli(['process-expirations', '--now', NOW, '--json'], { cwd, timeoutMs: 60_000 });
    expect(after.code).toBe(0);
    const received = ids(receiver);
    expect(new Set(received).size).toBe(EVENTS);
    // A repeat is a request the killed worker had sent but not yet recorded: each at most once more, and no
    // more of them than its claim window (concurrency 8 x 16 = 128 deliveries).
    const counts = new Map<string, number>();
    for (const id of received) counts.set(id, (counts.get(id) ?? 0) + 1);
    expect(Math.max(...counts.values())).toBeLessThanOrEqual(2);
    expect(received.length - EVENTS).toBeLessThanOrEqual(128);
    const log = JSON.parse((await runCli(['deliveries', 'list', '--status', 'delivered', '--limit', String(EVENTS + 1), '--json'], { cwd })).stdout) as unknown[];
    expect(log).toHaveLength(EVENTS);
  }, 180_000);
});
