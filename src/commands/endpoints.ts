// `endpoints list|show|add|update|enable|disable|remove|rotate-secret`: the receivers beside `default`, stored in the database.
import { resolveEndpoints, type ResolvedEndpoint } from '../config/endpoints.js';
import { maskSecret } from '../config/settings.js';
import { usageError } from '../errors.js';
import { plural } from '../plural.js';
import { leaseNowMs } from '../storage/database-time.js';
import {
  countHeld,
  countUndelivered,
  deleteEndpoint,
  deliveryCountsByEndpoint,
  heldUnder,
  insertEndpoint,
  listStoredEndpoints,
  setEndpointEnabled,
  updateEndpoint,
  type EndpointWrite,
  type StoredEndpoint,
} from '../storage/endpoints.repository.js';
import { clearEndpointState, endpointStates, GONE_REASON, type EndpointState } from '../storage/endpoint-states.repository.js';
import { OPERATOR_DISABLED_REASON, parkEndpoint, unparkEndpoint } from '../storage/deliveries/endpoint-holds.repository.js';
import { formatUtc } from '../time.js';
import {
  DEFAULT_ENDPOINT_NAME,
  endpointEventsProblem,
  endpointHeadersProblem,
  endpointNameProblem,
  endpointSecretProblem,
  maxInFlightProblem,
  signingProblem,
  SIGNING_SCHEMES,
  type SigningScheme,
} from '../webhooks/endpoint-spec.js';
import { DEFAULT_KEEP_PREVIOUS_MS, generateSecret, rotate } from '../webhooks/secret-rotation.js';
import { webhookUrlProblem } from '../webhooks/target.js';
import { maskCredentials } from '../credentials.js';
import type { CommandContext } from './context.js';
import { commandLine } from '../command-line.js';

/** An endpoint as the commands show it: secrets and header values masked, never printed. */
export interface EndpointView {
  name: string;
  url: string | null;
  enabled: boolean;
  /** null: every event type. */
  events: readonly string[] | null;
  signing: SigningScheme;
  /** Where it is defined: `default` (webhooks.url/secret, settings, environment or Botble), `config` (webhooks.endpoints) or `database`. */
  source: 'default' | 'config' | 'database';
  secret: string | null;
  /** Earlier secrets still valid, with the end of their validity. */
  previousSecrets: Array<{ validUntil: string }>;
  headers: Record<string, string>;
  maxInFlight: number | null;
  /** Delivery counts by status; `parked`: those parked while the endpoint is disabled (or still pending until the next run parks them), and those a 410 Gone parked. */
  deliveries: Record<string, number>;
  /** Set when its receiver answered 410 Gone: disabled (whatever `enabled` said) until `endpoints enable`. */
  gone: { at: string; reason: string } | null;
}

function view(
  endpoint: ResolvedEndpoint,
  stored: StoredEndpoint | undefined,
  counts: Record<string, number> | undefined,
  state: EndpointState | undefined,
  now: Date,
): EndpointView {
  const deliveries = { ...counts };
  const gone = state?.disabledAt ? { at: state.disabledAt, reason: state.disabledReason ?? GONE_REASON } : null;
  const enabled = endpoint.enabled && gone === null;
  if (!enabled && deliveries.pending) {
    deliveries.parked = (deliveries.parked ?? 0) + deliveries.pending;
    delete deliveries.pending;
  }
  return {
    name: endpoint.name,
    url: endpoint.url === null ? null : maskCredentials(endpoint.url),
    enabled,
    gone,
    events: endpoint.events,
    signing: endpoint.signing,
    source: endpoint.source,
    secret: endpoint.secrets[0] === undefined ? null : maskSecret(endpoint.secrets[0]),
    previousSecrets: (stored?.previousSecrets ?? [])
      .filter((entry) => Date.parse(entry.validUntil) > now.getTime())
      .map((entry) => ({ validUntil: entry.validUntil })),
    headers: Object.fromEntries(Object.keys(endpoint.headers).map((name) => [name, maskSecret(endpoint.headers[name]!)])),
    maxInFlight: endpoint.maxInFlight ?? null,
    deliveries,
  };
}

