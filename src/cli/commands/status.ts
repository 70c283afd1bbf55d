// `status`: is this installation working? One screen, a verdict, and the exit status monitoring reads.
import { Option, type Command } from 'commander';
import { commandLine } from '../../command-line.js';
import type { LastPing } from '../../commands/monitoring.js';
import type { pingWentTo } from '../../monitoring/heartbeat.js';
import type { ExpiredWithoutEvent, StatusResult } from '../../commands/status.js';
import { EXIT, usageError } from '../../errors.js';
import { plural } from '../../plural.js';
import { TOLERANT, type CommandKit } from '../command-kit.js';
import { printSettingNotes } from '../format.js';
import { examples } from '../help.js';
import { runInstant } from '../options.js';
import type { Output } from '../output.js';
import { clean, table } from '../text.js';
import { packageVersion } from '../version.js';

export function registerStatus(program: Command, kit: CommandKit): void {
  const { io, clock, withDatabase } = kit;
  program
    .command('status')
    .description(
      'is this installation working? config, database, webhook target, counts, the last runs; exit 0 ok, 3 deliveries abandoned and not re-sent, 4 an endpoint failing for more than 24 hours (deliveries wait on it), 1 the last run failed, stopped or refused to start, no run finished in the last 26 hours while licenses exist, or a stored setting is invalid, 2 the config or database cannot be used (or does not exist)',
    )
    .addOption(new Option('--now <iso>', 'judge the last run as of this instant instead of the current time').argParser(runInstant))
    .addOption(
      new Option(
        '--format <format>',
        'text (the default), json (as --json) or prometheus (the metrics monitoring.textfile holds, in the Prometheus text format)',
      ).choices(['text', 'json', 'prometheus']),
    )
    .addHelpText(
      'after',
      examples(
        'license-manager -c /etc/license-manager/config.json status',
        'license-manager status --json',
        'license-manager status --format prometheus   # the license_manager_* metrics on stdout; the exit status as ever',
        'license-manager status --quiet || alert   # monitoring: 1 when the cron job failed, stopped, refused or has not run for 26 hours, 3 while deliveries are abandoned, 4 when an endpoint has been failing for more than 24 hours, 2 when the config or database is unusable',
      ),
    )
    .action((options: { now?: Date; format?: 'text' | 'json' | 'prometheus' }, command: Command) =>
      withDatabase(
        command,
        async (context, out) => {
          if (options.format === 'prometheus' && out.options.json)
            throw usageError('Give --json or --format prometheus, not both: they are two formats of stdout.');
          const [{ status }, { pingWentTo }] = await Promise.all([import('../../commands/status.js'), import('../../monitoring/heartbeat.js')]);
          const now = options.now ?? clock.now();
          const result = await status(context, { now, clock });
          if (options.format === 'prometheus') {
            const { metricsText } = await import('../../commands/monitoring.js');
            // The same text as the textfile; the reason for a non-zero exit still reaches stderr.
            io.stdout.write(await metricsText(context, packageVersion(), now));
            if (result.health.exitCode !== EXIT.ok) out.warn(result.health.reason);
            return result.health.exitCode;
          }
          if (out.options.json || options.format === 'json') out.json(result);
          else printStatus(out, result, pingWentTo);
          if (result.health.exitCode !== EXIT.ok && out.options.quiet) out.warn(result.health.reason);
          // Lost notices leave the exit code alone (the job works) but reach cron's mail under --quiet.
          if (result.expiredWithoutEvent && out.options.quiet) out.warn(expiredWithoutEventText(result.expiredWithoutEvent));
          if (result.heldByGoneRuns > 0 && out.options.quiet) out.warn(heldByGoneRunsText(result.heldByGoneRuns));
          return result.health.exitCode;
        },
        TOLERANT,
      ),
    );
}

/** A wait in whole units: 45 s, 12 min, 5 h 3 min, 2 d 4 h. */
function ageText(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
  return `${Math.floor(seconds / 86_400)} d ${Math.floor((seconds % 86_400) / 3600)} h`;
}

