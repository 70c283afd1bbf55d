import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, test } from '@jest/globals';
import { childEnv } from '../helpers/cli.js';
import { ROOT } from '../helpers/readme.js';
const BENCH = path.join(ROOT, 'dist/scripts/bench.js');

/** The built bench with `args`; every case here stops before it builds a database. */
function bench(args: string[]) {
  const result = spawnSync(process.execPath, [BENCH, ...args], { cwd: ROOT, env: childEnv(), encoding: 'utf8', timeout: 30_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('npm run bench: its arguments', () => {
  test('--help lists every option and exits 0', () => {
    const result = bench(['--help']);
    expect([result.code, result.stderr]).toEqual([0, '']);
    for (const option of [
      '--licenses',
      '--due-percent',
      '--latency-ms',
      '--concurrency',
      '--db',
      '--workers',
      '--endpoints',
      '--startup-runs',
      '--out',
      '--keep',
    ]) {
      expect(result.stdout).toContain(option);
    }
  });

  test('an unknown option is named on one line, with the usage, and exit 2 (no stack trace)', () => {
    const result = bench(['--licences', '1000']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^bench: Unknown option '--licences'/);
    expect(result.stderr).toContain('--licenses <n>');
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  test('a number that is not one is named as it is spelt on the command line, and exit 2', () => {
    const result = bench(['--due-percent', 'many']);
    expect([result.code, result.stderr]).toEqual([2, 'bench: --due-percent must be a non-negative number, not "many"\n']);
    for (const name of ['--workers', '--endpoints', '--startup-runs']) {
      for (const value of ['many', '0', '1.5']) {
        expect(bench([name, value])).toMatchObject({ code: 2, stderr: `bench: ${name} must be a whole number from 1, not "${value}"\n` });
      }
    }
  });
});
