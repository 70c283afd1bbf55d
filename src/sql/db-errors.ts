/**
 * Driver errors of the three dialects, read once: what kind of failure each is. The words for the operator and
 * the exit code belong to the command edge (src/commands/database-messages.ts); this file only names the kind.
 */
export type DbErrorKind =
  | 'login'
  | 'no-database'
  | 'no-privilege'
  | 'no-table'
  | 'host-not-found'
  | 'unreachable'
  | 'lost'
  | 'lock-timeout'
  | 'statement-timeout'
  | 'busy'
  | 'full'
  | 'read-only'
  | 'not-a-database'
  | 'constraint'
  | 'deadlock'
  | 'too-long'
  | 'other';

/** The error code of a statement given up because the server did not answer (server-pool.ts gives it). */
export const NO_ANSWER = 'LM_NO_ANSWER';

/** The driver's error code (`SQLITE_BUSY`, `23505`, `ER_DUP_ENTRY`, `ECONNRESET`), or '' when there is none. */
export function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : '';
}

/** The error's message, also for errors made in another realm (which fail `instanceof Error`). */
export function messageOf(error: unknown): string {
  const message = (error as { message?: unknown } | null)?.message;
  // Our messages add their own full stop: "… from backend.. Is a server listening" reads as a typo.
  return (typeof message === 'string' ? message : String(error)).replace(/\.+\s*$/, '');
}

// PostgreSQL SQLSTATEs and MySQL/MariaDB error names, grouped by what the operator has to do.
const LOGIN_FAILED = new Set(['28P01', '28000', 'ER_ACCESS_DENIED_ERROR', 'ER_ACCESS_DENIED_NO_PASSWORD_ERROR', 'ER_NOT_SUPPORTED_AUTH_MODE']);
const NO_DATABASE = new Set(['3D000', 'ER_BAD_DB_ERROR']);
const NO_PRIVILEGE = new Set([
  '42501',
  'ER_DBACCESS_DENIED_ERROR',
  'ER_TABLEACCESS_DENIED_ERROR',
  'ER_COLUMNACCESS_DENIED_ERROR',
  'ER_SPECIFIC_ACCESS_DENIED_ERROR',
]);
const NO_TABLE = new Set(['42P01', '42703', 'ER_NO_SUCH_TABLE', 'ER_BAD_FIELD_ERROR']);
const UNREACHABLE = new Set(['ECONNREFUSED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', NO_ANSWER]);
// A row lock another session held past the lock timeout (lock_timeout, innodb_lock_wait_timeout).
const LOCK_NOT_RELEASED = new Set(['55P03', 'ER_LOCK_WAIT_TIMEOUT']);
const CONNECTION_LOST = new Set([
  '57P01',
  '57P02',
  '57P03',
  '08000',
  '08003',
  '08006',
  'ECONNRESET',
  'EPIPE',
  'PROTOCOL_CONNECTION_LOST',
  'ER_CONNECTION_KILLED',
  'ER_SERVER_SHUTDOWN',
  'ER_QUERY_INTERRUPTED',
]);
// InnoDB picks a victim when concurrent INSERT IGNOREs meet on the same unique keys; PostgreSQL may too.
const DEADLOCK = new Set(['ER_LOCK_DEADLOCK', '40P01', '40001']);
const CONSTRAINT = new Set(['ER_DUP_ENTRY', 'ER_CONSTRAINT_FAILED', 'ER_CHECK_CONSTRAINT_VIOLATED', 'ER_NO_REFERENCED_ROW_2']);
// MySQL's "Data too long for column" (strict sessions), or a statement over max_allowed_packet.
const TOO_LONG = new Set(['ER_DATA_TOO_LONG', 'ER_NET_PACKET_TOO_LARGE']);

// How pg and mysql2 report a socket closed under them when they give no code.
const LOST_WITHOUT_CODE =
  /Connection terminated|Client has encountered a connection error|connection is in closed state|Connection lost|timeout exceeded when trying to connect/i;

/**
 * The server cancelled a statement for running too long: PostgreSQL's statement_timeout (57014 "due to statement
 * timeout", not a cancel by hand), MariaDB's max_statement_time (errno 1969, which mysql2 names no code) or MySQL's max_execution_time.
 */