export async function endpointsList(context: CommandContext, now: Date): Promise<EndpointView[]> {
  const endpoints = await resolveEndpoints(context.db, context.config.webhooks, now);
  const stored = await listStoredEndpoints(context.db);
  const counts = await deliveryCountsByEndpoint(context.db);
  const states = await endpointStates(context.db);
  return endpoints.map((endpoint) =>
    view(
      endpoint,
      stored.find((entry) => entry.name === endpoint.name && endpoint.source === 'database'),
      counts[endpoint.name],
      states.get(endpoint.name),
      now,
    ),
  );
}

export async function endpointsShow(context: CommandContext, name: string, now: Date): Promise<EndpointView> {
  const found = (await endpointsList(context, now)).find((endpoint) => endpoint.name === name);
  if (!found) throw unknownEndpoint(name);
  return found;
}

function unknownEndpoint(name: string): Error {
  const problem = endpointNameProblem(name, { allowDefault: true });
  return usageError(problem ? `${problem}.` : `No endpoint named "${name}". See "${commandLine('endpoints list')}".`);
}

/** What `add` and `update` are given; undefined leaves a field as it is (update) or at its default (add). */
export interface EndpointInput {
  url?: string | undefined;
  /** null removes the secret. */
  secret?: string | null | undefined;
  /** null takes every type again. */
  events?: readonly string[] | null | undefined;
  headers?: Readonly<Record<string, string>> | undefined;
  maxInFlight?: number | null | undefined;
  signing?: string | undefined;
  enabled?: boolean;
}

/**
 * The stored endpoint `name`, refusing `default` and config-file endpoints (what the operator edits
 * elsewhere) with the place to edit them.
 */
async function editable(context: CommandContext, name: string, now: Date): Promise<StoredEndpoint> {
  if (name === DEFAULT_ENDPOINT_NAME) {
    throw usageError(
      context.licenses.kind === 'botble'
        ? 'The endpoint "default" is the webhook URL and secret of Botble\'s own settings, which this tool never writes: change them in the Botble admin (Settings → License Manager), or add another endpoint.'
        : `The endpoint "default" is webhooks.url / webhooks.secret: change it with "${commandLine('settings set webhook-url <url>')}" and "settings set webhook-secret <secret>" (or the config file).`,
    );
  }
  const endpoints = await resolveEndpoints(context.db, context.config.webhooks, now);
  const found = endpoints.find((endpoint) => endpoint.name === name);
  if (found?.source === 'config') {
    throw usageError(`The endpoint "${name}" is declared in the config file (webhooks.endpoints): change it there.`);
  }
  const stored = (await listStoredEndpoints(context.db)).find((endpoint) => endpoint.name === name);
  if (!stored) throw unknownEndpoint(name);
  return stored;
}

/** Every field checked before anything is written: the first problem is exit 2, naming the field. */
function checked(fields: EndpointWrite): EndpointWrite {
  const problems = [
    fields.url === '' ? '--url is required' : webhookUrlProblem(fields.url) && `--url ${webhookUrlProblem(fields.url)}`,
    fields.secret === null ? undefined : endpointSecretProblem(fields.secret) && `--secret ${endpointSecretProblem(fields.secret)}`,
    fields.events === null ? undefined : endpointEventsProblem(fields.events) && `--events: ${endpointEventsProblem(fields.events)}`,
    endpointHeadersProblem(fields.headers) && `--header: ${endpointHeadersProblem(fields.headers)}`,
    fields.maxInFlight === null ? undefined : maxInFlightProblem(fields.maxInFlight) && `--max-in-flight: ${maxInFlightProblem(fields.maxInFlight)}`,
    signingProblem(fields.signing) && `--signing: ${signingProblem(fields.signing)}`,
    fields.signing !== 'botble' && fields.secret === null
      ? `--signing ${fields.signing} needs a secret (--secret): Standard Webhooks receivers reject unsigned requests`
      : undefined,
  ].filter((problem): problem is string => typeof problem === 'string' && problem !== '');
  if (problems.length > 0) throw usageError(`${problems[0]}. Nothing was changed.`);
  return fields;
}

