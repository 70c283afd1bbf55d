// The operator's day (issue 16, items 10, 11, 13, 21): hints that reach the same database, no database created by
// accident, a refused run that status sees, abandoned deliveries judged by what is undelivered now, marked test
// events, and no credential printed in any form.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, test } from '@jest/globals';
import { runCli } from '../helpers/cli.js';
import { createBotbleDatabase } from '../helpers/botble.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { createServerDatabase, testDialects } from '../helpers/servers.js';
import { ROOT } from '../helpers/readme.js';
import { tempDir } from '../helpers/temp-dir.js';

let receiver: Receiver | undefined;
afterEach(async () => {
  await receiver?.close();
  receiver = undefined;
});

const HOUR = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');

/** licenses.csv with one license that expires in 30 hours: a notice is due now. */
function dueCsv(dir: string): string {
  const file = path.join(dir, 'licenses.csv');
  fs.writeFileSync(file, `license_code,email,status,expires_at\nDUE-1,a@example.com,active,${iso(Date.now() + 30 * HOUR)}\n`);
  return file;
}

/**
 * A release folder (where an operator types commands) and a config in etc/ naming a database in var/, fast retries, and
 * the reference's abandon-at-once (retryWindowHours 0): these tests follow abandoned deliveries and their hints.
 */
function installation(webhooks: Record<string, unknown> = {}) {
  const root = tempDir();
  fs.mkdirSync(path.join(root, 'etc'));
  fs.mkdirSync(path.join(root, 'var'));
  fs.mkdirSync(path.join(root, 'release'));
  const config = path.join(root, 'etc', 'config.json');
  const database = path.join(root, 'var', 'db.sqlite');
  fs.writeFileSync(
    config,
    JSON.stringify({ database: { filename: database }, webhooks: { retryDelaysMs: [10, 10], timeoutMs: 2000, retryWindowHours: 0, ...webhooks } }),
    { mode: 0o600 },
  );
  return { root, config, database, release: path.join(root, 'release') };
}

