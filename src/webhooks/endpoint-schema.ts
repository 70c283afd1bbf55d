// The zod schema of `webhooks.endpoints` in the config file, made from the rules of endpoint-spec.ts (kept apart so that only what reads a config file loads zod).
import { z } from 'zod';
import { webhookUrlProblem } from './target.js';
import {
  endpointEventsProblem,
  endpointHeadersProblem,
  endpointNameProblem,
  endpointSecretProblem,
  maxInFlightProblem,
  signingProblem,
  SIGNING_SCHEMES,
} from './endpoint-spec.js';

function hasCredentials(url: string): boolean {
  try {
    const parsed = new URL(url);
    return parsed.username !== '' || parsed.password !== '';
  } catch {
    return false;
  }
}

/** A zod check made from one of the `xxxProblem` functions above, so the config file and the CLI say the same thing. */
function refined<T>(problem: (value: T) => string | undefined) {
  return (value: T, ctx: z.core.$RefinementCtx<T>) => {
    const message = problem(value);
    if (message) ctx.addIssue({ code: 'custom', message });
  };
}

/** One entry of `webhooks.endpoints` in the config file. */
export const endpointEntrySchema = z
  .strictObject({
    name: z
      .string()
      .superRefine(refined((value: string) => endpointNameProblem(value)))
      .describe('lower-case letters, digits and -; unique; "default" is reserved'),
    url: z.string().superRefine(refined(webhookUrlProblem)).describe("where this endpoint's events are POSTed"),
    secret: z
      .string()
      .superRefine(refined(endpointSecretProblem))
      .nullable()
      .default(null)
      .describe('HMAC-SHA256 key; a whsec_<base64> secret is decoded for Standard Webhooks signatures'),
    events: z.array(z.string()).superRefine(refined(endpointEventsProblem)).optional().describe('the event types it takes; every type when left out'),
    enabled: z.boolean().default(true).describe('a disabled endpoint keeps its deliveries parked'),
    headers: z
      .record(z.string(), z.string())
      .superRefine(refined(endpointHeadersProblem))
      .default({})
      .describe('extra request headers, e.g. a gateway API key'),
    maxInFlight: z
      .number()
      .superRefine(refined(maxInFlightProblem))
      .optional()
      .describe('attempts in flight at once to this endpoint; the global concurrency when left out'),
    signing: z
      .enum(SIGNING_SCHEMES, { error: (issue) => signingProblem(String(issue.input)) })
      .default('botble')
      .describe('botble (X-Webhook-Signature), standard (Standard Webhooks) or both'),
  })
  .superRefine((entry, ctx) => {
    // A Standard Webhooks receiver must verify, and cannot without a key; Botble's headers simply omit the signature.
    if (entry.signing !== 'botble' && entry.secret === null) {
      ctx.addIssue({
        code: 'custom',
        path: ['secret'],
        message: `signing "${entry.signing}" needs a secret: Standard Webhooks receivers reject unsigned requests`,
      });
    }
    // postOnce turns URL credentials into Authorization: two sources for one header would send one silently.
    if (Object.keys(entry.headers).some((name) => name.toLowerCase() === 'authorization') && hasCredentials(entry.url)) {
      ctx.addIssue({ code: 'custom', path: ['headers'], message: 'an Authorization header and credentials in the URL both set Authorization: keep one' });
    }
  });

export type EndpointEntry = z.output<typeof endpointEntrySchema>;

/** `webhooks.endpoints`: each entry valid, and no name twice. */
export const endpointsSchema = z.array(endpointEntrySchema).superRefine((entries, ctx) => {
  const seen = new Map<string, number>();
  entries.forEach((entry, index) => {
    const first = seen.get(entry.name);
    if (first === undefined) seen.set(entry.name, index);
    else ctx.addIssue({ code: 'custom', path: [index, 'name'], message: `endpoint "${entry.name}" is defined twice (also entry ${first}); names are unique` });
  });
});
