// src/commands: one function per command (read -> decide -> act -> return a value); imported only by src/cli.
import type { Kysely } from 'kysely';
import { databasePath, loadConfig } from '../config/load-config.js';
import type { Config } from '../config/schema.js';
import { resolveConfig, type EffectiveSetting } from '../config/settings.js';
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
}

/** Loads the config, opens and migrates the database, applies stored settings; always closes the database. */
export async function withContext<T>(globals: GlobalOptions, fn: (context: CommandContext) => Promise<T>): Promise<T> {
  const loaded = await loadConfig({ file: globals.config, cwd: globals.cwd });
  const databaseFile = databasePath(loaded, globals.env, globals.cwd);
  const db = await openDatabase(databaseFile);
  try {
    const stored = await readSettings(db).catch((error: unknown) => {
      throw databaseError(databaseFile, error);
    });
    const { config, settings } = resolveConfig(loaded, stored, globals.env);
    return await fn({ db, config, settings, databaseFile, configFile: loaded.filepath });
  } catch (error) {
    // A read-only file, a lock held too long, a full disk: say which file, not just SQLite's words.
    const code = (error as { code?: unknown }).code;
    throw typeof code === 'string' && code.startsWith('SQLITE_') ? databaseError(databaseFile, error) : error;
  } finally {
    await db.destroy();
  }
}
