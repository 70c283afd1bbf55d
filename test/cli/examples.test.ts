import { spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, test } from '@jest/globals';
import { runCli } from '../helpers/cli.js';
import { startExample } from '../helpers/example-receiver.js';
import { startReceiver } from '../helpers/receiver.js';
import { measure } from '../helpers/measure.js';
import { tempDir } from '../helpers/temp-dir.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SAMPLE = path.join(ROOT, 'examples', 'licenses.csv');
const SECRET = 'example-receiver-secret';
const NOW = '2025-01-15T08:00:00Z';

const running: Array<{ kill(): void }> = [];
afterEach(() => {
  for (const child of running.splice(0)) child.kill();
});

describe.each(['receiver-node.js', 'receiver-express.js'])('examples/%s', (file) => {
  test('receives the real events from process-expirations, verified and dispatched; rejects a wrong secret', async () => {
    const receiver = await startExample(file, SECRET, running);
    const cwd = tempDir();
    const env = { LICENSE_MANAGER_WEBHOOK_URL: receiver.url, LICENSE_MANAGER_WEBHOOK_SECRET: SECRET };
    await runCli(['licenses', 'import', SAMPLE], { cwd, env });
    await runCli(['settings', 'set', 'webhooks-enabled', 'true'], { cwd, env });
    const run = await runCli(['process-expirations', '--now', NOW, '--json'], { cwd, env });
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ delivered: 5, abandoned: 0 });
    const handled = receiver.lines().map((line) => [line.event_type, line.license_code, line.action]);
    expect(handled.sort((a, b) => a.join(' ').localeCompare(b.join(' ')))).toEqual([
      ['license.expired', 'LIC-0003', 'deactivate'],
      ['license.expiring', 'LIC-0001', 'remind'],
      ['license.expiring', 'LIC-0002', 'remind'],
      ['license.update_support_expired', 'LIC-0004', 'offer-renewal'],
      ['license.update_support_expired', 'LIC-0005', 'offer-renewal'],
    ]);

    const wrong = await runCli(['send-test-event', '--url', receiver.url, '--secret', 'wrong-secret'], { cwd });
    expect(wrong.code).toBe(3);
    expect(wrong.stdout).toMatch(/attempt 1: HTTP 401/);
    const unsigned = await runCli(['send-test-event', '--url', receiver.url], { cwd });
    expect(unsigned.code).toBe(3);
    expect(receiver.lines()).toHaveLength(5);
  }, 30_000);
});

describe.each(['receiver-node.js', 'receiver-express.js'])('examples/%s and test events', (file) => {
  test('a receiver that rejects unknown licenses answers a test event 2xx without acting; the production check passes', async () => {
    const receiver = await startExample(file, SECRET, running, { KNOWN_LICENSES: 'LIC-0001,LIC-0002' });
    const cwd = tempDir();
    const env = { LICENSE_MANAGER_WEBHOOK_URL: receiver.url, LICENSE_MANAGER_WEBHOOK_SECRET: SECRET };
    await runCli(['licenses', 'import', SAMPLE], { cwd, env });
    // The README's production step 4: the sample license LIC-ABC-123 is unknown to the application.
    const check = await runCli(['send-test-event'], { cwd, env });
    expect(check.code).toBe(0);
    expect(check.stdout).toMatch(/delivered/);
    const known = await runCli(['send-test-event', '--event', 'license.expired', '--license', 'LIC-0001'], { cwd, env });
    expect(known.code).toBe(0);
    await printed(receiver, 2);
    expect(receiver.lines()).toEqual([
      expect.objectContaining({ event_type: 'license.expiring', license_code: 'LIC-ABC-123', test: true, action: 'none' }),
      expect.objectContaining({ event_type: 'license.expired', license_code: 'LIC-0001', test: true, action: 'none' }),
    ]);
    // The same sample body without the header is a real event for an unknown license: refused, as the application would.
    const body = (JSON.parse((await runCli(['send-test-event', '--json'], { cwd, env })).stdout) as { body: string }).body;
    expect(await postTo(receiver.url, body, { 'content-type': 'application/json', 'x-webhook-id': 'real-1' })).toBe(422);
    // Real events of known licenses are acted on, unknown ones refused (the run abandons them: exit 3).
    await runCli(['settings', 'set', 'webhooks-enabled', 'true'], { cwd, env });
    const run = await runCli(['process-expirations', '--now', NOW, '--json'], { cwd, env: { ...env, LICENSE_MANAGER_LEASE_MS: '300' } });
    expect(JSON.parse(run.stdout)).toMatchObject({ delivered: 2, abandoned: 3 });
    await printed(receiver, 5);
    expect(
      receiver
        .lines()
        .slice(3)
        .map((line) => `${String(line.license_code)} ${String(line.action)}`)
        .sort((a, b) => a.localeCompare(b)),
    ).toEqual(['LIC-0001 remind', 'LIC-0002 remind']);
  }, 30_000);
});

