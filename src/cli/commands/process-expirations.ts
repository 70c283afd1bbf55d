// `process-expirations`: the cron job (and --mark-sent-through), what it prints and its exit status.
import { Option, type Command } from 'commander';
import { commandLine } from '../../command-line.js';
import type { WebhookTarget } from '../../commands/context.js';
import type { MarkSentResult } from '../../commands/mark-sent.js';
import type { ParkedForDisabled, PlanLine, ProcessExpirationsResult } from '../../commands/process-expirations.js';
import { EXIT } from '../../errors.js';
import { plural } from '../../plural.js';
import { deliveryProgress, leaseFromEnv, type CommandKit } from '../command-kit.js';
import { LISTED_OUTCOMES, printAbandoned, printSuperseded, printWaiting, targetText, warnSuperseded } from '../format.js';
import { examples } from '../help.js';
import { calendarDate, runInstant } from '../options.js';
import type { Output } from '../output.js';
import { clean } from '../text.js';
import { packageVersion } from '../version.js';

export function registerProcessExpirations(program: Command, kit: CommandKit): void {
  const { io, stop, clock, withDatabase, announceStop } = kit;
  program
    .command('process-expirations')
    .description('find expiring, expired and past-update-support licenses and send their webhooks (the cron job)')
    .addOption(new Option('--now <iso>', 'apply the rules at this instant instead of the current time (UTC)').argParser(runInstant))
    .option('--dry-run', 'print the events that would be sent; change nothing')
    .addOption(
      new Option(
        '--mark-sent-through <date>',
        "send nothing: record as sent what Botble's own cron job sent when it last ran on this day (once, when switching from it)",
      )
        .argParser(calendarDate)
        .conflicts('announceSince'),
    )
    .addOption(
      new Option(
        '--announce-since <date>',
        'this run only: announce expiries (and update-support ends) from this date on, even those older than lookbackDays, that were never announced (after an outage longer than lookbackDays)',
      ).argParser(calendarDate),
    )
    .addHelpText(
      'after',
      examples(
        'license-manager process-expirations                 # the daily cron job',
        'license-manager process-expirations --dry-run       # what would be sent, changing nothing',
        'license-manager process-expirations --now 2025-01-15T08:00:00Z --json',
        "license-manager process-expirations --mark-sent-through 2025-01-14 --dry-run   # Botble's job last ran on the 14th",
        'license-manager process-expirations --announce-since 2025-01-02 --dry-run   # expiries a long outage left unannounced',
      ) +
        '\n\nExit status: 0 all sent; 3 a delivery was abandoned; 4 nothing abandoned, but deliveries wait on a failing receiver' +
        '\n(deferred to a later run until webhooks.retryWindowHours, or parked after a 410 Gone); 1 failed or stopped early;' +
        '\n2 the config, the database or an option cannot be used (the message says which).' +
        '\nDeferred deliveries that are due go first, one attempt each per run (see "Retries across runs" in the README).',
    )
    .action((options: { now?: Date; dryRun?: boolean; markSentThrough?: string; announceSince?: string }, command: Command) =>
      withDatabase(
        command,
        async (context, out) => {
          if (options.markSentThrough !== undefined) {
            const { markSent } = await import('../../commands/mark-sent.js');
            const result = await markSent(context, {
              through: options.markSentThrough,
              now: options.now,
              dryRun: options.dryRun,
              clock,
              onWarning: (text) => out.warn(text),
            });
            if (out.options.json) out.json({ database: context.databaseLabel, ...result });
            else printMarkSent(out, result);
            return EXIT.ok;
          }
          const { lockedMessage, processExpirations } = await import('../../commands/process-expirations.js');
          const { webhookTarget } = await import('../../commands/context.js');
          const { settingAdvice } = await import('../../config/botble-settings.js');
          const { runMonitor } = await import('../../commands/monitoring.js');
          const progress = deliveryProgress(out, 'delivering');
          const stopAnnounced = announceStop(out);
          const result = await processExpirations(context, {
            monitor: runMonitor(context, { version: packageVersion(), clock, onWarning: (text) => out.warn(text) }),
            tracing: kit.tracing(),
            clock,
            now: options.now,
            dryRun: options.dryRun,
            announceSince: options.announceSince,
            leaseMs: leaseFromEnv(io.env),
            stop,
            onWarning: (text) => out.warn(text),
            onPlan: (plan, alsoTo, parkedFor) => printPlan(out, plan, Boolean(options.dryRun), webhookTarget(context), alsoTo, parkedFor),
            onProgress: progress.onProgress,
          }).finally(() => {
            progress.end();
            stopAnnounced();
          });
          // The run decided its exit status once (src/run-outcome.ts), as its `runs` row has it; not part of --json.
          const { outcome, ...shown } = result;
          if (out.options.json) out.json({ database: context.databaseLabel, ...shown });
          else
            printProcessExpirations(
              out,
              result,
              context.databaseLabel,
              settingAdvice(result.licenseSource, 'webhooks-enabled', 'true'),
              options.now !== undefined,
            );
          printNoLicenses(out, result, context.databaseLabel);
          printDisabledButDue(out, result);
          printExpiredWithoutEvent(out, result, options.now !== undefined);
          printAbandoned(out, result.abandonedDeliveries, result.abandoned);
          printWaiting(out, result);
          warnSuperseded(out, result.deliveries, result.superseded);
          if (stop.aborted) out.warn(`stopped early: left ${plural(result.left, 'delivery')} pending for the next run (nothing is lost).`);
          if (result.locked > 0) out.warn(lockedMessage(result.locked));
          return outcome.exitCode;
        },
        {},
        // A real run that cannot open its database still writes the textfile and ends with an end ping, with its exit status.
        options.dryRun || options.markSentThrough !== undefined
          ? undefined
          : async (exitCode, globals, out, error, durationMs) => {
              const { monitorUnopenedRun } = await import('../../commands/monitoring.js');
              await monitorUnopenedRun(globals, exitCode, durationMs, { version: packageVersion(), clock, onWarning: (text) => out.warn(text) }, error);
            },
      ),
    );
}

