import { randomUUID } from 'node:crypto';
import type { $Fetch } from 'ofetch';
import { systemClock, type Clock } from '../clock.js';
import { secretProblem, webhookUrlProblem } from '../webhooks/target.js';
import { settingAdvice } from '../config/botble-settings.js';
import { usageError } from '../errors.js';
import { eventSubject } from '../expirations/license-events.js';
import { readLicense } from '../expirations/license.js';
import { daysUntilExpiry, type EventType } from '../expirations/rules.js';
import { EXPIRED_REMINDER, expiredReminderPayload } from '../expirations/after-expiry.js';
import { dateInZone, daysBetween } from '../expirations/calendar.js';
import { policyFor } from '../expirations/reminder-policy.js';
import { DAY_MS } from '../time.js';
import { deliver, deliveryPolicy, type DeliveryPolicy, type DeliveryResult } from '../webhooks/deliver.js';
import { DEFAULT_ENDPOINT_NAME } from '../webhooks/endpoint-spec.js';
import { resolveEndpoints } from '../config/endpoints.js';
import { webhookHeaders } from '../webhooks/headers.js';
import { splitUrlCredentials } from '../webhooks/url.js';
import { withTransport } from '../delivery/transport.js';
import { buildEventBody, type EventDetails, type EventSubject } from '../webhooks/payload.js';
import type { CommandContext } from './context.js';
import { commandLine } from '../command-line.js';

export interface SendTestEventOptions {
  url?: string;
  secret?: string | undefined;
  event?: EventType | typeof EXPIRED_REMINDER;
  license?: string;
  /** Send with this endpoint's URL, secrets, headers and signing. */
  endpoint?: string;
  clock?: Clock;
  fetch?: $Fetch;
}

export interface SendTestEventResult {
  url: string;
  eventId: string;
  eventType: EventType | typeof EXPIRED_REMINDER;
  signed: boolean;
  /** Headers as sent; the signature is shown because it is derived, never the secret itself (nor URL credentials). */
  headers: Record<string, string>;
  body: string;
  delivery: DeliveryResult;
}

/** The reference's own sample: a license that expires in seven days. */
const SAMPLE_SUBJECT: EventSubject = {
  license_id: 123,
  license_code: 'LIC-ABC-123',
  product_id: 'PROD-001',
  product_reference_id: 'My Product',
  customer_id: 'CUST-001',
  email: 'customer@example.com',
};

function sampleDetails(type: EventType, now: Date): EventDetails {
  switch (type) {
    case 'license.expiring':
      return { type, expiresAt: new Date(now.getTime() + 7 * DAY_MS), daysUntilExpiry: 7 };
    case 'license.expired':
      return { type, expiresAt: now };
    case 'license.update_support_expired':
      return { type, updatesUntil: now };
  }
}

/** Sends one event now, through the same signing and retry path as the cron job, and reports every attempt. */
/** What sending needs: the configuration, and the database only for --license. */
export type TestEventContext = Pick<CommandContext, 'config'> & Partial<Pick<CommandContext, 'db' | 'licenses'>>;

export async function sendTestEvent(context: TestEventContext, options: SendTestEventOptions): Promise<SendTestEventResult> {
  const clock = options.clock ?? systemClock;
  const webhooks = context.config.webhooks;
  if (options.endpoint !== undefined && options.endpoint !== DEFAULT_ENDPOINT_NAME) return sendToEndpoint(context, options.endpoint, { ...options, clock });
  const url = options.url ?? webhooks.url;
  const kind = context.config.licenses.source;
  if (!url) throw usageError(`No webhook URL: pass --url <url>, or ${settingAdvice(kind, 'webhook-url', '<url>')}.`);
  const urlProblem = webhookUrlProblem(url);
  if (urlProblem) throw usageError(`--url "${url.slice(0, 200)}" ${urlProblem}.`);
  const given = options.secret === undefined ? undefined : secretProblem(options.secret);
  if (given) throw usageError(`--secret ${given}.`);
  const secret = options.secret ?? webhooks.secret;

  const { event, delivery } = await sendSample(context, options, clock, deliveryPolicy(webhooks, url, secret));
  // Credentials in the URL go out as Authorization: shown, never their value.
  const headers = webhookHeaders(event, secret);
  if (splitUrlCredentials(url).authorization) headers.Authorization = 'Basic ****';
  return { url, eventId: event.eventId, eventType: event.eventType, signed: Boolean(secret), headers, body: event.body, delivery };
}

