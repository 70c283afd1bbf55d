import path from 'node:path';
import { z } from 'zod';
import { usageError } from '../errors.js';
import { isConstraintViolation } from '../sql/db-errors.js';
import {
  licenseColumnLimits,
  LicenseIdMismatch,
  LicenseIdTaken,
  LICENSE_STATUSES,
  RepeatedLicenseCode,
  RepeatedLicenseId,
  upsertLicenses,
  type LicenseColumnLimits,
  type LicenseInput,
  type LicenseRow,
  type LicenseStatus,
} from '../storage/licenses.repository.js';
import { addDays, dateInZone, daysBetween, parseInZone } from '../expirations/calendar.js';
import { formatUtc } from '../time.js';
import type { CommandContext } from './context.js';
import { openImportFile, where, whereHeader, type ImportFormat, type ImportRecord } from '../import/import-file.js';

// A value the database would refuse (or cut) is a bad input, named with its row and field like any other.
const NUL_PROBLEM = "holds the NUL character (U+0000), which the database's text columns cannot store";

const optionalText = (limits: LicenseColumnLimits) =>
  z
    .union([z.string(), z.number()])
    .nullable()
    .optional()
    .transform((value, ctx) => {
      const text = value === undefined || value === null ? value : String(value).trim() || null;
      if (!text) return text;
      const bytes = Buffer.byteLength(text, 'utf8');
      if (limits.maxTextBytes !== undefined && bytes > limits.maxTextBytes) {
        ctx.addIssue({ code: 'custom', message: `is ${bytes} bytes long; the database's column holds at most ${limits.maxTextBytes}` });
        return z.NEVER;
      }
      if (limits.noNul && text.includes('\u0000')) {
        ctx.addIssue({ code: 'custom', message: NUL_PROBLEM });
        return z.NEVER;
      }
      return text;
    });

/**
 * A date stays a date ('YYYY-MM-DD': a day in the business zone, as Botble's DATE columns); a value with an
 * offset is stored as the UTC instant; a time without an offset is read in the business zone and stored as UTC.
 */
const dateField = (timeZone: string) =>
  z
    .string()
    .nullable()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined || value === null) return value;
      const parsed = value.trim() === '' ? undefined : parseInZone(value, timeZone);
      if (!parsed) {
        ctx.addIssue({ code: 'custom', message: `"${value}" is not an ISO-8601 date or date-time (e.g. 2025-01-31 or 2025-01-31T12:00:00Z)` });
        return z.NEVER;
      }
      return parsed.kind === 'date' ? value.trim() : formatUtc(parsed.instant);
    });

// Botble's is_valid: false/0 means suspended; true/1 leaves the status as the file or the database has it.
const validFlag = z
  .union([z.boolean(), z.literal(0), z.literal(1), z.enum(['true', 'false', '0', '1', 'TRUE', 'FALSE'])], 'must be true, false, 1 or 0')
  .nullable()
  .optional()
  .transform((value) =>
    value === undefined || value === null ? undefined : value === true || value === 1 || String(value).toLowerCase() === 'true' || value === '1',
  );

const licenseRecordSchema = (timeZone: string, limits: LicenseColumnLimits = licenseColumnLimits()) =>
  z
    .object({
      id: z
        .union([z.number(), z.string()], { error: (issue) => `must be a positive whole number, not ${JSON.stringify(issue.input)}` })
        .transform((value, ctx) => {
          if (typeof value === 'string' && !/^\d+$/.test(value)) {
            ctx.addIssue({ code: 'custom', message: `must be a positive whole number, not ${JSON.stringify(value)}` });
            return z.NEVER;
          }
          const id = Number(value);
          if (!(Number.isSafeInteger(id) && id > 0 && id <= limits.maxId)) {
            ctx.addIssue({ code: 'custom', message: `must be a positive whole number up to ${limits.maxId}, not ${JSON.stringify(value)}` });
            return z.NEVER;
          }
          return id;
        })
        .nullable()
        .optional(),
      license_code: z
        .union([z.string(), z.number()], 'is required')
        .transform((value) => String(value).trim())
        .pipe(z.string().min(1, 'is required'))
        .superRefine((code, ctx) => {
          // MySQL counts code points: a surrogate pair is one character there.
          const characters = code.replace(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g, '_').length;
          if (limits.maxCodeCharacters !== undefined && characters > limits.maxCodeCharacters) {
            ctx.addIssue({ code: 'custom', message: `is ${characters} characters long; the database's column holds at most ${limits.maxCodeCharacters}` });
          }
          if (limits.noNul && code.includes('\u0000')) ctx.addIssue({ code: 'custom', message: NUL_PROBLEM });
        }),
      product_id: optionalText(limits),
      product_name: optionalText(limits),
      customer_id: optionalText(limits),
      email: optionalText(limits),
      status: z.enum(LICENSE_STATUSES, { error: (issue) => `must be one of ${LICENSE_STATUSES.join(', ')}, not ${JSON.stringify(issue.input)}` }).optional(),
      expires_at: dateField(timeZone),
      updates_until: dateField(timeZone),
      // Botble's support_until is checked to be a date and not stored: no event is about it.
      support_until: dateField(timeZone),
      is_valid: validFlag,
      // Timestamps of the source system are accepted and ignored: ours record when this database changed.
      created_at: z.unknown().optional(),
      updated_at: z.unknown().optional(),
    })
    .strict();

