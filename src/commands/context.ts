// src/commands: one function per command (read -> decide -> act -> return a value); imported only by src/cli.
import fs from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { databaseTarget, loadConfig } from '../config/load-config.js';
import type { Config } from '../config/schema.js';
import { botbleSettingsLayer, botbleSwitchNote, BOTBLE_SETTINGS } from '../config/botble-settings.js';
import type { LoadedConfig } from '../config/load-config.js';
import { resolveConfig, settingProblemMessage, type EffectiveSetting, type ResolvedConfig, type SettingProblem } from '../config/settings.js';
import { ExitError, usageError } from '../errors.js';
import { commandLine } from '../command-line.js';
import { notRegularFile } from '../file-kind.js';
import { readBotbleSettings } from '../storage/botble.repository.js';
import { licenseSourceFor, type LicenseSource } from '../storage/license-source.js';
import { hasCredentials, maskCredentials } from '../credentials.js';
import { looksLikeUrl, type DatabaseTarget } from '../storage/database-target.js';
import type { Database } from '../storage/database.table.js';
import { TablePrefixPlugin } from '../sql/table-prefix.js';
import { databaseError, isDatabaseError, openDatabase } from '../storage/open-database.js';
import { readSettings } from '../storage/settings.repository.js';
import { dbTimeoutFromEnv } from '../storage/server-pool.js';

/** What every command gets from the global options. */
export interface GlobalOptions {
  config?: string | undefined;
  cwd: string;
  env: NodeJS.ProcessEnv;
}

export interface CommandContext {
  db: Kysely<Database>;
  /** The effective configuration: env > settings table (Botble's, in Botble mode) > config file > defaults. */
  config: Config;
  settings: EffectiveSetting[];
  /** Where licenses are read from: our licenses table, or a Botble database (`licenses.source`). */
  licenses: LicenseSource;
  /** Where the database is. */
  database: DatabaseTarget;
  /** How output names the database: the SQLite file, or the server URL with its password masked. */
  databaseFile: string;
  configFile: string | undefined;
  /** Stored settings that fail validation (only seen by commands that tolerate them: `settings`, `status`). */
  problems: SettingProblem[];
  /** Migrations this command applied when it opened the database (empty when the schema was up to date). */
  migrationsApplied: string[];
  /** Things the operator should fix that do not stop the command (printed once on stderr). */
  warnings: string[];
}

export interface ContextOptions {
  /** Bring a server database's schema up to date first (the `migrate` command); SQLite always does. */
  migrate?: boolean;
  /** Go on with stored settings that fail validation (they are not used): the commands that show and fix them. */
  tolerateInvalidSettings?: boolean;
  /**
   * May create a missing SQLite file (`licenses import`; `migrate` always may). Every other command refuses one (exit 2,
   * nothing created): typed in the wrong folder or without -c, it would otherwise work on a new, empty database.
   */
  createDatabase?: boolean;
  /** Told the warnings of a command that cannot open its database (the others are in `warnings`). */
  onWarning?: (message: string) => void;
}

/** Loads the config, opens (and on SQLite migrates) the database, applies stored settings; always closes the database. */
export async function withContext<T>(globals: GlobalOptions, fn: (context: CommandContext) => Promise<T>, options: ContextOptions = {}): Promise<T> {
  const loaded = await loadConfig({ file: globals.config, cwd: globals.cwd });
  const database = databaseTarget(loaded, globals.env, globals.cwd);
  const migrationsApplied: string[] = [];
  const timeoutMs = dbTimeoutFromEnv(globals.env);
  if (database.dialect === 'sqlite' && !options.migrate && !options.createDatabase && !fs.existsSync(database.filename)) {
    throw missingDatabase(database.filename, loaded, globals.env);
  }
  const db = await openDatabase(database, {
    migrate: options.migrate,
    onMigrated: (applied) => migrationsApplied.push(...applied),
    timeoutMs,
  }).catch((error: unknown) => {
    // A command that cannot connect still warns about the file that holds its password.
    for (const warning of exposedSecretWarnings(fileSecrets(loaded, database))) options.onWarning?.(warning);
    throw error;
  });
  try {
    const { config, settings, problems } = await resolveFromDatabase(db, loaded, globals.env);
    if (problems.length > 0 && !options.tolerateInvalidSettings) throw usageError(problems.map(settingProblemMessage).join('\n'));
    return await fn({
      db,
      config,
      settings,
      licenses: licenseSourceFor(config),
      database,
      databaseFile: database.label,
      configFile: loaded.filepath,
      problems,
      migrationsApplied,
      warnings: [...settingWarnings(settings), ...exposedSecretWarnings(fileSecrets(loaded, database, settings))],
    });
  } catch (error) {
    // A read-only file, a lock held too long, a lost server connection: say which database, not just the driver's words.
    throw isDatabaseError(error) ? databaseError(database, error) : error;
  } finally {
    await db.destroy().catch(() => undefined);
  }
}

