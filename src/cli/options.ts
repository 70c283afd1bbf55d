import { InvalidArgumentError } from 'commander';
import { parseUtc } from '../time.js';

/**
 * Flag text -> typed value, for commander's `argParser`. A bad value throws InvalidArgumentError, which
 * commander reports with the flag's name ("option '--limit <n>' argument 'x' is invalid") and exit 2.
 */

/** `--now`, `--since`: an ISO-8601 date or date-time. */
export function isoDate(text: string): Date {
  const date = parseUtc(text);
  if (!date) throw new InvalidArgumentError('Expected an ISO-8601 date or date-time such as 2025-01-15T08:00:00Z.');
  return date;
}

/** `--announce-since`: a calendar date alone, YYYY-MM-DD (a day in the business time zone). */
export function calendarDate(text: string): string {
  const trimmed = text.trim();
  const date = /^\d{4}-\d{2}-\d{2}$/.test(trimmed) ? parseUtc(trimmed) : undefined;
  if (!date) throw new InvalidArgumentError('Expected a date such as 2025-01-08 (YYYY-MM-DD, a day in the business time zone).');
  return trimmed;
}

/** A whole number from `min` up to `max`; anything larger is refused rather than rounded by a float. */
export function wholeNumber(min: number, max: number): (text: string) => number {
  return (text) => {
    const trimmed = text.trim();
    const value = Number(trimmed);
    if (!/^\d+$/.test(trimmed) || value < min || value > max) throw new InvalidArgumentError(`Expected a whole number from ${min} to ${max}.`);
    return value;
  };
}

/** Delivery ids as a variadic argument: each one parsed, accumulated in order. */
export function deliveryIds(text: string, previous: number[] = []): number[] {
  const trimmed = text.trim();
  if (!/^\d+$/.test(trimmed) || Number(trimmed) < 1 || !Number.isSafeInteger(Number(trimmed))) {
    throw new InvalidArgumentError('A delivery id is a positive whole number (see "license-manager deliveries list").');
  }
  return [...previous, Number(trimmed)];
}
