// `endpoints list|show|add|update|enable|disable|remove|rotate-secret`: the receivers beside default.
import { Option, type Command } from 'commander';
import { commandLine } from '../../command-line.js';
import type { EndpointView, RotateSecretResult } from '../../commands/endpoints.js';
import { usageError } from '../../errors.js';
import { ENDPOINT_EVENT_TYPES } from '../../webhooks/endpoint-spec.js';
import type { CommandKit } from '../command-kit.js';
import { examples } from '../help.js';
import { endpointEvents, endpointHeader, endpointMaxInFlight, endpointSigning, keepPrevious } from '../options.js';
import type { Output } from '../output.js';
import { clean, table } from '../text.js';

export function registerEndpoints(program: Command, kit: CommandKit): void {
  const { clock, withDatabase } = kit;
  const endpoints = program
    .command('endpoints')
    .description('the receivers beside default (webhooks.url/secret): list, add, change, enable, disable, remove, rotate their secret')
    .addHelpText(
      'after',
      examples(
        'license-manager endpoints list',
        'license-manager endpoints add crm --url https://crm.example.com/hooks --secret s3cret --events license.expired',
      ),
    );
  endpoints
    .command('list')
    .description('every endpoint, where it is defined (default, config file or database) and its deliveries by status')
    .addHelpText('after', examples('license-manager endpoints list', 'license-manager endpoints list --json'))
    .action((_options: unknown, command: Command) =>
      withDatabase(command, async (context, out) => {
        const { endpointsList } = await import('../../commands/endpoints.js');
        const list = await endpointsList(context, clock.now());
        if (out.options.json) out.json(list);
        else printEndpoints(out, list, await defaultSource(context));
      }),
    );
  endpoints
    .command('show <name>')
    .description('one endpoint: every field (secrets and header values masked) and its deliveries by status')
    .addHelpText('after', examples('license-manager endpoints show crm'))
    .action((name: string, _options: unknown, command: Command) =>
      withDatabase(command, async (context, out) => {
        const { endpointsShow } = await import('../../commands/endpoints.js');
        const endpoint = await endpointsShow(context, name, clock.now());
        if (out.options.json) out.json(endpoint);
        else printEndpoint(out, endpoint, await defaultSource(context));
      }),
    );
  interface EndpointFlags {
    url?: string;
    secret?: string | false;
    events?: string[];
    allEvents?: boolean;
    header?: Record<string, string>;
    headers?: false;
    maxInFlight?: number;
    signing?: string;
    disabled?: boolean;
  }
  const endpointInput = (flags: EndpointFlags) => ({
    url: flags.url,
    secret: flags.secret === false ? null : flags.secret,
    events: flags.allEvents ? null : flags.events,
    headers: flags.headers === false ? {} : flags.header,
    maxInFlight: flags.maxInFlight,
    signing: flags.signing,
    ...(flags.disabled ? { enabled: false } : {}),
  });
  const endpointFields = (command: Command) =>
    command
      .option('--url <url>', 'where its events are POSTed (http: or https:)')
      .option('--secret <secret>', 'its HMAC key; a whsec_<base64> secret is decoded for Standard Webhooks')
      .addOption(
        new Option('--events <types>', `the event types it takes, comma-separated (${ENDPOINT_EVENT_TYPES.join(', ')}); every type when left out`).argParser(
          endpointEvents,
        ),
      )
      .addOption(new Option('--header <"Name: value">', 'an extra request header (repeatable), e.g. a gateway API key').argParser(endpointHeader))
      .addOption(new Option('--max-in-flight <n>', "attempts in flight at once to it (the run's concurrency when left out)").argParser(endpointMaxInFlight))
      .addOption(new Option('--signing <scheme>', 'botble (X-Webhook-Signature, default), standard (Standard Webhooks) or both').argParser(endpointSigning));
  endpointFields(endpoints.command('add <name>').description('add an endpoint (stored in the database); it receives the events recorded from now on'))
    .option('--disabled', 'add it disabled: its deliveries are parked until "endpoints enable"')
    .addHelpText(
      'after',
      examples(
        'license-manager endpoints add crm --url https://crm.example.com/hooks --secret s3cret --events license.expired',
        'license-manager endpoints add chat --url https://chat.example.com/in/abc --signing standard --secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw --header "X-Api-Key: k-123"',
      ),
    )
    .action((name: string, flags: EndpointFlags, command: Command) =>
      withDatabase(command, async (context, out) => {
        const { endpointsAdd } = await import('../../commands/endpoints.js');
        const change = await endpointsAdd(context, name, endpointInput(flags), clock.now());
        if (out.options.json) out.json(change.endpoint);
        else {
          out.info(`Added endpoint ${name}; it receives the events recorded from now on.`);
          if (change.superseded)
            out.info(
              `${change.superseded} undelivered ${change.superseded === 1 ? 'delivery' : 'deliveries'} recorded for an earlier endpoint named ${name} superseded, never sent to this one.`,
            );
          printEndpoint(out, change.endpoint);
        }
      }),
    );
  // --secret and --no-secret share one attribute (the last one given wins), so which were given is told by their events.
  const secretFlags = new Set<string>();
  endpointFields(
    endpoints
      .command('update <name>')
      .description('change a stored endpoint (the fields given; a new --secret replaces the old one at once, see rotate-secret)'),
  )
    .option('--no-secret', 'remove its secret (requests go unsigned)')
    .on('option:secret', () => secretFlags.add('--secret'))
    .on('option:no-secret', () => secretFlags.add('--no-secret'))
    .option('--all-events', 'take every event type again')
    .option('--no-headers', 'remove its extra headers (--header replaces them all)')
    .addHelpText(
      'after',
      examples(
        'license-manager endpoints update crm --events license.expired,license.expiring',
        'license-manager endpoints update crm --header "X-Api-Key: new-key"',
      ),
    )
    .action((name: string, flags: EndpointFlags, command: Command) =>
      withDatabase(command, async (context, out) => {
        const { endpointsUpdate } = await import('../../commands/endpoints.js');
        if (flags.events && flags.allEvents) throw usageError('Give --events or --all-events, not both.');
        if (flags.header && flags.headers === false) throw usageError('Give --header or --no-headers, not both.');
        if (secretFlags.size === 2) throw usageError('Give --secret or --no-secret, not both.');
        const change = await endpointsUpdate(context, name, endpointInput(flags), clock.now());
        if (out.options.json) out.json(change.endpoint);
        else {
          out.info(`Updated endpoint ${name}.`);
          printEndpoint(out, change.endpoint);
        }
      }),
    );
  endpoints
    .command('enable <name>')
    .description('enable an endpoint: its parked deliveries go out with the next run')
    .option('--discard-parked', 'end its parked deliveries unsent instead (superseded, with the reason; says how many)')
    .addHelpText('after', examples('license-manager endpoints enable crm', 'license-manager endpoints enable crm --discard-parked'))
    .action((name: string, flags: { discardParked?: boolean }, command: Command) =>
      withDatabase(command, async (context, out) => {
        const { endpointsSetEnabled } = await import('../../commands/endpoints.js');
        const result = await endpointsSetEnabled(context, name, true, clock.now(), flags);
        if (out.options.json) out.json(result);
        else {
          out.info(`Enabled endpoint ${name}.`);
          if (result.discarded > 0)
            out.info(`Discarded ${result.discarded} parked ${result.discarded === 1 ? 'delivery' : 'deliveries'}: superseded, not sent again.`);
          if (result.parked > 0)
            out.info(
              `${result.parked} parked ${result.parked === 1 ? 'delivery' : 'deliveries'} go${result.parked === 1 ? 'es' : ''} out with the next process-expirations.`,
            );
        }
      }),
    );
  endpoints
    .command('disable <name>')
    .description('disable an endpoint: its deliveries are parked (kept, not sent) until it is enabled again')
    .addHelpText('after', examples('license-manager endpoints disable crm'))
    .action((name: string, _options: unknown, command: Command) =>
      withDatabase(command, async (context, out) => {
        const { endpointsSetEnabled } = await import('../../commands/endpoints.js');
        const result = await endpointsSetEnabled(context, name, false, clock.now());
        if (out.options.json) out.json(result);
        else
          out.info(
            `Disabled endpoint ${name}${result.parked > 0 ? `; ${result.parked} undelivered ${result.parked === 1 ? 'delivery' : 'deliveries'} parked` : ''}${result.held > 0 ? `; ${result.held} held by a running process-expirations ${result.held === 1 ? 'is' : 'are'} parked by it before its next attempt (attempts in flight end)` : ''}.`,
          );
      }),
    );
  endpoints
    .command('remove <name>')
    .description(
      'remove a stored endpoint; with undelivered deliveries only with --force (they end unsent, as superseded; every delivery stays in the log). For an endpoint taken out of the config file, --force ends what it left parked or abandoned',
    )
    .option('--force', 'remove it even though its undelivered deliveries then end unsent')
    .addHelpText('after', examples('license-manager endpoints remove crm', 'license-manager endpoints remove crm --force'))
    .action((name: string, flags: { force?: boolean }, command: Command) =>
      withDatabase(command, async (context, out) => {
        const { endpointsRemove } = await import('../../commands/endpoints.js');
        const result = await endpointsRemove(context, name, clock.now(), flags);
        if (out.options.json) out.json(result);
        else
          out.info(
            `${result.defined ? `Removed endpoint ${name}` : `Endpoint ${name} is no longer defined`}${result.dropped > 0 ? `; ${result.dropped} undelivered ${result.dropped === 1 ? 'delivery' : 'deliveries'} superseded, not sent again` : ''}${result.sending > 0 ? `; ${result.sending} held by a running process-expirations ${result.sending === 1 ? 'is' : 'are'} ended unsent by it before its next attempt (attempts in flight end)` : ''}.`,
          );
      }),
    );
  endpoints
    .command('rotate-secret <name>')
    .description(
      'make a new secret current (generated from 32 random bytes unless given; printed once); the old one stays valid in webhook-signature for --keep-previous. X-Webhook-Signature is made with the new one at once: with botble signing, put the secret on the receiver first and give it with --secret, or disable the endpoint while you switch',
    )
    .option('--secret <secret>', 'the new secret (generated when left out)')
    .addOption(
      new Option(
        '--keep-previous <duration>',
        'how long the old secret stays valid: 24h (default), 90m, 7d, 3600s; 0 revokes every earlier secret at once',
      ).argParser(keepPrevious),
    )
    .addHelpText(
      'after',
      examples(
        'license-manager endpoints rotate-secret crm',
        'license-manager endpoints rotate-secret crm --keep-previous 0   # a leaked secret',
        'license-manager endpoints rotate-secret crm --secret "$NEW"     # botble signing: a secret the receiver has already',
      ),
    )
    .action((name: string, flags: { secret?: string; keepPrevious?: number }, command: Command) =>
      withDatabase(command, async (context, out) => {
        const { endpointsRotateSecret } = await import('../../commands/endpoints.js');
        const result = await endpointsRotateSecret(context, name, clock.now(), {
          secret: flags.secret,
          keepPreviousMs: flags.keepPrevious,
        });
        if (out.options.json) out.json(result);
        else {
          out.result(result.secret);
          out.info(rotatedMessage(result));
        }
        // Deliveries are rejected (a 401 abandons them) until the receiver has a secret it could not have had: said
        // on stderr, even with --json or --quiet, with the ways that lose nothing.
        if (result.signing === 'botble' && result.enabled && !flags.secret && result.previousValidUntil !== null)
          out.warn(
            `${name} signs with X-Webhook-Signature only (signing: botble): from the next delivery on it carries the new secret alone, and the receiver rejects every delivery until it has it (abandoned: re-send them with "${commandLine(`deliveries retry --abandoned --endpoint ${name}`)}" once it has). Without that gap: put a new secret on the receiver first and give it with "${commandLine(`endpoints rotate-secret ${name} --secret <that secret>`)}", or "${commandLine(`endpoints disable ${name}`)}" while you switch (its deliveries wait, parked) and enable it after.`,
          );
      }),
    );
}