// The columns an import file may have: the row schema's own keys, so the two never disagree.
const COLUMNS = Object.keys(licenseRecordSchema('UTC').shape);

/** One validated row, and whether it carried `is_valid` true (Botble's "not blocked"). */
function toInput(record: ImportRecord, file: string, schema: ReturnType<typeof licenseRecordSchema>): { input: LicenseInput; valid: boolean } {
  const unknown = Object.keys(record.fields).filter((key) => !COLUMNS.includes(key));
  if (unknown.length > 0) {
    const names = unknown.map((name) => JSON.stringify(name)).join(', ');
    // A CSV file's field names are its header's: that is where to mend them, whichever row is read first.
    const at = record.headerLine === undefined ? where(file, record) : whereHeader(file, record.headerLine);
    throw usageError(`${at}: unknown ${unknown.length === 1 ? 'field' : 'fields'} ${names}. Known fields: ${COLUMNS.join(', ')}. Nothing was imported.`);
  }
  const parsed = schema.safeParse(record.fields);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join('.') || 'record';
    throw usageError(`${where(file, record)}: field ${field} ${issue.message}. Nothing was imported.`);
  }
  const { created_at: _created, updated_at: _updated, support_until: _support, is_valid: valid, id, ...rest } = parsed.data;
  const input: LicenseInput = { ...rest } as LicenseInput;
  if (valid === false) input.status = 'suspended';
  if (id !== undefined && id !== null) input.id = id;
  for (const key of Object.keys(input) as Array<keyof LicenseInput>) if (input[key] === undefined) delete input[key];
  return { input, valid: valid === true };
}

export interface ImportResult {
  file: string;
  format: ImportFormat;
  rows: number;
  inserted: number;
  updated: number;
  /** Rows that matched the stored license: nothing written. */
  unchanged: number;
}

/**
 * `licenses import <file>`: rows are read, validated and upserted as the file streams, all inside one
 * transaction, so a bad row anywhere (or a repeated license_code or id) leaves the database as it was.
 */
