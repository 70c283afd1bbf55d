import { spawn, spawnSync } from 'node:child_process';
import { describe, expect, test } from '@jest/globals';
import { BIN, childEnv, runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/temp-dir.js';
import { expiredLicenses, project, receiverFor } from '../helpers/workspace.js';

const ESC = '\u001b';
const hasScript = spawnSync('script', ['--version']).status === 0;

/** Runs the CLI under a pseudo-terminal (util-linux `script`), as a person at a terminal would. */
function runInTerminal(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  const command = [process.execPath, BIN, ...args].map((part) => `'${part.replace(/'/g, `'\\''`)}'`).join(' ');
  return new Promise((resolve) => {
    const child = spawn('script', ['-qec', command, '/dev/null'], { cwd, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk));
    child.on('close', () => resolve(output));
  });
}

/** A receiver that answers in 40 ms, and an operator's project before migrate with `count` licenses due on 2025-01-15 (imported). */
const dueEvents = async (count: number) => {
  const receiver = await receiverFor(() => ({ delayMs: 40, status: 200 }));
  const config = { webhooks: { enabled: true, url: receiver.url, concurrency: 2 } };
  const ws = await project({ plain: true, database: false, config, licenses: expiredLicenses(count, 'T-', 1, '2025-01-14T00:00:00Z') });
  return { cwd: ws.dir, receiver };
};

describe('terminal and pipe output', () => {
  test('through a pipe: no escape codes anywhere, and --quiet prints nothing on success', async () => {
    const { cwd, receiver } = await dueEvents(20);
    const outputs: string[] = [];
    for (const args of [
      ['settings', 'list'],
      ['licenses', 'list'],
      ['process-expirations', '--now', '2025-01-15T00:00:00Z'],
      ['deliveries', 'list'],
      ['--help'],
    ]) {
      const result = await runCli(args, { cwd });
      expect(result.code).toBe(0);
      outputs.push(result.stdout, result.stderr);
    }
    expect(outputs.join('')).not.toContain(ESC);
    expect(receiver.requests).toHaveLength(20);
    const quiet = await runCli(['process-expirations', '--quiet'], { cwd });
    expect(quiet).toMatchObject({ code: 0, stdout: '', stderr: '' });
  }, 30_000);

  (hasScript ? test : test.skip)(
    'on a terminal: colour, and a progress bar on stderr while delivering',
    async () => {
      const { cwd } = await dueEvents(30);
      const run = await runInTerminal(['process-expirations', '--now', '2025-01-15T00:00:00Z'], cwd);
      expect(run).toMatch(new RegExp(String.raw`\r${ESC}\[2Kdelivering \[[#-]{24}\] \d+/30`));
      expect(run).toContain('delivered 30, abandoned 0');
      const list = await runInTerminal(['settings', 'list'], cwd);
      expect(list).toContain(`${ESC}[2m(not set)`);
    },
    30_000,
  );

  (hasScript ? test : test.skip)(
    'on a terminal: the plan first, then a bar that shows deliveries waiting to retry while they wait',
    async () => {
      const seen = new Set<string>();
      // Every event fails its first attempt, then is delivered after a 300 ms wait.
      const receiver = await receiverFor((request) => {
        const id = String(request.headers['x-webhook-id']);
        if (seen.has(id)) return 200;
        seen.add(id);
        return 503;
      });
      // retryWindowHours 0: this is about the bar while in-run retries wait. With retries across runs, five first attempts
      // failing in a row would open the endpoint's circuit and defer the rest to a later run instead.
      const config = { webhooks: { enabled: true, url: receiver.url, concurrency: 2, retryDelaysMs: [300], retryWindowHours: 0 } };
      const { dir: cwd } = await project({ plain: true, database: false, config, licenses: expiredLicenses(6, 'W-', 1, '2025-01-14T00:00:00Z') });
      const run = await runInTerminal(['process-expirations', '--now', '2025-01-15T00:00:00Z', '--no-color'], cwd);
      expect(run.indexOf(`sending 6 events to ${receiver.url} (from config `)).toBe(0);
      // Drawn while nothing had finished yet: the waits are visible, not only the end of each delivery.
      expect(run).toMatch(/delivering \[-{24}\] 0\/6 0 delivered, [1-6] waiting to retry, 0 abandoned/);
      expect(run).toMatch(/delivering \[#{24}\] 6\/6 6 delivered, 0 waiting to retry, 0 abandoned/);
      expect(run).toContain('delivered 6, abandoned 0');
    },
    30_000,
  );

  (hasScript ? test : test.skip)('on a terminal, NO_COLOR and --no-color turn colour off', async () => {
    const cwd = tempDir();
    expect((await runCli(['migrate'], { cwd })).code).toBe(0);
    expect(await runInTerminal(['settings', 'list'], cwd, { NO_COLOR: '1' })).not.toContain(ESC);
    expect(await runInTerminal(['settings', 'list', '--no-color'], cwd)).not.toContain(ESC);
    // no-color.org: an empty NO_COLOR does not count.
    expect(await runInTerminal(['settings', 'list'], cwd, { NO_COLOR: '' })).toContain(`${ESC}[2m(not set)`);
  });

  test('a reader that goes away (| head -1) ends the output, not the run: it records and sends everything, exit 0, no stack trace', async () => {
    const { cwd, receiver } = await dueEvents(5);
    // The pipe's reading end is closed before the CLI has started: its first write meets EPIPE.
    const child = spawn(process.execPath, [BIN, 'process-expirations', '--now', '2025-01-15T00:00:00Z'], {
      cwd,
      env: childEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(receiver.requests).toHaveLength(5);
    const delivered = await runCli(['deliveries', 'list', '--status', 'delivered', '--json'], { cwd });
    expect(JSON.parse(delivered.stdout)).toHaveLength(5);
  });

  test('FORCE_COLOR colours a pipe; FORCE_COLOR=0, NO_COLOR and --no-color do not', async () => {
    const cwd = tempDir();
    expect((await runCli(['migrate'], { cwd })).code).toBe(0);
    const forced = await runCli(['settings', 'list'], { cwd, env: { FORCE_COLOR: '1' } });
    expect(forced.stdout).toContain(`${ESC}[2m(not set)`);
    for (const env of [{ FORCE_COLOR: '0' }, { FORCE_COLOR: '1', NO_COLOR: '1' }]) {
      expect((await runCli(['settings', 'list'], { cwd, env })).stdout).not.toContain(ESC);
    }
    expect((await runCli(['settings', 'list', '--no-color'], { cwd, env: { FORCE_COLOR: '1' } })).stdout).not.toContain(ESC);
  });

  test('--json of every command parses', async () => {
    const { cwd, receiver } = await dueEvents(2);
    const commands = [
      ['settings', 'list'],
      ['settings', 'get', 'warning-days'],
      ['settings', 'set', 'warning-days', '7,1'],
      ['settings', 'unset', 'warning-days'],
      ['licenses', 'list'],
      ['licenses', 'import', 'licenses.json'],
      ['process-expirations', '--now', '2025-01-15T00:00:00Z', '--dry-run'],
      ['process-expirations', '--now', '2025-01-15T00:00:00Z'],
      ['deliveries', 'list'],
      ['deliveries', 'show', '1'],
      ['deliveries', 'retry', '--abandoned', '--dry-run'],
      ['send-test-event', '--url', receiver.url],
      ['migrate'],
      ['status'],
      ['--version'],
    ];
    for (const args of commands) {
      const result = await runCli([...args, '--json'], { cwd });
      expect({ args, code: result.code }).toEqual({ args, code: 0 });
      expect(() => JSON.parse(result.stdout)).not.toThrow();
    }
  }, 60_000);

  test('every command has help with an example', async () => {
    const cwd = tempDir();
    const commands = [
      ['process-expirations'],
      ['send-test-event'],
      ['settings'],
      ['settings', 'list'],
      ['settings', 'get'],
      ['settings', 'set'],
      ['settings', 'unset'],
      ['licenses'],
      ['licenses', 'import'],
      ['licenses', 'list'],
      ['deliveries'],
      ['deliveries', 'list'],
      ['deliveries', 'show'],
      ['deliveries', 'retry'],
      ['listen'],
      ['verify'],
      ['status'],
      ['migrate'],
    ];
    for (const args of commands) {
      const help = await runCli([...args, '--help'], { cwd });
      expect({
        args,
        code: help.code,
        hasExample: /Examples?:\n\s+\$ license-manager|Examples?:\n\s+\$ \S+=\S+ license-manager|Examples?:\n\s+\$ pbpaste/.test(help.stdout),
      }).toEqual({ args, code: 0, hasExample: true });
    }
  }, 60_000);
});
