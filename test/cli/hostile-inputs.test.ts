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
