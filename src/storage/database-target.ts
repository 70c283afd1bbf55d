import { maskCredentials, passwordProblem } from '../credentials.js';
import { dialectNamed } from '../sql/dialect-for.js';
import { LONGEST_INDEX_NAME } from '../sql/table-prefix.js';
import type { DialectName } from '../sql/sql-dialect.js';

/** Where the database is: a SQLite file, or a PostgreSQL / MySQL server given by URL. */
export type DatabaseTarget =
  | { dialect: 'sqlite'; filename: string; tablePrefix: string; label: string }
  | { dialect: Exclude<DialectName, 'sqlite'>; url: string; host: string; port: number; database: string; tablePrefix: string; label: string };

const SERVER_PROTOCOLS: Record<string, Exclude<DialectName, 'sqlite'>> = {
  'postgres:': 'postgres',
  'postgresql:': 'postgres',
  'mysql:': 'mysql',
  'mariadb:': 'mysql',
};

const DEFAULT_PORTS = { postgres: 5432, mysql: 3306 } as const;

export type ServerTarget = Exclude<DatabaseTarget, { filename: string }>;

/** Whether the target is a server database (PostgreSQL, MySQL) rather than a SQLite file. */
export function isServer(target: DatabaseTarget): target is ServerTarget {
  return 'url' in target;
}

/** The SQLite file of a target, undefined for a server database. */
export function databaseFileOf(target: DatabaseTarget): string | undefined {
  return isServer(target) ? undefined : target.filename;
}

/** Whether a `database.url` / LICENSE_MANAGER_DB value is a URL (`scheme:`) rather than a file path. */
export function looksLikeUrl(value: string): boolean {
  return /^[a-z][a-z0-9+.-]*:/i.test(value) && !/^[a-z]:[\\/]/i.test(value);
}

/**
 * Why a LICENSE_MANAGER_DB value that is not a URL is not a file path either: a server URL missing the ":"
 * after its scheme (`postgres//app@db/licenses`) would otherwise be taken for a relative SQLite path.
 */
export function brokenUrlProblem(value: string): string | undefined {
  const scheme = /^(postgres|postgresql|mysql|mariadb|sqlite)\/\//i.exec(value)?.[1];
  if (!scheme) return undefined;
  return `${maskDatabaseUrl(value)} looks like a database URL without the ":" after "${scheme}" (expected ${scheme}://user:<password>@host:port/database); a SQLite file path does not start with "${scheme}//"`;
}

/** The URL with its password (and ?password=) replaced by `****`: safe for every message and `--json`. */
function maskDatabaseUrl(value: string): string {
  return maskCredentials(value);
}

const BAD_ESCAPE = 'has a malformed %-escape (a "%" must start %XX, two hex digits of UTF-8): write a "%" itself as %25, "@" as %40 and "/" as %2F';

/** A URL part with its %-escapes decoded, or undefined when one is malformed. */
function decoded(part: string): string | undefined {
  try {
    return decodeURIComponent(part);
  } catch {
    return undefined;
  }
}

/**
 * Reads a database URL. Returns the target, or a reason naming what is wrong (without the password).
 * `sqlite:` URLs (`sqlite:./db.sqlite`, `sqlite:///abs/path.sqlite`) give back the path for the caller to resolve.
 */
export function parseDatabaseUrl(value: string, tablePrefix: string): DatabaseTarget | { sqlitePath: string } | { problem: string } {
  const scheme = value.slice(0, value.indexOf(':') + 1).toLowerCase();
  if (scheme === 'sqlite:') {
    const rest = value.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (!rest) return { problem: `${value} names no file (expected sqlite:./license-manager.sqlite)` };
    const sqlitePath = decoded(rest);
    return sqlitePath === undefined ? { problem: `${value}: the file path ${BAD_ESCAPE}` } : { sqlitePath };
  }
  const dialect = SERVER_PROTOCOLS[scheme];
  if (!dialect) return { problem: `${maskDatabaseUrl(value)} has an unknown scheme "${scheme}" (use postgres://, mysql://, or a SQLite file path)` };
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    // Never quoted whole: the part that breaks it is named, the password masked.
    const password = passwordProblem(value);
    return {
      problem: `${maskDatabaseUrl(value)} is not a valid URL${password ? `: ${password}` : ''} (expected ${dialect}://user:<password>@host:port/database)`,
    };
  }
  // Drivers decode the user, password and name too: a bad escape there is this URL's fault, said before connecting.
  const badPart = (
    [
      ['user name', url.username],
      ['password', url.password],
      ['database name', url.pathname],
    ] as const
  ).find(([, part]) => decoded(part) === undefined)?.[0];
  if (badPart) return { problem: `${maskDatabaseUrl(value)}: the ${badPart} ${BAD_ESCAPE}` };
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!url.hostname) return { problem: `${maskDatabaseUrl(value)} has no host name` };
  if (!database || database.includes('/'))
    return { problem: `${maskDatabaseUrl(value)} names no database (expected ${dialect}://user:<password>@${url.host}/database)` };
  const { maxTablePrefix, serverSoftware } = dialectNamed(dialect);
  if (maxTablePrefix !== undefined && tablePrefix.length > maxTablePrefix) {
    return {
      problem: `the table prefix "${tablePrefix}" (database.tablePrefix) is ${tablePrefix.length} characters, and ${serverSoftware} takes at most ${maxTablePrefix}: the names of this tool's indexes carry the prefix and may be at most ${maxTablePrefix + LONGEST_INDEX_NAME} characters long (the longest is the prefix and ${LONGEST_INDEX_NAME} more)`,
    };
  }
  const label = maskDatabaseUrl(value);
  return { dialect, url: value, host: url.hostname, port: url.port ? Number(url.port) : DEFAULT_PORTS[dialect], database, tablePrefix, label };
}

/** "PostgreSQL database licenses on db.example:5432": how messages name a server database. */
export function describeTarget(target: DatabaseTarget): string {
  if (!isServer(target)) return `database ${target.filename}`;
  return `${dialectNamed(target.dialect).serverName} database "${target.database}" on ${target.host}:${target.port} (${target.label})`;
}
