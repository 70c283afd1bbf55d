// What a run of process-expirations decides, from what it read: pure, no I/O, `now` passed in.
import { formatUtc } from '../time.js';
import { dueReminder, EXPIRED_REMINDER, reminderCovered, type DueReminder } from './after-expiry.js';
import { dateInZone, parseInZone } from './calendar.js';
import { readLicense, type License, type RawLicense } from './license.js';
import { policyFor, type ProductSchedules, type ReminderSchedule } from './reminder-policy.js';
import { decide, RecordedEvents, scanBounds, type DueEvent, type EventType, type ExpirationPolicy, type RecordedEvent } from './rules.js';

/** Licenses marked expired with no event that a run names (the rest are counted). */
export const LISTED_WITHOUT_EVENT = 20;

/** The rules' three event types and the after-expiry reminder. */
export type NoticeType = EventType | typeof EXPIRED_REMINDER;
/** What a run may record: an event of the rules, or an after-expiry reminder. */
export type JobEvent = DueEvent | DueReminder;
/** A due notice and the license it is about. */
export interface LicenseEvent {
  event: JobEvent;
  license: License;
}

/** How many new events of one type (and, for warnings and reminders, one threshold) this run sends. */
export interface PlanLine {
  type: NoticeType;
  threshold?: number;
  count: number;
}

/** The per-product schedules of a run: the schedule of a license's product, and the widest of them all (for the scans). */
export interface Schedules {
  of: (productId: string | null) => ReminderSchedule;
  /** The largest warning day and after-expiry day any enabled schedule has. */
  largestWarning: number;
  largestAfterExpiry: number;
  /** Whether any enabled schedule has after-expiry days (license.expired_reminder can be due at all). */
  reminders: boolean;
}

/** The schedules the config and settings give: expirations.products over the global values. */
export function schedulesOf(expirations: { warningDays: readonly number[]; afterExpiryDays: readonly number[]; products: ProductSchedules }): Schedules {
  const of = (productId: string | null) => policyFor(productId, expirations, expirations.products);
  const all = [of(null), ...Object.keys(expirations.products).map(of)].filter((schedule) => schedule.enabled);
  return {
    of,
    largestWarning: Math.max(0, ...all.flatMap((schedule) => schedule.warningDays)),
    largestAfterExpiry: Math.max(0, ...all.flatMap((schedule) => schedule.afterExpiryDays)),
    reminders: all.some((schedule) => schedule.afterExpiryDays.length > 0),
  };
}

/** The global warning days alone: no product schedules, no reminders. */
export function globalSchedules(policy: Pick<ExpirationPolicy, 'warningDays'>): Schedules {
  return schedulesOf({ warningDays: policy.warningDays, afterExpiryDays: [], products: {} });
}

/** The rules of one run: the global policy, each product's schedule, and the latest instant an earlier run applied the rules at. */
export interface PlanPolicy extends ExpirationPolicy {
  schedules: Schedules;
  latestRun?: Date | undefined;
  /** The real clock, when `now` is a catch-up run's --now: a warning is re-armed only while its expiry is ahead of it. */
  clockNow?: Date | undefined;
}

/** The text bounds of the candidate scans: the largest warning day of any product, and far enough back for the latest reminder. */
export function scanWindow(now: Date, policy: PlanPolicy): ReturnType<typeof scanBounds> {
  const { schedules } = policy;
  return scanBounds(now, { ...policy, warningDays: [schedules.largestWarning], lookbackDays: policy.lookbackDays + schedules.largestAfterExpiry });
}

/** Earlier records, with the reminders' own rule beside the rules' (an N at least as large covers a reminder). */
export class RecordedNotices {
  private readonly rules: RecordedEvents;
  /** Reminders by license: reminderCovered scans what it is given, which must not be every record of a large run. */
  private readonly reminders = new Map<number, RecordedEvent[]>();

  /** Every record of the licenses that have a re-armable one (few): what rearms reads. */
  private readonly withRearmable = new Map<number, RecordedEvent[]>();

