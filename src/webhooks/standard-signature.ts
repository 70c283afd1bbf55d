// Standard Webhooks signing and verification (https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md), beside Botble's X-Webhook-Signature.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { OutgoingEvent } from './headers.js';
import { STANDARD_SECRET_PREFIX, standardSecretProblem } from './standard-secret.js';

/** The official libraries' default tolerance for webhook-timestamp: 5 minutes either way. */
const DEFAULT_TOLERANCE_SECONDS = 5 * 60;

export interface StandardHeaders {
  'webhook-id': string;
  'webhook-timestamp': string;
  /** Absent when the endpoint has no secret: there is nothing to sign with. */
  'webhook-signature'?: string;
}

/** The HMAC key a secret stands for: the decoded bytes of a `whsec_` secret, else the secret's UTF-8 bytes (what Botble's signature uses too). */
export function standardSigningKey(secret: string): Buffer {
  const problem = standardSecretProblem(secret);
  if (problem) throw new TypeError(`Standard Webhooks secret ${problem}`);
  return secret.startsWith(STANDARD_SECRET_PREFIX) ? Buffer.from(secret.slice(STANDARD_SECRET_PREFIX.length), 'base64') : Buffer.from(secret, 'utf8');
}

function signWithKey(key: Buffer, id: string, timestampSeconds: number, body: string | Buffer): string {
  // "{msg_id}.{timestamp}.{payload}" over the exact body bytes (spec, "Signature scheme").
  const mac = createHmac('sha256', key).update(`${id}.${timestampSeconds}.`).update(body).digest('base64');
  return `v1,${mac}`;
}

function checkSignedParts(id: string, timestampSeconds: number): void {
  // The spec: the id and timestamp "not be allowed to include any `.`", or one signed string could stand for another split.
  if (id.length === 0 || id.includes('.')) throw new TypeError(`webhook-id must be non-empty and contain no ".": ${JSON.stringify(id)}`);
  if (!Number.isSafeInteger(timestampSeconds) || timestampSeconds < 0) throw new TypeError(`webhook-timestamp must be whole Unix seconds: ${timestampSeconds}`);
}

/** `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` with one secret. */
export function standardSignature(secret: string, id: string, timestampSeconds: number, body: string | Buffer): string {
  checkSignedParts(id, timestampSeconds);
  return signWithKey(standardSigningKey(secret), id, timestampSeconds, body);
}

/**
 * The three Standard Webhooks headers for one attempt. `secrets` are the endpoint's valid secrets,
 * current first: during a rotation webhook-signature carries one signature per secret, space-separated,
 * and a receiver accepts the request if any one matches (spec, "Webhook headers").
 */
export function standardHeaders(event: Pick<OutgoingEvent, 'eventId' | 'body'>, secrets: readonly string[], timestampSeconds: number): StandardHeaders {
  checkSignedParts(event.eventId, timestampSeconds);
  const headers: StandardHeaders = { 'webhook-id': event.eventId, 'webhook-timestamp': String(timestampSeconds) };
  const signatures = [...new Set(secrets)].map((secret) => signWithKey(standardSigningKey(secret), event.eventId, timestampSeconds, event.body));
  if (signatures.length > 0) headers['webhook-signature'] = signatures.join(' ');
  return headers;
}

export type StandardVerdict =
  'valid' | 'missing-headers' | 'bad-secret' | 'bad-timestamp' | 'too-old' | 'too-new' | 'no-v1-signature' | 'key-format' | 'no-match';

export interface StandardVerifyResult {
  valid: boolean;
  verdict: StandardVerdict;
  /** Index in `secrets` of the secret whose signature matched (also set when only the timestamp failed). */
  matched?: number;
  /** What went wrong and what to do, for a person. */
  explanation: string;
}

export type HeaderBag = Readonly<Record<string, string | readonly string[] | undefined>>;

/** Header names are case-insensitive; a repeated header (Node gives an array) is joined the way HTTP joins list values. */
export function header(headers: HeaderBag, name: string): string | undefined {
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() !== name || value === undefined) continue;
    return typeof value === 'string' ? value : value.join(' ');
  }
  return undefined;
}

function same(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/** The key a sender that read the secret the other way would have used: the mistake `key-format` names. */
function misreadKey(secret: string): Buffer | undefined {
  if (secret.startsWith(STANDARD_SECRET_PREFIX)) return Buffer.from(secret, 'utf8');
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(secret) && secret.length % 4 === 0) return Buffer.from(secret, 'base64');
  return undefined;
}

