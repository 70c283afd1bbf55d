import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from '@jest/globals';
import type { z } from 'zod';
import { main } from '../../src/cli/main.js';
import { childEnv } from '../helpers/cli.js';
import {
  deliveriesListJson,
  deliveriesRetryJson,
  deliveriesShowJson,
  deliveriesStatsJson,
  endpointEnabledJson,
  endpointJson,
  endpointRemovedJson,
  endpointRotatedJson,
  endpointsListJson,
  licensesForecastJson,
  licensesImportJson,
  licensesListJson,
  licensesShowJson,
  listeningJson,
  markSentJson,
  migrateJson,
  processExpirationsJson,
  receivedJson,
  sendTestEventJson,
  settingChangeJson,
  settingsGetJson,
  settingsListJson,
  statusJson,
  verifyJson,
  versionJson,
} from '../helpers/json-shapes.js';
import { formatUtc } from '../../src/time.js';
import { project, receiverFor, type Workspace } from '../helpers/workspace.js';

// The documented --json shape of every command (test/helpers/json-shapes.ts), asserted on real output: each command
// runs in this process on a SQLite project whose receivers deliver, defer (503), go away (410) and refuse (400).
// Dates around the real clock: a run defers a failing delivery only within webhooks.retryWindowHours of now.
const DAY_MS = 86_400_000;
const at = (days: number) => formatUtc(new Date(Math.floor(Date.now() / 1000) * 1000 + days * DAY_MS));
const NOW = at(0);
const dateOf = (instant: string) => instant.slice(0, 10);
const SECRET = 's3cret';

/** Runs `license-manager --json …args` and parses its stdout, one JSON document, with the command's schema. */
async function shape<S extends z.ZodType>(ws: Workspace, schema: S, args: string[], code = 0, env: NodeJS.ProcessEnv = {}): Promise<z.infer<S>> {
  const result = await ws.cli(['--json', ...args], { env });
  expect({ args, code: result.code, stderr: result.code === code ? '' : result.stderr }).toEqual({ args, code, stderr: '' });
  return schema.parse(JSON.parse(result.stdout));
}

/** A project (config owner-only) whose default endpoint answers 200, and 400 to the events of LIC-BAD (abandoned at once). */
async function sinkProject(config: Record<string, unknown> = {}): Promise<{ ws: Workspace; url: string }> {
  const sink = await receiverFor((request) => (request.body.toString().includes('LIC-BAD') ? 400 : 200));
  const ws = await project({
    ownerOnly: true,
    config: { ...config, webhooks: { enabled: true, url: sink.url, secret: SECRET, ...(config.webhooks as object | undefined) } },
  });
  return { ws, url: sink.url };
}

/**
 * Expired yesterday (one delivered, one refused), expiring in 5 days with support ended yesterday, expired long ago,
 * expired 10 days ago (a reminder with after-expiry days 10), lifetime.
 */
function importLicenses(ws: Workspace) {
  const rows = [
    { license_code: 'LIC-OK', product_id: 'P1', product_name: 'Prod', email: 'ok@example.com', expires_at: at(-1) },
    { license_code: 'LIC-BAD', expires_at: at(-0.9) },
    { license_code: 'LIC-SOON', expires_at: dateOf(at(5)), updates_until: at(-1) },
    { license_code: 'LIC-OLD', expires_at: at(-75) },
    { license_code: 'LIC-WIN', expires_at: at(-10) },
    { license_code: 'LIC-LIFE', expires_at: null },
  ];
  fs.writeFileSync(path.join(ws.dir, 'licenses.json'), JSON.stringify(rows));
  return shape(ws, licensesImportJson, ['licenses', 'import', 'licenses.json']);
}

