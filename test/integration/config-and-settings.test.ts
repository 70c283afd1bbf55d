import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from '@jest/globals';
import { withContext } from '../../src/commands/context.js';
import { processExpirations } from '../../src/commands/process-expirations.js';
import { settingsList, settingsSet, settingsUnset } from '../../src/commands/settings.js';
import { databaseTarget, loadConfig } from '../../src/config/load-config.js';
import { ExitError } from '../../src/errors.js';
import { tempDir } from '../helpers/temp-dir.js';
import { forEachDialect } from '../helpers/workspace.js';

async function expectUsageError(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(ExitError);
  expect((error as ExitError).code).toBe(2);
  expect((error as ExitError).message).toMatch(pattern);
}

describe('config discovery and validation', () => {
  test('no config file: defaults, database in the current directory', async () => {
    const dir = tempDir();
    const loaded = await loadConfig({ cwd: dir });
    expect(loaded.filepath).toBeUndefined();
    expect(loaded.config).toEqual({
      database: { tablePrefix: '' },
      webhooks: { enabled: false, url: null, secret: null, timeoutMs: 10000, retryDelaysMs: [1000, 2000, 4000], concurrency: 8, retryWindowHours: 72 },
      expirations: { warningDays: [7, 1], lookbackDays: 7, timeZone: 'UTC', afterExpiryDays: [], products: {} },
      monitoring: { ping: null, textfile: null, traceparent: [] },
      licenses: { source: 'own' },
      botble: { tablePrefix: 'lm_' },
    });
    expect(databaseTarget(loaded, {}, dir)).toMatchObject({ dialect: 'sqlite', filename: path.join(dir, 'license-manager.sqlite') });
  });

  test('database.url or LICENSE_MANAGER_DB picks the dialect; the password never shows', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'license-manager.config.json'), '{"database":{"url":"postgres://app:s3cret@db.example/licenses","tablePrefix":"lm_"}}');
    const loaded = await loadConfig({ cwd: dir });
    expect(databaseTarget(loaded, {}, dir)).toEqual({
      dialect: 'postgres',
      url: 'postgres://app:s3cret@db.example/licenses',
      host: 'db.example',
      port: 5432,
      database: 'licenses',
      tablePrefix: 'lm_',
      label: 'postgres://app:****@db.example/licenses',
    });
    expect(databaseTarget(loaded, { LICENSE_MANAGER_DB: 'mariadb://root:pw@127.0.0.1:3307/app' }, dir)).toMatchObject({
      dialect: 'mysql',
      port: 3307,
      database: 'app',
      label: 'mariadb://root:****@127.0.0.1:3307/app',
    });
    expect(databaseTarget(loaded, { LICENSE_MANAGER_DB: 'sqlite:./here.sqlite' }, dir)).toMatchObject({
      dialect: 'sqlite',
      filename: path.join(dir, 'here.sqlite'),
    });
    expect(databaseTarget(loaded, { LICENSE_MANAGER_DB: 'there.sqlite' }, dir)).toMatchObject({ dialect: 'sqlite', filename: path.join(dir, 'there.sqlite') });
    expect(() => databaseTarget(loaded, { LICENSE_MANAGER_DB: 'postgres://app:s3cret@db.example/' }, dir)).toThrow(
      /^LICENSE_MANAGER_DB: postgres:\/\/app:\*\*\*\*@db\.example\/ names no database/,
    );
    expect(() => databaseTarget(loaded, { LICENSE_MANAGER_DB: 'oracle://app:s3cret@db.example/x' }, dir)).toThrow(/unknown scheme "oracle:"/);
    // A URL missing its ":" is not read as a relative SQLite path.
    expect(() => databaseTarget(loaded, { LICENSE_MANAGER_DB: 'postgres//app:s3cret@db.example/licenses' }, dir)).toThrow(
      /^LICENSE_MANAGER_DB: postgres\/\/app:\*\*\*\*@db\.example\/licenses looks like a database URL without the ":" after "postgres"/,
    );
    expect(databaseTarget(loaded, { LICENSE_MANAGER_DB: 'postgres-data/db.sqlite' }, dir)).toMatchObject({
      dialect: 'sqlite',
      filename: path.join(dir, 'postgres-data/db.sqlite'),
    });
  });

  test.each([
    [
      '{"database":{"filename":"a.sqlite","url":"postgres://h/db"}}',
      /database: give database.filename \(a SQLite file\) or database.url \(a server\), not both/,
    ],
    ['{"database":{"url":"mysql://root:hunter2@h"}}', /database.url: mysql:\/\/root:\*\*\*\*@h names no database/],
    ['{"database":{"url":"postgres://h/db","tablePrefix":"lm-"}}', /database.tablePrefix: a table prefix may use only letters, digits and _/],
  ])('a bad database section %s is exit 2 naming the key, password masked', async (content, pattern) => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'license-manager.config.json'), content);
    const error = await loadConfig({ cwd: dir }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ExitError);
    expect((error as ExitError).code).toBe(2);
    expect((error as ExitError).message).toMatch(pattern);
    expect((error as ExitError).message).not.toMatch(/hunter2/);
  });

  test.each([
    ['license-manager.config.json', '{"webhooks":{"concurrency":3}}'],
    ['.license-managerrc', '{"webhooks":{"concurrency":3}}'],
    ['.license-managerrc.json', '{"webhooks":{"concurrency":3}}'],
    ['.license-managerrc.yaml', 'webhooks:\n  concurrency: 3\n'],
    ['package.json', '{"name":"x","license-manager":{"webhooks":{"concurrency":3}}}'],
  ])('finds %s, also when saved with a UTF-8 byte-order mark', async (file, content) => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, file), content);
    const loaded = await loadConfig({ cwd: dir });
    expect(loaded.filepath).toBe(path.join(dir, file));
    expect(loaded.config.webhooks.concurrency).toBe(3);
    // Editors on Windows save one; JSON.parse alone refuses it.
    fs.writeFileSync(path.join(dir, file), `\uFEFF${content}`);
    expect((await loadConfig({ cwd: dir })).config.webhooks.concurrency).toBe(3);
  });

  test('an invalid file is exit 2 naming the file, the key and the reason', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'license-manager.config.json');
    fs.writeFileSync(file, JSON.stringify({ webhooks: { timeoutMs: -5, url: 'ftp://x' }, expirations: { warningDays: [7, 7] } }));
    const error = (await loadConfig({ cwd: dir }).catch((caught: unknown) => caught)) as ExitError;
    expect(error.code).toBe(2);
    const lines = error.message.split('\n').map((line) => line.trim());
    expect(lines[0]).toBe(`Invalid config file ${file}:`);
    expect(lines.slice(1).sort()).toEqual([
      'expirations.warningDays: each warning day may appear only once',
      'webhooks.timeoutMs: Too small: expected number to be >=1',
      'webhooks.url: must use http: or https:, not ftp:',
    ]);
  });

  test('unknown keys (typos) and broken JSON are rejected', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'license-manager.config.json'), '{"webhook":{"url":"https://x.test"}}');
    await expectUsageError(loadConfig({ cwd: dir }), /webhook: unknown key/);
    fs.writeFileSync(path.join(dir, 'license-manager.config.json'), '{"webhooks": ');
    await expectUsageError(loadConfig({ cwd: dir }), /license-manager\.config\.json is not valid JSON: Unexpected end of JSON input/);
  });

  test('an unknown key, at the top or in a section, names the nearest known key (or the known ones)', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'license-manager.config.json');
    fs.writeFileSync(
      file,
      JSON.stringify({ webhook: {}, timeZone: 'UTC', webhooks: { enabeld: true, urll: null, colour: 'blue' }, expirations: { timezone: 'UTC' } }),
    );
    const error = (await loadConfig({ cwd: dir }).catch((caught: unknown) => caught)) as ExitError;
    expect(error.code).toBe(2);
    expect(
      error.message
        .split('\n')
        .slice(1)
        .map((line) => line.trim())
        .sort(),
    ).toEqual([
      'expirations.timezone: unknown key; did you mean "expirations.timeZone"?',
      'timeZone: unknown key; did you mean "expirations.timeZone"?',
      'webhook: unknown key; did you mean "webhooks"?',
      'webhooks.colour: unknown key (known keys of webhooks: enabled, url, secret, timeoutMs, retryDelaysMs, concurrency, retryWindowHours, endpoints)',
      'webhooks.enabeld: unknown key; did you mean "webhooks.enabled"?',
      'webhooks.urll: unknown key; did you mean "webhooks.url"?',
    ]);
  });

  test('a JSON syntax error names the file and the reason, with its code frame once (not the file quoted again)', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'license-manager.config.json');
    fs.writeFileSync(file, '{\n  "webhooks": { "enabled": true,, "secret": "do-not-echo" }\n}\n');
    const error = (await loadConfig({ cwd: dir }).catch((caught: unknown) => caught)) as ExitError;
    expect(error.code).toBe(2);
    expect(error.message.split('\n')[0]).toMatch(new RegExp(`^Config file ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not valid JSON: .*position 34`));
    expect(error.message.match(/> 2 \|/g)).toHaveLength(1);
    expect(error.message).not.toMatch(/while parsing|JSON Error in/);
    expect(error.message).not.toContain('\u001b[');
  });

  test('a time zone in any case is stored as IANA spells it, from the config file too', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'license-manager.config.json'), '{"expirations":{"timeZone":"europe/berlin"}}');
    expect((await loadConfig({ cwd: dir })).config.expirations.timeZone).toBe('Europe/Berlin');
    fs.writeFileSync(path.join(dir, 'license-manager.config.json'), '{"expirations":{"timeZone":"Asia/Kolkata"}}');
    // An alias keeps the name it was given (ICU would say Asia/Calcutta).
    expect((await loadConfig({ cwd: dir })).config.expirations.timeZone).toBe('Asia/Kolkata');
  });

  test('-c with a missing file says so', async () => {
    await expectUsageError(loadConfig({ cwd: tempDir(), file: 'nope.json' }), /nope\.json does not exist/);
  });

  test('a relative database.filename is relative to the config file, not the working directory', async () => {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, 'etc'));
    const file = path.join(dir, 'etc', 'lm.json');
    fs.writeFileSync(file, '{"database":{"filename":"data.sqlite"}}');
    const databaseFile = await withContext({ config: file, cwd: tempDir(), env: {} }, async (context) => context.databaseLabel, { migrate: true });
    expect(databaseFile).toBe(path.join(dir, 'etc', 'data.sqlite'));
    expect(fs.statSync(databaseFile).mode & 0o777).toBe(0o600);
  });
});