/** `send-test-event --endpoint NAME`: the endpoint's URL, secrets, extra headers and signing, as a run sends to it. */
async function sendToEndpoint(context: TestEventContext, name: string, options: SendTestEventOptions & { clock: Clock }): Promise<SendTestEventResult> {
  if (options.url !== undefined || options.secret !== undefined)
    throw usageError(`--endpoint sends with the URL and secret of "${name}": leave out --url and --secret.`);
  if (!context.db) throw new Error('send-test-event --endpoint needs the database');
  const endpoints = await resolveEndpoints(context.db, context.config.webhooks, options.clock.now());
  const endpoint = endpoints.find((candidate) => candidate.name === name);
  if (!endpoint?.url) throw usageError(`No endpoint named "${name}". See "${commandLine('endpoints list')}".`);
  const [current = null, ...previous] = endpoint.secrets;
  const policy = {
    ...deliveryPolicy(context.config.webhooks, endpoint.url, current),
    headers: endpoint.headers,
    signing: endpoint.signing,
    previousSecrets: previous,
  };
  const { event, delivery } = await sendSample(context, options, options.clock, policy);
  // The headers of the last attempt as sent; extra header values are secrets as far as output goes.
  const sent = { ...(delivery.attempts.at(-1)?.headers ?? webhookHeaders(event, endpoint.signing === 'standard' ? null : current)) };
  for (const header of Object.keys(endpoint.headers)) sent[header] = '********';
  if (splitUrlCredentials(endpoint.url).authorization) sent.Authorization = 'Basic ****';
  return { url: endpoint.url, eventId: event.eventId, eventType: event.eventType, signed: current !== null, headers: sent, body: event.body, delivery };
}

/** Builds the sample (or a license's) event and sends it through the same path as the cron job. */
async function sendSample(
  context: TestEventContext,
  options: SendTestEventOptions,
  clock: Clock,
  policy: DeliveryPolicy,
): Promise<{ event: { eventId: string; eventType: EventType | typeof EXPIRED_REMINDER; body: string; test: true }; delivery: DeliveryResult }> {
  const eventType = options.event ?? 'license.expiring';

  const now = clock.now();
  let subject = SAMPLE_SUBJECT;
  let details = eventType === EXPIRED_REMINDER ? undefined : sampleDetails(eventType, now);
  // The sample reminder: the first after-expiry day of the global schedule (1 when none is set), that many days ago.
  const sampleDays = context.config.expirations.afterExpiryDays[0] ?? 1;
  let reminder = { expiresAt: new Date(now.getTime() - sampleDays * DAY_MS), daysSinceExpiry: sampleDays };
  if (options.license !== undefined) {
    if (!context.db || !context.licenses) throw new Error('send-test-event --license needs the database');
    const license = await context.licenses.findByCode(context.db, options.license);
    if (!license) throw usageError(`No license with code "${options.license}". See "${commandLine('licenses list')}".`);
    const dates = readLicense(license, context.config.expirations.timeZone);
    if ('problem' in dates)
      throw usageError(
        `License ${options.license}: ${dates.problem}. Fix it ${context.config.licenses.source === 'botble' ? 'in the Botble admin' : `with "${commandLine('licenses import')}"`}.`,
      );
    subject = eventSubject(dates);
    if (eventType === EXPIRED_REMINDER) reminder = licenseReminder(now, dates, options.license, license.product_id, context.config.expirations);
    else details = licenseDetails(eventType, now, dates, options.license, context.config.expirations.timeZone);
  }
  const body =
    details === undefined ? expiredReminderPayload(subject, reminder.expiresAt, reminder.daysSinceExpiry, now) : buildEventBody(details, subject, now);
  const event = { eventId: randomUUID(), eventType, body, test: true as const };
  const delivery = await withTransport(options.fetch, policy.timeoutMs, (fetch) => deliver(event, policy, { clock, fetch }));
  return { event, delivery };
}

function licenseDetails(
  type: EventType,
  now: Date,
  dates: { expiresAt: Date | null; updatesUntil: Date | null },
  code: string,
  timeZone: string,
): EventDetails {
  if (type === 'license.update_support_expired') {
    if (!dates.updatesUntil) throw usageError(`License ${code} has no updates_until date, so it has no ${type} event.`);
    return { type, updatesUntil: dates.updatesUntil };
  }
  const { expiresAt } = dates;
  if (!expiresAt) throw usageError(`License ${code} is a lifetime license (no expires_at), so it has no ${type} event.`);
  if (type === 'license.expired') return { type, expiresAt };
  return { type, expiresAt, daysUntilExpiry: Math.max(0, daysUntilExpiry(expiresAt, now, timeZone)) };
}

/** A license's reminder as the job would send it today: its expiry, and the days since its expiry date (the product's first after-expiry day when it has not expired yet). */
function licenseReminder(
  now: Date,
  dates: { expiresAt: Date | null },
  code: string,
  productId: string | null,
  expirations: { timeZone: string; warningDays: readonly number[]; afterExpiryDays: readonly number[]; products: Parameters<typeof policyFor>[2] },
): { expiresAt: Date; daysSinceExpiry: number } {
  const { expiresAt } = dates;
  if (!expiresAt) throw usageError(`License ${code} is a lifetime license (no expires_at), so it has no ${EXPIRED_REMINDER} event.`);
  const since = daysBetween(dateInZone(expiresAt, expirations.timeZone), dateInZone(now, expirations.timeZone));
  return { expiresAt, daysSinceExpiry: since >= 1 ? since : (policyFor(productId, expirations, expirations.products).afterExpiryDays[0] ?? 1) };
}
