// src/commands: one function per command (read -> decide -> act -> return a value); imported only by src/cli.
import type { Kysely } from 'kysely';
import { databasePath, loadConfig } from '../config/load-config.js';
import type { Config } from '../config/schema.js';
import { resolveConfig, settingProblemMessage, type EffectiveSetting, type SettingProblem } from '../config/settings.js';
import { usageError } from '../errors.js';
import { maskUrlCredentials } from '../webhooks/url.js';
import type { Database } from '../storage/database.table.js';
import { databaseError, openDatabase } from '../storage/open-database.js';
import { readSettings } from '../storage/settings.repository.js';

/** What every command gets from the global options. */
export interface GlobalOptions {
  config?: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
}

export interface CommandContext {
  db: Kysely<Database>;
  /** The effective configuration: env > settings table > config file > defaults. */
  config: Config;
  settings: EffectiveSetting[];
  databaseFile: string;
  configFile: string | undefined;
  /** Stored settings that fail validation (only seen by commands that tolerate them: `settings`, `status`). */
  problems: SettingProblem[];
  /** Migrations this command applied when it opened the database (empty when the schema was up to date). */
  migrationsApplied: string[];
}

export interface ContextOptions {
  /** Go on with stored settings that fail validation (they are not used): the commands that show and fix them. */
  tolerateInvalidSettings?: boolean;
}

/** Loads the config, opens and migrates the database, applies stored settings; always closes the database. */
export async function withContext<T>(globals: GlobalOptions, fn: (context: CommandContext) => Promise<T>, options: ContextOptions = {}): Promise<T> {
  const loaded = await loadConfig({ file: globals.config, cwd: globals.cwd });
  const databaseFile = databasePath(loaded, globals.env, globals.cwd);
  const migrationsApplied: string[] = [];
  const db = await openDatabase(databaseFile, (applied) => migrationsApplied.push(...applied));
  try {
    const stored = await readSettings(db).catch((error: unknown) => {
      throw databaseError(databaseFile, error);
    });
    const { config, settings, problems } = resolveConfig(loaded, stored, globals.env);
    if (problems.length > 0 && !options.tolerateInvalidSettings) throw usageError(problems.map(settingProblemMessage).join('\n'));
    return await fn({ db, config, settings, databaseFile, configFile: loaded.filepath, problems, migrationsApplied });
  } catch (error) {
    // A read-only file, a lock held too long, a full disk: say which file, not just SQLite's words.
    const code = (error as { code?: unknown }).code;
    throw typeof code === 'string' && code.startsWith('SQLITE_') ? databaseError(databaseFile, error) : error;
  } finally {
    await db.destroy();
  }
}

/** Where deliveries go and whether they go at all, with the layer that set each (env, settings, config, default). */
export interface WebhookTarget {
  /** Credentials in the URL are masked. */
  url: string | null;
  urlSource: string;
  enabled: boolean;
  enabledSource: string;
}

/** A setting's layer as one phrase: `settings`, `env LICENSE_MANAGER_WEBHOOK_URL`, `config /etc/license-manager/config.json`. */
export function layerOf(setting: EffectiveSetting): string {
  return setting.origin ? `${setting.source} ${setting.origin}` : setting.source;
}

export function webhookTarget(context: Pick<CommandContext, 'config' | 'settings'>): WebhookTarget {
  const setting = (key: string) => context.settings.find((candidate) => candidate.key === key)!;
  const { url, enabled } = context.config.webhooks;
  return { url: url === null ? null : maskUrlCredentials(url), urlSource: layerOf(setting('webhook-url')), enabled, enabledSource: layerOf(setting('webhooks-enabled')) };
}