  constructor(recorded: readonly RecordedEvent[]) {
    this.rules = new RecordedEvents(recorded);
    for (const event of recorded)
      if (event.type === EXPIRED_REMINDER) this.reminders.set(event.licenseId, [...(this.reminders.get(event.licenseId) ?? []), event]);
    const rearmable = new Set(recorded.filter((event) => event.rearmable).map((event) => event.licenseId));
    for (const event of recorded)
      if (rearmable.has(event.licenseId)) this.withRearmable.set(event.licenseId, [...(this.withRearmable.get(event.licenseId) ?? []), event]);
  }

  /**
   * Whether a covered event is covered only by its own key's records, one of which is re-armable (superseded because
   * of its license, never delivered): the change that superseded it was undone, and the rules call for it again. Any
   * other record that covers it (the expired of the same date for a warning, a smaller warning, a record under the
   * first release's keys) still does.
   */
  rearms(event: JobEvent): boolean {
    const records = this.withRearmable.get(event.licenseId);
    if (!records?.some((record) => record.rearmable && record.key === event.key)) return false;
    return !new RecordedNotices(records.filter((record) => record.key !== event.key)).covers(event);
  }

  covers(event: JobEvent): boolean {
    return event.type === EXPIRED_REMINDER ? reminderCovered(event, this.reminders.get(event.licenseId) ?? []) : this.rules.covers(event);
  }

  announcedExpired(licenseId: number, expiresAt: Date, timeZone: string): boolean {
    return this.rules.announcedExpired(licenseId, expiresAt, timeZone);
  }
}

/** A license a run skips for bad data, and why (the run's warning names it). */
export interface SkippedLicense {
  id: number | string;
  code: string | null;
  problem: string;
}

/** What a run reads: the candidates of its scan window, and rows named for dates that are not dates (outside every window). */
export interface PlanInput {
  candidates: readonly RawLicense[];
  unreadable?: readonly SkippedLicense[];
}

export interface ExpirationPlan {
  /** The date of `now` in the business zone. */
  today: string;
  /** Events due at `now` that no earlier record covers. */
  events: LicenseEvent[];
  /** Events due at `now` recorded earlier whose deliveries were superseded by a change of the license since undone (RecordedNotices.rearms): sent after all. */
  rearm: LicenseEvent[];
  /** Licenses that passed their expiry: `active` -> `expired`, with the stored expiry (Botble keeps the date it derived the status from). */
  expire: Array<{ id: number; expires_at: string | null }>;
  /** Renewed licenses: `expired` -> `active`. */
  reactivate: number[];
  /** Expired longer ago than lookbackDays, never announced: `expired` with no event. */
  beyondLookback: License[];
  skipped: SkippedLicense[];
  /** The new and re-armed events counted by type and threshold, largest threshold first. */
  planLines: PlanLine[];
}

/**
 * The whole decision of a run at `now`: the rules per license (with its product's schedule and reminders), the
 * status changes, and only the events no earlier record covers (`recorded`: the records of these licenses).
 */