/**
 * Before anything is sent: how many notices of each kind and where they go, so a settings change that produces
 * thousands, or a URL left over from a test, is seen before the first request.
 */
function printPlan(
  out: Output,
  plan: PlanLine[],
  dryRun: boolean,
  target: WebhookTarget,
  alsoTo: readonly string[] = [],
  parkedFor: readonly ParkedForDisabled[] = [],
): void {
  if (out.options.json || out.options.quiet || plan.length === 0) return;
  const total = plan.reduce((sum, line) => sum + line.count, 0);
  const lines = plan.map((line) => `${line.type}${line.threshold === undefined ? '' : ` at ${plural(line.threshold, 'day')}`}: ${line.count}`);
  // The other endpoints that take some of them (each by its own event types).
  const also = alsoTo.length === 0 ? '' : ` and to endpoint${alsoTo.length === 1 ? '' : 's'} ${alsoTo.join(', ')}`;
  // The disabled endpoints that take some of them: what waits there for the operator's switch.
  const parked = parkedFor.map((entry) => `${entry.parked} ${dryRun ? 'would be ' : ''}parked for ${entry.endpoint} (disabled)`);
  out.info(
    `${dryRun ? 'would send' : 'sending'} ${plural(total, 'event')} ${dryRun ? wouldSendTo(target) : `to ${targetText(target)}`}${also}: ${lines.join(', ')}${parked.length === 0 ? '' : `; ${parked.join(', ')}`}`,
  );
}

/** Where a dry run's events would go, and what a real run still lacks to send them. */
function wouldSendTo(target: WebhookTarget): string {
  if (!target.enabled) {
    const disabled = `if webhooks were enabled (webhooks-enabled is false, from ${target.enabledSource})`;
    return target.url === null ? `${disabled} and a webhook URL were set` : `to ${targetText(target)} ${disabled}`;
  }
  return target.url === null ? 'once a webhook URL is set' : `to ${targetText(target)}`;
}

/** Webhooks off while events are due: on stderr even under --quiet and --json, so cron mails it. */
function printDisabledButDue(out: Output, result: ProcessExpirationsResult): void {
  if (result.dryRun || result.webhooksEnabled || result.due.length === 0) return;
  out.warn(
    `webhooks are disabled (webhooks-enabled is false, from ${result.target.enabledSource}) and ${plural(result.due.length, 'event')} ${result.due.length === 1 ? 'is' : 'are'} due: nothing was recorded or sent. ` +
      `Enable them with "${commandLine('settings set webhooks-enabled true')}" (see "${commandLine('status')}").`,
  );
}

