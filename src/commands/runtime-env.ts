import { databaseTarget, type LoadedConfig } from '../config/load-config.js';
import type { DatabaseTarget } from '../storage/database-target.js';
import { dbTimeoutFromEnv } from '../storage/server-pool.js';

/** What every command gets from the global options. */
export interface GlobalOptions {
  config?: string | undefined;
  cwd: string;
  env: NodeJS.ProcessEnv;
}

/** What the environment says about the database a command opens, read once per command. */
export interface DatabaseEnv {
  /** LICENSE_MANAGER_DB, else the config file's database, else the default file. */
  database: DatabaseTarget;
  /** LICENSE_MANAGER_DB_TIMEOUT_MS. */
  timeoutMs: number | undefined;
  /** Whether LICENSE_MANAGER_DB chose the database (messages say which setting named it). */
  namedByEnv: boolean;
}

export function databaseEnv(loaded: LoadedConfig, globals: GlobalOptions): DatabaseEnv {
  return {
    database: databaseTarget(loaded, globals.env, globals.cwd),
    timeoutMs: dbTimeoutFromEnv(globals.env),
    namedByEnv: Boolean(globals.env.LICENSE_MANAGER_DB),
  };
}