describe('hints name the database the run used (item 11)', () => {
  test('a run given -c prints hints with that -c (absolute); one without prints them short', async () => {
    receiver = await startReceiver(() => 410);
    const setup = installation({ enabled: true, url: receiver.url });
    const cwd = setup.release;
    // Given relative to the folder the command is typed in: the hint carries the absolute path.
    expect((await runCli(['-c', '../etc/config.json', 'licenses', 'import', dueCsv(setup.root)], { cwd })).code).toBe(0);
    const run = await runCli(['-c', '../etc/config.json', 'process-expirations', '--quiet'], { cwd });
    expect(run.code).toBe(3);
    expect(run.stderr).toContain(`re-send with "license-manager -c ${setup.config} deliveries retry --abandoned" once the receiver is fixed`);
    const status = await runCli(['-c', setup.config, 'status', '--quiet'], { cwd });
    expect(status.code).toBe(3);
    expect(status.stderr).toContain(`re-send with "license-manager -c ${setup.config} deliveries retry --abandoned"`);
    // The hint, typed as printed in another folder, reaches the same database.
    await receiver.close();
    receiver = await startReceiver();
    await runCli(['-c', setup.config, 'settings', 'set', 'webhook-url', receiver.url], { cwd });
    const retry = await runCli(['-c', setup.config, 'deliveries', 'retry', '--abandoned', '--json'], { cwd: tempDir() });
    expect(retry.code).toBe(0);
    expect(JSON.parse(retry.stdout)).toMatchObject({ delivered: 1 });

    // Without -c (the config found in the folder): short hints.
    const local = tempDir();
    fs.writeFileSync(
      path.join(local, 'license-manager.config.json'),
      JSON.stringify({ webhooks: { enabled: true, url: 'http://127.0.0.1:1/hook', retryDelaysMs: [10], timeoutMs: 500, retryWindowHours: 0 } }),
    );
    await runCli(['licenses', 'import', dueCsv(local)], { cwd: local });
    const short = await runCli(['process-expirations', '--quiet'], { cwd: local });
    expect(short.code).toBe(3);
    expect(short.stderr).toContain('re-send with "license-manager deliveries retry --abandoned" once the receiver is fixed');
  });

  test.each([
    [['status']],
    [['process-expirations']],
    [['process-expirations', '--dry-run']],
    [['deliveries', 'retry', '--abandoned']],
    [['deliveries', 'list']],
    [['licenses', 'list']],
    [['settings', 'list']],
    [['settings', 'set', 'webhook-url', 'https://example.com/hook']],
    [['send-test-event']],
  ])('%j where the database does not exist: exit 2 naming the absolute path and how to create it; nothing created', async (args) => {
    const setup = installation();
    const before = fs.readdirSync(setup.root, { recursive: true });
    const result = await runCli(['-c', '../etc/config.json', ...args], { cwd: setup.release });
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      `error: Database ${setup.database} does not exist (database.filename in ${setup.config} names it); nothing was created. Create it with "license-manager -c ${setup.config} migrate" (or "license-manager -c ${setup.config} licenses import <file>"), or, if the licenses are in another database, run this command with the -c or LICENSE_MANAGER_DB that points at it.\n`,
    );
    expect(fs.readdirSync(setup.root, { recursive: true })).toEqual(before);
  });

  test('in a folder without a config: the default file in the current folder is named, and not created', async () => {
    const cwd = tempDir();
    const result = await runCli(['deliveries', 'retry', '--abandoned'], { cwd });
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      `error: Database ${path.join(cwd, 'license-manager.sqlite')} does not exist (no config file was found here, so the default database file in the current folder applies); nothing was created. Create it with "license-manager migrate" (or "license-manager licenses import <file>"), or, if the licenses are in another database, run this command with the -c or LICENSE_MANAGER_DB that points at it.\n`,
    );
    expect(fs.readdirSync(cwd)).toEqual([]);
    const fromEnv = await runCli(['status'], { cwd, env: { LICENSE_MANAGER_DB: 'elsewhere.sqlite' } });
    expect(fromEnv.code).toBe(2);
    const elsewhere = path.join(cwd, 'elsewhere.sqlite');
    expect(fromEnv.stderr).toContain(
      `Database ${elsewhere} does not exist (LICENSE_MANAGER_DB names it); nothing was created. Create it with "LICENSE_MANAGER_DB=${elsewhere} license-manager migrate" (or "LICENSE_MANAGER_DB=${elsewhere} license-manager licenses import <file>")`,
    );
    expect(fs.readdirSync(cwd)).toEqual([]);
    // The hint, followed as printed, creates the database the failed command looked for.
    expect(await runCli(['migrate'], { cwd, env: { LICENSE_MANAGER_DB: elsewhere } })).toMatchObject({ code: 0 });
    expect(fs.readdirSync(cwd)).toEqual(['elsewhere.sqlite']);
  });

  test('migrate and licenses import create the database; send-test-event --url needs none and creates none', async () => {
    const migrated = installation();
    expect(await runCli(['-c', migrated.config, 'migrate'], { cwd: migrated.release })).toMatchObject({ code: 0 });
    expect(fs.statSync(migrated.database).mode & 0o777).toBe(0o600);
    expect((await runCli(['-c', migrated.config, 'status'], { cwd: migrated.release })).code).toBe(0);
    const imported = installation();
    expect((await runCli(['-c', imported.config, 'licenses', 'import', dueCsv(imported.root)], { cwd: imported.release })).code).toBe(0);
    expect(fs.existsSync(imported.database)).toBe(true);

    receiver = await startReceiver();
    const bare = tempDir();
    const sent = await runCli(['send-test-event', '--url', receiver.url, '--secret', 's3cret'], { cwd: bare });
    expect(sent.code).toBe(0);
    expect(fs.readdirSync(bare)).toEqual([]);
    // --license reads the database: refused without one.
    const license = await runCli(['send-test-event', '--url', receiver.url, '--license', 'DUE-1'], { cwd: bare });
    expect(license.code).toBe(2);
    expect(license.stderr).toContain('does not exist');
    expect(fs.readdirSync(bare)).toEqual([]);
  });
});

