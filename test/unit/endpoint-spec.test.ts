import { describe, expect, test } from '@jest/globals';
import { z } from 'zod';
import { describeZodError } from '../../src/config/schema.js';
import { endpointEntrySchema, endpointsSchema } from '../../src/webhooks/endpoint-schema.js';
import {
  endpointEventsProblem,
  endpointHeadersProblem,
  endpointNameProblem,
  endpointSecretProblem,
  headerNameProblem,
  maxInFlightProblem,
  parseEventsOption,
  parseHeaderOption,
  parseMaxInFlightOption,
  signingProblem,
} from '../../src/webhooks/endpoint-spec.js';

describe('endpoint names', () => {
  test.each(['crm', 'billing-eu', '0', 'a'.repeat(64), 'team-chat-2'])('%j is a name', (name) => {
    expect(endpointNameProblem(name)).toBeUndefined();
  });

  test.each([
    ['', 'must not be empty'],
    ['CRM', 'lower-case letters'],
    ['billing_eu', 'lower-case letters'],
    ['-crm', 'starting with a letter or digit'],
    ['crm eu', 'lower-case letters'],
    ['ünicode', 'lower-case letters'],
    ['a'.repeat(65), 'at most 64'],
    ['default', 'reserved'],
  ])('%j is refused: %s', (name, problem) => {
    expect(endpointNameProblem(name)).toContain(problem);
  });

  test('"default" may be referred to, not defined', () => {
    expect(endpointNameProblem('default', { allowDefault: true })).toBeUndefined();
    expect(endpointNameProblem('Default', { allowDefault: true })).toContain('lower-case');
  });
});

describe('event filters', () => {
  test('known types, the coming license.expired_reminder among them', () => {
    expect(endpointEventsProblem(['license.expiring', 'license.expired', 'license.update_support_expired', 'license.expired_reminder'])).toBeUndefined();
  });

  test('an unknown type is named, with a guess when one is close', () => {
    expect(endpointEventsProblem(['license.expired', 'license.renewed'])).toBe(
      '"license.renewed" is not an event type; known types: license.expiring, license.expired, license.update_support_expired, license.expired_reminder',
    );
    expect(endpointEventsProblem(['expired'])).toContain('did you mean "license.expired"?');
    expect(endpointEventsProblem(['License.Expiring'])).toContain('did you mean "license.expiring"?');
  });

  test('empty and repeated lists are refused', () => {
    expect(endpointEventsProblem([])).toContain('leave "events" out to take every type');
    expect(endpointEventsProblem(['license.expired', 'license.expired'])).toContain('"license.expired" is listed twice');
  });

  test('--events parses a comma list', () => {
    expect(parseEventsOption('license.expired, license.expiring')).toEqual({ events: ['license.expired', 'license.expiring'] });
    expect(parseEventsOption('license.expired,,license.expiring')).toEqual({ problem: expect.stringContaining('empty item') });
    expect(parseEventsOption('')).toEqual({ problem: expect.stringContaining('--events: an empty event list') });
    expect(parseEventsOption('license.gone')).toEqual({ problem: expect.stringContaining('--events: "license.gone" is not an event type') });
  });
});

describe('extra headers', () => {
  test('"Name: value" parsing', () => {
    expect(parseHeaderOption('X-Api-Key: abc123')).toEqual({ name: 'X-Api-Key', value: 'abc123' });
    expect(parseHeaderOption('X-Tenant:t-1:eu')).toEqual({ name: 'X-Tenant', value: 't-1:eu' });
    expect(parseHeaderOption('Authorization:  Bearer tok  ')).toEqual({ name: 'Authorization', value: 'Bearer tok' });
  });

  test.each([
    ['X-Api-Key abc', 'has no ":"'],
    ['X-Api-Key:', 'header "X-Api-Key" has an empty value'],
    ['X Api: 1', '"X Api" is not a header name'],
    [': value', 'a header name must not be empty'],
    ['X-Api-Key: caf\u00e9', 'outside printable ASCII'],
  ])('%j is refused: %s', (text, problem) => {
    const result = parseHeaderOption(text);
    expect('problem' in result && result.problem).toContain(problem);
  });

  test.each([
    'Content-Type',
    'content-type',
    'User-Agent',
    'X-Webhook-Signature',
    'x-webhook-id',
    'X-WEBHOOK-EVENT',
    'X-Webhook-Anything',
    'webhook-signature',
    'Webhook-Id',
    'Host',
    'Content-Length',
    'Connection',
    'Transfer-Encoding',
    'Keep-Alive',
    'TE',
    'Upgrade',
  ])('the tool or the HTTP client owns %s: refused, naming it', (name) => {
    const problem = headerNameProblem(name);
    expect(problem).toContain(`header "${name}" cannot be set on an endpoint`);
    const parsed = parseHeaderOption(`${name}: x`);
    expect('problem' in parsed && parsed.problem).toContain(`"${name}"`);
  });

  test('a header value cannot carry a line break (header injection)', () => {
    expect(endpointHeadersProblem({ 'X-Api-Key': 'abc\r\nX-Webhook-Signature: forged' })).toContain('line break');
  });

  test('the same name twice in another case, and too many headers, are refused', () => {
    expect(endpointHeadersProblem({ 'X-Api-Key': 'a', 'x-api-key': 'b' })).toBe('header "x-api-key" is given twice (header names ignore case)');
    const many = Object.fromEntries(Array.from({ length: 21 }, (_, index) => [`X-H${index}`, 'v']));
    expect(endpointHeadersProblem(many)).toContain('at most 20');
    expect(endpointHeadersProblem({ Authorization: 'Bearer t', 'X-Tenant': 'eu-1' })).toBeUndefined();
  });
});

