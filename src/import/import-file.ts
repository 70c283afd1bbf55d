/**
 * Reading license import files (JSON array, NDJSON, CSV) as a stream of records, in bounded memory: a file
 * of a million rows is never held whole. Parsing only; validation and storage belong to the caller.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parse as parseCsv, type CsvError } from 'csv-parse';
import { usageError, type ExitError } from '../errors.js';
import { plural } from '../plural.js';
import { NOT_UTF8, Utf8LineCheck } from './utf8.js';

/** One record of an import file, with where it stood so errors can point at it. */
export interface ImportRecord {
  /** 1-based record number: array index, NDJSON line or CSV data row. */
  row: number;
  /** The file line it starts on, where that is known. */
  line?: number;
  /** CSV: the line of the header that named its fields (a field name's problem is the header's, whatever the row). */
  headerLine?: number;
  fields: Record<string, unknown>;
}

export type ImportFormat = 'json' | 'ndjson' | 'csv';

export interface ImportFile {
  format: ImportFormat;
  records: AsyncIterable<ImportRecord>;
}

const CHUNK_BYTES = 256 * 1024;
// A license row is a few hundred bytes; a "row" of megabytes is a broken file, and holding it is unbounded memory.
const MAX_RECORD_CHARS = 1024 * 1024;
const tooLong = (file: string, at: string) =>
  usageError(`${file}: ${at} is longer than ${MAX_RECORD_CHARS} characters: not a license row (is this the right file?). Nothing was imported.`);

/** `file: row 3 (line 4)`: the prefix of every message about one record. */
export function where(file: string, record: { row: number; line?: number }): string {
  return `${file}: row ${record.row}${record.line ? ` (line ${record.line})` : ''}`;
}

/** `file: the header (line 1)`: the prefix of every message about a CSV file's header. */
export function whereHeader(file: string, line: number): string {
  return `${file}: the header (line ${line})`;
}

function detectFormat(file: string, start: string): ImportFormat {
  const extension = path.extname(file).toLowerCase();
  if (extension === '.csv') return 'csv';
  if (extension === '.ndjson' || extension === '.jsonl') return 'ndjson';
  const first = start.replace(/^\uFEFF/, '').trimStart();
  if (extension === '.json') return first.startsWith('[') ? 'json' : 'ndjson';
  if (first.startsWith('[')) return 'json';
  if (first.startsWith('{')) return 'ndjson';
  return 'csv';
}

/** How the file was named on the command line, and the folder a relative name is resolved against. */
export interface ImportFileOrigin {
  given: string;
  cwd: string;
}

/**
 * Why the file cannot be read, said so that the operator can fix it: the absolute path looked at, that a relative
 * path is relative to the current folder, and for a permission error which folder or file this user may not
 * read (a file in /root, read by the job's user).
 */
function unreadableImportFile(file: string, origin: ImportFileOrigin | undefined, error: unknown): ExitError {
  const code = (error as { code?: unknown } | null)?.code;
  const relative = origin && !path.isAbsolute(origin.given) ? ` ("${origin.given}": a relative path is relative to the current folder, ${origin.cwd})` : '';
  if (code === 'ENOENT')
    return usageError(`Cannot read import file ${file}: it does not exist${relative}. Check the path, or give an absolute one.`, { cause: error });
  if (code === 'EACCES' || code === 'EPERM') {
    const user = currentUser();
    const blocked = firstUnreadable(file);
    const which = blocked && blocked !== file ? `the folder ${blocked} is not open to ${user}` : `the file is not readable by ${user}`;
    return usageError(
      `Cannot read import file ${file}: permission denied${relative}; ${which}. Run the import as a user who may read it, or copy the file where ${user} can read it (e.g. the database folder) and make it readable (chmod, chown): a file under /root or another user's home is not readable by the job's user.`,
      { cause: error },
    );
  }
  if (code === 'EISDIR') return usageError(`Cannot read import file ${file}: it is a folder, not a file${relative}.`, { cause: error });
  return usageError(`Cannot read import file ${file}${relative}: ${(error as Error).message}`, { cause: error });
}

function currentUser(): string {
  try {
    return `user ${os.userInfo().username}`;
  } catch {
    return 'this user';
  }
}

/** The first folder on the way to `file` (or the file itself) that this process may not enter or read. */
function firstUnreadable(file: string): string | undefined {
  const parts: string[] = [];
  for (let at = path.dirname(file); ; at = path.dirname(at)) {
    parts.unshift(at);
    if (path.dirname(at) === at) break;
  }
  for (const folder of parts) {
    try {
      fs.accessSync(folder, fs.constants.X_OK);
    } catch {
      return folder;
    }
  }
  return file;
}

