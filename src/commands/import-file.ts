import fs from 'node:fs/promises';
import path from 'node:path';
import { usageError } from '../errors.js';
import { NOT_UTF8, Utf8LineCheck } from '../import/utf8.js';

/** One record of an import file, with where it stood so errors can point at it. */
export interface ImportRecord {
  /** 1-based record number: array index, NDJSON line or CSV data row. */
  row: number;
  /** The file line it starts on, where that is known. */
  line?: number;
  fields: Record<string, unknown>;
}

export type ImportFormat = 'json' | 'ndjson' | 'csv';

export function detectFormat(file: string, text: string): ImportFormat {
  const extension = path.extname(file).toLowerCase();
  if (extension === '.csv') return 'csv';
  if (extension === '.ndjson' || extension === '.jsonl') return 'ndjson';
  if (extension === '.json') return text.trimStart().startsWith('[') ? 'json' : 'ndjson';
  const start = text.trimStart();
  if (start.startsWith('[')) return 'json';
  if (start.startsWith('{')) return 'ndjson';
  return 'csv';
}

export async function readImportFile(file: string): Promise<{ format: ImportFormat; records: ImportRecord[] }> {
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(file);
  } catch (error) {
    throw usageError(`Cannot read import file ${file}: ${(error as Error).message}`, { cause: error });
  }
  const check = new Utf8LineCheck();
  check.push(bytes);
  check.end();
  const text = bytes.toString('utf8').replace(/^\uFEFF/, '');
  const format = detectFormat(file, text);
  const records = format === 'json' ? parseJsonArray(file, text) : format === 'ndjson' ? parseNdjson(file, text) : parseCsv(file, text);
  if (check.firstBadLine !== undefined) throw notUtf8(file, records, check.firstBadLine);
  return { format, records };
}

/** Names the row and field that hold the first bytes that are not UTF-8 (they decoded to U+FFFD). */
function notUtf8(file: string, records: ImportRecord[], line: number) {
  // CSV and NDJSON rows know their line: the last one starting at or before it; a JSON array's do not.
  const candidates = records.filter((record) => record.line === undefined || record.line <= line);
  if (candidates.some((record) => record.line !== undefined)) candidates.reverse();
  const record = candidates.find((one) => Object.values(one.fields).some((value) => typeof value === 'string' && value.includes('\uFFFD')));
  const field = record && Object.keys(record.fields).find((key) => String(record.fields[key]).includes('\uFFFD'));
  if (!record || !field) return usageError(`${file}: line ${line} ${NOT_UTF8}. Nothing was imported.`);
  return usageError(`${file}: row ${record.row}${record.line ? ` (line ${record.line})` : ''}: field ${field} ${NOT_UTF8}. Nothing was imported.`);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function parseJsonArray(file: string, text: string): ImportRecord[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw usageError(`${file} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  if (!Array.isArray(data)) throw usageError(`${file}: expected a JSON array of license objects.`);
  return data.map((fields, index) => {
    if (!isPlainObject(fields)) throw usageError(`${file}: row ${index + 1} is not an object.`);
    return { row: index + 1, fields };
  });
}

function parseNdjson(file: string, text: string): ImportRecord[] {
  const records: ImportRecord[] = [];
  text.split(/\r?\n/).forEach((lineText, index) => {
    if (lineText.trim() === '') return;
    const row = records.length + 1;
    let fields: unknown;
    try {
      fields = JSON.parse(lineText);
    } catch (error) {
      throw usageError(`${file}: row ${row} (line ${index + 1}) is not valid JSON: ${(error as Error).message}`, { cause: error });
    }
    if (!isPlainObject(fields)) throw usageError(`${file}: row ${row} (line ${index + 1}) is not an object.`);
    records.push({ row, line: index + 1, fields });
  });
  return records;
}

/** RFC 4180: quoted fields may hold commas, doubled quotes and line breaks. An empty cell is null. */
function parseCsv(file: string, text: string): ImportRecord[] {
  const rows: Array<{ line: number; cells: string[] }> = [];
  let cells: string[] = [];
  let cell = '';
  let quoted = false;
  let line = 1;
  let rowLine = 1;
  for (let index = 0; index < text.length; index += 1) {
    const char = text[index];
    if (quoted) {
      if (char === '"' && text[index + 1] === '"') {
        cell += '"';
        index += 1;
      } else if (char === '"') {
        quoted = false;
      } else {
        if (char === '\n') line += 1;
        cell += char;
      }
    } else if (char === '"' && cell === '') {
      quoted = true;
    } else if (char === ',') {
      cells.push(cell);
      cell = '';
    } else if (char === '\n' || char === '\r') {
      if (char === '\r' && text[index + 1] === '\n') index += 1;
      cells.push(cell);
      rows.push({ line: rowLine, cells });
      cells = [];
      cell = '';
      line += 1;
      rowLine = line;
    } else {
      cell += char;
    }
  }
  if (quoted) throw usageError(`${file}: a quoted field opened on line ${rowLine} is never closed.`);
  if (cell !== '' || cells.length > 0) {
    cells.push(cell);
    rows.push({ line: rowLine, cells });
  }
  const nonEmpty = rows.filter((row) => !(row.cells.length === 1 && row.cells[0]!.trim() === ''));
  const header = nonEmpty.shift();
  if (!header) return [];
  const columns = header.cells.map((name) => name.trim());
  return nonEmpty.map((row, index) => {
    if (row.cells.length !== columns.length) {
      throw usageError(`${file}: row ${index + 1} (line ${row.line}) has ${row.cells.length} fields, the header has ${columns.length}.`);
    }
    const fields: Record<string, unknown> = {};
    columns.forEach((column, position) => {
      const value = row.cells[position]!;
      fields[column] = value.trim() === '' ? null : value.trim();
    });
    return { row: index + 1, line: row.line, fields };
  });
}