export async function importLicenses(context: CommandContext, file: string, now: Date, cwd = process.cwd()): Promise<ImportResult> {
  if (context.licenses.kind === 'botble') {
    throw usageError(
      `licenses import does nothing in Botble mode (licenses.source "botble"): the licenses live in ${context.licenses.description} and are read from there as they are. Change them in the Botble admin; nothing was imported.`,
    );
  }
  // Relative to the caller's directory (main() takes it as a parameter); messages name the file where it was looked for.
  const at = path.resolve(cwd, file);
  const { format, records } = await openImportFile(at, { given: file, cwd });
  const timeZone = context.config.expirations.timeZone;
  const schema = licenseRecordSchema(timeZone, licenseColumnLimits(context.db));
  let rows = 0;
  const unblocked = new WeakSet<LicenseInput>();
  // Each row's line, while the row is held (a batch waiting to be written): an error found when it is written names it.
  const lines = new WeakMap<LicenseInput, number>();
  async function* inputs(): AsyncGenerator<LicenseInput> {
    for await (const record of records) {
      rows += 1;
      const { input, valid } = toInput(record, at, schema);
      if (valid) unblocked.add(input);
      if (record.line !== undefined) lines.set(input, record.line);
      yield input;
    }
  }
  try {
    const { inserted, updated, unchanged } = await upsertLicenses(context.db, inputs(), formatUtc(now), (input) =>
      activatedFrom(input, unblocked.has(input), timeZone, now),
    );
    return { file, format, rows, inserted, updated, unchanged };
  } catch (error) {
    // Every reader numbers its records 1, 2, 3... in order, so a position in the inputs is the row.
    if (error instanceof RepeatedLicenseCode) {
      throw usageError(`${file}: row ${error.repeat}: field license_code "${error.licenseCode}" repeats row ${error.first}. Nothing was imported.`, {
        cause: error,
      });
    }
    if (error instanceof RepeatedLicenseId) {
      throw usageError(`${file}: row ${error.repeat}: field id ${error.id} repeats row ${error.first}. Nothing was imported.`, { cause: error });
    }
    if (error instanceof LicenseIdMismatch) {
      const line = lines.get(error.input);
      throw usageError(
        `${where(file, { row: error.position, ...(line === undefined ? {} : { line }) })}: field id ${error.id} does not match license_code "${error.licenseCode}"'s id ${error.storedId} (an import never changes a license's id: give ${error.storedId} or leave id out). Nothing was imported.`,
        { cause: error },
      );
    }
    if (error instanceof LicenseIdTaken) {
      throw usageError(
        `${file}: row ${error.position}: field id ${error.id} already belongs to license_code "${error.owner}", not "${error.licenseCode}". Nothing was imported.`,
        { cause: error },
      );
    }
    if (isConstraintViolation(error)) {
      throw usageError(`${file}: ${(error as Error).message} (an id already belongs to another license_code?). Nothing was imported.`, { cause: error });
    }
    throw error;
  }
}

/**
 * The stored statuses a row that names no status makes `active`: `expired` when it moves expires_at into the
 * future or empties it (lifetime), since `expired` is derived; `suspended` when it says is_valid 1, as Botble
 * mode reads the same row.
 */
function activatedFrom(input: LicenseInput, valid: boolean, timeZone: string, now: Date): LicenseStatus[] {
  if (input.status !== undefined) return [];
  const from: LicenseStatus[] = [];
  if (input.expires_at === null || (input.expires_at !== undefined && parseInZone(input.expires_at, timeZone)!.instant.getTime() > now.getTime()))
    from.push('expired');
  if (valid) from.push('suspended');
  return from;
}

export interface ListLicensesOptions {
  status?: LicenseStatus | undefined;
  /**
   * Only licenses whose expiry is still ahead of `now` and at most this many calendar days after today in the
   * business zone (0: later today): `days_until_expiry` as process-expirations counts it.
   */
  expiringWithinDays?: number | undefined;
  limit?: number | undefined;
  now: Date;
}

/** A license as `licenses list` prints it and as its --json gives it: the stored row, dates as stored. */
export type LicenseListItem = LicenseRow;

export async function listLicenses(context: CommandContext, options: ListLicensesOptions): Promise<LicenseListItem[]> {
  const { status, limit, now, expiringWithinDays: days } = options;
  if (days === undefined) return context.licenses.list(context.db, { status, limit });
  const timeZone = context.config.expirations.timeZone;
  const today = dateInZone(now, timeZone);
  // Text bounds three days wider than the rule (as the job's scans: a stored text date and its date in the zone
  // differ by at most two), then the rule itself, the same for our table and Botble's.
  const rows = await context.licenses.list(context.db, { status, expiringAfter: addDays(today, -3), expiringBefore: addDays(today, days + 3) });
  const expiring = rows.flatMap((row) => {
    const expiresAt = row.expires_at === null ? undefined : parseInZone(row.expires_at, timeZone)?.instant;
    if (!expiresAt || expiresAt.getTime() <= now.getTime() || daysBetween(today, dateInZone(expiresAt, timeZone)) > days) return [];
    return [{ row, at: expiresAt.getTime() }];
  });
  const sorted = expiring.sort((a, b) => a.at - b.at || a.row.id - b.row.id).map((entry) => entry.row);
  return limit === undefined ? sorted : sorted.slice(0, limit);
}
