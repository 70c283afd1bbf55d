import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, test } from '@jest/globals';
import SQLite from 'better-sqlite3';
import { BIN, childEnv, runCli, runCommand, startListen } from '../helpers/cli.js';
import { tempDir } from '../helpers/temp-dir.js';
import { forEachDialect, project as sqliteProject, receiverFor, type Workspace } from '../helpers/workspace.js';

const FAST_RETRIES = { webhooks: { retryDelaysMs: [10, 10, 10], timeoutMs: 2000 } };

/** A project with `cli('licenses', 'list')` run in its directory. */
const withCli = (ws: Workspace) => ({ dir: ws.dir, ws, cli: (...args: string[]) => ws.cli(args) });

/** An operator's folder: a config (fast retries) and no database yet (the database file would be beside it). */
const operatorProject = async () => withCli(await sqliteProject({ plain: true, database: false, config: FAST_RETRIES }));

async function codes(cli: (...args: string[]) => ReturnType<typeof runCli>): Promise<string[]> {
  const listed = await cli('licenses', 'list', '--json');
  expect(listed.code).toBe(0);
  return (JSON.parse(listed.stdout) as Array<{ license_code: string }>).map((row) => row.license_code);
}

// Bad inputs on every dialect: refused with a clear message, and nothing half-written in the database.
forEachDialect('bad inputs', ({ project, dialect }) => {
  // The largest id the licenses table takes: a 64-bit integer on every dialect, as far as a number is exact.
  const maxId = Number.MAX_SAFE_INTEGER;

  describe('import files that are not what they claim', () => {
    test('bytes that are not UTF-8 are refused naming row and field; no replacement character reaches the database', async () => {
      const { dir, cli } = withCli(await project({ config: FAST_RETRIES }));
      fs.writeFileSync(path.join(dir, 'utf8.csv'), 'license_code,email\nLIC-café,a@example.com\n');
      expect((await cli('licenses', 'import', 'utf8.csv')).code).toBe(0);
      // The same code written in Latin-1: é is the single byte 0xE9.
      fs.writeFileSync(
        path.join(dir, 'latin1.csv'),
        Buffer.concat([Buffer.from('license_code,email\nLIC-1,b@example.com\nLIC-caf'), Buffer.from([0xe8]), Buffer.from(',c@example.com\n')]),
      );
      const result = await cli('licenses', 'import', 'latin1.csv');
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/latin1\.csv: row 2 \(line 3\): field license_code is not valid UTF-8/);
      expect(await codes(cli)).toEqual(['LIC-café']);

      fs.writeFileSync(
        path.join(dir, 'latin1.ndjson'),
        Buffer.concat([Buffer.from('{"license_code":"OK"}\n{"license_code":"X","email":"caf'), Buffer.from([0xe9]), Buffer.from('@example.com"}\n')]),
      );
      const ndjson = await cli('licenses', 'import', 'latin1.ndjson');
      expect(ndjson.code).toBe(2);
      expect(ndjson.stderr).toMatch(/row 2 \(line 2\): field email is not valid UTF-8/);
      expect(await codes(cli)).toEqual(['LIC-café']);
    });
  });

  describe('small hostile inputs', () => {
    test('numbers too large for a number, a huge config string and a whitespace-only secret are exit 2 with a clear message', async () => {
      const { dir, ws, cli } = withCli(await project({ config: FAST_RETRIES }));
      fs.writeFileSync(path.join(dir, 'ids.json'), '[{"license_code":"OK"},{"id":9007199254740993,"license_code":"BIG"}]');
      const bigId = await cli('licenses', 'import', 'ids.json');
      expect(bigId.code).toBe(2);
      expect(bigId.stderr).toContain(`row 2: field id must be a positive whole number up to ${maxId}`);
      fs.writeFileSync(path.join(dir, 'ids.csv'), 'id,license_code\n99999999999999999999,BIG\n');
      expect((await cli('licenses', 'import', 'ids.csv')).stderr).toContain('row 1 (line 2): field id must be a positive whole number up to');
      expect(await codes(cli)).toEqual([]);

      const cases: Array<[string[], RegExp]> = [
        [
          ['licenses', 'list', '--limit', '99999999999999999999'],
          /'--limit <n>' argument '99999999999999999999' is invalid. Expected a whole number from 1 to/,
        ],
        [
          ['licenses', 'list', '--expiring-within', '99999999999'],
          /'--expiring-within <days>' argument '99999999999' is invalid. Expected a whole number from 0 to/,
        ],
        [['deliveries', 'list', '--limit', '99999999999999999999'], /'--limit <n>' argument '99999999999999999999' is invalid/],
        [['deliveries', 'show', '99999999999999999999'], /A delivery id is a positive whole number/],
        [['settings', 'set', 'webhook-secret', '   '], /webhook-secret: must not be only whitespace/],
      ];
      for (const [args, message] of cases) {
        const result = await cli(...args);
        expect({ args, code: result.code }).toEqual({ args, code: 2 });
        expect(result.stderr).toMatch(message);
      }
      const fromEnv = await ws.cli(['settings', 'list'], { env: { LICENSE_MANAGER_WEBHOOK_SECRET: ' \t ' } });
      expect(fromEnv.code).toBe(2);
      expect(fromEnv.stderr).toContain('LICENSE_MANAGER_WEBHOOK_SECRET: must not be only whitespace');

      ws.configure({ webhooks: { secret: '   ' } });
      const blank = await cli('settings', 'list');
      expect(blank.code).toBe(2);
      expect(blank.stderr).toContain('webhooks.secret: must not be only whitespace');
      // A valid but absurd URL (a few MB) used to be carried into every printer; 200 MB ended in "Invalid string length".
      ws.configure({ webhooks: { url: `https://example.com/${'x'.repeat(3_000_000)}` } });
      const huge = await cli('settings', 'list');
      expect(huge.code).toBe(2);
      expect(huge.stderr).toMatch(/webhooks\.url: is 3000020 characters long; a webhook URL may have at most 8192/);
      expect(huge.stderr.length).toBeLessThan(1000);
    });

    test('the widest values the columns hold are imported as they are; one wider is exit 2 naming row and field, nothing imported', async () => {
      const { dir, cli } = withCli(await project({ config: FAST_RETRIES }));
      // On MySQL license_code is VARCHAR(255) (characters); the other text columns hold 4 GiB everywhere (LONGTEXT on MySQL).
      const codeCharacters = dialect === 'mysql' ? 255 : undefined;
      // "é" is one character and two bytes in UTF-8.
      const widest = { id: maxId, license_code: 'é'.repeat(codeCharacters ?? 1000), email: `${'é'.repeat(100_000)}x` };
      fs.writeFileSync(path.join(dir, 'widest.json'), JSON.stringify([widest]));
      expect((await cli('licenses', 'import', 'widest.json')).code).toBe(0);
      const stored = JSON.parse((await cli('licenses', 'list', '--json')).stdout) as Array<{ id: number; license_code: string; email: string }>;
      // Compared as lengths and equality, not printed: a failure must not print 64 KiB.
      expect(
        stored.map((row) => [row.id, row.license_code.length, row.email.length, row.license_code === widest.license_code, row.email === widest.email]),
      ).toEqual([[maxId, widest.license_code.length, widest.email.length, true, true]]);

      const wider: Array<[string, object]> = [['id', { id: maxId + 1, license_code: 'WIDE' }]];
      if (codeCharacters !== undefined) wider.push(['license_code', { license_code: 'é'.repeat(codeCharacters + 1) }]);
      // PostgreSQL's text cannot hold U+0000 at all (the others store it as it is).
      if (dialect === 'postgres')
        wider.push(['product_name', { license_code: 'NUL', product_name: 'x\u0000y' }], ['license_code', { license_code: 'N\u0000L' }]);
      for (const [field, row] of wider) {
        fs.writeFileSync(path.join(dir, 'wider.json'), JSON.stringify([{ license_code: 'FITS' }, row]));
        const result = await cli('licenses', 'import', 'wider.json');
        expect({ field, code: result.code }).toEqual({ field, code: 2 });
        expect(result.stderr).toContain(`wider.json: row 2: field ${field} `);
        if (JSON.stringify(row).includes('\\u0000')) expect(result.stderr).toContain('holds the NUL character (U+0000)');
        expect(result.stderr).toContain('Nothing was imported.');
      }
      expect(await codes(cli)).toEqual([widest.license_code]);
    });

    test('escape sequences in license data are shown as text in human output, kept as data in --json', async () => {
      const { dir, cli } = withCli(await project({ config: FAST_RETRIES }));
      const code = 'LIC-\u001b[2J\u001b]0;owned\u0007-1';
      fs.writeFileSync(path.join(dir, 'evil.json'), JSON.stringify([{ license_code: code, email: 'a\rb@example.com', status: 'active' }]));
      expect((await cli('licenses', 'import', 'evil.json')).code).toBe(0);
      const listed = await cli('licenses', 'list');
      expect(listed.code).toBe(0);
      const controls = Array.from({ length: listed.stdout.length }, (_, index) => listed.stdout.charCodeAt(index)).filter(
        (code) => code !== 0x0a && (code < 0x20 || code === 0x7f),
      );
      expect(controls).toEqual([]);
      expect(listed.stdout).toContain('LIC-\\x1b[2J\\x1b]0;owned\\x07-1');
      expect(listed.stdout).toContain('a\\x0db@example.com');
      const json = await cli('licenses', 'list', '--json');
      expect(JSON.parse(json.stdout)[0].license_code).toBe(code);
      const missing = await cli('send-test-event', '--url', 'http://127.0.0.1:9/', '--license', code);
      expect(missing.code).toBe(2);
      expect(missing.stderr).not.toContain('\u001b');
    });
  });

  describe('streamed import', () => {
    test('an empty CSV imports nothing, exit 0, and says so on stderr', async () => {
      const { dir, cli } = withCli(await project({ config: FAST_RETRIES }));
      for (const [name, content] of [
        ['empty.csv', ''],
        ['header.csv', 'license_code,email\n'],
        ['empty.json', '[ ]'],
      ] as const) {
        fs.writeFileSync(path.join(dir, name), content);
        const result = await cli('licenses', 'import', name);
        expect(result.code).toBe(0);
        expect(result.stdout).toContain('Imported 0 licenses');
        expect(result.stderr).toContain(`warning: ${name} holds no license rows`);
      }
    });

    test('thousands of rows in batches of mixed columns: columns left out keep their values, and one bad row at the end rolls back all', async () => {
      const { dir, cli } = withCli(await project({ config: FAST_RETRIES }));
      // Over 256 KiB, so elements straddle the chunks the file is read in.
      const first = Array.from({ length: 1200 }, (_, index) => ({
        license_code: `B-${index}`,
        email: `b${index}@example.com`,
        product_name: `Theme ${'x'.repeat(300)}`,
      }));
      fs.writeFileSync(path.join(dir, 'first.json'), JSON.stringify(first, null, 1));
      expect((await cli('licenses', 'import', 'first.json')).stdout).toContain('1200 new, 0 updated');
      // Second file: every other row renews only expires_at, the rest change the e-mail; 300 new ones; strings with brackets and quotes.
      const second = Array.from({ length: 1500 }, (_, index) =>
        index % 2 === 0 ? { license_code: `B-${index}`, expires_at: '2030-01-01' } : { license_code: `B-${index}`, email: `new}{"${index}@example.com` },
      );
      fs.writeFileSync(path.join(dir, 'second.json'), JSON.stringify(second));
      const renewed = await cli('licenses', 'import', 'second.json');
      expect(renewed.stdout).toContain('1500 licenses from second.json (json): 300 new, 1200 updated');
      const rows = JSON.parse((await cli('licenses', 'list', '--json')).stdout) as Array<{
        license_code: string;
        email: string | null;
        product_name: string | null;
        expires_at: string | null;
      }>;
      expect(rows).toHaveLength(1500);
      const byCode = new Map(rows.map((row) => [row.license_code, row]));
      expect(byCode.get('B-10')).toMatchObject({ email: 'b10@example.com', product_name: `Theme ${'x'.repeat(300)}`, expires_at: '2030-01-01' });
      expect(byCode.get('B-11')).toMatchObject({ email: 'new}{"11@example.com', product_name: `Theme ${'x'.repeat(300)}`, expires_at: null });
      expect(rows.filter((row) => row.product_name === `Theme ${'x'.repeat(300)}`)).toHaveLength(1200);
      expect(byCode.get('B-1301')).toMatchObject({ email: 'new}{"1301@example.com', product_name: null });

      const lines = Array.from({ length: 2000 }, (_, index) => JSON.stringify({ license_code: `N-${index}` }));
      lines.push(JSON.stringify({ license_code: 'N-0' }));
      fs.writeFileSync(path.join(dir, 'late-dupe.ndjson'), `${lines.join('\n')}\n`);
      const dupe = await cli('licenses', 'import', 'late-dupe.ndjson');
      expect(dupe.code).toBe(2);
      expect(dupe.stderr).toContain('late-dupe.ndjson: row 2001: field license_code "N-0" repeats row 1. Nothing was imported.');
      expect(JSON.parse((await cli('licenses', 'list', '--json')).stdout)).toHaveLength(1500);
    });
  });
});

