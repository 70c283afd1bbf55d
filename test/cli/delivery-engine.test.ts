import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { afterEach, describe, expect, test } from '@jest/globals';
import { runCli } from '../helpers/cli.js';
import { query } from '../helpers/inspect.js';
import { projectWithEvents, startCli, until } from '../helpers/project.js';
import { startContinueServer, startReceiver, type Receiver, type Reply } from '../helpers/receiver.js';

const NOW = '2025-01-15T08:00:00Z';
// A short lease (test-only variable) so a paused run's claims lapse in about a second.
const SHORT_LEASE = { LICENSE_MANAGER_LEASE_MS: '1000' };
const receivers: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const receiver of receivers.splice(0)) await receiver.close();
});

async function receiverFor(reply: (request: { body: Buffer }, index: number) => Reply = () => 200): Promise<Receiver> {
  const receiver = await startReceiver(reply);
  receivers.push(receiver);
  return receiver;
}

const idsOf = (receiver: Receiver, from = 0, to = receiver.requests.length) => receiver.requests.slice(from, to).map((request) => String(request.headers['x-webhook-id']));
const duplicatesIn = (ids: string[]) => ids.filter((id, index) => ids.indexOf(id) !== index);

describe('recovery at scale', () => {
  test('deliveries retry --abandoned with more abandoned deliveries than SQLite has variables starts sending at once; a stop says how many are left', async () => {
    const receiver = await receiverFor();
    const { cwd, db } = await projectWithEvents(0, { url: receiver.url, concurrency: 8 });
    expect((await runCli(['migrate'], { cwd })).code).toBe(0);
    // 33,000 > 32,766, SQLite's limit of bound variables in one statement.
    const total = 33_000;
    const writer = new SQLite(db);
    const insert = writer.prepare(
      "insert into webhook_deliveries (event_id, event_key, event_type, body, status, attempts, last_status_code, created_at, completed_at) values (?, ?, 'license.expired', ?, 'abandoned', 4, 503, '2025-01-14T08:00:00Z', '2025-01-14T08:00:07Z')",
    );
    writer.transaction(() => {
      for (let index = 0; index < total; index += 1) insert.run(`evt-${index}`, `key-${index}`, `{"n":${index}}`);
    })();
    writer.close();

    const run = startCli(['deliveries', 'retry', '--abandoned'], cwd);
    await until(() => receiver.requests.length >= 500, 20_000);
    run.child.kill('SIGTERM');
    const result = await run.done;
    expect(result.stderr).not.toContain('too many SQL variables');
    expect(result.code).toBe(1);
    const counts = Object.fromEntries(query<{ status: string; n: number }>(db, 'select status, count(*) n from webhook_deliveries group by status').map((row) => [row.status, row.n]));
    expect(counts.delivering).toBeUndefined(); // nothing left claimed
    const delivered = counts.delivered ?? 0;
    expect(delivered).toBeGreaterThanOrEqual(500);
    // Every delivery not delivered is left: the released ones (pending) and the ones never claimed (still abandoned).
    expect(result.stderr).toContain(`left ${total - delivered} deliveries to re-send`);
    expect((counts.pending ?? 0) + (counts.abandoned ?? 0)).toBe(total - delivered);
    // A re-send starts a new schedule after the four attempts each had.
    expect(query(db, "select min(attempts) lo, max(attempts) hi, min(schedule_base) base from webhook_deliveries where status = 'delivered'")).toEqual([{ lo: 5, hi: 5, base: 4 }]);
  }, 60_000);
});

