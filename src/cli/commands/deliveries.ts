// `deliveries list|show|retry|stats`: the delivery log, re-sending, and statistics per endpoint.
import { Option, type Command } from 'commander';
import type { DeliveriesListResult, DeliveryDetails, DeliveryStatus, RetryResult } from '../../commands/deliveries.js';
import type { DeliveriesStatsResult } from '../../commands/deliveries-stats.js';
import { runOutcome } from '../../run-outcome.js';
import { plural } from '../../plural.js';
import { deliveryProgress, leaseFromEnv, NOTICE_TYPES, type CommandKit } from '../command-kit.js';
import { printAbandoned, printSuperseded, printWaiting } from '../format.js';
import { examples } from '../help.js';
import { deliveryIds, isoDate, pastDuration, wholeNumber } from '../options.js';
import type { Output } from '../output.js';
import { clean, table } from '../text.js';

const DELIVERY_STATUSES: readonly DeliveryStatus[] = ['pending', 'delivering', 'delivered', 'deferred', 'parked', 'superseded', 'abandoned'];
// Rows shown by `deliveries list` when no --limit is given.
const DEFAULT_LIST_LIMIT = 50;
const MAX_LIMIT = 1_000_000_000;

export function registerDeliveries(program: Command, kit: CommandKit): void {
  const { io, stop, clock, withDatabase, announceStop } = kit;
  const deliveries = program
    .command('deliveries')
    .description('the delivery log, re-sending, and statistics per endpoint')
    .addHelpText(
      'after',
      examples(
        'license-manager deliveries list --status abandoned',
        'license-manager deliveries show 42',
        'license-manager deliveries retry --abandoned --dry-run',
        'license-manager deliveries stats --since 24h',
      ),
    );
  deliveries
    .command('list')
    .description('deliveries, newest first')
    .addHelpText(
      'after',
      examples(
        'license-manager deliveries list --status abandoned',
        'license-manager deliveries list --status deferred   # waiting for a later run: next attempt and reason',
        'license-manager deliveries list --license LIC-0003 --since 2025-01-01',
      ),
    )
    .addOption(
      new Option('--status <status>', 'only this status (deferred: waits for a later run; parked: its endpoint is disabled)').choices(DELIVERY_STATUSES),
    )
    .addOption(new Option('--event <type>', 'only this event type').choices(NOTICE_TYPES))
    .option('--license <code>', 'only this license')
    .option('--endpoint <name>', 'only deliveries to this endpoint (see "endpoints list")')
    .addOption(new Option('--since <iso>', 'only deliveries recorded at or after this time').argParser(isoDate))
    .addOption(
      new Option('--limit <n>', `at most this many (default ${DEFAULT_LIST_LIMIT} in text; every row with --json)`).argParser(wholeNumber(1, MAX_LIMIT)),
    )
    .addOption(new Option('--all', 'every matching row').conflicts('limit'))
    .action(
      (
        options: {
          status?: DeliveryStatus;
          event?: (typeof NOTICE_TYPES)[number];
          license?: string;
          endpoint?: string;
          since?: Date;
          limit?: number;
          all?: boolean;
        },
        command: Command,
      ) =>
        withDatabase(command, async (context, out) => {
          const { deliveriesList } = await import('../../commands/deliveries.js');
          // A script reading --json gets every row unless it asks for fewer; a terminal gets a screenful and is told so.
          const limit = options.all ? undefined : (options.limit ?? (out.options.json ? undefined : DEFAULT_LIST_LIMIT));
          const list = await deliveriesList(context, {
            status: options.status,
            eventType: options.event,
            licenseCode: options.license,
            endpoint: options.endpoint,
            since: options.since,
            limit,
            clock,
          });
          if (out.options.json) out.json(list.rows);
          else printDeliveries(out, list);
        }),
    );
  deliveries
    .command('show')
    .description('the body sent and every attempt of one delivery')
    .argument('<id>', 'delivery id', (text: string) => deliveryIds(text)[0]!)
    .addHelpText('after', examples('license-manager deliveries show 42'))
    .action((id: number, _options: unknown, command: Command) =>
      withDatabase(command, async (context, out) => {
        const { deliveriesShow } = await import('../../commands/deliveries.js');
        const found = await deliveriesShow(context, id);
        if (out.options.json) out.json(found);
        else printDelivery(out, found);
      }),
    );
  deliveries
    .command('retry')
    .description(
      're-send abandoned deliveries, deferred ones now (by id), or delivered and superseded ones with --force (same event id and body, current URL and secret, full retry policy); each license is read again first, and a notice it contradicts now is superseded, not sent',
    )
    .argument('[ids...]', 'delivery ids', deliveryIds)
    .option(
      '--abandoned',
      'every abandoned delivery whose endpoint can be sent to (those of an endpoint no longer defined or disabled are skipped, each endpoint named)',
    )
    .option('--endpoint <name>', 'with --abandoned: only those to this endpoint')
    .option(
      '--force',
      'with ids: re-send delivered ones too (a receiver that answered 2xx and lost the event), and superseded ones, without reading their licenses again',
    )
    .addOption(new Option('--since <iso>', 'with --abandoned: only those recorded at or after this time').argParser(isoDate))
    .option('--dry-run', 'show what would be re-sent')
    .addHelpText(
      'after',
      examples(
        'license-manager deliveries retry 41 42',
        'license-manager deliveries retry 57   # a deferred one: now, not at its next attempt time',
        'license-manager deliveries retry --abandoned --since 2025-01-14 --dry-run',
        'license-manager deliveries retry 17 --force   # delivered, but lost by the receiver',
        'license-manager deliveries retry 23 --force   # superseded (see "deliveries show 23"), to be sent anyway',
      ),
    )
    .action(
      (ids: number[] | undefined, options: { abandoned?: boolean; endpoint?: string; force?: boolean; since?: Date; dryRun?: boolean }, command: Command) =>
        withDatabase(command, async (context, out) => {
          const { deliveriesRetry, skippedEndpointMessage } = await import('../../commands/deliveries.js');
          const progress = deliveryProgress(out, 're-sending');
          const stopAnnounced = announceStop(out);
          const result = await deliveriesRetry(context, {
            ids: ids ?? [],
            ...options,
            leaseMs: leaseFromEnv(io.env),
            stop,
            clock,
            onProgress: progress.onProgress,
            onWarning: (text) => out.warn(text),
          }).finally(() => {
            progress.end();
            stopAnnounced();
          });
          if (out.options.json) out.json(result);
          else printRetry(out, result);
          for (const skipped of result.skippedEndpoints) out.warn(skippedEndpointMessage(skipped));
          printAbandoned(out, result.abandonedDeliveries, result.abandoned);
          // What this re-send deferred or parked (its receiver still fails), said as a run says it.
          if (result.deferred + result.parked > 0) printWaiting(out, result);
          if (stop.aborted)
            out.warn(
              `stopped early: left ${plural(result.left, 'delivery')} to re-send (run the same retry again; released ones go out with the next process-expirations).`,
            );
          return runOutcome({ abandoned: result.abandoned, waiting: result.deferred + result.parked, stopped: stop.aborted }).exitCode;
        }),
    );

  deliveries
    .command('stats')
    .description(
      'per endpoint: success rate, attempts, median and 95th percentile response time, error classes, last success, consecutive failures, what still waits',
    )
    .addOption(
      new Option('--since <duration>', 'only attempts of the last 30m, 24h, 7d or 4w count towards rates, times and errors (default: all)').argParser(
        pastDuration,
      ),
    )
    .option('--endpoint <name>', 'only this endpoint (see "endpoints list")')
    .addHelpText(
      'after',
      examples(
        'license-manager deliveries stats',
        'license-manager deliveries stats --since 24h --endpoint crm',
        'license-manager deliveries stats --since 7d --json',
      ),
    )
    .action((options: { since?: number; endpoint?: string }, command: Command) =>
      withDatabase(command, async (context, out) => {
        const { deliveriesStats } = await import('../../commands/deliveries-stats.js');
        const now = clock.now();
        const stats = await deliveriesStats(context, {
          now,
          endpoint: options.endpoint,
          since: options.since === undefined ? undefined : new Date(now.getTime() - options.since),
        });
        if (out.options.json) out.json(stats);
        else printDeliveriesStats(out, stats);
      }),
    );
}