describe('credentials in the webhook URL', () => {
  test('are sent as Authorization: Basic, never in the URL, and no output shows the password', async () => {
    const receiver = await receiverFor((request) => (request.headers.authorization === `Basic ${Buffer.from('alice:hunter2').toString('base64')}` ? 200 : 401));
    const { dir, cli } = await operatorProject();
    fs.writeFileSync(path.join(dir, 'due.csv'), 'license_code,expires_at\nLIC-1,2025-01-10\n');
    const secretUrl = receiver.url.replace('http://', 'http://alice:hunter2@');
    const outputs: string[] = [];
    const run = async (...args: string[]) => {
      const result = await cli(...args);
      outputs.push(result.stdout, result.stderr);
      return result;
    };
    expect((await run('licenses', 'import', 'due.csv')).code).toBe(0);
    expect((await run('settings', 'set', 'webhook-url', secretUrl)).stdout).toContain('http://alice:****@127.0.0.1');
    expect((await run('settings', 'set', 'webhooks-enabled', 'true')).code).toBe(0);
    expect((await run('settings', 'list')).stdout).toContain(`http://alice:****@127.0.0.1:${receiver.port}/webhook`);
    expect((await run('settings', 'list', '--json')).stdout).toContain('alice:****@');
    expect((await run('settings', 'get', 'webhook-url')).stdout).toContain('alice:****@');
    expect((await run('settings', 'get', 'webhook-url', '--json')).stdout).toContain('alice:****@');
    const test = await run('send-test-event');
    expect(test.code).toBe(0);
    expect(test.stdout).toContain(`POST http://alice:****@127.0.0.1:${receiver.port}/webhook`);
    expect((await run('send-test-event', '--json')).code).toBe(0);
    const processed = await run('process-expirations', '--now', '2025-01-15T08:00:00Z', '--json');
    expect(JSON.parse(processed.stdout)).toMatchObject({ delivered: 1, abandoned: 0 });
    expect((await run('deliveries', 'list')).code).toBe(0);
    // A URL that is refused is quoted in the error, masked too.
    const refused = await run('settings', 'set', 'webhook-url', 'ftp://alice:hunter2@example.com/');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('ftp://alice:****@example.com/');
    const unreachable = await run('send-test-event', '--url', 'http://alice:hunter2@127.0.0.1:9/');
    expect(unreachable.stdout).toContain('alice:****@');

    expect(receiver.requests).toHaveLength(3);
    for (const request of receiver.requests) {
      expect(request.url).toBe('/webhook');
      expect(request.headers.authorization).toBe(`Basic ${Buffer.from('alice:hunter2').toString('base64')}`);
    }
    for (const text of outputs) expect(text).not.toContain('hunter2');
    expect(outputs.join('')).not.toContain(Buffer.from('alice:hunter2').toString('base64'));
  });

  test('a table stays in line: a cell is measured as it is shown (password masked), not as stored', async () => {
    const { cli } = await operatorProject();
    expect((await cli('migrate')).code).toBe(0);
    expect((await cli('settings', 'set', 'webhook-url', 'https://alice:a-long-password-1234567890@example.com/hook')).code).toBe(0);
    const listed = await cli('settings', 'list');
    expect(listed.code).toBe(0);
    const [header, ...rows] = listed.stdout.trimEnd().split('\n');
    const source = header!.indexOf('SOURCE');
    expect(rows.find((row) => row.startsWith('webhook-url'))).toContain('https://alice:****@example.com/hook  settings');
    // Every row's SOURCE starts under the header's: two spaces before it, none at it.
    expect(rows.map((row) => [row.slice(source - 2, source), row[source] === ' '])).toEqual(rows.map(() => ['  ', false]));
  });
});