describe('a run paused past its lease', () => {
  test('run A stopped (SIGSTOP), run B takes its claims over and finishes, A continued: A sends nothing B took over', async () => {
    const receiver = await receiverFor(() => ({ delayMs: 50, status: 200 }));
    const total = 40;
    const { cwd, db } = await projectWithEvents(total, { url: receiver.url, concurrency: 2 });
    const a = startCli(['process-expirations', '--now', NOW, '--json'], cwd, { env: SHORT_LEASE });
    await until(() => receiver.requests.length >= 6);
    a.child.kill('SIGSTOP');
    const pausedAt = receiver.requests.length;
    const doneAtPause = query<{ event_id: string }>(db, "select event_id from webhook_deliveries where status = 'delivered'").map((row) => row.event_id);
    try {
      // Past A's lease: B sees the claims lapse (A's process is alive, so only the lease frees them).
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const b = await runCli(['process-expirations', '--now', NOW, '--json'], { cwd, env: SHORT_LEASE });
      expect(b.code).toBe(0);
      expect(JSON.parse(b.stdout).delivered).toBeGreaterThan(0);
    } finally {
      a.child.kill('SIGCONT');
    }
    const afterB = receiver.requests.length;
    const resultA = await a.done;
    expect(resultA.code).toBe(0);
    expect(JSON.parse(resultA.stdout).dropped).toBeGreaterThan(0);
    // A, continued, started no new request: everything after its pause came from B.
    expect(receiver.requests.length).toBe(afterB);
    const ids = idsOf(receiver);
    expect(new Set(ids).size).toBe(total);
    // A duplicate is possible only for a request A had on the wire at the pause (concurrency 2), never one A had recorded.
    const duplicates = duplicatesIn(ids);
    expect(duplicates.length).toBeLessThanOrEqual(2);
    const beforePause = idsOf(receiver, 0, pausedAt);
    for (const id of duplicates) {
      expect(beforePause).toContain(id);
      expect(doneAtPause).not.toContain(id);
    }
    expect(query(db, 'select status, count(*) n from webhook_deliveries group by status')).toEqual([{ status: 'delivered', n: total }]);
  }, 40_000);
});

// Two runs whose pids mean different things: B runs in its own PID namespace (as in a container sharing the hostname).
const unshareWorks = process.platform === 'linux' && spawnSync('unshare', ['--pid', '--fork', 'true']).status === 0;

describe('runs in different PID namespaces', () => {
  (unshareWorks ? test : test.skip)('B, in another PID namespace, cannot see A\'s pid: it waits out A\'s lease instead of taking A\'s live claims', async () => {
    // Slow enough that A still holds most of its claims when B starts (about 4 s of work).
    const receiver = await receiverFor(() => ({ delayMs: 250, status: 200 }));
    const total = 30;
    const { cwd } = await projectWithEvents(total, { url: receiver.url, concurrency: 2 });
    const a = startCli(['process-expirations', '--now', NOW, '--json'], cwd);
    await until(() => receiver.requests.length >= 2);
    const inNamespace = startCli(['process-expirations', '--now', NOW, '--json'], cwd, { command: ['unshare', '--pid', '--fork'] });
    const resultB = await inNamespace.done;
    const resultA = await a.done;
    expect([resultA.code, resultB.code]).toEqual([0, 0]);
    expect(JSON.parse(resultB.stdout).delivered).toBe(0);
    const ids = idsOf(receiver);
    expect(ids).toHaveLength(total);
    expect(new Set(ids).size).toBe(total);
  }, 40_000);
});

describe('signals and the retry budget', () => {
  test('SIGTERM counts every delivery left, claimed or not; a second signal exits 130', async () => {
    const receiver = await receiverFor(() => ({ delayMs: 100, status: 200 }));
    const { cwd, db } = await projectWithEvents(200, { url: receiver.url, concurrency: 1 });
    const run = startCli(['process-expirations', '--now', NOW], cwd);
    await until(() => receiver.requests.length >= 3);
    run.child.kill('SIGTERM');
    const result = await run.done;
    expect(result.code).toBe(1);
    const [{ n: pending }] = query<{ n: number }>(db, "select count(*) n from webhook_deliveries where status = 'pending'") as [{ n: number }];
    expect(pending).toBeGreaterThan(150); // most were never claimed: the window holds 64
    expect(result.stderr).toContain(`left ${pending} deliveries pending`);

    const before = receiver.requests.length;
    const again = startCli(['process-expirations', '--now', NOW], cwd);
    await until(() => receiver.requests.length >= before + 2);
    again.child.kill('SIGTERM');
    await until(() => again.stderr().includes('SIGTERM received'));
    again.child.kill('SIGTERM');
    expect((await again.done).code).toBe(130);
  }, 40_000);

  test('a delivery released mid-schedule keeps its budget: the next run makes only the attempts left, 4 in all', async () => {
    const receiver = await receiverFor(() => 500);
    const { cwd, db } = await projectWithEvents(1, { url: receiver.url, retryDelaysMs: [50, 30_000, 30_000] });
    const run = startCli(['process-expirations', '--now', NOW], cwd);
    await until(() => query<{ n: number }>(db, 'select count(*) n from webhook_attempts')[0]!.n >= 2);
    run.child.kill('SIGTERM');
    expect((await run.done).code).toBe(1);
    expect(query(db, 'select status, attempts from webhook_deliveries')).toEqual([{ status: 'pending', attempts: 2 }]);

    fs.writeFileSync(path.join(cwd, 'license-manager.config.json'), JSON.stringify({ webhooks: { enabled: true, url: receiver.url, retryDelaysMs: [50, 50, 50] } }));
    const next = await runCli(['process-expirations', '--now', NOW], { cwd });
    expect(next.code).toBe(3);
    expect(receiver.requests).toHaveLength(4);
    expect(query(db, 'select status, attempts from webhook_deliveries')).toEqual([{ status: 'abandoned', attempts: 4 }]);
    expect(query(db, 'select attempt from webhook_attempts order by id').map((row) => (row as { attempt: number }).attempt)).toEqual([1, 2, 3, 4]);
  }, 40_000);
});

