import { Chalk, type ChalkInstance } from 'chalk';
import { maskCredentials } from '../credentials.js';
import { clean } from './text.js';

/** Where a command's words go. The CLI is the only place that prints; tests pass their own streams. */
export interface Io {
  stdout: { write(text: string): unknown; isTTY?: boolean };
  stderr: { write(text: string): unknown; isTTY?: boolean; columns?: number };
  env: NodeJS.ProcessEnv;
  cwd: string;
  stdin?: NodeJS.ReadableStream;
}

export interface OutputOptions {
  json: boolean;
  quiet: boolean;
  color: boolean;
  verbose: boolean;
}

export class Output {
  readonly paint: ChalkInstance;
  readonly errPaint: ChalkInstance;

  constructor(
    readonly io: Io,
    readonly options: OutputOptions,
  ) {
    this.paint = new Chalk({ level: colorLevel(options.color, io.env, io.stdout) });
    this.errPaint = new Chalk({ level: colorLevel(options.color, io.env, io.stderr) });
  }

  /** Human output; silent under --quiet and --json. */
  info(text: string): void {
    if (!this.options.quiet && !this.options.json) this.io.stdout.write(`${maskCredentials(text)}\n`);
  }

  /** The one JSON document of a --json run. */
  json(value: unknown): void {
    this.io.stdout.write(`${maskCredentials(JSON.stringify(value, null, 2))}\n`);
  }

  /** Warnings go to stderr, even under --quiet: they are trouble cron should mail. */
  warn(text: string): void {
    this.io.stderr.write(`${this.errPaint.yellow('warning:')} ${clean(maskCredentials(text), true)}\n`);
  }

  error(text: string): void {
    this.io.stderr.write(`${this.errPaint.red('error:')} ${clean(maskCredentials(text), true)}\n`);
  }

  /**
   * A progress line on stderr, redrawn in place; only on a terminal, never under --quiet or --json.
   * Returns the update function (throttled) and a function that clears the line.
   */
  progress(label: string): { enabled: boolean; update(done: number, total: number, note?: string): void; end(): void } {
    const enabled = Boolean(this.io.stderr.isTTY) && !this.options.quiet && !this.options.json;
    let last = 0;
    let drawn = false;
    const width = 24;
    return {
      enabled,
      update: (done, total, note = '') => {
        const now = Date.now();
        if (!enabled || (now - last < 100 && done < total)) return;
        last = now;
        drawn = true;
        const filled = total > 0 ? Math.round((done / total) * width) : 0;
        const bar = `${'#'.repeat(filled)}${'-'.repeat(width - filled)}`;
        const line = `${label} [${bar}] ${done}/${total}${note ? ` ${note}` : ''}`;
        // A line wider than the terminal wraps, and \r then redraws only its last part: cut it to fit.
        const columns = this.io.stderr.columns;
        this.io.stderr.write(`\r\u001b[2K${columns && line.length >= columns ? line.slice(0, columns - 1) : line}`);
      },
      end: () => {
        if (drawn) this.io.stderr.write('\r\u001b[2K');
      },
    };
  }

  /** Output that is the answer itself (settings get): printed even under --quiet. */
  result(text: string): void {
    if (!this.options.json) this.io.stdout.write(`${clean(maskCredentials(text))}\n`);
  }
}

/**
 * Colour on a terminal unless --no-color or a non-empty NO_COLOR (no-color.org: an empty value does not
 * count); FORCE_COLOR (non-empty, not 0/false, as chalk reads it) turns it on off a terminal too.
 */
function colorLevel(flag: boolean, env: NodeJS.ProcessEnv, stream: { isTTY?: boolean }): 0 | 1 {
  if (!flag || (env.NO_COLOR ?? '') !== '') return 0;
  const force = env.FORCE_COLOR ?? '';
  if (force !== '') return force === '0' || force === 'false' ? 0 : 1;
  return stream.isTTY ? 1 : 0;
}
