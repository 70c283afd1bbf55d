import fs from 'node:fs';
import type { LoadedConfig } from '../config/load-config.js';
import type { EffectiveSetting } from '../config/settings.js';
import { hasCredentials } from '../credentials.js';
import { databaseFileOf, looksLikeUrl, type DatabaseTarget } from '../storage/database-target.js';

/** Whether a `database.url` carries a password (`postgres://user:password@host/db`, `?password=`); a SQLite path has none. */
function urlHasPassword(value: string | null | undefined): boolean {
  return Boolean(value && looksLikeUrl(value) && hasCredentials(value));
}

/**
 * The files that hold a secret: the config file (the webhook secret and webhook URL credentials when they are
 * the ones used, the password in `database.url` always: the file holds it even when LICENSE_MANAGER_DB points
 * the run elsewhere), and the SQLite file when the secret is stored there. Without `settings` (the database
 * could not be opened) what the config file holds.
 */
export function fileSecrets(loaded: LoadedConfig, database: DatabaseTarget, settings?: EffectiveSetting[]): Array<[string | undefined, string]> {
  const held: Array<[string | undefined, string]> = [];
  const setting = (key: string) => settings?.find((candidate) => candidate.key === key);
  const secret = setting('webhook-secret');
  if (secret && secret.value !== null) {
    // A server database's permissions are the server's business: only files are checked.
    if (secret.source === 'config') held.push([loaded.filepath, 'the webhook secret']);
    const file = databaseFileOf(database);
    if (secret.source === 'settings' && file !== undefined) held.push([file, 'the webhook secret']);
  }
  if (!settings && loaded.config.webhooks.secret) held.push([loaded.filepath, 'the webhook secret']);
  if (urlHasPassword(loaded.config.database.url)) held.push([loaded.filepath, 'the database password (database.url)']);
  const fileUrl = loaded.config.webhooks.url;
  if (fileUrl && hasCredentials(fileUrl) && (!settings || setting('webhook-url')?.source === 'config'))
    held.push([loaded.filepath, 'credentials in webhooks.url']);
  return held;
}

/**
 * One warning per file that holds a secret and that the group or others can read (mode & 0o044): a warning, not a
 * refusal, so a run goes on.
 */
export function exposedSecretWarnings(holds: Array<[string | undefined, string]>): string[] {
  if (process.platform === 'win32') return [];
  const held = new Map<string, string[]>();
  for (const [file, what] of holds) if (file) held.set(file, [...(held.get(file) ?? []), what]);
  return [...held].flatMap(([file, what]) => {
    let mode: number;
    try {
      mode = fs.statSync(file).mode;
    } catch {
      return [];
    }
    if ((mode & 0o044) === 0) return [];
    return [
      `${file} holds ${what.join(' and ')} and other users can read it (mode ${(mode & 0o777).toString(8)}): run "chmod 600 ${file}" (and chown it to the user the job runs as).`,
    ];
  });
}