/**
 * Checks a request's Standard Webhooks headers against each of `secrets` (current first), as a
 * receiver should, and says which secret matched or why none did. `nowSeconds` is the receiver's clock.
 */
export function verifyStandardSignature(
  headers: HeaderBag,
  body: string | Buffer,
  secrets: readonly string[],
  nowSeconds: number,
  toleranceSeconds: number = DEFAULT_TOLERANCE_SECONDS,
): StandardVerifyResult {
  const result = (verdict: StandardVerdict, explanation: string, matched?: number): StandardVerifyResult => ({
    valid: verdict === 'valid',
    verdict,
    explanation,
    ...(matched === undefined ? {} : { matched }),
  });
  const id = header(headers, 'webhook-id');
  const timestamp = header(headers, 'webhook-timestamp');
  const signature = header(headers, 'webhook-signature');
  const missing = [
    id === undefined ? 'webhook-id' : '',
    timestamp === undefined ? 'webhook-timestamp' : '',
    signature === undefined ? 'webhook-signature' : '',
  ].filter(Boolean);
  if (id === undefined || timestamp === undefined || signature === undefined) {
    return result(
      'missing-headers',
      `The request has no ${missing.join(', ')} header: is the endpoint's signing "standard" or "both", and does it have a secret?`,
    );
  }
  if (secrets.length === 0) return result('bad-secret', 'No secret to check with: give at least one --secret.');
  for (const [index, secret] of secrets.entries()) {
    const problem = standardSecretProblem(secret);
    if (problem) return result('bad-secret', `Secret ${index + 1} ${problem}.`);
  }
  const trimmedTimestamp = timestamp.trim();
  if (!/^\d{1,15}$/.test(trimmedTimestamp)) {
    return result('bad-timestamp', `webhook-timestamp is ${JSON.stringify(timestamp)}; it must be whole Unix seconds, e.g. 1674087231.`);
  }
  const sentAt = Number(trimmedTimestamp);
  // Other schemes (v1a is the spec's asymmetric one) are skipped, as the official libraries do.
  const given = signature
    .split(' ')
    .filter((part) => part.startsWith('v1,'))
    .map((part) => part.slice(3));
  if (given.length === 0) {
    return result(
      'no-v1-signature',
      `webhook-signature has no "v1,<base64>" entry (got ${JSON.stringify(signature.slice(0, 120))}); only HMAC-SHA256 (v1) signatures are checked.`,
    );
  }
  const matches = (key: Buffer) => {
    const expected = signWithKey(key, id, sentAt, body).slice(3);
    return given.some((candidate) => same(candidate, expected));
  };
  const matched = secrets.findIndex((secret) => matches(standardSigningKey(secret)));
  if (matched === -1) {
    const misread = secrets.findIndex((secret) => {
      const key = misreadKey(secret);
      return key !== undefined && key.length > 0 && matches(key);
    });
    if (misread !== -1) {
      const isWhsec = secrets[misread]!.startsWith(STANDARD_SECRET_PREFIX);
      return result(
        'key-format',
        isWhsec
          ? `The signature was made with secret ${misread + 1} used as plain text, not as the base64 key after "${STANDARD_SECRET_PREFIX}": the signer must decode it (the official libraries do, without { format: "raw" }).`
          : `The signature was made with secret ${misread + 1} base64-decoded, but this tool signs with a secret's UTF-8 bytes unless it starts with "${STANDARD_SECRET_PREFIX}": verify with the library's raw-key option (new Webhook(secret, { format: "raw" })).`,
      );
    }
    return result(
      'no-match',
      `No signature in webhook-signature matches any of the ${secrets.length} secret(s) for this id, timestamp and body: check the secret, and verify the raw request bytes before parsing them.`,
    );
  }
  if (nowSeconds - sentAt > toleranceSeconds) {
    return result(
      'too-old',
      `The signature matches secret ${matched + 1}, but webhook-timestamp is ${nowSeconds - sentAt} s old (tolerance ${toleranceSeconds} s): a replayed request, or a clock that is off.`,
      matched,
    );
  }
  if (sentAt - nowSeconds > toleranceSeconds) {
    return result(
      'too-new',
      `The signature matches secret ${matched + 1}, but webhook-timestamp is ${sentAt - nowSeconds} s in the future (tolerance ${toleranceSeconds} s): one of the two clocks is off.`,
      matched,
    );
  }
  return result('valid', `The signature is valid (secret ${matched + 1} of ${secrets.length}).`, matched);
}
