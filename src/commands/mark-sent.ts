import { systemClock, type Clock } from '../clock.js';
import { BOTBLE_ADMIN_PAGE, botbleSwitchOn } from '../config/botble-settings.js';
import { usageError } from '../errors.js';
import { addDays, dateInZone } from '../expirations/calendar.js';
import { globalSchedules } from '../expirations/plan-expirations.js';
import type { ExpirationPolicy } from '../expirations/rules.js';
import { readBotbleSettings } from '../storage/botble.repository.js';
import { recordEvents, type NewDeliveries } from '../storage/deliveries/record.repository.js';
import { latestRunNow } from '../storage/runs.repository.js';
import { formatUtc, parseUtc } from '../time.js';
import type { CommandContext } from './context.js';
import { deliveriesFor, dueEventReport, findNewEvents, FUTURE_NOW_TOLERANCE_MS, type DueEventReport, type LicenseEvent } from './process-expirations.js';

/**
 * `process-expirations --mark-sent-through <date>`: the first step after switching off Botble's own cron job.
 * It records, as `delivered` and without sending anything, the events due now that Botble's job
 * (cms:license-manager:process-expirations) sent when it ran daily up to and including `<date>`, so the
 * first real run does not announce them again. Botble's rules decide what it sent: a warning on the exact day
 * `expires_at - N` (only to a license with an e-mail address), and `license.expired` and
 * `license.update_support_expired` on every run after the date (never on the date itself).
 */

export interface MarkSentOptions {
  /** The last day (in the business time zone) Botble's job ran: 'YYYY-MM-DD'. */
  through: string;
  now?: Date | undefined;
  dryRun?: boolean | undefined;
  clock?: Clock;
  onWarning?: (message: string) => void;
}

/** An event due now that is left for the next run, and why Botble's job had not sent it. */
interface LeftEvent extends DueEventReport {
  reason: string;
}

export interface MarkSentResult {
  now: string;
  timeZone: string;
  today: string;
  through: string;
  dryRun: boolean;
  licenseSource: 'own' | 'botble';
  /** The events recorded as sent (on a dry run: that would be). */
  marked: DueEventReport[];
  /** Rows this call added to webhook_deliveries (0 on a dry run; fewer when another run recorded some first). */
  recorded: number;
  /** Licenses set to `expired` with their marked `license.expired`. */
  markedExpired: number;
  /** Events due now that Botble's job had not sent: the next real run sends them. */
  left: LeftEvent[];
  /** What a marked delivery says in the log (its last_error), so it is never taken for one this tool sent. */
  reason: string;
}

/** Whether Botble's daily job had sent this event by the end of `through`, and if not, why. */
function sentByBotble({ event, license }: LicenseEvent, through: string): true | string {
  if (event.type === 'license.expiring') {
    // Botble sends the N-day warning on the day expires_at - N, and only to a license with an e-mail address.
    if (license.email === null) return "no e-mail address: Botble's job sends no warning without one";
    const sentOn = addDays(event.day, -event.threshold!);
    return sentOn <= through ? true : `Botble's job would have sent it on ${sentOn}`;
  }
  // Botble announces an expiry on every run after the date (expires_at < today), never on the date itself.
  return event.day < through ? true : `Botble's job would have sent it on ${addDays(event.day, 1)}`;
}

/** Botble mode: Botble's job sent webhooks only with its switch on and its webhooks on; otherwise marking would hide notices never sent. */
async function refuseWhereBotbleSentNothing(context: CommandContext): Promise<void> {
  if (context.licenses.kind !== 'botble') return;
  const switched = botbleSwitchOn((await readBotbleSettings(context.db)).get('lm_send_expiration_warnings'));
  // A missing lm_enable_webhooks row is Botble's default, off, whatever the config file says.
  const enabled = context.settings.find((setting) => setting.key === 'webhooks-enabled')!;
  const afterwards = `If it was on while Botble's job ran and was changed only now, set it back in the Botble admin (${BOTBLE_ADMIN_PAGE}); with the job's schedule removed it sends nothing. Then run this again.`;
  if (!switched) {
    throw usageError(
      `Nothing to mark: Botble's switch lm_send_expiration_warnings is off, so Botble's own cron job sent no e-mail and no webhook, and marking would keep customers from notices they never got. Run process-expirations as usual. ${afterwards}`,
    );
  }
  if (enabled.source !== 'botble' || !context.config.webhooks.enabled) {
    throw usageError(
      `Nothing to mark: Botble's lm_enable_webhooks is ${enabled.source === 'botble' ? 'off' : "not set (Botble's default: off)"}, so Botble's own cron job sent no webhook, and marking would keep receivers from events they never got. ${afterwards}`,
    );
  }
}