// A real full disk: a small tmpfs holding the database (needs root and a kernel that lets us mount).
function mountSmallTmpfs(dir: string): boolean {
  return process.platform === 'linux' && process.getuid?.() === 0 && spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', dir]).status === 0;
}

describe('a full disk through the CLI', () => {
  test('the disk fills while re-sending: exit 1 "Disk full" naming the database, then the next run sends the rest', async () => {
    let healthy = false;
    // 20 ms per answer: at most a few attempts end between two writes, so the run's own bound shows.
    const receiver = await receiverFor(() => (healthy ? { delayMs: 20, status: 200 } : 503));
    const total = 400;
    const { cwd } = await projectWithEvents(total, { url: receiver.url, concurrency: 4, retryDelaysMs: [] });
    const disk = path.join(cwd, 'disk');
    fs.mkdirSync(disk);
    if (!mountSmallTmpfs(disk)) {
      console.warn('cannot mount a tmpfs here (not root, or no permission): the CLI full-disk test is skipped; the integration test covers SQLITE_FULL');
      return;
    }
    try {
      const env = { LICENSE_MANAGER_DB: path.join(disk, 'lm.sqlite') };
      expect((await runCli(['licenses', 'import', 'licenses.json'], { cwd, env })).code).toBe(0);
      const first = await runCli(['process-expirations', '--now', NOW], { cwd, env });
      expect([first.code, first.stderr]).toEqual([3, '']);
      healthy = true;
      const sentBefore = receiver.requests.length;
      // Leave a few pages of room: enough to claim, not enough to log every attempt.
      const { bavail, bsize } = fs.statfsSync(disk);
      fs.writeFileSync(path.join(disk, 'filler'), Buffer.alloc(Math.max(0, bavail * bsize - 600 * 1024)));
      const full = await runCli(['deliveries', 'retry', '--abandoned'], { cwd, env });
      expect(full.code).toBe(1);
      expect(full.stderr).toContain(`Disk full: cannot write database ${env.LICENSE_MANAGER_DB}`);
      expect(full.stderr).not.toContain('cannot rollback');
      const firstRound = idsOf(receiver, sentBefore);
      expect(firstRound.length).toBeLessThan(total);

      fs.rmSync(path.join(disk, 'filler'));
      // The failed run has exited: its claims are taken over at once (same host, boot and PID namespace).
      const recovery = await runCli(['process-expirations', '--now', NOW, '--json'], { cwd, env });
      expect(recovery.code).toBe(0);
      const delivered = query<{ n: number }>(env.LICENSE_MANAGER_DB, "select count(*) n from webhook_deliveries where status = 'delivered'")[0]!.n;
      const abandoned = query<{ n: number }>(env.LICENSE_MANAGER_DB, "select count(*) n from webhook_deliveries where status = 'abandoned'")[0]!.n;
      expect(delivered + abandoned).toBe(total); // abandoned: never claimed by the stopped re-send, re-sendable
      const resent = idsOf(receiver, sentBefore + firstRound.length);
      // Duplicates only for attempts on the wire, or waiting for their write, when the write failed (concurrency 4).
      expect(resent.filter((id) => firstRound.includes(id)).length).toBeLessThanOrEqual(8);
    } finally {
      spawnSync('umount', [disk]);
    }
  }, 60_000);
});

describe('an unsolicited 100 Continue', () => {
  test('before the real response: delivered on the real status, one request per event', async () => {
    const server = await startContinueServer();
    receivers.push(server);
    const { cwd, db } = await projectWithEvents(5, { url: server.url, concurrency: 2 });
    const result = await runCli(['process-expirations', '--now', NOW, '--json'], { cwd });
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ delivered: 5, abandoned: 0 });
    expect(server.ids).toHaveLength(5);
    expect(new Set(server.ids).size).toBe(5);
    expect(query(db, 'select status, attempts, last_status_code from webhook_deliveries group by status')).toEqual([{ status: 'delivered', attempts: 1, last_status_code: 200 }]);
  });
});