/** One POST with raw control over headers; resolves with the status (or the error code when the socket fails). */
function post(url: string, body: Buffer | string, headers: Record<string, string>): Promise<number | string> {
  return new Promise((resolve) => {
    const request = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers } }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
    });
    request.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
    request.end(body);
  });
}

function rawRequest(port: number, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.end(bytes));
    let answer = '';
    socket.on('data', (chunk) => (answer += chunk.toString('latin1')));
    socket.on('close', () => resolve(answer));
    socket.on('error', () => resolve(answer));
    socket.setTimeout(5000, () => socket.destroy());
  });
}

describe('listen facing hostile requests', () => {
  test('a non-ASCII signature, a missing one, an oversized body and garbage are answered; it keeps running and creates no file', async () => {
    const dir = tempDir();
    const listener = await startListen(['--secret', 's3cret', '--max-body', '2000'], dir);
    const { url } = listener;
    try {
      const port = Number(new URL(url).port);
      const body = '{"event_type":"license.expired"}';
      // 64 characters, but 65 bytes once the é is UTF-8: timingSafeEqual threw on the byte lengths.
      expect(await post(url, body, { 'x-webhook-signature': `\u00e9${'a'.repeat(63)}` })).toBe(401);
      expect(await post(url, body, {})).toBe(401);
      expect(await post(url, body, { 'x-webhook-signature': 'f'.repeat(64) })).toBe(401);
      expect(await post(url, 'x'.repeat(5000), { 'x-webhook-signature': 'f'.repeat(64) })).toBe(413);
      // No Content-Length: the body streams in chunks and is cut off past the limit.
      const chunked = await new Promise<number | string>((resolve) => {
        const request = http.request(url, { method: 'POST' }, (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        });
        request.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
        for (let index = 0; index < 10; index += 1) request.write('y'.repeat(1000));
        request.end();
      });
      expect([413, 'ECONNRESET', 'EPIPE']).toContain(chunked);
      expect(await rawRequest(port, 'NOT HTTP AT ALL\r\n\r\n')).toMatch(/^HTTP\/1\.1 400/);
      const signature = createHmac('sha256', 's3cret').update(body).digest('hex');
      expect(await post(url, body, { 'x-webhook-signature': signature })).toBe(200);
      expect(listener.running()).toBe(true);
      const printed = Date.now();
      while (!listener.stdout().includes('signature valid') && Date.now() - printed < 5000) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(listener.stdout()).toMatch(/answered 413[\s\S]*refused: body of 5000 bytes is over the limit of 2000/);
      expect(listener.stdout()).toContain('signature valid');
    } finally {
      expect(await listener.stop()).toBe(0);
    }
    expect(listener.stderr()).not.toMatch(/unexpected|TypeError|RangeError/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  test('listen reads a configured secret from an existing database without changing it, and answers 401 without a signature', async () => {
    const { dir, cli } = await operatorProject();
    expect((await cli('migrate')).code).toBe(0);
    expect((await cli('settings', 'set', 'webhook-secret', 'stored-secret')).code).toBe(0);
    const database = path.join(dir, 'license-manager.sqlite');
    const before = fs.readFileSync(database);
    const listener = await startListen([], dir);
    try {
      expect(await post(listener.url, '{}', {})).toBe(401);
      expect(await post(listener.url, '{}', { 'x-webhook-signature': createHmac('sha256', 'stored-secret').update('{}').digest('hex') })).toBe(200);
    } finally {
      expect(await listener.stop()).toBe(0);
    }
    expect(fs.readFileSync(database).equals(before)).toBe(true);
  });

  test('verify calls a non-ASCII signature invalid (exit 1), not an unexpected failure', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'body.json'), '{}');
    const result = await runCli(['verify', '--secret', 's3cret', '--signature', `\u00e9${'a'.repeat(63)}`, '--file', 'body.json'], { cwd: dir });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^invalid: The signature is not hexadecimal: it looks truncated or malformed/);
  });
});

