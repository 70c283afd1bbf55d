import { settingAdvice } from '../config/botble-settings.js';
import type { EffectiveSetting } from '../config/settings.js';
import type { AbandonedDelivery } from '../commands/abandoned.js';
import type { WebhookTarget } from '../commands/context.js';
import type { DeliveriesListResult, RetryResult } from '../commands/deliveries.js';
import type { ExpiredWithoutEvent, StatusResult } from '../commands/status.js';
import type { LastPing } from '../commands/monitoring.js';
import type { DeliveriesStatsResult } from '../commands/deliveries-stats.js';
import type { ImportResult } from '../commands/licenses.js';
import type { MarkSentResult } from '../commands/mark-sent.js';
import type { PlanLine, ProcessExpirationsResult, WaitingDeliveries } from '../commands/process-expirations.js';
import type { DeliveryOutcome } from '../delivery/deliver-pending.js';
import type { ReceivedWebhook } from '../commands/listen.js';
import type { SendTestEventResult } from '../commands/send-test-event.js';
import type { DeliveryDetails } from '../commands/deliveries.js';
import type { EndpointView } from '../commands/endpoints.js';
import type { LicenseListItem } from '../commands/licenses.js';
import { plural } from '../plural.js';
import { clean, type Output, table } from './output.js';
import { commandLine } from '../command-line.js';

// A receiver down for a day abandons every event: list a few, count the rest (cron mails stay readable).
const LISTED_OUTCOMES = 20;

/** `https://host/path (from settings)`: the target and the layer that chose it. */
function targetText(target: WebhookTarget): string {
  return target.url === null ? 'no webhook URL set' : `${target.url} (from ${target.urlSource})`;
}

/**
 * Before anything is sent: how many notices of each kind and where they go, so a settings change that produces
 * thousands, or a URL left over from a test, is seen before the first request.
 */
