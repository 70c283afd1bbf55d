import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from '@jest/globals';
import { BIN, childEnv, runCli } from './cli.js';
import { tempDir } from './temp-dir.js';

/** A project with `count` licenses that expired yesterday (for a run at 2025-01-15T08:00:00Z): one license.expired event each. */
export async function projectWithEvents(count: number, webhooks: object): Promise<{ cwd: string; db: string }> {
  const cwd = tempDir();
  fs.writeFileSync(path.join(cwd, 'license-manager.config.json'), JSON.stringify({ webhooks: { enabled: true, ...webhooks } }));
  const rows = Array.from({ length: count }, (_, index) => ({ license_code: `K-${String(index).padStart(3, '0')}`, expires_at: '2025-01-14T08:00:00Z' }));
  fs.writeFileSync(path.join(cwd, 'licenses.json'), JSON.stringify(rows));
  const imported = await runCli(['licenses', 'import', 'licenses.json'], { cwd });
  expect(imported.code).toBe(0);
  return { cwd, db: path.join(cwd, 'license-manager.sqlite') };
}

/** The built CLI as a child process that the test can signal while it runs; `command` wraps it (e.g. unshare). */
export function startCli(args: string[], cwd: string, options: { env?: NodeJS.ProcessEnv; command?: string[] } = {}) {
  const [program, ...prefix] = options.command ?? [process.execPath];
  const child = spawn(program!, [...prefix, ...(options.command ? [process.execPath] : []), BIN, ...args], { cwd, env: childEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { child, done, stderr: () => stderr };
}

/** Polls `condition` every 5 ms; fails after `timeoutMs`. */
export async function until(condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
