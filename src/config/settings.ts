import { z } from 'zod';
import { usageError } from '../errors.js';
import {
  AFTER_EXPIRY_DAYS_SETTING,
  applyProductSettings,
  formatDayList,
  lookbackOverlapWarnings,
  parseDayList,
  productSettingKey,
  type ProductSchedule,
} from '../expirations/reminder-policy.js';
import type { LoadedConfig } from './load-config.js';
import type { Config } from './schema.js';
import { secretProblem, webhookUrlProblem } from '../webhooks/target.js';
import { canonicalTimeZone, timeZoneProblem, warningDaysSchema } from './schema.js';
import { commandLine } from '../command-line.js';
import { formatPingText, parsePingText, type PingTarget } from './ping.js';

/** The operator settings of the contract, stored as text in the `settings` table. */
const SETTING_KEYS = ['webhooks-enabled', 'webhook-url', 'webhook-secret', 'warning-days', 'time-zone', AFTER_EXPIRY_DAYS_SETTING, 'ping'] as const;
export type SettingKey = (typeof SETTING_KEYS)[number];

type SettingSource = 'env' | 'settings' | 'botble' | 'config' | 'default';

interface SettingDefinition<T> {
  configKey: string;
  envVar?: string | undefined;
  description: string;
  /** Turns the stored or typed text into a value, or says what is wrong with it. */
  parse(text: string): { value: T } | { problem: string };
  format(value: T): string;
  fromConfig(config: Config): T;
  apply(config: Config, value: T): Config;
  secret?: boolean | undefined;
  /** The value "none" a layer may set explicitly (Botble's empty URL or secret); absent when the key always has a value. */
  none?: T;
}

const booleanText = z.stringbool({ truthy: ['true'], falsy: ['false'], case: 'insensitive' });

const booleanSetting: SettingDefinition<boolean> = {
  configKey: 'webhooks.enabled',
  description: 'send webhooks at all (true/false)',
  parse: (text) => {
    const parsed = booleanText.safeParse(text.trim());
    return parsed.success ? { value: parsed.data } : { problem: `must be true or false, not "${text}"` };
  },
  format: (value) => String(value),
  fromConfig: (config) => config.webhooks.enabled,
  apply: (config, enabled) => ({ ...config, webhooks: { ...config.webhooks, enabled } }),
};

const urlSetting: SettingDefinition<string | null> = {
  configKey: 'webhooks.url',
  envVar: 'LICENSE_MANAGER_WEBHOOK_URL',
  description: 'absolute http: or https: URL that receives the events',
  parse: (text) => {
    const problem = webhookUrlProblem(text.trim());
    // A 200 MB value is not worth quoting back.
    const shown = text.length > 200 ? `${text.slice(0, 200)}...` : text;
    return problem ? { problem: `"${shown}" ${problem}` } : { value: text.trim() };
  },
  format: (value) => value ?? '',
  fromConfig: (config) => config.webhooks.url,
  apply: (config, url) => ({ ...config, webhooks: { ...config.webhooks, url } }),
  none: null,
};

const secretSetting: SettingDefinition<string | null> = {
  configKey: 'webhooks.secret',
  envVar: 'LICENSE_MANAGER_WEBHOOK_SECRET',
  description: 'HMAC-SHA256 key; when set, every request carries X-Webhook-Signature',
  parse: (text) => {
    const problem = secretProblem(text);
    if (!problem) return { value: text };
    return { problem: text.length === 0 ? 'must not be empty (use "settings unset webhook-secret")' : problem };
  },
  format: (value) => value ?? '',
  fromConfig: (config) => config.webhooks.secret,
  apply: (config, secret) => ({ ...config, webhooks: { ...config.webhooks, secret } }),
  secret: true,
  none: null,
};

const warningDaysSetting: SettingDefinition<number[]> = {
  configKey: 'expirations.warningDays',
  description: 'comma-separated whole days before expiry to send license.expiring, e.g. 7,1; none turns it off',
  parse: (text) => {
    if (text.trim().toLowerCase() === 'none') return { value: [] };
    const parts = text.split(',').map((part) => part.trim());
    const days: number[] = [];
    for (const part of parts) {
      if (!/^\d+$/.test(part)) return { problem: `"${text}" is not a comma-separated list of whole days (e.g. 7,1): "${part}" is not a whole number` };
      days.push(Number(part));
    }
    const parsed = warningDaysSchema.safeParse(days);
    if (!parsed.success) return { problem: `"${text}": ${parsed.error.issues.map((issue) => issue.message).join('; ')}` };
    return { value: [...parsed.data].sort((a, b) => b - a) };
  },
  format: (value) => (value.length === 0 ? 'none' : value.join(',')),
  fromConfig: (config) => config.expirations.warningDays,
  apply: (config, warningDays) => ({ ...config, expirations: { ...config.expirations, warningDays } }),
};