describe('status after a refused run and after a retry (item 10)', () => {
  test('a run refused before it starts (webhooks enabled, no URL) is recorded: status fails with the reason until a run succeeds', async () => {
    const setup = installation({ enabled: true });
    const cwd = setup.release;
    const c = ['-c', setup.config];
    await runCli([...c, 'licenses', 'import', dueCsv(setup.root)], { cwd });
    receiver = await startReceiver();
    // A good run first: the refusal must not hide behind it.
    expect((await runCli([...c, 'process-expirations', '--quiet'], { cwd, env: { LICENSE_MANAGER_WEBHOOK_URL: receiver.url } })).code).toBe(0);
    expect((await runCli([...c, 'status', '--quiet'], { cwd })).code).toBe(0);
    // Runs are recorded to the second: the refusal comes a second later, as the next day's would.
    await new Promise((resolve) => setTimeout(resolve, 1100));

    const refused = await runCli([...c, 'process-expirations', '--quiet'], { cwd });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('Webhooks are enabled but no webhook URL is set');
    const status = await runCli([...c, 'status', '--quiet'], { cwd });
    expect(status.code).toBe(1);
    expect(status.stderr).toMatch(
      /^warning: the last run \(\S+\) refused to start: Webhooks are enabled but no webhook URL is set: run "license-manager -c \S+ settings set webhook-url <url>"/,
    );
    const json = JSON.parse((await runCli([...c, 'status', '--json'], { cwd })).stdout) as {
      runs: Array<Record<string, unknown>>;
      health: { exitCode: number };
    };
    expect(json.health.exitCode).toBe(1);
    expect(json.runs[0]).toMatchObject({ status: 'refused', exitCode: 2, error: expect.stringContaining('no webhook URL is set') });
    // A dry run is not the job: it records nothing.
    expect((await runCli([...c, 'process-expirations', '--dry-run', '--quiet'], { cwd })).code).toBe(0);
    expect((await runCli([...c, 'status', '--quiet'], { cwd })).code).toBe(1);
    // Fixed: the next run succeeds and status is OK again.
    await runCli([...c, 'settings', 'set', 'webhook-url', receiver.url], { cwd });
    expect((await runCli([...c, 'process-expirations', '--quiet'], { cwd })).code).toBe(0);
    expect((await runCli([...c, 'status', '--quiet'], { cwd })).code).toBe(0);
  });

  test('abandoned deliveries re-sent with deliveries retry --abandoned: status is OK (exit 0) again; abandoned ones still there: 3', async () => {
    let failing = true;
    receiver = await startReceiver(() => (failing ? 500 : 200));
    const setup = installation({ enabled: true, url: receiver.url });
    const c = ['-c', setup.config];
    const cwd = setup.release;
    await runCli([...c, 'licenses', 'import', dueCsv(setup.root)], { cwd });
    expect((await runCli([...c, 'process-expirations', '--quiet'], { cwd })).code).toBe(3);
    expect((await runCli([...c, 'status', '--quiet'], { cwd })).code).toBe(3);
    // A retry while the receiver still fails: still abandoned, still 3.
    expect((await runCli([...c, 'deliveries', 'retry', '--abandoned', '--quiet'], { cwd })).code).toBe(3);
    const still = await runCli([...c, 'status', '--quiet'], { cwd });
    expect(still.code).toBe(3);
    expect(still.stderr).toContain('1 delivery abandoned and not re-sent (the last run,');
    failing = false;
    expect((await runCli([...c, 'deliveries', 'retry', '--abandoned', '--quiet'], { cwd })).code).toBe(0);
    const status = await runCli([...c, 'status', '--json'], { cwd });
    expect(status.code).toBe(0);
    const result = JSON.parse(status.stdout) as { deliveries: { byStatus: Record<string, number> }; health: { reason: string } };
    expect(result.deliveries.byStatus).toEqual({ delivered: 1 });
    expect(result.health.reason).toMatch(/^the last run finished at \S+; the 1 delivery it abandoned has been re-sent since$/);
  });
});

