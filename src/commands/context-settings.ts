import type { Kysely } from 'kysely';
import { botbleSettingsLayer, botbleSwitchNote, BOTBLE_SETTINGS } from '../config/botble-settings.js';
import type { LoadedConfig } from '../config/load-config.js';
import { resolveConfig, type EffectiveSetting, type ResolvedConfig } from '../config/settings.js';
import { readBotbleSettings } from '../storage/botble.repository.js';
import type { Database } from '../storage/database.table.js';
import { readSettings } from '../storage/settings.repository.js';

/**
 * The settings layers of the database: our settings table, and in Botble mode Botble's License Manager
 * rows in its `settings` table, which take the place of ours for the keys Botble has.
 */
export async function resolveFromDatabase(
  db: Kysely<Database>,
  loaded: LoadedConfig,
  env: NodeJS.ProcessEnv,
  stored?: Map<string, string>,
): Promise<ResolvedConfig> {
  const own = stored ?? (await readSettings(db));
  if (loaded.config.licenses.source !== 'botble') return resolveConfig(loaded, own, env);
  for (const key of Object.values(BOTBLE_SETTINGS)) own.delete(key);
  const rows = await readBotbleSettings(db);
  const resolved = resolveConfig(loaded, own, env, botbleSettingsLayer(rows));
  // Botble's switch for its own cron job is shown beside the setting that decides here.
  const note = botbleSwitchNote(rows.get('lm_send_expiration_warnings'));
  return { ...resolved, settings: resolved.settings.map((setting) => (setting.key === 'webhooks-enabled' ? { ...setting, note } : setting)) };
}

/** What was made of a stored value that is only used in part: said by every command, so the cron mail carries it. */
export function settingWarnings(settings: EffectiveSetting[]): string[] {
  return settings.flatMap((setting) => (setting.warning === undefined ? [] : [setting.warning]));
}
