import type {
  ColumnDataType,
  CompiledQuery,
  ColumnDefinitionBuilder,
  CreateTableBuilder,
  Expression,
  InsertQueryBuilder,
  Kysely,
  RawBuilder,
  SelectQueryBuilder,
  SqlBool,
  UpdateQueryBuilder,
  UpdateResult,
} from 'kysely';

export type DialectName = 'sqlite' | 'postgres' | 'mysql';

/**
 * The first and last date this tool reads (SqlDialect.isDate): parseInZone takes YYYY-MM-DD only, and no year before
 * 0100 (JavaScript's Date.UTC takes years 0 to 99 for 1900 to 1999).
 */
export const FIRST_DATE = '0100-01-01';
export const LAST_DATE = '9999-12-31';

// Kysely's addColumn takes a type name or a raw `sql` type; it does not export the union's name.
export type DataTypeExpression = ColumnDataType | Expression<unknown>;

/**
 * Column types, where they must differ. SQLite keeps exactly the types of the first release. MySQL cannot
 * index unbounded TEXT, so indexed columns are VARCHARs there; PostgreSQL compares them byte-wise
 * (collate "C") like SQLite does, so date prefixes and the '0' / ':' bounds sort the same.
 */
export interface ColumnTypes {
  /** Free text that is never indexed or range-compared (bodies, errors, e-mail). */
  text: DataTypeExpression;
  /** Indexed or range-compared text of at most `length` characters: codes, keys, statuses, ISO times. */
  key: (length: number) => DataTypeExpression;
  /** Epoch milliseconds: beyond 32 bits. */
  epochMs: DataTypeExpression;
  /** `id` as an auto-increment integer primary key. */
  id: (column: ColumnDefinitionBuilder) => ColumnDefinitionBuilder;
  idType: DataTypeExpression;
  /** Table options: on MySQL InnoDB with utf8mb4 and a binary collation (case-sensitive codes, byte order). */
  table<T extends string, C extends string>(builder: CreateTableBuilder<T, C>): CreateTableBuilder<T, C>;
}

/** What a text value must fit, where the dialect's columns are narrower than the others'. */
interface TextLimits {
  /** Indexed text (a key such as license_code) is VARCHAR(255) on MySQL, counted in characters. */
  keyCharacters?: number;
  /** PostgreSQL's text cannot hold the NUL character (U+0000). */
  noNul?: boolean;
}

/** The rows whose id the `select` gives are changed by `update` and handed back (see SqlDialect.updateReturning). */
export interface UpdateReturningSpec<DB> {
  table: keyof DB & string;
  /** The ids to change, in id order, with every condition. */
  select: (on: Kysely<DB>) => SelectQueryBuilder<DB, any, { id: number }>;
  /** The UPDATE of the rows whose id is in `ids`: a list, or the select itself as a subquery. */
  update: (on: Kysely<DB>, ids: readonly number[] | SelectQueryBuilder<DB, any, { id: number }>) => UpdateQueryBuilder<DB, any, any, UpdateResult>;
  /** Pass over rows another session has locked (claims), rather than wait for them. */
  skipLocked: boolean;
  /** Hand back whole rows, or only the ids. */
  readBack: 'rows' | 'ids';
}

/** A statement to compile and run: a query builder, or raw SQL bound to its database. */
export interface Statement {
  compile(): CompiledQuery;
}

/** An UPDATE of many rows, each with its own values, in one statement (see SqlDialect.updateFromValues). */
export interface ValuesUpdate {
  table: string;
  /** One object per row, with the keys of `types`; `id` names the stored row. */
  rows: ReadonlyArray<Record<string, unknown>>;
  /** The SQL type of each value, `id` first (PostgreSQL types a VALUES list by its first row). */
  types: Record<string, 'integer' | 'text'>;
  /** The assignments: `value(column)` is the row's value, `stored(column)` the column as it is. */
  set: (value: (column: string) => Expression<unknown>, stored: (column: string) => Expression<unknown>) => Record<string, Expression<unknown>>;
  /** A condition on the stored row besides its id. */
  where: (stored: (column: string) => Expression<unknown>) => Expression<SqlBool>;
}

/**
 * Everything that differs between SQLite, PostgreSQL and MySQL/MariaDB, behind one interface (one file per
 * dialect: sqlite.ts, postgres.ts, mysql.ts). Repositories and migrations ask the dialect of their database
 * (dialectFor) and compare no dialect names. Compare kysely's DialectAdapter, which does the same for Kysely's own needs.
 */
export interface SqlDialect {
  readonly name: DialectName;
  /** How messages name the server software ('SQLite' for a file). */
  readonly serverName: string;
  /** The server setting that cancels a statement that runs too long, and how to raise it. */
  readonly statementTimeoutSetting: string;
  /** What may be listening at a server's address, in a message that asks whether one is ('MySQL or MariaDB'). */
  readonly serverSoftware: string;
  readonly columnTypes: ColumnTypes;
  readonly textLimits: TextLimits;
  /**
   * The longest table prefix the server takes, where it refuses a longer identifier: the index names carry the prefix
   * (MySQL and MariaDB: 64 characters, less the longest index name). PostgreSQL cuts a longer name at 63 characters
   * instead, and its createIndex refuses a name cut to another index's (IndexNameCut); SQLite has no limit.
   */
  readonly maxTablePrefix?: number;
  /** Text compared byte for byte, as a key of a temporary table (license codes of an import). */
  readonly binaryKeyType: RawBuilder<unknown>;
  /** False on MySQL/MariaDB: each schema change commits at once, so every migration step must be re-runnable. */
  readonly transactionalDdl: boolean;
  /** Whether the database has users with privileges (servers), which a run checks before it sends. */
  readonly hasPrivileges: boolean;