/** `status`: one screen an operator reads top to bottom; the verdict last, coloured, with what to do. */
function printStatus(out: Output, result: StatusResult, pingWentTo: PingWentTo): void {
  const counts = (byStatus: Record<string, number>, total: number) =>
    total === 0
      ? 'none'
      : `${total} (${Object.entries(byStatus)
          .map(([status, count]) => `${status} ${count}`)
          .join(', ')})`;
  const { webhooks } = result;
  out.info(
    table([
      ['config file', result.configFile ?? '(none found: defaults)'],
      ['database', result.database],
      ['webhooks', `${webhooks.enabled ? out.paint.green('enabled') : out.paint.yellow('disabled')} (from ${webhooks.enabledSource})`],
      ['webhook URL', `${webhooks.url ?? '(not set)'} (from ${webhooks.urlSource})`],
      ['time zone', `${result.timeZone.value} (from ${result.timeZone.source})`],
      ['licenses', counts(result.licenses.byStatus, result.licenses.total)],
      ['deliveries', counts(result.deliveries.byStatus, result.deliveries.total)],
      ...Object.entries(result.deliveries.byEndpoint ?? {}).map(([name, byStatus]): [string, string] => [
        `  to ${name}`,
        counts(
          byStatus,
          Object.values(byStatus).reduce((total, count) => total + count, 0),
        ),
      ]),
    ]),
  );
  for (const problem of result.settingProblems) out.info(out.paint.red(`stored setting ${problem.key} is invalid: ${problem.problem}`));
  printSettingNotes(out, result.settingNotes);
  out.info('');
  if (result.runs.length === 0) out.info('last runs of process-expirations: none yet');
  else {
    out.info('last runs of process-expirations (newest first):');
    out.info(
      table([
        ['  STARTED', 'FINISHED', 'RESULT', 'EXIT', 'RECORDED', 'DELIVERED', 'ABANDONED'],
        ...result.runs.map((run) => [
          `  ${run.startedAt}`,
          run.finishedAt ?? '-',
          run.status,
          run.exitCode === null ? '-' : String(run.exitCode),
          String(run.recorded),
          String(run.delivered),
          String(run.abandoned),
        ]),
      ]),
    );
  }
  if (result.endpoints.length > 0) {
    out.info('');
    out.info('endpoints (what runs learned about each receiver):');
    out.info(
      table([
        ['  ENDPOINT', 'CIRCUIT', 'LAST SUCCESS', 'FAILURES', 'DEFERRED', 'PARKED', 'OLDEST WAITING', 'NEXT ATTEMPT'],
        ...result.endpoints.map((endpoint) => [
          `  ${endpoint.name}`,
          endpoint.disabled ? out.paint.red('disabled (410)') : endpoint.circuit === 'closed' ? endpoint.circuit : out.paint.yellow(endpoint.circuit),
          endpoint.lastSuccessAt ?? '-',
          String(endpoint.consecutiveFailures),
          String(endpoint.deferred),
          String(endpoint.parked),
          endpoint.oldestUndeliveredAgeSeconds === null ? '-' : ageText(endpoint.oldestUndeliveredAgeSeconds),
          endpoint.nextAttemptAt ?? '-',
        ]),
      ]),
    );
    for (const endpoint of result.endpoints)
      if (endpoint.lastError && (endpoint.consecutiveFailures > 0 || endpoint.deferred + endpoint.parked > 0))
        out.info(`  ${endpoint.name}: last error ${clean(endpoint.lastError)}`);
  }
  if (result.expiredWithoutEvent) {
    out.info('');
    out.info(out.paint.yellow(`NOTICES LOST: ${expiredWithoutEventText(result.expiredWithoutEvent)}`));
  }
  if (result.heldByGoneRuns > 0) {
    out.info('');
    out.info(out.paint.yellow(`HELD BY A GONE RUN: ${heldByGoneRunsText(result.heldByGoneRuns)}`));
  }
  printMonitoring(out, result.monitoring, pingWentTo);
  out.info('');
  const { health } = result;
  const verdict =
    health.exitCode === EXIT.ok ? out.paint.green('OK') : health.exitCode === EXIT.abandoned ? out.paint.yellow('ATTENTION') : out.paint.red('FAILING');
  out.info(`${verdict}: ${health.reason} (exit ${health.exitCode})`);
}

type PingWentTo = typeof pingWentTo;

/** The heartbeat and the metrics file, when either is set or a ping was sent: what the last run's pings came to. */
function printMonitoring(out: Output, monitoring: StatusResult['monitoring'], pingWentTo: PingWentTo): void {
  const { ping, lastPing, textfile } = monitoring;
  if (!ping && !lastPing && !textfile) return;
  const described = (result: LastPing['start']) => {
    if (!result) return '-';
    const how = result.ok ? out.paint.green(`ok (HTTP ${result.statusCode})`) : out.paint.red(`failed: ${result.error ?? 'no answer'}`);
    // A run with LICENSE_MANAGER_PING set pinged elsewhere than this command reads: say where it went (not when
    // the ping went to this check with its /start or exit status added).
    const where = ping && pingWentTo(ping, result) ? '' : ` (to ${result.target})`;
    return `${how}${where} at ${result.at}, ${result.attempts === 1 ? '1 attempt' : `${result.attempts} attempts`}, ${result.durationMs} ms`;
  };
  out.info('');
  out.info(
    table([
      ['heartbeat', ping ? `${ping.target} (${ping.kind})` : '(not set)'],
      ...(lastPing
        ? [['  last start ping', described(lastPing.start)] as [string, string], ['  last end ping', described(lastPing.end)] as [string, string]]
        : []),
      ['metrics file', textfile ?? '(not set)'],
    ]),
  );
}

/** What `status` says about deliveries claimed by a run that is gone (a warning: the exit code stays the job's). */
function heldByGoneRunsText(held: number): string {
  return `${plural(held, 'delivery')} ${held === 1 ? 'is' : 'are'} claimed by a run that is gone (killed, or its host lost: its lease lapsed) with no worker left to take ${held === 1 ? 'it' : 'them'} over; the next process-expirations run sends ${held === 1 ? 'it' : 'them'} (run it now to send ${held === 1 ? 'it' : 'them'} at once).`;
}

/** What `status` says about licenses expired with no event (a warning: the exit code stays the job's). */
function expiredWithoutEventText(lost: ExpiredWithoutEvent): string {
  const announce = commandLine(`process-expirations --announce-since ${lost.announceSince ?? '<date>'}`);
  return (
    `the last run (started ${lost.runStartedAt}) marked ${plural(lost.licenses, 'license')} expired with no license.expired event (expired longer ago than lookbackDays): ` +
    `${lost.licenses === 1 ? 'its customer was' : 'their customers were'} never told. Announce them after all with "${announce}" (try it with --dry-run first).`
  );
}
