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

/**
 * A project on the server database with EVENTS licenses that expired the day before NOW, migrated and imported. With
 * the reference's abandon-at-once (retryWindowHours 0): the failing endpoint's four attempts per event are counted.
 */
async function project(server: ServerDatabase, tablePrefix: string, url: string, endpoints: object[] = [], events = EVENTS): Promise<string> {
  const cwd = tempDir();
  const config = {
    database: { url: server.url, tablePrefix },
    webhooks: { enabled: true, url, concurrency: 8, retryDelaysMs: [10, 20, 40], retryWindowHours: 0, endpoints },
  };
  fs.writeFileSync(path.join(cwd, 'license-manager.config.json'), JSON.stringify(config));
  const rows = Array.from({ length: events }, (_, index) => ({ license_code: `W-${String(index).padStart(5, '0')}`, expires_at: '2025-01-14T08:00:00Z' }));
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

  test(`${WORKERS} workers, three endpoints, one answering 503: exactly one delivery per event and endpoint`, async () => {
    const events = 500;
    receiver = await startReceiver();
    const crm = await startReceiver(() => ({ delayMs: 2, status: 200 }));
    const failing = await startReceiver(() => 503);
    try {
      const cwd = await project(
        server,
        'three_',
        receiver.url,
        [
          { name: 'crm', url: crm.url },
          { name: 'failing', url: failing.url },
        ],
        events,
      );
      const results = await Promise.all(Array.from({ length: WORKERS }, () => worker(cwd).done));
      // The failing endpoint's deliveries are abandoned: exit 3 for the workers that held some.
      for (const result of results) expect([[0, 3].includes(result.code ?? -1), result.stderr.includes('Error')]).toEqual([true, false]);
      const summaries = results.map((result) => JSON.parse(result.stdout) as { recorded: number; delivered: number; abandoned: number });
      expect(summaries.reduce((sum, summary) => sum + summary.recorded, 0)).toBe(events);
      expect(summaries.reduce((sum, summary) => sum + summary.delivered, 0)).toBe(2 * events);
      expect(summaries.reduce((sum, summary) => sum + summary.abandoned, 0)).toBe(events);
      // Counted at the receivers by id: one request per event at each, four attempts per event at the failing one.
      const perId = (r: Receiver) => {
        const counts = new Map<string, number>();
        for (const id of ids(r)) counts.set(id, (counts.get(id) ?? 0) + 1);
        return counts;
      };
      for (const r of [receiver, crm]) {
        expect(r.requests).toHaveLength(events);
        expect(new Set(perId(r).values())).toEqual(new Set([1]));
      }
      expect(new Set(perId(failing).values())).toEqual(new Set([4]));
      expect(new Set(ids(crm))).toEqual(new Set(ids(receiver)));
      expect(new Set(ids(failing))).toEqual(new Set(ids(receiver)));
    } finally {
      await crm.close();
      await failing.close();
    }
  }, 180_000);

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
    const log = JSON.parse(
      (await runCli(['deliveries', 'list', '--status', 'delivered', '--limit', String(EVENTS + 1), '--json'], { cwd })).stdout,
    ) as unknown[];
    expect(log).toHaveLength(EVENTS);
  }, 180_000);

  test('one worker SIGKILLed mid-run with three endpoints: nothing lost at any receiver, repeats only of its requests in flight', async () => {
    const events = 600;
    receiver = await startReceiver(() => ({ delayMs: 3, status: 200 }));
    const others = [await startReceiver(() => ({ delayMs: 3, status: 200 })), await startReceiver(() => ({ delayMs: 3, status: 200 }))];
    try {
      const cwd = await project(
        server,
        'killed3_',
        receiver.url,
        [
          { name: 'crm', url: others[0]!.url },
          { name: 'chat', url: others[1]!.url },
        ],
        events,
      );
      const workers = Array.from({ length: WORKERS }, () => worker(cwd));
      const all = () => receiver!.requests.length + others[0]!.requests.length + others[1]!.requests.length;
      const started = Date.now();
      while (all() < (3 * events) / 4 && Date.now() - started < 60_000) await new Promise((resolve) => setTimeout(resolve, 5));
      workers[0]!.child.kill('SIGKILL');
      const results = await Promise.all(workers.map((entry) => entry.done));
      expect(results[0]!.signal).toBe('SIGKILL');
      for (const result of results.slice(1)) expect([result.code, result.stderr]).toEqual([0, '']);
      const after = await runCli(['process-expirations', '--now', NOW, '--json'], { cwd, timeoutMs: 60_000 });
      expect(after.code).toBe(0);
      const everyId = new Set(ids(receiver));
      expect(everyId.size).toBe(events);
      for (const r of [receiver, ...others]) {
        const received = ids(r);
        expect(new Set(received)).toEqual(everyId);
        const counts = new Map<string, number>();
        for (const id of received) counts.set(id, (counts.get(id) ?? 0) + 1);
        expect(Math.max(...counts.values())).toBeLessThanOrEqual(2);
        // Each endpoint has a claim window of its own (concurrency 8 x 16 = 128 deliveries).
        expect(received.length - events).toBeLessThanOrEqual(128);
      }
    } finally {
      await Promise.all(others.map((other) => other.close()));
    }
  }, 180_000);
});
