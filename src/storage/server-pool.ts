import type { Kysely, MysqlPool, MysqlPoolConnection, MysqlQueryResult, PostgresPool, PostgresPoolClient } from 'kysely';
import type pg from 'pg';
import type { Pool as MysqlRawPool, PoolConnection as MysqlRawConnection } from 'mysql2';
import { NO_ANSWER } from '../sql/db-errors.js';

/** LICENSE_MANAGER_DB_TIMEOUT_MS unset: every wait on a server database is bounded by this, and the bounds below. */
export const DEFAULT_DB_TIMEOUT_MS = 30_000;
// A pooled connection unused for this long (no longer part of a burst of statements) is asked a `select 1` before it is handed out: the server may have
// restarted, or a failover moved its address, while it sat in the pool.
const CHECK_AFTER_IDLE_MS = 250;
// Connections tried for one checkout: more than the pool holds, so every dead idle one can be replaced.
const CHECKOUT_TRIES = 8;
// Between two tries to connect again to a server that went away (a restart, a failover).
const RECONNECT_PAUSE_MS = 200;
// A pool whose connections do not close in this long (a link that no longer answers) has their sockets destroyed.
const CLOSE_GRACE_MS = 2000;

/** How long a command waits on a server database: each bound derived from one timeout. */
export interface DatabaseTimeouts {
  /** Server side: a statement running longer is cancelled (statement_timeout, max_statement_time); 0: none (migrate). */
  statementMs: number;
  /** Server side: how long a statement waits for a row lock another session holds (lock_timeout, innodb_lock_wait_timeout). */
  lockMs: number;
  /** Server side: a session idle inside its transaction (a paused worker) is ended, and its locks go with it. */
  idleInTransactionMs: number;
  /** Client side: a statement whose answer does not come within this is given up, its connection closed; 0: none (migrate). */
  answerMs: number;
  /** Client side: opening a connection, or waiting for one of the pool's. */
  connectMs: number;
  /** How long a run holds its requests back for a lost database to answer again (a restart, a failover) before it stops. */
  reconnectMs: number;
}

/** The bounds for one timeout (LICENSE_MANAGER_DB_TIMEOUT_MS): `migrate` may run long statements, and is not limited by it. */
export function databaseTimeouts(timeoutMs = DEFAULT_DB_TIMEOUT_MS, options: { migrate?: boolean | undefined } = {}): DatabaseTimeouts {
  // Whole seconds on MySQL; a third of the timeout leaves room for retries after a lock wait times out.
  const lockMs = Math.max(1000, Math.round(timeoutMs / 3000) * 1000);
  const answerMs = timeoutMs + Math.min(timeoutMs, 5000);
  return {
    statementMs: options.migrate ? 0 : timeoutMs,
    lockMs,
    idleInTransactionMs: lockMs,
    answerMs: options.migrate ? 0 : answerMs,
    connectMs: Math.min(10_000, timeoutMs),
    reconnectMs: answerMs,
  };
}

function noAnswerError(ms: number): Error {
  const error = new Error(`the database did not answer within ${ms / 1000} s (a frozen server or a broken network link)`);
  return Object.assign(error, { code: NO_ANSWER });
}

/**
 * What a command knows about its server connections: one was lost under it (a restart, a reset, a failover:
 * the pool reconnects), or the server stopped answering (a freeze, a black-holed link: every later statement
 * fails at once, with the same error, rather than waiting again).
 */
export class ConnectionWatch {
  private silence: unknown;
  private readonly listeners = new Set<(error: unknown) => void>();
  /** Set once a connection was made: only then is a server that refuses taken for one that is coming back. */
  connected = false;
  /** Set when the command closes the pool: nothing is tried again then. */
  closing = false;
  /** Closes every connection of the pool at once (set by the pool). */
  closeAll: () => void = () => undefined;

  constructor(readonly timeouts: DatabaseTimeouts) {}

  /** A connection broke or was closed by the server. */
  lost(error: unknown): void {
    for (const listener of this.listeners) listener(error);
  }

