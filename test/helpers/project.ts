import { spawn } from 'node:child_process';
import { BIN, childEnv } from './cli.js';
import { cleanUp } from './workspace.js';

/** The built CLI as a child process that the test can signal while it runs, killed after it; `command` wraps it (e.g. unshare). */
export function startCli(args: string[], cwd: string, options: { env?: NodeJS.ProcessEnv; command?: string[] | undefined } = {}) {
  const [program, ...prefix] = options.command ?? [process.execPath];
  const child = spawn(program!, [...prefix, ...(options.command ? [process.execPath] : []), BIN, ...args], {
    cwd,
    env: childEnv(options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  // One still running when its test is over is killed.
  cleanUp(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await done;
  });
  return { child, done, stderr: () => stderr };
}

/** Polls `condition` every 5 ms (a database query may be one); fails after `timeoutMs`. */
export async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > timeoutMs) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