describe('databases that are not ours', () => {
  test('a SQLite file of another application is refused, naming it, and left byte for byte unchanged', async () => {
    const { dir, cli } = await operatorProject();
    const foreign = path.join(dir, 'shop.sqlite');
    const shop = new SQLite(foreign);
    shop.exec("create table customers (id integer primary key, name text); insert into customers (name) values ('Ann');");
    shop.close();
    const before = fs.readFileSync(foreign);
    for (const args of [['licenses', 'list'], ['migrate'], ['settings', 'set', 'warning-days', '3']]) {
      const result = await runCli(args, { cwd: dir, env: { LICENSE_MANAGER_DB: foreign } });
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(`Database ${foreign} belongs to something else: it has tables (customers)`);
    }
    expect(fs.readFileSync(foreign).equals(before)).toBe(true);
    expect(fs.readdirSync(dir).sort()).toEqual(['license-manager.config.json', 'shop.sqlite']);

    // Our own: a new file (migrate creates it), then the same file again once migrated.
    expect((await cli('migrate')).code).toBe(0);
    expect((await cli('licenses', 'list')).code).toBe(0);
    // An empty file someone created for us is fine too.
    fs.writeFileSync(path.join(dir, 'empty.sqlite'), '');
    expect((await runCli(['licenses', 'list'], { cwd: dir, env: { LICENSE_MANAGER_DB: path.join(dir, 'empty.sqlite') } })).code).toBe(0);
  });

  test('a database path that is not a regular file is exit 2', async () => {
    const { dir } = await operatorProject();
    for (const target of ['/dev/null', dir]) {
      const result = await runCli(['licenses', 'list'], { cwd: dir, env: { LICENSE_MANAGER_DB: target } });
      expect(result.code).toBe(2);
      expect(result.stderr).toBe(
        `error: Database ${target} is not a regular file. Point database.filename or LICENSE_MANAGER_DB at a SQLite file (license-manager migrate creates one when missing).\n`,
      );
    }
  });
});

const canSwitchUser = process.getuid?.() === 0 && fs.existsSync('/usr/sbin/runuser');

