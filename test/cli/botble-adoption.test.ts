import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from '@jest/globals';
import { botbleInserts, botbleSettingInserts, botbleSuite, type BotbleLicense } from '../helpers/botble.js';
import { runCli } from '../helpers/cli.js';
import { forEachDialect } from '../helpers/workspace.js';
import type { Receiver } from '../helpers/receiver.js';
import { tempDir } from '../helpers/temp-dir.js';

// The first run after Botble's own job stopped: it last ran on the 22nd, this tool takes over on the 23rd.
const NOW = '2025-01-23T10:00:00Z';
const LAST_BOTBLE_RUN = '2025-01-22';
const LICENSES: BotbleLicense[] = [
  // Warnings go out on the exact day expires_at - N (7 and 1), only to a license with an e-mail address.
  { id: 1, product: 'P', code: 'SEVEN-TODAY', customer: null, email: 'a@example.com', expires: '2025-01-30', updates: null },
  { id: 2, product: 'P', code: 'SEVEN-SENT', customer: null, email: 'b@example.com', expires: '2025-01-27', updates: null },
  { id: 3, product: 'P', code: 'NO-EMAIL', customer: null, email: null, expires: '2025-01-27', updates: null },
  { id: 4, product: 'P', code: 'ONE-TODAY', customer: null, email: 'd@example.com', expires: '2025-01-24', updates: null },
  // Expiries are announced on every run after the date, never on the date itself.
  { id: 5, product: 'P', code: 'EXPIRED-SENT', customer: null, email: 'e@example.com', expires: '2025-01-21', updates: null },
  { id: 6, product: 'P', code: 'EXPIRED-ON-LAST', customer: null, email: 'f@example.com', expires: '2025-01-22', updates: null },
  { id: 7, product: 'P', code: 'EXPIRED-TODAY', customer: null, email: 'g@example.com', expires: '2025-01-23', updates: null },
  { id: 8, product: 'P', code: 'SUPPORT-SENT', customer: null, email: null, expires: null, updates: '2025-01-20' },
];
const MARKED = ['license.expired EXPIRED-SENT', 'license.expiring SEVEN-SENT', 'license.update_support_expired SUPPORT-SENT'];
const LEFT = [
  'license.expired EXPIRED-ON-LAST',
  'license.expired EXPIRED-TODAY',
  'license.expiring NO-EMAIL',
  'license.expiring ONE-TODAY',
  'license.expiring SEVEN-TODAY',
];

interface Report {
  type: string;
  licenseCode: string;
  reason?: string;
}

const names = (events: Report[]) => events.map((event) => `${event.type} ${event.licenseCode}`).sort();

function sent(receiver: Receiver, from: number): string[] {
  return receiver.requests
    .slice(from)
    .map((request) => JSON.parse(request.body.toString('utf8')) as { event_type: string; payload: { license_code: string } })
    .map((event) => `${event.event_type} ${event.payload.license_code}`)
    .sort();
}

