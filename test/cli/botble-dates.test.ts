import fs from 'node:fs';
import path from 'node:path';
import { expect, test } from '@jest/globals';
import { botbleInserts, botbleSettingInserts, botbleSuite } from '../helpers/botble.js';
import { runCli } from '../helpers/cli.js';
import { licensesShowJson } from '../helpers/json-shapes.js';
import { forEachDialect } from '../helpers/workspace.js';

const NOW = '2025-01-23T10:00:00Z';

/**
 * A DATE column can hold values that are no date this tool reads: MariaDB takes '0000-00-00' in its default
 * sql_mode, PostgreSQL takes '-infinity' and 'infinity', and a Botble schema copied into SQLite holds any text.
 */
const NOT_A_DATE = { sqlite: '0000-00-00', mysql: '0000-00-00', postgres: '-infinity' } as const;

forEachDialect('Botble mode: a date column holding no date', (under) => {
  const { dialect } = under;
  const bad = NOT_A_DATE[dialect];
  // Values no date that sort within the dates this tool reads: PostgreSQL's DATE holds none.
  const WITHIN_RANGE = dialect !== 'postgres';
  const suite = botbleSuite(under, (url) => [
    ...botbleInserts(
      dialect,
      [{ reference: 'PROD-001', name: 'Product' }],
      [
        { id: 1, product: 'PROD-001', code: 'OLD', customer: null, email: null, expires: '2024-02-29', updates: null },
        { id: 2, product: 'PROD-001', code: 'ZERO', customer: null, email: null, expires: bad, updates: null },
        { id: 3, product: 'PROD-001', code: 'UZERO', customer: null, email: null, expires: null, updates: bad },
        { id: 4, product: 'PROD-001', code: 'BLOCKED', customer: null, email: null, expires: bad, updates: null, valid: false },
        // MariaDB's default sql_mode also takes a zero month or day (and a SQLite copy any text): long past, but no date either.
        ...(WITHIN_RANGE ? [{ id: 5, product: 'PROD-001', code: 'MONTH0', customer: null, email: null, expires: '2024-00-10', updates: null }] : []),
      ],
    ),
    // A day past the month's end, as MariaDB stores it under ALLOW_INVALID_DATES: long past too.
    ...(WITHIN_RANGE
      ? botbleInserts(dialect, [], [{ id: 6, product: 'PROD-001', code: 'FEB30', customer: null, email: null, expires: '2024-02-30', updates: null }]).map(
          (insert) => (dialect === 'mysql' ? `set statement sql_mode = 'ALLOW_INVALID_DATES' for ${insert}` : insert),
        )
      : []),
    ...botbleSettingInserts(dialect, { lm_enable_webhooks: '1', lm_webhook_url: url }),
  ]);

  test('is never marked expired: each run names it as not a date, and listings show it active', async () => {
    const dir = await suite.freshDir();
    const cli = (...args: string[]) => runCli(args, { cwd: dir });
    const named = [
      `Skipped license id 2 (ZERO): expires_at "${bad}" is not a date.`,
      `Skipped license id 3 (UZERO): updates_until "${bad}" is not a date.`,
      // Before the look-back window: the long-past scan passes over them, and names them.
      ...(WITHIN_RANGE
        ? ['Skipped license id 5 (MONTH0): expires_at "2024-00-10" is not a date.', 'Skipped license id 6 (FEB30): expires_at "2024-02-30" is not a date.']
        : []),
    ];
    const skipped = named.length;

    const dryRun = await cli('process-expirations', '--now', NOW, '--dry-run', '--json');
    expect(dryRun.code).toBe(0);
    expect(JSON.parse(dryRun.stdout)).toMatchObject({ expiredWithoutEvent: 1, skipped });
    for (const line of named) expect(dryRun.stderr).toContain(line);

    const run = await cli('process-expirations', '--now', NOW, '--json');
    expect(run.code).toBe(0);
    // Marked with no event: OLD alone, counted and named.
    expect(JSON.parse(run.stdout)).toMatchObject({
      recorded: 0,
      markedExpired: 1,
      expiredWithoutEvent: 1,
      expiredWithoutEventLicenses: [{ licenseId: 1, licenseCode: 'OLD', expiresAt: '2024-02-29T00:00:00Z' }],
      skipped,
    });
    for (const line of named) expect(run.stderr).toContain(line);
    // A blocked license gets no events, so it is not named.
    expect(run.stderr).not.toContain('BLOCKED');

    const listed = JSON.parse((await cli('licenses', 'list', '--json')).stdout) as Array<{ license_code: string; status: string }>;
    expect(Object.fromEntries(listed.map((row) => [row.license_code, row.status]))).toEqual({
      OLD: 'expired',
      ZERO: 'active',
      UZERO: 'active',
      BLOCKED: 'suspended',
      ...(WITHIN_RANGE ? { MONTH0: 'active', FEB30: 'active' } : {}),
    });
    const status = JSON.parse((await cli('status', '--json')).stdout) as { licenses: { byStatus: Record<string, number> } };
    expect(status.licenses.byStatus).toEqual({ active: WITHIN_RANGE ? 4 : 2, expired: 1, suspended: 1 });

    // The next run names them again, and marks nothing more.
    const again = await cli('process-expirations', '--now', NOW, '--json');
    expect(JSON.parse(again.stdout)).toMatchObject({ markedExpired: 0, skipped });
    for (const line of named) expect(again.stderr).toContain(line);
  }, 60_000);

  test('licenses show shows a license every run skips: its value as stored and the reason, exit 0', async () => {
    const dir = await suite.freshDir();
    const show = (code: string, ...json: string[]) => runCli(['licenses', 'show', code, '--now', NOW, ...json], { cwd: dir });
    const cases = [
      { code: 'ZERO', column: 'expires_at', value: bad },
      { code: 'UZERO', column: 'updates_until', value: bad },
      ...(WITHIN_RANGE ? [{ code: 'FEB30', column: 'expires_at', value: '2024-02-30' }] : []),
    ];
    for (const { code, column, value } of cases) {
      const problem = `${column} "${value}" is not a date`;
      const text = await show(code);
      expect({ code, exit: text.code, stderr: text.stderr }).toEqual({ code, exit: 0, stderr: '' });
      expect(text.stdout).toContain(column === 'expires_at' ? `  expires: ${value} (not a date)\n` : `  update support until: ${value} (not a date)\n`);
      expect(text.stdout).toContain(`  skipped by every run: ${problem}; it gets no notices, and each run names it, until that is fixed\n`);
      expect(text.stdout).toContain('Notices to come: none (every run skips this license)\n');
      const json = await show(code, '--json');
      expect({ code, exit: json.code }).toEqual({ code, exit: 0 });
      // Botble's created_at and updated_at are its own timestamps, as its driver gives them: the shape is checked without them.
      const output = JSON.parse(json.stdout) as { license: Record<string, unknown> };
      const shown = licensesShowJson.parse({
        ...output,
        license: { ...output.license, created_at: '2024-01-01T00:00:00Z', updated_at: '2024-01-01T00:00:00Z' },
      });
      expect(output.license).toMatchObject({ license_code: code });
      expect(shown).toMatchObject({ license: { license_code: code, status: 'active', [column]: value }, problem, toCome: [] });
      expect(column === 'expires_at' ? shown.expiryDate : shown.updatesUntilDate).toBeNull();
    }
    // A license the runs read has no problem.
    expect(JSON.parse((await show('OLD', '--json')).stdout)).not.toHaveProperty('problem');
  }, 60_000);

  test('marked expired by an earlier release, it reads as active', async () => {
    const dir = await suite.freshDir();
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'license-manager.config.json'), 'utf8')) as { database: { tablePrefix: string } };
    // What an earlier release wrote for ZERO, whose date it took for long past.
    await suite
      .botble()
      .exec(
        `insert into ${config.database.tablePrefix}botble_license_states (license_id, status, expires_at, updated_at) values (2, 'expired', '${bad}', '2025-01-22T10:00:00.000Z')`,
      );
    const listed = JSON.parse((await runCli(['licenses', 'list', '--json'], { cwd: dir })).stdout) as Array<{ license_code: string; status: string }>;
    expect(listed.find((row) => row.license_code === 'ZERO')?.status).toBe('active');
    const status = JSON.parse((await runCli(['status', '--json'], { cwd: dir })).stdout) as { licenses: { byStatus: Record<string, number> } };
    expect(status.licenses.byStatus).toEqual({ active: WITHIN_RANGE ? 5 : 3, suspended: 1 });
  }, 60_000);
});

