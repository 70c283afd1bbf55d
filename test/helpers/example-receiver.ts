import { spawn } from 'node:child_process';
import path from 'node:path';
import { ROOT } from './readme.js';

export interface ExampleReceiver {
  url: string;
  /** The JSON lines it printed, one per handled request. */
  lines: () => Array<Record<string, unknown>>;
  stderr: () => string;
}

/**
 * Starts examples/<file> on a free port with WEBHOOK_SECRET `secret` (and `extraEnv`, e.g. KNOWN_LICENSES); the child
 * goes into `running` for the test to kill.
 */
export async function startExample(file: string, secret: string, running: Array<{ kill(): void }>, extraEnv: NodeJS.ProcessEnv = {}): Promise<ExampleReceiver> {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', WEBHOOK_SECRET: secret, ...extraEnv };
  delete env.NODE_OPTIONS;
  const child = spawn(process.execPath, [path.join(ROOT, 'examples', file)], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  running.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
  const started = Date.now();
  while (!/listening on (\S+)/.test(stderr)) {
    if (Date.now() - started > 10_000) throw new Error(`${file} did not start: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return {
    url: /listening on (\S+)/.exec(stderr)![1]!,
    lines: () =>
      stdout
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>),
    stderr: () => stderr,
  };
}