/** Waits (5 s at most) until the receiver has printed `count` lines: its stdout arrives after its answers. */
async function printed(receiver: { lines: () => unknown[] }, count: number): Promise<void> {
  const started = Date.now();
  while (receiver.lines().length < count && Date.now() - started < 5000) await new Promise((resolve) => setTimeout(resolve, 20));
}

/** POSTs `body` to an example receiver, signed with SECRET unless `signature` is given; resolves with the status. */
async function postTo(
  url: string,
  body: string,
  headers: Record<string, string>,
  signature = createHmac('sha256', SECRET).update(body).digest('hex'),
): Promise<number> {
  const response = await fetch(url, { method: 'POST', body, headers: { 'x-webhook-signature': signature, ...headers } });
  await response.text();
  return response.status;
}

describe.each(['receiver-node.js', 'receiver-express.js'])('examples/%s facing what a real sender may do', (file) => {
  test('a repeated X-Webhook-Id is answered 200 and not acted on again; a body that is not JSON gets 415, not a 500 or a crash', async () => {
    const receiver = await startExample(file, SECRET, running);
    const json = { 'content-type': 'application/json' };
    const body = JSON.stringify({
      event_type: 'license.expired',
      timestamp: '2025-01-15T08:00:00Z',
      payload: { license_code: 'LIC-9', expired_at: '2025-01-15' },
    });
    const id = { ...json, 'x-webhook-id': '7d4a53b4-0d3a-4e4f-9bb4-3f2d0a1c9e11' };
    expect(await postTo(receiver.url, body, id)).toBe(200);
    // The sender's retry after a lost answer: same id, same body.
    expect(await postTo(receiver.url, body, id)).toBe(200);
    await printed(receiver, 2);
    expect(receiver.lines().map((line) => [line.license_code, line.action ?? null, line.duplicate ?? false])).toEqual([
      ['LIC-9', 'deactivate', false],
      ['LIC-9', null, true],
    ]);
    // Without X-Webhook-Id (the reference sends none) an event is never taken for a duplicate.
    expect(await postTo(receiver.url, body, json)).toBe(200);
    expect(await postTo(receiver.url, body, json)).toBe(200);
    await printed(receiver, 4);
    expect(receiver.lines().filter((line) => line.action === 'deactivate')).toHaveLength(3);

    // Another content type, and a signed body that is not JSON: 415 with a reason, and the receiver lives on.
    expect(await postTo(receiver.url, 'license_code=LIC-9', { 'content-type': 'application/x-www-form-urlencoded' })).toBe(415);
    expect(await postTo(receiver.url, 'not json {', json)).toBe(415);
    expect(await postTo(receiver.url, body, { ...json, 'x-webhook-id': 'another-id' })).toBe(200);
    await printed(receiver, 5);
    expect(receiver.stderr()).not.toMatch(/TypeError|SyntaxError|    at /);
    expect(receiver.lines().filter((line) => line.action === 'deactivate')).toHaveLength(4);
  }, 30_000);

  test('a signed body that is JSON but not an event (not an object, or no payload object) gets 422, not a 500 or a crash', async () => {
    const receiver = await startExample(file, SECRET, running);
    const json = { 'content-type': 'application/json' };
    const notEvents = ['[]', 'null', '"x"', '42', 'true', '{"event_type":"license.expired"}', '{"event_type":"license.expired","payload":null}'];
    for (const [index, body] of notEvents.entries()) {
      expect({ body, status: await postTo(receiver.url, body, { ...json, 'x-webhook-id': `not-an-event-${index}` }) }).toEqual({ body, status: 422 });
      expect({ body, status: await postTo(receiver.url, body, { ...json, 'x-webhook-test': 'true' }) }).toEqual({ body, status: 422 });
    }
    // An event type that names a property every object has is an unknown type, not a handler.
    const inherited = JSON.stringify({ event_type: '__proto__', timestamp: '2025-01-15T08:00:00Z', payload: { license_code: 'LIC-9' } });
    expect(await postTo(receiver.url, inherited, json)).toBe(200);
    const body = JSON.stringify({
      event_type: 'license.expired',
      timestamp: '2025-01-15T08:00:00Z',
      payload: { license_code: 'LIC-9', expired_at: '2025-01-15' },
    });
    expect(await postTo(receiver.url, body, json)).toBe(200);
    // receiver-node.js prints an unknown type as ignored; the Express handler's switch passes over it.
    const expected =
      file === 'receiver-node.js'
        ? [
            ['__proto__', 'ignored'],
            ['license.expired', 'deactivate'],
          ]
        : [['license.expired', 'deactivate']];
    await printed(receiver, expected.length);
    expect(receiver.stderr()).not.toMatch(/TypeError|SyntaxError|    at /);
    expect(receiver.lines().map((line) => [line.event_type ?? null, line.action])).toEqual(expected);
  }, 30_000);
});