export function printPlan(out: Output, plan: PlanLine[], dryRun: boolean, target: WebhookTarget): void {
  if (out.options.json || out.options.quiet || plan.length === 0) return;
  const total = plan.reduce((sum, line) => sum + line.count, 0);
  const lines = plan.map((line) => `${line.type}${line.threshold === undefined ? '' : ` at ${plural(line.threshold, 'day')}`}: ${line.count}`);
  out.info(`${dryRun ? 'would send' : 'sending'} ${plural(total, 'event')} ${dryRun ? wouldSendTo(target) : `to ${targetText(target)}`}: ${lines.join(', ')}`);
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
export function printDisabledButDue(out: Output, result: ProcessExpirationsResult): void {
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
export function printExpiredWithoutEvent(out: Output, result: ProcessExpirationsResult): void {
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
      `  To announce them after all: ${commandLine(`process-expirations --announce-since ${result.announceSince}`)} (add --dry-run first to see what it sends).`,
    );
  for (const line of lines) out.io.stderr.write(`${line}\n`);
}

/** No licenses at all: on stderr even under --quiet, since a daily job on an empty database does nothing for ever. */
export function printNoLicenses(out: Output, result: ProcessExpirationsResult, databaseFile: string): void {
  if (result.hasLicenses) return;
  out.warn(
    `the database ${databaseFile} holds no licenses, so there is nothing to check. Load them with "${commandLine('licenses import <file>')}", or point database.filename / LICENSE_MANAGER_DB at the database that has them.`,
  );
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

export function printProcessExpirations(out: Output, result: ProcessExpirationsResult, databaseFile: string): void {
  const counts = result.dueCounts;
  const mode = result.dryRun ? ' (dry run: nothing recorded or sent)' : '';
  out.info(`process-expirations at ${result.now} (today is ${result.today} in ${result.timeZone})${mode}`);
  out.info(`  database: ${databaseFile}`);
  out.info(`  webhooks: ${result.target.enabled ? 'enabled' : 'disabled'} (from ${result.target.enabledSource}); target: ${targetText(result.target)}`);
  out.info(
    `  due: ${counts['license.expiring']} expiring, ${counts['license.expired']} expired, ${counts['license.update_support_expired']} update support ended` +
      (counts['license.expired_reminder'] === undefined ? '' : `, ${counts['license.expired_reminder']} after-expiry reminders`),
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
    out.info(`  webhooks are disabled: nothing was recorded or sent. To enable them, ${settingAdvice(result.licenseSource, 'webhooks-enabled', 'true')}.`);
  }
  const recorded = !result.dryRun && result.webhooksEnabled;
  if (result.expiredWithoutEvent > 0 && !recorded)
    out.info(`  ${plural(result.expiredWithoutEvent, 'license')} expired longer ago than lookbackDays and would be marked expired with no event`);
  if (result.reactivated > 0) out.info(`  ${plural(result.reactivated, 'renewed license')} set back to active`);
  if (result.skipped > 0) out.info(`  skipped ${plural(result.skipped, 'license')} with bad data (see the warnings above)`);
  if (recorded) {
    // One count of licenses marked expired, and how many of those got no event: never two counts that read as a sum.
    const silent = result.expiredWithoutEvent > 0 ? ` (${result.expiredWithoutEvent} of them with no event: expired longer ago than lookbackDays)` : '';
    out.info(`  recorded ${plural(result.recorded, 'new event')}; marked ${plural(result.markedExpired, 'license')} expired${silent}`);
    // The first run finds the history before it: expected, so not a warning (later runs warn, printExpiredWithoutEvent).
    if (result.expiredWithoutEvent > 0 && result.lastRunNow === null && result.announceSince) {
      out.info(
        `  this is the first run: expiries before it are not announced. To announce those from a date on: ${commandLine(`process-expirations --announce-since ${result.announceSince} --dry-run`)}`,
      );
    }
    out.info(
      `  delivered ${result.delivered}, abandoned ${result.abandoned}${result.deferred ? `, deferred ${result.deferred}` : ''}${result.parked ? `, parked ${result.parked}` : ''}${result.superseded ? `, superseded ${result.superseded}` : ''}${result.released ? `, left pending ${result.released}` : ''}${result.dropped ? `, taken over by another run ${result.dropped}` : ''}`,
    );
    for (const [name, counts] of Object.entries(result.byEndpoint ?? {}))
      out.info(`    to ${name}: delivered ${counts.delivered}, abandoned ${counts.abandoned}`);
    printSuperseded(out, result.deliveries, result.superseded);
  }
}

/** The deliveries a run or a re-send did not send because their license changed since they were recorded, each with why. */
function printSuperseded(out: Output, outcomes: readonly DeliveryOutcome[], total: number): void {
  if (total === 0) return;
  const lines = outcomes
    .filter((outcome) => outcome.status === 'superseded')
    .slice(0, LISTED_OUTCOMES)
    .map((outcome) => `    #${outcome.id} ${outcome.eventType}: ${clean(outcome.reason ?? '')}`);
  if (total > lines.length) lines.push(`    ... and ${total - lines.length} more (${commandLine('deliveries list --status superseded')})`);
  out.info(`  not sent, superseded (the license changed since the notice was recorded; "deliveries retry <id> --force" sends one anyway):`);
  for (const line of lines) out.info(line);
}

/** `process-expirations --mark-sent-through`: what was recorded as sent (nothing was sent), and what the next run sends. */
export function printMarkSent(out: Output, result: MarkSentResult): void {
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

export function printSettings(out: Output, settings: EffectiveSetting[]): void {
  out.info(
    table([
      ['KEY', 'VALUE', 'SOURCE'],
      ...settings.map((setting) => [
        setting.key,
        setting.value === null ? out.paint.dim('(not set)') : clean(setting.value),
        [
          setting.origin ? `${setting.source} (${setting.origin})` : setting.source,
          setting.invalid ? out.paint.red(`INVALID, not used: ${setting.invalid}`) : '',
          setting.overrides ? out.paint.yellow(`overrides ${setting.overrides}`) : '',
        ]
          .filter(Boolean)
          .join('; '),
      ]),
    ]),
  );
  for (const setting of settings.filter((candidate) => candidate.invalid)) {
    out.info(`Fix ${setting.key} with "${commandLine(`settings set ${setting.key} <value>`)}" or "${commandLine(`settings unset ${setting.key}`)}".`);
  }
  printSettingNotes(out, settings);
}

/** Under `settings list` and `status`: what was made of a value used in part, and what a value does here. */
function printSettingNotes(out: Output, settings: ReadonlyArray<Pick<EffectiveSetting, 'key' | 'warning' | 'note'>>): void {
  for (const setting of settings) {
    if (setting.warning) out.info(out.paint.yellow(`${setting.key}: ${clean(setting.warning)}`));
    if (setting.note) out.info(`${setting.key}: ${clean(setting.note)}`);
  }
}

/** A setting for --json with its value as a JSON type: true, [7, 1], not "true", "7,1". */
export function typedSetting(setting: EffectiveSetting): Omit<EffectiveSetting, 'value'> & { value: unknown } {
  if (setting.value === null || setting.invalid) return setting;
  if (setting.key === 'webhooks-enabled') return { ...setting, value: setting.value === 'true' };
  if (setting.key === 'warning-days' || setting.key.endsWith('days'))
    return { ...setting, value: setting.value === 'none' ? [] : setting.value.split(',').map(Number) };
  if (setting.key.startsWith('product:') && setting.key.endsWith(':enabled')) return { ...setting, value: setting.value === 'true' };
  return setting;
}

/** `whenNone`: what to say when no row matches (the filters left none, or there are no licenses at all). */
export function printLicenses(out: Output, rows: LicenseListItem[], whenNone: string): void {
  if (rows.length === 0) {
    out.info(whenNone);
    return;
  }
  out.info(
    table([
      ['ID', 'CODE', 'STATUS', 'EXPIRES', 'UPDATES UNTIL', 'PRODUCT', 'EMAIL'],
      ...rows.map((row) =>
        [
          String(row.id),
          row.license_code,
          row.status,
          row.expires_at ?? 'lifetime',
          row.updates_until ?? '-',
          row.product_name ?? row.product_id ?? '-',
          row.email ?? '-',
        ].map((cell) => clean(cell)),
      ),
    ]),
  );
}

export function printImport(out: Output, result: ImportResult): void {
  // An empty export is usually a mistake upstream: cron should mail it.
  if (result.rows === 0) out.warn(`${result.file} holds no license rows (an empty file, or a header only): nothing was imported.`);
  out.info(
    `Imported ${plural(result.rows, 'license')} from ${clean(result.file)} (${result.format}): ${result.inserted} new, ${result.updated} updated, ${result.unchanged} unchanged.`,
  );
}

export function printDeliveries(out: Output, list: DeliveriesListResult): void {
  const { rows, total } = list;
  if (rows.length === 0) {
    out.info('No deliveries match.');
    return;
  }
  // The endpoint column appears once a row goes elsewhere than default: an installation without endpoints sees the table of before.
  const withEndpoint = rows.some((row) => row.endpoint !== 'default');
  // Likewise the next attempt and the reason: shown once a row waits (deferred, parked) or says why it ended.
  const withWait = rows.some((row) => row.next_attempt_at !== null || row.status_reason !== null);
  const columns = ['ID', 'EVENT', 'LICENSE', 'STATUS', 'ATTEMPTS', 'LAST', 'CREATED', 'ERROR'];
  const header = withEndpoint ? [...columns.slice(0, 2), 'ENDPOINT', ...columns.slice(2)] : columns;
  out.info(
    table([
      withWait ? [...header, 'NEXT ATTEMPT', 'REASON'] : header,
      ...rows.map((row) =>
        [
          String(row.id),
          row.event_type,
          ...(withEndpoint ? [row.endpoint] : []),
          row.license_code ?? (row.license_id === null ? '-' : `id ${row.license_id}`),
          row.status,
          String(row.attempts),
          row.last_status_code === null ? '-' : String(row.last_status_code),
          row.created_at,
          row.last_error ?? '',
          ...(withWait ? [row.next_attempt_at ?? '-', row.status_reason ?? ''] : []),
        ].map((cell) => clean(cell)),
      ),
    ]),
  );
  if (total > rows.length) out.info(`showing ${rows.length} of ${total} (--limit <n> for more, --all for every one)`);
}

export function printDelivery(out: Output, found: DeliveryDetails): void {
  const { delivery, attempts } = found;
  out.info(`Delivery ${delivery.id}: ${delivery.event_type} for ${clean(delivery.license_code ?? `license id ${delivery.license_id}`)}`);
  out.info(`  event id:   ${delivery.event_id}`);
  if (delivery.endpoint !== 'default') out.info(`  endpoint:   ${delivery.endpoint}`);
  out.info(`  status:     ${delivery.status}${delivery.completed_at ? ` at ${delivery.completed_at}` : ''}`);
  if (delivery.next_attempt_at) out.info(`  next attempt: ${delivery.next_attempt_at}`);
  if (delivery.status_reason) out.info(`  reason:     ${clean(delivery.status_reason)}`);
  out.info(`  recorded:   ${delivery.created_at}`);
  out.info(`  body:       ${clean(delivery.body)}`);
  if (attempts.length === 0) {
    // A delivery marked as sent by Botble's job (--mark-sent-through) says so instead.
    out.info(delivery.status === 'delivered' && delivery.last_error ? `  ${clean(delivery.last_error)}` : '  no attempts yet');
    return;
  }
  out.info(
    table([
      ['  #', 'STARTED', 'MS', 'STATUS', 'ERROR'],
      ...attempts.map((attempt) => [
        `  ${attempt.attempt}`,
        attempt.started_at,
        String(attempt.duration_ms),
        attempt.status_code === null ? '-' : String(attempt.status_code),
        clean(attempt.error ?? ''),
      ]),
    ]),
  );
}

export function printRetry(out: Output, result: RetryResult): void {
  if (result.selectedCount === 0) {
    out.info('Nothing to re-send: no abandoned deliveries match.');
    return;
  }
  // Sent again although delivered: say so, since the receiver gets an event it already acknowledged.
  const forced =
    (result.forced > 0 ? ` (${result.forced} already delivered, sent again because of --force)` : '') +
    (result.forcedSuperseded > 0 ? ` (${result.forcedSuperseded} superseded, sent anyway because of --force)` : '');
  if (result.dryRun) {
    out.info(`Would re-send ${plural(result.selectedCount, 'delivery')}${forced}:`);
    for (const item of result.selected) out.info(`  #${item.id} ${item.eventType} ${clean(item.licenseCode ?? '')}`);
    if (result.selectedCount > result.selected.length) out.info(`  ... and ${result.selectedCount - result.selected.length} more`);
    return;
  }
  out.info(
    `Re-sent ${plural(result.selectedCount, 'delivery')}${forced}: delivered ${result.delivered}, abandoned ${result.abandoned}${result.superseded ? `, superseded ${result.superseded}` : ''}${result.released ? `, left pending ${result.released}` : ''}.`,
  );
  printSuperseded(out, result.outcomes, result.superseded);
}

/** One attempt in words: the status (the body is printed once, on its own line), or what kept a response from coming. */
function attemptText(attempt: { statusCode: number | null; durationMs: number; error: string | null }): string {
  if (attempt.statusCode !== null) {
    const redirect = attempt.statusCode >= 300 && attempt.statusCode <= 399 && attempt.error ? ` (${clean(attempt.error)})` : '';
    return `HTTP ${attempt.statusCode} in ${attempt.durationMs} ms${redirect}`;
  }
  const refused = /ECONNREFUSED\s*(\S*)/.exec(attempt.error ?? '');
  if (refused) return `connection refused${refused[1] ? ` by ${refused[1]}` : ''}: nothing is listening there (is the receiver running, on this port?)`;
  return `no response after ${attempt.durationMs} ms${attempt.error ? ` (${clean(attempt.error)})` : ''}`;
}

export function printTestEvent(out: Output, result: SendTestEventResult): void {
  out.info(`POST ${result.url}`);
  for (const [name, value] of Object.entries(result.headers)) out.info(`${name}: ${clean(value)}`);
  if (!result.signed) out.info(out.paint.dim('(no secret set: no X-Webhook-Signature header)'));
  out.info('');
  out.info(clean(result.body));
  out.info('');
  for (const attempt of result.delivery.attempts) {
    out.info(`attempt ${attempt.attempt}: ${attemptText(attempt)}`);
    if (attempt.responsePrefix) out.info(`  response: ${clean(attempt.responsePrefix.slice(0, 300).replace(/\s+/g, ' ').trim())}`);
  }
  const verdict = result.delivery.status === 'delivered' ? out.paint.green('delivered') : out.paint.red(result.delivery.status);
  out.info(`${verdict} after ${plural(result.delivery.attempts.length, 'attempt')}`);
}

/** One request that `listen` received: a JSON line under --json, else the request, headers, body and verdict. */
export function printReceivedWebhook(out: Output, request: ReceivedWebhook): void {
  const { stdout } = out.io;
  if (out.options.json) {
    const line = {
      event: request.headers['x-webhook-event'] ?? null,
      id: request.headers['x-webhook-id'] ?? null,
      headers: request.headers,
      body: request.body.toString('utf8'),
      signature: request.verification?.verdict ?? 'not checked',
      ...(request.verification?.valid && (request.secrets !== undefined || request.verification.scheme === 'standard')
        ? { scheme: request.verification.scheme, secret: request.verification.secret }
        : {}),
      status: request.status,
    };
    stdout.write(`${JSON.stringify(line)}\n`);
    return;
  }
  const event = clean(String(request.headers['x-webhook-event'] ?? '(no X-Webhook-Event)'));
  const verdict = request.refused
    ? out.paint.red(`refused: ${request.refused}`)
    : !request.verification
      ? out.paint.yellow('signature not checked (no secret: pass --secret)')
      : request.verification.valid
        ? out.paint.green(
            request.secrets !== undefined || request.verification.scheme === 'standard'
              ? `signature valid (${request.verification.scheme === 'standard' ? 'Standard Webhooks' : 'X-Webhook-Signature'}, secret ${request.verification.secret})`
              : 'signature valid',
          )
        : out.paint.red(`signature INVALID: ${request.verification.explanation}`);
  const test = request.headers['x-webhook-test'] === 'true' ? '  (test event)' : '';
  stdout.write(
    `\n${out.paint.bold(clean(`${request.method} ${request.url}`))}  ${event}${test}  id ${clean(String(request.headers['x-webhook-id'] ?? '-'))}  answered ${request.status}\n`,
  );
  for (const [name, value] of Object.entries(request.headers)) stdout.write(`  ${name}: ${clean(String(value))}\n`);
  let pretty = request.body.toString('utf8');
  try {
    pretty = JSON.stringify(JSON.parse(pretty), null, 2);
  } catch {
    // not JSON: show it as it came
  }
  stdout.write(`${clean(pretty, true)}\n${verdict}\n`);
}

/** `status`: one screen an operator reads top to bottom; the verdict last, coloured, with what to do. */
/** A wait in whole units: 45 s, 12 min, 5 h 3 min, 2 d 4 h. */
function ageText(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
  return `${Math.floor(seconds / 86_400)} d ${Math.floor((seconds % 86_400) / 3600)} h`;
}

export function printStatus(out: Output, result: StatusResult): void {
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
  printMonitoring(out, result.monitoring);
  out.info('');
  const { health } = result;
  const verdict = health.exitCode === 0 ? out.paint.green('OK') : health.exitCode === 3 ? out.paint.yellow('ATTENTION') : out.paint.red('FAILING');
  out.info(`${verdict}: ${health.reason} (exit ${health.exitCode})`);
}

/** The heartbeat and the metrics file, when either is set or a ping was sent: what the last run's pings came to. */
function printMonitoring(out: Output, monitoring: StatusResult['monitoring']): void {
  const { ping, lastPing, textfile } = monitoring;
  if (!ping && !lastPing && !textfile) return;
  const described = (result: LastPing['start']) => {
    if (!result) return '-';
    const how = result.ok ? out.paint.green(`ok (HTTP ${result.statusCode})`) : out.paint.red(`failed: ${result.error ?? 'no answer'}`);
    return `${how} at ${result.at}, ${result.attempts === 1 ? '1 attempt' : `${result.attempts} attempts`}, ${result.durationMs} ms`;
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
export function heldByGoneRunsText(held: number): string {
  return `${plural(held, 'delivery')} ${held === 1 ? 'is' : 'are'} claimed by a run that is gone (killed, or its host lost: its lease lapsed) with no worker left to take ${held === 1 ? 'it' : 'them'} over; the next process-expirations run sends ${held === 1 ? 'it' : 'them'} (run it now to send ${held === 1 ? 'it' : 'them'} at once).`;
}

/** What `status` says about licenses expired with no event (a warning: the exit code stays the job's). */
export function expiredWithoutEventText(lost: ExpiredWithoutEvent): string {
  const announce = commandLine(`process-expirations --announce-since ${lost.announceSince ?? '<date>'}`);
  return (
    `the last run (started ${lost.runStartedAt}) marked ${plural(lost.licenses, 'license')} expired with no license.expired event (expired longer ago than lookbackDays): ` +
    `${lost.licenses === 1 ? 'its customer was' : 'their customers were'} never told. Announce them after all with "${announce}" (try it with --dry-run first).`
  );
}

const SOURCE_NAMES: Record<EndpointView['source'], string> = { default: 'default (webhooks.url)', config: 'config file', database: 'database' };

function deliveryCounts(counts: Record<string, number>): string {
  const parts = Object.entries(counts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([status, count]) => `${count} ${status}`);
  return parts.length === 0 ? '-' : parts.join(', ');
}

/** `endpoints list`: one row each, where it came from, and its deliveries by status. */
export function printEndpoints(out: Output, endpoints: readonly EndpointView[]): void {
  out.info(
    table([
      ['NAME', 'URL', 'STATE', 'EVENTS', 'SIGNING', 'SOURCE', 'DELIVERIES'],
      ...endpoints.map((endpoint) => [
        endpoint.name,
        endpoint.url === null ? out.paint.dim('(not set)') : clean(endpoint.url),
        endpoint.enabled ? 'enabled' : out.paint.yellow(endpoint.gone ? 'disabled (410 Gone)' : 'disabled'),
        endpoint.events === null ? 'all' : endpoint.events.join(','),
        endpoint.signing,
        SOURCE_NAMES[endpoint.source],
        deliveryCounts(endpoint.deliveries),
      ]),
    ]),
  );
}

/** `endpoints show` and the result of `add` / `update`: every field, secrets and header values masked. */
export function printEndpoint(out: Output, endpoint: EndpointView): void {
  const lines: Array<[string, string]> = [
    ['name', endpoint.name],
    ['url', endpoint.url === null ? '(not set)' : clean(endpoint.url)],
    [
      'state',
      endpoint.gone
        ? `disabled: ${clean(endpoint.gone.reason)}; its deliveries are parked until "${commandLine(`endpoints enable ${endpoint.name}`)}"`
        : endpoint.enabled
          ? 'enabled'
          : 'disabled (its deliveries are parked)',
    ],
    ['events', endpoint.events === null ? 'all' : endpoint.events.join(', ')],
    ['signing', endpoint.signing],
    ['secret', endpoint.secret ?? '(none: requests are unsigned)'],
    ...endpoint.previousSecrets.map((entry): [string, string] => ['old secret', `******** valid until ${entry.validUntil}`]),
    ...Object.entries(endpoint.headers).map(([name, value]): [string, string] => ['header', `${clean(name)}: ${value}`]),
    ['max in flight', endpoint.maxInFlight === null ? "(the run's concurrency)" : String(endpoint.maxInFlight)],
    ['source', SOURCE_NAMES[endpoint.source]],
    ['deliveries', deliveryCounts(endpoint.deliveries)],
  ];
  for (const [label, value] of lines) out.info(`${`${label}:`.padEnd(15)}${value}`);
}

/** `deliveries stats`: one block per endpoint, the error classes that occurred, and what still waits. */
export function printDeliveriesStats(out: Output, stats: DeliveriesStatsResult): void {
  out.info(`Deliveries by endpoint, attempts ${stats.since ? `since ${stats.since}` : 'of all time'} (state as of ${stats.now}):`);
  if (stats.endpoints.length === 0) out.info('  no endpoint and no delivery yet');
  const ms = (value: number | null) => (value === null ? '-' : `${value} ms`);
  const age = (seconds: number | null) =>
    seconds === null
      ? 'none'
      : seconds < 120
        ? `${seconds} s`
        : seconds < 7200
          ? `${Math.floor(seconds / 60)} min`
          : seconds < 172_800
            ? `${Math.floor(seconds / 3600)} h`
            : `${Math.floor(seconds / 86_400)} days`;
  for (const endpoint of stats.endpoints) {
    const errors = Object.entries(endpoint.errors)
      .filter(([, count]) => count > 0)
      .map(([name, count]) => `${name.replace(/_/g, ' ')} ${count}`);
    const rate = endpoint.successRate === null ? '-' : `${(endpoint.successRate * 100).toFixed(1)}%`;
    const failing = endpoint.consecutiveFailures > 0 ? out.paint.red(`${endpoint.consecutiveFailures} failed attempts since`) : 'no failure since';
    const waiting = endpoint.deliveries;
    out.info('');
    out.info(
      table([
        [`  ${endpoint.endpoint}`, ''],
        ['    attempts', `${endpoint.attempts} (${endpoint.succeeded} succeeded, ${rate})`],
        ['    response time', `median ${ms(endpoint.responseMs.median)}, 95th percentile ${ms(endpoint.responseMs.p95)}`],
        ['    errors', errors.length === 0 ? 'none' : errors.join(', ')],
        [
          '    last success',
          endpoint.lastSuccessAt === null
            ? endpoint.attempts > 0 || endpoint.consecutiveFailures > 0
              ? out.paint.red('never')
              : 'never (no attempt yet)'
            : `${endpoint.lastSuccessAt}, ${failing}`,
        ],
        [
          '    deliveries',
          `${waiting.delivered} delivered, ${waiting.pending} pending, ${waiting.deferred} deferred, ${waiting.parked} parked, ${waiting.abandoned} abandoned`,
        ],
        ['    oldest waiting', age(endpoint.oldestUndeliveredAgeSeconds)],
      ]),
    );
  }
}
