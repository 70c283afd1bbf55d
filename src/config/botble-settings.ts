import { usageError } from '../errors.js';
import type { BotbleSettingKey } from '../storage/botble.repository.js';
import { MAX_WARNING_DAY } from './schema.js';
import type { ForeignSetting, SettingKey } from './settings.js';
import { commandLine } from '../command-line.js';

/** Where a Botble operator changes the webhook settings. */
export const BOTBLE_ADMIN_PAGE = 'License Manager → Settings → General';

const FIX = `Change it in the Botble admin, ${BOTBLE_ADMIN_PAGE}.`;

/** How to change a setting: with `settings set`, or in Botble's admin when Botble owns it. */
export function settingAdvice(source: 'own' | 'botble', key: SettingKey, value: string): string {
  if (source === 'botble' && botbleKeyOf(key)) return `set ${key} in the Botble admin (${BOTBLE_ADMIN_PAGE})`;
  return `run "${commandLine(`settings set ${key} ${value}`)}"`;
}

/** The Botble keys that are one of our settings (lm_send_expiration_warnings is none: see botbleSwitchNote). */
type OwnedBotbleKey = Exclude<BotbleSettingKey, 'lm_send_expiration_warnings'>;

/** Which of our settings each Botble key is. */
export const BOTBLE_SETTINGS: Record<OwnedBotbleKey, SettingKey> = {
  lm_enable_webhooks: 'webhooks-enabled',
  lm_webhook_url: 'webhook-url',
  lm_webhook_secret: 'webhook-secret',
  lm_expiration_warning_days: 'warning-days',
};

/** The Botble key behind one of our settings, when Botble owns it. */
export function botbleKeyOf(key: SettingKey): OwnedBotbleKey | undefined {
  return (Object.keys(BOTBLE_SETTINGS) as OwnedBotbleKey[]).find((botbleKey) => BOTBLE_SETTINGS[botbleKey] === key);
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
    if (botbleKey === 'lm_send_expiration_warnings') continue;
    const key = BOTBLE_SETTINGS[botbleKey];
    const origin = `Botble setting ${botbleKey}`;
    if (botbleKey === 'lm_expiration_warning_days') {
      const { text, warning } = botbleWarningDays(value, origin);
      layer.set(key, { text, origin, fix: FIX, ...(warning === undefined ? {} : { warning }) });
    } else {
      layer.set(key, { text: botbleText(botbleKey, value, origin), origin, fix: FIX });
    }
  }
  return layer;
}

/** At most `length` characters of a stored value, for a message. */
function clip(value: string, length = 60): string {
  return value.length > length ? `${value.slice(0, length)}...` : value;
}

/**
 * lm_expiration_warning_days as Botble's cron job reads it (`array_map('intval', array_filter(explode(',', …)))`):
 * split on commas, each item's leading whole number; empty items and 0 are dropped without a word, as Botble
 * drops them, and a repeated day counts once. What Botble's admin accepts never stops a run: an item that is
 * not a positive day (up to MAX_WARNING_DAY) is dropped, an item with more after its number is read as the
 * number, and the warning names each. Nothing left means no license.expiring, as in Botble.
 */
function botbleWarningDays(value: string, origin: string): { text: string; warning?: string } {
  const days = new Set<number>();
  const remarks: string[] = [];
  for (const item of value.split(',')) {
    const trimmed = item.trim();
    if (trimmed === '' || /^0+$/.test(trimmed)) continue;
    const shown = JSON.stringify(clip(trimmed, 40));
    // PHP's intval(): the leading whole number, 0 when there is none.
    const leading = /^[+-]?\d+/.exec(trimmed)?.[0];
    const day = leading === undefined ? 0 : Number(leading);
    if (day <= 0) remarks.push(`dropped ${shown} (${leading === undefined ? 'not a number' : 'not a positive number of days'})`);
    else if (day > MAX_WARNING_DAY) remarks.push(`dropped ${shown} (more than ${MAX_WARNING_DAY} days)`);
    else {
      days.add(day);
      if (leading !== trimmed) remarks.push(`read ${shown} as ${day}`);
    }
  }
  const text = days.size === 0 ? 'none' : [...days].sort((a, b) => b - a).join(',');
  if (remarks.length === 0) return { text };
  const outcome =
    days.size === 0
      ? 'no day is left, so no license.expiring is sent (license.expired and license.update_support_expired still are)'
      : `the warning days are ${text}`;
  return {
    text,
    warning: `${origin} is ${JSON.stringify(clip(value))}: ${remarks.join(', ')}; ${outcome}. Change it in the Botble admin (${BOTBLE_ADMIN_PAGE}) to whole days separated by commas, e.g. 7,1.`,
  };
}

/** Botble's job runs only when lm_send_expiration_warnings is '1' (`setting(…) != '1'` returns at once). */
export function botbleSwitchOn(value: string | undefined): boolean {
  return value?.trim() === '1';
}

/**
 * What Botble's switch lm_send_expiration_warnings means to someone who moves from Botble's cron job to this
 * tool. Botble's job (cms:license-manager:process-expirations) returns at once unless it is '1', webhooks
 * included, though Botble's docs describe it as the e-mail switch; its default is off. This tool does not
 * use it: an install that enabled webhooks but never this switch got no webhook from Botble, and expects
 * them once it moves here.
 */
export function botbleSwitchNote(value: string | undefined): string {
  const on = botbleSwitchOn(value);
  const state = value === undefined ? "is not set (Botble's default: off)" : on ? "is on ('1')" : `is off (${JSON.stringify(clip(value, 20))})`;
  const botble = on
    ? "Botble's own cron job (cms:license-manager:process-expirations) sends its e-mails and webhooks while it is scheduled: unschedule it or turn this off, or each event goes out twice"
    : "Botble's own cron job sends nothing while it is off, neither e-mails nor webhooks";
  return `Botble's switch lm_send_expiration_warnings ${state}: ${botble}. This tool does not use it: webhooks go out whenever webhooks-enabled is true.`;
}

function botbleText(key: Exclude<OwnedBotbleKey, 'lm_expiration_warning_days'>, value: string, origin: string): string | null {
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
  }
}
