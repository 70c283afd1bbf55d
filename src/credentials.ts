/**
 * Every form a credential takes in what this tool prints, masked as `****`: the password of a URL
 * (`postgres://app:secret@db/licenses`, also when a `/` or `@` in it makes the URL unparsable), and query
 * parameters that carry one (`?password=` and `&sslpassword=`, which pg honours; `?token=`, `?sig=` in a webhook
 * URL). Applied at the CLI's edge to everything printed, and to what is written to files and the runs table.
 */

// scheme://user:password@ — the user name is kept (it tells targets apart). The password runs to the last "@"
// of the word: a password with "/" or "@" in it is masked whole, never cut at its first "/".
// Also without the scheme's ":" (`postgres//app:secret@db`, a typo that must not print the password either).
const USERINFO = /(\/\/[^\s/?#@:"'<>]*):[^\s"'<>]+@/g;

// Query parameters whose value is a credential (a password, a token, a signature).
const SECRET_PARAMETER =
  /([?&;](?:[a-z0-9_.-]*(?:password|passwd|pwd|secret|token|apikey|api_key|api-key|auth|sig|signature|credential)[a-z0-9_.-]*|key)=)[^&#\s"'<>]*/gi;

/** `text` (a URL, a message, a JSON document) with every credential in it replaced by `****`. */
export function maskCredentials(text: string): string {
  return text.replace(USERINFO, '$1:****@').replace(SECRET_PARAMETER, '$1****');
}

/** Whether `value` (a URL) carries a credential: a password, or a query parameter that holds one. */
export function hasCredentials(value: string): boolean {
  return maskCredentials(value) !== value;
}

/**
 * Why a URL with a password does not parse, when that is the cause: a "/", "?", "#" or "@" in the password ends
 * the part a URL parser reads as user and password. Says which character and how to write it; quotes nothing.
 */
export function passwordProblem(value: string): string | undefined {
  const userinfo = /^[a-z][a-z0-9+.-]*:\/\/([^\s]*)@/i.exec(value)?.[1];
  const password = userinfo?.includes(':') ? userinfo.slice(userinfo.indexOf(':') + 1) : undefined;
  const bad = password?.match(/[/?#@]/)?.[0];
  if (!bad) return undefined;
  return `the password contains "${bad}", which ends the user and password part of a URL: write it as ${encodeURIComponent(bad)}`;
}