export interface EndpointChange {
  name: string;
  endpoint: EndpointView;
  /** `add`: undelivered deliveries an earlier endpoint of the name left, ended unsent (superseded). */
  superseded?: number;
  /** Printed once when the tool generated the secret (`add` without --secret takes none). */
  secret?: string;
}

export async function endpointsAdd(context: CommandContext, name: string, input: EndpointInput, now: Date): Promise<EndpointChange> {
  const problem = endpointNameProblem(name);
  if (problem) throw usageError(`${problem}. Nothing was changed.`);
  const existing = (await resolveEndpoints(context.db, context.config.webhooks, now)).find((endpoint) => endpoint.name === name);
  if (existing?.source === 'config') {
    // `endpoints update` refuses a config file's endpoint: the advice is where it can be changed.
    throw usageError(
      `An endpoint named "${name}" exists already (in the config file${context.configFile ? ` ${context.configFile}` : ''}, webhooks.endpoints): names are unique. Change it in the config file, or choose another name.`,
    );
  }
  if (existing) {
    throw usageError(
      `An endpoint named "${name}" exists already (in the database): names are unique. Change it with "${commandLine(`endpoints update ${name}`)}", or choose another name.`,
    );
  }
  const fields = checked({
    url: input.url ?? '',
    secret: input.secret ?? null,
    events: input.events ?? null,
    headers: input.headers ?? {},
    maxInFlight: input.maxInFlight ?? null,
    signing: input.signing ?? 'botble',
    enabled: input.enabled ?? true,
  });
  // Deliveries of an earlier endpoint of the name that a run still holds: that run ends them unsent when it reads
  // its switches, unless it died first, when the next run would take them over as the new endpoint's. Added once
  // their lease has run out, they are ended with the rest (below).
  // On the leases' clock: the database server's (what a run on another host wrote them with), or this host's for SQLite.
  const leaseNow = await leaseNowMs(context.db, now.getTime());
  const held = await heldUnder(context.db, name, leaseNow);
  if (held > 0) {
    throw usageError(
      `${plural(held, 'delivery')} of an earlier endpoint named "${name}" ${held === 1 ? 'is' : 'are'} held by a running process-expirations: add "${name}" again once that run has ended (or its lease of a minute has run out), so that none of ${held === 1 ? 'it' : 'them'} goes to the new endpoint. Nothing was changed.`,
    );
  }
  let superseded: number;
  try {
    superseded = await insertEndpoint(context.db, name, fields, formatUtc(now), leaseNow);
  } catch (error) {
    // Another command added the same name in between: the unique name refused it, nothing was written.
    if ((await listStoredEndpoints(context.db)).some((endpoint) => endpoint.name === name))
      throw usageError(`An endpoint named "${name}" was just added by another command: names are unique.`);
    throw error;
  }
  return { name, endpoint: await endpointsShow(context, name, now), superseded };
}

export async function endpointsUpdate(context: CommandContext, name: string, input: EndpointInput, now: Date): Promise<EndpointChange> {
  const stored = await editable(context, name, now);
  if (Object.values(input).every((value) => value === undefined)) {
    throw usageError('Say what to change: --url, --secret, --no-secret, --events, --all-events, --header, --no-headers, --max-in-flight or --signing.');
  }
  const fields = checked({
    url: input.url ?? stored.url,
    secret: input.secret === undefined ? stored.secret : input.secret,
    events: input.events === undefined ? stored.events : input.events,
    headers: input.headers === undefined ? stored.headers : input.headers,
    maxInFlight: input.maxInFlight === undefined ? stored.maxInFlight : input.maxInFlight,
    signing: input.signing ?? stored.signing,
    enabled: stored.enabled,
  });
  // A secret set by hand replaces the old one at once (no overlap): rotate-secret is the way with one.
  const secretChanged = fields.secret !== stored.secret;
  await updateEndpoint(context.db, name, fields, formatUtc(now), secretChanged ? [] : undefined);
  return { name, endpoint: await endpointsShow(context, name, now) };
}