  /** Called with every loss; returns the unsubscribe. */
  onLost(listener: (error: unknown) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The error every statement now fails with, once the server stopped answering. */
  get stoppedAnswering(): unknown {
    return this.silence;
  }

  /** Throws once the server stopped answering: a frozen server is not waited for twice. */
  check(): void {
    if (this.silence !== undefined) throw this.silence;
  }

  /** What `take` gets (a connection from the pool), unless the server stops answering first: then that error, at once. */
  unlessSilent<T>(take: () => Promise<T>, giveBack: (value: T) => void): Promise<T> {
    this.check();
    const taking = take();
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const off = this.onLost(() => {
        if (this.silence === undefined || settled) return;
        settled = true;
        reject(this.silence);
      });
      taking.then(
        (value) => {
          off();
          if (settled) giveBack(value);
          else resolve(value);
          settled = true;
        },
        (error: unknown) => {
          off();
          if (!settled) reject(this.silence ?? error);
          settled = true;
        },
      );
    });
  }

  /**
   * A connection from `take`; when none can be made (the server is restarting, a failover is under way) and
   * this command has been connected before, tried again until `reconnectMs` have passed: no statement was
   * sent, so waiting is safe, and a short outage costs nothing.
   */
  async connection<T>(take: () => Promise<T>, giveBack: (value: T) => void): Promise<T> {
    const deadline = Date.now() + this.timeouts.reconnectMs;
    for (;;) {
      try {
        return await this.unlessSilent(take, giveBack);
      } catch (error) {
        if (!this.connected || this.closing || this.silence !== undefined || Date.now() >= deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, RECONNECT_PAUSE_MS));
      }
    }
  }

  /** `answer`, or an error after `answerMs`: then the connection is closed, with every other one of the pool. */
  answered<T>(answer: Promise<T>, close: () => void): Promise<T> {
    const ms = this.timeouts.answerMs;
    if (!ms) return answer;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        const error = noAnswerError(ms);
        this.silence ??= error;
        close();
        this.closeAll();
        this.lost(error);
        reject(error);
      }, ms);
      answer.then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (error: unknown) => {
          clearTimeout(timer);
          // Connections closed because the server stopped answering report that, not their own closing.
          reject(this.silence ?? error);
        },
      );
    });
  }
}

const watches = new WeakMap<object, ConnectionWatch>();

/** Ties a watch to the database it watches (openDatabase). */
export function watchDatabase(db: Kysely<any>, watch: ConnectionWatch): void {
  watches.set(db, watch);
}

/** The watch of a server database opened by openDatabase; undefined for SQLite. */
export function connectionWatchOf(db: Kysely<any>): ConnectionWatch | undefined {
  return watches.get(db);
}

/** pg.Pool settings for these bounds: the server-side limits travel as startup parameters (no round trip). */
export function pgTimeoutOptions(timeouts: DatabaseTimeouts): pg.PoolConfig {
  return {
    connectionTimeoutMillis: timeouts.connectMs,
    // Noticed by the kernel between statements (an idle pooled connection whose peer vanished).
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    ...(timeouts.statementMs ? { statement_timeout: timeouts.statementMs } : {}),
    lock_timeout: timeouts.lockMs,
    idle_in_transaction_session_timeout: timeouts.idleInTransactionMs,
  };
}

/** mysql2 pool settings for these bounds (the server-side ones are set per session: see mysqlSessionTimeouts). */
export function mysqlTimeoutOptions(timeouts: DatabaseTimeouts): { connectTimeout: number; enableKeepAlive: boolean; keepAliveInitialDelay: number } {
  return { connectTimeout: timeouts.connectMs, enableKeepAlive: true, keepAliveInitialDelay: 10_000 };
}

// What MySQL 8 and MariaDB 10.2+ default to, set whatever the server's own default: a known mode for every
// session (no ANSI_QUOTES or NO_BACKSLASH_ESCAPES that would change how our statements read).
const STRICT_SQL_MODE = 'STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ZERO_IN_DATE,NO_ZERO_DATE,NO_ENGINE_SUBSTITUTION';

/**
 * The session variables for these bounds, and a strict sql_mode. MariaDB limits every statement and ends a
 * session idle in its transaction; MySQL 8 has neither (max_execution_time covers SELECT only), so there only
 * lock waits and the client-side answer bound apply.
 */
