import { ColumnNode, sql } from 'kysely';
import { afterEach, describe, expect, test } from '@jest/globals';
import { deliveriesRetry } from '../../src/commands/deliveries.js';
import { processExpirations } from '../../src/commands/process-expirations.js';
import { query } from '../helpers/inspect.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { aLicense, forEachDialect, workspace } from '../helpers/workspace.js';

const now = new Date('2024-01-15T10:30:00Z');
let receiver: Receiver | undefined;
afterEach(async () => {
  await receiver?.close();
  receiver = undefined;
});

const licenseOf = (body: Buffer) => (JSON.parse(body.toString()) as { payload: { license_code: string } }).payload.license_code;

// SQLITE_FULL is SQLite's own: a server's disk is the server's (its errors are covered in servers.test.ts).
describe('a full disk', () => {
  test('SQLITE_FULL mid-run: "disk full" with the database path, no attempt starts after the failed write, nothing lost', async () => {
    let healthy = false;
    // 20 ms per answer: at most a few attempts end between two writes, so the run's own bound shows.
    receiver = await startReceiver(() => (healthy ? { delayMs: 20, status: 200 } : 503));
    const concurrency = 4;
    const ws = workspace({ webhooks: { enabled: true, url: receiver.url, concurrency, retryDelaysMs: [] } });
    const total = 300;
    await ws.seed(Array.from({ length: total }, () => aLicense({ expires_at: '2024-01-14T00:00:00Z' })));
    // Every event recorded and abandoned once (the receiver was down), so the re-send below writes only attempts.
    expect(await ws.run((context) => processExpirations(context, { now }))).toMatchObject({ abandoned: total });
    healthy = true;
    const sentBefore = receiver.requests.length;

    // The database may not grow by one page: SQLite itself answers SQLITE_FULL once the attempt rows need one.
    const failure = await ws
      .run(async (context) => {
        await sql`vacuum`.execute(context.db);
        const [{ page_count: pages }] = (await sql<{ page_count: number }>`pragma page_count`.execute(context.db)).rows as [{ page_count: number }];
        await sql.raw(`pragma max_page_count = ${pages}`).execute(context.db);
        return deliveriesRetry(context, { ids: [], abandoned: true });
      })
      .then(
        () => undefined,
        (error: unknown) => error as Error,
      );
    expect(failure?.message).toContain(`Disk full: cannot write database ${ws.databaseLocation}`);
    expect(failure?.message).not.toContain('cannot rollback');

    const recorded = query<{ n: number }>(ws.databaseLocation, 'select count(*) n from webhook_attempts')[0]!.n - total;
    const sent = receiver.requests.length - sentBefore;
    // Attempts on the wire, or waiting for their write, when the write failed may be unrecorded; no
    // attempt started after it (a run that went on would send the rest of its 64-delivery window).
    expect(sent - recorded).toBeLessThanOrEqual(2 * concurrency);
    expect(sent).toBeLessThan(total);

    // Space again: the next run (after the lease, here a clock two minutes on) sends everything not recorded as sent.
    const later = { now: () => new Date(Date.now() + 120_000) };
    const beforeRecovery = receiver.requests.length;
    const recovery = await ws.run((context) => processExpirations(context, { now, clock: later }));
    expect(recovery.abandoned).toBe(0);
    const stillAbandoned = query<{ n: number }>(ws.databaseLocation, "select count(*) n from webhook_deliveries where status = 'abandoned'")[0]!.n;
    expect(stillAbandoned + query<{ n: number }>(ws.databaseLocation, "select count(*) n from webhook_deliveries where status = 'delivered'")[0]!.n).toBe(
      total,
    );
    // Duplicates: only events whose request went out but whose attempt was never written.
    const firstRound = receiver.requests.slice(sentBefore, beforeRecovery).map((request) => licenseOf(request.body));
    const resent = receiver.requests.slice(beforeRecovery).map((request) => licenseOf(request.body));
    expect(resent.filter((code) => firstRound.includes(code)).length).toBeLessThanOrEqual(2 * concurrency);
  }, 30_000);
});

