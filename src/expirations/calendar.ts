import { DAY_MS } from '../time.js';

/**
 * Calendar dates in a business time zone, with Intl only: nothing here reads the machine's TZ.
 * A calendar date is 'YYYY-MM-DD' text; arithmetic on it is UTC arithmetic on the Y-M-D, so DST never shifts it.
 */

/** The zone whose wall time is the instant's own, and the default business zone (spelt as canonicalTimeZone keeps it). */
export const UTC = 'UTC';

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(zone: string): Intl.DateTimeFormat {
  let found = formatters.get(zone);
  if (!found) {
    found = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      calendar: 'gregory',
      numberingSystem: 'latn',
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(zone, found);
  }
  return found;
}

// Offsets are cached per quarter hour: every zone's transitions fall on a quarter hour, so an offset that is the
// same at both ends of one holds all through it (checked, not assumed: otherwise Intl answers for the instant).
const QUARTER_HOUR_MS = 15 * 60_000;
// A bound on the cache: a year of quarter hours per zone is about 35,000 entries.
const MAX_CACHED_OFFSETS = 200_000;
const offsets = new Map<string, Map<number, number | null>>();

/**
 * The wall-clock time in `zone` at `instant`, as if it were UTC (epoch ms). UTC, the default zone, is the instant
 * itself, without Intl: the first Intl.DateTimeFormat of a process loads ICU's zone data, 20 to 40 ms of CPU here,
 * about a tenth of a run with nothing due.
 */
function wallMs(instant: number, zone: string): number {
  if (zone === UTC) return instant;
  const quarter = Math.floor(instant / QUARTER_HOUR_MS);
  let cache = offsets.get(zone);
  if (!cache) offsets.set(zone, (cache = new Map()));
  let offset = cache.get(quarter);
  if (offset === undefined) {
    const start = quarter * QUARTER_HOUR_MS;
    const before = intlWallMs(start, zone) - start;
    const after = intlWallMs(start + QUARTER_HOUR_MS - 1, zone) - (start + QUARTER_HOUR_MS - 1);
    offset = before === after ? before : null;
    if (cache.size >= MAX_CACHED_OFFSETS) cache.clear();
    cache.set(quarter, offset);
  }
  return offset === null ? intlWallMs(instant, zone) : instant + offset;
}

/** wallMs by Intl alone. */
function intlWallMs(instant: number, zone: string): number {
  const parts: Record<string, number> = {};
  for (const part of formatter(zone).formatToParts(new Date(instant))) if (part.type !== 'literal') parts[part.type] = Number(part.value);
  const wholeSecond = Math.floor(instant / 1000) * 1000;
  return Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour!, parts.minute!, parts.second!) + (instant - wholeSecond);
}

const pad = (value: number, width = 2) => String(value).padStart(width, '0');

/** The calendar date of `instant` in `zone`, 'YYYY-MM-DD'. */
export function dateInZone(instant: Date, zone: string): string {
  const wall = new Date(wallMs(instant.getTime(), zone));
  return `${pad(wall.getUTCFullYear(), 4)}-${pad(wall.getUTCMonth() + 1)}-${pad(wall.getUTCDate())}`;
}

/**
 * The instant a wall-clock time (given as UTC epoch ms of its fields) has in `zone`. In a fall-back
 * overlap it is the first of the two; in a spring-forward gap it is the moment the clocks jump
 * (so the start of a day that begins in a gap is its first real instant).
 */
function wallTimeToInstant(wall: number, zone: string): Date {
  const offsetBefore = wallMs(wall - DAY_MS, zone) - (wall - DAY_MS);
  const offsetAfter = wallMs(wall + DAY_MS, zone) - (wall + DAY_MS);
  const candidates = [wall - offsetBefore, wall - offsetAfter].filter((instant) => wallMs(instant, zone) === wall);
  if (candidates.length > 0) return new Date(Math.min(...candidates));
  return new Date(wall - offsetBefore);
}

/** 00:00 of a calendar date in `zone` (the first instant of that date there). */
export function startOfDayInZone(date: string, zone: string): Date {
  return wallTimeToInstant(Date.parse(`${date}T00:00:00Z`), zone);
}

// Day numbers of the dates seen, so a forecast over a million licenses parses each date once; bounded.
const MAX_CACHED_DAYS = 100_000;
const dayNumbers = new Map<string, number>();

/** The day number of a calendar date (days since 1970-01-01). */
function dayNumber(date: string): number {
  let day = dayNumbers.get(date);
  if (day === undefined) {
    day = Math.round(Date.parse(`${date}T00:00:00Z`) / DAY_MS);
    if (dayNumbers.size >= MAX_CACHED_DAYS) dayNumbers.clear();
    dayNumbers.set(date, day);
  }
  return day;
}

/** Whole calendar days from date `from` to date `to` (negative when `to` is earlier). */
export function daysBetween(from: string, to: string): number {
  return dayNumber(to) - dayNumber(from);
}

/** The calendar date `days` after `date`. */
export function addDays(date: string, days: number): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) + days * DAY_MS).toISOString().slice(0, 10);
}

const DATE_ONLY = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$/i;

/** The kind of stored value: a date alone, a wall time with no offset, or an instant. */
type ValueKind = 'date' | 'local' | 'instant';

/**
 * Reads a stored or imported date the contract's way: a date alone is 00:00 of that date in `zone`, a time
 * without an offset is that wall time in `zone`, a value with an offset (or Z) is that instant.
 * Undefined when it is not a real ISO-8601 date (2024-02-30 included).
 */
export function parseInZone(text: string, zone: string): { instant: Date; kind: ValueKind } | undefined {
  const value = text.trim();
  const dateOnly = DATE_ONLY.exec(value);
  const dateTime = dateOnly ? undefined : DATE_TIME.exec(value);
  const fields = dateOnly ?? dateTime;
  if (!fields) return undefined;
  const [year, month, day] = [Number(fields[1]), Number(fields[2]), Number(fields[3])];
  const check = new Date(Date.UTC(year, month - 1, day));
  if (check.getUTCFullYear() !== year || check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day) return undefined;
  if (dateOnly) return { instant: startOfDayInZone(value.slice(0, 10), zone), kind: 'date' };
  const [hour, minute, second] = [Number(fields[4]), Number(fields[5]), Number(fields[6] ?? 0)];
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  const fraction = fields[7] ? Math.floor(Number(fields[7]) * 1000) : 0;
  const wall = Date.UTC(year, month - 1, day, hour, minute, second, fraction);
  const offset = fields[8];
  if (!offset) return { instant: wallTimeToInstant(wall, zone), kind: 'local' };
  if (offset.toUpperCase() === 'Z') return { instant: new Date(wall), kind: 'instant' };
  const sign = offset.startsWith('-') ? -1 : 1;
  const digits = offset.slice(1).replace(':', '');
  const offsetMs = sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4))) * 60_000;
  return { instant: new Date(wall - offsetMs), kind: 'instant' };
}