export interface EnableResult {
  name: string;
  enabled: boolean;
  /** Undelivered deliveries that will now go out (enable), or that are parked now (disable). */
  parked: number;
  /**
   * Disable: deliveries a running run holds (being sent). Attempts in flight end and are recorded; the run parks
   * the rest before its next attempt to the endpoint (it reads the switch again about once a second). 0 for enable.
   */
  held: number;
  /** Ended unsent (superseded) by --discard-parked. */
  discarded: number;
}

export async function endpointsSetEnabled(
  context: CommandContext,
  name: string,
  enabled: boolean,
  now: Date,
  options: { discardParked?: boolean } = {},
): Promise<EnableResult> {
  if (options.discardParked && !enabled) throw usageError('--discard-parked goes with "endpoints enable": a disabled endpoint keeps its deliveries parked.');
  const gone = (await endpointStates(context.db)).get(name)?.disabledAt != null;
  // A 410 Gone disabled it: enabling clears that for any endpoint, `default` and the config file's included (their other fields are not ours to change).
  if (enabled && gone) {
    if (!(await resolveEndpoints(context.db, context.config.webhooks, now)).some((endpoint) => endpoint.name === name)) throw unknownEndpoint(name);
  } else await editable(context, name, now);
  if (enabled) {
    await clearEndpointState(context.db, name);
    await unparkEndpoint(context.db, name);
    const undelivered = await countUndelivered(context.db, name);
    const discarded = await setEndpointEnabled(context.db, name, enabled, formatUtc(now), options.discardParked, await leaseNowMs(context.db, now.getTime()));
    return { name, enabled, parked: undelivered - discarded, held: 0, discarded };
  }
  // Switched off first: a running run that reads it stops claiming and sending to it.
  await setEndpointEnabled(context.db, name, false, formatUtc(now));
  // What waits for a disabled endpoint is parked now, so `deliveries list --status parked` shows it at once. What a
  // run holds is not: the run parks it itself, before its next attempt to the endpoint.
  await parkEndpoint(context.db, name, OPERATOR_DISABLED_REASON, await leaseNowMs(context.db, now.getTime()));
  const held = await countHeld(context.db, name);
  return { name, enabled, parked: Math.max(0, (await countUndelivered(context.db, name)) - held), held, discarded: 0 };
}

export interface RemoveResult {
  name: string;
  /**
   * False for a name no longer defined anywhere (an endpoint taken out of the config file) whose parked and abandoned
   * deliveries are still in the log: removing it ends them, as for a stored endpoint.
   */
  defined: boolean;
  /** Undelivered deliveries it ended unsent (superseded, with the reason). */
  dropped: number;
  /**
   * Undelivered deliveries a running run holds: attempts in flight end and are recorded; the run ends the rest
   * unsent (superseded) before its next attempt to the endpoint (it reads the switches again about once a second).
   */
  sending: number;
}

