import fs from 'node:fs';
import path from 'node:path';
import { commandLine } from '../command-line.js';
import { EXIT, ExitError, usageError } from '../errors.js';
import { plural } from '../plural.js';
import { classifyDbError, errorCode, isDatabaseError, messageOf } from '../sql/db-errors.js';
import { dialectNamed } from '../sql/dialect-for.js';
import { describeTarget, isServer, type DatabaseTarget, type ServerTarget } from '../storage/database-target.js';
import { FirstConnectionFailed, SQLITE_BUSY_TIMEOUT_MS } from '../storage/open-database.js';
import { StorageRefusal, type Refusal } from '../storage/storage-refusal.js';

/**
 * Driver errors, as storage classified them (src/sql/db-errors.ts), and storage's own refusals
 * (src/storage/storage-refusal.ts), in words for the operator, with the exit code they end the command with: 2 for
 * what the operator must fix first (a login, a name, a privilege, a schema, a file), 1 for a run that could not finish.
 */

/** Whether the command edge turns this error into the operator's words: a driver's error, or a refusal of storage. */
export function isStorageError(error: unknown): boolean {
  return !(error instanceof ExitError) && (error instanceof StorageRefusal || isDatabaseError(error));
}

/**
 * A refusal of storage as the operator reads it; any other error as it is. `run`: a process-expirations run refused
 * before it sent or marked anything, which its words say (other commands send and mark nothing).
 */
export function withRefusalWords(target: DatabaseTarget, error: unknown, run = false): unknown {
  return error instanceof StorageRefusal ? refusalError(target, error, run) : error;
}

/** Turns a driver's error into a message that names the database (host and name, password masked) and says what to do. */
export function databaseError(target: DatabaseTarget, error: unknown): ExitError {
  if (error instanceof ExitError) return error;
  if (error instanceof StorageRefusal) return refusalError(target, error);
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

/** What storage refused, in the operator's words: what is wrong, where, and what to do. */
function refusalError(target: DatabaseTarget, error: StorageRefusal, run = false): ExitError {
  const options = { cause: error.cause };
  const refusal: Refusal = error.refusal;
  switch (refusal.kind) {
    case 'no-directory':
      return usageError(
        `Database directory ${refusal.directory} does not exist (database file ${refusal.filename}). Create it, or set database.filename / LICENSE_MANAGER_DB.`,
        options,
      );
    case 'not-a-file':
      return usageError(
        `Database ${refusal.filename} is not a regular file. Point database.filename or LICENSE_MANAGER_DB at a SQLite file (license-manager migrate creates one when missing).`,
        options,
      );
    case 'cannot-create':
      return usageError(`Cannot create database file ${refusal.filename}: ${refusal.detail}`, options);
    case 'foreign-database': {
      const { tables } = refusal;
      const shown = tables.slice(0, 5).join(', ') + (tables.length > 5 ? `, ... (${tables.length} in all)` : '');
      return usageError(
        `Database ${refusal.filename} belongs to something else: it has tables (${shown}) but no license-manager schema, and was left unchanged. Point database.filename or LICENSE_MANAGER_DB at a new or license-manager file.`,
        options,
      );
    }
    case 'schema-behind': {
      const tables = target.tablePrefix ? `tables prefixed "${target.tablePrefix}"` : 'tables without a prefix';
      return usageError(
        `The schema of ${describeTarget(target)} (${tables}) is not up to date (${plural(refusal.pending.length, 'migration')} to apply: ${refusal.pending.join(', ')}). Run "${commandLine('migrate')}" first (with the same config or LICENSE_MANAGER_DB), or check database.tablePrefix.`,
        options,
      );
    }
    case 'botble-table-missing':
      return usageError(
        `Botble mode reads the tables ${refusal.tables.join(', ')}, and this database lacks one (${refusal.detail}). Point database.url at the Botble database, or set botble.tablePrefix to the prefix its License Manager tables have.`,
        options,
      );
    case 'botble-column-type': {
      const found = refusal.columns.map(({ column, type }) => `${refusal.table}.${column} is ${type}`).join(' and ');
      return usageError(
        `Botble mode reads ${refusal.table}.expires_at and updates_until as DATE columns, as Botble's License Manager schema has them (a date alone, no time of day), and no other type: here ${found}. No license was read${run ? ', and nothing was sent or marked' : ''}. Point database.url at a Botble License Manager database whose columns are DATE.`,
        options,
      );
    }
    case 'event-too-long': {
      const { event, field } = refusal;
      const license = event && (event.licenseCode === undefined ? '' : ` (${event.licenseCode})`);
      const what = event
        ? `The ${event.type} event of ${event.licenseId === null ? `an event without a license${license}` : `license ${event.licenseId}${license}`}`
        : 'An event';
      const size = refusal.bytes === undefined ? '' : ` (${refusal.bytes.toLocaleString('en-US')} bytes)`;
      return new ExitError(
        EXIT.failure,
        `${what} cannot be stored: its ${field}${size} is longer than the column ${refusal.table}.${field} (or the server's max_allowed_packet) holds. Nothing of this run was recorded or sent, and nothing was cut; run "license-manager migrate" (migration 0007 makes the column LONGTEXT) or raise max_allowed_packet (${refusal.detail}).`,
        options,
      );
    }
    case 'missing-privileges': {
      const names = refusal.missing.map(([privilege]) => privilege);
      const why = refusal.missing.map(([privilege, what]) => `${privilege} (${what})`).join(', ');
      return usageError(
        `The database user ${account(refusal.user)} lacks ${names.join(', ')} on database ${refusal.database}, which ${refusal.command} needs: ${why}. Nothing was changed (MySQL and MariaDB commit each schema change at once, so migrate checks first). As an administrator, run:\n  GRANT ${names.join(', ')} ON \`${refusal.database}\`.* TO ${account(refusal.user)};\nthen run migrate again (see README, "Using PostgreSQL or MySQL").`,
        options,
      );
    }
    case 'index-name-cut':
      return usageError(
        `The table prefix "${refusal.tablePrefix}" (database.tablePrefix) is too long for PostgreSQL: it cuts index names to 63 characters, and ${refusal.index} cut so is ${refusal.cutTo}, the name of another index. The migrate was rolled back and nothing changed. Use a prefix of at most 28 characters.`,
        options,
      );
    case 'claims-unconfirmed':
      return new ExitError(
        EXIT.failure,
        `${describeTarget(target)} did not confirm this run's claim on delivery ${refusal.deliveryId} within half its ${refusal.leaseMs} ms lease, three times running: it answers too slowly to keep claims safely, so the run stopped. What it had not sent is still to send (deliveries list shows it).`,
        options,
      );
    case 'no-temporary-tables':
      return usageError(
        `The database user ${account(refusal.user)} lacks CREATE TEMPORARY TABLES on database ${refusal.database}, which licenses import needs (it checks repeated license codes in a temporary table); nothing was imported. As an administrator, run:\n  GRANT CREATE TEMPORARY TABLES ON \`${refusal.database}\`.* TO ${account(refusal.user)};`,
        options,
      );
  }
}

/** A MySQL account as a GRANT names it: 'user'@'host'. */
function account(user: string): string {
  const at = user.lastIndexOf('@');
  return at < 0 ? `'${user}'` : `'${user.slice(0, at)}'@'${user.slice(at + 1)}'`;
}