// Claim windows are the engine's SQL, which differs per dialect.
forEachDialect('retries overlap the rest of the work', ({ workspace }) => {
  test('with more events than one claim window, every first attempt goes out before the first event has used its retries', async () => {
    receiver = await startReceiver(() => 503);
    // concurrency 8: a claim window of 128, so 200 events need two; sending them all takes far less than a schedule
    // (7.5 s: room for a loaded machine, where 400 events on MariaDB once came within 0.2 s of it).
    const ws = workspace({ webhooks: { enabled: true, url: receiver.url, concurrency: 8, retryDelaysMs: [2500, 2500, 2500] } });
    const total = 200;
    await ws.seed(Array.from({ length: total }, () => aLicense({ expires_at: '2024-01-14T00:00:00Z' })));
    const result = await ws.run((context) => processExpirations(context, { now }));
    expect(result.abandoned).toBe(total);
    expect(receiver.requests).toHaveLength(total * 4);
    const byLicense = new Map<string, number[]>();
    for (const request of receiver.requests) byLicense.set(licenseOf(request.body), [...(byLicense.get(licenseOf(request.body)) ?? []), request.at]);
    const lastFirstAttempt = Math.max(...[...byLicense.values()].map((times) => times[0]!));
    const earliestLastAttempt = Math.min(...[...byLicense.values()].map((times) => times[3]!));
    // A batch that waited out its retries before the next was claimed would put some first attempts after that.
    expect(lastFirstAttempt).toBeLessThan(earliestLastAttempt);
  }, 30_000);
});

describe('a claim the database cannot confirm in time', () => {
  /**
   * processExpirations on `ws` with a clock `skew.ms` ahead that jumps 31 s (over half the 60 s lease) after the
   * claim (with `afterClaim`) and after each of the first three updates that renew a lease alone (the
   * confirmations): no confirmation comes back in time to trust. Resolves with the run's failure, if any.
   */
  async function runWithLateConfirmations(ws: ReturnType<typeof workspace>, skew: { ms: number }, afterClaim: boolean) {
    let jumps = 0;
    const jumpAfter = new WeakSet<object>();
    const clock = { now: () => new Date(Date.now() + skew.ms) };
    const failure = await ws
      .run((context) => {
        const db = context.db.withPlugin({
          transformQuery: ({ node, queryId }) => {
            if (node.kind === 'UpdateQueryNode' && jumps < (afterClaim ? 4 : 3)) {
              const columns = (node.updates ?? []).map((update) => (ColumnNode.is(update.column) ? update.column.column.name : ''));
              // A claim returns its rows (SQLite's UPDATE … RETURNING); handing a claim back returns nothing.
              const claim = node.returning !== undefined && columns.includes('claimed_by');
              const confirmation = columns.length === 1 && columns[0] === 'lease_until';
              if (afterClaim && jumps === 0 ? claim : confirmation) jumpAfter.add(queryId);
            }
            return node;
          },
          transformResult: ({ result, queryId }) => {
            if (jumpAfter.has(queryId)) {
              jumps += 1;
              skew.ms += 31_000;
            }
            return Promise.resolve(result);
          },
        });
        return processExpirations({ ...context, db }, { now, clock });
      })
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    return { failure, jumps };
  }

  const tooSlow =
    /did not confirm this run's claim on delivery \d+ within half its 60000 ms lease, three times running: it answers too slowly to keep claims safely, so the run stopped/;

  test('three late answers running: the run stops (exit 1) saying the database answers too slowly; nothing sent, the delivery handed back', async () => {
    const ws = workspace({ webhooks: { enabled: true, concurrency: 1 } });
    await ws.seed([aLicense({ license_code: 'SLOW-DB', expires_at: '2024-01-14T00:00:00Z' })]);
    receiver = await startReceiver(() => 200);
    ws.configure({ webhooks: { enabled: true, url: receiver.url, concurrency: 1 } });
    const { failure, jumps } = await runWithLateConfirmations(ws, { ms: 0 }, true);
    expect(jumps).toBe(4);
    expect(failure).toMatchObject({ code: 1, message: expect.stringMatching(tooSlow) });
    expect(receiver.requests).toHaveLength(0);
    // Handed back, not left claimed (the run's heartbeat would have kept it so until the run ended).
    expect(await ws.rows('select status, claimed_by from webhook_deliveries')).toEqual([{ status: 'pending', claimed_by: null }]);
    expect(await ws.rows('select status, exit_code from runs')).toEqual([{ status: 'failed', exit_code: 1 }]);
  }, 30_000);

  test('a run stopped so after sending some: its runs row counts what it recorded and delivered before it stopped', async () => {
    const ws = workspace({ webhooks: { enabled: true, concurrency: 1 } });
    await ws.seed(['A', 'B', 'C'].map((code) => aLicense({ license_code: code, expires_at: '2024-01-14T00:00:00Z' })));
    // 31 s pass as the second request arrives: the third delivery's claim then needs confirming, and no answer comes in time.
    const skew = { ms: 0 };
    receiver = await startReceiver((_request, index) => {
      if (index === 1) skew.ms += 31_000;
      return 200;
    });
    ws.configure({ webhooks: { enabled: true, url: receiver.url, concurrency: 1 } });
    const { failure, jumps } = await runWithLateConfirmations(ws, skew, false);
    expect(jumps).toBe(3);
    expect(failure).toMatchObject({ code: 1, message: expect.stringMatching(tooSlow) });
    expect(receiver.requests).toHaveLength(2);
    expect(await ws.rows('select status, exit_code, recorded, delivered, abandoned from runs')).toEqual([
      { status: 'failed', exit_code: 1, recorded: 3, delivered: 2, abandoned: 0 },
    ]);
  }, 30_000);
});

