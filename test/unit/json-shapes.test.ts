// The --json schemas themselves: what they refuse is what a test of a command's output catches.
import { describe, expect, test } from '@jest/globals';
import { endpointJson, endpointRemovedJson, licensesImportJson, settingChangeJson, verifyJson } from '../helpers/json-shapes.js';

const anEndpoint = {
  name: 'crm',
  url: 'https://crm.example.com/hooks',
  enabled: true,
  events: null,
  signing: 'botble',
  source: 'database',
  secret: '********',
  previousSecrets: [],
  headers: { 'X-Api-Key': '********' },
  maxInFlight: null,
  deliveries: { delivered: 2 },
  gone: null,
};

describe('the --json schemas', () => {
  test('an undocumented key, a renamed one and a missing one fail, naming the key', () => {
    expect(() => settingChangeJson.parse({ key: 'warning-days', stored: '7,1', extra: 1 })).toThrow(/"extra"/);
    expect(() => endpointRemovedJson.parse({ name: 'crm', deleted: 0 })).toThrow(/"dropped"/);
    expect(() => licensesImportJson.parse({ file: 'a.csv', format: 'csv', rows: 1, inserted: 1, updated: 0 })).toThrow(/"unchanged"/);
  });

  test('types of values: whole counts, enums, the masked secret', () => {
    expect(() => licensesImportJson.parse({ file: 'a.csv', format: 'csv', rows: '1', inserted: 1, updated: 0, unchanged: 0 })).toThrow(/"rows"/);
    expect(() => licensesImportJson.parse({ file: 'a.csv', format: 'xlsx', rows: 1, inserted: 1.5, updated: 0, unchanged: 0 })).toThrow(
      /"format"[\s\S]*"inserted"/,
    );
    expect(endpointJson.parse(anEndpoint)).toEqual(anEndpoint);
    expect(() => endpointJson.parse({ ...anEndpoint, secret: 'crm-secret' })).toThrow(/"secret"/);
    expect(() => endpointJson.parse({ ...anEndpoint, deliveries: { sent: 2 } })).toThrow(/"deliveries"/);
    expect(() => endpointJson.parse({ ...anEndpoint, previousSecrets: [{ validUntil: '2025-01-15T08:00:00.000Z' }] })).toThrow(/"validUntil"/);
  });

  test('verify names which secret matched by its position, never the secret itself', () => {
    const valid = { valid: true, verdict: 'valid', explanation: 'The signature is valid.', expected: 'a'.repeat(64) };
    expect(verifyJson.parse(valid)).toEqual(valid);
    expect(verifyJson.parse({ ...valid, scheme: 'botble', secret: 2 })).toMatchObject({ secret: 2 });
    expect(() => verifyJson.parse({ ...valid, scheme: 'botble', secret: 's3cret' })).toThrow();
  });
});
