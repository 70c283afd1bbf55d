import { afterEach, beforeEach, describe, expect, jest, test } from '@jest/globals';
import { Webhook } from 'standardwebhooks';
import { standardSecretProblem } from '../../src/webhooks/standard-secret.js';
import { standardHeaders, standardSignature, standardSigningKey, verifyStandardSignature } from '../../src/webhooks/standard-signature.js';

// The spec's example id and timestamp; a body like ours.
const id = 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W';
const timestamp = 1674087231;
const body = '{"event_type":"license.expired","timestamp":"2024-01-15T10:30:00Z","payload":{"license_id":123}}';
// The official library's own test secret: 24 key bytes in base64.
const whsec = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const nonAscii = 'sécret-ключ';
const event = { eventId: id, body };

describe('known answers, computed independently with OpenSSL 3.0', () => {
  // printf '%s' "$ID.$TS.$BODY" | openssl dgst -sha256 -hmac 'your-webhook-secret' -binary | base64
  test('a raw secret is used as its UTF-8 bytes', () => {
    expect(standardSignature('your-webhook-secret', id, timestamp, body)).toBe('v1,jPTnSiItWlDgnxj/2xEKRoEeyuBRe6H3GqTFsMSvyBI=');
  });

  // printf '%s' "$ID.$TS.$BODY" | openssl dgst -sha256 -mac HMAC -macopt hexkey:31f290f6bf06298aab4f08d43c3f082cf648a362da2da4b0 -binary | base64
  // (the hex key is `printf MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw | base64 -d | xxd -p`)
  test('a whsec_ secret is used as its base64-decoded bytes', () => {
    expect(standardSigningKey(whsec).toString('hex')).toBe('31f290f6bf06298aab4f08d43c3f082cf648a362da2da4b0');
    expect(standardSignature(whsec, id, timestamp, body)).toBe('v1,vCUvuBWlDIw+mpS4IP+r8A3WHY+1mvIU9Tc9SK5muDo=');
  });

  // printf '%s' "$ID.$TS.$BODY" | openssl dgst -sha256 -hmac 'sécret-ключ' -binary | base64 (in a UTF-8 locale)
  test('a non-ASCII secret is used as UTF-8, not as char codes', () => {
    expect(standardSignature(nonAscii, id, timestamp, body)).toBe('v1,Wrn11b6aLp6Z1dcfeftHl2QTKPHWbHUz/cVE/7DsYfM=');
  });

  test('a Buffer body signs the same bytes as its string', () => {
    expect(standardSignature(whsec, id, timestamp, Buffer.from(body))).toBe(standardSignature(whsec, id, timestamp, body));
  });
});

describe('headers', () => {
  test('webhook-id, webhook-timestamp and one signature per secret, current first', () => {
    const headers = standardHeaders(event, ['new-secret', whsec], timestamp);
    expect(headers).toEqual({
      'webhook-id': id,
      'webhook-timestamp': '1674087231',
      'webhook-signature': `${standardSignature('new-secret', id, timestamp, body)} ${standardSignature(whsec, id, timestamp, body)}`,
    });
  });

  test('a secret listed twice is signed once', () => {
    expect(standardHeaders(event, [whsec, whsec], timestamp)['webhook-signature']).toBe(standardSignature(whsec, id, timestamp, body));
  });

  test('no secret: no webhook-signature header, the other two still go', () => {
    expect(standardHeaders(event, [], timestamp)).toEqual({ 'webhook-id': id, 'webhook-timestamp': '1674087231' });
  });

  test('an id with a "." or a fractional timestamp is refused (the signed string must split one way only)', () => {
    expect(() => standardHeaders({ eventId: 'a.b', body }, [whsec], timestamp)).toThrow('contain no "."');
    expect(() => standardSignature(whsec, id, 1.5, body)).toThrow('whole Unix seconds');
  });
});