describe('test events are marked (item 13)', () => {
  test('send-test-event adds X-Webhook-Test: true, the body is the same as a real event of the same license; real runs do not mark', async () => {
    receiver = await startReceiver();
    const setup = installation({ enabled: true, url: receiver.url, secret: 's3cret' });
    const c = ['-c', setup.config];
    const cwd = setup.release;
    await runCli([...c, 'licenses', 'import', dueCsv(setup.root)], { cwd });
    const sample = await runCli([...c, 'send-test-event', '--json'], { cwd });
    expect(sample.code).toBe(0);
    const printed = JSON.parse(sample.stdout) as { headers: Record<string, string>; body: string };
    expect(printed.headers['X-Webhook-Test']).toBe('true');
    expect(receiver.requests[0]!.headers['x-webhook-test']).toBe('true');
    // The reference's payload, unchanged: no test flag in the body.
    expect(receiver.requests[0]!.body.toString()).toBe(printed.body);
    expect(Object.keys(JSON.parse(printed.body) as object)).toEqual(['event_type', 'timestamp', 'payload']);
    expect(printed.body).not.toMatch(/test/i);
    const text = await runCli([...c, 'send-test-event'], { cwd });
    expect(text.stdout).toContain('X-Webhook-Test: true');

    expect((await runCli([...c, 'send-test-event', '--event', 'license.expired', '--license', 'DUE-1'], { cwd })).code).toBe(0);
    expect(receiver.requests[2]!.headers['x-webhook-test']).toBe('true');
    expect((await runCli([...c, 'process-expirations', '--quiet'], { cwd })).code).toBe(0);
    const real = receiver.requests[3]!;
    expect(real.headers['x-webhook-event']).toBe('license.expiring');
    expect(real.headers['x-webhook-test']).toBeUndefined();
    // The test event of a license and its real event carry the same payload fields.
    const testPayload = (JSON.parse(receiver.requests[2]!.body.toString()) as { payload: object }).payload;
    const realPayload = (JSON.parse(real.body.toString()) as { payload: object }).payload;
    expect(Object.keys(testPayload).filter((key) => key !== 'expired_at')).toEqual(
      Object.keys(realPayload).filter((key) => key !== 'days_until_expiry' && key !== 'expires_at'),
    );
  });

  test('listen says a request is a test event', async () => {
    const { startListen } = await import('../helpers/cli.js');
    const cwd = tempDir();
    const listener = await startListen(['--secret', 's3cret'], cwd);
    try {
      expect((await runCli(['send-test-event', '--url', listener.url, '--secret', 's3cret'], { cwd })).code).toBe(0);
      const started = Date.now();
      while (!listener.stdout().includes('x-webhook-test') && Date.now() - started < 5000) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(listener.stdout()).toMatch(/license\.expiring {2}\(test event\) {2}id /);
      expect(listener.stdout()).toContain('x-webhook-test: true');
    } finally {
      await listener.stop();
    }
  });
});