  /** Inserts the rows whose `key` is not stored yet; how many it inserted, or undefined when the dialect cannot count them apart from the skipped ones. */
  insertIgnore(insert: InsertQueryBuilder<any, any, any>, key: readonly string[]): Promise<number | undefined>;
  /** The value the row an upsert could not insert carried for `column` (excluded.column, VALUES(column)). */
  refused(column: string): RawBuilder<unknown>;
  /** The insert, writing `set` over the stored row where one with the same `key` exists. */
  upsert<Q extends InsertQueryBuilder<any, any, any>>(insert: Q, key: readonly string[], set: Record<string, unknown>): Q;
  /** The same as a clause to end a raw INSERT … SELECT with. */
  upsertClause(key: readonly string[], set: Record<string, Expression<unknown>>): RawBuilder<unknown>;
  /** UPDATE … RETURNING where there is one; on MySQL lock the rows, update exactly those, read them back. */
  updateReturning<DB, R>(db: Kysely<DB>, spec: UpdateReturningSpec<DB>): Promise<R[]>;
  /** UPDATE … FROM (VALUES …), or on MySQL one CASE per column over the ids: the statement, to compile and run (see shapedQuery). */
  updateFromValues(trx: Kysely<any>, update: ValuesUpdate): Statement;
  /**
   * Data-modifying statements as one statement, all or none, where the dialect has one (PostgreSQL: each a WITH
   * query): one round trip to the server instead of four for BEGIN, two statements and COMMIT. Undefined where it has
   * none (SQLite, in this process, and MySQL): the caller runs them in a transaction. The statements must not write
   * the same row twice: PostgreSQL applies one of two such writes in one statement, where a transaction applies both.
   * Their SQL must hold `$` and digits only as placeholders (values always bound, as Kysely compiles them).
   */
  oneStatement(statements: readonly CompiledQuery[]): CompiledQuery | undefined;
  /**
   * Takes a transaction-scoped turn named `name`, waiting at most `waitMs` (PostgreSQL's advisory locks; the others
   * have no turns and never wait). True when it had to wait.
   */
  waitForTurn(trx: Kysely<any>, name: string, waitMs: number): Promise<boolean>;
  /** After rows were inserted with explicit ids: the next generated id comes after them (PostgreSQL's serial does not move on its own). */
  afterExplicitIds(trx: Kysely<any>, table: string): Promise<void>;
  /** The server's clock in epoch ms; undefined for SQLite, whose clock is this host's. */
  serverTimeMs(db: Kysely<any>): Promise<number | undefined>;
  /** Before a large read scan: SQLite maps the file into memory. */
  beforeLargeScan(db: Kysely<any>, bytes: number): Promise<void>;

  /** `expression` as an integer (Laravel's booleans are tinyint(1) on MySQL, boolean on PostgreSQL). */
  asInteger(expression: Expression<unknown>): RawBuilder<number>;
  /** A DATE column's value as its `YYYY-MM-DD` text. */
  dateAsText(expression: Expression<unknown>): RawBuilder<string>;
  /** Whether `text` (YYYY-MM-DD) is the same day as the DATE column `date`. */
  sameDate(text: Expression<unknown>, date: Expression<unknown>): RawBuilder<boolean>;
  /**
   * A condition that holds for a date this tool reads (YYYY-MM-DD from 0100-01-01 to 9999-12-31, as parseInZone
   * takes them) and for nothing else a DATE column may hold: SQLite's are text and may hold anything, MariaDB's take
   * '0000-00-00' and zero months and days in its default sql_mode, PostgreSQL's take 'infinity', '-infinity' and
   * years BC. Not true (false or null) for the rest.
   */
  isDate(expression: Expression<unknown>): RawBuilder<boolean>;
  /** 1-based position of `needle` in `text`, 0 when absent. */
  position(text: Expression<unknown>, needle: string): RawBuilder<number>;
  /**
   * The column, in a form no index is chosen for: a condition on it only filters the rows another condition found
   * (a list of ids). SQLite, which keeps no statistics here, takes an equality on an indexed column for selective
   * and would scan all of that index's matching rows (every active license) instead of looking up the ids: SQLite's
   * unary `+`. The servers weigh both by their statistics: the column as it is. On SQLite `+column` also drops the
   * column's type affinity: compare it only with values of the column's own type (text with text).
   */
  unindexed(column: string): RawBuilder<unknown>;

  /** Whether our table (under the prefix) has this column. */
  hasColumn(db: Kysely<any>, table: string, column: string): Promise<boolean>;
  /**
   * The type each of these columns of another application's table (its full name, no prefix added) is declared with,
   * lower case, where the server holds a column to its type (`date`, `datetime(6)`, `timestamp with time zone`):
   * none on SQLite, whose declared types do not bind what a column holds. A column or table not there is left out.
   */
  declaredTypes(db: Kysely<any>, table: string, columns: readonly string[]): Promise<Map<string, string>>;
  /** CREATE TABLE, IF NOT EXISTS where DDL is not transactional (a table an interrupted migrate created stays as it is). */
  createTable(db: Kysely<any>, table: string): CreateTableBuilder<string, never>;
  /** Creates the index unless it exists. */
  createIndex(db: Kysely<any>, name: string, table: string, columns: string[]): Promise<void>;
  /** Adds the column unless it exists (where DDL is not transactional and an interrupted migrate may have added it). */
  addColumn(
    db: Kysely<any>,
    table: string,
    column: string,
    type: DataTypeExpression,
    build?: (column: ColumnDefinitionBuilder) => ColumnDefinitionBuilder,
  ): Promise<void>;
  /** Drops an index of `table` (MySQL names the table, the others do not). */
  dropIndex(db: Kysely<any>, name: string, table: string): Promise<void>;
}
