import fs from 'node:fs';
import path from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { cosmiconfig, defaultLoaders, type Loader } from 'cosmiconfig';
import { ExitError, usageError } from '../errors.js';
import { notRegularFile } from '../file-kind.js';
import { brokenUrlProblem, looksLikeUrl, parseDatabaseUrl, type DatabaseTarget } from '../storage/database-target.js';
import { configSchema, DEFAULT_DATABASE_FILENAME, describeZodError, type Config } from './schema.js';

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

// A config file loads in milliseconds; a JS one whose export never settles would hang the cron job in silence.
const LOAD_TIME_LIMIT_MS = 10_000;

/**
 * What a loader hands cosmiconfig for a file whose content is null (JSON `null`, YAML `~`, a JS `export default
 * null`): cosmiconfig takes a null content for "no config here" (-c or not), and the command would run on the
 * defaults with the database in the current folder. Read back as null, and validated (refused) like any content.
 */
const NULL_CONTENT: object = Object.freeze({});

/**
 * cosmiconfig's loaders, with three fixes: a UTF-8 byte-order mark (Windows editors save one) is dropped before
 * parsing, since JSON.parse refuses it; a file that takes longer than LOAD_TIME_LIMIT_MS is named and refused; and
 * a null content is NULL_CONTENT, not taken for no file (package.json is left out: cosmiconfig picks our key from
 * what its loader returns, and a package.json without our key is still passed over).
 */
const LOADERS = Object.fromEntries(
  Object.entries(defaultLoaders).map(([extension, loader]): [string, Loader] => [
    extension,
    (filepath, content) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              usageError(
                `Config file ${filepath} did not finish loading within ${LOAD_TIME_LIMIT_MS / 1000} s (a JS config whose export never resolves?). Make its export a plain object, or a promise that settles.`,
              ),
            ),
          LOAD_TIME_LIMIT_MS,
        );
        Promise.resolve()
          .then(() => loader(filepath, content.replace(/^\uFEFF/, '')))
          .then((loaded: unknown) => {
            // A JS config that exports nothing (no default export, `module.exports = undefined`) is a mistake, not an
            // empty file: the command would run on the defaults, with the database in the wrong folder.
            // CommonJS that never sets module.exports exports {}: as empty as an ES module with no default export.
            const nothing = loaded === undefined || (isPlainObject(loaded) && Object.keys(loaded).length === 0);
            if (nothing && JS_CONFIG.test(filepath)) {
              throw usageError(
                `Config file ${filepath} exports no config: give it a default export ("export default { … }", or "module.exports = { … }" in CommonJS).`,
              );
            }
            return loaded === null && path.basename(filepath) !== 'package.json' ? NULL_CONTENT : loaded;
          })
          .then(resolve, reject)
          .finally(() => clearTimeout(timer));
      }),
  ]),
);

/** The config files cosmiconfig runs as code, whose export is the config. */
const JS_CONFIG = /\.[mc]?[jt]s$/;

/** An object literal's: its prototype is an Object.prototype, of whichever realm loaded the file. */
function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const prototype = Object.getPrototypeOf(value) as object | null;
  return prototype !== null && Object.getPrototypeOf(prototype) === null;
}

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
export function loadConfig(options: { file?: string | undefined; cwd: string }): Promise<LoadedConfig> {
  const loading = loadConfigNow(options);
  lastLoad = { key: loadKey(options), loading };
  // Kept for lastConfigLoad; whoever awaits it sees the failure.
  loading.catch(() => undefined);
  return loading;
}

let lastLoad: { key: string; loading: Promise<LoadedConfig> } | undefined;
const loadKey = (options: { file?: string | undefined; cwd: string }) => JSON.stringify([options.file ?? null, options.cwd]);

/**
 * The config as this process last loaded it from this file and folder (a failed load's failure too), else loaded
 * now: what reports a command's failure reads it again without running a JS config twice or waiting twice on one
 * that never finishes.
 */
export function lastConfigLoad(options: { file?: string | undefined; cwd: string }): Promise<LoadedConfig> {
  return lastLoad?.key === loadKey(options) ? lastLoad.loading : loadConfig(options);
}

async function loadConfigNow(options: { file?: string | undefined; cwd: string }): Promise<LoadedConfig> {
  // An empty file found by the search is the config, {} (as with -c), not passed over for the next place or the defaults.
  const explorer = (searchPlaces: string[]) =>
    cosmiconfig(MODULE_NAME, { searchPlaces, searchStrategy: 'none', loaders: LOADERS, ignoreEmptySearchPlaces: false });
  let result: { config: unknown; filepath: string; isEmpty?: boolean } | null;
  const target = options.file ? path.resolve(options.cwd, options.file) : undefined;
  assertConfigFilesRegular(target, options.cwd);
  if (!target) assertSearchPlacesReadable(options.cwd);
  try {
    result = target ? await explorer(SEARCH_PLACES).load(target) : await explorer(SEARCH_PLACES).search(options.cwd);
    // An empty package.json is a project's, not our config: the search goes on past it.
    if (!target && result?.isEmpty && path.basename(result.filepath) === 'package.json') {
      result = await explorer(SEARCH_PLACES.filter((place) => place !== 'package.json')).search(options.cwd);
    }
  } catch (error) {
    if (error instanceof ExitError) throw error;
    const reason = error instanceof Error ? error.message : String(error);
    if (target && (error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw usageError(`Config file ${target} does not exist. Check the path given to --config.`, { cause: error });
    }
    const json = jsonErrorText(error);
    if (json)
      throw usageError(`Config file ${(error as { filepath?: string }).filepath ?? target ?? options.cwd} is not valid JSON: ${json}`, { cause: error });
    throw usageError(`Could not read config file ${target ?? `in ${options.cwd}`}: ${reason}`, { cause: error });
  }
  if (!result) return { config: configSchema.parse({}), filepath: undefined, explicitKeys: new Set() };

  const raw = result.isEmpty || result.config === undefined ? {} : result.config === NULL_CONTENT ? null : result.config;
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = describeZodError(parsed.error).map((line) => `  ${line}`);
    throw usageError(`Invalid config file ${result.filepath}:\n${problems.join('\n')}`);
  }
  return { config: parsed.data, filepath: result.filepath, explicitKeys: leafKeys(raw) };
}