export async function markSent(context: CommandContext, options: MarkSentOptions): Promise<MarkSentResult> {
  const clock = options.clock ?? systemClock;
  const now = options.now ?? clock.now();
  const realNow = clock.now();
  const policy: ExpirationPolicy = { ...context.config.expirations };
  const today = dateInZone(now, policy.timeZone);
  if (!options.dryRun && now.getTime() > realNow.getTime() + FUTURE_NOW_TOLERANCE_MS) {
    throw usageError(
      `--now ${formatUtc(now)} is ahead of the clock (${formatUtc(realNow)}): marking would record as sent events that are not due yet. Add --dry-run to preview it.`,
    );
  }
  if (options.through > today) {
    throw usageError(
      `--mark-sent-through ${options.through} is after today (${today} in ${policy.timeZone}): give the last day Botble's own cron job ran, which cannot be a day still to come. Nothing was recorded.`,
    );
  }
  await refuseWhereBotbleSentNothing(context);

  // The same rules as a run: an expiry a later run saw pass is not warned about again.
  const latest = await latestRunNow(context.db);
  const findings = await findNewEvents(
    context.db,
    context.licenses,
    now,
    { ...policy, schedules: globalSchedules(policy), latestRun: latest === undefined ? undefined : parseUtc(latest) },
    options.onWarning ?? (() => undefined),
  );
  const marked: LicenseEvent[] = [];
  const left: LeftEvent[] = [];
  for (const due of findings.events) {
    const verdict = sentByBotble(due, options.through);
    if (verdict === true) marked.push(due);
    else left.push({ ...dueEventReport(due), reason: verdict });
  }
  if (marked.length === 0) {
    const found =
      findings.events.length === 0
        ? `no event is due at ${formatUtc(now)} that is not recorded already`
        : `none of the ${findings.events.length} events due at ${formatUtc(now)} was sent by Botble's job by ${options.through} (see "process-expirations --dry-run")`;
    throw usageError(`Nothing to mark: ${found}. Nothing was recorded; the next process-expirations run sends what is due.`);
  }

  const reason = `not sent by this tool: marked as sent by Botble's own cron job, which ran through ${options.through} (process-expirations --mark-sent-through ${options.through}, at ${formatUtc(realNow)})`;
  const result: MarkSentResult = {
    now: formatUtc(now),
    timeZone: policy.timeZone,
    today,
    through: options.through,
    dryRun: Boolean(options.dryRun),
    licenseSource: context.licenses.kind,
    marked: marked.map(dueEventReport),
    recorded: 0,
    markedExpired: 0,
    left,
    reason,
  };
  if (options.dryRun) return result;

  const recordedAt = formatUtc(realNow);
  const recorded = await recordEvents(
    context.db,
    asSent(deliveriesFor(marked, now, policy.timeZone), recordedAt, reason),
    // A marked expiry makes the license `expired`, as recording it does; renewals are left to the next run.
    {
      expired: findings.expire.filter(({ id }) => marked.some(({ event, license }) => event.type === 'license.expired' && license.id === id)),
      reactivated: [],
    },
    recordedAt,
    context.licenses.setStatuses,
  );
  result.recorded = recorded.inserted;
  result.markedExpired = recorded.expired;
  return result;
}

/** The same deliveries, recorded as delivered by someone else: never claimed, never sent. */
function asSent(deliveries: NewDeliveries, completedAt: string, reason: string): NewDeliveries {
  return {
    count: deliveries.count,
    slice: (start, end) =>
      deliveries.slice(start, end).map((delivery) => ({ ...delivery, status: 'delivered', completed_at: completedAt, last_error: reason })),
    ...(deliveries.stillNew ? { stillNew: async (trx) => asSent(await deliveries.stillNew!(trx), completedAt, reason) } : {}),
  };
}
