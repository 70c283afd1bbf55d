// src/commands: one function per command (read -> decide -> act -> return a value); imported only by src/cli.
// The context a command runs in: its config, its database (opened, and on SQLite migrated) and its settings.
import fs from 'node:fs';
import path from 'node:path';
import type { Kysely } from 'kysely';
import { loadConfig, type LoadedConfig } from '../config/load-config.js';
import type { Config } from '../config/schema.js';
import type { PingTarget } from '../config/ping.js';
import { settingProblemMessage, type EffectiveSetting, type SettingProblem } from '../config/settings.js';
import { EXIT, ExitError, usageError } from '../errors.js';
import { commandLine, shellWord } from '../command-line.js';
import { licenseSourceFor, type LicenseSource } from '../storage/license-source.js';
import { databaseFileOf, type DatabaseTarget } from '../storage/database-target.js';
import type { Database } from '../storage/database.table.js';
import { openDatabase } from '../storage/open-database.js';
import { resolveFromDatabase, settingWarnings } from './context-settings.js';
import { databaseError, isStorageError } from './database-messages.js';
import { databaseEnv, type GlobalOptions } from './runtime-env.js';
import { exposedSecretWarnings, fileSecrets } from './secret-file-warnings.js';

// The CLI reaches these through this module.
export type { GlobalOptions } from './runtime-env.js';
export { readConfigOnly } from './read-only-context.js';
export { layerOf, webhookTarget, type WebhookTarget } from './webhook-target.js';

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
  databaseLabel: string;
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

/**
 * A command refused because stored settings fail validation (exit 2). The database was read: `ping` is the heartbeat
 * the run would have pinged, the valid stored `ping` setting applied (null: turned off), for the refused run's end ping.
 */
export class InvalidSettingsError extends ExitError {
  readonly ping: PingTarget | null;

  constructor(message: string, ping: PingTarget | null) {
    super(EXIT.usage, message);
    this.name = 'ExitError';
    this.ping = ping;
  }
}

/** Loads the config, opens (and on SQLite migrates) the database, applies stored settings; always closes the database. */
export async function withContext<T>(globals: GlobalOptions, fn: (context: CommandContext) => Promise<T>, options: ContextOptions = {}): Promise<T> {
  const loaded = await loadConfig({ file: globals.config, cwd: globals.cwd });
  const { database, timeoutMs, namedByEnv } = databaseEnv(loaded, globals);
  const migrationsApplied: string[] = [];
  const file = databaseFileOf(database);
  if (file !== undefined && !options.migrate && !options.createDatabase && !fs.existsSync(file)) throw missingDatabase(file, loaded, namedByEnv);
  const db = await openDatabase(database, {
    migrate: options.migrate,
    onMigrated: (applied) => migrationsApplied.push(...applied),
    timeoutMs,
  }).catch((error: unknown) => {
    // A command that cannot connect still warns about the file that holds its password.
    for (const warning of exposedSecretWarnings(fileSecrets(loaded, database))) options.onWarning?.(warning);
    throw databaseError(database, error);
  });
  try {
    const { config, settings, problems } = await resolveFromDatabase(db, loaded, globals.env);
    if (problems.length > 0 && !options.tolerateInvalidSettings)
      throw new InvalidSettingsError(problems.map(settingProblemMessage).join('\n'), config.monitoring.ping);
    return await fn({
      db,
      config,
      settings,
      licenses: licenseSourceFor(config),
      database,
      databaseLabel: database.label,
      configFile: loaded.filepath,
      problems,
      migrationsApplied,
      warnings: [...settingWarnings(settings), ...exposedSecretWarnings(fileSecrets(loaded, database, settings))],
    });
  } catch (error) {
    // A read-only file, a lock held too long, a lost server connection, a refusal of storage: say which database, in the operator's words.
    throw isStorageError(error) ? databaseError(database, error) : error;
  } finally {
    await db.destroy().catch(() => undefined);
  }
}

/** A SQLite file that is not there: which path was looked at, why there, and how to create it. Nothing is created. */
function missingDatabase(filename: string, loaded: LoadedConfig, namedByEnv: boolean): ExitError {
  const why = namedByEnv
    ? 'LICENSE_MANAGER_DB names it'
    : loaded.config.database.filename
      ? `database.filename in ${loaded.filepath ?? 'the config'} names it`
      : loaded.filepath
        ? `the default database file next to ${loaded.filepath}`
        : 'no config file was found here, so the default database file in the current folder applies';
  const folder = path.dirname(filename);
  const alsoFolder = fs.existsSync(folder) ? '' : `; its folder ${folder} does not exist either`;
  // Named by the environment, the commands that create it name it the same way: without it they would create (or
  // find) the config's database instead.
  const create = (args: string) => (namedByEnv ? `LICENSE_MANAGER_DB=${shellWord(filename)} ${commandLine(args)}` : commandLine(args));
  return usageError(
    `Database ${filename} does not exist (${why}${alsoFolder}); nothing was created. Create it with "${create('migrate')}" (or "${create('licenses import <file>')}"), or, if the licenses are in another database, run this command with the -c or LICENSE_MANAGER_DB that points at it.`,
  );
}