describe('credentials are never printed (item 21)', () => {
  const SECRET = 'pw-Zq81secret';

  test('?password= in database.url: masked in errors, --json and the run record; the config file readable by others is warned about', async () => {
    const cwd = tempDir();
    const config = path.join(cwd, 'license-manager.config.json');
    // Port 1: nothing listens, so every command fails connecting, the error path.
    fs.writeFileSync(config, JSON.stringify({ database: { url: `postgres://app@127.0.0.1:1/licenses?sslmode=disable&password=${SECRET}` } }), { mode: 0o644 });
    fs.chmodSync(config, 0o644);
    for (const args of [['migrate'], ['status'], ['status', '--json'], ['process-expirations', '--json'], ['settings', 'list']]) {
      const result = await runCli(args, { cwd });
      expect({ args, code: result.code }).toEqual({ args, code: 1 });
      expect(result.stdout + result.stderr).not.toContain(SECRET);
      expect(result.stderr).toContain('postgres://app@127.0.0.1:1/licenses?sslmode=disable&password=****');
      expect(result.stderr).toContain(
        `warning: ${config} holds the database password (database.url) and other users can read it (mode 644): run "chmod 600 ${config}"`,
      );
    }
    fs.chmodSync(config, 0o600);
    expect((await runCli(['status'], { cwd })).stderr).not.toContain('other users can read it');
  });

  test('a password with "/" that makes the URL unparsable: the part named, the URL never quoted whole (LICENSE_MANAGER_DB and database.url)', async () => {
    const cwd = tempDir();
    const url = `mysql://app:${SECRET}/x@127.0.0.1:3306/licenses`;
    const fromEnv = await runCli(['status'], { cwd, env: { LICENSE_MANAGER_DB: url } });
    expect(fromEnv.code).toBe(2);
    expect(fromEnv.stderr).toBe(
      'error: LICENSE_MANAGER_DB: mysql://app:****@127.0.0.1:3306/licenses is not a valid URL: the password contains "/", which ends the user and password part of a URL: write it as %2F (expected mysql://user:<password>@host:port/database).\n',
    );
    fs.writeFileSync(path.join(cwd, 'license-manager.config.json'), JSON.stringify({ database: { url: `postgres://app:${SECRET}@x/y@db.example/licenses` } }), {
      mode: 0o600,
    });
    const fromFile = await runCli(['migrate', '--json'], { cwd });
    expect(fromFile.code).toBe(2);
    expect(fromFile.stdout + fromFile.stderr).not.toContain(SECRET);
    expect(fromFile.stderr).toContain('database.url: postgres://app:****@db.example/licenses');
    expect(fs.readdirSync(cwd)).toEqual(['license-manager.config.json']);
  });

  test('the webhook URL: userinfo and secret-looking query parameters masked in settings, status, runs and --json; sent as given', async () => {
    receiver = await startReceiver();
    const setup = installation({ enabled: true });
    const c = ['-c', setup.config];
    const cwd = setup.release;
    await runCli([...c, 'licenses', 'import', dueCsv(setup.root)], { cwd });
    const url = `${receiver.url.replace('http://', `http://ops:${SECRET}@`)}?token=${SECRET}&tenant=acme`;
    const set = await runCli([...c, 'settings', 'set', 'webhook-url', url], { cwd });
    expect(set.code).toBe(0);
    const masked = `${receiver.url.replace('http://', 'http://ops:****@')}?token=****&tenant=acme`;
    expect(set.stdout).toBe(`webhook-url = ${masked}\n`);
    for (const args of [
      ['settings', 'list'],
      ['settings', 'list', '--json'],
      ['settings', 'get', 'webhook-url'],
      ['status'],
      ['status', '--json'],
      ['process-expirations'],
      ['process-expirations', '--json'],
      ['deliveries', 'list', '--json'],
      ['send-test-event', '--json'],
    ]) {
      const result = await runCli([...c, ...args], { cwd });
      expect({ args, leaked: (result.stdout + result.stderr).includes(SECRET) }).toEqual({ args, leaked: false });
    }
    // Sent as given: the query intact, the user and password as Authorization.
    expect(receiver.requests[0]!.url).toBe(`/webhook?token=${SECRET}&tenant=acme`);
    expect(receiver.requests[0]!.headers.authorization).toBe(`Basic ${Buffer.from(`ops:${SECRET}`).toString('base64')}`);
  });

  test("Botble's lm_webhook_url: masked in settings list and status, also when it is not a valid URL", async () => {
    const botble = await createBotbleDatabase('sqlite');
    try {
      const cwd = tempDir();
      fs.writeFileSync(
        path.join(cwd, 'license-manager.config.json'),
        JSON.stringify({ database: { ...botble.database, tablePrefix: 'lm_tool_' }, licenses: { source: 'botble' } }),
        { mode: 0o600 },
      );
      expect((await runCli(['migrate'], { cwd })).code).toBe(0);
      for (const value of [`https://hooks.example/lm?sig=${SECRET}`, `https://ops:${SECRET}@hooks.example/lm`, `https://ops:${SECRET}/x@hooks.example/lm`]) {
        await botble.exec('delete from settings', `insert into settings ("key", value) values ('lm_webhook_url', '${value}'), ('lm_webhooks_enabled', '1')`);
        for (const args of [['settings', 'list'], ['settings', 'list', '--json'], ['status'], ['status', '--json'], ['process-expirations', '--dry-run']]) {
          const result = await runCli(args, { cwd });
          expect({ value, args, leaked: (result.stdout + result.stderr).includes(SECRET) }).toEqual({ value, args, leaked: false });
        }
      }
    } finally {
      await botble.drop();
    }
  });

  const postgres = testDialects().includes('postgres') ? test : test.skip;
  postgres('a real PostgreSQL server reached with ?password= (pg honours it): migrate and status succeed and never show it', async () => {
    const server = await createServerDatabase('postgres');
    try {
      const url = new URL(server.url);
      url.searchParams.set('password', SECRET);
      const env = { LICENSE_MANAGER_DB: url.toString() };
      const cwd = tempDir();
      for (const args of [['migrate'], ['migrate', '--json'], ['status'], ['status', '--json']]) {
        const result = await runCli(args, { cwd, env });
        expect({ args, code: result.code }).toEqual({ args, code: 0 });
        expect(result.stdout + result.stderr).not.toContain(SECRET);
        expect(result.stdout).toContain('password=****');
      }
    } finally {
      await server.drop();
    }
  });
});

