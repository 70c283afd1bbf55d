/**
 * Credentials in a webhook URL (`https://alice:hunter2@host/`): never printed, and sent the way servers
 * expect them, as an Authorization header (fetch refuses or drops them in the URL).
 */

/** The URL to request, without its credentials, and the `Authorization: Basic` value they make (or null). */
export function splitUrlCredentials(target: string): { url: string; authorization: string | null } {
  // No "@", no user info: nothing to parse (this runs before every attempt).
  if (!target.includes('@')) return { url: target, authorization: null };
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return { url: target, authorization: null };
  }
  if (!url.username && !url.password) return { url: target, authorization: null };
  const user = decodeURIComponent(url.username);
  const password = decodeURIComponent(url.password);
  url.username = '';
  url.password = '';
  return { url: url.toString(), authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` };
}
