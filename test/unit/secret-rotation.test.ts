import { describe, expect, test } from '@jest/globals';
import {
  DEFAULT_KEEP_PREVIOUS_MS,
  generateSecret,
  MAX_PREVIOUS_SECRETS,
  parseDuration,
  rotate,
  validSecrets,
  type RotateResult,
  type SecretState,
} from '../../src/webhooks/secret-rotation.js';
import { standardSecretProblem } from '../../src/webhooks/standard-secret.js';
import { standardSigningKey } from '../../src/webhooks/standard-signature.js';

const HOUR = 60 * 60 * 1000;
const t0 = new Date('2026-03-01T12:00:00Z');
const at = (hours: number) => new Date(t0.getTime() + hours * HOUR);

function rotated(result: RotateResult): SecretState {
  if ('problem' in result) throw new Error(`unexpected problem: ${result.problem}`);
  return result.state;
}

describe('rotate and validSecrets', () => {
  const start: SecretState = { current: 'secret-a', previous: [] };

  test('the old secret stays valid for the window, new first; then only the new one', () => {
    const result = rotate(start, 'secret-b', t0, DEFAULT_KEEP_PREVIOUS_MS);
    expect(result).toEqual({ state: { current: 'secret-b', previous: [{ secret: 'secret-a', validUntil: '2026-03-02T12:00:00Z' }] }, revoked: 0 });
    const state = rotated(result);
    expect(validSecrets(state, t0)).toEqual(['secret-b', 'secret-a']);
    expect(validSecrets(state, new Date(at(24).getTime() - 1))).toEqual(['secret-b', 'secret-a']);
    // validUntil is the first instant it is no longer valid.
    expect(validSecrets(state, at(24))).toEqual(['secret-b']);
  });

  test('the state survives JSON as it is', () => {
    const state = rotated(rotate(start, 'secret-b', t0, HOUR));
    expect(JSON.parse(JSON.stringify(state))).toEqual(state);
  });

  test('a window ending between whole seconds is rounded up, never shortened', () => {
    const state = rotated(rotate(start, 'secret-b', new Date('2026-03-01T12:00:00.400Z'), 1000));
    expect(state.previous[0]!.validUntil).toBe('2026-03-01T12:00:02Z');
    expect(validSecrets(state, new Date('2026-03-01T12:00:01.399Z'))).toContain('secret-a');
  });

  test('rotating twice: each earlier secret keeps its own end, most recent first', () => {
    const once = rotated(rotate(start, 'secret-b', t0, 24 * HOUR));
    const twice = rotated(rotate(once, 'secret-c', at(2), 1 * HOUR));
    expect(validSecrets(twice, at(2))).toEqual(['secret-c', 'secret-b', 'secret-a']);
    expect(validSecrets(twice, at(3))).toEqual(['secret-c', 'secret-a']);
    expect(validSecrets(twice, at(24))).toEqual(['secret-c']);
  });

  test('keepPrevious 0 revokes every earlier secret at once, and says how many', () => {
    const once = rotated(rotate(start, 'secret-b', t0, 24 * HOUR));
    const result = rotate(once, 'secret-c', at(1), 0);
    expect(result).toEqual({ state: { current: 'secret-c', previous: [] }, revoked: 2 });
    expect(validSecrets(rotated(result), at(1))).toEqual(['secret-c']);
  });

  test('expired earlier secrets are dropped and not counted as revoked', () => {
    const once = rotated(rotate(start, 'secret-b', t0, HOUR));
    const result = rotate(once, 'secret-c', at(5), 0);
    expect(result).toMatchObject({ revoked: 1 });
    expect(rotated(rotate(once, 'secret-c', at(5), HOUR)).previous.map((entry) => entry.secret)).toEqual(['secret-b']);
  });

  test(`at most ${MAX_PREVIOUS_SECRETS} earlier secrets: the one ending soonest goes first`, () => {
    let state = start;
    // Rotate 12 times, an hour apart, each keeping the old one for 48 h: the oldest ends soonest.
    for (let step = 1; step <= 12; step += 1) state = rotated(rotate(state, `secret-${step}`, at(step), 48 * HOUR));
    expect(state.previous).toHaveLength(MAX_PREVIOUS_SECRETS);
    expect(validSecrets(state, at(12))).toEqual(['secret-12', ...Array.from({ length: 10 }, (_, index) => `secret-${11 - index}`)]);
    const next = rotate(state, 'secret-13', at(13), 48 * HOUR);
    expect(next).toMatchObject({ revoked: 1 });
    expect(rotated(next).previous.map((entry) => entry.secret)).not.toContain('secret-2');
  });

  test('a longer earlier window outlives a short one at the cap', () => {
    let state = rotated(rotate(start, 'keep-long', t0, 30 * 24 * HOUR));
    for (let step = 1; step <= 11; step += 1) state = rotated(rotate(state, `short-${step}`, at(step), 48 * HOUR));
    const kept = state.previous.map((entry) => entry.secret);
    expect(kept).toHaveLength(MAX_PREVIOUS_SECRETS);
    expect(kept).toContain('secret-a');
    expect(kept).not.toContain('keep-long');
  });

  test('rotating back to a still-valid earlier secret makes it current and removes it from the list', () => {
    const once = rotated(rotate(start, 'secret-b', t0, 24 * HOUR));
    const back = rotated(rotate(once, 'secret-a', at(1), 24 * HOUR));
    expect(back.current).toBe('secret-a');
    expect(back.previous.map((entry) => entry.secret)).toEqual(['secret-b']);
  });

  test('bad input is a problem, not a state', () => {
    expect(rotate(start, 'secret-a', t0, HOUR)).toEqual({ problem: expect.stringContaining('is the current one') });
    expect(rotate(start, '   ', t0, HOUR)).toEqual({ problem: 'The new secret must not be only whitespace.' });
    expect(rotate(start, 'whsec_abc', t0, HOUR)).toEqual({ problem: expect.stringContaining('not standard base64') });
    expect(rotate(start, 'secret-b', t0, -1)).toEqual({ problem: expect.stringContaining('not -1') });
    expect(rotate(start, 'secret-b', t0, 31 * 24 * HOUR)).toEqual({ problem: expect.stringContaining('30 days') });
  });
});