/** A SQLite file that is not there: which path was looked at, why there, and how to create it. Nothing is created. */
function missingDatabase(filename: string, loaded: LoadedConfig, env: NodeJS.ProcessEnv): ExitError {
  const why = env.LICENSE_MANAGER_DB
    ? 'LICENSE_MANAGER_DB names it'
    : loaded.config.database.filename
      ? `database.filename in ${loaded.filepath ?? 'the config'} names it`
      : loaded.filepath
        ? `the default database file next to ${loaded.filepath}`
        : 'no config file was found here, so the default database file in the current folder applies';
  const folder = path.dirname(filename);
  const alsoFolder = fs.existsSync(folder) ? '' : `; its folder ${folder} does not exist either`;
  return usageError(
    `Database ${filename} does not exist (${why}${alsoFolder}); nothing was created. Create it with "${commandLine('migrate')}" (or "${commandLine('licenses import <file>')}"), or, if the licenses are in another database, run this command with the -c or LICENSE_MANAGER_DB that points at it.`,
  );
}

/**
 * The settings layers of the database: our settings table, and in Botble mode Botble's License Manager
 * rows in its `settings` table, which take the place of ours for the keys Botble has.
 */
async function resolveFromDatabase(db: Kysely<Database>, loaded: LoadedConfig, env: NodeJS.ProcessEnv, stored?: Map<string, string>): Promise<ResolvedConfig> {
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
function settingWarnings(settings: EffectiveSetting[]): string[] {
  return settings.flatMap((setting) => (setting.warning === undefined ? [] : [setting.warning]));
}

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
function fileSecrets(loaded: LoadedConfig, database: DatabaseTarget, settings?: EffectiveSetting[]): Array<[string | undefined, string]> {
  const held: Array<[string | undefined, string]> = [];
  const setting = (key: string) => settings?.find((candidate) => candidate.key === key);
  const secret = setting('webhook-secret');
  if (secret && secret.value !== null) {
    // A server database's permissions are the server's business: only files are checked.
    if (secret.source === 'config') held.push([loaded.filepath, 'the webhook secret']);
    if (secret.source === 'settings' && database.dialect === 'sqlite') held.push([database.filename, 'the webhook secret']);
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
function exposedSecretWarnings(holds: Array<[string | undefined, string]>): string[] {
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

/**
 * The effective configuration without creating, migrating or writing any file: for `listen`, which only
 * needs the secret. A SQLite file that exists is opened read-only for its stored settings; one without a
 * settings table (not migrated yet) has none. A server database is only read.
 */
export async function readConfigOnly(
  globals: GlobalOptions,
): Promise<Pick<CommandContext, 'config' | 'settings' | 'databaseFile' | 'configFile' | 'warnings'>> {
  const loaded = await loadConfig({ file: globals.config, cwd: globals.cwd });
  const database = databaseTarget(loaded, globals.env, globals.cwd);
  // Opening a FIFO would block the main thread for good: what a migrating command refuses, refuse unopened here too.
  const kind = database.dialect === 'sqlite' ? notRegularFile(database.filename) : undefined;
  if (kind) throw usageError(`Database ${database.label} is ${kind}, not a regular file. Point database.filename or LICENSE_MANAGER_DB at a SQLite file.`);
  let resolved: ResolvedConfig | undefined;
  if (database.dialect !== 'sqlite' || fs.existsSync(database.filename)) {
    let db: Kysely<Database> | undefined;
    try {
      db =
        database.dialect === 'sqlite'
          ? new Kysely<Database>({
              dialect: new SqliteDialect({ database: new SQLite(database.filename, { readonly: true, fileMustExist: true }) }),
              plugins: database.tablePrefix ? [new TablePrefixPlugin(database.tablePrefix)] : [],
            })
          : await openDatabase(database, { migrate: false, schemaCheck: false, timeoutMs: dbTimeoutFromEnv(globals.env) });
      const tables = await db.introspection.getTables();
      const migrated = tables.some((table) => table.name === `${database.tablePrefix}settings`);
      resolved = await resolveFromDatabase(db, loaded, globals.env, migrated ? undefined : new Map());
    } catch (error) {
      throw databaseError(database, error);
    } finally {
      await db?.destroy().catch(() => undefined);
    }
  }
  const { config, settings } = resolved ?? resolveConfig(loaded, new Map(), globals.env);
  return {
    config,
    settings,
    databaseFile: database.label,
    configFile: loaded.filepath,
    warnings: [...settingWarnings(settings), ...exposedSecretWarnings(fileSecrets(loaded, database, settings))],
  };
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
  if (!setting.origin) return setting.source;
  // "Botble setting lm_webhook_url" already names its layer: not "botble Botble setting …".
  return setting.origin.toLowerCase().startsWith(setting.source.toLowerCase()) ? setting.origin : `${setting.source} ${setting.origin}`;
}

export function webhookTarget(context: Pick<CommandContext, 'config' | 'settings'>): WebhookTarget {
  const setting = (key: string) => context.settings.find((candidate) => candidate.key === key)!;
  const { url, enabled } = context.config.webhooks;
  return {
    url: url === null ? null : maskCredentials(url),
    urlSource: layerOf(setting('webhook-url')),
    enabled,
    enabledSource: layerOf(setting('webhooks-enabled')),
  };
}
