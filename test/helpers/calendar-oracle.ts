/**
 * The contract's expiry rules written out a second way, to state what a simulation must see: UTC offsets
 * from hard-coded 2025 DST tables (no Intl), dates by plain Date.UTC arithmetic. It shares no code with src/.
 */

const HOUR = 3600_000;
const DAY = 24 * HOUR;

/** 2025 rules only: standard offset, DST offset, and the UTC instants DST starts and ends. */
const ZONES: Record<string, { standard: number; summer: number; from: number; until: number }> = {
  UTC: { standard: 0, summer: 0, from: 0, until: 0 },
  // Last Sunday of March / October, 01:00 UTC.
  'Europe/Berlin': { standard: 1 * HOUR, summer: 2 * HOUR, from: Date.UTC(2025, 2, 30, 1), until: Date.UTC(2025, 9, 26, 1) },
  // Second Sunday of March 02:00 PST, first Sunday of November 02:00 PDT.
  'America/Los_Angeles': { standard: -8 * HOUR, summer: -7 * HOUR, from: Date.UTC(2025, 2, 9, 10), until: Date.UTC(2025, 10, 2, 9) },
};

function offsetAt(zone: string, instant: number): number {
  const rules = ZONES[zone];
  if (!rules) throw new Error(`no 2025 table for ${zone}`);
  return instant >= rules.from && instant < rules.until ? rules.summer : rules.standard;
}

/** 'YYYY-MM-DD' of an instant in the zone. */
function localDate(zone: string, instant: number): string {
  return new Date(instant + offsetAt(zone, instant)).toISOString().slice(0, 10);
}

export function plusDays(date: string, days: number): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) + days * DAY).toISOString().slice(0, 10);
}