const timeZoneSetting: SettingDefinition<string> = {
  configKey: 'expirations.timeZone',
  description: 'IANA time zone whose calendar days count, e.g. Europe/Berlin (Laravel app.timezone)',
  parse: (text) => {
    const problem = timeZoneProblem(text.trim());
    return problem ? { problem } : { value: canonicalTimeZone(text.trim()) };
  },
  format: (value) => value,
  fromConfig: (config) => config.expirations.timeZone,
  apply: (config, timeZone) => ({ ...config, expirations: { ...config.expirations, timeZone } }),
};

const afterExpiryDaysSetting: SettingDefinition<number[]> = {
  configKey: 'expirations.afterExpiryDays',
  description: 'comma-separated whole days after the expiry date to send license.expired_reminder, e.g. 1,7; none (the default) sends none',
  parse: (text) => parseDayList(text, 'after-expiry'),
  format: (value) => formatDayList(value, 'after-expiry'),
  fromConfig: (config) => config.expirations.afterExpiryDays,
  apply: (config, afterExpiryDays) => ({ ...config, expirations: { ...config.expirations, afterExpiryDays } }),
};

const pingSetting: SettingDefinition<PingTarget | null> = {
  configKey: 'monitoring.ping',
  envVar: 'LICENSE_MANAGER_PING',
  description: 'heartbeat pinged when a run starts and ends: <url> (Healthchecks), cronitor <url> or sentry <url>; none turns it off',
  parse: parsePingText,
  format: (value) => (value === null ? 'none' : formatPingText(value)),
  fromConfig: (config) => config.monitoring.ping,
  apply: (config, ping) => ({ ...config, monitoring: { ...config.monitoring, ping } }),
  // Whoever holds the URL can report the job healthy: shown masked, like the webhook secret.
  secret: true,
  none: null,
};

/** A definition with its value type sealed inside: parsing and applying happen in one step, so no caller needs `any`. */
interface Setting extends Pick<SettingDefinition<unknown>, 'configKey' | 'envVar' | 'description' | 'secret'> {
  read(text: string): { text: string; apply(config: Config): Config } | { problem: string };
  /** The effective value as text, or null when unset. */
  current(config: Config): string | null;
  /** Sets the key to "none", when it may be none. */
  clear?(config: Config): Config;
}

function seal<T>(definition: SettingDefinition<T>): Setting {
  const { configKey, envVar, description, secret } = definition;
  return {
    configKey,
    envVar,
    description,
    secret,
    read: (text) => {
      const parsed = definition.parse(text);
      if ('problem' in parsed) return parsed;
      return { text: definition.format(parsed.value), apply: (config) => definition.apply(config, parsed.value) };
    },
    current: (config) => {
      const value = definition.fromConfig(config);
      return value === null ? null : definition.format(value);
    },
    ...('none' in definition ? { clear: (config: Config) => definition.apply(config, definition.none as T) } : {}),
  };
}

export const SETTINGS: Record<SettingKey, Setting> = {
  'webhooks-enabled': seal(booleanSetting),
  'webhook-url': seal(urlSetting),
  'webhook-secret': seal(secretSetting),
  'warning-days': seal(warningDaysSetting),
  'time-zone': seal(timeZoneSetting),
  'after-expiry-days': seal(afterExpiryDaysSetting),
  ping: seal(pingSetting),
};

export function assertSettingKey(key: string): SettingKey {
  if ((SETTING_KEYS as readonly string[]).includes(key)) return key as SettingKey;
  throw usageError(
    `Unknown setting "${key}". Known settings: ${SETTING_KEYS.join(', ')}, and per product product:<product id>:warning-days|after-expiry-days|enabled.`,
  );
}

/** Validates a value for `settings set`; throws exit 2 naming the key and the problem. */
export function parseSetting(key: SettingKey, text: string): string {
  const result = SETTINGS[key].read(text);
  if ('problem' in result) throw usageError(`Invalid value for setting ${key}: ${result.problem}`);
  return result.text;
}

export interface EffectiveSetting {
  /** A SettingKey, or a product key `product:<id>:<field>`. */
  key: string;
  /** The value as text; the secret is masked unless asked for. A stored value that fails validation is shown as stored. */
  value: string | null;
  source: SettingSource;
  /** Where: the env var, the config file path; undefined for the table and defaults. */
  origin?: string;
  /** What this value hides: a config-file value (or a stored one, under an env var) that has no effect while it is set. */
  overrides?: string;
  /** Why the stored value is not used (the next layer applies until it is fixed). */
  invalid?: string;
  /** What was made of a stored value that is used only in part (Botble's warning days with items dropped): the fix. */
  warning?: string;
  /** What the value does here that its name does not say (in Botble mode: Botble's own switch for its cron job). */
  note?: string;
  description: string;
}

