import { spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from '@jest/globals';
import { BIN, runCli, startListen } from '../helpers/cli.js';
import { startCli, until } from '../helpers/project.js';
import { tempDir } from '../helpers/temp-dir.js';
import { expiredLicenses, project, receiverFor } from '../helpers/workspace.js';

const SAMPLE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../examples/licenses.csv');
const NOW = '2025-01-15T08:00:00Z';
const SECRET = 'cli-secret-value';

/**
 * An operator's project: its config as written (fast retries unless it sets its own webhooks; the database file
 * beside it), and the empty database file `license-manager migrate` would leave (other commands create none).
 */
const operatorProject = async (config: object = {}, database = true) =>
  (await project({ plain: true, database, config: { webhooks: { retryDelaysMs: [10, 10, 10], timeoutMs: 2000 }, ...config } })).dir;

describe('the built CLI', () => {
  test('a checkout never built: one line saying which file is missing and how to build it, exit 1', () => {
    // bin/ as it is in the checkout, beside no dist/.
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, 'bin'));
    fs.copyFileSync(BIN, path.join(dir, 'bin/license-manager.js'));
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
    const result = spawnSync(process.execPath, [path.join(dir, 'bin/license-manager.js'), '--help'], { encoding: 'utf8', timeout: 30_000 });
    expect([result.status, result.stdout]).toEqual([1, '']);
    expect(result.stderr).toBe(
      `license-manager: ${path.join(dir, 'dist/cli/main.js')} is missing: build it first with "npm run build" (npm run demo, npm test and npm run bench build it too).\n`,
    );
  });

  test('flag values are checked before anything runs: exit 2 naming the flag and the allowed values', async () => {
    const cwd = await operatorProject({}, false);
    const cases: Array<[string[], RegExp]> = [
      [
        ['licenses', 'list', '--status', 'paused'],
        /'--status <status>' argument 'paused' is invalid\. Allowed choices are active, suspended, revoked, expired/,
      ],
      [['licenses', 'list', '--expiring-within', '99999999999'], /'--expiring-within <days>' argument '99999999999' is invalid/],
      [['deliveries', 'list', '--limit', '99999999999999999999'], /'--limit <n>' argument '99999999999999999999' is invalid/],
      [['deliveries', 'list', '--event', 'license.renewed'], /Allowed choices are license\.expiring, license\.expired, license\.update_support_expired/],
      [['deliveries', 'show', 'x'], /value 'x' is invalid for argument 'id'\. A delivery id is a positive whole number/],
      [['deliveries', 'retry', '0'], /value '0' is invalid for argument 'ids'/],
      [['process-expirations', '--now', 'yesterday'], /'--now <iso>' argument 'yesterday' is invalid\. Expected an ISO-8601 date/],
      [['listen', '--port', '70000'], /'--port <port>' argument '70000' is invalid/],
      [['listen', '--host', '256.1.1.1'], /'--host <host>' argument '256\.1\.1\.1' is invalid\. Not an IPv4 address/],
      [
        ['process-expirations', '--now', '0001-01-01', '--dry-run'],
        /'--now <iso>' argument '0001-01-01' is invalid\. Expected an instant from 1970-01-01 to 2999-12-31/,
      ],
      [['status', '--now', '9999-12-31'], /'--now <iso>' argument '9999-12-31' is invalid/],
    ];
    for (const [args, message] of cases) {
      const result = await runCli(args, { cwd });
      expect({ args, code: result.code, stdout: result.stdout }).toEqual({ args, code: 2, stdout: '' });
      expect(result.stderr).toMatch(message);
    }
    // Refused before the database was opened: nothing was created.
    expect(fs.existsSync(path.join(cwd, 'license-manager.sqlite'))).toBe(false);
  }, 60_000);

  test('walkthrough: import, settings, dry run, real run, idempotent rerun, delivery log', async () => {
    const receiver = await receiverFor();
    const cwd = await operatorProject();
    const cli = (...args: string[]) => runCli(args, { cwd });

    const imported = await cli('licenses', 'import', SAMPLE);
    expect(imported).toMatchObject({ code: 0, stderr: '' });
    expect(imported.stdout).toContain('Imported 10 licenses');

    // Before any setting: the dry run says what a real run would still lack.
    const unset = await cli('process-expirations', '--now', NOW, '--dry-run');
    expect(unset.stdout).toMatch(/^would send 5 events if webhooks were enabled \(webhooks-enabled is false, from default\) and a webhook URL were set: /m);
    expect((await cli('settings', 'set', 'webhook-url', receiver.url)).code).toBe(0);
    expect((await cli('settings', 'set', 'webhook-secret', SECRET)).code).toBe(0);
    const disabled = await cli('process-expirations', '--now', NOW, '--dry-run');
    expect(disabled.stdout).toContain(
      `would send 5 events to ${receiver.url} (from settings) if webhooks were enabled (webhooks-enabled is false, from default): `,
    );
    expect((await cli('settings', 'set', 'webhooks-enabled', 'true')).code).toBe(0);

    const dry = await cli('process-expirations', '--now', NOW, '--dry-run', '--json');
    expect(dry.code).toBe(0);
    const plan = JSON.parse(dry.stdout);
    expect(plan.dueCounts).toEqual({ 'license.expiring': 2, 'license.expired': 1, 'license.update_support_expired': 2 });
    expect(receiver.requests).toHaveLength(0);

    const run = await cli('process-expirations', '--now', NOW, '--json');
    expect(run.code).toBe(0);
    const summary = JSON.parse(run.stdout);
    expect(summary).toMatchObject({ recorded: 5, delivered: 5, abandoned: 0, now: NOW });
    expect(receiver.requests).toHaveLength(5);
    for (const request of receiver.requests) {
      expect(request.headers['x-webhook-signature']).toBe(createHmac('sha256', SECRET).update(request.body).digest('hex'));
    }

    const again = await cli('process-expirations', '--now', NOW);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('due: 0 expiring, 0 expired, 0 update support ended');
    expect(receiver.requests).toHaveLength(5);

    const log = await cli('deliveries', 'list', '--json');
    const rows = JSON.parse(log.stdout);
    expect(rows).toHaveLength(5);
    expect(rows.every((row: { status: string }) => row.status === 'delivered')).toBe(true);

    const show = await cli('deliveries', 'show', String(rows[0].id));
    expect(show.code).toBe(0);
    expect(show.stdout).toContain(rows[0].event_id);
    expect(show.stdout).toMatch(/1\s+\d{4}-\d{2}-\d{2}T\S+Z\s+\d+\s+200/);

    const list = await cli('settings', 'list');
    expect(list.stdout).toMatch(/webhook-secret\s+\*{8}\s+settings/);
    expect(list.stdout + list.stderr).not.toContain(SECRET);
  }, 60_000);

  test('an abandoned delivery is exit 3 and visible, and deliveries retry re-sends it with the same id and body', async () => {
    let failing = true;
    const receiver = await receiverFor(() => (failing ? 500 : 200));
    // The reference's behaviour (retryWindowHours 0): abandoned after the in-run retries, not deferred to a later run.
    const cwd = await operatorProject({
      webhooks: { enabled: true, url: 'http://127.0.0.1:1/unused', retryDelaysMs: [10], timeoutMs: 2000, retryWindowHours: 0 },
    });
    const env = { LICENSE_MANAGER_WEBHOOK_URL: receiver.url };
    const cli = (...args: string[]) => runCli(args, { cwd, env });
    await cli('licenses', 'import', SAMPLE);
    const run = await cli('process-expirations', '--now', NOW, '--quiet');
    expect(run.code).toBe(3);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('5 deliveries abandoned');
    const abandoned = JSON.parse((await cli('deliveries', 'list', '--status', 'abandoned', '--json')).stdout);
    expect(abandoned).toHaveLength(5);
    expect(abandoned[0]).toMatchObject({ attempts: 2, last_status_code: 500 });

    failing = false;
    const firstBodies = receiver.requests.map((request) => `${String(request.headers['x-webhook-id'])} ${request.body.toString()}`);
    const retried = await cli('deliveries', 'retry', '--abandoned', '--json');
    expect(retried.code).toBe(0);
    // A re-send reads each license again: on the real clock the sample's two warnings are about expiries that have
    // passed, so they are superseded, not sent ("expires in 1 day" after the license expired); the other three go out.
    const result = JSON.parse(retried.stdout) as { outcomes: Array<{ status: string; eventType: string; reason?: string }> };
    expect(result).toMatchObject({ delivered: 3, abandoned: 0, superseded: 2 });
    const superseded = result.outcomes.filter((outcome) => outcome.status === 'superseded');
    expect(superseded.map((outcome) => outcome.eventType)).toEqual(['license.expiring', 'license.expiring']);
    for (const outcome of superseded) expect(outcome.reason).toMatch(/^the license expired at 2025-01-\d\dT\d\d:00:00Z, before this warning could be sent$/);
    const resent = receiver.requests.slice(-3).map((request) => `${String(request.headers['x-webhook-id'])} ${request.body.toString()}`);
    expect(receiver.requests).toHaveLength(firstBodies.length + 3);
    for (const request of resent) expect(firstBodies).toContain(request);
    const sentAgain = abandoned.find((row: { event_type: string }) => row.event_type !== 'license.expiring');
    const shown = JSON.parse((await cli('deliveries', 'show', String(sentAgain.id), '--json')).stdout);
    expect(shown.delivery).toMatchObject({ status: 'delivered', attempts: 3 });
    expect(shown.attempts.map((attempt: { attempt: number; status_code: number }) => [attempt.attempt, attempt.status_code])).toEqual([
      [1, 500],
      [2, 500],
      [3, 200],
    ]);
  }, 60_000);

  test('send-test-event: prints headers, body, status and time; exit 0 on 2xx, 3 otherwise, 2 without a URL', async () => {
    const receiver = await receiverFor((request) => (request.url.includes('fail') ? 400 : 200));
    const cwd = await operatorProject();
    const ok = await runCli(['send-test-event', '--url', receiver.url, '--secret', SECRET, '--event', 'license.expired'], { cwd });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('X-Webhook-Event: license.expired');
    expect(ok.stdout).toMatch(/attempt 1: HTTP 200 in \d+ ms/);
    const request = receiver.requests[0]!;
    expect(ok.stdout).toContain(request.body.toString());
    expect(request.headers['x-webhook-signature']).toBe(createHmac('sha256', SECRET).update(request.body).digest('hex'));
    expect(JSON.parse(request.body.toString()).payload).toHaveProperty('expired_at');

    const failed = await runCli(['send-test-event', '--url', `${receiver.url}?fail=1`], { cwd });
    expect(failed.code).toBe(3);
    expect(failed.stdout).toContain('no X-Webhook-Signature');
    const missing = await runCli(['send-test-event'], { cwd });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('No webhook URL: pass --url <url>');
  });

  test.each([
    [['settings', 'set', 'colour', 'blue'], /Unknown setting "colour"/],
    [['settings', 'set', 'webhook-url', 'example.com/hook'], /not an absolute URL/],
    [['settings', 'set', 'warning-days', 'seven'], /not a whole number/],
    [['process-expirations', '--now', 'yesterday'], /'--now <iso>' argument 'yesterday' is invalid\. Expected an ISO-8601 date or date-time/],
    [['licenses', 'import', 'missing.csv'], /Cannot read import file \/\S+\/missing\.csv/],
    [['deliveries', 'show', 'abc'], /A delivery id is a positive whole number/],
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['send-test-event', '--event', 'license.renewed', '--url', 'http://127.0.0.1:1/'], /Allowed choices are license\.expiring/],
  ])('bad input %j: exit 2, a message naming the problem, no stack trace', async (args, pattern) => {
    const result = await runCli(args, { cwd: await operatorProject() });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(pattern);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  test('an invalid config file is exit 2 with the path, and no database is written', async () => {
    const cwd = tempDir();
    fs.writeFileSync(path.join(cwd, 'license-manager.config.json'), '{"webhooks":{"concurrency":0}}');
    const result = await runCli(['process-expirations'], { cwd });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`Invalid config file ${path.join(cwd, 'license-manager.config.json')}`);
    expect(result.stderr).toContain('webhooks.concurrency');
    expect(fs.existsSync(path.join(cwd, 'license-manager.sqlite'))).toBe(false);
  });

  const isNull = (file: string) => `Invalid config file ${file}:\n  (top level): Invalid input: expected object, received null`;
  const exportsNothing = (file: string) =>
    `Config file ${file} exports no config: give it a default export ("export default { … }", or "module.exports = { … }" in CommonJS).`;
  test.each([
    ['-c', 'etc/lm.json', 'null\n', isNull],
    ['-c', 'etc/lm.yaml', '~\n', isNull],
    ['-c', 'etc/lm.mjs', 'export default null;\n', isNull],
    ['found', 'license-manager.config.json', 'null', isNull],
    ['found', '.license-managerrc.yaml', '~\n', isNull],
    ['-c', 'etc/lm.mjs', 'export const config = { database: { filename: "./mine.sqlite" } };\n', exportsNothing],
    ['-c', 'etc/lm.cjs', 'module.exports = undefined;\n', exportsNothing],
    ['-c', 'etc/lm.cjs', 'const config = { database: { filename: "./mine.sqlite" } };\n', exportsNothing],
    ['found', 'license-manager.config.js', 'export const webhooks = {};\n', exportsNothing],
  ])('a config file that is null or exports nothing (%s %s: %s) is refused naming it, not run on the defaults', async (how, file, content, message) => {
    const cwd = tempDir();
    fs.mkdirSync(path.join(cwd, 'etc'));
    fs.writeFileSync(path.join(cwd, file), content);
    const result = await runCli(how === '-c' ? ['-c', file, 'process-expirations'] : ['process-expirations'], { cwd });
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 2, stderr: `error: ${message(path.join(cwd, file))}\n` });
    expect(fs.readdirSync(cwd).filter((name) => name.endsWith('.sqlite'))).toEqual([]);
  });

  test.each(['soon', '100', '3600001'])('LICENSE_MANAGER_DB_TIMEOUT_MS=%s: exit 2 naming the variable and its range, no database written', async (value) => {
    const cwd = tempDir();
    const result = await runCli(['process-expirations'], { cwd, env: { LICENSE_MANAGER_DB_TIMEOUT_MS: value } });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`LICENSE_MANAGER_DB_TIMEOUT_MS is "${value}": expected a whole number of milliseconds from 500 to 3600000`);
    expect(fs.readdirSync(cwd)).toEqual([]);
  });

  test('enabled without a URL: exit 2 and nothing recorded', async () => {
    const cwd = await operatorProject({ webhooks: { enabled: true } });
    await runCli(['licenses', 'import', SAMPLE], { cwd });
    const result = await runCli(['process-expirations', '--now', NOW], { cwd });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('no webhook URL is set');
    const log = await runCli(['deliveries', 'list', '--json'], { cwd });
    expect(JSON.parse(log.stdout)).toEqual([]);
  });

  test('--help teaches with examples; --version prints the version', async () => {
    const cwd = tempDir();
    const help = await runCli(['process-expirations', '--help'], { cwd });
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--dry-run');
    expect(help.stdout).toContain('Examples:');
    const version = await runCli(['--version'], { cwd });
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    expect(fs.readdirSync(cwd)).toEqual([]); // help touches no database
  });

  test('verify: exit 0 when valid, 1 with the reason when not, 2 without a secret; touches no database', async () => {
    const cwd = tempDir();
    const body = '{"event_type":"license.expired","timestamp":"2024-01-15T10:30:00Z","payload":{"license_id":1}}';
    fs.writeFileSync(path.join(cwd, 'body.json'), body);
    const signature = createHmac('sha256', SECRET).update(body).digest('hex');
    const valid = await runCli(['verify', '--secret', SECRET, '--signature', signature, '--file', 'body.json'], { cwd });
    expect(valid).toMatchObject({ code: 0, stdout: 'valid\n' });
    const prefixed = await runCli(['verify', '--secret', SECRET, '--signature', `sha256=${signature}`, '--file', 'body.json', '--json'], { cwd });
    expect(prefixed.code).toBe(1);
    expect(JSON.parse(prefixed.stdout)).toMatchObject({ valid: false, verdict: 'sha256-prefix' });
    fs.writeFileSync(path.join(cwd, 'pretty.json'), JSON.stringify(JSON.parse(body), null, 2));
    const pretty = await runCli(['verify', '--secret', SECRET, '--signature', signature, '--file', 'pretty.json'], { cwd });
    expect(pretty.code).toBe(1);
    expect(pretty.stderr).toContain('re-serialised');
    // Cut short when copied (the trial's value): not 64 hex characters, so not blamed on the secret.
    const truncated = await runCli(['verify', '--secret', 's3cret', '--signature', '4666e538bda63ae78e6d', '--file', 'body.json'], { cwd });
    expect(truncated.code).toBe(1);
    expect(truncated.stderr).toContain('20 characters, not 64: it looks truncated or malformed');
    expect(truncated.stderr).not.toContain('wrong secret');
    const noSecret = await runCli(['verify', '--signature', signature, '--file', 'body.json'], { cwd });
    expect(noSecret.code).toBe(2);
    expect(noSecret.stderr).toContain('verify needs a secret: pass --secret <secret> or --secret-env <name>, or configure one');
    expect(fs.readdirSync(cwd).sort()).toEqual(['body.json', 'pretty.json']);
  });

  test('listen receives send-test-event and says whether the signature verifies; Ctrl-C stops it cleanly', async () => {
    const cwd = await operatorProject();
    const listener = await startListen(['--secret', SECRET], cwd);
    const { url } = listener;
    try {
      const good = await runCli(['send-test-event', '--url', url, '--secret', SECRET], { cwd });
      expect(good.code).toBe(0);
      const bad = await runCli(['send-test-event', '--url', url, '--secret', 'not-the-secret', '--event', 'license.expired'], { cwd });
      // A receiver refuses a bad signature with 401, so the sender sees it fail (abandoned, exit 3).
      expect(bad.code).toBe(3);
      expect(bad.stdout).toContain('HTTP 401');
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(listener.stdout()).toMatch(/license\.expiring[\s\S]*"days_until_expiry": 7[\s\S]*signature valid/);
      expect(listener.stdout()).toMatch(/license\.expired[\s\S]*signature INVALID: No match: most likely the wrong secret/);
    } finally {
      expect(await listener.stop()).toBe(0);
    }
  });

  test('listen --json prints its address as its first line, before any request, then one line per request', async () => {
    const cwd = await operatorProject();
    const listener = await startListen(['--json', '--secret', SECRET], cwd);
    try {
      const lines = () => listener.jsonLines();
      expect(lines()).toEqual([{ listening: listener.url, signaturesChecked: true }]);
      expect(listener.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
      expect((await runCli(['send-test-event', '--url', listener.url, '--secret', SECRET], { cwd })).code).toBe(0);
      const started = Date.now();
      while (lines().length < 2 && Date.now() - started < 5000) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(lines()[1]).toMatchObject({ event: 'license.expiring', signature: 'valid', status: 200 });
    } finally {
      expect(await listener.stop()).toBe(0);
    }
  });

  test('secrets kept out of ps: --secret-env for listen, verify and send-test-event, settings set webhook-secret - from stdin', async () => {
    const cwd = await operatorProject();
    const env = { RECEIVER_SECRET: SECRET };
    const listener = await startListen(['--secret-env', 'RECEIVER_SECRET'], cwd, { env });
    try {
      // Neither listen's arguments nor send-test-event's hold the secret; the signature still verifies.
      expect(fs.readFileSync(`/proc/${listener.pid}/cmdline`, 'utf8')).not.toContain(SECRET);
      const sent = await runCli(['send-test-event', '--url', listener.url, '--secret-env', 'RECEIVER_SECRET', '--json'], { cwd, env });
      expect(sent.code).toBe(0);
      const { body, headers } = JSON.parse(sent.stdout) as { body: string; headers: Record<string, string> };
      expect(headers['X-Webhook-Signature']).toBe(createHmac('sha256', SECRET).update(body).digest('hex'));
      fs.writeFileSync(path.join(cwd, 'body.json'), body);
      const verified = await runCli(['verify', '--secret-env', 'RECEIVER_SECRET', '--signature', headers['X-Webhook-Signature']!, '--file', 'body.json'], {
        cwd,
        env,
      });
      expect(verified).toMatchObject({ code: 0, stdout: 'valid\n' });
      const wrong = await runCli(['send-test-event', '--url', listener.url, '--secret-env', 'OTHER'], { cwd, env: { OTHER: 'not-the-secret' } });
      expect(wrong.code).toBe(3);
      expect(wrong.stdout).toContain('HTTP 401');
    } finally {
      expect(await listener.stop()).toBe(0);
    }
    // A variable that is not set, or both forms at once: exit 2, naming it.
    for (const command of [
      ['listen', '--port', '0'],
      ['verify', '--signature', 'ab', '--file', 'body.json'],
      ['send-test-event', '--url', 'http://127.0.0.1:9/'],
    ]) {
      const missing = await runCli([...command, '--secret-env', 'NOT_SET_ANYWHERE'], { cwd });
      expect({ command, code: missing.code }).toEqual({ command, code: 2 });
      expect(missing.stderr).toContain('--secret-env NOT_SET_ANYWHERE: the environment variable NOT_SET_ANYWHERE is not set or empty');
      const both = await runCli([...command, '--secret', SECRET, '--secret-env', 'RECEIVER_SECRET'], { cwd, env });
      expect({ command, code: both.code }).toEqual({ command, code: 2 });
      expect(both.stderr).toContain("option '--secret-env <name>' cannot be used with option '--secret <secret>'");
    }

    // settings set <key> -: the value from stdin, its one trailing line break dropped.
    const stored = await runCli(['settings', 'set', 'webhook-secret', '-'], { cwd, input: `${SECRET}\n` });
    expect(stored).toMatchObject({ code: 0, stdout: 'webhook-secret = ********\n' });
    expect((await runCli(['settings', 'get', 'webhook-secret', '--reveal'], { cwd })).stdout).toBe(`${SECRET}\n`);
    const url = await runCli(['settings', 'set', 'webhook-url', '-'], { cwd, input: 'https://example.com/hook\r\n' });
    expect(url.stdout).toBe('webhook-url = https://example.com/hook\n');
    const empty = await runCli(['settings', 'set', 'webhook-secret', '-'], { cwd, input: '' });
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('Invalid value for setting webhook-secret: must not be empty');
    expect((await runCli(['settings', 'get', 'webhook-secret', '--reveal'], { cwd })).stdout).toBe(`${SECRET}\n`);
    for (const command of ['listen', 'verify', 'send-test-event']) expect((await runCli([command, '--help'], { cwd })).stdout).toContain('--secret-env <name>');
    expect((await runCli(['settings', 'set', '--help'], { cwd })).stdout).toContain('a value of - is read from standard input');
  }, 90_000);

  test('verify falls back to the configured secret as listen does: env, then settings, then the config file', async () => {
    const cwd = await operatorProject({ webhooks: { secret: 'file-secret', retryDelaysMs: [10, 10, 10], timeoutMs: 2000 } });
    fs.chmodSync(path.join(cwd, 'license-manager.config.json'), 0o600);
    const body = '{"event_type":"license.expired"}';
    fs.writeFileSync(path.join(cwd, 'body.json'), body);
    const check = (secret: string, env: NodeJS.ProcessEnv = {}) =>
      runCli(['verify', '--signature', createHmac('sha256', secret).update(body).digest('hex'), '--file', 'body.json'], { cwd, env });
    expect(await check('file-secret')).toMatchObject({ code: 0, stdout: 'valid\n', stderr: '' });
    expect((await runCli(['settings', 'set', 'webhook-secret', 'stored-secret'], { cwd })).code).toBe(0);
    const database = fs.readFileSync(path.join(cwd, 'license-manager.sqlite'));
    expect(await check('stored-secret')).toMatchObject({ code: 0, stdout: 'valid\n' });
    expect((await check('file-secret')).code).toBe(1);
    expect(await check('env-secret', { LICENSE_MANAGER_WEBHOOK_SECRET: 'env-secret' })).toMatchObject({ code: 0, stdout: 'valid\n' });
    // Read-only: the database is as it was.
    expect(fs.readFileSync(path.join(cwd, 'license-manager.sqlite')).equals(database)).toBe(true);
  });

  test('many abandoned deliveries: listed the same way with and without --quiet, 20 on stderr with license codes, the rest counted', async () => {
    const receiver = await receiverFor(() => 410);
    // retryWindowHours 0: a 410 is a 4xx like any other, abandoned at once (with retries across runs it disables the endpoint).
    const cwd = await operatorProject({ webhooks: { enabled: true, url: receiver.url, retryWindowHours: 0 } });
    fs.writeFileSync(
      path.join(cwd, 'l.json'),
      JSON.stringify(Array.from({ length: 25 }, (_, i) => ({ license_code: `G-${i}`, expires_at: '2025-01-14T00:00:00Z' }))),
    );
    await runCli(['licenses', 'import', 'l.json'], { cwd });
    const result = await runCli(['process-expirations', '--now', NOW, '--quiet'], { cwd });
    expect(result.code).toBe(3);
    expect(result.stdout).toBe('');
    const lines = result.stderr.trim().split('\n');
    expect(lines[0]).toBe('warning: 25 deliveries abandoned; re-send with "license-manager deliveries retry --abandoned" once the receiver is fixed:');
    expect(lines.filter((line) => /^ {2}#\d+ G-\d+ license\.expired after 1 attempt: HTTP 410/.test(line))).toHaveLength(20);
    expect(lines.at(-1)).toBe('  ... and 5 more (license-manager deliveries list --status abandoned)');
    expect(result.stderr).not.toContain('MaxListenersExceededWarning');
    // Without --quiet: the same block on stderr (stdout has the summary only), so cron and a terminal read alike.
    const loud = await runCli(['deliveries', 'retry', '--abandoned'], { cwd });
    expect(loud.code).toBe(3);
    expect(loud.stdout).toBe('Re-sent 25 deliveries: delivered 0, abandoned 25.\n');
    expect(loud.stderr.trim().split('\n')).toEqual(lines.map((line) => line.replace(/after 1 attempt:/, 'after 2 attempts:')));
  });

  test('listen on a host name or address that is not this machine: exit 2 naming --host, not an unexpected failure', async () => {
    const cwd = await operatorProject();
    // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never an address of this machine.
    const result = await runCli(['listen', '--port', '0', '--host', '192.0.2.1'], { cwd });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^error: --host 192\.0\.2\.1 is not an address of this machine/);
  });

  test('listen with an empty or blank --secret: exit 2 naming it, not a receiver that checks no signature', async () => {
    const cwd = await operatorProject();
    const empty = await runCli(['listen', '--port', '0', '--secret', ''], { cwd });
    expect([empty.code, empty.stdout, empty.stderr]).toEqual([2, '', expect.stringMatching(/^error: --secret must not be empty\./)]);
    const blank = await runCli(['listen', '--port', '0', '--secret', 'k1', '--secret', '   '], { cwd });
    expect([blank.code, blank.stdout, blank.stderr]).toEqual([2, '', expect.stringMatching(/^error: --secret \(the 2nd of 2\) must not be only whitespace\./)]);
  });

  test('counts read as English: a run stopped with one delivery left says "left 1 delivery"', async () => {
    const receiver500 = await receiverFor(() => 500);
    const ws = await project({
      receiver: receiver500,
      config: { webhooks: { enabled: true, retryDelaysMs: [10_000, 10_000, 10_000] } },
      licenses: expiredLicenses(1),
    });
    const run = startCli(['process-expirations', '--now', NOW], ws.dir);
    // The first attempt is answered and written; the delivery then waits 10 s for its retry.
    await until(async () => (await ws.rows<{ n: number }>('select count(*) n from webhook_attempts'))[0]!.n >= 1);
    run.child.kill('SIGTERM');
    const result = await run.done;
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('stopped early: left 1 delivery pending for the next run');
    expect(result.stderr).not.toMatch(/\b1 deliveries\b/);
  }, 60_000);

  test('send-test-event prints every header it sends, Accept included, and credentials masked', async () => {
    const receiver = await receiverFor();
    const cwd = await operatorProject();
    const url = receiver.url.replace('http://', 'http://alice:hunter2@');
    const result = await runCli(['send-test-event', '--url', url, '--secret', SECRET, '--json'], { cwd });
    expect(result.code).toBe(0);
    const printed = (JSON.parse(result.stdout) as { headers: Record<string, string> }).headers;
    const received = receiver.requests[0]!.headers;
    // What HTTP itself adds is not the sender's choice: everything else that arrived was printed, with its value.
    const sent = Object.keys(received).filter((name) => !['host', 'connection', 'content-length'].includes(name));
    expect(
      Object.keys(printed)
        .map((name) => name.toLowerCase())
        .sort(),
    ).toEqual(sent.sort());
    for (const [name, value] of Object.entries(printed)) {
      if (name === 'Authorization') expect(value).toBe('Basic ****');
      else expect([name, value]).toEqual([name, received[name.toLowerCase()]]);
    }
    expect(printed.Accept).toBe('application/json');
    const text = await runCli(['send-test-event', '--url', url], { cwd });
    expect(text.stdout).toContain('\nAccept: application/json\n');
    expect(text.stdout).toContain('\nAuthorization: Basic ****\n');
    expect(text.stdout + text.stderr).not.toContain('hunter2');
  }, 60_000);

  test('licenses list: importing is suggested only when there are no licenses at all', async () => {
    const cwd = await operatorProject();
    const empty = await runCli(['licenses', 'list'], { cwd });
    expect(empty).toMatchObject({
      code: 0,
      stdout: `No licenses in ${path.join(cwd, 'license-manager.sqlite')} yet. Load some with "license-manager licenses import <file>".\n`,
    });
    await runCli(['licenses', 'import', SAMPLE], { cwd });
    const none = await runCli(['licenses', 'list', '--status', 'expired'], { cwd });
    expect(none).toMatchObject({ code: 0, stdout: 'No licenses match.\n' });
    expect(JSON.parse((await runCli(['licenses', 'list', '--status', 'expired', '--json'], { cwd })).stdout)).toEqual([]);
  }, 60_000);

  test('deliveries retry refuses a delivered event and says why; --force re-sends it: same id and body, a new schedule', async () => {
    const receiver = await receiverFor((_request, index) => (index === 1 ? 503 : 200));
    const cwd = await operatorProject({ webhooks: { enabled: true, url: receiver.url, retryDelaysMs: [10, 10, 10], timeoutMs: 2000 } });
    fs.writeFileSync(path.join(cwd, 'one.json'), JSON.stringify([{ license_code: 'LOST-1', expires_at: '2025-01-14T08:00:00Z' }]));
    await runCli(['licenses', 'import', 'one.json'], { cwd });
    expect((await runCli(['process-expirations', '--now', NOW], { cwd })).code).toBe(0);
    expect(receiver.requests).toHaveLength(1);

    const refused = await runCli(['deliveries', 'retry', '1'], { cwd });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(
      /^error: Delivery 1 was delivered at \S+ \(HTTP 200\), so it is not re-sent\. .*"license-manager deliveries retry 1 --force"/,
    );
    expect(receiver.requests).toHaveLength(1);
    const withAbandoned = await runCli(['deliveries', 'retry', '--abandoned', '--force'], { cwd });
    expect(withAbandoned.code).toBe(2);
    expect(withAbandoned.stderr).toContain('--force re-sends delivered deliveries named by id');

    const dryRun = await runCli(['deliveries', 'retry', '1', '--force', '--dry-run'], { cwd });
    expect(dryRun.stdout).toBe('Would re-send 1 delivery (1 already delivered, sent again because of --force):\n  #1 license.expired LOST-1\n');
    const forced = await runCli(['deliveries', 'retry', '1', '--force'], { cwd });
    expect(forced).toMatchObject({ code: 0, stdout: 'Re-sent 1 delivery (1 already delivered, sent again because of --force): delivered 1, abandoned 0.\n' });
    // The 503 then the 200: a full new schedule, not the spent one.
    expect(receiver.requests).toHaveLength(3);
    const [first, , last] = receiver.requests;
    expect(last!.headers['x-webhook-id']).toBe(first!.headers['x-webhook-id']);
    expect(last!.body.equals(first!.body)).toBe(true);
    const shown = JSON.parse((await runCli(['deliveries', 'show', '1', '--json'], { cwd })).stdout);
    expect(shown.delivery).toMatchObject({ status: 'delivered', attempts: 3 });
    expect(shown.attempts.map((attempt: { status_code: number }) => attempt.status_code)).toEqual([200, 503, 200]);
    expect(JSON.parse((await runCli(['deliveries', 'retry', '1', '--force', '--json'], { cwd })).stdout)).toMatchObject({ forced: 1, delivered: 1 });
  }, 120_000);

  test('deliveries retry with ids refuses --since as it refuses --endpoint (nothing sent); a repeated id is one delivery, sent once', async () => {
    const receiver = await receiverFor(() => 200);
    const cwd = await operatorProject({ webhooks: { enabled: true, url: receiver.url, retryDelaysMs: [10, 10, 10], timeoutMs: 2000 } });
    fs.writeFileSync(path.join(cwd, 'one.json'), JSON.stringify([{ license_code: 'LOST-1', expires_at: '2025-01-14T08:00:00Z' }]));
    await runCli(['licenses', 'import', 'one.json'], { cwd });
    expect((await runCli(['process-expirations', '--now', NOW], { cwd })).code).toBe(0);
    expect(receiver.requests).toHaveLength(1);

    for (const extra of [
      ['--since', '2030-01-01'],
      ['--endpoint', 'default'],
    ]) {
      const refused = await runCli(['deliveries', 'retry', '1', '--force', ...extra], { cwd });
      expect({ extra, code: refused.code, stderr: refused.stderr }).toEqual({
        extra,
        code: 2,
        stderr: `error: ${extra[0]} goes with --abandoned: delivery ids name their deliveries already.\n`,
      });
    }
    expect(receiver.requests).toHaveLength(1);

    const dryRun = await runCli(['deliveries', 'retry', '1', '1', '--force', '--dry-run', '--json'], { cwd });
    expect(JSON.parse(dryRun.stdout)).toMatchObject({ selectedCount: 1, forced: 1, selected: [{ id: 1 }] });
    const twice = await runCli(['deliveries', 'retry', '1', '1', '--force'], { cwd });
    expect(twice).toMatchObject({ code: 0, stdout: 'Re-sent 1 delivery (1 already delivered, sent again because of --force): delivered 1, abandoned 0.\n' });
    expect(receiver.requests).toHaveLength(2);
  }, 120_000);

  test('settings --help sets the secret from standard input, never as an argument that ps shows', async () => {
    const help = await runCli(['settings', '--help'], { cwd: tempDir() });
    expect(help.stdout).toContain('$ openssl rand -hex 32 | license-manager settings set webhook-secret -');
    expect(help.stdout).not.toContain('$(openssl');
  });

  test("status --help lists every exit code, 2 and 4 included, and every cause of 1 the README's table gives", async () => {
    const help = await runCli(['status', '--help'], { cwd: tempDir() });
    expect(help.stdout.replace(/\s+/g, ' ')).toMatch(
      /exit 0 ok, 3 deliveries abandoned and not re-sent, 4 an endpoint failing for more than 24 hours \(deliveries wait on it\), 1 the last run failed, stopped or refused to start, no run finished in the last 26 hours while licenses exist, or a stored setting is invalid, 2 the config or database cannot be used \(or does not exist\)/,
    );
    // The monitoring example's comment names every exit status it can alert on, 4 included.
    expect(help.stdout.replace(/\s+/g, ' ')).toMatch(
      /status --quiet \|\| alert # monitoring: 1 when .*, 3 while .*, 4 when an endpoint has been failing for more than 24 hours, 2 when /,
    );
  });
});
