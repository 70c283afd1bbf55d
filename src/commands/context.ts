// src/commands: one function per command (read -> decide -> act -> return a value); imported only by src/cli.
import type { Kysely } from 'kysely';
import { databaseTarget, loadConfig } from '../config/load-config.js';
import type { Config } from '../config/schema.js';
import { resolveConfig, type EffectiveSetting } from '../config/settings.js';
import type { DatabaseTarget } from '../storage/database-target.js';
import type { Database } from '../storage/database.table.js';
import { databaseError, isDatabaseError, openDatabase } from '../storage/open-database.js';
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
  /** Where the database is. */
  database: DatabaseTarget;
  /** How output names the database: the SQLite file, or the server URL with its password masked. */
  databaseFile: string;
  configFile: string | undefined;
}

export interface ContextOptions {
  /** Bring a server database's schema up to date first (the `migrate` command); SQLite always does. */
  migrate?: boolean;
}

/** Loads the config, opens (and on SQLite migrates) the database, applies stored settings; always closes the database. */
export async function withContext<T>(globals: GlobalOptions, fn: (context: CommandContext) => Promise<T>, options: ContextOptions = {}): Promise<T> {
  const loaded = await loadConfig({ file: globals.config, cwd: globals.cwd });
  const database = databaseTarget(loaded, globals.env, globals.cwd);
  const db = await openDatabase(database, { migrate: options.migrate });
  try {
    const stored = await readSettings(db);
    const { config, settings } = resolveConfig(loaded, stored, globals.env);
    return await fn({ db, config, settings, database, databaseFile: database.label, configFile: loaded.filepath });
  } catch (error) {
    // A read-only file, a lock held too long, a lost server connection: say which database, not just the driver's words.
    throw isDatabaseError(error) ? databaseError(database, error) : error;
  } finally {
    await db.destroy().catch(() => undefined);
  }
}