/** A stored row that fails validation: named, with the fix, by every command that needs the value. */
export interface SettingProblem {
  /** A SettingKey, or a product key `product:<id>:<field>`. */
  key: string;
  problem: string;
}

export interface ResolvedConfig {
  config: Config;
  settings: EffectiveSetting[];
  problems: SettingProblem[];
}

/** The message for a stored setting that fails validation: the key, why, and the command that fixes it. */
export function settingProblemMessage({ key, problem }: SettingProblem): string {
  return `Invalid stored setting ${key}: ${problem}. Fix it with "${commandLine(`settings set ${key} <value>`)}" or remove it with "${commandLine(`settings unset ${key}`)}".`;
}

/** A value from another application's settings (Botble's), ranked where our settings table ranks. */
export interface ForeignSetting {
  /** The value as our setting reads it, or null for an explicit "none" (an empty URL or secret). */
  text: string | null;
  /** Where it is, e.g. `settings.lm_webhook_url`. */
  origin: string;
  /** What to do when the value is bad, e.g. where to change it. */
  fix: string;
  /** Said by every command while this value is the one used: what was dropped from it, and where to fix it. */
  warning?: string;
}

/**
 * Stored settings are validated when read too: a bad row is not used, and is reported in `problems` so the
 * settings commands can still show and fix it while every other command refuses to run on it. `foreign`
 * values (Botble mode) take the place of our settings table for their keys.
 */
export function resolveConfig(
  loaded: LoadedConfig,
  stored: ReadonlyMap<string, string>,
  env: NodeJS.ProcessEnv,
  foreign: ReadonlyMap<SettingKey, ForeignSetting> = new Map(),
): ResolvedConfig {
  let config = loaded.config;
  const settings: EffectiveSetting[] = [];
  const problems: SettingProblem[] = [];
  for (const key of SETTING_KEYS) {
    const definition = SETTINGS[key];
    const envValue = definition.envVar ? env[definition.envVar] : undefined;
    const storedValue = stored.get(key);
    const inFile = loaded.filepath !== undefined && loaded.explicitKeys.has(definition.configKey);
    // A file value of null sets nothing, so nothing above it "overrides" it.
    const fileNote = inFile && definition.current(loaded.config) !== null ? `${definition.configKey} in ${loaded.filepath}` : undefined;
    const mask = (text: string) => (definition.secret ? maskSecret(text) : text);
    const foreignValue = foreign.get(key);
    let source: SettingSource;
    let origin: string | undefined;
    let overrides: string | undefined;
    let invalid: string | undefined;
    let warning: string | undefined;
    let shown: string | null | undefined;
    if (envValue !== undefined && envValue !== '') {
      const parsed = definition.read(envValue);
      if ('problem' in parsed) throw usageError(`Invalid environment variable ${definition.envVar}: ${parsed.problem}`);
      config = parsed.apply(config);
      source = 'env';
      origin = definition.envVar;
      overrides = storedValue !== undefined ? `the stored setting ${key}` : fileNote;
    } else if (foreignValue !== undefined) {
      if (foreignValue.text === null && definition.clear) {
        config = definition.clear(config);
      } else {
        const parsed = definition.read(foreignValue.text ?? '');
        if ('problem' in parsed) throw usageError(`Invalid ${foreignValue.origin} (${key}): ${parsed.problem}. ${foreignValue.fix}`);
        config = parsed.apply(config);
      }
      source = 'botble';
      origin = foreignValue.origin;
      overrides = fileNote;
      warning = foreignValue.warning;
    } else if (storedValue !== undefined) {
      const parsed = definition.read(storedValue);
      source = 'settings';
      if ('problem' in parsed) {
        invalid = parsed.problem;
        shown = mask(storedValue);
        problems.push({ key, problem: parsed.problem });
      } else {
        config = parsed.apply(config);
        overrides = fileNote;
      }
    } else if (inFile) {
      source = 'config';
      origin = loaded.filepath;
    } else {
      source = 'default';
    }
    const text = definition.current(config);
    settings.push({
      key,
      value: shown !== undefined ? shown : text === null ? null : mask(text),
      source,
      ...(origin === undefined ? {} : { origin }),
      ...(overrides === undefined ? {} : { overrides }),
      ...(invalid === undefined ? {} : { invalid }),
      ...(warning === undefined ? {} : { warning }),
      description: definition.description,
    });
  }
  const products = resolveProducts(loaded, stored, config);
  config = products.config;
  if (products.globalNote !== undefined) {
    const global = settings.find((setting) => setting.key === AFTER_EXPIRY_DAYS_SETTING)!;
    global.note = products.globalNote;
  }
  settings.push(...products.settings);
  problems.push(...products.problems);
  return { config, settings, problems };
}