/**
 * Licenses a run marked expired with no event although an earlier run existed: their customers lost a notice
 * (the job stopped for longer than lookbackDays). On stderr even under --quiet and --json, so cron mails it.
 */
function printExpiredWithoutEvent(out: Output, result: ProcessExpirationsResult, nowGiven: boolean): void {
  const count = result.expiredWithoutEvent;
  if (result.dryRun || !result.webhooksEnabled || count === 0 || result.lastRunNow === null) return;
  out.warn(
    `${plural(count, 'license')} expired longer ago than lookbackDays and ${count === 1 ? 'was' : 'were'} marked expired with no license.expired event: ` +
      `${count === 1 ? 'its customer was' : 'their customers were'} never told (did the job stop for longer than lookbackDays?):`,
  );
  const lines = result.expiredWithoutEventLicenses.map((license) => `  ${clean(license.licenseCode)} (id ${license.licenseId}) expired ${license.expiresAt}`);
  if (count > lines.length) lines.push(`  ... and ${count - lines.length} more`);
  if (result.announceSince)
    lines.push(
      `  To announce them after all: ${commandLine(`process-expirations --announce-since ${result.announceSince}${nowGiven ? ` --now ${result.now}` : ''}`)} (add --dry-run first to see what it sends).`,
    );
  for (const line of lines) out.io.stderr.write(`${line}\n`);
}

/** No licenses at all: on stderr even under --quiet, since a daily job on an empty database does nothing for ever. */
function printNoLicenses(out: Output, result: ProcessExpirationsResult, databaseLabel: string): void {
  if (result.hasLicenses) return;
  out.warn(
    `the database ${databaseLabel} holds no licenses, so there is nothing to check. Load them with "${commandLine('licenses import <file>')}", or point database.filename / LICENSE_MANAGER_DB at the database that has them.`,
  );
}

/**
 * `enableAdvice`: how to turn webhooks on where this installation keeps its settings (loaded with the action: it needs the config schema).
 * `nowGiven`: the run was given --now, which a run it suggests repeats, so that it sees the same day.
 */