describe('import columns and files (item 12)', () => {
  const COLUMNS = [
    'license_code',
    'email',
    'customer_id',
    'product_id',
    'product_name',
    'status',
    'expires_at',
    'updates_until',
    'is_valid',
    'id',
    'support_until',
    'created_at',
    'updated_at',
  ];

  test('licenses import --help and the README name every column and the rules', async () => {
    const help = await runCli(['licenses', 'import', '--help'], { cwd: tempDir() });
    expect(help.code).toBe(0);
    for (const column of COLUMNS) expect(help.stdout).toContain(column);
    expect(help.stdout).toContain('A column that is missing leaves the stored value as it is; an empty cell (or null in JSON) clears it.');
    expect(help.stdout).toContain('A relative <file> is relative to the current folder.');
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('### Importing licenses'), readme.indexOf('\n## ', readme.indexOf('### Importing licenses')));
    for (const column of COLUMNS) expect(section).toContain(`\`${column}\``);
    for (const phrase of ['lower case', 'unknown column', 'empty cell', 'missing', 'active', 'suspended', 'revoked', 'expired', 'current folder', 'EACCES'])
      expect(section).toContain(phrase);
  });

  test('the rules as documented: header case, unknown columns, status values, empty cell vs missing column, is_valid, support_until', async () => {
    const cwd = tempDir();
    const write = (name: string, text: string) => fs.writeFileSync(path.join(cwd, name), text);
    const list = async () => JSON.parse((await runCli(['licenses', 'list', '--json'], { cwd })).stdout) as Array<Record<string, unknown>>;
    write('upper.csv', 'License_Code,email\nA-1,a@example.com\n');
    const upper = await runCli(['licenses', 'import', 'upper.csv'], { cwd });
    expect(upper.code).toBe(2);
    expect(upper.stderr).toContain(`${path.join(cwd, 'upper.csv')}: the header (line 1): unknown field "License_Code". Known fields: id, license_code,`);
    write('extra.csv', 'license_code,plan\nA-1,gold\n');
    expect((await runCli(['licenses', 'import', 'extra.csv'], { cwd })).stderr).toContain('unknown field "plan"');
    write('status.csv', 'license_code,status\nA-1,paused\n');
    expect((await runCli(['licenses', 'import', 'status.csv'], { cwd })).stderr).toContain(
      'field status must be one of active, suspended, revoked, expired, not "paused"',
    );
    write('support.csv', 'license_code,support_until\nA-1,soon\n');
    expect((await runCli(['licenses', 'import', 'support.csv'], { cwd })).stderr).toContain('field support_until "soon" is not an ISO-8601 date');
    // Nothing above was imported.
    expect(await list()).toEqual([]);

    write('full.csv', 'license_code,email,customer_id,expires_at,support_until\nA-1,a@example.com,C-1,2099-01-31,2099-01-31\n');
    expect((await runCli(['licenses', 'import', 'full.csv'], { cwd })).code).toBe(0);
    expect(await list()).toEqual([
      expect.objectContaining({ license_code: 'A-1', email: 'a@example.com', customer_id: 'C-1', status: 'active', expires_at: '2099-01-31' }),
    ]);
    // A missing column leaves the value; an empty cell clears it.
    write('partial.csv', 'license_code,email\nA-1,\n');
    expect((await runCli(['licenses', 'import', 'partial.csv'], { cwd })).code).toBe(0);
    expect(await list()).toEqual([expect.objectContaining({ email: null, customer_id: 'C-1', expires_at: '2099-01-31' })]);
    // is_valid 0 suspends; 1 without a status column lifts the suspension.
    write('blocked.csv', 'license_code,is_valid\nA-1,0\n');
    await runCli(['licenses', 'import', 'blocked.csv'], { cwd });
    expect((await list())[0]).toMatchObject({ status: 'suspended' });
    write('unblocked.json', JSON.stringify([{ license_code: 'A-1', is_valid: true }]));
    await runCli(['licenses', 'import', 'unblocked.json'], { cwd });
    expect((await list())[0]).toMatchObject({ status: 'active' });
  });

  test('a relative path is resolved against the current folder; a missing file names the absolute path and that folder, and creates no database', async () => {
    const cwd = tempDir();
    fs.mkdirSync(path.join(cwd, 'exports'));
    fs.writeFileSync(path.join(cwd, 'exports', 'licenses.csv'), 'license_code\nA-1\n');
    const missing = await runCli(['licenses', 'import', 'licenses.csv'], { cwd });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe(
      `error: Cannot read import file ${path.join(cwd, 'licenses.csv')}: it does not exist ("licenses.csv": a relative path is relative to the current folder, ${cwd}). Check the path, or give an absolute one.\n`,
    );
    expect(fs.readdirSync(cwd)).toEqual(['exports']);
    const absolute = await runCli(['licenses', 'import', path.join(cwd, 'nope.csv')], { cwd });
    expect(absolute.stderr).toBe(`error: Cannot read import file ${path.join(cwd, 'nope.csv')}: it does not exist. Check the path, or give an absolute one.\n`);
    expect((await runCli(['licenses', 'import', 'exports/licenses.csv'], { cwd })).code).toBe(0);
  });

  const asRoot = process.getuid?.() === 0 && fs.existsSync('/usr/sbin/runuser') ? test : test.skip;
  asRoot(
    'EACCES: the job user cannot read a file in a private folder (like /root): the folder and the user named, with a hint; no database created',
    async () => {
      const cwd = tempDir();
      fs.chmodSync(cwd, 0o777);
      const privateDir = path.join(cwd, 'root-home');
      fs.mkdirSync(privateDir, { mode: 0o700 });
      fs.writeFileSync(path.join(privateDir, 'licenses.csv'), 'license_code\nA-1\n');
      const { runCommand, BIN } = await import('../helpers/cli.js');
      const result = await runCommand('/usr/sbin/runuser', ['-u', 'nobody', '--', process.execPath, BIN, 'licenses', 'import', 'root-home/licenses.csv'], {
        cwd,
        timeoutMs: 20_000,
      });
      expect(result.code).toBe(2);
      expect(result.stderr).toBe(
        `error: Cannot read import file ${path.join(privateDir, 'licenses.csv')}: permission denied ("root-home/licenses.csv": a relative path is relative to the current folder, ${cwd}); the folder ${privateDir} is not open to user nobody. Run the import as a user who may read it, or copy the file where user nobody can read it (e.g. the database folder) and make it readable (chmod, chown): a file under /root or another user's home is not readable by the job's user.\n`,
      );
      expect(fs.readdirSync(cwd)).toEqual(['root-home']);
      // A file that is itself unreadable names the file.
      fs.chmodSync(privateDir, 0o755);
      fs.chmodSync(path.join(privateDir, 'licenses.csv'), 0o600);
      const file = await runCommand(
        '/usr/sbin/runuser',
        ['-u', 'nobody', '--', process.execPath, BIN, 'licenses', 'import', path.join(privateDir, 'licenses.csv')],
        { cwd, timeoutMs: 20_000 },
      );
      expect(file.stderr).toContain('permission denied; the file is not readable by user nobody.');
    },
  );
});