/** Botble's schema has DATE; a copy with DATETIME (MySQL) or timestamp (PostgreSQL) columns is refused, not misread. */
const OTHER_TYPES = {
  mysql: {
    alter: ['alter table lm_licenses modify expires_at datetime null'],
    restore: ['alter table lm_licenses modify expires_at date null'],
    named: 'lm_licenses.expires_at is datetime',
  },
  postgres: {
    alter: ['alter table lm_licenses alter column expires_at type timestamp, alter column updates_until type timestamptz'],
    restore: ['alter table lm_licenses alter column expires_at type date, alter column updates_until type date'],
    named: 'lm_licenses.expires_at is timestamp without time zone and lm_licenses.updates_until is timestamp with time zone',
  },
} as const;

forEachDialect(
  'Botble mode: date columns that are not DATE',
  (under) => {
    const { dialect } = under;
    const suite = botbleSuite(under, (url) => [
      ...botbleInserts(
        dialect,
        [{ reference: 'PROD-001', name: 'Product' }],
        [
          { id: 1, product: 'PROD-001', code: 'OLD', customer: null, email: null, expires: '2024-02-29', updates: null },
          { id: 2, product: 'PROD-001', code: 'SOON', customer: null, email: 'soon@example.com', expires: '2025-01-24', updates: '2025-01-22' },
        ],
      ),
      ...botbleSettingInserts(dialect, { lm_enable_webhooks: '1', lm_webhook_url: url }),
    ]);

    test('every command that reads the dates refuses with exit 2, naming the column and its type; nothing is sent or marked', async () => {
      const types = OTHER_TYPES[dialect as 'mysql' | 'postgres'];
      const dir = await suite.freshDir();
      const config = JSON.parse(fs.readFileSync(path.join(dir, 'license-manager.config.json'), 'utf8')) as { database: { tablePrefix: string } };
      await suite.botble().exec(...types.alter);
      try {
        const from = suite.receiver().requests.length;
        for (const args of [
          ['process-expirations', '--now', NOW, '--dry-run'],
          ['process-expirations', '--now', NOW],
          ['licenses', 'list'],
          ['licenses', 'show', 'SOON'],
          ['status', '--json'],
          ['send-test-event', '--license', 'SOON'],
        ]) {
          const refused = await runCli(args, { cwd: dir });
          expect({ args, code: refused.code }).toEqual({ args, code: 2 });
          // A run says it sent and marked nothing; the other commands do neither.
          const run = args[0] === 'process-expirations';
          expect(refused.stderr).toContain(`${types.named}. No license was read${run ? ', and nothing was sent or marked' : ''}. Point database.url`);
          expect(refused.stderr).toContain(
            "Botble mode reads lm_licenses.expires_at and updates_until as DATE columns, as Botble's License Manager schema has them",
          );
        }
        expect(suite.receiver().requests.length).toBe(from);
        const prefix = config.database.tablePrefix;
        expect(await suite.botble().query(`select * from ${prefix}botble_license_states`)).toEqual([]);
        expect(await suite.botble().query(`select * from ${prefix}webhook_deliveries`)).toEqual([]);
        // Reading codes needs no dates: the delivery log still opens.
        expect(await runCli(['deliveries', 'list'], { cwd: dir })).toMatchObject({ code: 0, stdout: 'No deliveries match.\n' });
      } finally {
        await suite.botble().exec(...types.restore);
      }
      // With DATE columns again, the same directory runs.
      expect((await runCli(['process-expirations', '--now', NOW, '--json'], { cwd: dir })).code).toBe(0);
    }, 60_000);
  },
  { servers: true },
);
