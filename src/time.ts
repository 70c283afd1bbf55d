export const DAY_MS = 24 * 60 * 60 * 1000;

/** The one time format of payloads and of stored times: `YYYY-MM-DDTHH:MM:SSZ`, UTC, whole seconds. */
export function formatUtc(date: Date): string {
  const second = Math.floor(date.getTime() / 1000);
  // A delivery run formats the same second for thousands of attempts: the last one is kept.
  if (second !== lastSecond) {
    lastText = date.toISOString().replace(/\.\d{3}Z$/, 'Z');
    lastSecond = second;
  }
  return lastText;
}
let lastSecond = Number.NaN;
let lastText = '';

const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;
const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$/i;

/**
 * Parses an ISO-8601 date or date-time. A date alone is midnight UTC, and a date-time without an
 * offset is taken as UTC (never as the machine's local time). Returns undefined when unparsable.
 */
export function parseUtc(text: string): Date | undefined {
  const value = text.trim();
  let normalised: string;
  if (ISO_DATE.test(value)) {
    normalised = `${value}T00:00:00Z`;
  } else if (ISO_DATE_TIME.test(value)) {
    normalised = value.replace(' ', 'T');
    if (!/(Z|[+-]\d{2}:?\d{2})$/i.test(normalised)) normalised += 'Z';
  } else {
    return undefined;
  }
  const date = new Date(normalised);
  if (Number.isNaN(date.getTime())) return undefined;
  // Reject dates that Date silently rolls over, such as 2024-02-30.
  const [year, month, day] = value.slice(0, 10).split('-').map(Number);
  const check = new Date(Date.UTC(year!, month! - 1, day!));
  if (check.getUTCMonth() !== month! - 1 || check.getUTCDate() !== day) return undefined;
  return date;
}
