/**
 * Credentials in a webhook URL (`https://alice:hunter2@host/`): never printed, and sent the way servers
 * expect them, as an Authorization header (fetch refuses or drops them in the URL).
 */

// scheme://user:password@ — the user name is kept (it helps to tell targets apart), the password is not.
const USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/[^\s/?#@:]*):[^\s/?#@]*@/gi;

/** Masks the password of every URL in `text` (a URL, a message, a JSON document) as `****`. */
export function maskUrlCredentials(text: string): string {
  return text.replace(USERINFO, '$1:****@');
}

/** The URL to request, without its credentials, and the `Authorization: Basic` value they make (or null). */
export function splitUrlCredentials(target: string): { url: string; authorization: string | null } {
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
