import fs from 'node:fs';
import { expect, test } from '@jest/globals';
import { endpointsSetEnabled } from '../../src/commands/endpoints.js';
import { processExpirations, type ProcessExpirationsRun } from '../../src/commands/process-expirations.js';
import type { Receiver } from '../helpers/receiver.js';
import { aLicense, forEachDialect, receiverFor, type Workspace } from '../helpers/workspace.js';

// `endpoints disable` and `endpoints remove --force` while a run is sending to that endpoint: the run reads the
// switches again (about once a second) and starts no new attempt to it; what it holds is parked or superseded.
const T0 = new Date('2025-01-23T10:00:00Z');
const EVENTS = 20;
// How many attempts may start after the command returns: the one in flight, and those of the second the run may
// take to read the switch again (one at a time, 300 ms each).
const LATE = 5;

const idsOf = (r: Receiver) => r.requests.map((request) => String(request.headers['x-webhook-id']));

async function seeded(ws: Workspace, count: number, prefix = 'EXP'): Promise<void> {
  fs.chmodSync(ws.configFile, 0o600);
  await ws.ready();
  await ws.seed(Array.from({ length: count }, (_, index) => aLicense({ license_code: `${prefix}-${index}`, expires_at: '2025-01-22T10:00:00Z' })));
}

/** crm answers each request after 300 ms, one at a time: a run holds most of its deliveries for seconds. */
async function slowCrm(ws: Workspace): Promise<Receiver> {
  const crm = await receiverFor(() => ({ delayMs: 300, status: 200 }));
  fs.chmodSync(ws.configFile, 0o600);
  const added = await ws.cli(['endpoints', 'add', 'crm', '--url', crm.url, '--max-in-flight', '1']);
  expect([added.code, added.stderr]).toEqual([0, '']);
  return crm;
}