describe('--json shapes', () => {
  test('an empty project: --version, migrate, empty lists, status, stats and a run with nothing to do', async () => {
    const { ws } = await sinkProject();
    await shape(ws, versionJson, ['--version']);
    expect((await shape(ws, migrateJson, ['migrate'])).applied).toEqual([]);
    expect(await shape(ws, licensesListJson, ['licenses', 'list'])).toEqual([]);
    expect(await shape(ws, deliveriesListJson, ['deliveries', 'list'])).toEqual([]);
    expect((await shape(ws, statusJson, ['status', '--now', NOW])).runs).toEqual([]);
    expect((await shape(ws, deliveriesStatsJson, ['deliveries', 'stats'])).endpoints).toMatchObject([{ endpoint: 'default', attempts: 0, successRate: null }]);
    expect(await shape(ws, processExpirationsJson, ['process-expirations', '--now', NOW])).toMatchObject({ hasLicenses: false, due: [], plan: [] });
    expect(await shape(ws, licensesForecastJson, ['licenses', 'forecast', '--now', NOW, '--days', '2'])).toMatchObject({ days: [{}, {}] });
  });

  test('licenses, settings and endpoints: import, list, get, set, unset, add, update, show, enable, disable, rotate, remove', async () => {
    const { ws } = await sinkProject();
    expect(await importLicenses(ws)).toMatchObject({ format: 'json', rows: 6, inserted: 6 });
    expect(await shape(ws, licensesListJson, ['licenses', 'list'])).toHaveLength(6);
    expect(await shape(ws, licensesListJson, ['licenses', 'list', '--expiring-within', '7', '--now', NOW])).toMatchObject([{ license_code: 'LIC-SOON' }]);

    const settings = await shape(ws, settingsListJson, ['settings', 'list']);
    expect(settings.find((setting) => setting.key === 'webhook-secret')?.value).toBe('********');
    expect((await shape(ws, settingsGetJson, ['settings', 'get', 'warning-days'])).value).toEqual([7, 1]);
    expect((await shape(ws, settingsGetJson, ['settings', 'get', 'webhook-secret', '--reveal'])).value).toBe(SECRET);
    expect((await shape(ws, settingsGetJson, ['settings', 'get', 'product:P1:enabled'])).value).toBe(true);
    expect(await shape(ws, settingChangeJson, ['settings', 'set', 'time-zone', 'Europe/Berlin'])).toEqual({ key: 'time-zone', stored: 'Europe/Berlin' });
    expect((await shape(ws, settingChangeJson, ['settings', 'set', 'after-expiry-days', '3'])).warnings).toHaveLength(1);
    expect(await shape(ws, settingChangeJson, ['settings', 'unset', 'time-zone'])).toEqual({ key: 'time-zone', stored: null, removed: true });
    expect(await shape(ws, settingChangeJson, ['settings', 'unset', 'warning-days'])).toMatchObject({ removed: false });
    const shadowed = await shape(ws, settingChangeJson, ['settings', 'set', 'webhook-url', 'https://hooks.example.com/in'], 0, {
      LICENSE_MANAGER_WEBHOOK_URL: 'https://env.example.com/in',
    });
    expect(shadowed.shadowedBy).toBe('LICENSE_MANAGER_WEBHOOK_URL');
    expect((await shape(ws, settingsGetJson, ['settings', 'get', 'webhook-url'])).overrides).toBeDefined();

    expect(await shape(ws, endpointsListJson, ['endpoints', 'list'])).toMatchObject([{ name: 'default', source: 'default', events: null }]);
    const added = [
      'endpoints',
      'add',
      'crm',
      '--url',
      'https://crm.example.com/hooks',
      '--secret',
      'crm-1',
      '--events',
      'license.expired',
      '--header',
      'X-Api-Key: k',
    ];
    expect(await shape(ws, endpointJson, added)).toMatchObject({ name: 'crm', source: 'database', headers: { 'X-Api-Key': '********' } });
    expect(await shape(ws, endpointJson, ['endpoints', 'update', 'crm', '--signing', 'both', '--max-in-flight', '2'])).toMatchObject({ signing: 'both' });
    expect(await shape(ws, endpointEnabledJson, ['endpoints', 'disable', 'crm'])).toMatchObject({ enabled: false });
    expect(await shape(ws, endpointEnabledJson, ['endpoints', 'enable', 'crm', '--discard-parked'])).toMatchObject({ enabled: true });
    const rotated = await shape(ws, endpointRotatedJson, ['endpoints', 'rotate-secret', 'crm']);
    expect(rotated.secret).toMatch(/^[0-9a-f]{64}$/);
    expect(rotated.previousValidUntil).not.toBeNull();
    expect((await shape(ws, endpointJson, ['endpoints', 'show', 'crm'])).previousSecrets).toHaveLength(1);
    expect(await shape(ws, endpointRotatedJson, ['endpoints', 'rotate-secret', 'crm', '--keep-previous', '0'])).toMatchObject({ previousValidUntil: null });
    expect(await shape(ws, endpointsListJson, ['endpoints', 'list'])).toHaveLength(2);
    expect(await shape(ws, endpointRemovedJson, ['endpoints', 'remove', 'crm'])).toEqual({ name: 'crm', defined: true, dropped: 0, sending: 0 });
    // A stored value that fails validation: shown as stored with why, and named by status.
    await ws.rows("insert into settings (key, value, updated_at) values ('warning-days', 'soon', '2025-01-01T00:00:00Z')");
    expect((await shape(ws, settingsGetJson, ['settings', 'get', 'warning-days'])).invalid).toBeDefined();
    expect((await shape(ws, statusJson, ['status', '--now', NOW], 1)).settingProblems).toMatchObject([{ key: 'warning-days' }]);
  });

  test('runs: mark-sent, dry run, a run that delivers, defers, parks on 410 and abandons; then the log, retry, stats, status', async () => {
    const failing = await receiverFor((request) => (request.url === '/gone' ? 410 : 503));
    const ping = await receiverFor();
    const { ws, url } = await sinkProject({
      webhooks: { retryWindowHours: 72 },
      expirations: { afterExpiryDays: [10] },
      monitoring: { ping: `${ping.url.replace('/webhook', '')}/ping`, textfile: './metrics.prom' },
    });
    await importLicenses(ws);
    const crm = failing.url.replace('/webhook', '/crm');
    const gone = failing.url.replace('/webhook', '/gone');
    await shape(ws, endpointJson, ['endpoints', 'add', 'crm', '--url', crm, '--events', 'license.expired']);
    await shape(ws, endpointJson, ['endpoints', 'add', 'gone', '--url', gone, '--events', 'license.update_support_expired']);
    await shape(ws, endpointJson, [
      'endpoints',
      'add',
      'copy',
      '--url',
      url,
      '--events',
      'license.expiring',
      '--signing',
      'standard',
      '--secret',
      'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    ]);

    const marked = await shape(ws, markSentJson, ['process-expirations', '--mark-sent-through', dateOf(NOW), '--dry-run', '--now', NOW]);
    // Botble's job sent no reminders: the four events of the rules.
    expect(marked.marked.length + marked.left.length).toBe(4);
    const dry = await shape(ws, processExpirationsJson, ['process-expirations', '--dry-run', '--now', NOW]);
    expect(dry).toMatchObject({ dryRun: true, recorded: 0, expiredWithoutEvent: 2, announceSince: dateOf(at(-75)) });
    expect(dry.dueCounts['license.expired_reminder']).toBe(1);
    expect(dry.due.find((event) => event.type === 'license.expired_reminder')).toMatchObject({ licenseCode: 'LIC-WIN', daysSinceExpiry: 10 });

    const run = await shape(ws, processExpirationsJson, ['process-expirations', '--now', NOW], 3);
    expect(run).toMatchObject({ abandoned: 1, abandonedDeliveries: [{ licenseCode: 'LIC-BAD' }], gone: [{ endpoint: 'gone' }] });
    expect(run.deferred).toBeGreaterThan(0);
    expect(run.waiting.map((waiting) => waiting.endpoint)).toContain('crm');
    expect(Object.keys(run.byEndpoint ?? {})).toEqual(expect.arrayContaining(['default', 'copy']));
    expect(Object.keys(run.circuits)).toContain('crm');

    expect((await shape(ws, licensesShowJson, ['licenses', 'show', 'LIC-SOON', '--now', NOW])).toCome).toMatchObject([
      { type: 'license.expiring', days: 1 },
      {},
      {},
    ]);
    const log = await shape(ws, deliveriesListJson, ['deliveries', 'list']);
    expect(new Set(log.map((row) => row.status))).toEqual(new Set(['delivered', 'abandoned', 'deferred', 'parked']));
    const deferred = await shape(ws, deliveriesListJson, ['deliveries', 'list', '--status', 'deferred', '--endpoint', 'crm']);
    expect(deferred[0]?.next_attempt_at).not.toBeNull();
    const abandoned = log.find((row) => row.status === 'abandoned')!;
    expect((await shape(ws, deliveriesShowJson, ['deliveries', 'show', String(abandoned.id)])).attempts).toHaveLength(1);
    expect(await shape(ws, deliveriesRetryJson, ['deliveries', 'retry', '--abandoned', '--dry-run'])).toMatchObject({ dryRun: true, selectedCount: 1 });
    expect(await shape(ws, deliveriesRetryJson, ['deliveries', 'retry', '--abandoned'], 3)).toMatchObject({
      abandoned: 1,
      outcomes: [{ status: 'abandoned' }],
    });
    const delivered = log.find((row) => row.status === 'delivered')!;
    expect(await shape(ws, deliveriesRetryJson, ['deliveries', 'retry', String(delivered.id), '--force'])).toMatchObject({ forced: 1, delivered: 1 });

    const stats = await shape(ws, deliveriesStatsJson, ['deliveries', 'stats', '--since', '24h']);
    expect(stats.endpoints.map((endpoint) => endpoint.endpoint).sort()).toEqual(['copy', 'crm', 'default', 'gone']);
    const status = await shape(ws, statusJson, ['status', '--now', NOW], 3);
    expect(status).toMatchObject({ runs: [{ status: 'abandoned', exitCode: 3 }], monitoring: { lastPing: { start: { ok: true }, end: { ok: true } } } });
    expect(status.deliveries.byEndpoint).toBeDefined();
    expect(status.endpoints.find((endpoint) => endpoint.name === 'gone')?.disabled).not.toBeNull();
    expect(await shape(ws, statusJson, ['status', '--format', 'json', '--now', NOW], 3)).toEqual(status);
    expect((await shape(ws, endpointsListJson, ['endpoints', 'list'])).find((endpoint) => endpoint.name === 'gone')?.gone).not.toBeNull();
    expect(await shape(ws, endpointEnabledJson, ['endpoints', 'enable', 'gone'])).toMatchObject({ enabled: true });
    expect((await shape(ws, endpointRemovedJson, ['endpoints', 'remove', 'crm', '--force'])).dropped).toBeGreaterThan(0);
  });

  test('send-test-event, verify and listen', async () => {
    const { ws, url } = await sinkProject();
    await importLicenses(ws);
    const sent = await shape(ws, sendTestEventJson, ['send-test-event']);
    expect(sent).toMatchObject({ signed: true, delivery: { status: 'delivered' } });
    await shape(ws, sendTestEventJson, ['send-test-event', '--url', url, '--secret', 'other', '--event', 'license.expired_reminder']);
    const refused = await shape(ws, sendTestEventJson, ['send-test-event', '--license', 'LIC-BAD', '--event', 'license.expired'], 3);
    expect(refused.delivery).toMatchObject({ status: 'abandoned', lastStatusCode: 400 });

    fs.writeFileSync(path.join(ws.dir, 'body.json'), sent.body);
    const signature = sent.headers['X-Webhook-Signature']!;
    expect(await shape(ws, verifyJson, ['verify', '--secret', SECRET, '--signature', signature, '--file', 'body.json'])).toEqual({
      valid: true,
      verdict: 'valid',
      explanation: expect.any(String),
      expected: signature,
    });
    expect(await shape(ws, verifyJson, ['verify', '--signature', signature, '--file', 'body.json'])).toMatchObject({ valid: true });
    expect(await shape(ws, verifyJson, ['verify', '--secret', 'wrong', '--signature', signature, '--file', 'body.json'], 1)).toMatchObject({ valid: false });
    const args = ['verify', '--secret', 'wrong', '--secret', SECRET, '--signature', signature, '--file', 'body.json'];
    expect(await shape(ws, verifyJson, args)).toMatchObject({ valid: true, scheme: 'botble', secret: 2 });

    // listen runs until it is stopped: main() in this process with a stop signal, as bin/ gives it on Ctrl-C.
    let stdout = '';
    const stop = new AbortController();
    const io = { stdout: { write: (text: string) => (stdout += text) }, stderr: { write: () => true }, env: childEnv(), cwd: ws.dir };
    const listening = main(['node', 'license-manager', 'listen', '--port', '0', '--secret', SECRET, '--json'], io, undefined, stop.signal);
    while (!stdout.includes('\n')) await new Promise((resolve) => setTimeout(resolve, 5));
    const first = listeningJson.parse(JSON.parse(stdout.split('\n')[0]!));
    expect(first.signaturesChecked).toBe(true);
    await shape(ws, sendTestEventJson, ['send-test-event', '--url', first.listening, '--secret', SECRET]);
    await shape(ws, sendTestEventJson, ['send-test-event', '--url', first.listening, '--secret', 'wrong'], 3);
    stop.abort();
    expect(await listening).toBe(0);
    const lines = stdout
      .trimEnd()
      .split('\n')
      .slice(1)
      .map((line) => receivedJson.parse(JSON.parse(line)));
    expect(lines.map((line) => [line.signature, line.status])).toEqual([
      ['valid', 200],
      ['wrong-secret-or-body', 401],
    ]);
  });
});