// The lapsed-claim filter is each dialect's SQL.
forEachDialect('a run whose own leases lapsed (paused, or its database frozen, past the lease)', ({ workspace }) => {
  test('it never claims its own lapsed deliveries back: what it holds is not sent twice, and the next run sends it', async () => {
    const ws = workspace({ webhooks: { enabled: true, concurrency: 4, retryDelaysMs: [1500] } });
    await ws.seed([
      aLicense({ license_code: 'WAITS', expires_at: '2024-01-14T00:00:00Z' }),
      aLicense({ license_code: 'SLOW', expires_at: '2024-01-14T00:00:00Z' }),
    ]);
    // WAITS fails once and waits 1.5 s for its retry; SLOW answers after 600 ms, and its end makes the run claim again.
    receiver = await startReceiver((request, index) => (licenseOf(request.body) === 'SLOW' ? { delayMs: 600, status: 200 } : index < 2 ? 500 : 200));
    ws.configure({ webhooks: { enabled: true, url: receiver.url, concurrency: 4, retryDelaysMs: [1500] } });
    let skewMs = 0;
    const clock = { now: () => new Date(Date.now() + skewMs) };
    const running = ws.run((context) => processExpirations(context, { now, clock }));
    while (receiver.requests.length < 2) await new Promise((resolve) => setTimeout(resolve, 5));
    // Two minutes pass in a moment for this run (as after a pause): every lease it holds has run out.
    skewMs = 120_000;
    const result = await running;
    const sends = (code: string) => receiver!.requests.filter((request) => licenseOf(request.body) === code).length;
    expect([sends('WAITS'), sends('SLOW')]).toEqual([1, 1]);
    expect(result).toMatchObject({ delivered: 1, dropped: 1 });

    // The next run (a minute later still) takes the lapsed claim over and sends it.
    const later = { now: () => new Date(Date.now() + 180_000) };
    expect(await ws.run((context) => processExpirations(context, { now, clock: later }))).toMatchObject({ delivered: 1 });
    expect([sends('WAITS'), sends('SLOW')]).toEqual([2, 1]);
  }, 30_000);
});