function printDeliveries(out: Output, list: DeliveriesListResult): void {
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

function printDelivery(out: Output, found: DeliveryDetails): void {
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

function printRetry(out: Output, result: RetryResult): void {
  if (result.selectedCount === 0) {
    out.info('Nothing to re-send: no abandoned deliveries match.');
    return;
  }
  // Sent again although delivered: say so, since the receiver gets an event it already acknowledged.
  const forced =
    (result.forced > 0 ? ` (${result.forced} already delivered, sent again because of --force)` : '') +
    (result.forcedSuperseded > 0 ? ` (${result.forcedSuperseded} superseded, sent anyway because of --force)` : '');
  if (result.dryRun) {
    const superseding = new Map(result.wouldSupersede.map((entry) => [entry.id, entry.reason]));
    const sent = superseding.size > 0 ? ` (${superseding.size} of them would be superseded instead, not sent: their license now contradicts them)` : '';
    out.info(`Would re-send ${plural(result.selectedCount, 'delivery')}${forced}${sent}:`);
    for (const item of result.selected) {
      const reason = superseding.get(item.id);
      out.info(`  #${item.id} ${item.eventType} ${clean(item.licenseCode ?? '')}${reason === undefined ? '' : ` (would be superseded: ${clean(reason)})`}`);
    }
    if (result.selectedCount > result.selected.length) out.info(`  ... and ${result.selectedCount - result.selected.length} more`);
    return;
  }
  out.info(
    `Re-sent ${plural(result.selectedCount, 'delivery')}${forced}: delivered ${result.delivered}, abandoned ${result.abandoned}${result.superseded ? `, superseded ${result.superseded}` : ''}${result.released ? `, left pending ${result.released}` : ''}.`,
  );
  printSuperseded(out, result.outcomes, result.superseded);
}

/** `deliveries stats`: one block per endpoint, the error classes that occurred, and what still waits. */
function printDeliveriesStats(out: Output, stats: DeliveriesStatsResult): void {
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
    const failing = endpoint.consecutiveFailures > 0 ? out.paint.red(`${plural(endpoint.consecutiveFailures, 'failed attempt')} since`) : 'no failure since';
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
          `${waiting.delivered} delivered, ${waiting.pending} pending, ${waiting.deferred} deferred, ${waiting.parked} parked, ${waiting.abandoned} abandoned, ${waiting.superseded} superseded`,
        ],
        ['    oldest waiting', age(endpoint.oldestUndeliveredAgeSeconds)],
      ]),
    );
  }
}