describe('exit codes and messages that say what is wrong', () => {
  test.each([
    ['postgres://app:pa%zzss@db.example:5432/licenses', 'password', 'postgres://app:****@db.example:5432/licenses'],
    ['mysql://app:hunter%2@db.example:3306/shop', 'password', 'mysql://app:****@db.example:3306/shop'],
    ['postgres://app:hunter2@db.example:5432/lic%enses', 'database name', 'postgres://app:****@db.example:5432/lic%enses'],
    ['mariadb://a%pp:hunter2@db.example/shop', 'user name', 'mariadb://a%pp:****@db.example/shop'],
  ])(
    'a bad %%-escape in %s is exit 2 naming the %s, password masked',
    async (url, part, masked) => {
      const { dir } = await operatorProject();
      const fromEnv = await runCli(['status'], { cwd: dir, env: { LICENSE_MANAGER_DB: url } });
      fs.writeFileSync(path.join(dir, 'license-manager.config.json'), JSON.stringify({ database: { url } }), { mode: 0o600 });
      const fromFile = await runCli(['licenses', 'list'], { cwd: dir });
      for (const result of [fromEnv, fromFile]) {
        expect(result.code).toBe(2);
        expect(result.stderr).toContain(`${masked}: the ${part} has a malformed %-escape`);
        expect(result.stderr).not.toMatch(/hunter|pa%zzss|URI malformed|unexpected failure/);
      }
    },
    60_000,
  );

  test('a driver message that ends in a full stop gets no second one ("backend.. Is")', async () => {
    // Something that answers a PostgreSQL client with a message it does not expect there (CopyData).
    const sockets: net.Socket[] = [];
    const impostor = net.createServer((socket) => {
      sockets.push(socket);
      socket.once('data', () => socket.write(Buffer.from([0x64, 0, 0, 0, 4])));
    });
    await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = impostor.address() as net.AddressInfo;
      const result = await runCli(['status'], {
        cwd: (await operatorProject()).dir,
        env: { LICENSE_MANAGER_DB: `postgres://someone@127.0.0.1:${port}/licenses` },
      });
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/Received unexpected copyData message from backend\. Is a PostgreSQL server listening at 127\.0\.0\.1:\d+\?/);
      expect(result.stderr).not.toMatch(/[^.]\.\.(?!\.)/);
    } finally {
      // The client's end of a connection the server keeps open would outlive the test in this process.
      for (const socket of sockets) socket.destroy();
      impostor.close();
    }
  }, 60_000);

  test('a JS config whose export never settles (and keeps a timer) ends with exit 2 naming the file', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'license-manager.config.js'), 'export default await new Promise((resolve) => setTimeout(resolve, 1e9));\n');
    const started = Date.now();
    // A child process: the point is that the process ends, and in this one the config's timer would stay behind.
    const result = await runCli(['process-expirations', '--dry-run'], { cwd: dir, timeoutMs: 40_000, process: true });
    expect(result.signal).toBeNull();
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`Config file ${path.join(dir, 'license-manager.config.js')} did not finish loading within 10 s`);
    expect(Date.now() - started).toBeLessThan(25_000);
  }, 45_000);

  (canSwitchUser ? test : test.skip)(
    'status run by a user who may not use the database file says so, and whose it is (test.skip when not root: needs runuser)',
    async () => {
      const { dir, cli } = await operatorProject();
      expect((await cli('migrate')).code).toBe(0);
      fs.chmodSync(dir, 0o755);
      const file = path.join(dir, 'license-manager.sqlite');
      const asNobody = () => runAs('nobody', ['status'], dir);
      fs.chmodSync(file, 0o600);
      const unreadable = await asNobody();
      expect(unreadable.code).toBe(2);
      expect(unreadable.stderr).toBe(
        `error: Cannot read database ${file}: user nobody may not (owner root, mode 600). Run the command as root, who owns it (sudo -u root license-manager ...), or change the permissions.\n`,
      );
      fs.chmodSync(file, 0o644);
      const readOnly = await asNobody();
      expect(readOnly.code).toBe(2);
      expect(readOnly.stderr).toMatch(
        /^error: Cannot write database .*: user nobody may not \(owner root, mode 644\), and SQLite must, even for a command that only reads such as status .* Run the command as root/,
      );
      // Nothing was left beside it for the job's user to trip over.
      expect(fs.readdirSync(dir).sort()).toEqual(['license-manager.config.json', 'license-manager.sqlite']);
    },
    60_000,
  );
});

describe('config files found by the search that cannot be used', () => {
  (canSwitchUser ? test : test.skip)(
    'one the user may not read is exit 2 naming it and why, as with -c; licenses import creates no default database (test.skip when not root: needs runuser)',
    async () => {
      const dir = tempDir();
      // Open to all, so that nobody could create the default database here.
      fs.chmodSync(dir, 0o777);
      const config = path.join(dir, 'license-manager.config.json');
      fs.writeFileSync(config, JSON.stringify({ database: { filename: 'elsewhere.sqlite' } }), { mode: 0o600 });
      fs.writeFileSync(path.join(dir, 'licenses.csv'), 'license_code\nA-1\n', { mode: 0o644 });
      const expected = `error: Could not read config file ${config}: EACCES: permission denied, open '${config}'`;
      const named = await runAs('nobody', ['-c', 'license-manager.config.json', 'status'], dir);
      expect([named.code, named.stderr]).toEqual([2, `${expected}\n`]);
      for (const args of [['status'], ['licenses', 'import', 'licenses.csv'], ['settings', 'list']]) {
        const found = await runAs('nobody', args, dir);
        expect({ args, code: found.code, stderr: found.stderr }).toEqual({
          args,
          code: 2,
          stderr: `${expected}. Make it readable by this user, remove it, or name the config file with --config.\n`,
        });
      }
      expect(fs.readdirSync(dir).sort()).toEqual(['license-manager.config.json', 'licenses.csv']);
    },
    60_000,
  );

  test('a symbolic link to a missing file is refused the same way, for root too (the search passed over it as absent)', async () => {
    const dir = tempDir();
    const config = path.join(dir, '.license-managerrc.json');
    fs.symlinkSync(path.join(dir, 'moved-away.json'), config);
    fs.writeFileSync(path.join(dir, 'licenses.csv'), 'license_code\nA-1\n');
    const result = await runCli(['licenses', 'import', 'licenses.csv'], { cwd: dir });
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      `error: Could not read config file ${config}: ENOENT: no such file or directory, open '${config}'. Make it readable by this user, remove it, or name the config file with --config.\n`,
    );
    expect(fs.readdirSync(dir).sort()).toEqual(['.license-managerrc.json', 'licenses.csv']);
  });

  test('a place the search never reaches (after the file it reads) is not checked: a dangling link there refuses nothing', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, '.license-managerrc.json'), JSON.stringify({ database: { filename: 'from-rc.sqlite' } }));
    fs.symlinkSync(path.join(dir, 'moved-away.js'), path.join(dir, 'license-manager.config.js'));
    fs.writeFileSync(path.join(dir, 'licenses.csv'), 'license_code\nA-1\n');
    const result = await runCli(['licenses', 'import', 'licenses.csv'], { cwd: dir });
    expect([result.code, result.stderr]).toEqual([0, '']);
    expect(fs.existsSync(path.join(dir, 'from-rc.sqlite'))).toBe(true);
  });

  test('an empty one is the config, {}, as with -c: not "no config file was found"; an empty package.json is passed over', async () => {
    const dir = tempDir();
    const config = path.join(dir, 'license-manager.config.json');
    fs.writeFileSync(config, '');
    for (const args of [['status'], ['-c', 'license-manager.config.json', 'status']]) {
      const result = await runCli(args, { cwd: dir });
      expect({ args, code: result.code, stderr: result.stderr }).toEqual({
        args,
        code: 2,
        stderr: expect.stringContaining(`(the default database file next to ${config})`),
      });
    }
    fs.rmSync(config);
    fs.writeFileSync(path.join(dir, 'package.json'), '\n');
    fs.writeFileSync(path.join(dir, '.license-managerrc.json'), JSON.stringify({ database: { filename: 'rc.sqlite' } }));
    const past = await runCli(['status'], { cwd: dir });
    expect(past.stderr).toContain(
      `Database ${path.join(dir, 'rc.sqlite')} does not exist (database.filename in ${path.join(dir, '.license-managerrc.json')} names it`,
    );
  });
});

