import { usageError } from '../errors.js';
import { parseUtc } from '../time.js';

/** A date option (`--now`, `--since`): undefined when absent, exit 2 naming the option when unreadable. */
export function dateOption(option: string, text: string | undefined): Date | undefined {
  if (text === undefined) return undefined;
  const date = parseUtc(text);
  if (!date) throw usageError(`${option} takes an ISO-8601 date or date-time such as 2025-01-15T08:00:00Z, not "${text}".`);
  return date;
}

/** A whole number from 0 to `max` (by default the largest integer a number holds exactly), or exit 2. */
export function wholeNumber(option: string, text: string, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^\d+$/.test(text.trim())) throw usageError(`${option} takes a whole number, not "${text}".`);
  const value = Number(text);
  if (value > max) throw usageError(`${option} is at most ${max}, not ${text.trim()}.`);
  return value;
}
