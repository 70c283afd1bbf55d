import { usageError } from '../errors.js';
import type { BotbleSettingKey } from '../storage/botble.repository.js';
import type { ForeignSetting, SettingKey } from './settings.js';

/** Where a Botble operator changes the webhook settings. */
export const BOTBLE_ADMIN_PAGE = 'License Manager → Settings → General';

const FIX = `Change it in the Botble admin, ${BOTBLE_ADMIN_PAGE}.`;

/** How to change a setting: with `settings set`, or in Botble's admin when Botble owns it. */
export function settingAdvice(source: 'own' | 'botble', key: SettingKey, value: string): string {
  if (source === 'botble' && botbleKeyOf(key)) return `set ${key} in the Botble admin (${BOTBLE_ADMIN_PAGE})`;
  return `run "license-manager settings set ${key} ${value}"`;
}

/** Which of our settings each Botble key is. */
export const BOTBLE_SETTINGS: Record<BotbleSettingKey, SettingKey> = {
  lm_enable_webhooks: 'webhooks-enabled',
  lm_webhook_url: 'webhook-url',
  lm_webhook_secret: 'webhook-secret',
  lm_expiration_warning_days: 'warning-days',
};

/** The Botble key behind one of our settings, when Botble owns it. */
export function botbleKeyOf(key: SettingKey): BotbleSettingKey | undefined {
  return (Object.keys(BOTBLE_SETTINGS) as BotbleSettingKey[]).find((botbleKey) => BOTBLE_SETTINGS[botbleKey] === key);
}

// PHP's loose truthiness for a checkbox stored as text, limited to what an admin form writes.
const TRUE_TEXT = new Set(['1', 'true', 'on', 'yes']);
const FALSE_TEXT = new Set(['0', '', 'false', 'off', 'no']);

/**
 * Botble's stored strings as our settings read them. A missing row is left out (the config file and our
 * defaults, which are Botble's defaults, apply); an empty URL or secret is an explicit "none" (unsigned).
 */
export function botbleSettingsLayer(rows: ReadonlyMap<BotbleSettingKey, string>): Map<SettingKey, ForeignSetting> {
  const layer = new Map<SettingKey, ForeignSetting>();
  for (const [botbleKey, value] of rows) {
    const key = BOTBLE_SETTINGS[botbleKey];
    const origin = `Botble setting ${botbleKey}`;
    layer.set(key, { text: botbleText(botbleKey, value, origin), origin, fix: FIX });
  }
  return layer;
}

function botbleText(key: BotbleSettingKey, value: string, origin: string): string | null {
  switch (key) {
    case 'lm_enable_webhooks': {
      const text = value.trim().toLowerCase();
      if (TRUE_TEXT.has(text)) return 'true';
      if (FALSE_TEXT.has(text)) return 'false';
      throw usageError(`Invalid ${origin}: "${value.slice(0, 50)}" is neither '1' nor '0'. ${FIX}`);
    }
    case 'lm_webhook_url':
      return value.trim() === '' ? null : value;
    case 'lm_webhook_secret':
      return value === '' ? null : value;
    case 'lm_expiration_warning_days': {
      // As Botble reads it: empty items and 0 are dropped; nothing left means no warnings.
      const days = value
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item !== '' && !/^0+$/.test(item));
      return days.length === 0 ? 'none' : days.join(',');
    }
  }
}
