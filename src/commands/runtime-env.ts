import { databaseTarget, type LoadedConfig } from '../config/load-config.js';
import { usageError } from '../errors.js';
import type { DatabaseTarget } from '../storage/database-target.js';
import { DEFAULT_DB_TIMEOUT_MS } from '../storage/server-pool.js';

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

/** LICENSE_MANAGER_DB_TIMEOUT_MS, checked: a whole number of milliseconds from 500 to 3,600,000 (undefined when unset). */
function dbTimeoutFromEnv(env: NodeJS.ProcessEnv): number | undefined {
  const text = env.LICENSE_MANAGER_DB_TIMEOUT_MS;
  if (text === undefined || text === '') return undefined;
  if (!/^\d+$/.test(text) || Number(text) < 500 || Number(text) > 3_600_000) {
    throw usageError(
      `LICENSE_MANAGER_DB_TIMEOUT_MS is "${text}": expected a whole number of milliseconds from 500 to 3600000 (or leave it unset for ${DEFAULT_DB_TIMEOUT_MS}).`,
    );
  }
  return Number(text);
}
