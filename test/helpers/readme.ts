import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCommand } from './cli.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface CodeBlock {
  /** The `## ` section the block is in (a `### ` sub-section belongs to its `## `). */
  section: string;
  language: string;
  lines: string[];
}

/** Every fenced block of README.md, in order, with its section. Indented fences (inside list items) count too. */
export function readmeBlocks(markdown = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8')): CodeBlock[] {
  const blocks: CodeBlock[] = [];
  let section = '';
  let open: CodeBlock | undefined;
  let indent = 0;
  for (const line of markdown.split('\n')) {
    const fence = /^(\s*)```(\S*)\s*$/.exec(line);
    if (open) {
      if (fence) {
        blocks.push(open);
        open = undefined;
      } else {
        open.lines.push(line.slice(Math.min(indent, line.length - line.trimStart().length)));
      }
    } else if (fence) {
      indent = fence[1]!.length;
      open = { section, language: fence[2]!, lines: [] };
    } else if (line.startsWith('## ')) {
      section = line.slice(3).trim();
    }
  }
  return blocks;
}

/** A command line that is not run, and why: it needs a real server, root, cron, systemd, the network, or it never ends. */
export interface Skip {
  pattern: RegExp;
  why: string;
}

/**
 * Turns README lines into one bash script: comments and blank lines dropped, `skip` lines left out,
 * `rewrite` applied to each line that runs. A heredoc (`<<'EOF'` ... `EOF`) is kept whole.
 */
export function scriptOf(lines: readonly string[], skip: readonly Skip[], rewrite: (line: string) => string): { script: string; skipped: string[] } {
  const out: string[] = [];
  const skipped: string[] = [];
  let heredocEnd: string | undefined;
  for (const line of lines) {
    if (heredocEnd !== undefined) {
      out.push(rewrite(line));
      if (line.trim() === heredocEnd) heredocEnd = undefined;
      continue;
    }
    const command = line.replace(/\s+#\s.*$/, '').trim();
    if (command === '' || command.startsWith('#')) continue;
    if (skip.some(({ pattern }) => pattern.test(command))) {
      skipped.push(command);
      continue;
    }
    const heredoc = /<<\s*'?(\w+)'?/.exec(command);
    if (heredoc) heredocEnd = heredoc[1];
    // Each command echoed first, so a failure names the README line.
    out.push(`echo ${shellQuote(`+ ${command}`)} >&2`, rewrite(command));
  }
  return { script: out.join('\n'), skipped };
}

function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

export interface ScriptResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a script with `bash -euo pipefail`: the first failing command ends it. `--norc`: bash reads
 * /etc/bash.bashrc when its stdin is a socket and it looks like a top-level shell (as under rshd), which
 * Node's piped stdin is; Debian's bashrc then fails under `-u` (PS1 unset) whenever SHLVL was not set.
 */
export function runScript(script: string, options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<ScriptResult> {
  return runCommand('bash', ['--norc', '-euo', 'pipefail', '-c', script], options).then(({ code, stdout, stderr }) => ({ code, stdout, stderr }));
}