const PRODUCT_FIELDS: Array<{ field: 'warning-days' | 'after-expiry-days' | 'enabled'; schedule: keyof ProductSchedule }> = [
  { field: 'warning-days', schedule: 'warningDays' },
  { field: 'after-expiry-days', schedule: 'afterExpiryDays' },
  { field: 'enabled', schedule: 'enabled' },
];

function formatProductField(schedule: keyof ProductSchedule, value: ProductSchedule[keyof ProductSchedule]): string {
  if (schedule === 'enabled') return String(value);
  return formatDayList(value as number[], schedule === 'warningDays' ? 'warning' : 'after-expiry');
}

/**
 * The per-product schedules: expirations.products of the config file with the stored `product:<id>:<field>`
 * rows laid over them field by field (the settings table ranks above the file), one effective setting per
 * field set anywhere, and the warnings about after-expiry days that share a run with license.expired as notes.
 */
function resolveProducts(loaded: LoadedConfig, stored: ReadonlyMap<string, string>, config: Config): ResolvedConfig & { globalNote?: string | undefined } {
  const rows = [...stored].filter(([key]) => key.startsWith('product:'));
  const fromFile = loaded.config.expirations.products;
  const merged = applyProductSettings(fromFile, rows);
  const resolved: Config = { ...config, expirations: { ...config.expirations, products: merged.products } };
  const problems: SettingProblem[] = merged.problems;
  const notes = new Map<string, string>();
  for (const warning of lookbackOverlapWarnings(resolved.expirations, merged.products, resolved.expirations.lookbackDays)) {
    notes.set(warning.productId === undefined ? AFTER_EXPIRY_DAYS_SETTING : productSettingKey(warning.productId, 'after-expiry-days'), warning.message);
  }
  return {
    config: resolved,
    settings: productRows(loaded, stored, merged.products, problems, notes),
    problems,
    globalNote: notes.get(AFTER_EXPIRY_DAYS_SETTING),
  };
}

function productRows(
  loaded: LoadedConfig,
  stored: ReadonlyMap<string, string>,
  products: Readonly<Record<string, ProductSchedule>>,
  problems: readonly SettingProblem[],
  notes: ReadonlyMap<string, string>,
): EffectiveSetting[] {
  const fromFile = loaded.config.expirations.products;
  const rows: EffectiveSetting[] = [];
  const invalid = new Map(problems.map((problem) => [problem.key, problem.problem]));
  for (const productId of Object.keys(products).sort()) {
    for (const { field, schedule } of PRODUCT_FIELDS) {
      const key = productSettingKey(productId, field);
      const value = products[productId]![schedule];
      const storedText = stored.get(key);
      const inFile = Object.hasOwn(fromFile, productId) && fromFile[productId]![schedule] !== undefined;
      if (value === undefined && storedText === undefined) continue;
      const problem = invalid.get(key);
      const fileNote = inFile ? `expirations.products.${productId}.${schedule} in ${loaded.filepath}` : undefined;
      const source: SettingSource = storedText !== undefined && problem === undefined ? 'settings' : inFile ? 'config' : 'settings';
      rows.push({
        key,
        value: problem !== undefined ? storedText! : formatProductField(schedule, value!),
        source,
        ...(source === 'config' && loaded.filepath ? { origin: loaded.filepath } : {}),
        ...(source === 'settings' && problem === undefined && fileNote ? { overrides: fileNote } : {}),
        ...(problem === undefined ? {} : { invalid: problem }),
        ...(notes.has(key) ? { note: notes.get(key)! } : {}),
        description: PRODUCT_DESCRIPTIONS[field],
      });
    }
  }
  // Stored product rows that name no field or a bad id: listed so they can be seen and unset.
  for (const problem of problems) {
    if (rows.some((row) => row.key === problem.key)) continue;
    rows.push({ key: problem.key, value: stored.get(problem.key) ?? null, source: 'settings', invalid: problem.problem, description: 'not a product setting' });
  }
  return rows;
}

export const PRODUCT_DESCRIPTIONS = {
  'warning-days': "this product's days before expiry for license.expiring (none turns them off); unset: warning-days",
  'after-expiry-days': "this product's days after the expiry date for license.expired_reminder; unset: after-expiry-days",
  enabled: 'false: no notices of any kind for this product (its licenses still change status)',
} as const;

/** The effective value of one setting in full: only for `settings get --reveal`, never listed or logged. */
export function revealSetting(key: SettingKey, config: Config): string | null {
  return SETTINGS[key].current(config);
}

/** A secret is never shown, not even in part. */
export function maskSecret(secret: string): string {
  return secret.length === 0 ? '' : '********';
}