function mysqlSessionTimeouts(timeouts: DatabaseTimeouts, mariadb: boolean): string {
  const seconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000));
  const settings = [`innodb_lock_wait_timeout = ${seconds(timeouts.lockMs)}`];
  if (mariadb) {
    settings.push(`max_statement_time = ${timeouts.statementMs / 1000}`, `idle_transaction_timeout = ${seconds(timeouts.idleInTransactionMs)}`);
  } else if (timeouts.statementMs) {
    settings.push(`max_execution_time = ${timeouts.statementMs}`);
  }
  // Strict: a value too long for its column is an error, never a silent cut (a server's default may be lax).
  settings.push(`sql_mode = '${STRICT_SQL_MODE}'`);
  return `set session ${settings.join(', ')}`;
}

// MySQL's answer to a variable only MariaDB has.
const ER_UNKNOWN_SYSTEM_VARIABLE = 1193;

interface Socketed {
  stream?: { destroy(): void } | null;
}

/** Closes a connection's socket at once (a graceful close waits for a peer that may never answer). */
function destroySocket(owner: Socketed | undefined): void {
  owner?.stream?.destroy();
}

/** Ends a pool gracefully, or after CLOSE_GRACE_MS (at once when the server stopped answering) by destroying its sockets. */
async function endWithin(ending: Promise<unknown>, watch: ConnectionWatch): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const grace = watch.stoppedAnswering === undefined ? CLOSE_GRACE_MS : 0;
  await Promise.race([ending.catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, grace)))]);
  clearTimeout(timer);
  watch.closeAll();
}

/** Whether a connection back from the pool has sat unused long enough to be checked before use. */
function idleTooLong(releasedAt: WeakMap<object, number>, connection: object): boolean {
  const at = releasedAt.get(connection);
  return at !== undefined && Date.now() - at >= CHECK_AFTER_IDLE_MS;
}

/**
 * Kysely's view of a pg.Pool, with every wait bounded: each statement gets `answerMs` for its answer, a
 * connection that sat in the pool is checked before use (and replaced when dead), and closing never waits
 * for a server that no longer answers. Every loss is told to `watch`.
 */
export function boundedPgPool(pool: pg.Pool, watch: ConnectionWatch): PostgresPool {
  const clients = new Set<pg.PoolClient>();
  const wrappers = new WeakMap<pg.PoolClient, PostgresPoolClient>();
  const releasedAt = new WeakMap<object, number>();
  // pg's client keeps its socket as `connection.stream`; pg-pool itself destroys it there on a connect timeout.
  const socketOf = (client: pg.PoolClient) => (client as unknown as { connection?: Socketed }).connection;
  watch.closeAll = () => {
    for (const client of clients) destroySocket(socketOf(client));
  };
  pool.on('connect', (client) => {
    watch.connected = true;
    clients.add(client);
    // A connection the server closes (idle in the pool, or checked out between queries) must not crash the
    // process with an unhandled 'error' event: the query that uses it reports the loss, the watch hears of it.
    client.on('error', (error) => watch.lost(error));
    client.on('end', () => clients.delete(client));
  });
  pool.on('error', () => undefined);
  const ask = (client: pg.PoolClient, text: string, values: unknown[] = []) =>
    watch.answered(client.query(text, values), () => destroySocket(socketOf(client)));
  const wrap = (client: pg.PoolClient): PostgresPoolClient => {
    let wrapper = wrappers.get(client);
    if (!wrapper) {
      wrapper = {
        query: ((text: string, values: unknown[]) => ask(client, text, values)) as unknown as PostgresPoolClient['query'],
        release: (destroy?: boolean) => {
          releasedAt.set(client, Date.now());
          client.release(destroy);
        },
      };
      wrappers.set(client, wrapper);
    }
    return wrapper;
  };
  return {
    async connect() {
      for (let tries = 1; ; tries += 1) {
        const client = await watch.connection(
          () => pool.connect(),
          (late) => late.release(true),
        );
        if (!idleTooLong(releasedAt, client)) return wrap(client);
        try {
          await ask(client, 'select 1');
          return wrap(client);
        } catch (error) {
          // Dead since it was last used: drop it and take another (a new one once the idle ones are gone).
          client.release(true);
          if (tries >= CHECKOUT_TRIES || watch.stoppedAnswering !== undefined) throw error;
        }
      }
    },
    end: () => {
      watch.closing = true;
      return endWithin(pool.end(), watch);
    },
  };
}

