import { timingSafeEqual } from 'node:crypto';
import { signBody } from './sign.js';
import { header, verifyStandardSignature, type HeaderBag, type StandardVerdict } from './standard-signature.js';

/** Bodies beyond this are refused unread by `listen` and `verify`: an event is well under 1 KiB, and `listen` may face the internet. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

type VerifyVerdict =
  | 'valid'
  | 'empty-secret'
  | 'missing-signature'
  | 'sha256-prefix'
  | 'uppercase-hex'
  | 'malformed-signature'
  | 'trailing-newline'
  | 're-serialised'
  | 'wrong-secret-or-body';

export interface VerifyResult {
  valid: boolean;
  verdict: VerifyVerdict;
  /** What most likely went wrong and what to do, for a person. */
  explanation: string;
  /** The signature this body and secret give. */
  expected: string;
}

const REFERENCE_ORDER = ['event_type', 'timestamp', 'payload'];
const PAYLOAD_ORDER = [
  'license_id',
  'license_code',
  'product_id',
  'product_reference_id',
  'customer_id',
  'email',
  'expires_at',
  'days_until_expiry',
  'expired_at',
  'days_since_expiry',
  'updates_until',
];

/** Constant-time; the lengths compared are in bytes, as timingSafeEqual's are (a non-ASCII header differs). */
function same(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

function ordered(value: Record<string, unknown>, order: string[]): Record<string, unknown> {
  const keys = [...order.filter((key) => key in value), ...Object.keys(value).filter((key) => !order.includes(key))];
  return Object.fromEntries(keys.map((key) => [key, value[key]]));
}

/** The compact serialisations the tool could have sent for a body that a receiver re-serialised. */
function reserialisations(body: Buffer): string[] {
  let data: unknown;
  try {
    data = JSON.parse(body.toString('utf8'));
  } catch {
    return [];
  }
  const forms = [JSON.stringify(data)];
  if (data && typeof data === 'object' && !Array.isArray(data)) {
    const event = ordered(data as Record<string, unknown>, REFERENCE_ORDER);
    if (event.payload && typeof event.payload === 'object') event.payload = ordered(event.payload as Record<string, unknown>, PAYLOAD_ORDER);
    forms.push(JSON.stringify(event));
  }
  return forms;
}

/** Checks a signature the way a receiver should, and when it fails says the most likely reason. */
export function verifySignature(body: Buffer, signature: string, secret: string): VerifyResult {
  const expected = secret ? signBody(body, secret) : '';
  const result = (verdict: VerifyVerdict, explanation: string): VerifyResult => ({ valid: verdict === 'valid', verdict, explanation, expected });
  if (!secret)
    return result('empty-secret', 'The secret is empty. Use the value of "license-manager settings" webhook-secret (or LICENSE_MANAGER_WEBHOOK_SECRET).');
  const given = signature.trim();
  if (!given) return result('missing-signature', 'No signature: the request had no X-Webhook-Signature header (is a secret set on the sending side?).');
  if (same(given, expected)) return result('valid', 'The signature is valid.');
  if (/^sha256=/i.test(given) && same(given.slice(7).toLowerCase(), expected)) {
    return result('sha256-prefix', 'The signature carries a "sha256=" prefix; X-Webhook-Signature is the bare hex digest. Compare without the prefix.');
  }
  if (same(given.toLowerCase(), expected))
    return result('uppercase-hex', 'The signature is upper-case hex; the tool sends lower-case. Compare lower-case hex.');
  // Anything but 64 hex characters (after the sha256= some senders add) was cut short or mangled on its way here: no secret makes it match.
  const hex = given.replace(/^sha256=/i, '');
  if (!/^[0-9a-f]{64}$/i.test(hex)) {
    const shape = /^[0-9a-f]*$/i.test(hex) ? `${hex.length} characters, not 64` : 'not hexadecimal';
    return result(
      'malformed-signature',
      `The signature is ${shape}: it looks truncated or malformed. X-Webhook-Signature is the HMAC-SHA256 of the raw body as 64 lower-case hex characters (0-9, a-f); copy the whole header value.`,
    );
  }
  const text = body.toString('utf8');
  const trimmed = text.replace(/\r?\n+$/, '');
  if (trimmed !== text && same(given, signBody(trimmed, secret))) {
    return result('trailing-newline', 'The body has a trailing newline the tool did not send (an editor or echo added it). Sign the raw request bytes.');
  }
  if (reserialisations(body).some((form) => same(given, signBody(form, secret)))) {
    return result(
      're-serialised',
      'The body was re-serialised (whitespace or key order changed, e.g. JSON.parse then JSON.stringify, or a framework body parser). Verify the raw request bytes before parsing.',
    );
  }
  return result(
    'wrong-secret-or-body',
    'No match: most likely the wrong secret, or the body was changed in a way that cannot be undone. Check the secret on both sides.',
  );
}

/** A request checked against several secrets and both schemes: which secret (1-based) and which scheme matched. */
export interface RequestVerifyResult extends Omit<VerifyResult, 'verdict'> {
  /** Botble's verdicts for X-Webhook-Signature, the Standard Webhooks ones (too-old, no-match, ...) for webhook-signature. */
  verdict: VerifyVerdict | StandardVerdict;
  /** The scheme whose result this is: the one that matched, or the first one the request carries. */
  scheme: 'botble' | 'standard';
  /** 1-based position of the secret whose signature matched, also when only the timestamp failed; null when none did. */
  secret: number | null;
}

/**
 * Checks a request as a receiver of a rotated endpoint would: X-Webhook-Signature against each secret, and the
 * Standard Webhooks headers (when present) against all of them. Valid when either scheme matches with any
 * secret; the result names the scheme and the secret. Without any signature header, Botble's "missing" verdict.
 */
export function verifyRequest(body: Buffer, headers: HeaderBag, secrets: readonly string[], nowSeconds: number): RequestVerifyResult {
  const botble = header(headers, 'x-webhook-signature');
  const standard = header(headers, 'webhook-signature');
  const results: RequestVerifyResult[] = [];
  if (botble !== undefined || standard === undefined) {
    const each = secrets.map((secret) => verifySignature(body, botble ?? '', secret));
    const matched = each.findIndex((result) => result.valid);
    results.push({ ...(each[matched] ?? each[0] ?? verifySignature(body, botble ?? '', '')), scheme: 'botble', secret: matched === -1 ? null : matched + 1 });
  }
  if (standard !== undefined) {
    // Its own verdict (too-old, no-match, ...), not Botble's: "wrong secret" beside "the signature matches secret 1" misleads.
    const result = verifyStandardSignature(headers, body, secrets, nowSeconds);
    results.push({
      valid: result.valid,
      verdict: result.verdict,
      explanation: result.explanation,
      expected: '',
      scheme: 'standard',
      secret: result.matched === undefined ? null : result.matched + 1,
    });
  }
  return results.find((result) => result.valid) ?? results[0]!;
}
