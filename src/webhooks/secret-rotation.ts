// An endpoint's signing secrets over time: the current one plus earlier ones that stay valid for a window, so a receiver can switch without failed deliveries.
import { secretProblem } from './target.js';
import { formatUtc } from '../time.js';
import { STANDARD_SECRET_PREFIX, standardSecretProblem } from './standard-secret.js';

/** Svix keeps at most 10 earlier keys (MAX_OLD_KEYS); more would make every request carry a long signature list. */
export const MAX_PREVIOUS_SECRETS = 10;
/** How long the old secret stays valid when `--keep-previous` is not given: Stripe's and Svix's 24 hours. */
export const DEFAULT_KEEP_PREVIOUS_MS = 24 * 60 * 60 * 1000;
/** The longest overlap accepted: the ceiling the senders we compare with use (7 to 30 days); longer is a forgotten rotation. */
const MAX_KEEP_PREVIOUS_MS = 30 * 24 * 60 * 60 * 1000;

interface PreviousSecret {
  secret: string;
  /** The first instant it is no longer valid, `YYYY-MM-DDTHH:MM:SSZ` (stored as text, like every time). */
  validUntil: string;
}

/** Serialisable as it is. An endpoint without a secret has no state: there is nothing to rotate. */
export interface SecretState {
  current: string;
  /** Most recently replaced first. */
  previous: PreviousSecret[];
}

export type RotateResult =
  | {
      state: SecretState;
      /** Earlier secrets that were still valid at `now` and no longer are (a revoke, or past MAX_PREVIOUS_SECRETS). */
      revoked: number;
    }
  | { problem: string };

const stillValid = (entry: PreviousSecret, now: Date) => Date.parse(entry.validUntil) > now.getTime();

/**
 * Makes `newSecret` current. The old current secret stays valid until `now + keepPreviousMs`; earlier
 * ones keep their own end. `keepPreviousMs` 0 revokes every earlier secret at once (a leaked secret).
 * Past MAX_PREVIOUS_SECRETS the ones that would end soonest go first.
 */
export function rotate(state: SecretState, newSecret: string, now: Date, keepPreviousMs: number): RotateResult {
  const problem = secretProblem(newSecret) ?? standardSecretProblem(newSecret);
  if (problem) return { problem: `The new secret ${problem}.` };
  if (newSecret === state.current) return { problem: 'The new secret is the current one: give another, or leave --secret out to generate one.' };
  if (!Number.isSafeInteger(keepPreviousMs) || keepPreviousMs < 0 || keepPreviousMs > MAX_KEEP_PREVIOUS_MS) {
    return { problem: `The old secret can stay valid for 0 ms to ${MAX_KEEP_PREVIOUS_MS} ms (30 days), not ${keepPreviousMs}.` };
  }
  const valid = state.previous.filter((entry) => stillValid(entry, now));
  // Stored times are whole seconds: round the end up, so the old secret is valid for at least the window.
  const until = formatUtc(new Date(Math.ceil((now.getTime() + keepPreviousMs) / 1000) * 1000));
  // A secret made current again is no longer "previous"; the old current one goes to the front.
  const candidates = [{ secret: state.current, validUntil: until }, ...valid].filter(
    (entry, index, all) => entry.secret !== newSecret && all.findIndex((other) => other.secret === entry.secret) === index,
  );
  const previous =
    keepPreviousMs === 0
      ? []
      : candidates
          .map((entry, order) => ({ entry, order }))
          .sort((a, b) => Date.parse(b.entry.validUntil) - Date.parse(a.entry.validUntil) || a.order - b.order)
          .slice(0, MAX_PREVIOUS_SECRETS)
          .sort((a, b) => a.order - b.order)
          .map(({ entry }) => entry);
  return { state: { current: newSecret, previous }, revoked: candidates.length - previous.length };
}

/** The secrets a request is signed with at `now`: the current one first, then the earlier ones still valid, most recent first. */
export function validSecrets(state: SecretState, now: Date): string[] {
  return [...new Set([state.current, ...state.previous.filter((entry) => stillValid(entry, now)).map((entry) => entry.secret)])];
}

const UNIT_MS = { s: 1000, m: 60 * 1000, h: 60 * 60 * 1000, d: 24 * 60 * 60 * 1000 } as const;

/** `--keep-previous`: `0`, or a whole number with s, m, h or d (`3600s`, `90m`, `24h`, `7d`); at most 30 days. */
export function parseDuration(text: string): { ms: number } | { problem: string } {
  const value = text.trim();
  const example = 'e.g. 24h, 90m, 7d, 3600s, or 0 to revoke at once';
  if (value === '0') return { ms: 0 };
  if (value === '') return { problem: `a duration is needed (${example})` };
  if (value.startsWith('-')) return { problem: `"${text}" is negative; a duration is 0 or more (${example})` };
  if (/^\d+$/.test(value)) return { problem: `"${text}" has no unit: write ${value}s, ${value}m, ${value}h or ${value}d` };
  if (/^\d*[.,]\d+\s*[smhd]$/i.test(value)) return { problem: `"${text}" is a fraction; use whole units of a smaller one (90m, not 1.5h)` };
  const match = /^(\d+)([smhd])$/.exec(value);
  if (!match) return { problem: `"${text}" is not a duration (${example})` };
  const ms = Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
  if (ms > MAX_KEEP_PREVIOUS_MS) return { problem: `"${text}" is longer than 30 days, the longest an old secret may stay valid` };
  return { ms };
}

/**
 * A new secret from 32 random bytes (256 bits, the spec's range is 24 to 64 bytes). Hex by default:
 * what `openssl rand -hex 32` gives Botble operators today, safe in shells, env files, YAML and URLs, and
 * ASCII, so a receiver's raw-key option sees the same bytes we sign with (base64url could also start
 * with "-" and read as a command-line option). `whsec` gives the spec's own form for a `standard`
 * endpoint, which the official libraries take without any option.
 */
export function generateSecret(format: 'hex' | 'whsec' = 'hex'): string {
  // Web Crypto's generator (the same CSPRNG as node:crypto's randomBytes), so that checking a secret on the
  // command line does not load node:crypto.
  const bytes = Buffer.from(globalThis.crypto.getRandomValues(new Uint8Array(32)));
  return format === 'hex' ? bytes.toString('hex') : `${STANDARD_SECRET_PREFIX}${bytes.toString('base64')}`;
}