function dayDiff(from: string, to: string): number {
  return Math.round((Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / DAY);
}

/** 00:00 of a date in the zone (no 2025 transition of these zones happens at midnight). */
function midnight(zone: string, date: string): number {
  const wall = Date.parse(`${date}T00:00:00Z`);
  return wall - offsetAt(zone, wall - 12 * HOUR);
}

export interface SimLicense {
  code: string;
  /** Stored text, as in the database. */
  expiresAt: string;
  expiresInstant: number;
  updatesUntil: string | null;
  updatesInstant: number | null;
  /** The product id (its reference id); absent: none, the global schedule. */
  product?: string;
}

/**
 * The contract's "Reminder policy", stated for the oracle: each product its own warning days, after-expiry
 * days and switch; a product not named, and a field a product leaves out, take the global values.
 */
export interface OraclePolicy {
  afterExpiryDays: readonly number[];
  products: Readonly<Record<string, { warningDays?: readonly number[]; afterExpiryDays?: readonly number[]; enabled?: boolean }>>;
}

export interface SimEvent {
  /** The run's instant, `YYYY-MM-DDTHH:MM:SSZ` (the payload's timestamp). */
  at: string;
  code: string;
  type: string;
  /** The payload's expires_at / updates_until. */
  date: string;
  /** days_until_expiry of a warning, days_since_expiry of an after-expiry reminder. */
  days?: number;
}

const iso = (instant: number) => new Date(instant).toISOString().replace(/\.\d{3}Z$/, 'Z');

const OFFSETS = ['+05:30', '-09:00', '+14:00', '-03:00', '+01:00'];

/**
 * Licenses expiring 0..40 days after `firstDay`: each as a date alone (read in the zone), as a UTC
 * date-time and as a date-time with an offset, at times spread over the day. Every fourth date-alone
 * license also has updates_until two days after its expiry.
 */
export function simLicenses(zone: string, firstDay: string): SimLicense[] {
  const licenses: SimLicense[] = [];
  for (let k = 0; k <= 40; k += 1) {
    const day = plusDays(firstDay, k);
    const updates = k % 4 === 0 ? plusDays(day, 2) : null;
    licenses.push({
      code: `D${k}`,
      expiresAt: day,
      expiresInstant: midnight(zone, day),
      updatesUntil: updates,
      updatesInstant: updates ? midnight(zone, updates) : null,
    });
    const utc = `${day}T${String((k * 5) % 24).padStart(2, '0')}:30:00Z`;
    licenses.push({ code: `U${k}`, expiresAt: utc, expiresInstant: Date.parse(utc), updatesUntil: null, updatesInstant: null });
    const offset = `${day}T${String((k * 7 + 3) % 24).padStart(2, '0')}:45:00${OFFSETS[k % OFFSETS.length]}`;
    licenses.push({ code: `O${k}`, expiresAt: offset, expiresInstant: Date.parse(offset), updatesUntil: null, updatesInstant: null });
  }
  return licenses;
}

/**
 * What the contract says a series of runs sends, run by run, for active licenses that nobody edits. `zone` may
 * change between runs (the time-zone setting changed): a notice is about a license's expiry, whichever zone's
 * date the run reads it in, so it is sent once. Runs may come out of order: a run whose now is earlier than a
 * run already made (a catch-up after the fact) warns only about expiries after every earlier run's now, never
 * after the expiry was announced. Date-alone licenses are read in the zone simLicenses was given.
 */
export function expectedEvents(
  zone: string | ((now: number) => string),
  licenses: readonly SimLicense[],
  runs: readonly number[],
  globalWarningDays: readonly number[],
  lookbackDays: number,
  policy: OraclePolicy = { afterExpiryDays: [], products: {} },
): SimEvent[] {
  const sent: SimEvent[] = [];
  const thresholds = new Map<string, number[]>();
  const reminded = new Map<string, number[]>();
  const once = new Set<string>();
  let latest = -Infinity;
  for (const now of runs) {
    const runZone = typeof zone === 'string' ? zone : zone(now);
    const today = localDate(runZone, now);
    latest = Math.max(latest, now);
    for (const license of licenses) {
      const own = license.product === undefined ? undefined : policy.products[license.product];
      // A product switched off gets no notice of any kind.
      if (own?.enabled === false) continue;
      const warningDays = own?.warningDays ?? globalWarningDays;
      const afterExpiryDays = own?.afterExpiryDays ?? policy.afterExpiryDays;
      const largest = Math.max(...warningDays);
      const expiryDate = localDate(runZone, license.expiresInstant);
      if (now < license.expiresInstant) {
        const days = dayDiff(today, expiryDate);
        if (days <= largest && license.expiresInstant > latest && !once.has(`expired:${license.code}`)) {
          const threshold = Math.min(...warningDays.filter((n) => n >= days));
          const earlier = thresholds.get(license.code) ?? [];
          if (!earlier.some((n) => n <= threshold)) {
            thresholds.set(license.code, [...earlier, threshold]);
            sent.push({ at: iso(now), code: license.code, type: 'license.expiring', date: iso(license.expiresInstant), days });
          }
        }
      } else {
        if (dayDiff(expiryDate, today) <= lookbackDays && !once.has(`expired:${license.code}`)) {
          once.add(`expired:${license.code}`);
          sent.push({ at: iso(now), code: license.code, type: 'license.expired', date: iso(license.expiresInstant) });
        }
        // license.expired_reminder: N calendar days after the expiry date, once per license, N and expiry date. A run
        // after missed days sends the latest N still within lookbackDays of its day, and only if no N as large went out.
        const since = dayDiff(expiryDate, today);
        const due = afterExpiryDays.filter((n) => n >= 1 && since >= n && since - n <= lookbackDays);
        if (due.length > 0) {
          const n = Math.max(...due);
          const earlier = reminded.get(license.code) ?? [];
          if (!earlier.some((m) => m >= n)) {
            reminded.set(license.code, [...earlier, n]);
            sent.push({ at: iso(now), code: license.code, type: 'license.expired_reminder', date: iso(license.expiresInstant), days: since });
          }
        }
      }
      if (license.updatesInstant !== null && now >= license.updatesInstant) {
        const supportDate = localDate(runZone, license.updatesInstant);
        if (dayDiff(supportDate, today) <= lookbackDays && !once.has(`support:${license.code}`)) {
          once.add(`support:${license.code}`);
          sent.push({ at: iso(now), code: license.code, type: 'license.update_support_expired', date: iso(license.updatesInstant) });
        }
      }
    }
  }
  return sent;
}

/** Run instants: `times` ('HH:MM' UTC) on each of `days` days from `firstDay`, skipping day indexes in `skip`. */
export function schedule(firstDay: string, days: number, times: readonly string[], skip: (index: number) => boolean = () => false): number[] {
  const runs: number[] = [];
  for (let index = 0; index < days; index += 1) {
    if (skip(index)) continue;
    for (const time of times) runs.push(Date.parse(`${plusDays(firstDay, index)}T${time}:00Z`));
  }
  return runs;
}

/** Every `hours` hours for `days` days from 00:00 UTC of `firstDay`, starting at `startHour`. */
export function everyHours(firstDay: string, days: number, hours: number, startHour = 0): number[] {
  const start = Date.parse(`${firstDay}T00:00:00Z`) + startHour * HOUR;
  const runs: number[] = [];
  for (let at = start; at < start + days * DAY; at += hours * HOUR) runs.push(at);
  return runs;
}