function printProcessExpirations(out: Output, result: ProcessExpirationsResult, databaseLabel: string, enableAdvice: string, nowGiven: boolean): void {
  const counts = result.dueCounts;
  const mode = result.dryRun ? ' (dry run: nothing recorded or sent)' : '';
  out.info(`process-expirations at ${result.now} (today is ${result.today} in ${result.timeZone})${mode}`);
  out.info(`  database: ${databaseLabel}`);
  out.info(`  webhooks: ${result.target.enabled ? 'enabled' : 'disabled'} (from ${result.target.enabledSource}); target: ${targetText(result.target)}`);
  out.info(
    `  due: ${counts['license.expiring']} expiring, ${counts['license.expired']} expired, ${counts['license.update_support_expired']} update support ended` +
      (counts['license.expired_reminder'] === undefined ? '' : `, ${plural(counts['license.expired_reminder'], 'after-expiry reminder')}`),
  );
  if (result.dryRun || !result.webhooksEnabled) {
    for (const event of result.due) {
      const days =
        event.daysUntilExpiry !== undefined
          ? ` (${plural(event.daysUntilExpiry, 'day')} left)`
          : event.daysSinceExpiry !== undefined
            ? ` (${plural(event.daysSinceExpiry, 'day')} since the expiry date)`
            : '';
      out.info(
        `  ${result.dryRun ? 'would send' : 'due'} ${event.type} for ${clean(event.licenseCode)} (id ${event.licenseId}): ${clean(String(event.date))}${days}`,
      );
    }
  }
  // With events due the warning on stderr says it (printDisabledButDue); this line is for the quiet days.
  if (!result.webhooksEnabled && result.due.length === 0) {
    out.info(`  webhooks are disabled: nothing was recorded or sent. To enable them, ${enableAdvice}.`);
  }
  const recorded = !result.dryRun && result.webhooksEnabled;
  if (result.expiredWithoutEvent > 0 && !recorded)
    out.info(`  ${plural(result.expiredWithoutEvent, 'license')} expired longer ago than lookbackDays and would be marked expired with no event`);
  if (result.reactivated > 0) out.info(`  ${plural(result.reactivated, 'renewed license')} set back to active`);
  if (result.skipped > 0) out.info(`  skipped ${plural(result.skipped, 'license')} with bad data (see the warnings above)`);
  if (recorded) {
    // One count of licenses marked expired, and how many of those got no event: never two counts that read as a sum.
    const silent = result.expiredWithoutEvent > 0 ? ` (${result.expiredWithoutEvent} of them with no event: expired longer ago than lookbackDays)` : '';
    // Re-armed ones are part of recorded: said so, as they are not new rows.
    const rearmed = result.rearmed > 0 ? ` (${result.rearmed} of them re-armed: superseded by a license change since undone)` : '';
    out.info(`  recorded ${plural(result.recorded, 'new event')}${rearmed}; marked ${plural(result.markedExpired, 'license')} expired${silent}`);
    // The first run finds the history before it: expected, so not a warning (later runs warn, printExpiredWithoutEvent).
    if (result.expiredWithoutEvent > 0 && result.lastRunNow === null && result.announceSince) {
      out.info(
        `  this is the first run: expiries longer ago than lookbackDays are not announced. To announce those from a date on: ${commandLine(`process-expirations --announce-since ${result.announceSince}${nowGiven ? ` --now ${result.now}` : ''} --dry-run`)}`,
      );
    }
    out.info(
      `  delivered ${result.delivered}, abandoned ${result.abandoned}${result.deferred ? `, deferred ${result.deferred}` : ''}${result.parked ? `, parked ${result.parked}` : ''}${result.superseded ? `, superseded ${result.superseded}` : ''}${result.released ? `, left pending ${result.released}` : ''}${result.dropped ? `, not sent as no longer this run's (its lease lapsed, or the delivery was removed) ${result.dropped}` : ''}`,
    );
    for (const [name, counts] of Object.entries(result.byEndpoint ?? {}))
      out.info(`    to ${name}: delivered ${counts.delivered}, abandoned ${counts.abandoned}`);
    // Parked by the operator's own switch: no failure (never exit 4), but nothing reaches that receiver until it is enabled.
    for (const [name, parked] of Object.entries(result.parkedDisabledByEndpoint))
      out.info(
        `    for ${name}: ${plural(parked, 'delivery')} parked, as the endpoint is disabled ("${commandLine(`endpoints enable ${name}`)}" sends them with the next run)`,
      );
    printSuperseded(out, result.deliveries, result.superseded);
  }
}

/** `process-expirations --mark-sent-through`: what was recorded as sent (nothing was sent), and what the next run sends. */
function printMarkSent(out: Output, result: MarkSentResult): void {
  const verb = result.dryRun ? 'would mark' : 'marked';
  out.info(
    `process-expirations --mark-sent-through ${result.through} at ${result.now} (today is ${result.today} in ${result.timeZone})${result.dryRun ? ' (dry run: nothing recorded)' : ''}: nothing is sent`,
  );
  out.info(`  ${verb} as sent ${plural(result.marked.length, 'event')} Botble's own cron job sent by ${result.through}:`);
  const line = (event: MarkSentResult['marked'][number]) =>
    `${event.type} for ${clean(event.licenseCode)} (id ${event.licenseId}): ${event.date}${event.daysUntilExpiry === undefined ? '' : ` (${plural(event.daysUntilExpiry, 'day')} left)`}`;
  for (const event of result.marked.slice(0, LISTED_OUTCOMES)) out.info(`    ${line(event)}`);
  if (result.marked.length > LISTED_OUTCOMES) out.info(`    ... and ${result.marked.length - LISTED_OUTCOMES} more (--json lists every one)`);
  if (result.left.length > 0) {
    out.info(`  left for the next run, which sends them: ${plural(result.left.length, 'event')} Botble's job had not sent:`);
    for (const event of result.left.slice(0, LISTED_OUTCOMES)) out.info(`    ${line(event)}: ${event.reason}`);
    if (result.left.length > LISTED_OUTCOMES) out.info(`    ... and ${result.left.length - LISTED_OUTCOMES} more (--json lists every one)`);
  }
  if (!result.dryRun) {
    out.info(`  recorded ${plural(result.recorded, 'event')} as delivered; marked ${plural(result.markedExpired, 'license')} expired`);
    out.info(`  see them with "${commandLine('deliveries list --status delivered')}" (ERROR column: "not sent by this tool: marked as sent ...")`);
  }
}
