// What a webhook target and a signing secret may be: one set of rules for the config file, the settings, the CLI and endpoints.

// Length caps: a 200 MB string in a config file is a mistake to report, not to carry through every printer.
export const MAX_URL_LENGTH = 8192;
const MAX_SECRET_LENGTH = 1024;

/** An absolute http: or https: URL; returns a reason when it is not one. */
export function webhookUrlProblem(value: string): string | undefined {
  return httpUrlProblem(value, { what: 'a webhook URL', maxLength: MAX_URL_LENGTH, example: 'https://example.com/webhooks/licenses' });
}

/** Why `value` is not an absolute http(s) URL of at most `maxLength` characters ("is not an absolute URL (expected …)"). */
export function httpUrlProblem(value: string, rules: { what: string; maxLength: number; example: string }): string | undefined {
  if (value.length > rules.maxLength) return `is ${value.length} characters long; ${rules.what} may have at most ${rules.maxLength}`;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `is not an absolute URL (expected something like ${rules.example})`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `must use http: or https:, not ${url.protocol}`;
  if (!url.hostname) return 'has no host name';
  return undefined;
}

/** A secret that signs: not empty, not only spaces (a copy-paste slip), not absurdly long; a reason when it fails. */
/**
 * Which of the secrets given on the command line is refused: --secret-env's (the last, when given), or the nth
 * --secret; `count` is how many were given in all.
 */
export function secretLabel(index: number, count: number, secretEnv: string | undefined): string {
  if (secretEnv !== undefined && index === count - 1) return `--secret-env ${secretEnv}: the secret`;
  return count === 1 ? '--secret' : `--secret (the ${ordinal(index + 1)} of ${count})`;
}

function ordinal(n: number): string {
  const suffix = n % 100 >= 11 && n % 100 <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${suffix}`;
}

export function secretProblem(value: string): string | undefined {
  if (value.length === 0) return 'must not be empty';
  if (value.trim().length === 0) return 'must not be only whitespace';
  if (value.length > MAX_SECRET_LENGTH) return `is ${value.length} characters long; at most ${MAX_SECRET_LENGTH} are accepted`;
  return undefined;
}