/** A FIFO or device as the config would hang the command in open(), past SIGINT and SIGTERM: refuse it unopened. */
function assertConfigFilesRegular(target: string | undefined, cwd: string): void {
  if (target) {
    const kind = notRegularFile(target);
    if (kind) throw usageError(`Config file ${target} is ${kind}, not a regular file. Point --config at a JSON, YAML or JS file.`);
    return;
  }
  for (const place of SEARCH_PLACES) {
    const file = path.join(cwd, place);
    const kind = notRegularFile(file);
    // A directory by that name is passed over by the search, as before.
    if (kind && kind !== 'a directory') throw usageError(`${file} is ${kind}, not a regular file. Remove or rename it, or name the config file with --config.`);
  }
}

/**
 * cosmiconfig's search passes over a file it may not read (EACCES) as if it were not there: the command would then
 * run on the defaults, with the default database in the current folder (`licenses import` would even create it).
 * A config file that is there and cannot be read is refused as `-c` refuses it: exit 2, naming it and why. A
 * symbolic link to nothing is there too (its target is missing). Regular files only: a FIFO never reaches this.
 */
function assertSearchPlacesReadable(cwd: string): void {
  for (const place of SEARCH_PLACES) {
    const file = path.join(cwd, place);
    try {
      fs.lstatSync(file);
    } catch {
      continue; // not there (or the folder cannot be listed: the search cannot find it either)
    }
    if (notRegularFile(file) === 'a directory') continue;
    try {
      fs.closeSync(fs.openSync(file, 'r'));
    } catch (error) {
      // An fs error: not `instanceof Error` where it comes from another realm (a test's VM context).
      const reason = (error as NodeJS.ErrnoException).message ?? String(error);
      throw usageError(`Could not read config file ${file}: ${reason}. Make it readable by this user, remove it, or name the config file with --config.`, {
        cause: error,
      });
    }
    // The search stops at the first file it can read (package.json only when it holds our key): the places after
    // it are never read, whatever they are.
    if (place !== 'package.json') return;
  }
}

/**
 * Where the database is: LICENSE_MANAGER_DB (a path or a URL), else `database.url`, else `database.filename`
 * relative to the config file (or `cwd`). A bad URL is exit 2 naming where it came from, password masked.
 */
export function databaseTarget(loaded: LoadedConfig, env: NodeJS.ProcessEnv, cwd: string): DatabaseTarget {
  const { database } = loaded.config;
  const tablePrefix = database.tablePrefix;
  const sqlite = (filename: string, base: string): DatabaseTarget => {
    const resolved = path.resolve(base, filename);
    return { dialect: 'sqlite', filename: resolved, tablePrefix, label: resolved };
  };
  const fromUrl = (value: string, where: string, base: string): DatabaseTarget => {
    const parsed = parseDatabaseUrl(value, tablePrefix);
    if ('problem' in parsed) throw usageError(`${where}: ${parsed.problem}.`);
    return 'sqlitePath' in parsed ? sqlite(parsed.sqlitePath, base) : parsed;
  };
  const configDir = loaded.filepath ? path.dirname(loaded.filepath) : cwd;
  const fromEnv = env.LICENSE_MANAGER_DB;
  if (fromEnv) {
    if (looksLikeUrl(fromEnv)) return fromUrl(fromEnv, 'LICENSE_MANAGER_DB', cwd);
    const broken = brokenUrlProblem(fromEnv);
    if (broken) throw usageError(`LICENSE_MANAGER_DB: ${broken}.`);
    return sqlite(fromEnv, cwd);
  }
  if (database.url) return fromUrl(database.url, `${loaded.filepath ?? 'config'}: database.url`, configDir);
  return sqlite(database.filename ?? DEFAULT_DATABASE_FILENAME, configDir);
}

/**
 * parse-json's error puts its code frame in the message twice, and quotes the file's text after "while
 * parsing": the reason once, then the frame once.
 */
function jsonErrorText(error: unknown): string | undefined {
  if (!(error instanceof Error) || error.name !== 'JSONError') return undefined;
  const frame = (error as { codeFrame?: unknown }).codeFrame;
  let reason = error.message;
  if (typeof frame === 'string' && frame) reason = reason.replaceAll(frame, '');
  reason = reason
    .replace(/^JSON Error in [^\n]*?:\s*/, '')
    .replace(/\s*while parsing [\s\S]*$/, '')
    .trim();
  return typeof frame === 'string' && frame ? `${reason}\n${stripVTControlCharacters(frame)}` : reason;
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
