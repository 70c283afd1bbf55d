import { usageError } from '../errors.js';
import { parseUtc } from '../time.js';

/** A date option (`--now`, `--since`): undefined when absent, exit 2 naming the option when unreadable. */
export function dateOption(option: string, text: string | undefined): Date | undefined {
  if (text === undefined) return undefined;
  const date = parseUtc(text);
  if (!date) throw usageError(`${option} takes an ISO-8601 date or date-time such as 2025-01-15T08:00:00Z, not "${text}".`);
  return date;
}

export function wholeNumber(option: string, text: string): number {
  if (!/^\d+$/.test(text.trim())) throw usageError(`${option} takes a whole number, not "${text}".`);
  return Number(text);
}
