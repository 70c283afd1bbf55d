import { z } from 'zod';
import { usageError } from '../errors.js';
import { isConstraintViolation } from '../storage/dialect.js';
import {
  LICENSE_STATUSES,
  listLicenses as queryLicenses,
  upsertLicenses,
  type LicenseInput,
  type LicenseRow,
  type LicenseStatus,
} from '../storage/licenses.repository.js';
import { parseInZone } from '../expirations/calendar.js';
import { DAY_MS, formatUtc } from '../time.js';
import type { CommandContext } from './context.js';
import { readImportFile, type ImportFormat, type ImportRecord } from './import-file.js';

const COLUMNS = ['id', 'license_code', 'product_id', 'product_name', 'customer_id', 'email', 'status', 'expires_at', 'updates_until', 'created_at', 'updated_at', 'support_until', 'is_valid'];

const optionalText = z
  .union([z.string(), z.number()])
  .nullable()
  .optional()
  .transform((value) => (value === undefined || value === null ? value : String(value).trim() || null));

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
  .transform((value) => (value === undefined || value === null ? undefined : value === true || value === 1 || String(value).toLowerCase() === 'true' || value === '1'));

const licenseRecordSchema = (timeZone: string) =>
  z
    .object({
      id: z.union([z.int().positive(), z.string().regex(/^\d+$/, 'must be a positive whole number').transform(Number)]).nullable().optional(),
      license_code: z.union([z.string(), z.number()], 'is required').transform((value) => String(value).trim()).pipe(z.string().min(1, 'is required')),
      product_id: optionalText,
      product_name: optionalText,
      customer_id: optionalText,
      email: optionalText,
      status: z.enum(LICENSE_STATUSES, `must be one of ${LICENSE_STATUSES.join(', ')}`).optional(),
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

function toInput(record: ImportRecord, file: string, timeZone: string): LicenseInput {
  const unknownColumn = Object.keys(record.fields).find((key) => !COLUMNS.includes(key));
  const where = `${file}: row ${record.row}${record.line ? ` (line ${record.line})` : ''}`;
  if (unknownColumn) throw usageError(`${where}: unknown field "${unknownColumn}". Known fields: ${COLUMNS.join(', ')}.`);
  const parsed = licenseRecordSchema(timeZone).safeParse(record.fields);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join('.') || 'record';
    throw usageError(`${where}: field ${field} ${issue.message}. Nothing was imported.`);
  }
  const { created_at: _created, updated_at: _updated, support_until: _support, is_valid: valid, id, ...rest } = parsed.data;
  const input: LicenseInput = { ...rest } as LicenseInput;
  if (valid === false) input.status = 'suspended';
  if (id !== undefined && id !== null) input.id = id;
  for (const key of Object.keys(input) as Array<keyof LicenseInput>) if (input[key] === undefined) delete input[key];
  return input;
}

export interface ImportResult {
  file: string;
  format: ImportFormat;
  rows: number;
  inserted: number;
  updated: number;
}

/** `licenses import <file>`: validate every row first, then upsert all of them in one transaction. */
export async function importLicenses(context: CommandContext, file: string, now: Date): Promise<ImportResult> {
  const { format, records } = await readImportFile(file);
  const timeZone = context.config.expirations.timeZone;
  const inputs = records.map((record) => toInput(record, file, timeZone));
  const seen = new Map<string, number>();
  for (const [index, input] of inputs.entries()) {
    const earlier = seen.get(input.license_code);
    if (earlier !== undefined) {
      throw usageError(`${file}: row ${records[index]!.row}: field license_code "${input.license_code}" repeats row ${earlier}. Nothing was imported.`);
    }
    seen.set(input.license_code, records[index]!.row);
  }
  try {
    // A file that moves expires_at into the future and names no status renews: a stored `expired` becomes `active`.
    const renewed = new Set(
      inputs
        .filter((input) => input.status === undefined && input.expires_at && parseInZone(input.expires_at, timeZone)!.instant.getTime() > now.getTime())
        .map((input) => input.license_code),
    );
    const { inserted, updated } = await upsertLicenses(context.db, inputs, formatUtc(now), renewed);
    return { file, format, rows: inputs.length, inserted, updated };
  } catch (error) {
    if (isConstraintViolation(error)) {
      throw usageError(`${file}: ${(error as Error).message} (an id already belongs to another license_code?). Nothing was imported.`, { cause: error });
    }
    throw error;
  }
}

export interface ListLicensesOptions {
  status?: LicenseStatus;
  /** Only licenses expiring between `now` and this many days later. */
  expiringWithinDays?: number;
  limit?: number;
  now: Date;
}

export async function listLicenses(context: CommandContext, options: ListLicensesOptions): Promise<LicenseRow[]> {
  const expiring =
    options.expiringWithinDays === undefined
      ? undefined
      : { expiringAfter: formatUtc(options.now), expiringBefore: formatUtc(new Date(options.now.getTime() + options.expiringWithinDays * DAY_MS)) };
  return queryLicenses(context.db, { status: options.status, ...expiring, limit: options.limit });
}
