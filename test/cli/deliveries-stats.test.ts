// `deliveries stats`: per endpoint success rate, response-time percentiles, error classes, last success, failure streak and what waits, from real runs against real receivers, on every dialect.
import fs from 'node:fs';
import { expect, test } from '@jest/globals';
import { closedPortUrl } from '../helpers/receiver.js';
import { aLicense, forEachDialect, receiverFor, workspace, type Workspace } from '../helpers/workspace.js';

const NOW = '2025-01-23T10:00:00Z';

async function seeded(ws: Workspace, count: number): Promise<void> {
  fs.chmodSync(ws.configFile, 0o600);
  await ws.ready();
  await ws.seed(Array.from({ length: count }, () => aLicense({ expires_at: '2025-01-22T10:00:00Z' })));
}

interface Stats {
  since: string | null;
  endpoints: Array<{
    endpoint: string;
    attempts: number;
    succeeded: number;
    successRate: number | null;
    responseMs: { median: number | null; p95: number | null };
    errors: Record<string, number>;
    lastSuccessAt: string | null;
    consecutiveFailures: number;
    deliveries: Record<string, number>;
    oldestUndeliveredAgeSeconds: number | null;
  }>;
}

forEachDialect('deliveries stats', ({ workspace: dialectWorkspace }) => {
  test('per endpoint: attempts, success rate, percentiles, error classes, last success, streak and what is abandoned; --since and --endpoint narrow it', async () => {
    // default answers 200 at once; crm 429, then 404, then 503s; chat is down.
    const main = await receiverFor();
    const crm = await receiverFor((_request, index) => (index === 0 ? 429 : index === 1 ? 404 : 503));
    const ws = dialectWorkspace({
      webhooks: {
        enabled: true,
        url: main.url,
        endpoints: [
          { name: 'crm', url: crm.url },
          { name: 'chat', url: await closedPortUrl() },
        ],
      },
    });
    await seeded(ws, 3);
    const run = await ws.cli(['process-expirations', '--now', NOW]);
    expect(run.code).toBe(3);

    const stats = JSON.parse((await ws.cli(['deliveries', 'stats', '--json'])).stdout) as Stats;
    expect(stats.since).toBeNull();
    const byName = Object.fromEntries(stats.endpoints.map((endpoint) => [endpoint.endpoint, endpoint]));
    expect(Object.keys(byName)).toEqual(['chat', 'crm', 'default']);
    expect(byName.default).toMatchObject({ attempts: 3, succeeded: 3, successRate: 1, consecutiveFailures: 0, oldestUndeliveredAgeSeconds: null });
    expect(byName.default!.deliveries).toMatchObject({ delivered: 3, abandoned: 0 });
    expect(byName.default!.lastSuccessAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    expect(byName.default!.responseMs.median).toBeGreaterThanOrEqual(0);
    expect(byName.default!.responseMs.p95).toBeGreaterThanOrEqual(byName.default!.responseMs.median!);
    // crm: what the attempts table holds, counted in SQL beside the command's numbers.
    const crmRows = await ws.rows<{ status_code: number | string }>(
      "select a.status_code from webhook_attempts a join webhook_deliveries d on d.id = a.delivery_id where d.endpoint = 'crm'",
    );
    const codes = crmRows.map((row) => Number(row.status_code));
    expect(new Set(codes)).toEqual(new Set([429, 404, 503]));
    expect(byName.crm).toMatchObject({ attempts: codes.length, succeeded: 0, successRate: 0, lastSuccessAt: null, consecutiveFailures: codes.length });
    expect(byName.crm!.errors).toMatchObject({
      http_429: codes.filter((code) => code === 429).length,
      http_5xx: codes.filter((code) => code === 503).length,
      http_4xx: codes.filter((code) => code === 404).length,
      connection_refused: 0,
    });
    expect(byName.crm!.deliveries).toMatchObject({ abandoned: 3, delivered: 0 });
    // chat: refused connections, no response time at all.
    const chatAttempts = (await ws.rows("select a.id from webhook_attempts a join webhook_deliveries d on d.id = a.delivery_id where d.endpoint = 'chat'"))
      .length;
    expect(chatAttempts).toBeGreaterThanOrEqual(3);
    expect(byName.chat).toMatchObject({ attempts: chatAttempts, succeeded: 0, consecutiveFailures: chatAttempts, responseMs: { median: null, p95: null } });
    expect(byName.chat!.errors.connection_refused).toBe(chatAttempts);

    // Attempts before the window do not count towards rates and errors; the streak and the last success stay.
    // Every crm attempt but the last moves to 2020: only that one is inside --since 24h.
    const crmIds = (
      await ws.rows<{ id: number }>(
        "select a.id from webhook_attempts a join webhook_deliveries d on d.id = a.delivery_id where d.endpoint = 'crm' order by a.id",
      )
    ).map((row) => Number(row.id));
    await ws.rows(`update webhook_attempts set started_at = '2020-01-01T00:00:00Z' where id in (${crmIds.slice(0, -1).join(', ')})`);
    const recent = JSON.parse((await ws.cli(['deliveries', 'stats', '--since', '24h', '--endpoint', 'crm', '--json'])).stdout) as Stats;
    expect(recent.since).toMatch(/Z$/);
    expect(recent.endpoints).toHaveLength(1);
    expect(recent.endpoints[0]).toMatchObject({ endpoint: 'crm', attempts: 1, succeeded: 0, successRate: 0, consecutiveFailures: codes.length });
    expect(recent.endpoints[0]!.deliveries.abandoned).toBe(3);

    const text = await ws.cli(['deliveries', 'stats']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^\s+crm\s*$/m);
    expect(text.stdout).toContain(`http 4xx ${byName.crm!.errors.http_4xx}, http 429 ${byName.crm!.errors.http_429}, http 5xx ${byName.crm!.errors.http_5xx}`);
    expect(text.stdout).toMatch(new RegExp(`errors\\s+connection refused ${chatAttempts}`));
    expect(text.stdout).toMatch(/attempts\s+3 \(3 succeeded, 100\.0%\)/);
  });
});

test('what waits: pending deliveries count with their age; an endpoint with no attempt yet gets an empty line', async () => {
  const ws = workspace({ webhooks: { enabled: false, url: 'https://hooks.example/in', endpoints: [{ name: 'quiet', url: 'https://quiet.example/in' }] } });
  await seeded(ws, 0);
  await ws.rows(
    "insert into webhook_deliveries (event_id, event_key, event_type, body, status, created_at, endpoint) values ('e1', 'k1', 'license.expired', '{}', 'pending', '2020-01-01T00:00:00Z', 'default')",
  );
  const stats = JSON.parse((await ws.cli(['deliveries', 'stats', '--json'])).stdout) as Stats;
  const byName = Object.fromEntries(stats.endpoints.map((endpoint) => [endpoint.endpoint, endpoint]));
  expect(byName.default).toMatchObject({ attempts: 0, successRate: null, lastSuccessAt: null, consecutiveFailures: 0 });
  expect(byName.default!.deliveries.pending).toBe(1);
  expect(byName.default!.oldestUndeliveredAgeSeconds).toBeGreaterThan(5 * 365 * 86_400);
  expect(byName.quiet).toMatchObject({ attempts: 0, oldestUndeliveredAgeSeconds: null });
  const text = await ws.cli(['deliveries', 'stats']);
  expect(text.stdout).toMatch(/oldest waiting\s+\d+ days/);
  expect(text.stdout).toMatch(/last success\s+never \(no attempt yet\)/);
});

test('bad input: an unknown endpoint and a --since that is no duration are exit 2 naming them', async () => {
  const ws = workspace({ webhooks: { enabled: false } });
  await seeded(ws, 0);
  const unknown = await ws.cli(['deliveries', 'stats', '--endpoint', 'crn']);
  expect([unknown.code, unknown.stdout]).toEqual([2, '']);
  expect(unknown.stderr).toContain('No endpoint named "crn" (known: default)');
  for (const since of ['yesterday', '0h', '24', '-1d', '99999999d']) {
    const bad = await ws.cli(['deliveries', 'stats', '--since', since]);
    expect([bad.code, bad.stdout]).toEqual([2, '']);
    expect(bad.stderr).toContain(`option '--since <duration>' argument '${since}' is invalid. Expected a duration such as 30m, 24h, 7d or 4w`);
  }
});