/**
 * Kysely's view of a mysql2 pool, bounded as boundedPgPool is. Each new connection gets the session's lock,
 * statement and idle-transaction limits before its first use.
 */
export function boundedMysqlPool(pool: MysqlRawPool, watch: ConnectionWatch): MysqlPool {
  const connections = new Set<MysqlRawConnection>();
  const wrappers = new WeakMap<MysqlRawConnection, MysqlPoolConnection>();
  const releasedAt = new WeakMap<object, number>();
  const prepared = new WeakSet<MysqlRawConnection>();
  // MariaDB until the server says otherwise (it does not know MariaDB's variables).
  let mariadb = true;
  const socketOf = (connection: MysqlRawConnection) => connection as unknown as Socketed;
  watch.closeAll = () => {
    for (const connection of connections) destroySocket(socketOf(connection));
  };
  pool.on('connection', (connection) => {
    watch.connected = true;
    connections.add(connection);
    connection.on('error', (error) => watch.lost(error));
    connection.on('end', () => connections.delete(connection));
  });
  const ask = (connection: MysqlRawConnection, text: string, values: unknown[] = []) =>
    watch
      .answered(
        new Promise<MysqlQueryResult>((resolve, reject) =>
          connection.query(text, values, (error, result) => (error ? reject(error) : resolve(result as MysqlQueryResult))),
        ),
        () => destroySocket(socketOf(connection)),
      )
      .catch((error: unknown) => {
        // A fatal error ends the connection: the one in use is told to its query, not to the connection.
        if ((error as { fatal?: unknown }).fatal) watch.lost(error);
        throw error;
      });
  const prepare = async (connection: MysqlRawConnection) => {
    if (prepared.has(connection)) return;
    try {
      await ask(connection, mysqlSessionTimeouts(watch.timeouts, mariadb));
    } catch (error) {
      if ((error as { errno?: unknown }).errno !== ER_UNKNOWN_SYSTEM_VARIABLE || !mariadb) throw error;
      mariadb = false;
      await ask(connection, mysqlSessionTimeouts(watch.timeouts, mariadb));
    }
    prepared.add(connection);
  };
  const wrap = (connection: MysqlRawConnection): MysqlPoolConnection => {
    let wrapper = wrappers.get(connection);
    if (!wrapper) {
      wrapper = {
        query: ((text: string, values: unknown[], callback: (error: unknown, result: MysqlQueryResult) => void) => {
          ask(connection, text, values).then(
            (result) => callback(null, result),
            (error: unknown) => callback(error, undefined as unknown as MysqlQueryResult),
          );
        }) as MysqlPoolConnection['query'],
        release: () => {
          releasedAt.set(connection, Date.now());
          connection.release();
        },
      };
      wrappers.set(connection, wrapper);
    }
    return wrapper;
  };
  const take = () =>
    new Promise<MysqlRawConnection>((resolve, reject) => pool.getConnection((error, connection) => (error ? reject(error) : resolve(connection))));
  const acquire = async (): Promise<MysqlPoolConnection> => {
    for (let tries = 1; ; tries += 1) {
      const connection = await watch.connection(take, (late) => late.destroy());
      try {
        if (idleTooLong(releasedAt, connection)) await ask(connection, 'select 1');
        await prepare(connection);
        return wrap(connection);
      } catch (error) {
        // Dead since it was last used, or it could not take the session settings: drop it, try another.
        connection.destroy();
        destroySocket(socketOf(connection));
        if (tries >= CHECKOUT_TRIES || watch.stoppedAnswering !== undefined) throw error;
      }
    }
  };
  return {
    getConnection: (callback) => {
      acquire().then(
        (connection) => callback(null, connection),
        (error: unknown) => callback(error, undefined as unknown as MysqlPoolConnection),
      );
    },
    end: (callback) => {
      watch.closing = true;
      endWithin(new Promise<void>((resolve) => pool.end(() => resolve())), watch).then(() => callback(null), callback);
    },
  };
}