describe('parseDuration', () => {
  test.each([
    ['24h', 24 * HOUR],
    ['90m', 90 * 60 * 1000],
    ['7d', 7 * 24 * HOUR],
    ['3600s', HOUR],
    ['0', 0],
    ['0h', 0],
    [' 30d ', 30 * 24 * HOUR],
  ])('%j is %d ms', (text, ms) => {
    expect(parseDuration(text)).toEqual({ ms });
  });

  test.each([
    ['abc', 'is not a duration'],
    ['-1h', 'is negative'],
    ['1.5h', 'is a fraction; use whole units of a smaller one (90m, not 1.5h)'],
    ['3600', 'has no unit: write 3600s'],
    ['31d', 'longer than 30 days'],
    ['99999999999999999999999d', 'longer than 30 days'],
    ['24H', 'is not a duration'],
    ['1h30m', 'is not a duration'],
    ['', 'a duration is needed'],
  ])('%j is refused: %s', (text, problem) => {
    const result = parseDuration(text);
    expect('problem' in result && result.problem).toContain(problem);
  });
});

describe('generateSecret', () => {
  test('hex: 32 random bytes, a new one each time', () => {
    const one = generateSecret();
    expect(one).toMatch(/^[0-9a-f]{64}$/);
    expect(generateSecret()).not.toBe(one);
  });

  test('whsec: the spec form, 32 key bytes that the signer decodes', () => {
    const secret = generateSecret('whsec');
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(standardSecretProblem(secret)).toBeUndefined();
    expect(standardSigningKey(secret)).toHaveLength(32);
  });
});