/** The built CLI run as another user, as `sudo -u <user>` would. */
function runAs(user: string, args: string[], cwd: string): ReturnType<typeof runCli> {
  return runCommand('/usr/sbin/runuser', ['-u', user, '--', process.execPath, BIN, ...args], { cwd, timeoutMs: 20_000 });
}

// About files and output, not what the database holds: SQLite only.
describe('small hostile inputs about files', () => {
  test('a secret in a file others can read gets one warning; chmod 600 silences it', async () => {
    const { dir, cli } = await operatorProject();
    const config = path.join(dir, 'license-manager.config.json');
    expect((await cli('migrate')).code).toBe(0);
    fs.writeFileSync(config, JSON.stringify({ webhooks: { secret: 'file-secret' } }));
    fs.chmodSync(config, 0o644);
    const loose = await cli('settings', 'list');
    expect(loose.code).toBe(0);
    expect(loose.stderr.match(/warning:/g)).toHaveLength(1);
    expect(loose.stderr).toContain(`${config} holds the webhook secret and other users can read it (mode 644): run "chmod 600 ${config}"`);
    fs.chmodSync(config, 0o600);
    expect((await cli('settings', 'list')).stderr).toBe('');
    // A file that names the key but holds no secret is fine.
    fs.writeFileSync(config, JSON.stringify({ webhooks: { secret: null } }));
    fs.chmodSync(config, 0o644);
    expect((await cli('settings', 'list')).stderr).toBe('');

    fs.writeFileSync(config, '{}');
    expect((await cli('settings', 'set', 'webhook-secret', 'stored-secret')).stderr).toBe('');
    const database = path.join(dir, 'license-manager.sqlite');
    fs.chmodSync(database, 0o640);
    expect((await cli('licenses', 'list')).stderr).toContain(`${database} holds the webhook secret and other users can read it (mode 640)`);
  });

  test('a database.url with a password in a file others can read gets one warning; without a password, none', async () => {
    const dir = tempDir();
    const config = path.join(dir, 'license-manager.config.json');
    // The run itself uses a SQLite file (LICENSE_MANAGER_DB outranks database.url): the file still holds the password.
    const cli = (...args: string[]) => runCli(args, { cwd: dir, env: { LICENSE_MANAGER_DB: path.join(dir, 'run.sqlite') } });
    const write = (database: object, webhooks: object = {}) => {
      fs.writeFileSync(config, JSON.stringify({ database, webhooks }));
      fs.chmodSync(config, 0o644);
    };
    expect((await cli('migrate')).code).toBe(0);
    write({ url: 'mysql://license_manager:db-pa55@db.internal:3306/botble' });
    const loose = await cli('licenses', 'list');
    expect(loose.code).toBe(0);
    expect(loose.stderr.match(/warning:/g)).toHaveLength(1);
    expect(loose.stderr).toContain(`${config} holds the database password (database.url) and other users can read it (mode 644): run "chmod 600 ${config}"`);
    expect(loose.stderr).not.toContain('db-pa55');
    fs.chmodSync(config, 0o600);
    expect((await cli('licenses', 'list')).stderr).toBe('');

    // The secret and the password in one file: still one warning, naming both.
    write({ url: 'postgres://lm:pw@db.internal/licenses' }, { secret: 'file-secret' });
    const both = await cli('settings', 'list');
    expect(both.stderr.match(/warning:/g)).toHaveLength(1);
    expect(both.stderr).toContain(`${config} holds the webhook secret and the database password (database.url) and other users can read it (mode 644)`);

    // No password in the URL (a user alone, an empty password, a SQLite URL): nothing to warn about.
    for (const url of ['postgres://lm@db.internal/licenses', 'mysql://lm:@db.internal/botble', 'sqlite:./license-manager.sqlite']) {
      write({ url });
      expect((await cli('licenses', 'list')).stderr).toBe('');
    }
  });

  test("a TLS error's last_error is one line", async () => {
    const receiver = await receiverFor();
    const { cli } = await operatorProject();
    const result = await cli('send-test-event', '--url', receiver.url.replace('http:', 'https:'), '--json');
    expect(result.code).toBe(3);
    const { delivery } = JSON.parse(result.stdout) as { delivery: { lastError: string } };
    expect(delivery.lastError).toMatch(/SSL|TLS|ssl/);
    expect(delivery.lastError).not.toMatch(/\n/);
  });
});

