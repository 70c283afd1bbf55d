import { settingAdvice } from '../config/botble-settings.js';
import type { EffectiveSetting } from '../config/settings.js';
import type { DeliveryOutcome } from '../delivery/deliver-pending.js';
import type { RetryResult } from '../commands/deliveries.js';
import type { ImportResult } from '../commands/licenses.js';
import type { PlanLine, ProcessExpirationsResult } from '../commands/process-expirations.js';
import type { ReceivedWebhook } from '../commands/listen.js';
import type { SendTestEventResult } from '../commands/send-test-event.js';
import type { AttemptRow, DeliveryListItem } from '../storage/deliveries.repository.js';
import type { LicenseRow } from '../storage/licenses.repository.js';
import { clean, type Output, table } from './output.js';

// The plural forms this file prints; a word not listed here takes an "s".
const PLURALS: Record<string, string> = { delivery: 'deliveries' };
const plural = (count: number, word: string) => `${count} ${count === 1 ? word : (PLURALS[word] ?? `${word}s`)}`;

// A receiver down for a day abandons every event: list a few, count the rest (cron mails stay readable).
const LISTED_OUTCOMES = 20;

/** Up to LISTED_OUTCOMES lines, then "… and N more" pointing at the delivery log. */
function outcomeLines(out: Output, outcomes: DeliveryOutcome[], unlisted = 0): string[] {
  const lines = outcomes.slice(0, LISTED_OUTCOMES).map((outcome) => outcomeLine(out, outcome));
  const more = Math.max(0, outcomes.length - LISTED_OUTCOMES) + unlisted;
  if (more > 0) lines.push(`  ... and ${more} more (license-manager deliveries list)`);
  return lines;
}

function outcomeLine(out: Output, outcome: DeliveryOutcome): string {
  const status =
    outcome.status === 'delivered' ? out.paint.green('delivered') : outcome.status === 'abandoned' ? out.paint.red('abandoned') : out.paint.yellow(outcome.status);
  const why = outcome.status === 'delivered' ? `HTTP ${outcome.lastStatusCode}` : clean(outcome.lastError ?? '');
  return `  #${outcome.id} ${outcome.eventType} ${status} after ${plural(outcome.attempts, 'attempt')}${why ? `: ${why}` : ''}`;
}

/** Before anything is sent: how many notices of each kind, so a settings change that produces thousands is seen. */
export function printPlan(out: Output, plan: PlanLine[], dryRun: boolean): void {
  if (out.options.json || out.options.quiet || plan.length === 0) return;
  const lines = plan.map((line) => `${line.type}${line.threshold === undefined ? '' : ` at ${plural(line.threshold, 'day')}`}: ${line.count}`);
  out.info(`${dryRun ? 'would send' : 'about to send'}: ${lines.join(', ')}`);
}

export function printProcessExpirations(out: Output, result: ProcessExpirationsResult, databaseFile: string): void {
  const counts = result.dueCounts;
  const mode = result.dryRun ? ' (dry run: nothing recorded or sent)' : '';
  out.info(`process-expirations at ${result.now} (today is ${result.today} in ${result.timeZone})${mode}`);
  out.info(`  database: ${databaseFile}`);
  out.info(
    `  due: ${counts['license.expiring']} expiring, ${counts['license.expired']} expired, ${counts['license.update_support_expired']} update support ended`,
  );
  if (result.dryRun || !result.webhooksEnabled) {
    for (const event of result.due) {
      const days = event.daysUntilExpiry === undefined ? '' : ` (${plural(event.daysUntilExpiry, 'day')} left)`;
      out.info(`  ${result.dryRun ? 'would send' : 'due'} ${event.type} for ${clean(event.licenseCode)} (id ${event.licenseId}): ${clean(String(event.date))}${days}`);
    }
  }
  if (!result.webhooksEnabled) {
    out.info(`  webhooks are disabled: nothing was recorded or sent. To enable them, ${settingAdvice(result.licenseSource, 'webhooks-enabled', 'true')}.`);
  }
  if (result.expiredWithoutEvent > 0) {
    out.info(`  ${plural(result.expiredWithoutEvent, 'license')} expired longer ago than lookbackDays and ${result.dryRun || !result.webhooksEnabled ? 'would be' : result.expiredWithoutEvent === 1 ? 'was' : 'were'} marked expired with no event`);
  }
  if (result.reactivated > 0) out.info(`  ${plural(result.reactivated, 'renewed license')} set back to active`);
  if (result.skipped > 0) out.info(`  skipped ${plural(result.skipped, 'license')} with bad data (see the warnings above)`);
  if (!result.dryRun && result.webhooksEnabled) {
    out.info(`  recorded ${plural(result.recorded, 'new event')}; marked ${plural(result.markedExpired, 'license')} expired`);
    out.info(`  delivered ${result.delivered}, abandoned ${result.abandoned}${result.released ? `, left pending ${result.released}` : ''}${result.dropped ? `, taken over by another run ${result.dropped}` : ''}`);
    for (const line of outcomeLines(out, result.deliveries.filter((outcome) => outcome.status !== 'delivered'))) out.info(line);
  }
}