/** What the old secret still signs after `rotate-secret`, per signing scheme: the contract keeps X-Webhook-Signature to one value, made with the new secret. */
function rotatedMessage(result: RotateSecretResult): string {
  const { name, signing, previousValidUntil } = result;
  const lines = [`This is the new secret of ${name}, shown once.`];
  if (previousValidUntil === null) {
    lines.push(
      'Every earlier secret is revoked now: from the next delivery on every signature is made with the new one only, and the receiver rejects deliveries until it has it.',
    );
  } else {
    if (signing !== 'botble')
      lines.push(`webhook-signature carries a signature made with the old one too until ${previousValidUntil}: update the receiver before then.`);
    if (signing === 'both') {
      lines.push(
        'X-Webhook-Signature is made with the new one only, from the next delivery on: a receiver that checks it rejects every delivery until it has the new secret.',
      );
    }
    if (signing === 'botble') {
      lines.push(
        'X-Webhook-Signature is made with the new one only, from the next delivery on (signing: botble, no overlap): until the receiver has it, it rejects every delivery.',
      );
    }
  }
  if (!result.enabled)
    lines.push(`${name} is disabled, so its deliveries stay parked: put the new secret on the receiver, then "${commandLine(`endpoints enable ${name}`)}".`);
  return lines.join('\n');
}

