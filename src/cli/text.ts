// Plain-text helpers of the printers, without chalk: a command's module imports them when the program is declared (--help).
import { stripVTControlCharacters } from 'node:util';
import { maskCredentials } from '../credentials.js';

/**
 * Data shown to a person (license codes, e-mails, receiver answers, errors): C0 and C1 control characters
 * and DEL become visible `\x1b`-style text, so an escape sequence in a license code cannot rewrite the
 * terminal; `keepNewlines` keeps tabs and line breaks (multi-line messages).
 */
export function clean(text: string, keepNewlines = false): string {
  let shown = '';
  for (const char of text) {
    const code = char.charCodeAt(0);
    const control = code < 0x20 || (code >= 0x7f && code <= 0x9f);
    shown += control && !(keepNewlines && (code === 0x09 || code === 0x0a)) ? `\\x${code.toString(16).padStart(2, '0')}` : char;
  }
  return shown;
}

/**
 * Columns padded to their widest cell; the last column is not padded. Each cell is masked first (the printer masks
 * every line again): a URL's password masked after measuring would leave its row out of line.
 */
export function table(cells: string[][]): string {
  const rows = cells.map((row) => row.map((cell) => maskCredentials(cell)));
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, index) => (widths[index] = Math.max(widths[index] ?? 0, visibleLength(cell))));
  return rows
    .map((row) => row.map((cell, index) => (index === row.length - 1 ? cell : cell + ' '.repeat(widths[index]! - visibleLength(cell)))).join('  '))
    .join('\n');
}

function visibleLength(text: string): number {
  return stripVTControlCharacters(text).length;
}