forEachDialect("process-expirations --mark-sent-through: what Botble's own job sent is recorded, not sent again", (under) => {
  const { dialect } = under;
  const suite = botbleSuite(under, (url) => [
    ...botbleInserts(dialect, [{ reference: 'P', name: 'Product' }], LICENSES),
    ...botbleSettingInserts(dialect, { lm_enable_webhooks: '1', lm_webhook_url: url, lm_send_expiration_warnings: '1', lm_expiration_warning_days: '7,1' }),
  ]);

  async function freshDir(): Promise<{ cli: (...args: string[]) => ReturnType<typeof runCli> }> {
    const dir = await suite.freshDir();
    return { cli: (...args) => runCli(args, { cwd: dir }) };
  }

  test('a dry run shows it; the real one sends nothing and leaves the marked events in the log; the first run sends only the rest', async () => {
    const before = await suite.botble().checksum();
    const { cli } = await freshDir();
    const from = suite.receiver().requests.length;

    const preview = await cli('process-expirations', '--now', NOW, '--mark-sent-through', LAST_BOTBLE_RUN, '--dry-run', '--json');
    expect(preview).toMatchObject({ code: 0, stderr: '' });
    const planned = JSON.parse(preview.stdout) as { dryRun: boolean; recorded: number; marked: Report[]; left: Report[] };
    expect(planned).toMatchObject({ dryRun: true, recorded: 0 });
    expect(names(planned.marked)).toEqual(MARKED);
    expect(names(planned.left)).toEqual(LEFT);
    expect(planned.left.find((event) => event.licenseCode === 'NO-EMAIL')!.reason).toMatch(/no e-mail address/);
    expect(planned.left.find((event) => event.licenseCode === 'EXPIRED-ON-LAST')!.reason).toBe("Botble's job would have sent it on 2025-01-23");
    expect(JSON.parse((await cli('deliveries', 'list', '--json')).stdout)).toEqual([]);

    const text = await cli('process-expirations', '--now', NOW, '--mark-sent-through', LAST_BOTBLE_RUN);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`marked as sent 3 events Botble's own cron job sent by ${LAST_BOTBLE_RUN}:`);
    expect(text.stdout).toContain('license.expiring for SEVEN-SENT (id 2): 2025-01-27T00:00:00Z (4 days left)');
    expect(text.stdout).toContain('left for the next run, which sends them: 5 events');
    expect(suite.receiver().requests.length).toBe(from);

    // In the log as delivered, with no attempt, saying who sent them; EXPIRED-SENT reads as expired.
    const log = JSON.parse((await cli('deliveries', 'list', '--json')).stdout) as Array<{
      event_type: string;
      license_code: string;
      status: string;
      attempts: number;
      last_error: string;
    }>;
    expect(log.map((row) => `${row.event_type} ${row.license_code}`).sort()).toEqual(MARKED);
    for (const row of log) {
      expect(row).toMatchObject({ status: 'delivered', attempts: 0 });
      expect(row.last_error).toMatch(new RegExp(`^not sent by this tool: marked as sent by Botble's own cron job, which ran through ${LAST_BOTBLE_RUN}`));
    }
    const expired = JSON.parse((await cli('licenses', 'list', '--status', 'expired', '--json')).stdout) as Array<{ license_code: string }>;
    expect(expired.map((row) => row.license_code)).toEqual(['EXPIRED-SENT']);

    // Once is enough: nothing is left to mark, and that is said (exit 2, nothing written).
    const twice = await cli('process-expirations', '--now', NOW, '--mark-sent-through', LAST_BOTBLE_RUN);
    expect(twice.code).toBe(2);
    expect(twice.stderr).toContain(`Nothing to mark: none of the 5 events due at ${NOW} was sent by Botble's job by ${LAST_BOTBLE_RUN}`);

    // The first real run sends only what Botble's job had not.
    const run = await cli('process-expirations', '--now', NOW, '--json');
    expect(run.code).toBe(0);
    expect(sent(suite.receiver(), from)).toEqual(LEFT);
    expect(await suite.botble().checksum()).toBe(before);
  }, 240_000);

  test('refused, with nothing written, for a day still to come, a date that is none, and when Botble sent nothing (switch or webhooks off)', async () => {
    const { cli } = await freshDir();
    const refusals: Array<[string[], RegExp]> = [
      [['--mark-sent-through', '2025-01-24'], /--mark-sent-through 2025-01-24 is after today \(2025-01-23 in UTC\)/],
      [
        ['--mark-sent-through', '2025-02-30'],
        /argument '2025-02-30' is invalid\. Expected a date such as 2025-01-08 \(YYYY-MM-DD, a day in the business time zone\)/,
      ],
      [['--mark-sent-through', 'yesterday'], /argument 'yesterday' is invalid/],
    ];
    for (const [args, message] of refusals) {
      const refused = await cli('process-expirations', '--now', NOW, ...args);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(message);
      expect(refused.stdout).toBe('');
    }
    await suite.setSetting('lm_send_expiration_warnings', '0');
    try {
      const off = await cli('process-expirations', '--now', NOW, '--mark-sent-through', LAST_BOTBLE_RUN);
      expect(off.code).toBe(2);
      expect(off.stderr).toMatch(/Nothing to mark: Botble's switch lm_send_expiration_warnings is off, so Botble's own cron job sent no e-mail and no webhook/);
    } finally {
      await suite.setSetting('lm_send_expiration_warnings', '1');
    }
    await suite.setSetting('lm_enable_webhooks', '0');
    try {
      const noWebhooks = await cli('process-expirations', '--now', NOW, '--mark-sent-through', LAST_BOTBLE_RUN);
      expect(noWebhooks.code).toBe(2);
      expect(noWebhooks.stderr).toMatch(/Nothing to mark: Botble's lm_enable_webhooks is off/);
    } finally {
      await suite.setSetting('lm_enable_webhooks', '1');
    }
    expect(JSON.parse((await cli('deliveries', 'list', '--json')).stdout)).toEqual([]);
  }, 240_000);
});

describe('--mark-sent-through in own mode (licenses exported from Botble)', () => {
  test('the same rules mark the same events; no Botble switch is asked for', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'license-manager.config.json'), JSON.stringify({ webhooks: { enabled: false } }));
    const rows = LICENSES.map((license) => ({
      id: license.id,
      license_code: license.code,
      email: license.email,
      expires_at: license.expires,
      updates_until: license.updates,
    }));
    fs.writeFileSync(path.join(dir, 'licenses.json'), JSON.stringify(rows));
    expect((await runCli(['licenses', 'import', 'licenses.json'], { cwd: dir })).code).toBe(0);
    const marked = await runCli(['process-expirations', '--now', NOW, '--mark-sent-through', LAST_BOTBLE_RUN, '--json'], { cwd: dir });
    expect(marked.code).toBe(0);
    const result = JSON.parse(marked.stdout) as { recorded: number; marked: Report[]; left: Report[] };
    expect(result.recorded).toBe(3);
    expect(names(result.marked)).toEqual(MARKED);
    expect(names(result.left)).toEqual(LEFT);
  }, 120_000);
});