const SOURCE_NAMES: Record<EndpointView['source'], string> = { default: 'default (webhooks.url)', config: 'config file', database: 'database' };

/** Where default's URL comes from, as `status` and `settings list` say it: `default (settings)`, `default (config <file>)`, … */
async function defaultSource(context: Parameters<typeof import('../../commands/webhook-target.js').webhookTarget>[0]): Promise<string> {
  const { webhookTarget } = await import('../../commands/webhook-target.js');
  return `default (webhook-url from ${webhookTarget(context).urlSource})`;
}

function deliveryCounts(counts: Record<string, number>): string {
  const parts = Object.entries(counts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([status, count]) => `${count} ${status}`);
  return parts.length === 0 ? '-' : parts.join(', ');
}

/** `endpoints list`: one row each, where it came from, and its deliveries by status. */
function printEndpoints(out: Output, endpoints: readonly EndpointView[], defaultFrom = SOURCE_NAMES.default): void {
  out.info(
    table([
      ['NAME', 'URL', 'STATE', 'EVENTS', 'SIGNING', 'SOURCE', 'DELIVERIES'],
      ...endpoints.map((endpoint) => [
        endpoint.name,
        endpoint.url === null ? out.paint.dim('(not set)') : clean(endpoint.url),
        endpoint.enabled ? 'enabled' : out.paint.yellow(endpoint.gone ? 'disabled (410 Gone)' : 'disabled'),
        endpoint.events === null ? 'all' : endpoint.events.join(','),
        endpoint.signing,
        endpoint.source === 'default' ? defaultFrom : SOURCE_NAMES[endpoint.source],
        deliveryCounts(endpoint.deliveries),
      ]),
    ]),
  );
}

/** `endpoints show` and the result of `add` / `update`: every field, secrets and header values masked. */
function printEndpoint(out: Output, endpoint: EndpointView, defaultFrom = SOURCE_NAMES.default): void {
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
    ['source', endpoint.source === 'default' ? defaultFrom : SOURCE_NAMES[endpoint.source]],
    ['deliveries', deliveryCounts(endpoint.deliveries)],
  ];
  for (const [label, value] of lines) out.info(`${`${label}:`.padEnd(15)}${value}`);
}