function isStatementTimeout(error: unknown): boolean {
  const code = errorCode(error);
  if (code === '57014') return /statement timeout/i.test(messageOf(error));
  return code === 'ER_QUERY_TIMEOUT' || (error as { errno?: unknown } | null)?.errno === 1969;
}

function sqliteKind(code: string, message: string): DbErrorKind {
  if (/no such table/i.test(message)) return 'no-table';
  if (code === 'SQLITE_NOTADB') return 'not-a-database';
  if (code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_CANTOPEN')) return 'read-only';
  if (code === 'SQLITE_FULL') return 'full';
  if (code.startsWith('SQLITE_BUSY')) return 'busy';
  if (code.startsWith('SQLITE_CONSTRAINT')) return 'constraint';
  return 'other';
}

/** What kind of failure a driver's error is, in any dialect's words. */
export function classifyDbError(error: unknown): DbErrorKind {
  const code = errorCode(error);
  if (code.startsWith('SQLITE_')) return sqliteKind(code, messageOf(error));
  if (LOGIN_FAILED.has(code)) return 'login';
  if (NO_DATABASE.has(code)) return 'no-database';
  if (NO_PRIVILEGE.has(code)) return 'no-privilege';
  if (NO_TABLE.has(code) || /no such table/i.test(messageOf(error))) return 'no-table';
  if (LOCK_NOT_RELEASED.has(code)) return 'lock-timeout';
  if (DEADLOCK.has(code)) return 'deadlock';
  if (CONSTRAINT.has(code) || /^23[0-9A-Z]{3}$/.test(code)) return 'constraint';
  if (TOO_LONG.has(code)) return 'too-long';
  if (code === 'ENOTFOUND') return 'host-not-found';
  if (isStatementTimeout(error)) return 'statement-timeout';
  if (UNREACHABLE.has(code)) return 'unreachable';
  if (CONNECTION_LOST.has(code) || LOST_WITHOUT_CODE.test(messageOf(error))) return 'lost';
  return 'other';
}

/** Whether an error came from the database (its driver or server) rather than from our own code. */
export function isDatabaseError(error: unknown): boolean {
  // Duck-typed, not instanceof Error: a native driver's errors may come from another realm (jest's VM contexts).
  if (typeof error !== 'object' || error === null) return false;
  if (isStatementTimeout(error)) return true;
  const code = errorCode(error);
  if (code.startsWith('SQLITE_') || code.startsWith('ER_') || /^([0-9][0-9A-Z]{4}|XX000)$/.test(code) || CONNECTION_LOST.has(code) || code === NO_ANSWER)
    return true;
  const { message } = error as { message?: unknown };
  return typeof message === 'string' && LOST_WITHOUT_CODE.test(message);
}

/** A unique, check or foreign-key constraint refused the write, in any dialect's words. */
export function isConstraintViolation(error: unknown): boolean {
  return classifyDbError(error) === 'constraint';
}

const DEADLOCK_RETRIES = 5;

/**
 * Runs a transaction again when the server chose it as a deadlock victim (its work was rolled back, so a
 * second try is safe). Several workers recording the same events at once is the expected case. A lock wait
 * that timed out (lock_timeout, innodb_lock_wait_timeout) is tried again as well: its holder may be gone.
 */
export async function retryOnDeadlock<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await fn();
    } catch (error) {
      const kind = classifyDbError(error);
      if ((kind !== 'deadlock' && kind !== 'lock-timeout') || attempt >= DEADLOCK_RETRIES) throw error;
      await new Promise((resolve) => setTimeout(resolve, 10 * attempt + Math.random() * 20 * attempt));
    }
  }
}

/**
 * An index whose name, with the table prefix, is longer than PostgreSQL takes, and cut to that length is the name of
 * another index: CREATE INDEX IF NOT EXISTS would take that one for it and create nothing. With a table prefix of 29
 * characters or more, 0009's webhook_deliveries_status_endpoint_next_attempt is cut to 0008's
 * webhook_deliveries_status_endpoint.
 */
export class IndexNameCut extends Error {
  constructor(
    readonly index: string,
    readonly cutTo: string,
    length: number,
    existing: string,
  ) {
    super(`index ${index} cut to ${length} characters is ${cutTo}, the name of another index (${existing})`);
    this.name = 'IndexNameCut';
  }
}
