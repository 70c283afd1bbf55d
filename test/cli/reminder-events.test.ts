import path from 'node:path';
import { afterEach, describe, expect, test } from '@jest/globals';
import { runCli } from '../helpers/cli.js';
import { startExample } from '../helpers/example-receiver.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { tempDir } from '../helpers/temp-dir.js';
import { signBody } from '../../src/webhooks/sign.js';
import { verifySignature } from '../../src/webhooks/verify.js';

const SECRET = 'reminder-secret';

const running: Array<{ kill(): void }> = [];
let receiver: Receiver | undefined;
afterEach(async () => {
  for (const child of running.splice(0)) child.kill();
  await receiver?.close();
  receiver = undefined;
});

describe('license.expired_reminder outside the job', () => {
  test('send-test-event --event license.expired_reminder: the sample, and a license as the job would send it today', async () => {
    receiver = await startReceiver();
    const cwd = tempDir();
    const sample = await runCli(['send-test-event', '--url', receiver.url, '--secret', SECRET, '--event', 'license.expired_reminder', '--json'], { cwd });
    expect(sample.code).toBe(0);
    const body = JSON.parse(receiver.requests[0]!.body.toString('utf8'));
    expect(body.event_type).toBe('license.expired_reminder');
    expect(Object.keys(body.payload)).toEqual([
      'license_id',
      'license_code',
      'product_id',
      'product_reference_id',
      'customer_id',
      'email',
      'expired_at',
      'days_since_expiry',
    ]);
    expect(body.payload.days_since_expiry).toBe(1);
    expect(receiver.requests[0]!.headers['x-webhook-event']).toBe('license.expired_reminder');

    const yesterday = new Date(Date.now() - 3 * 86_400_000).toISOString().slice(0, 10);
    const file = path.join(cwd, 'licenses.json');
    (await import('node:fs')).writeFileSync(file, JSON.stringify([{ license_code: 'LATE-1', product_id: 'P', expires_at: yesterday }]));
    expect((await runCli(['licenses', 'import', file], { cwd })).code).toBe(0);
    const fromLicense = await runCli(['send-test-event', '--url', receiver.url, '--event', 'license.expired_reminder', '--license', 'LATE-1'], { cwd });
    expect(fromLicense.code).toBe(0);
    const second = JSON.parse(receiver.requests[1]!.body.toString('utf8'));
    expect(second.payload).toMatchObject({ license_code: 'LATE-1', expired_at: `${yesterday}T00:00:00Z`, days_since_expiry: 3 });

    const lifetime = path.join(cwd, 'lifetime.json');
    (await import('node:fs')).writeFileSync(lifetime, JSON.stringify([{ license_code: 'FOREVER', expires_at: null }]));
    await runCli(['licenses', 'import', lifetime], { cwd });
    const none = await runCli(['send-test-event', '--url', receiver.url, '--event', 'license.expired_reminder', '--license', 'FOREVER'], { cwd });
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/FOREVER is a lifetime license \(no expires_at\), so it has no license\.expired_reminder event/);
  });

  test('deliveries list --event license.expired_reminder is accepted; an unknown type names the choices', async () => {
    const cwd = tempDir();
    expect((await runCli(['migrate'], { cwd })).code).toBe(0);
    expect((await runCli(['deliveries', 'list', '--event', 'license.expired_reminder'], { cwd })).code).toBe(0);
    const bad = await runCli(['deliveries', 'list', '--event', 'license.reminder'], { cwd });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/license\.expired_reminder/);
  });

  test('verify: a reminder body a receiver re-ordered is diagnosed as re-serialised, days_since_expiry in its place', () => {
    const body =
      '{"event_type":"license.expired_reminder","timestamp":"2025-01-13T08:00:00Z","payload":{"license_id":7,"license_code":"LIC-7","product_id":"P","product_reference_id":"Product","customer_id":"C","email":"c@example.com","expired_at":"2025-01-10T00:00:00Z","days_since_expiry":3}}';
    const parsed = JSON.parse(body);
    const shuffled = JSON.stringify({
      payload: Object.fromEntries(Object.entries(parsed.payload).reverse()),
      timestamp: parsed.timestamp,
      event_type: parsed.event_type,
    });
    expect(verifySignature(Buffer.from(shuffled), signBody(body, SECRET), SECRET).verdict).toBe('re-serialised');
  });

  test.each(['receiver-node.js', 'receiver-express.js'])(
    'examples/%s dispatch the reminder as a win-back, and a test reminder not at all',
    async (file) => {
      const example = await startExample(file, SECRET, running);
      const cwd = tempDir();
      // A reminder as the job sends it (send-test-event marks its events, which the examples answer without acting).
      const body =
        '{"event_type":"license.expired_reminder","timestamp":"2025-01-11T08:00:00Z","payload":{"license_id":7,"license_code":"LIC-7","product_id":"P","product_reference_id":"Product","customer_id":"C","email":"c@example.com","expired_at":"2025-01-10T00:00:00Z","days_since_expiry":1}}';
      const response = await fetch(example.url, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          'X-Webhook-Event': 'license.expired_reminder',
          'X-Webhook-Id': 'reminder-1',
          'X-Webhook-Signature': signBody(body, SECRET),
        },
        body,
      });
      expect(response.status).toBe(200);
      const sent = await runCli(['send-test-event', '--url', example.url, '--secret', SECRET, '--event', 'license.expired_reminder'], { cwd });
      expect(sent.code).toBe(0);
      expect(example.lines()).toEqual([
        expect.objectContaining({ event_type: 'license.expired_reminder', license_code: 'LIC-7', action: 'win-back', days: 1 }),
        expect.objectContaining({ event_type: 'license.expired_reminder', license_code: 'LIC-ABC-123', test: true, action: 'none' }),
      ]);
    },
    30_000,
  );
});
