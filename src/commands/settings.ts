import { BOTBLE_ADMIN_PAGE, botbleKeyOf } from '../config/botble-settings.js';
import { assertSettingKey, maskSecret, parseSetting, revealSetting, SETTINGS, type EffectiveSetting, type SettingKey } from '../config/settings.js';
import { usageError } from '../errors.js';
import { deleteSetting, writeSetting } from '../storage/settings.repository.js';
import { formatUtc } from '../time.js';
import type { CommandContext } from './context.js';

export function settingsList(context: CommandContext): EffectiveSetting[] {
  return context.settings;
}

/** One setting; `reveal` gives the secret itself (the only way to read it back: never in `list`, never logged). */
export function settingsGet(context: CommandContext, key: string, options: { reveal?: boolean } = {}): EffectiveSetting {
  const known = assertSettingKey(key);
  const setting = context.settings.find((candidate) => candidate.key === known)!;
  if (!options.reveal || !SETTINGS[known].secret || setting.invalid) return setting;
  return { ...setting, value: revealSetting(known, context.config) };
}

export interface SettingChange {
  key: string;
  /** What is stored now (masked for the secret), or null after unset. */
  stored: string | null;
  /** Set when an environment variable overrides the stored value, so the change has no effect yet. */
  shadowedBy?: string;
  removed?: boolean;
}

function shadow(context: CommandContext, key: string): string | undefined {
  const current = context.settings.find((setting) => setting.key === key);
  return current?.source === 'env' ? current.origin : undefined;
}

/** In Botble mode the webhook settings are Botble's: this tool never writes them. */
function refuseBotbleSetting(context: CommandContext, key: SettingKey, verb: 'set' | 'unset'): void {
  const botbleKey = context.licenses.kind === 'botble' ? botbleKeyOf(key) : undefined;
  if (botbleKey === undefined) return;
  throw usageError(
    `Cannot ${verb} ${key} here: in Botble mode it is read from Botble's settings table (${botbleKey}), which this tool never writes. Change it in the Botble admin, ${BOTBLE_ADMIN_PAGE}.`,
  );
}

/** `settings set`: validates first; a bad value is exit 2 and the old value stays. */
export async function settingsSet(context: CommandContext, key: string, value: string, now: Date): Promise<SettingChange> {
  const known = assertSettingKey(key);
  refuseBotbleSetting(context, known, 'set');
  const text = parseSetting(known, value);
  await writeSetting(context.db, known, text, formatUtc(now));
  const stored = SETTINGS[known].secret ? maskSecret(text) : text;
  return { key: known, stored, shadowedBy: shadow(context, known) };
}

export async function settingsUnset(context: CommandContext, key: string): Promise<SettingChange> {
  const known = assertSettingKey(key);
  refuseBotbleSetting(context, known, 'unset');
  const removed = await deleteSetting(context.db, known);
  return { key: known, stored: null, removed, shadowedBy: shadow(context, known) };
}