describe('the reference PHP verifier', () => {
  const php = spawnSync('php', ['--version']).status === 0;
  const phpTest = php ? test : test.skip;
  if (!php) {
    measure('php is not on PATH: the PHP verifier check is skipped (apt-get install php-cli to run it)');
  }

  phpTest("accepts the tool's signature over the exact body, and rejects a changed body", async () => {
    const cwd = tempDir();
    const receiver = await startReceiver();
    running.push({ kill: () => void receiver.close() });
    const send = await runCli(['send-test-event', '--url', receiver.url, '--secret', SECRET, '--json'], { cwd });
    expect(send.code).toBe(0);
    expect(receiver.requests[0]!.body.toString()).toBe(JSON.parse(send.stdout).body);
    const { body, headers } = JSON.parse(send.stdout) as { body: string; headers: Record<string, string> };
    expect(headers['X-Webhook-Signature']).toBe(createHmac('sha256', SECRET).update(body).digest('hex'));
    fs.writeFileSync(path.join(cwd, 'body.json'), body);
    // The reference's verifyWebhookSignature, verbatim.
    const script = `function verifyWebhookSignature($payload, $signature, $secret): bool { $expected = hash_hmac('sha256', $payload, $secret); return hash_equals($expected, $signature); }
      $payload = file_get_contents($argv[1]);
      echo verifyWebhookSignature($payload, $argv[2], $argv[3]) ? "valid" : "invalid";`;
    const valid = spawnSync('php', ['-r', script, path.join(cwd, 'body.json'), headers['X-Webhook-Signature']!, SECRET], { encoding: 'utf8' });
    expect(valid.stdout).toBe('valid');
    fs.writeFileSync(path.join(cwd, 'body.json'), `${body}\n`);
    const changed = spawnSync('php', ['-r', script, path.join(cwd, 'body.json'), headers['X-Webhook-Signature']!, SECRET], { encoding: 'utf8' });
    expect(changed.stdout).toBe('invalid');
  });
});