export function printAbandonedToStderr(out: Output, outcomes: DeliveryOutcome[]): void {
  const abandoned = outcomes.filter((outcome) => outcome.status === 'abandoned');
  if (abandoned.length === 0) return;
  out.warn(`${plural(abandoned.length, 'delivery')} abandoned (see "license-manager deliveries list --status abandoned"; re-send with "deliveries retry --abandoned"):`);
  for (const line of outcomeLines(out, abandoned)) out.io.stderr.write(`${line}\n`);
}

export function printSettings(out: Output, settings: EffectiveSetting[]): void {
  out.info(
    table([
      ['KEY', 'VALUE', 'SOURCE'],
      ...settings.map((setting) => [
        setting.key,
        setting.value === null ? out.paint.dim('(not set)') : clean(setting.value),
        setting.origin ? `${setting.source} (${setting.origin})` : setting.source,
      ]),
    ]),
  );
}

export function printLicenses(out: Output, rows: LicenseRow[]): void {
  if (rows.length === 0) {
    out.info('No licenses match. Load some with "license-manager licenses import <file>".');
    return;
  }
  out.info(
    table([
      ['ID', 'CODE', 'STATUS', 'EXPIRES', 'UPDATES UNTIL', 'PRODUCT', 'EMAIL'],
      ...rows.map((row) =>
        [String(row.id), row.license_code, row.status, row.expires_at ?? 'lifetime', row.updates_until ?? '-', row.product_name ?? row.product_id ?? '-', row.email ?? '-'].map(
          (cell) => clean(cell),
        ),
      ),
    ]),
  );
}

export function printImport(out: Output, result: ImportResult): void {
  // An empty export is usually a mistake upstream: cron should mail it.
  if (result.rows === 0) out.warn(`${result.file} holds no license rows (an empty file, or a header only): nothing was imported.`);
  out.info(`Imported ${plural(result.rows, 'license')} from ${clean(result.file)} (${result.format}): ${result.inserted} new, ${result.updated} updated.`);
}

export function printDeliveries(out: Output, rows: DeliveryListItem[]): void {
  if (rows.length === 0) {
    out.info('No deliveries match.');
    return;
  }
  out.info(
    table([
      ['ID', 'EVENT', 'LICENSE', 'STATUS', 'ATTEMPTS', 'LAST', 'CREATED', 'ERROR'],
      ...rows.map((row) =>
        [
          String(row.id),
          row.event_type,
          row.license_code ?? (row.license_id === null ? '-' : `id ${row.license_id}`),
          row.status,
          String(row.attempts),
          row.last_status_code === null ? '-' : String(row.last_status_code),
          row.created_at,
          row.last_error ?? '',
        ].map((cell) => clean(cell)),
      ),
    ]),
  );
}

export function printDelivery(out: Output, found: { delivery: DeliveryListItem; attempts: AttemptRow[] }): void {
  const { delivery, attempts } = found;
  out.info(`Delivery ${delivery.id}: ${delivery.event_type} for ${clean(delivery.license_code ?? `license id ${delivery.license_id}`)}`);
  out.info(`  event id:   ${delivery.event_id}`);
  out.info(`  status:     ${delivery.status}${delivery.completed_at ? ` at ${delivery.completed_at}` : ''}`);
  out.info(`  recorded:   ${delivery.created_at}`);
  out.info(`  body:       ${clean(delivery.body)}`);
  if (attempts.length === 0) {
    out.info('  no attempts yet');
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
  if (result.dryRun) {
    out.info(`Would re-send ${plural(result.selectedCount, 'delivery')}:`);
    for (const item of result.selected) out.info(`  #${item.id} ${item.eventType} ${clean(item.licenseCode ?? '')}`);
    if (result.selectedCount > result.selected.length) out.info(`  ... and ${result.selectedCount - result.selected.length} more`);
    return;
  }
  out.info(`Re-sent ${plural(result.selectedCount, 'delivery')}: delivered ${result.delivered}, abandoned ${result.abandoned}.`);
  for (const line of outcomeLines(out, result.outcomes, result.unlisted)) out.info(line);
}

export function printTestEvent(out: Output, result: SendTestEventResult): void {
  out.info(`POST ${result.url}`);
  for (const [name, value] of Object.entries(result.headers)) out.info(`${name}: ${clean(value)}`);
  if (!result.signed) out.info(out.paint.dim('(no secret set: no X-Webhook-Signature header)'));
  out.info('');
  out.info(clean(result.body));
  out.info('');
  for (const attempt of result.delivery.attempts) {
    const status = attempt.statusCode === null ? 'no response' : `HTTP ${attempt.statusCode}`;
    out.info(`attempt ${attempt.attempt}: ${status} in ${attempt.durationMs} ms${attempt.error ? ` (${clean(attempt.error)})` : ''}`);
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
      ? out.paint.green('signature valid')
      : out.paint.red(`signature INVALID: ${request.verification.explanation}`);
  stdout.write(`\n${out.paint.bold(clean(`${request.method} ${request.url}`))}  ${event}  id ${clean(String(request.headers['x-webhook-id'] ?? '-'))}  answered ${request.status}\n`);
  for (const [name, value] of Object.entries(request.headers)) stdout.write(`  ${name}: ${clean(String(value))}\n`);
  let pretty = request.body.toString('utf8');
  try {
    pretty = JSON.stringify(JSON.parse(pretty), null, 2);
  } catch {
    // not JSON: show it as it came
  }
  stdout.write(`${clean(pretty, true)}\n${verdict}\n`);
}