describe('maxInFlight, signing and secret', () => {
  test('maxInFlight is 1 to 256', () => {
    expect(maxInFlightProblem(1)).toBeUndefined();
    expect(maxInFlightProblem(256)).toBeUndefined();
    expect(maxInFlightProblem(0)).toContain('from 1 to 256, not 0');
    expect(maxInFlightProblem(257)).toContain('not 257');
    expect(maxInFlightProblem(2.5)).toContain('not 2.5');
    expect(parseMaxInFlightOption('4')).toEqual({ maxInFlight: 4 });
    expect(parseMaxInFlightOption('four')).toEqual({ problem: '--max-in-flight: maxInFlight must be a whole number from 1 to 256, not "four"' });
    expect(parseMaxInFlightOption('1e2')).toEqual({ problem: expect.stringContaining('not "1e2"') });
  });

  test('signing is botble, standard or both', () => {
    expect(signingProblem('both')).toBeUndefined();
    expect(signingProblem('svix')).toContain('signing "svix" is not a scheme');
  });

  test('a secret follows the webhook secret rules and, with whsec_, the key format', () => {
    expect(endpointSecretProblem('s3cret')).toBeUndefined();
    expect(endpointSecretProblem(' ')).toBe('must not be only whitespace');
    expect(endpointSecretProblem('whsec_not base64')).toContain('not standard base64');
  });
});

describe('the webhooks.endpoints schema', () => {
  const messages = (value: unknown) => {
    const parsed = z.object({ endpoints: endpointsSchema }).safeParse({ endpoints: value });
    return parsed.success ? [] : describeZodError(parsed.error);
  };

  test('defaults: enabled, botble signing, no headers, no secret, every event', () => {
    expect(endpointEntrySchema.parse({ name: 'crm', url: 'https://crm.example.com/hooks' })).toEqual({
      name: 'crm',
      url: 'https://crm.example.com/hooks',
      secret: null,
      enabled: true,
      headers: {},
      signing: 'botble',
    });
  });

  test('a full entry is kept as written', () => {
    const entry = {
      name: 'billing',
      url: 'https://billing.example.com/in',
      secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
      events: ['license.expired'],
      enabled: false,
      headers: { 'X-Api-Key': 'k' },
      maxInFlight: 2,
      signing: 'standard',
    };
    expect(endpointEntrySchema.parse(entry)).toEqual(entry);
  });

  test('every bad field is reported with its path and the reason', () => {
    expect(
      messages([
        {
          name: 'Bad Name',
          url: 'ftp://example.com',
          events: ['license.nope'],
          headers: { 'Content-Type': 'text/plain' },
          maxInFlight: 0,
          signing: 'svix',
          extra: 1,
        },
      ]),
    ).toEqual([
      'endpoints.0.name: "Bad Name" is not an endpoint name: use lower-case letters, digits and "-", starting with a letter or digit (e.g. "crm", "billing-eu")',
      'endpoints.0.url: must use http: or https:, not ftp:',
      expect.stringMatching(/^endpoints\.0\.events: "license\.nope" is not an event type/),
      'endpoints.0.headers: header "Content-Type" cannot be set on an endpoint: the body is always application/json (the wire format)',
      'endpoints.0.maxInFlight: maxInFlight must be a whole number from 1 to 256, not 0',
      'endpoints.0.signing: signing "svix" is not a scheme: use "botble" (X-Webhook-Signature, as today), "standard" (Standard Webhooks headers) or "both"',
      'endpoints.0: Unrecognized key: "extra"',
    ]);
  });

  test('a name twice, and "default", are refused', () => {
    expect(
      messages([
        { name: 'crm', url: 'https://a.example.com' },
        { name: 'crm', url: 'https://b.example.com' },
      ]),
    ).toEqual(['endpoints.1.name: endpoint "crm" is defined twice (also entry 0); names are unique']);
    expect(messages([{ name: 'default', url: 'https://a.example.com' }])).toEqual([expect.stringMatching(/^endpoints\.0\.name: "default" is reserved/)]);
  });

  test('standard signing needs a secret; Authorization in headers and in the URL is refused', () => {
    expect(messages([{ name: 'crm', url: 'https://a.example.com', signing: 'both' }])).toEqual([
      'endpoints.0.secret: signing "both" needs a secret: Standard Webhooks receivers reject unsigned requests',
    ]);
    expect(messages([{ name: 'crm', url: 'https://u:p@a.example.com/x', headers: { authorization: 'Bearer t' } }])).toEqual([
      'endpoints.0.headers: an Authorization header and credentials in the URL both set Authorization: keep one',
    ]);
    expect(messages([{ name: 'crm', url: 'https://a.example.com/x?next=a@b', headers: { Authorization: 'Bearer t' } }])).toEqual([]);
  });
});
