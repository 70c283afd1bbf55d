import { expect, test } from '@jest/globals';
import { runCli } from '../helpers/cli.js';
import { startCli } from '../helpers/project.js';
import type { Receiver } from '../helpers/receiver.js';
import { expiredLicenses, forEachDialect, receiverFor } from '../helpers/workspace.js';

const NOW = '2025-01-15T08:00:00Z';
// Enough that every worker claims several windows (concurrency 8 x 16 = 128 deliveries each) while the others do.
const EVENTS = 1000;
const WORKERS = 4;

/** One worker: `process-expirations` as its own process. */
const worker = (cwd: string) => startCli(['process-expirations', '--now', NOW, '--json'], cwd);

const ids = (r: Receiver) => r.requests.map((request) => String(request.headers['x-webhook-id']));

forEachDialect(
  'several workers on one database',
  ({ project }) => {
    /**
     * A project with `events` licenses that expired the day before NOW, imported. With the reference's abandon-at-once
     * (retryWindowHours 0) and the tool's own timeout: the failing endpoint's four attempts per event are counted.
     */
    const workersProject = async (receiver: Receiver, endpoints: object[] = [], events = EVENTS) =>
      (
        await project({
          receiver,
          config: { webhooks: { enabled: true, concurrency: 8, retryDelaysMs: [10, 20, 40], retryWindowHours: 0, timeoutMs: undefined, endpoints } },
          licenses: expiredLicenses(events, 'W-', 5),
        })
      ).dir;

    test(`${WORKERS} workers at once: ${EVENTS} events recorded once and delivered once`, async () => {
      const receiver = await receiverFor();
      const cwd = await workersProject(receiver);
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
      const events = 300;
      const receiver = await receiverFor();
      const crm = await receiverFor(() => ({ delayMs: 2, status: 200 }));
      const failing = await receiverFor(() => 503);
      const cwd = await workersProject(
        receiver,
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
    }, 180_000);

    test('one worker SIGKILLed mid-run: nothing lost, repeats only of its requests in flight', async () => {
      // A little latency keeps the run going long enough to kill a worker in the middle of it.
      const receiver = await receiverFor(() => ({ delayMs: 3, status: 200 }));
      const cwd = await workersProject(receiver);
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
      const receiver = await receiverFor(() => ({ delayMs: 3, status: 200 }));
      const others = [await receiverFor(() => ({ delayMs: 3, status: 200 })), await receiverFor(() => ({ delayMs: 3, status: 200 }))];
      const cwd = await workersProject(
        receiver,
        [
          { name: 'crm', url: others[0]!.url },
          { name: 'chat', url: others[1]!.url },
        ],
        events,
      );
      const workers = Array.from({ length: WORKERS }, () => worker(cwd));
      const all = () => receiver.requests.length + others[0]!.requests.length + others[1]!.requests.length;
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
    }, 180_000);
  },
  { servers: true },
);
