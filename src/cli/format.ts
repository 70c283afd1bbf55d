// What several commands print alike: abandoned, waiting and superseded deliveries (process-expirations, deliveries
// retry), the webhook target, and the notes under settings (settings list, status). Each command's own printer is
// in its module under ./commands/.
import type { EffectiveSetting } from '../config/settings.js';
import type { AbandonedDelivery } from '../commands/abandoned.js';
import type { WebhookTarget } from '../commands/context.js';
import type { WaitingDeliveries } from '../commands/process-expirations.js';
import type { DeliveryOutcome } from '../delivery/deliver-pending.js';
import { plural } from '../plural.js';
import type { Output } from './output.js';
import { clean } from './text.js';
import { commandLine } from '../command-line.js';

// A receiver down for a day abandons every event: list a few, count the rest (cron mails stay readable).
export const LISTED_OUTCOMES = 20;

/** `https://host/path (from settings)`: the target and the layer that chose it. */
export function targetText(target: WebhookTarget): string {
  return target.url === null ? 'no webhook URL set' : `${target.url} (from ${target.urlSource})`;
}

/** Abandoned deliveries, reported the same way by every run (with or without --quiet): on stderr, with the fix. */
export function printAbandoned(out: Output, abandoned: AbandonedDelivery[], total = abandoned.length): void {
  if (total === 0) return;
  out.warn(`${plural(total, 'delivery')} abandoned; re-send with "${commandLine('deliveries retry --abandoned')}" once the receiver is fixed:`);
  const lines = abandoned.slice(0, LISTED_OUTCOMES).map((item) => {
    const why = item.lastError ?? (item.lastStatusCode === null ? 'no response' : `HTTP ${item.lastStatusCode}`);
    return `  #${item.id} ${clean(item.licenseCode ?? '(license deleted)')} ${item.eventType} after ${plural(item.attempts, 'attempt')}: ${clean(why)}`;
  });
  // Results list a bounded number of outcomes: the rest are counted in `total`.
  if (total > lines.length) lines.push(`  ... and ${total - lines.length} more (${commandLine('deliveries list --status abandoned')})`);
  for (const line of lines) out.io.stderr.write(`${line}\n`);
}

/**
 * Deliveries that wait on a failing receiver, on stderr even under --quiet (cron mails it): per endpoint the count
 * deferred and parked, the last error and the next attempt; and each endpoint a 410 Gone disabled, loudly.
 */
export function printWaiting(
  out: Output,
  result: { waiting: readonly WaitingDeliveries[]; gone: ReadonlyArray<{ endpoint: string; reason: string }>; deferred: number; parked: number },
): void {
  for (const gone of result.gone) {
    out.warn(
      `endpoint ${gone.endpoint} is DISABLED: ${gone.reason}. Its deliveries are parked (kept, not sent). Once the receiver is back, run "${commandLine(`endpoints enable ${gone.endpoint}`)}".`,
    );
  }
  for (const endpoint of result.waiting) {
    const parts = [
      endpoint.deferred > 0 ? `${plural(endpoint.deferred, 'delivery')} deferred (next attempt ${endpoint.nextAttemptAt ?? 'with the next run'})` : '',
      endpoint.parked > 0 ? `${plural(endpoint.parked, 'delivery')} parked` : '',
    ]
      .filter(Boolean)
      .join(', ');
    const why = endpoint.reason ?? endpoint.lastError;
    out.warn(
      `endpoint ${endpoint.endpoint}: ${parts}${why ? `; last error: ${clean(why)}` : ''}. See "${commandLine(`deliveries list --endpoint ${endpoint.endpoint} --status ${endpoint.deferred > 0 ? 'deferred' : 'parked'}`)}".`,
    );
  }
}

/** The deliveries a run or a re-send did not send because their license changed or expired since they were recorded, each with why. */
export function printSuperseded(out: Output, outcomes: readonly DeliveryOutcome[], total: number): void {
  if (total === 0) return;
  const lines = outcomes
    .filter((outcome) => outcome.status === 'superseded')
    .slice(0, LISTED_OUTCOMES)
    .map((outcome) => `    #${outcome.id} ${outcome.eventType}: ${clean(outcome.reason ?? '')}`);
  if (total > lines.length) lines.push(`    ... and ${total - lines.length} more (${commandLine('deliveries list --status superseded')})`);
  out.info(
    `  not sent, superseded (the license changed or expired since the notice was recorded, or a later notice replaced it; "deliveries retry <id> --force" sends one anyway):`,
  );
  for (const line of lines) out.info(line);
}

/** A reason without what differs from one delivery to the next (dates, instants, license ids): its kind. */
function reasonKind(reason: string): string {
  return reason.replace(/\d{4}-\d\d-\d\d(T\d\d:\d\d:\d\dZ)?/g, '…').replace(/\blicense \d+\b/g, 'license …');
}

/**
 * Notices a run did not send because their license changed or expired while they waited (on a failing receiver,
 * or for a run that stopped): a customer may have missed one, so one warning on stderr, with or without --quiet
 * (cron mails it): how many, the commonest reason, and where to see them all.
 */
export function warnSuperseded(out: Output, outcomes: readonly DeliveryOutcome[], total: number): void {
  if (total === 0) return;
  const reasons = outcomes.filter((outcome) => outcome.status === 'superseded' && outcome.reason).map((outcome) => outcome.reason!);
  let why = '';
  if (total === 1 && reasons.length === 1) why = ` (${clean(reasons[0]!)})`;
  else if (reasons.length > 0) {
    const byKind = new Map<string, number>();
    for (const reason of reasons) byKind.set(reasonKind(reason), (byKind.get(reasonKind(reason)) ?? 0) + 1);
    const [kind, count] = [...byKind.entries()].reduce((most, entry) => (entry[1] > most[1] ? entry : most));
    // No reason more common than another (each once): one of them stands for the rest.
    why = ` (${count === total ? 'all of them' : count > 1 ? `${count} of them` : 'for example'}: ${clean(kind)})`;
  }
  out.warn(
    `${plural(total, 'notice')} ${total === 1 ? 'was' : 'were'} not sent: superseded after waiting${why}. See "${commandLine('deliveries list --status superseded')}".`,
  );
}

/** Under `settings list` and `status`: what was made of a value used in part, and what a value does here. */
export function printSettingNotes(out: Output, settings: ReadonlyArray<Pick<EffectiveSetting, 'key' | 'warning' | 'note'>>): void {
  for (const setting of settings) {
    if (setting.warning) out.info(out.paint.yellow(`${setting.key}: ${clean(setting.warning)}`));
    if (setting.note) out.info(`${setting.key}: ${clean(setting.note)}`);
  }
}
