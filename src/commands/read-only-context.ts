import { loadConfig } from '../config/load-config.js';
import type { Config } from '../config/schema.js';
import { resolveConfig, type EffectiveSetting, type ResolvedConfig } from '../config/settings.js';
import { usageError } from '../errors.js';
import { notRegularFile } from '../file-kind.js';
import { databaseFileOf } from '../storage/database-target.js';
import type { Database } from '../storage/database.table.js';
import { hasOwnTable, openReadOnly } from '../storage/open-database.js';
import type { Kysely } from 'kysely';
import { resolveFromDatabase, settingWarnings } from './context-settings.js';
import { databaseError } from './database-messages.js';
import { databaseEnv, type GlobalOptions } from './runtime-env.js';
import { exposedSecretWarnings, fileSecrets } from './secret-file-warnings.js';

/** What `listen` needs of a command context: the settings, and where they came from. */
export interface ReadOnlyContext {
  config: Config;
  settings: EffectiveSetting[];
  /** How output names the database: the SQLite file, or the server URL with its password masked. */
  databaseLabel: string;
  configFile: string | undefined;
  warnings: string[];
}

/**
 * The effective configuration without creating, migrating or writing any file: for `listen`, which only
 * needs the secret. A SQLite file that exists is opened read-only for its stored settings; one without a
 * settings table (not migrated yet) has none. A server database is only read.
 */
export async function readConfigOnly(globals: GlobalOptions): Promise<ReadOnlyContext> {
  const loaded = await loadConfig({ file: globals.config, cwd: globals.cwd });
  const { database, timeoutMs } = databaseEnv(loaded, globals);
  // Opening a FIFO would block the main thread for good: what a migrating command refuses, refuse unopened here too.
  const file = databaseFileOf(database);
  const kind = file === undefined ? undefined : notRegularFile(file);
  if (kind) throw usageError(`Database ${database.label} is ${kind}, not a regular file. Point database.filename or LICENSE_MANAGER_DB at a SQLite file.`);
  let resolved: ResolvedConfig | undefined;
  let db: Kysely<Database> | undefined;
  try {
    db = await openReadOnly(database, { timeoutMs });
    if (db) resolved = await resolveFromDatabase(db, loaded, globals.env, (await hasOwnTable(db, 'settings')) ? undefined : new Map());
  } catch (error) {
    throw databaseError(database, error);
  } finally {
    await db?.destroy().catch(() => undefined);
  }
  const { config, settings } = resolved ?? resolveConfig(loaded, new Map(), globals.env);
  return {
    config,
    settings,
    databaseLabel: database.label,
    configFile: loaded.filepath,
    warnings: [...settingWarnings(settings), ...exposedSecretWarnings(fileSecrets(loaded, database, settings))],
  };
}