describe('secret format', () => {
  test.each([
    ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS', 'not standard base64'],
    ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa-w', 'not standard base64'],
    ['whsec_ MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'not standard base64'],
    ['whsec_YWJj', 'decodes to 3 key bytes'],
    [`whsec_${Buffer.alloc(65).toString('base64')}`, 'decodes to 65 key bytes'],
    ['', 'must not be empty'],
  ])('%j is refused: %s', (secret, problem) => {
    expect(standardSecretProblem(secret)).toContain(problem);
    expect(() => standardSigningKey(secret)).toThrow(problem);
  });

  test('raw secrets have no format to get wrong; a good whsec_ passes', () => {
    expect(standardSecretProblem('x')).toBeUndefined();
    expect(standardSecretProblem(nonAscii)).toBeUndefined();
    expect(standardSecretProblem(whsec)).toBeUndefined();
  });
});

describe('the official standardwebhooks library verifies what we send', () => {
  const now = new Date(timestamp * 1000 + 30_000);
  beforeEach(() => {
    // The library reads Date.now() for its 5-minute tolerance.
    jest.useFakeTimers({ now });
  });
  afterEach(() => {
    jest.useRealTimers();
  });
  const send = (secrets: string[]) => ({ ...standardHeaders(event, secrets, timestamp) }) as Record<string, string>;

  test('a whsec_ secret through new Webhook(secret)', () => {
    expect(new Webhook(whsec).verify(body, send([whsec]))).toEqual(JSON.parse(body));
  });

  test('an ASCII raw secret through { format: "raw" }', () => {
    expect(new Webhook('your-webhook-secret', { format: 'raw' }).verify(body, send(['your-webhook-secret']))).toEqual(JSON.parse(body));
  });

  test('a non-ASCII raw secret: base64 of its UTF-8 bytes, or the bytes themselves with { format: "raw" }', () => {
    const headers = send([nonAscii]);
    expect(new Webhook(Buffer.from(nonAscii, 'utf8').toString('base64')).verify(body, headers)).toEqual(JSON.parse(body));
    expect(new Webhook(new Uint8Array(Buffer.from(nonAscii, 'utf8')), { format: 'raw' }).verify(body, headers)).toEqual(JSON.parse(body));
    // The string form of the raw option takes char codes, which differ from UTF-8 here: the README must say so.
    expect(() => new Webhook(nonAscii, { format: 'raw' }).verify(body, headers)).toThrow('No matching signature found');
  });

  test('a rotated header with two signatures verifies with either secret', () => {
    const headers = send(['new-secret-value', whsec]);
    expect(headers['webhook-signature']!.split(' ')).toHaveLength(2);
    expect(new Webhook('new-secret-value', { format: 'raw' }).verify(body, headers)).toEqual(JSON.parse(body));
    expect(new Webhook(whsec).verify(body, headers)).toEqual(JSON.parse(body));
    expect(() => new Webhook(`whsec_${Buffer.alloc(32, 7).toString('base64')}`).verify(body, headers)).toThrow('No matching signature found');
  });

  test('a tampered body or id is rejected', () => {
    const headers = send([whsec]);
    expect(() => new Webhook(whsec).verify(body.replace('123', '124'), headers)).toThrow('No matching signature found');
    expect(() => new Webhook(whsec).verify(body, { ...headers, 'webhook-id': 'msg_other' })).toThrow('No matching signature found');
  });

  test('the library checks webhook-timestamp: an attempt stamped 10 minutes before its clock is refused', () => {
    expect(() => new Webhook(whsec).verify(body, { ...standardHeaders(event, [whsec], timestamp - 600) } as Record<string, string>)).toThrow(
      'Message timestamp too old',
    );
  });

  test('the library signs exactly what we sign', () => {
    expect(new Webhook(whsec).sign(id, new Date(timestamp * 1000), body)).toBe(standardSignature(whsec, id, timestamp, body));
    expect(new Webhook('your-webhook-secret', { format: 'raw' }).sign(id, new Date(timestamp * 1000), body)).toBe(
      standardSignature('your-webhook-secret', id, timestamp, body),
    );
  });
});

describe('verifyStandardSignature, against signatures the official library made', () => {
  const nowSeconds = timestamp + 30;
  const signedBy = (secret: string, options?: { format: 'raw' }, at = timestamp) => ({
    'webhook-id': id,
    'webhook-timestamp': String(at),
    'webhook-signature': new Webhook(secret, options).sign(id, new Date(at * 1000), body),
  });

  test('valid, and says which secret matched', () => {
    const result = verifyStandardSignature(signedBy(whsec), body, ['not-this-one', whsec], nowSeconds);
    expect(result).toMatchObject({ valid: true, verdict: 'valid', matched: 1 });
  });

  test('a raw secret, header names in any case, a Buffer body', () => {
    const headers = Object.fromEntries(Object.entries(signedBy('your-webhook-secret', { format: 'raw' })).map(([key, value]) => [key.toUpperCase(), value]));
    expect(verifyStandardSignature(headers, Buffer.from(body), ['your-webhook-secret'], nowSeconds)).toMatchObject({ valid: true, matched: 0 });
  });

  test('a rotated header: the second signature matches the only secret given', () => {
    const headers = signedBy(whsec);
    headers['webhook-signature'] =
      `${new Webhook('brand-new-secret', { format: 'raw' }).sign(id, new Date(timestamp * 1000), body)} ${headers['webhook-signature']}`;
    expect(verifyStandardSignature(headers, body, [whsec], nowSeconds)).toMatchObject({ valid: true, matched: 0 });
  });

  test('too old and too new, beyond the tolerance; the secret still named', () => {
    const old = verifyStandardSignature(signedBy(whsec), body, [whsec], timestamp + 301);
    expect(old).toMatchObject({ valid: false, verdict: 'too-old', matched: 0 });
    expect(old.explanation).toContain('301 s old');
    expect(verifyStandardSignature(signedBy(whsec), body, [whsec], timestamp + 300).valid).toBe(true);
    expect(verifyStandardSignature(signedBy(whsec), body, [whsec], timestamp - 301)).toMatchObject({ valid: false, verdict: 'too-new' });
    expect(verifyStandardSignature(signedBy(whsec), body, [whsec], timestamp + 3600, 7200).valid).toBe(true);
  });

  test('no match: wrong secret, or a tampered body', () => {
    expect(verifyStandardSignature(signedBy(whsec), body, ['other-secret'], nowSeconds)).toMatchObject({ valid: false, verdict: 'no-match' });
    expect(verifyStandardSignature(signedBy(whsec), `${body} `, [whsec], nowSeconds)).toMatchObject({ valid: false, verdict: 'no-match' });
  });

  test('a signer that read the secret the other way is named', () => {
    // A whsec_ secret used as plain text by the signer.
    const asText = signedBy(Buffer.from(whsec).toString('base64'));
    expect(verifyStandardSignature(asText, body, [whsec], nowSeconds).verdict).toBe('key-format');
    // A hex secret base64-decoded by the signer (new Webhook(secret) without { format: "raw" }).
    const hex = 'a'.repeat(64);
    const decoded = verifyStandardSignature(signedBy(hex), body, [hex], nowSeconds);
    expect(decoded.verdict).toBe('key-format');
    expect(decoded.explanation).toContain('format: "raw"');
  });

  test('missing headers, a bad timestamp, only v1a signatures, a malformed secret', () => {
    const good = signedBy(whsec);
    const { 'webhook-signature': _signature, ...unsigned } = good;
    const missing = verifyStandardSignature(unsigned, body, [whsec], nowSeconds);
    expect(missing.verdict).toBe('missing-headers');
    expect(missing.explanation).toContain('webhook-signature');
    expect(verifyStandardSignature({ ...good, 'webhook-timestamp': '1674087231.5' }, body, [whsec], nowSeconds).verdict).toBe('bad-timestamp');
    expect(verifyStandardSignature({ ...good, 'webhook-signature': 'v1a,abc' }, body, [whsec], nowSeconds).verdict).toBe('no-v1-signature');
    expect(verifyStandardSignature(good, body, ['whsec_!!'], nowSeconds)).toMatchObject({ verdict: 'bad-secret' });
    expect(verifyStandardSignature(good, body, [], nowSeconds)).toMatchObject({ verdict: 'bad-secret' });
  });
});