export async function endpointsRemove(context: CommandContext, name: string, now: Date, options: { force?: boolean } = {}): Promise<RemoveResult> {
  const undelivered = await countUndelivered(context.db, name, true);
  // An endpoint taken out of the config file leaves its parked and abandoned deliveries under its name, and
  // abandoned ones keep `status` at exit 3: removing the name is how they are ended, as for a stored endpoint.
  const defined = !(undelivered > 0 && (await noLongerDefined(context, name, now)));
  if (defined) await editable(context, name, now);
  const them = `${undelivered} undelivered ${undelivered === 1 ? 'delivery' : 'deliveries'}`;
  if (undelivered > 0 && !options.force) {
    throw usageError(
      defined
        ? `The endpoint "${name}" has ${them}, which removing it ends unsent (superseded). Add --force to remove it anyway, or disable it instead ("${commandLine(`endpoints disable ${name}`)}" keeps them parked). Nothing was changed.`
        : `The endpoint "${name}" is no longer defined (taken out of the config file) and has ${them} (waiting, parked or abandoned), which removing it ends unsent (superseded). Add --force to end them, or put it back in the config file's webhooks.endpoints to send them. Nothing was changed.`,
    );
  }
  const dropped = await deleteEndpoint(context.db, name, formatUtc(now), await leaseNowMs(context.db, now.getTime()));
  // Its circuit and any 410 disablement go with it: an endpoint added later under the name starts afresh.
  await clearEndpointState(context.db, name);
  return { name, defined, dropped, sending: Math.max(0, undelivered - dropped) };
}

/** Neither `default`, nor in the config file, nor stored: only deliveries in the log still carry the name. */
async function noLongerDefined(context: CommandContext, name: string, now: Date): Promise<boolean> {
  if (name === DEFAULT_ENDPOINT_NAME) return false;
  if ((await resolveEndpoints(context.db, context.config.webhooks, now)).some((endpoint) => endpoint.name === name)) return false;
  return !(await listStoredEndpoints(context.db)).some((endpoint) => endpoint.name === name);
}

export interface RotateSecretResult {
  name: string;
  signing: SigningScheme;
  /** False when disabled (by hand or after a 410): its deliveries stay parked until it is enabled. */
  enabled: boolean;
  /** The new secret, shown once. */
  secret: string;
  /** When the old secret stops being valid (null: revoked at once). */
  previousValidUntil: string | null;
  /**
   * The headers that still carry a signature made with the old secret until previousValidUntil: `webhook-signature`
   * for standard and both signing; none for botble, whose X-Webhook-Signature is one value, made with the new secret.
   */
  previousValidIn: string[];
  /** Earlier secrets no longer valid after this rotation. */
  revoked: number;
}

export async function endpointsRotateSecret(
  context: CommandContext,
  name: string,
  now: Date,
  options: { secret?: string | undefined; keepPreviousMs?: number | undefined } = {},
): Promise<RotateSecretResult> {
  const stored = await editable(context, name, now);
  if (stored.secret === null) {
    throw usageError(
      `The endpoint "${name}" has no secret to rotate: give it one with "${commandLine(`endpoints update ${name} --secret <secret>`)}". Nothing was changed.`,
    );
  }
  const keepPreviousMs = options.keepPreviousMs ?? DEFAULT_KEEP_PREVIOUS_MS;
  const gone = (await endpointStates(context.db)).get(name)?.disabledAt != null;
  const enabled = stored.enabled && !gone;
  // As the sender reads it (config/endpoints.ts): an unknown stored value signs as botble.
  const signing: SigningScheme = (SIGNING_SCHEMES as readonly string[]).includes(stored.signing) ? (stored.signing as SigningScheme) : 'botble';
  const newSecret = options.secret ?? generateSecret(stored.secret.startsWith('whsec_') ? 'whsec' : 'hex');
  const rotated = rotate({ current: stored.secret, previous: stored.previousSecrets }, newSecret, now, keepPreviousMs);
  if ('problem' in rotated) throw usageError(`${rotated.problem} Nothing was changed.`);
  await updateEndpoint(context.db, name, { ...stored, secret: rotated.state.current }, formatUtc(now), rotated.state.previous);
  const previousValidUntil = rotated.state.previous.find((entry) => entry.secret === stored.secret)?.validUntil ?? null;
  return {
    name,
    signing,
    enabled,
    secret: rotated.state.current,
    previousValidUntil,
    previousValidIn: previousValidUntil !== null && signing !== 'botble' ? ['webhook-signature'] : [],
    revoked: rotated.revoked,
  };
}