forEachDialect('settings', ({ workspace }) => {
  test('precedence: env > settings table > config file > default, with the source shown and the secret masked', async () => {
    const ws = workspace({ webhooks: { url: 'https://file.example/hook', secret: 'file-secret' } });
    await ws.run((context) => settingsSet(context, 'webhook-url', 'https://table.example/hook', new Date()));
    await ws.run((context) => settingsSet(context, 'warning-days', '1,14,3', new Date()));
    const env = { LICENSE_MANAGER_WEBHOOK_SECRET: 'env-secret' };
    const list = await withContext({ config: ws.configFile, cwd: ws.dir, env }, async (context) => {
      expect(context.config.webhooks).toMatchObject({ url: 'https://table.example/hook', secret: 'env-secret', enabled: false });
      expect(context.config.expirations.warningDays).toEqual([14, 3, 1]);
      return settingsList(context);
    });
    expect(list.map(({ key, value, source, origin }) => ({ key, value, source, origin }))).toEqual([
      { key: 'webhooks-enabled', value: 'false', source: 'default', origin: undefined },
      { key: 'webhook-url', value: 'https://table.example/hook', source: 'settings', origin: undefined },
      { key: 'webhook-secret', value: '********', source: 'env', origin: 'LICENSE_MANAGER_WEBHOOK_SECRET' },
      { key: 'warning-days', value: '14,3,1', source: 'settings', origin: undefined },
      { key: 'time-zone', value: 'UTC', source: 'default', origin: undefined },
      { key: 'after-expiry-days', value: 'none', source: 'default', origin: undefined },
      { key: 'ping', value: null, source: 'default', origin: undefined },
    ]);
    await ws.run((context) => settingsUnset(context, 'webhook-url'));
    const url = await ws.run(async (context) => settingsList(context).find((setting) => setting.key === 'webhook-url'));
    expect(url).toMatchObject({ value: 'https://file.example/hook', source: 'config', origin: ws.configFile });
  });

  // Every refused value on one workspace: each is refused with its reason, and the stored values stay as they were.
  test('settings set with an unknown key or a bad value is exit 2 and keeps the old value', async () => {
    const cases: [string, string, RegExp][] = [
      ['colour', 'blue', /Unknown setting "colour"\. Known settings: webhooks-enabled, webhook-url, webhook-secret, warning-days/],
      ['webhook-url', 'not a url', /Invalid value for setting webhook-url: "not a url" is not an absolute URL/],
      ['webhook-url', 'ftp://files.example/x', /must use http: or https:, not ftp:/],
      ['warning-days', '7,x', /"x" is not a whole number/],
      ['warning-days', '7,-1', /not a whole number/],
      ['warning-days', '7,7', /each warning day may appear only once/],
      ['warning-days', '', /not a whole number/],
      ['webhooks-enabled', 'yes', /must be true or false/],
      ['webhook-secret', '', /must not be empty/],
      ['time-zone', 'Europe/Berlinn', /Invalid value for setting time-zone: "Europe\/Berlinn" is not an IANA time zone/],
      ['time-zone', '', /is not an IANA time zone/],
      ['warning-days', 'nothing', /"nothing" is not a whole number/],
    ];
    const ws = workspace();
    await ws.run((context) => settingsSet(context, 'warning-days', '3', new Date()));
    await ws.run((context) => settingsSet(context, 'webhook-url', 'https://old.example/', new Date()));
    const outcomes = [];
    for (const [key, value, pattern] of cases) {
      const error = await ws
        .run((context) => settingsSet(context, key, value, new Date()))
        .then(
          () => undefined,
          (caught: unknown) => caught,
        );
      const rows = await ws.run((context) => context.db.selectFrom('settings').select(['key', 'value']).orderBy('key').execute());
      outcomes.push({
        key,
        value,
        exit: error instanceof ExitError ? error.code : String(error),
        reason: pattern.test((error as Error | undefined)?.message ?? '') || (error as Error | undefined)?.message,
        stored: rows,
      });
    }
    const stored = [
      { key: 'warning-days', value: '3' },
      { key: 'webhook-url', value: 'https://old.example/' },
    ];
    expect(outcomes).toEqual(cases.map(([key, value]) => ({ key, value, exit: 2, reason: true, stored })));
  });

  test('settings set time-zone europe/berlin stores and shows Europe/Berlin', async () => {
    const ws = workspace();
    expect(await ws.run((context) => settingsSet(context, 'time-zone', 'europe/berlin', new Date()))).toMatchObject({ stored: 'Europe/Berlin' });
    const stored = await ws.run(({ db }) => db.selectFrom('settings').select('value').where('key', '=', 'time-zone').execute());
    expect(stored).toEqual([{ value: 'Europe/Berlin' }]);
    // A row stored in another case (by an earlier version, or by hand) reads canonically as well.
    await ws.run(({ db }) => db.updateTable('settings').set({ value: 'america/new_york' }).where('key', '=', 'time-zone').execute());
    const shown = await ws.run(async (context) => ({
      zone: context.config.expirations.timeZone,
      setting: settingsList(context).find((setting) => setting.key === 'time-zone')?.value,
    }));
    expect(shown).toEqual({ zone: 'America/New_York', setting: 'America/New_York' });
  });

  test("a setting does not claim to override the file's value when that value is null", async () => {
    const ws = workspace({ webhooks: { url: null, secret: 'file-secret' } });
    await ws.run((context) => settingsSet(context, 'webhook-url', 'https://table.example/hook', new Date()));
    await ws.run((context) => settingsSet(context, 'webhook-secret', 'table-secret', new Date()));
    const list = await ws.run(async (context) => settingsList(context));
    expect(list.find((setting) => setting.key === 'webhook-url')).not.toHaveProperty('overrides');
    expect(list.find((setting) => setting.key === 'webhook-secret')).toMatchObject({ overrides: `webhooks.secret in ${ws.configFile}` });
  });

  test('time-zone and warning-days none: set, read back, and what the run uses', async () => {
    const ws = workspace({ expirations: { timeZone: 'America/Los_Angeles', warningDays: [] } });
    const fromFile = await ws.run(async (context) => ({
      zone: context.config.expirations.timeZone,
      days: context.config.expirations.warningDays,
      list: settingsList(context),
    }));
    expect(fromFile.zone).toBe('America/Los_Angeles');
    expect(fromFile.days).toEqual([]);
    expect(
      fromFile.list
        .filter((setting) => setting.key === 'time-zone' || setting.key === 'warning-days')
        .map(({ key, value, source }) => ({ key, value, source })),
    ).toEqual([
      { key: 'warning-days', value: 'none', source: 'config' },
      { key: 'time-zone', value: 'America/Los_Angeles', source: 'config' },
    ]);
    await ws.run((context) => settingsSet(context, 'time-zone', 'Europe/Berlin', new Date()));
    await ws.run((context) => settingsSet(context, 'warning-days', 'none', new Date()));
    const fromTable = await ws.run(async (context) => context.config.expirations);
    expect(fromTable).toMatchObject({ timeZone: 'Europe/Berlin', warningDays: [] });
  });

  test.each([
    [{ timeZone: 'Mars/Olympus' }, /expirations\.timeZone: "Mars\/Olympus" is not an IANA time zone/],
    [{ lookbackDays: 0 }, /expirations\.lookbackDays: must be at least 1/],
  ])('config expirations %j is exit 2 naming the key', async (expirations, pattern) => {
    const ws = workspace({ expirations });
    await expectUsageError(
      ws.run(async () => undefined),
      pattern,
    );
  });

  test('a bad environment variable is exit 2 naming it', async () => {
    const ws = workspace({}, { LICENSE_MANAGER_WEBHOOK_URL: 'localhost:8000' });
    await expectUsageError(
      ws.run(async () => undefined),
      /LICENSE_MANAGER_WEBHOOK_URL/,
    );
  });

  test('webhooks enabled without a URL: exit 2 and nothing written', async () => {
    const ws = workspace({ webhooks: { enabled: true } });
    await ws.seed([{ license_code: 'X', expires_at: '2024-01-14T00:00:00Z' }]);
    await expectUsageError(
      ws.run((context) => processExpirations(context, { now: new Date('2024-01-15T00:00:00Z') })),
      /no webhook URL is set/,
    );
    const state = await ws.run(async (context) => ({
      deliveries: await context.db.selectFrom('webhook_deliveries').selectAll().execute(),
      status: (await context.db.selectFrom('licenses').select('status').executeTakeFirstOrThrow()).status,
    }));
    expect(state).toEqual({ deliveries: [], status: 'active' });
  });
});
