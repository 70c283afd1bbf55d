// Several workers on one server database, one SIGKILLed while sending: the workers still running take its
// claims over before they exit (issue: they used to exit at once, and its events waited a day for the next run).
import { spawnSync } from 'node:child_process';
import { expect, test } from '@jest/globals';
import { startCli, until } from '../helpers/project.js';
import type { Receiver } from '../helpers/receiver.js';
import { expiredLicenses, forEachDialect, receiverFor } from '../helpers/workspace.js';

const NOW = '2025-01-15T08:00:00Z';
const EVENTS = 200;
const CONCURRENCY = 4;
// The victim in its own PID namespace: its pid proves nothing to the others (another host, a container), so they wait out its lease.
const unshareWorks = process.platform === 'linux' && spawnSync('unshare', ['--pid', '--fork', '--kill-child', 'true']).status === 0;

const idOf = (request: Receiver['requests'][number]) => String(request.headers['x-webhook-id']);

forEachDialect(
  'a worker SIGKILLed while sending',
  ({ dialect, project }) => {
    // On this host the lease is the longest there is (an hour): a take-over within the test can only come from
    // the victim's pid, seen dead, however slow the machine is. In another PID namespace a short lease lapses.
    const onThisHost: [string, { leaseMs: number; command?: string[] }] = ['on this host (its pid proves it dead)', { leaseMs: 3_600_000 }];
    const inNamespace: [string, { leaseMs: number; command?: string[] }] = [
      'in another PID namespace (only its lapsed lease tells)',
      { leaseMs: 3000, command: ['unshare', '--pid', '--fork', '--kill-child'] },
    ];
    if (!unshareWorks) test.skip(`${inNamespace[0]}: skipped, unshare --pid is not permitted here`, () => undefined);
    test.each(unshareWorks ? [onThisHost, inNamespace] : [onThisHost])(
      '%s: the others deliver its events before they exit',
      async (label, variant) => {
        // The victim starts alone: its first ANSWERED requests are answered, the next CONCURRENCY hang, and all later
        // ones (the others') are answered after 20 ms. Killed once the answered ones are recorded, it has all its
        // slots on the wire: what it sent and did not record is exactly the hung ones.
        const ANSWERED = 8;
        const hangs = (index: number) => index >= ANSWERED && index < ANSWERED + CONCURRENCY;
        const receiver = await receiverFor((_request, index) => (hangs(index) ? 'hang' : { delayMs: 20, status: 200 }));
        const ws = await project({
          receiver,
          config: { webhooks: { enabled: true, concurrency: CONCURRENCY, timeoutMs: 120_000 } },
          licenses: expiredLicenses(EVENTS),
        });
        const env = { LICENSE_MANAGER_LEASE_MS: String(variant.leaseMs) };
        const leaseMs = variant.leaseMs;
        const run = (command?: string[]) => startCli(['process-expirations', '--now', NOW, '--json'], ws.dir, { env, command });

        const victim = run(variant.command);
        await until(() => receiver.requests.length >= ANSWERED + CONCURRENCY, 30_000);
        const delivered = async () => (await ws.rows<{ n: number }>("select count(*) n from webhook_deliveries where status = 'delivered'"))[0]!.n;
        await until(async () => Number(await delivered()) >= ANSWERED, 30_000);
        expect(Number(await delivered())).toBe(ANSWERED);
        const answeredIds = receiver.requests.slice(0, ANSWERED).map(idOf);
        const hungIds = receiver.requests.slice(ANSWERED, ANSWERED + CONCURRENCY).map(idOf);
        const hungId = hungIds[0]!;
        const others = [run(), run()];
        const sentBefore = receiver.requests.length;
        await until(() => receiver.requests.length >= sentBefore + 10, 30_000);
        // What the victim holds (its hung deliveries among them), read before it dies: once it is dead, the others may
        // take its claims over before a read after the kill. With every slot hung it claims nothing more meanwhile.
        const victimRun = (await ws.rows<{ claimed_by: string }>(`select claimed_by from webhook_deliveries where event_id = '${hungId}'`))[0]!.claimed_by;
        const held = new Set(
          (await ws.rows<{ event_id: string }>(`select event_id from webhook_deliveries where claimed_by = '${victimRun}'`)).map((row) => row.event_id),
        );
        for (const id of hungIds) expect(held).toContain(id);
        const killedAt = Date.now();
        victim.child.kill('SIGKILL');
        expect((await victim.done).signal).toBe('SIGKILL');
        const results = await Promise.all(others.map((other) => other.done));
        const exitedAfterMs = Date.now() - killedAt;
        for (const result of results) expect([result.code, result.stderr]).toEqual([0, '']);

        // Every event delivered by the workers that ran, without another run: none waits for tomorrow.
        const ids = receiver.requests.map(idOf);
        expect(new Set(ids).size).toBe(EVENTS);
        const counts = Object.fromEntries(
          (await ws.rows<{ status: string; n: number }>('select status, count(*) n from webhook_deliveries group by status')).map((row) => [
            row.status,
            Number(row.n),
          ]),
        );
        expect(counts).toEqual({ delivered: EVENTS });
        // Sent twice: only what the victim had sent and not recorded when it died, each once more: here its hung
        // requests, all of them, and none of the ones it had recorded. A run that re-sent what it had recorded, or
        // its whole claim window (64), would fail.
        const repeated = ids.filter((id, index) => ids.indexOf(id) !== index);
        expect([...repeated].sort()).toEqual([...hungIds].sort());
        expect(repeated.filter((id) => answeredIds.includes(id))).toEqual([]);
        expect(new Set(repeated).size).toBe(repeated.length);

        // Take-over time: from the kill to the victim's hung event arriving again.
        const resentIndex = receiver.requests.findIndex((request, index) => index > ANSWERED && idOf(request) === hungId);
        const takeOverMs = receiver.requests[resentIndex]!.at - killedAt;
        // When the others were through their own work: their last request, before the take-over, of an event the victim did not hold.
        const ownDoneAt = Math.max(
          ...receiver.requests
            .slice(sentBefore, resentIndex)
            .filter((request) => !held.has(idOf(request)))
            .map((request) => request.at),
        );
        // From when the victim's claims were free to take: at once on this host (its pid), when its lease lapsed elsewhere.
        const freeAt = variant.command ? killedAt + leaseMs : killedAt;
        const afterOwnWorkMs = receiver.requests[resentIndex]!.at - Math.max(ownDoneAt, freeAt);
        console.log(
          `${dialect}, ${label}: taken over ${takeOverMs} ms after the kill (lease ${leaseMs} ms), ${afterOwnWorkMs} ms after the others were through their own work and the claims were free; the other workers exited ${exitedAfterMs} ms after the kill; ${repeated.length} event(s) sent twice`,
        );
        // Taken over by the workers still running, before they exited, and soon after they had nothing of their own
        // left and the claims were free: bounds that hold however busy the machine is (the others' own work may then
        // take tens of seconds). On this host the hour's lease never lapsed: the victim's pid told.
        expect(takeOverMs).toBeLessThan(exitedAfterMs);
        // The same allowances as before (30 s on this host, where the others' first look finds the pid dead; 10 s past the
        // lease elsewhere), counted from a point a busy machine does not move.
        expect(afterOwnWorkMs).toBeLessThan(variant.command ? 10_000 : 30_000);
        if (!variant.command) expect(takeOverMs).toBeLessThan(leaseMs);
        expect(exitedAfterMs - takeOverMs).toBeLessThan(20_000);

        const status = JSON.parse((await ws.cli(['status', '--json'])).stdout) as { heldByGoneRuns: number };
        expect(status.heldByGoneRuns).toBe(0);
      },
      120_000,
    );
  },
  { servers: true },
);

