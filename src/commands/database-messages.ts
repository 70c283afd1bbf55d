import fs from 'node:fs';
import path from 'node:path';
import { commandLine } from '../command-line.js';
import { EXIT, ExitError, usageError } from '../errors.js';
import { classifyDbError, errorCode, messageOf } from '../sql/db-errors.js';
import { dialectNamed } from '../sql/dialect-for.js';
import { describeTarget, isServer, type DatabaseTarget, type ServerTarget } from '../storage/database-target.js';
import { FirstConnectionFailed, SQLITE_BUSY_TIMEOUT_MS } from '../storage/open-database.js';

/**
 * Driver errors, as storage classified them (src/sql/db-errors.ts), in words for the operator, with the exit
 * code they end the command with: 2 for what the operator must fix first (a login, a name, a privilege, a
 * schema, a file), 1 for a run that could not finish.
 */

/** Turns a driver's error into a message that names the database (host and name, password masked) and says what to do. */
export function databaseError(target: DatabaseTarget, error: unknown): ExitError {
  if (error instanceof ExitError) return error;
  if (!isServer(target)) return sqliteError(target.filename, error);
  if (error instanceof FirstConnectionFailed) return firstConnectionError(target, error.cause);
  const where = describeTarget(target);
  const code = errorCode(error);
  // Drivers may echo the connection string; never let a password through.
  const detail = messageOf(error).replaceAll(target.url, target.label);
  const fix = 'Check database.url or LICENSE_MANAGER_DB.';
  const kind = classifyDbError(error);
  switch (kind) {
    case 'login':
      return usageError(`Cannot log in to ${where}: ${detail}. Check the user name and password in the URL. ${fix}`, { cause: error });
    case 'no-database':
      return usageError(`${where} does not exist (${detail}). Create it (CREATE DATABASE ${target.database}) or fix the name in the URL.`, { cause: error });
    case 'no-privilege':
      return usageError(`The database user lacks a privilege on ${where}: ${detail}. Grant it (see README, "Using PostgreSQL or MySQL") or use another user.`, {
        cause: error,
      });
    case 'no-table':
      return usageError(`The schema of ${where} is older than this version (${detail}). Run "${commandLine('migrate')}".`, { cause: error });
    case 'lock-timeout':
      return new ExitError(
        EXIT.failure,
        `Another session held a lock on ${where} for too long (${detail}): an open transaction (an administrator's session, a report) or a stopped process holds rows this command must write. Find it (PostgreSQL: pg_stat_activity; MySQL: SHOW PROCESSLIST), end it, and run the command again.`,
        { cause: error },
      );
    case 'host-not-found':
      return usageError(`Cannot find host ${target.host} of ${where}: ${detail}. ${fix}`, { cause: error });
    case 'statement-timeout':
      return new ExitError(
        EXIT.failure,
        `A query on ${where} ran longer than the server's statement time limit and was cancelled (${detail}). The server answers; raise ${dialectNamed(target.dialect).statementTimeoutSetting} for this user or database, then run the command again.`,
        { cause: error },
      );
    default:
  }
  if (kind === 'unreachable' || /timeout/i.test(detail)) {
    return new ExitError(EXIT.failure, `Cannot reach ${where}: ${detail || code}. Is the server running and reachable from here? ${fix}`, { cause: error });
  }
  if (kind === 'lost') {
    return new ExitError(
      EXIT.failure,
      `Lost the connection to ${where}: ${detail || code}. Nothing is lost: deliveries in flight are taken over by the next run. Run the command again.`,
      { cause: error },
    );
  }
  return new ExitError(EXIT.failure, `${where}: ${detail || code}`, { cause: error });
}

/**
 * A first connection that failed in a way that is no known refusal (a wrong password, a missing database):
 * nothing was ever connected, so it was not "lost". A port where another kind of server answers, or that
 * closes at once, ends here.
 */
function firstConnectionError(target: ServerTarget, error: unknown): ExitError {
  const mapped = databaseError(target, error);
  if (mapped.code !== EXIT.failure || classifyDbError(error) === 'unreachable') return mapped;
  return new ExitError(
    EXIT.failure,
    `Cannot connect to ${describeTarget(target)}: ${messageOf(error).replaceAll(target.url, target.label) || errorCode(error)}. Is a ${dialectNamed(target.dialect).serverSoftware} server listening at ${target.host}:${target.port}? Check database.url or LICENSE_MANAGER_DB.`,
    { cause: error },
  );
}

/**
 * What this user may not do with the database file, in words that are true for every command (`status`
 * only reads, but SQLite writes a shared-memory file beside a WAL database even to read it), and whose
 * account can: undefined when the file and its directory are open to this user.
 */
function permissionProblem(filename: string): string | undefined {
  const directory = path.dirname(filename);
  const may = (file: string, mode: number) => {
    try {
      fs.accessSync(file, mode);
      return true;
    } catch {
      return false;
    }
  };
  let stat: fs.Stats;
  try {
    stat = fs.statSync(filename);
  } catch {
    return undefined;
  }
  const uid = process.getuid?.() ?? -1;
  const user = accountName(uid);
  const owner = accountName(stat.uid);
  const facts = `(owner ${owner}, mode ${(stat.mode & 0o777).toString(8)})`;
  const fix =
    stat.uid === uid
      ? `Check the permissions of the file and of ${directory} (chmod, chattr, a read-only mount).`
      : `Run the command as ${owner}, who owns it (sudo -u ${owner} license-manager ...), or change the permissions.`;
  if (!may(filename, fs.constants.R_OK)) return `Cannot read database ${filename}: user ${user} may not ${facts}. ${fix}`;
  if (!may(filename, fs.constants.W_OK)) {
    return `Cannot write database ${filename}: user ${user} may not ${facts}, and SQLite must, even for a command that only reads such as status (it keeps a shared-memory file beside the database). ${fix}`;
  }
  if (!may(directory, fs.constants.W_OK))
    return `Cannot write database ${filename}: user ${user} may not write in ${directory}, where SQLite keeps its journal files ${facts}. ${fix}`;
  return undefined;
}

/** A user's name from /etc/passwd, or `uid N` when it has none. */
function accountName(uid: number): string {
  try {
    const line = fs
      .readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .find((entry) => entry.split(':')[2] === String(uid));
    if (line) return line.split(':')[0]!;
  } catch {
    // no passwd file (a container, Windows): the number says it
  }
  return `uid ${uid}`;
}

/** Turns SQLite's codes into a message that names the file and says what to do. */
function sqliteError(filename: string, error: unknown): ExitError {
  const detail = messageOf(error);
  switch (classifyDbError(error)) {
    case 'not-a-database':
      return usageError(`${filename} is not a SQLite database. Point database.filename or LICENSE_MANAGER_DB at a license-manager database.`, { cause: error });
    case 'read-only':
      return usageError(permissionProblem(filename) ?? `Cannot write database ${filename} (${detail}). Check the file's and its directory's permissions.`, {
        cause: error,
      });
    case 'full':
      return new ExitError(
        EXIT.failure,
        `Disk full: cannot write database ${filename} (${detail}). Free space on its disk, then run the command again: whatever was not recorded as sent is still pending and goes out with the next run.`,
        { cause: error },
      );
    case 'busy':
      return new ExitError(
        EXIT.failure,
        `Database ${filename} stayed locked by another process for more than ${SQLITE_BUSY_TIMEOUT_MS / 1000} s. Try again when the other run has finished.`,
        { cause: error },
      );
    default:
      return new ExitError(EXIT.failure, `Database ${filename}: ${detail}`, { cause: error });
  }
}