describe('a migrate is all or nothing where the database allows it (item 9)', () => {
  test('SQLite: a migration that fails half-way (a table name taken) leaves none of the earlier ones behind', async () => {
    const { default: SQLite } = await import('better-sqlite3');
    const cwd = tempDir();
    const file = path.join(cwd, 'shared.sqlite');
    // Another application's file, shared through a prefix, already has a table by the name migration 0003 creates.
    const other = new SQLite(file);
    other.exec('create table lm_runs (id integer primary key, note text)');
    other.close();
    fs.writeFileSync(path.join(cwd, 'license-manager.config.json'), JSON.stringify({ database: { filename: './shared.sqlite', tablePrefix: 'lm_' } }), {
      mode: 0o600,
    });
    const refused = await runCli(['migrate'], { cwd });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('lm_runs');
    const check = new SQLite(file, { readonly: true });
    try {
      const tables = (check.prepare("select name from sqlite_master where type = 'table' order by name").all() as Array<{ name: string }>).map(
        (row) => row.name,
      );
      // 0001 and 0002 ran before 0003 failed: rolled back with it. Only Kysely's bookkeeping (created before the transaction) stays, empty.
      expect(tables.filter((name) => !name.startsWith('lm_kysely_'))).toEqual(['lm_runs']);
      expect(tables.includes('lm_kysely_migration') ? check.prepare('select count(*) as n from lm_kysely_migration').get() : { n: 0 }).toEqual({ n: 0 });
    } finally {
      check.close();
    }
  });
});