// Refused while the file is parsed, before its first batch of rows reaches the database (where a bad row
// late in a file rolls back what was written, the test runs on every dialect, above): SQLite only.
describe('streamed import of files that break off', () => {
  test.each([
    [
      'closing.csv',
      'license_code,email\nOK,a@example.com\n"LIC-1"x,b@example.com\n',
      /closing\.csv: row 2 \(line 3\): field license_code: Invalid Closing Quote: got "x".* in "\\"LIC-1\\"x,b@example.com"/,
    ],
    [
      'opening.csv',
      'license_code,email\nOK,a@example.com\nLIC-2,  "spaced"  \n',
      /opening\.csv: row 2 \(line 3\): field email: Invalid Opening Quote.* in "LIC-2,  \\"spaced\\"  "/,
    ],
    [
      'semicolon.csv',
      'license_code;email\nA;a@example.com\n',
      /semicolon\.csv: the header \(line 1\) "license_code;email" is separated by ";"; CSV files must be comma-separated/,
    ],
    [
      'status.csv',
      'license_code,status\nA,active\nB,paused\n',
      /row 2 \(line 3\): field status must be one of active, suspended, revoked, expired, not "paused"/,
    ],
    ['trailing.json', '[{"license_code":"A"},]', /trailing\.json is not valid JSON: unexpected "\]" on line 1/],
    ['numbers.json', '[{"license_code":"A"}, 7]', /numbers\.json: row 2 is not an object/],
    ['cut.json', '[{"license_code":"A"}, {"license_code"', /cut\.json is not valid JSON: the file ends inside the array \(after row 1\)/],
    // A row of megabytes is refused as soon as it passes 1 MiB: memory stays bounded whatever the file holds.
    ['long.ndjson', `{"license_code":"A"}\n{"license_code":"${'x'.repeat(1_100_000)}"}\n`, /long\.ndjson: row 2 \(line 2\) is longer than 1048576 characters/],
    ['long.json', `[{"license_code":"A"},\n{"license_code":"${'x'.repeat(1_100_000)}"}]`, /long\.json: row 2 \(line 2\) is longer than 1048576 characters/],
    ['long.csv', `license_code,email\nA,${'x'.repeat(1_100_000)}\n`, /long\.csv: row 1 \(line 2\): field email: Max Record Size/],
  ])('%s: exit 2 naming where, nothing imported', async (name, content, message) => {
    const { dir, cli } = await operatorProject();
    fs.writeFileSync(path.join(dir, name), content);
    const result = await cli('licenses', 'import', name);
    expect(result.stderr).toMatch(message);
    expect(result.code).toBe(2);
    expect(await codes(cli)).toEqual([]);
  });
});

/**
 * A child's stdin kept open by the test: what it was sent, and no end (an endless pipe, without the memory).
 * `written` resolves once the pipe took it all: past the pipe's 64 KiB, that is once the child is reading.
 */
function withOpenStdin(args: string[], cwd: string, sent: Buffer | string) {
  const child = spawn(process.execPath, [BIN, ...args], { cwd, env: childEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.on('error', () => undefined);
  const written = new Promise<void>((resolve) => child.stdin.write(sent, () => resolve()));
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.on('close', (code, signal) => {
      clearTimeout(killer);
      child.stdin.destroy();
      resolve({ code, signal, at: Date.now() });
    }),
  );
  return { child, closed, written, stderr: () => stderr };
}

// Where a regression would read /dev/zero into memory without end, the child's address space is capped (util-linux's prlimit).
const prlimit = spawnSync('prlimit', ['--version']).status === 0;
const capped = (args: string[], cwd: string) =>
  prlimit ? runCommand('prlimit', ['--as=3000000000', process.execPath, BIN, ...args], { cwd, timeoutMs: 20_000 }) : runCli(args, { cwd, timeoutMs: 20_000 });

describe('inputs that hang or eat memory', () => {
  test('a config file that is a FIFO, a device or a folder is exit 2 at once, never opened (open() on a FIFO blocks past every signal)', async () => {
    const dir = tempDir();
    execFileSync('mkfifo', [path.join(dir, 'config.json')]);
    const cases: Array<[string[], string]> = [
      [
        ['-c', 'config.json', 'status'],
        `Config file ${path.join(dir, 'config.json')} is a named pipe (FIFO), not a regular file. Point --config at a JSON, YAML or JS file.`,
      ],
      [['-c', 'config.json', 'listen', '--port', '0'], 'is a named pipe (FIFO), not a regular file'],
      [['-c', 'config.json', 'verify', '--signature', 'ab'], 'is a named pipe (FIFO), not a regular file'],
      [['-c', '/dev/zero', 'settings', 'list'], 'Config file /dev/zero is a character device, not a regular file'],
      [['-c', dir, 'licenses', 'list'], `Config file ${dir} is a directory, not a regular file`],
    ];
    for (const [args, message] of cases) {
      const result = await runCli(args, { cwd: dir, timeoutMs: 20_000 });
      expect({ args, code: result.code, stderr: result.stderr }).toEqual({ args, code: 2, stderr: expect.stringContaining(message) });
    }
    // Found by the search in the current folder rather than named: the same.
    const found = tempDir();
    execFileSync('mkfifo', [path.join(found, 'license-manager.config.json')]);
    const searched = await runCli(['status'], { cwd: found, timeoutMs: 20_000 });
    expect(searched.code).toBe(2);
    expect(searched.stderr).toContain(
      `${path.join(found, 'license-manager.config.json')} is a named pipe (FIFO), not a regular file. Remove or rename it, or name the config file with --config.`,
    );
    // listen opens an existing SQLite database read-only: a FIFO there is refused unopened too.
    const database = await runCli(['listen', '--port', '0'], { cwd: dir, env: { LICENSE_MANAGER_DB: path.join(dir, 'config.json') }, timeoutMs: 20_000 });
    expect(database.code).toBe(2);
    expect(database.stderr).toContain('is a named pipe (FIFO), not a regular file');
    expect(fs.readdirSync(dir)).toEqual(['config.json']);
  }, 120_000);

  test('verify reads at most --max-body: a FIFO or /dev/zero as --file is refused unopened, a larger file by its size, an endless stdin at the limit', async () => {
    const dir = tempDir();
    execFileSync('mkfifo', [path.join(dir, 'body.fifo')]);
    const sign = ['verify', '--secret', 's3cret', '--signature', 'f'.repeat(64)];
    const fifo = await capped([...sign, '--file', 'body.fifo'], dir);
    expect(fifo.code).toBe(2);
    expect(fifo.stderr).toContain('Body file body.fifo is a named pipe (FIFO), not a regular file. Pipe it to standard input instead');
    const zero = await capped([...sign, '--file', '/dev/zero'], dir);
    expect(zero.code).toBe(2);
    expect(zero.stderr).toContain('Body file /dev/zero is a character device, not a regular file');

    fs.writeFileSync(path.join(dir, 'large.json'), 'x'.repeat(2000));
    const large = await runCli([...sign, '--file', 'large.json', '--max-body', '1000'], { cwd: dir });
    expect(large.code).toBe(2);
    expect(large.stderr).toContain('Body file large.json is 2000 bytes, over the limit of 1000 bytes: a webhook body is well under 1 KiB');
    // At the limit it is read and checked: exit 1, the signature does not match.
    expect((await runCli([...sign, '--file', 'large.json', '--max-body', '2000'], { cwd: dir })).code).toBe(1);

    // 3 MiB sent and the pipe left open: refused once past the default 1 MiB, without waiting for an end.
    const endless = withOpenStdin(sign, dir, Buffer.alloc(3 * 1024 * 1024, 'y'));
    const ended = await endless.closed;
    expect({ code: ended.code, stderr: endless.stderr() }).toEqual({
      code: 2,
      stderr: expect.stringContaining('the body on standard input is over the limit of 1048576 bytes'),
    });
  }, 120_000);

  test('verify stops on the first SIGTERM while standard input never ends: exit 1, saying nothing was checked', async () => {
    const dir = tempDir();
    // 256 KiB, under the limit: once the pipe has taken it, the child is reading, its signal handlers in place.
    const waiting = withOpenStdin(['verify', '--secret', 's3cret', '--signature', 'f'.repeat(64)], dir, `{"event_type":"${' '.repeat(256 * 1024)}`);
    await waiting.written;
    const sent = Date.now();
    waiting.child.kill('SIGTERM');
    const ended = await waiting.closed;
    expect({ code: ended.code, signal: ended.signal }).toEqual({ code: 1, signal: null });
    expect(ended.at - sent).toBeLessThan(10_000);
    expect(waiting.stderr()).toContain('Stopped by SIGTERM before the body on standard input ended: nothing was done.');
  }, 60_000);
});

/** Connects and resolves once connected or refused, whichever comes first (a flooded server may close at once). */
function connectSocket(port: number, first?: string): Promise<net.Socket> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => resolve(socket));
    socket.on('close', () => resolve(socket));
    socket.on('connect', () => {
      if (first) socket.write(first);
      resolve(socket);
    });
  });
}

