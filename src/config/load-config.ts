import path from 'node:path';
import { cosmiconfig } from 'cosmiconfig';
import { usageError } from '../errors.js';
import { configSchema, describeZodError, type Config } from './schema.js';

const MODULE_NAME = 'license-manager';

// cosmiconfig does not look for `<name>.config.json` by default: list every place the contract names.
const SEARCH_PLACES = [
  'package.json',
  `.${MODULE_NAME}rc`,
  `.${MODULE_NAME}rc.json`,
  `.${MODULE_NAME}rc.yaml`,
  `.${MODULE_NAME}rc.yml`,
  `${MODULE_NAME}.config.json`,
  `${MODULE_NAME}.config.js`,
];

export interface LoadedConfig {
  config: Config;
  /** The file the config came from, or undefined when none was found and defaults apply. */
  filepath: string | undefined;
  /** Dotted keys the file itself sets (`webhooks.url`), so `settings list` can say where a value came from. */
  explicitKeys: ReadonlySet<string>;
}

/**
 * Finds and validates the config file: the one given with `-c`, else the first of SEARCH_PLACES in `cwd`.
 * Throws an exit-2 error naming the file, the key and the reason.
 */
export async function loadConfig(options: { file?: string; cwd: string }): Promise<LoadedConfig> {
  const explorer = cosmiconfig(MODULE_NAME, { searchPlaces: SEARCH_PLACES, searchStrategy: 'none' });
  let result: { config: unknown; filepath: string; isEmpty?: boolean } | null;
  const target = options.file ? path.resolve(options.cwd, options.file) : undefined;
  try {
    result = target ? await explorer.load(target) : await explorer.search(options.cwd);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    if (target && (error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw usageError(`Config file ${target} does not exist. Check the path given to --config.`, { cause: error });
    }
    throw usageError(`Could not read config file ${target ?? `in ${options.cwd}`}: ${reason}`, { cause: error });
  }
  if (!result) return { config: configSchema.parse({}), filepath: undefined, explicitKeys: new Set() };

  const raw = result.isEmpty || result.config === undefined ? {} : result.config;
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = describeZodError(parsed.error).map((line) => `  ${line}`);
    throw usageError(`Invalid config file ${result.filepath}:\n${problems.join('\n')}`);
  }
  return { config: parsed.data, filepath: result.filepath, explicitKeys: leafKeys(raw) };
}

/** The database file: LICENSE_MANAGER_DB, else `database.filename` relative to the config file (or `cwd`). */
export function databasePath(loaded: LoadedConfig, env: NodeJS.ProcessEnv, cwd: string): string {
  const fromEnv = env.LICENSE_MANAGER_DB;
  if (fromEnv) return path.resolve(cwd, fromEnv);
  const base = loaded.filepath ? path.dirname(loaded.filepath) : cwd;
  return path.resolve(base, loaded.config.database.filename);
}

function leafKeys(raw: unknown): Set<string> {
  const keys = new Set<string>();
  const walk = (value: unknown, prefix: string) => {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      for (const [key, child] of Object.entries(value)) walk(child, prefix ? `${prefix}.${key}` : key);
    } else if (prefix) {
      keys.add(prefix);
    }
  };
  walk(raw, '');
  return keys;
}