async function whenReceived(target: Receiver, count: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (target.requests.length < count && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  expect(target.requests.length).toBeGreaterThanOrEqual(count);
}

const crmRows = (ws: Workspace) =>
  ws.rows<{ status: string; status_reason: string | null }>("select status, status_reason from webhook_deliveries where endpoint = 'crm' order by id");

/**
 * Runs `args` (endpoints disable/remove crm) while a run sends to crm, checks the command's count of what the run
 * holds (`message`, with one number) and that the run then started at most LATE more attempts to crm; returns the
 * run, how many crm got, and crm's rows: one delivered per request, the rest for the caller to judge.
 */
async function switchedMidRun(ws: Workspace, crm: Receiver, running: Promise<ProcessExpirationsRun>, args: string[], message: RegExp) {
  const switched = await ws.cli(args);
  const atSwitch = crm.requests.length;
  expect([switched.code, switched.stderr]).toEqual([0, '']);
  const held = message.exec(switched.stdout);
  expect(held).not.toBeNull();
  expect(Number(held![1])).toBeGreaterThanOrEqual(EVENTS - atSwitch - 1);
  const run = await running;
  // Before: every delivery the run had claimed went out to crm.
  expect(crm.requests.length).toBeLessThanOrEqual(atSwitch + LATE);
  const sent = crm.requests.length;
  const rows = await crmRows(ws);
  expect(rows.filter((row) => row.status === 'delivered')).toHaveLength(sent);
  return { run, sent, rest: rows.filter((row) => row.status !== 'delivered') };
}

/** A run under way with EVENTS deliveries to a slow crm (beside default), crm's first two requests received. */
async function sendingToSlowCrm(workspace: (config?: Record<string, unknown>) => Workspace) {
  const main = await receiverFor();
  const ws = workspace({ webhooks: { enabled: true, url: main.url, secret: 's' } });
  await ws.ready();
  const crm = await slowCrm(ws);
  await seeded(ws, EVENTS);
  const running = ws.run((context) => processExpirations(context, { now: T0 }));
  await whenReceived(crm, 2);
  return { ws, main, crm, running };
}

forEachDialect('endpoints changed while a run sends to them', ({ workspace }) => {
  test('endpoints disable mid-run: the run starts no new attempt to it, parks what it held; the message counts them; enabled, they go out once', async () => {
    const { ws, main, crm, running } = await sendingToSlowCrm(workspace);

    // The run claimed all of crm's: none is parked by the command, each is counted as held by the run.
    const { run, sent, rest } = await switchedMidRun(
      ws,
      crm,
      running,
      ['endpoints', 'disable', 'crm'],
      /^Disabled endpoint crm; (\d+) held by a running process-expirations are parked by it before its next attempt \(attempts in flight end\)\.\n$/,
    );
    expect(rest).toEqual(Array(EVENTS - sent).fill({ status: 'parked', status_reason: 'endpoint disabled' }));
    expect(run.parked).toBe(EVENTS - sent);
    expect(run.locked).toBe(0);
    expect(main.requests).toHaveLength(EVENTS);

    // Parked, never dropped: enabled again, the next run sends each of them once.
    expect((await ws.cli(['endpoints', 'enable', 'crm'])).code).toBe(0);
    await ws.run((context) => processExpirations(context, { now: T0 }));
    expect(crm.requests).toHaveLength(EVENTS);
    expect(new Set(idsOf(crm))).toEqual(new Set(idsOf(main)));
    expect((await crmRows(ws)).map((row) => row.status)).toEqual(Array(EVENTS).fill('delivered'));
  }, 90_000);

  test('endpoints disable mid-run with retries across runs: an attempt in flight is recorded, and what it leaves waiting is parked, not deferred', async () => {
    const main = await receiverFor();
    // Each answer takes longer than the run's second between reads of the switches.
    const crm = await receiverFor(() => ({ delayMs: 1200, status: 503 }));
    const ws = workspace({ webhooks: { enabled: true, url: main.url, secret: 's', retryDelaysMs: [], retryWindowHours: 72 } });
    fs.chmodSync(ws.configFile, 0o600);
    await ws.ready();
    expect((await ws.cli(['endpoints', 'add', 'crm', '--url', crm.url, '--max-in-flight', '1'])).code).toBe(0);
    // Retries across runs count from when an event was recorded, by the real clock: expired yesterday, recorded now.
    const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 19) + 'Z';
    fs.chmodSync(ws.configFile, 0o600);
    await ws.seed(Array.from({ length: 3 }, (_, index) => aLicense({ license_code: `EXP-${index}`, expires_at: yesterday })));
    const running = ws.run((context) => processExpirations(context));
    await whenReceived(crm, 1);
    // In-process: disabled well within the first attempt.
    expect(await ws.run((context) => endpointsSetEnabled(context, 'crm', false, new Date()))).toMatchObject({ parked: 0, held: 3 });
    const run = await running;
    // Before, the run went on (3 attempts) and deferred each (exit 4, for the operator's switch).
    expect(crm.requests).toHaveLength(1);
    expect(run.deferred).toBe(0);
    expect((await crmRows(ws)).map((row) => row.status)).toEqual(Array(3).fill('parked'));
    const attempts = await ws.rows<{ n: unknown }>(
      "select count(*) as n from webhook_attempts a join webhook_deliveries d on d.id = a.delivery_id where d.endpoint = 'crm'",
    );
    expect(Number(attempts[0]!.n)).toBe(crm.requests.length);
  }, 90_000);

  test('endpoints remove --force mid-run: the run starts no new attempt to it and ends what it held unsent; an endpoint added later under the name gets none of them', async () => {
    const { ws, crm, running } = await sendingToSlowCrm(workspace);

    const {
      run,
      sent,
      rest: ended,
    } = await switchedMidRun(
      ws,
      crm,
      running,
      ['endpoints', 'remove', 'crm', '--force'],
      /^Removed endpoint crm; (\d+) held by a running process-expirations are ended unsent by it before its next attempt \(attempts in flight end\)\.\n$/,
    );
    expect(ended).toHaveLength(EVENTS - sent);
    for (const row of ended) {
      expect(row.status).toBe('superseded');
      expect(row.status_reason).toMatch(/^endpoint crm removed while a run held this delivery: ended unsent/);
    }
    expect(run.superseded).toBe(EVENTS - sent);
    expect(run.locked).toBe(0);

    // A new endpoint of the name gets the events recorded after it, never the old ones.
    const newCrm = await receiverFor();
    expect((await ws.cli(['endpoints', 'add', 'crm', '--url', newCrm.url])).code).toBe(0);
    await ws.run((context) => processExpirations(context, { now: T0 }));
    await seeded(ws, 1, 'LATER');
    await ws.run((context) => processExpirations(context, { now: T0 }));
    expect(newCrm.requests.map((request) => JSON.parse(request.body.toString('utf8')).payload.license_code)).toEqual(['LATER-0']);
  }, 90_000);

  test('endpoints add supersedes what an earlier endpoint of the name left undelivered; putting a config-file endpoint back still sends its own', async () => {
    const [main, old, added] = [await receiverFor(), await receiverFor(), await receiverFor()];
    const base = { enabled: true, url: main.url, secret: 's' };
    // A config-file crm, disabled: its deliveries are parked.
    const ws = workspace({ webhooks: { ...base, endpoints: [{ name: 'crm', url: old.url, enabled: false }] } });
    await seeded(ws, 3);
    expect((await ws.run((context) => processExpirations(context, { now: T0 }))).delivered).toBe(3);
    // Taken out of the config file, then put back: its own waiting deliveries are sent (as documented).
    ws.configure({ webhooks: base });
    fs.chmodSync(ws.configFile, 0o600);
    await ws.run((context) => processExpirations(context, { now: T0 }));
    ws.configure({ webhooks: { ...base, endpoints: [{ name: 'crm', url: old.url }] } });
    fs.chmodSync(ws.configFile, 0o600);
    await ws.run((context) => processExpirations(context, { now: T0 }));
    expect(old.requests).toHaveLength(3);

    // Again left undelivered (disabled, then taken out), and now a database endpoint of that name is added.
    await seeded(ws, 2, 'MORE');
    ws.configure({ webhooks: { ...base, endpoints: [{ name: 'crm', url: old.url, enabled: false }] } });
    fs.chmodSync(ws.configFile, 0o600);
    await ws.run((context) => processExpirations(context, { now: T0 }));
    ws.configure({ webhooks: base });
    fs.chmodSync(ws.configFile, 0o600);
    await ws.run((context) => processExpirations(context, { now: T0 }));
    const add = await ws.cli(['endpoints', 'add', 'crm', '--url', added.url]);
    expect([add.code, add.stderr]).toEqual([0, '']);
    expect(add.stdout).toContain('2 undelivered deliveries recorded for an earlier endpoint named crm superseded, never sent to this one.');
    const left = await ws.rows<{ status: string; status_reason: string }>(
      "select status, status_reason from webhook_deliveries where endpoint = 'crm' and status <> 'delivered'",
    );
    expect(left).toHaveLength(2);
    for (const row of left) {
      expect(row.status).toBe('superseded');
      expect(row.status_reason).toMatch(
        /^recorded for an earlier endpoint named crm, before "endpoints add crm" at .*: an endpoint added later receives only the events recorded after it$/,
      );
    }
    const run = await ws.run((context) => processExpirations(context, { now: T0 }));
    expect([run.delivered, added.requests.length, old.requests.length]).toEqual([0, 0, 3]);
  }, 90_000);
});
