import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from '@jest/globals';
import { botbleInserts, botbleSettingInserts, botbleSuite } from '../helpers/botble.js';
import { runCli } from '../helpers/cli.js';
import { testDialects } from '../helpers/servers.js';
import { tempDir } from '../helpers/temp-dir.js';

const NOW = '2025-01-23T10:00:00Z';

interface Setting {
  key: string;
  value: unknown;
  source: string;
  warning?: string;
  note?: string;
}

describe.each(testDialects())("Botble's own settings as Botble reads them [%s]", (dialect) => {
  const suite = botbleSuite(dialect, (url) => [
    ...botbleInserts(
      dialect,
      [{ reference: 'PROD-001', name: 'Product' }],
      [
        { id: 1, product: 'PROD-001', code: 'L-7', customer: null, email: 'a@example.com', expires: '2025-01-30', updates: null },
        { id: 2, product: 'PROD-001', code: 'L-1', customer: null, email: 'b@example.com', expires: '2025-01-24', updates: null },
        { id: 3, product: 'PROD-001', code: 'L-EXP', customer: null, email: 'c@example.com', expires: '2025-01-23', updates: null },
      ],
    ),
    ...botbleSettingInserts(dialect, { lm_enable_webhooks: '1', lm_webhook_url: url }),
  ]);
  const { setSetting: setBotble, freshDir } = suite;

  // Values Botble's admin accepts (a free text field): the job, status, settings and migrate go on, and say what they made of it.
  test.each([
    ['7,1,7', [7, 1], undefined, ['license.expired L-EXP', 'license.expiring L-1 1', 'license.expiring L-7 7']],
    ['7, 1 days', [7, 1], 'read "1 days" as 1', ['license.expired L-EXP', 'license.expiring L-1 1', 'license.expiring L-7 7']],
    ['7;1', [7], 'read "7;1" as 7', ['license.expired L-EXP', 'license.expiring L-1 1', 'license.expiring L-7 7']],
    ['30,7,-1', [30, 7], 'dropped "-1" (not a positive number of days)', ['license.expired L-EXP', 'license.expiring L-1 1', 'license.expiring L-7 7']],
    [
      'soon, -3',
      [],
      'dropped "soon" (not a number), dropped "-3" (not a positive number of days); no day is left, so no license.expiring is sent',
      ['license.expired L-EXP'],
    ],
  ] as const)(
    'lm_expiration_warning_days %j reads as %j',
    async (stored, days, warning, events) => {
      await setBotble('lm_expiration_warning_days', stored);
      const dir = await freshDir();
      const expectWarning = (stderr: string) => {
        if (warning === undefined) expect(stderr).toBe('');
        else expect(stderr).toContain(`warning: Botble setting lm_expiration_warning_days is ${JSON.stringify(stored)}: ${warning}`);
      };

      const migrate = await runCli(['migrate'], { cwd: dir });
      expect(migrate.code).toBe(0);
      expectWarning(migrate.stderr);

      const listed = await runCli(['settings', 'list', '--json'], { cwd: dir });
      expect(listed.code).toBe(0);
      const setting = (JSON.parse(listed.stdout) as Setting[]).find((candidate) => candidate.key === 'warning-days')!;
      expect(setting).toMatchObject({ value: days, source: 'botble' });
      if (warning === undefined) expect(setting.warning).toBeUndefined();
      else expect(setting.warning).toContain(warning);
      const listedText = await runCli(['settings', 'list'], { cwd: dir });
      if (warning !== undefined)
        expect(listedText.stdout).toContain(`warning-days: Botble setting lm_expiration_warning_days is ${JSON.stringify(stored)}: ${warning}`);

      const from = suite.receiver().requests.length;
      const run = await runCli(['process-expirations', '--now', NOW, '--json'], { cwd: dir });
      expect(run.code).toBe(0);
      expectWarning(run.stderr);
      const sent = suite
        .receiver()
        .requests.slice(from)
        .map((request) => {
          const { event_type: type, payload } = JSON.parse(request.body.toString('utf8')) as {
            event_type: string;
            payload: { license_code: string; days_until_expiry?: number };
          };
          return [type, payload.license_code, payload.days_until_expiry].filter((part) => part !== undefined).join(' ');
        });
      expect(sent.sort()).toEqual([...events]);

      const status = await runCli(['status', '--json', '--now', NOW], { cwd: dir });
      expect(status.code).toBe(0);
      const notes = (JSON.parse(status.stdout) as { settingNotes: Array<{ key: string; warning?: string }> }).settingNotes;
      expect(notes.find((note) => note.key === 'warning-days')?.warning).toEqual(warning === undefined ? undefined : expect.stringContaining(warning));
    },
    120_000,
  );

  test("Botble's switch lm_send_expiration_warnings is shown by settings list and status, and does not stop webhooks here", async () => {
    await setBotble('lm_expiration_warning_days', '7,1');
    for (const [stored, state] of [
      [undefined, "is not set (Botble's default: off): Botble's own cron job sends nothing while it is off, neither e-mails nor webhooks"],
      ['0', `is off ("0"): Botble's own cron job sends nothing`],
      [
        '1',
        "is on ('1'): Botble's own cron job (cms:license-manager:process-expirations) sends its e-mails and webhooks while it is scheduled: unschedule it or turn this off, or each event goes out twice",
      ],
    ] as const) {
      await setBotble('lm_send_expiration_warnings', stored);
      const dir = await freshDir();
      const note = `Botble's switch lm_send_expiration_warnings ${state}`;

      const listed = JSON.parse((await runCli(['settings', 'list', '--json'], { cwd: dir })).stdout) as Setting[];
      expect(listed.find((setting) => setting.key === 'webhooks-enabled')).toMatchObject({
        value: true,
        source: 'botble',
        note: expect.stringContaining(note),
      });
      expect(listed.find((setting) => setting.key === 'webhooks-enabled')!.note).toContain(
        'This tool does not use it: webhooks go out whenever webhooks-enabled is true.',
      );
      const listedText = await runCli(['settings', 'list'], { cwd: dir });
      expect(listedText.stdout).toContain(`webhooks-enabled: ${note}`);

      // Whatever the switch says, enabled webhooks go out.
      const from = suite.receiver().requests.length;
      const run = await runCli(['process-expirations', '--now', NOW, '--json'], { cwd: dir });
      expect(run).toMatchObject({ code: 0, stderr: '' });
      expect(suite.receiver().requests.length - from).toBe(3);

      const status = await runCli(['status', '--json', '--now', NOW], { cwd: dir });
      expect((JSON.parse(status.stdout) as { settingNotes: Array<{ key: string; note?: string }> }).settingNotes).toContainEqual({
        key: 'webhooks-enabled',
        note: expect.stringContaining(note),
      });
      const statusText = await runCli(['status', '--now', NOW], { cwd: dir });
      expect(statusText.stdout).toContain(`webhooks-enabled: ${note}`);
    }
    await setBotble('lm_send_expiration_warnings', undefined);
  }, 300_000);
});

describe('own mode', () => {
  test('no Botble note: the switch belongs to Botble mode only', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'license-manager.config.json'), '{}');
    expect((await runCli(['migrate'], { cwd: dir })).code).toBe(0);
    const listed = JSON.parse((await runCli(['settings', 'list', '--json'], { cwd: dir })).stdout) as Setting[];
    expect(listed.every((setting) => setting.note === undefined && setting.warning === undefined)).toBe(true);
  });
});