// `status` shows what a gone run holds, whatever the dialect: seeded claims, one lapsed, one of a live run.
forEachDialect('status and deliveries held by a run that is gone', ({ project }) => {
  test('status --json counts them as heldByGoneRuns, the text says so, and the next run sends them', async () => {
    const ws = await project({ receiver: await receiverFor(), config: { webhooks: { enabled: true } }, licenses: expiredLicenses(3) });
    // The events recorded, as a run that was killed before sending would leave them.
    const record = await ws.cli(['process-expirations', '--now', NOW, '--json'], { env: { LICENSE_MANAGER_WEBHOOK_URL: 'http://127.0.0.1:9/never' } });
    expect(record.code).toBe(3);
    const ids = (await ws.rows<{ id: number }>('select id from webhook_deliveries order by id')).map((row) => row.id);
    expect(ids).toHaveLength(3);
    const now = Date.now();
    // Two claims of a run on another host whose lease lapsed a minute ago, one of a live run (lease ahead).
    await ws.rows(
      `update webhook_deliveries set status = 'delivering', attempts = 0, claimed_by = 'elsewhere:4242:boot:ns:gone0001', lease_until = ${now - 60_000} where id in (${ids[0]}, ${ids[1]})`,
    );
    await ws.rows(
      `update webhook_deliveries set status = 'delivering', claimed_by = 'elsewhere:4243:boot:ns:live0001', lease_until = ${now + 600_000} where id = ${ids[2]}`,
    );

    const json = JSON.parse((await ws.cli(['status', '--json'])).stdout) as { heldByGoneRuns: number };
    expect(json.heldByGoneRuns).toBe(2);
    const text = await ws.cli(['status']);
    expect(text.stdout).toContain('HELD BY A GONE RUN: 2 deliveries are claimed by a run that is gone');
    const quiet = await ws.cli(['status', '--quiet']);
    expect(quiet.stderr).toContain('2 deliveries are claimed by a run that is gone');

    await ws.rows(`update webhook_deliveries set status = 'delivered', claimed_by = null, lease_until = null where id = ${ids[2]}`);
    const next = await ws.cli(['process-expirations', '--now', NOW, '--json']);
    expect([next.code, next.stderr]).toEqual([0, '']);
    expect(JSON.parse(next.stdout)).toMatchObject({ delivered: 2 });
    expect((JSON.parse((await ws.cli(['status', '--json'])).stdout) as { heldByGoneRuns: number }).heldByGoneRuns).toBe(0);
  }, 60_000);
});