export function planExpirations(licenses: PlanInput, recorded: readonly RecordedEvent[], now: Date, policy: PlanPolicy): ExpirationPlan {
  const due: LicenseEvent[] = [];
  const reactivating: License[] = [];
  const plan: ExpirationPlan = {
    today: dateInZone(now, policy.timeZone),
    events: [],
    rearm: [],
    expire: [],
    reactivate: [],
    beyondLookback: [],
    skipped: [],
    planLines: [],
  };
  for (const raw of licenses.candidates) {
    const license = readLicense(raw, policy.timeZone);
    if ('problem' in license) {
      plan.skipped.push({ id: raw.id, code: raw.license_code, problem: license.problem });
      continue;
    }
    const schedule = policy.schedules.of(license.productId);
    const decision = decide(license, now, { ...policy, warningDays: schedule.warningDays }, policy.latestRun);
    if (decision.status === 'expired') plan.expire.push({ id: license.id, expires_at: raw.expires_at });
    if (decision.status === 'active') reactivating.push(license);
    // A product with enabled false gets no notice of any kind; its statuses still change.
    if (!schedule.enabled) continue;
    for (const event of decision.events) due.push({ event, license });
    const reminder = dueReminder(license, now, { afterExpiryDays: schedule.afterExpiryDays, lookbackDays: policy.lookbackDays, timeZone: policy.timeZone });
    if (reminder) due.push({ event: reminder, license });
    if (decision.beyondLookback) plan.beyondLookback.push(license);
  }
  // Dates that do not look like dates sit outside every window; each is named once.
  const named = new Set<number | string>(licenses.candidates.map((license) => license.id));
  for (const bad of licenses.unreadable ?? []) {
    if (named.has(bad.id)) continue;
    named.add(bad.id);
    plan.skipped.push(bad);
  }
  const earlier = new RecordedNotices(recorded);
  // A warning is re-armed only while its expiry is ahead of the real clock too: the check before sending would supersede it again at once.
  const clock = policy.clockNow ?? now;
  for (const item of due) {
    if (!earlier.covers(item.event)) plan.events.push(item);
    else if (earlier.rearms(item.event) && (item.event.type !== 'license.expiring' || item.event.date.getTime() > clock.getTime())) plan.rearm.push(item);
  }
  // An expiry announced as expired stays passed whatever --now a later run gives: only another date (or none) renews.
  plan.reactivate = reactivating
    .filter((license) => license.expiresAt === null || !earlier.announcedExpired(license.id, license.expiresAt, policy.timeZone))
    .map((license) => license.id);
  plan.planLines = planLines([...plan.events, ...plan.rearm].map(({ event }) => event));
  return plan;
}

/** Counts by type and threshold, largest threshold first. */
function planLines(events: readonly JobEvent[]): PlanLine[] {
  const lines = new Map<string, PlanLine>();
  for (const event of events) {
    const key = `${event.type}:${event.threshold ?? ''}`;
    const line = lines.get(key) ?? { type: event.type, ...(event.threshold === undefined ? {} : { threshold: event.threshold }), count: 0 };
    line.count += 1;
    lines.set(key, line);
  }
  return [...lines.values()].sort((a, b) => a.type.localeCompare(b.type) || (b.threshold ?? 0) - (a.threshold ?? 0));
}

/** Licenses expired long before the scan window, as storage names them: the expiry is text. */
export interface LongPastLicense {
  id: number;
  license_code: string;
  expires_at: string;
}

export interface WithoutEvent {
  /** The first of them by expiry (LISTED_WITHOUT_EVENT): their customers got no license.expired. */
  licenses: Array<{ licenseId: number; licenseCode: string; expiresAt: string }>;
  /** The date to give `--announce-since` to announce them after all (the oldest one's expiry date); null when there are none. */
  announceSince: string | null;
}

/** The licenses expired with no event that a run names, oldest expiry first, and the --announce-since date that would announce them. */
export function expiredWithoutEvent(beyondLookback: readonly License[], longPast: readonly LongPastLicense[], timeZone: string): WithoutEvent {
  const named = [
    ...beyondLookback.flatMap((license) => (license.expiresAt ? [{ licenseId: license.id, licenseCode: license.code, instant: license.expiresAt }] : [])),
    ...longPast.flatMap((license) => {
      const instant = parseInZone(license.expires_at, timeZone)?.instant;
      return instant ? [{ licenseId: license.id, licenseCode: license.license_code, instant }] : [];
    }),
  ];
  named.sort((a, b) => a.instant.getTime() - b.instant.getTime() || a.licenseId - b.licenseId);
  return {
    licenses: named.slice(0, LISTED_WITHOUT_EVENT).map(({ licenseId, licenseCode, instant }) => ({ licenseId, licenseCode, expiresAt: formatUtc(instant) })),
    announceSince: named.length === 0 ? null : dateInZone(named[0]!.instant, timeZone),
  };
}
