import { BOTBLE_ADMIN_PAGE, botbleKeyOf } from '../config/botble-settings.js';
import {
  assertSettingKey,
  maskSecret,
  parseSetting,
  PRODUCT_DESCRIPTIONS,
  revealSetting,
  SETTINGS,
  type EffectiveSetting,
  type SettingKey,
} from '../config/settings.js';
import { usageError } from '../errors.js';
import { lookbackOverlapWarnings, parseProductSetting, readProductSettingKey, unknownProductWarnings } from '../expirations/reminder-policy.js';
import { productIdsInUse } from '../storage/reminders.repository.js';
import { deleteSetting, writeSetting } from '../storage/settings.repository.js';
import { formatUtc } from '../time.js';
import type { CommandContext } from './context.js';

export function settingsList(context: CommandContext): EffectiveSetting[] {
  return context.settings;
}

/** A warning per product schedule (config file or settings) naming a product no license has: products come and go, so never a refusal. */
export async function unknownProducts(context: CommandContext): Promise<string[]> {
  const products = context.config.expirations.products;
  if (Object.keys(products).length === 0) return [];
  return unknownProductWarnings(products, await productIdsInUse(context.db, context.config)).map((warning) => `${warning.where}: ${warning.message}.`);
}

/** One setting; `reveal` gives the secret itself (the only way to read it back: never in `list`, never logged). */
export function settingsGet(context: CommandContext, key: string, options: { reveal?: boolean } = {}): EffectiveSetting {
  const product = productKey(key);
  if (product) {
    const found = context.settings.find((candidate) => candidate.key === key);
    if (found) return found;
    // Not set for this product: the global value it inherits.
    if (product.field === 'enabled') return { key, value: 'true', source: 'default', description: PRODUCT_DESCRIPTIONS.enabled };
    return {
      key,
      value: SETTINGS[product.field].current(context.config),
      source: 'default',
      origin: `inherits ${product.field}`,
      description: PRODUCT_DESCRIPTIONS[product.field],
    };
  }
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
  shadowedBy?: string | undefined;
  removed?: boolean;
  /** What the operator should know about the value now in force (an unknown product, a reminder sharing a run with license.expired). */
  warnings?: string[];
}

/** A `product:<id>:<field>` key read, exit 2 when it is malformed; undefined for the other keys. */
function productKey(key: string) {
  const read = readProductSettingKey(key);
  if (read && 'problem' in read) throw usageError(`Invalid setting ${JSON.stringify(key)}: ${read.problem}.`);
  return read;
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
  const product = productKey(key);
  if (product) {
    const parsed = parseProductSetting(key, value);
    if ('problem' in parsed) {
      // Most problems start with the key itself: said once, before the colon, as for every other setting.
      const reason = parsed.problem.startsWith(`${key} `) ? parsed.problem.slice(key.length + 1) : parsed.problem;
      throw usageError(`Invalid value for setting ${key}: ${reason}`);
    }
    await writeSetting(context.db, key, parsed.text, formatUtc(now));
    const products = {
      ...context.config.expirations.products,
      [parsed.productId]: { ...context.config.expirations.products[parsed.productId], [parsed.field]: parsed.value },
    };
    const warnings = [
      ...unknownProductWarnings({ [parsed.productId]: products[parsed.productId]! }, await productIdsInUse(context.db, context.config)).map(
        (warning) => `${key}: ${warning.message}.`,
      ),
      ...lookbackOverlapWarnings(context.config.expirations, { [parsed.productId]: products[parsed.productId]! }, context.config.expirations.lookbackDays).map(
        (warning) => warning.message,
      ),
    ];
    return { key, stored: parsed.text, ...(warnings.length > 0 ? { warnings } : {}) };
  }
  const known = assertSettingKey(key);
  refuseBotbleSetting(context, known, 'set');
  const text = parseSetting(known, value);
  await writeSetting(context.db, known, text, formatUtc(now));
  const stored = SETTINGS[known].secret ? maskSecret(text) : text;
  const warnings =
    known === 'after-expiry-days'
      ? lookbackOverlapWarnings(
          { ...context.config.expirations, afterExpiryDays: text === 'none' ? [] : text.split(',').map(Number) },
          {},
          context.config.expirations.lookbackDays,
        ).map((warning) => warning.message)
      : [];
  return { key: known, stored, shadowedBy: shadow(context, known), ...(warnings.length > 0 ? { warnings } : {}) };
}

export async function settingsUnset(context: CommandContext, key: string): Promise<SettingChange> {
  // A malformed product key is still removable: that is how a bad row is cleared.
  if (key.startsWith('product:')) return { key, stored: null, removed: await deleteSetting(context.db, key) };
  const known = assertSettingKey(key);
  refuseBotbleSetting(context, known, 'unset');
  const removed = await deleteSetting(context.db, known);
  return { key: known, stored: null, removed, shadowedBy: shadow(context, known) };
}