describe('listen facing a flood of connections (a development tool, but one that may face the internet)', () => {
  const floodName = 'idle and slow clients past the connection cap and the open-files limit do not lock a real request out';
  (prlimit ? test : test.skip)(
    prlimit ? floodName : `${floodName}: skipped, util-linux's prlimit is not installed`,
    async () => {
      const dir = tempDir();
      // 64 open files: what a flood of a thousand exhausts at the usual 1,024, in a test-sized count.
      const listener = await startListen(['--secret', 's3cret', '--max-connections', '16'], dir, { openFiles: 64 });
      const port = Number(new URL(listener.url).port);
      const flood: net.Socket[] = [];
      try {
        for (let index = 0; index < 100; index += 1) {
          // Three in four send nothing; every fourth starts its headers and never ends them.
          flood.push(await connectSocket(port, index % 4 === 0 ? 'POST /webhook HTTP/1.1\r\nHost: x\r\n' : undefined));
        }
        const body = '{"event_type":"license.expired"}';
        const started = Date.now();
        expect(await post(listener.url, body, { 'x-webhook-signature': createHmac('sha256', 's3cret').update(body).digest('hex') })).toBe(200);
        expect(Date.now() - started).toBeLessThan(5000);
        expect(listener.running()).toBe(true);
        // Never more than the cap held open: the flood's own sockets were closed from the far end, oldest first.
        await new Promise((resolve) => setTimeout(resolve, 200));
        expect(flood.filter((socket) => !socket.destroyed && socket.readyState === 'open').length).toBeLessThanOrEqual(16);
        expect(listener.stderr()).toContain('warning: 16 connections are open (--max-connections): closing the oldest for each new one.');
      } finally {
        for (const socket of flood) socket.destroy();
        expect(await listener.stop()).toBe(0);
      }
    },
    90_000,
  );

  test('clients too slow to send their headers are answered 408 after 10 s, and a body that never ends after 30 s', async () => {
    const dir = tempDir();
    const listener = await startListen([], dir);
    const port = Number(new URL(listener.url).port);
    const started = Date.now();
    const watch = (socket: net.Socket) =>
      new Promise<{ answer: string; afterMs: number }>((resolve) => {
        let answer = '';
        socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
        socket.on('close', () => resolve({ answer: answer.split('\r\n')[0]!, afterMs: Date.now() - started }));
      });
    const idle = await connectSocket(port);
    // Headers one line at a time, each well inside any idle timeout, never finished.
    const drip = await connectSocket(port, 'POST /webhook HTTP/1.1\r\n');
    const dripping = setInterval(() => drip.writable && drip.write(`X-Slow-${Date.now()}: 1\r\n`), 1000);
    const body = await connectSocket(port, 'POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"event');
    try {
      const [idleEnd, dripEnd, bodyEnd] = await Promise.all([watch(idle), watch(drip), watch(body)]);
      expect([idleEnd.answer, dripEnd.answer, bodyEnd.answer]).toEqual([
        'HTTP/1.1 408 Request Timeout',
        'HTTP/1.1 408 Request Timeout',
        'HTTP/1.1 408 Request Timeout',
      ]);
      for (const end of [idleEnd, dripEnd]) expect(end.afterMs).toBeGreaterThan(9000);
      for (const end of [idleEnd, dripEnd]) expect(end.afterMs).toBeLessThan(16_000);
      expect(bodyEnd.afterMs).toBeGreaterThan(29_000);
      expect(bodyEnd.afterMs).toBeLessThan(40_000);
      expect(listener.running()).toBe(true);
    } finally {
      clearInterval(dripping);
      for (const socket of [idle, drip, body]) socket.destroy();
      expect(await listener.stop()).toBe(0);
    }
  }, 90_000);
});
