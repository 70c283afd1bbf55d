/**
 * What storage refuses to do, as a kind and the facts that name it. Storage decides no exit code and writes no
 * advice for the operator: the command edge does both (src/commands/database-messages.ts, `refusalError`).
 */
export type Refusal =
  /** The SQLite file's folder does not exist. */
  | { kind: 'no-directory'; directory: string; filename: string }
  /** The SQLite path names something that is not a regular file (a folder, a FIFO, a device). */
  | { kind: 'not-a-file'; filename: string }
  /** A missing SQLite file could not be created; `detail` is the system's reason. */
  | { kind: 'cannot-create'; filename: string; detail: string }
  /** A SQLite file with tables but without our migration log: another application's database, left unchanged. */
  | { kind: 'foreign-database'; filename: string; tables: string[] }
  /** A server database whose schema has migrations to apply, in the order they apply. */
  | { kind: 'schema-behind'; pending: string[] }
  /** Botble mode: a table it reads is missing (a wrong botble.tablePrefix, or not a Botble database). */
  | { kind: 'botble-table-missing'; tables: string[]; detail: string }
  /** Botble mode: a date column Botble's schema has as DATE is of another type here (DATETIME, timestamp): nothing was read. */
  | { kind: 'botble-column-type'; table: string; columns: Array<{ column: string; type: string }> }
  /**
   * A row for the outbox did not fit its column (MySQL's strict sessions) or the server's max_allowed_packet:
   * `event` when the row is known, `bytes` when the field is one whose size is known, `table` with its prefix.
   */
  | {
      kind: 'event-too-long';
      event: { type: string; licenseId: number | null; licenseCode: string | undefined } | undefined;
      field: string;
      bytes: number | undefined;
      table: string;
      detail: string;
    }
  /** MySQL/MariaDB: the user lacks privileges a command needs (each with what it is needed for); nothing was changed. */
  | { kind: 'missing-privileges'; user: string; database: string; missing: ReadonlyArray<[string, string]>; command: string }
  /** MySQL/MariaDB: `licenses import` was refused its temporary table; nothing was imported. */
  | { kind: 'no-temporary-tables'; user: string; database: string }
  /** PostgreSQL: with the table prefix, an index name cut to 63 characters is another index's; the migrate was rolled back. */
  | { kind: 'index-name-cut'; index: string; cutTo: string; tablePrefix: string }
  /** A delivery run: three asks running, no answer confirmed the run's claim on a delivery within half its lease. */
  | { kind: 'claims-unconfirmed'; deliveryId: number; leaseMs: number };

/** A refusal storage throws; `cause` is the driver's or the system's error, when there is one. */
export class StorageRefusal extends Error {
  readonly refusal: Refusal;

  constructor(refusal: Refusal, options?: { cause?: unknown }) {
    super(`storage refused: ${refusal.kind}`, options);
    this.name = 'StorageRefusal';
    this.refusal = refusal;
  }
}