/** Fails (exit 2, see unreadableImportFile) unless the file can be opened for reading: checked before the database is opened or created. */
export async function checkImportFile(file: string, origin: ImportFileOrigin): Promise<void> {
  try {
    const handle = await fs.promises.open(file, 'r');
    try {
      await handle.read(Buffer.alloc(1), 0, 1, 0);
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw unreadableImportFile(file, origin, error);
  }
}

/** Opens the file (exit 2 when it cannot be read) and returns its format and a one-pass stream of records. */
export async function openImportFile(file: string, origin?: ImportFileOrigin): Promise<ImportFile> {
  let start: string;
  try {
    const handle = await fs.promises.open(file, 'r');
    try {
      const { buffer, bytesRead } = await handle.read(Buffer.alloc(4096), 0, 4096, 0);
      start = buffer.subarray(0, bytesRead).toString('utf8');
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw unreadableImportFile(file, origin, error);
  }
  const format = detectFormat(file, start);
  const check = new Utf8LineCheck();
  const records = format === 'csv' ? csvRecords(file, check) : format === 'ndjson' ? ndjsonRecords(file, check) : jsonArrayRecords(file, check);
  return { format, records: refuseInvalidUtf8(file, records, check) };
}

/** The file's bytes, each chunk checked for UTF-8 before anything parses it. */
async function* checkedChunks(file: string, check: Utf8LineCheck): AsyncGenerator<Buffer> {
  const stream = fs.createReadStream(file, { highWaterMark: CHUNK_BYTES });
  try {
    for await (const chunk of stream) {
      check.push(chunk as Buffer);
      yield chunk as Buffer;
    }
  } catch (error) {
    throw usageError(`Cannot read import file ${file}: ${(error as Error).message}`, { cause: error });
  }
  check.end();
}

/** The text of the file, decoded as it streams; invalid bytes become U+FFFD here and are reported by the check. */
async function* decodedText(file: string, check: Utf8LineCheck): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8');
  let first = true;
  for await (const chunk of checkedChunks(file, check)) {
    let text = decoder.decode(chunk, { stream: true });
    if (first) text = text.replace(/^\uFEFF/, '');
    first = false;
    yield text;
  }
  const rest = decoder.decode();
  if (rest) yield rest;
}

/**
 * Bytes that are not UTF-8 decode to U+FFFD: the record that holds them, once the check has seen them, is
 * named with its field; otherwise the line is. The check runs ahead of the parsers, so it has always seen
 * a record's bytes before the record arrives here.
 */
async function* refuseInvalidUtf8(file: string, records: AsyncIterable<ImportRecord>, check: Utf8LineCheck): AsyncGenerator<ImportRecord> {
  for await (const record of records) {
    const bad = check.firstBadLine;
    if (bad !== undefined && (record.line === undefined || record.line <= bad)) {
      const field = Object.keys(record.fields).find((key) => key.includes('\uFFFD') || String(record.fields[key]).includes('\uFFFD'));
      if (field) throw usageError(`${where(file, record)}: field ${field.replace(/\uFFFD/g, '?')} ${NOT_UTF8}. Nothing was imported.`);
    }
    yield record;
  }
  if (check.firstBadLine !== undefined) throw usageError(`${file}: line ${check.firstBadLine} ${NOT_UTF8}. Nothing was imported.`);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

async function* ndjsonRecords(file: string, check: Utf8LineCheck): AsyncGenerator<ImportRecord> {
  let pending = '';
  let lineNumber = 0;
  let row = 0;
  const parseLine = (text: string): ImportRecord | undefined => {
    lineNumber += 1;
    if (text.trim() === '') return undefined;
    row += 1;
    let fields: unknown;
    try {
      fields = JSON.parse(text);
    } catch (error) {
      throw usageError(`${file}: row ${row} (line ${lineNumber}) is not valid JSON: ${(error as Error).message}`, { cause: error });
    }
    if (!isPlainObject(fields)) throw usageError(`${file}: row ${row} (line ${lineNumber}) is not an object.`);
    return { row, line: lineNumber, fields };
  };
  for await (const text of decodedText(file, check)) {
    pending += text;
    if (pending.length > MAX_RECORD_CHARS && pending.lastIndexOf('\n', MAX_RECORD_CHARS) === -1) throw tooLong(file, `row ${row + 1} (line ${lineNumber + 1})`);
    let newline = pending.indexOf('\n');
    let start = 0;
    while (newline !== -1) {
      const record = parseLine(pending.slice(start, newline).replace(/\r$/, ''));
      if (record) yield record;
      start = newline + 1;
      newline = pending.indexOf('\n', start);
    }
    pending = pending.slice(start);
  }
  const last = parseLine(pending.replace(/\r$/, ''));
  if (last) yield last;
}

/**
 * A JSON array of objects, one element at a time: the scanner tracks strings and nesting to find where
 * each top-level element ends, and JSON.parse reads that element alone.
 */
async function* jsonArrayRecords(file: string, check: Utf8LineCheck): AsyncGenerator<ImportRecord> {
  const invalid = (detail: string) => usageError(`${file} is not valid JSON: ${detail}.`);
  let state: 'before-array' | 'before-element' | 'after-element' | 'done' = 'before-array';
  let element = '';
  let depth = 0;
  let inString = false;
  let escaped = false;
  let row = 0;
  let line = 1;
  let elementLine = 1;
  for await (const text of decodedText(file, check)) {
    // Where the current element's text starts in this chunk: at 0 when it began in an earlier one.
    let start = depth > 0 ? 0 : -1;
    for (let index = 0; index < text.length; index += 1) {
      const char = text[index]!;
      if (depth > 0) {
        if (inString) {
          if (escaped) escaped = false;
          else if (char === '\\') escaped = true;
          else if (char === '"') inString = false;
        } else if (char === '"') inString = true;
        else if (char === '{' || char === '[') depth += 1;
        else if (char === '}' || char === ']') {
          depth -= 1;
          if (depth === 0) {
            element += text.slice(start, index + 1);
            start = -1;
            if (element.length > MAX_RECORD_CHARS) throw tooLong(file, `row ${row + 1} (line ${elementLine})`);
            row += 1;
            let fields: unknown;
            try {
              fields = JSON.parse(element);
            } catch (error) {
              throw usageError(`${file}: row ${row} (line ${elementLine}) is not valid JSON: ${(error as Error).message}`, { cause: error });
            }
            element = '';
            if (!isPlainObject(fields)) throw usageError(`${file}: row ${row} is not an object.`);
            yield { row, fields };
            state = 'after-element';
          }
        }
        if (char === '\n') line += 1;
        continue;
      }
      if (char === '\n') line += 1;
      if (char === ' ' || char === '\t' || char === '\r' || char === '\n') continue;
      if (state === 'before-array') {
        if (char !== '[') throw usageError(`${file}: expected a JSON array of license objects.`);
        state = 'before-element';
      } else if (state === 'before-element' && (char === '{' || char === '[')) {
        if (char === '[') throw usageError(`${file}: row ${row + 1} is not an object.`);
        depth = 1;
        start = index;
        elementLine = line;
      } else if (state === 'before-element' && char === ']' && row === 0) {
        state = 'done';
      } else if (state === 'after-element' && char === ',') {
        state = 'before-element';
      } else if (state === 'after-element' && char === ']') {
        state = 'done';
      } else if (state === 'before-element' && char !== ']') {
        throw usageError(`${file}: row ${row + 1} is not an object.`);
      } else {
        throw invalid(`unexpected "${char}" on line ${line}`);
      }
    }
    if (start !== -1) element += text.slice(start);
    if (element.length > MAX_RECORD_CHARS) throw tooLong(file, `row ${row + 1} (line ${elementLine})`);
  }
  if (state !== 'done') throw invalid(depth > 0 || state !== 'before-array' ? `the file ends inside the array (after row ${row})` : 'the file is empty');
}

/** RFC 4180 via csv-parse: quoted fields may hold commas, doubled quotes and line breaks. An empty cell is null. */
async function* csvRecords(file: string, check: Utf8LineCheck): AsyncGenerator<ImportRecord> {
  // No `trim`: it would accept `  "spaced"  `; unquoted cells are trimmed below instead.
  const parser = parseCsv({ bom: true, info: true, skip_empty_lines: true, relax_column_count: true, max_record_size: MAX_RECORD_CHARS });
  const feeding = pipeline(Readable.from(checkedChunks(file, check)), parser);
  feeding.catch(() => undefined); // the same error reaches the loop below
  let columns: string[] | undefined;
  let headerLine = 1;
  let row = 0;
  try {
    for await (const { record, info } of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
      // info.lines is where the record ends; a quoted line break moves its start up.
      const line = info.lines - record.reduce((count, cell) => count + (cell.match(/\n/g)?.length ?? 0), 0);
      if (record.length === 1 && record[0]!.trim() === '') continue;
      if (!columns) {
        columns = header(file, record, line);
        headerLine = line;
        continue;
      }
      row += 1;
      if (record.length !== columns.length) {
        throw usageError(`${file}: row ${row} (line ${line}) has ${plural(record.length, 'field')}, the header has ${columns.length}.`);
      }
      const fields: Record<string, unknown> = {};
      columns.forEach((column, position) => {
        const value = record[position]!.trim();
        fields[column] = value === '' ? null : value;
      });
      yield { row, line, headerLine, fields };
    }
  } catch (error) {
    const code = (error as CsvError).code;
    if (typeof code !== 'string' || (!code.startsWith('CSV_') && code !== 'INVALID_OPENING_QUOTE')) throw error;
    // The parser fails on a whole chunk at once, before the records before it reach this loop: its error
    // says how many records (the header included) came before, and the header is read again.
    const csv = error as CsvError & { lines?: number; index?: number; records?: number };
    // An Excel export separated by ";" with a quoted cell fails here, before its header was seen: say why.
    if (!columns) await refuseOtherSeparator(file, csv.lines ?? 1);
    const before = csv.records ?? 0;
    const names = columns ?? (before > 0 ? await csvHeader(file) : undefined);
    const field = names && csv.index !== undefined ? names[csv.index] : undefined;
    const at = before > 0 ? `row ${before} (line ${csv.lines})` : `the header (line ${csv.lines})`;
    const text = csv.lines === undefined ? undefined : await lineOf(file, csv.lines);
    throw usageError(
      `${file}: ${at}${field ? `: field ${field}` : ''}: ${csv.message.replace(/ at line \d+.*$/, '')}${text === undefined ? '' : ` in ${JSON.stringify(text)}`}.${code.includes('QUOTE') ? ' A quote may only open a cell and close it (write a quote inside a quoted cell as "").' : ''} Nothing was imported.`,
      { cause: error },
    );
  }
}

/** The first record of a CSV file, for naming the field of an error found later. */
async function csvHeader(file: string): Promise<string[] | undefined> {
  const parser = fs.createReadStream(file).pipe(parseCsv({ bom: true, skip_empty_lines: true, relax_column_count: true, to: 1 }));
  try {
    for await (const record of parser as AsyncIterable<string[]>) return record.map((name) => name.trim());
  } catch {
    // the header itself is unreadable
  } finally {
    parser.destroy();
  }
  return undefined;
}

/** The header row: names trimmed; one column holding `;` or a tab means another separator was used. */
function header(file: string, cells: string[], line: number): string[] {
  const columns = cells.map((name) => name.trim());
  if (columns.length === 1) throwIfOtherSeparator(file, columns[0]!, line);
  return columns;
}

/** The same refusal for a header line read as text: quotes ("license_code";"email") are not separators. */
async function refuseOtherSeparator(file: string, lastLine: number): Promise<void> {
  for (let line = 1; line <= Math.min(lastLine, 10); line += 1) {
    const text = (await lineOf(file, line))?.replace(/^\uFEFF/, '');
    if (text === undefined) return;
    if (text.trim() === '') continue;
    if (!text.replace(/"(?:[^"]|"")*"/g, '').includes(',')) throwIfOtherSeparator(file, text.trim(), line);
    return;
  }
}

function throwIfOtherSeparator(file: string, header: string, line: number): void {
  const separator = [';', '\t', '|'].find((candidate) => header.includes(candidate));
  if (!separator) return;
  const shown = separator === '\t' ? 'tabs' : `"${separator}"`;
  throw usageError(
    `${whereHeader(file, line)} "${header.slice(0, 200)}" is separated by ${shown}; CSV files must be comma-separated. Save it with commas (or export it as JSON). Nothing was imported.`,
  );
}

/** One line of the file, for an error message (cut at 200 characters). */
async function lineOf(file: string, wanted: number): Promise<string | undefined> {
  let line = 1;
  let text = '';
  for await (const chunk of fs.createReadStream(file, { highWaterMark: CHUNK_BYTES })) {
    const data = (chunk as Buffer).toString('utf8');
    let start = 0;
    while (line < wanted) {
      const newline = data.indexOf('\n', start);
      if (newline === -1) break;
      line += 1;
      start = newline + 1;
    }
    if (line < wanted) continue;
    const end = data.indexOf('\n', start);
    text += data.slice(start, end === -1 ? undefined : end);
    if (end !== -1 || text.length > 200) return text.replace(/\r$/, '').slice(0, 200);
  }
  return line === wanted ? text.slice(0, 200) : undefined;
}
