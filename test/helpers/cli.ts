import { spawn, spawnSync } from 'node:child_process';
import { Readable } from 'node:stream';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/license-manager.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The test's environment without what would change the child's behaviour: jest's NODE_OPTIONS, colour overrides. */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_OPTIONS; // jest's --experimental-vm-modules is not for the child
  delete env.FORCE_COLOR;
  delete env.NO_COLOR;
  return { ...env, ...extra };
}

export interface CliOptions {
  cwd: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** What the command reads on standard input (`verify`, `settings set … -`); empty when not given. */
  input?: string;
  /** Run the built CLI as a child process: for what only a process shows (its exit, TZ, signals, the bin script). */
  process?: boolean;
}

// Variables that act on the process itself (the zone of its clock, preloaded libraries): only a child honours them.
const PROCESS_ONLY_ENV = ['TZ', 'LD_PRELOAD', 'FAKETIME', 'NODE_OPTIONS'];

/**
 * Runs the CLI as a user or cron would: in this process through `main(argv, io)` (the same function
 * bin/ calls, with the same environment and working directory, in milliseconds), or as a child process
 * of the built CLI when asked or when the environment holds what only a process honours.
 */
export async function runCli(args: string[], options: CliOptions): Promise<CliResult> {
  const inChild = options.process || PROCESS_ONLY_ENV.some((name) => options.env?.[name] !== undefined);
  if (inChild) return runCommand(process.execPath, [BIN, ...args], { timeoutMs: 20_000, ...options });
  return runInProcess(args, options);
}

/** `main()` in this process, with captured streams; a run that outlives `timeoutMs` fails the test instead of hanging it. */
async function runInProcess(args: string[], options: CliOptions): Promise<CliResult> {
  const { main } = await import('../../src/cli/main.js');
  let stdout = '';
  let stderr = '';
  const io = {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    env: childEnv(options.env),
    cwd: options.cwd,
    stdin: Readable.from(options.input === undefined ? [] : [Buffer.from(options.input)]),
  };
  const timeoutMs = options.timeoutMs ?? 20_000;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`license-manager ${args.join(' ')} did not finish within ${timeoutMs} ms:\n${stderr}`)), timeoutMs);
  });
  try {
    const code = await Promise.race([main(['node', 'license-manager', ...args], io), timedOut]);
    return { code, signal: null, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs any command with the test's child environment, collecting its output; killed after `timeoutMs`. `input` is its stdin. */
export function runCommand(
  command: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string },
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: childEnv(options.env), stdio: ['pipe', 'pipe', 'pipe'] });
    // Without input, an empty stdin that ends at once (as 'ignore' gave before).
    child.stdin.on('error', () => undefined).end(options.input ?? '');
    let stdout = '';
    let stderr = '';
    // Decoded by the stream: a character split between two chunks stays one character.
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A `license-manager listen` child process that has said where it listens. */
export interface Listening {
  url: string;
  pid: number;
  stdout(): string;
  /** With --json: every line it has printed, parsed. */
  jsonLines(): Array<Record<string, unknown>>;
  stderr(): string;
  /** Still running (it must survive whatever a test sends it). */
  running(): boolean;
  /** Ctrl-C, then its exit code. */
  stop(): Promise<number | null>;
}

/**
 * Starts `license-manager listen --port 0 …args` as a user would, and waits until it prints its URL (in words, or
 * as the first JSON line with --json). `openFiles` lowers its limit of open files once it listens (with
 * util-linux's prlimit: a low `ulimit -n` from the start fails loading the modules).
 */
export async function startListen(args: string[], cwd: string, options: { env?: NodeJS.ProcessEnv; openFiles?: number } = {}): Promise<Listening> {
  const child = spawn(process.execPath, [BIN, 'listen', '--port', '0', ...args], { cwd, env: childEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const started = Date.now();
  const address = () => /listening on (http:\S+)/.exec(stdout)?.[1] ?? /^\{"listening":"(http:[^"]+)"/.exec(stdout)?.[1];
  while (!address() && child.exitCode === null && Date.now() - started < 20_000) await new Promise((resolve) => setTimeout(resolve, 20));
  const url = address();
  if (!url) {
    child.kill('SIGKILL');
    throw new Error(`listen did not start within 20 s: ${stderr}`);
  }
  if (options.openFiles !== undefined) {
    const limited = spawnSync('prlimit', ['--pid', String(child.pid), `--nofile=${options.openFiles}:${options.openFiles}`]);
    if (limited.status !== 0) {
      child.kill('SIGKILL');
      throw new Error(`prlimit failed: ${limited.error?.message ?? limited.stderr.toString()}`);
    }
  }
  return {
    url,
    pid: child.pid!,
    stdout: () => stdout,
    jsonLines: () =>
      stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Record<string, unknown>),
    stderr: () => stderr,
    running: () => child.exitCode === null,
    stop: () => {
      child.kill('SIGINT');
      return closed;
    },
  };
}
