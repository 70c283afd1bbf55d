import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, test } from '@jest/globals';
import { runCli } from '../helpers/cli.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { tempDir } from '../helpers/temp-dir.js';

let receiver: Receiver | undefined;
afterEach(async () => {
  await receiver?.close();
  receiver = undefined;
});

/** A folder with a config (fast retries) and its database file beside it. */
function project(extra: object = {}): { dir: string; cli: (...args: string[]) => ReturnType<typeof runCli> } {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'license-manager.config.json'), JSON.stringify({ webhooks: { retryDelaysMs: [10, 10, 10], timeoutMs: 2000 }, ...extra }));
  return { dir, cli: (...args: string[]) => runCli(args, { cwd: dir }) };
}

async function codes(cli: (...args: string[]) => ReturnType<typeof runCli>): Promise<string[]> {
  const listed = await cli('licenses', 'list', '--json');
  expect(listed.code).toBe(0);
  return (JSON.parse(listed.stdout) as Array<{ license_code: string }>).map((row) => row.license_code);
}

describe('import files that are not what they claim', () => {
  test('bytes that are not UTF-8 are refused naming row and field; no replacement character reaches the database', async () => {
    const { dir, cli } = project();
    fs.writeFileSync(path.join(dir, 'utf8.csv'), 'license_code,email\nLIC-café,a@example.com\n');
    expect((await cli('licenses', 'import', 'utf8.csv')).code).toBe(0);
    // The same code written in Latin-1: é is the single byte 0xE9.
    fs.writeFileSync(path.join(dir, 'latin1.csv'), Buffer.concat([Buffer.from('license_code,email\nLIC-1,b@example.com\nLIC-caf'), Buffer.from([0xe8]), Buffer.from(',c@example.com\n')]));
    const result = await cli('licenses', 'import', 'latin1.csv');
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/latin1\.csv: row 2 \(line 3\): field license_code is not valid UTF-8/);
    expect(await codes(cli)).toEqual(['LIC-café']);

    fs.writeFileSync(path.join(dir, 'latin1.ndjson'), Buffer.concat([Buffer.from('{"license_code":"OK"}\n{"license_code":"X","email":"caf'), Buffer.from([0xe9]), Buffer.from('@example.com"}\n')]));
    const ndjson = await cli('licenses', 'import', 'latin1.ndjson');
    expect(ndjson.code).toBe(2);
    expect(ndjson.stderr).toMatch(/row 2 \(line 2\): field email is not valid UTF-8/);
    expect(await codes(cli)).toEqual(['LIC-café']);
  });
});

describe('credentials in the webhook URL', () => {
  test('are sent as Authorization: Basic, never in the URL, and no output shows the password', async () => {
    receiver = await startReceiver((request) => (request.headers.authorization === `Basic ${Buffer.from('alice:hunter2').toString('base64')}` ? 200 : 401));
    const { dir, cli } = project();
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
});
