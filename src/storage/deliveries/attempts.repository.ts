import { sql, type Kysely, type SqlBool } from 'kysely';
import { chunksOf, MAX_PARAMETERS } from '../../sql/chunks.js';
import { shapedQuery } from '../../sql/compiled-shapes.js';
import { errorCode, messageOf, retryOnDeadlock } from '../../sql/db-errors.js';
import { dialectFor } from '../../sql/dialect-for.js';
import type { Statement } from '../../sql/sql-dialect.js';
import { tablePrefixOf } from '../../sql/table-prefix.js';
import type { Database, DeliveryStatus } from '../database.table.js';
import { inTransaction } from '../transaction.js';

// The attempt log: each request a run made, and the summary and final status of its delivery.
// Attempts per write: 6 bound columns in the INSERT, 8 in the UPDATE's VALUES list (the larger of the two
// statements), with room for the UPDATE's own parameters.
const ATTEMPTS_PER_STATEMENT = Math.floor((MAX_PARAMETERS - 10) / 8);

/**
 * Makes sure the database user may write what a run must record after each request (the attempt rows, the
 * deliveries' summaries and statuses), before the first request: a run that could send but not record would
 * send the same events again on every run. Zero-row statements, which the server still checks the privileges
 * of; SQLite has no privileges.
 */
export async function checkSendingPrivileges(db: Kysely<Database>): Promise<void> {
  if (!dialectFor(db).hasPrivileges) return;
  const prefix = tablePrefixOf(db);
  const deliveries = sql.table('webhook_deliveries');
  const checks = [
    {
      needed: `INSERT on ${prefix}webhook_attempts, to record each attempt`,
      statement: sql`insert into ${sql.table('webhook_attempts')} (delivery_id, attempt, started_at, duration_ms, status_code, error) select id, attempts, created_at, attempts, last_status_code, last_error from ${deliveries} where 1 = 0`,
    },
    {
      needed: `UPDATE on ${prefix}webhook_deliveries, to claim deliveries and record how they end`,
      statement: sql`update ${deliveries} set status = status where 1 = 0`,
    },
  ];
  for (const { needed, statement } of checks) {
    await statement.execute(db).catch((error: unknown) => {
      // The driver's code decides how it is reported; the message says what the run needs it for.
      throw Object.assign(new Error(`${messageOf(error)} (${needed}; nothing was sent)`, { cause: error }), { code: errorCode(error) });
    });
  }
}

interface AttemptInput {
  attempt: number;
  started_at: string;
  duration_ms: number;
  status_code: number | null;
  error: string | null;
}

/** One attempt of one delivery, and, on its last attempt, how the delivery ends. */
export interface AttemptWrite {
  deliveryId: number;
  attempt: AttemptInput;
  /** How the delivery ended (or what it waits for), when this was its last attempt in this run. */
  final?: DeliveryEnd | undefined;
}

/** How a claimed delivery leaves this run: delivered, abandoned or superseded (completed), or deferred to `nextAttemptAt`, or parked. */
export interface DeliveryEnd {
  status: Extract<DeliveryStatus, 'delivered' | 'abandoned' | 'deferred' | 'parked' | 'superseded'>;
  /** Set for delivered, abandoned and superseded; null for the waiting states. */
  completedAt: string | null;
  /** For deferred ones. */
  nextAttemptAt?: string | null;
  reason?: string | null;
}

/**
 * Writes a batch of attempts all or none (a transaction, or on PostgreSQL one statement): the attempt rows (every
 * request that went out is history), then each delivery's summary columns (`attempts`, `last_status_code`,
 * `last_error`) and, for final attempts, its status. The summary and status are written only while this run still
 * holds the claim. A batch holds at most one attempt of a delivery: deliver() waits for an attempt's write before
 * the next attempt starts.
 */
export async function recordAttempts(db: Kysely<Database>, runId: string, writes: readonly AttemptWrite[]): Promise<void> {
  if (writes.length === 0) return;
  // Each batch size is compiled once (a run sees a few dozen); one statement of each kind per chunk, as a server
  // database answers each statement in a round trip (on PostgreSQL the whole batch is one statement).
  const statements = [...chunksOf(writes, ATTEMPTS_PER_STATEMENT)].flatMap((chunk) => [
    shapedQuery(
      db,
      'attempts',
      chunk.map((write) => ({ delivery_id: write.deliveryId, ...write.attempt })),
      [],
      (rows) => db.insertInto('webhook_attempts').values(rows),
    ),
    shapedQuery(db, 'attempt summaries', chunk.map(summaryRow), [runId], (rows, [run]) => summaries(db, run, rows)),
  ]);
  const together = dialectFor(db).oneStatement(statements);
  await retryOnDeadlock(async () => {
    if (together) await db.executeQuery(together);
    else
      await inTransaction(db, async (trx) => {
        for (const statement of statements) await trx.executeQuery(statement);
      });
  });
}

// The values each delivery's summary is written from, typed for PostgreSQL's VALUES list.
const SUMMARY_TYPES = {
  id: 'integer',
  attempts: 'integer',
  status_code: 'integer',
  error: 'text',
  final: 'text',
  completed_at: 'text',
  next_attempt_at: 'text',
  reason: 'text',
} as const;

/** What a delivery's summary is written from (see SUMMARY_TYPES). */
function summaryRow(write: AttemptWrite): Record<keyof typeof SUMMARY_TYPES, unknown> {
  return {
    id: write.deliveryId,
    attempts: write.attempt.attempt,
    status_code: write.attempt.status_code,
    error: write.attempt.error,
    final: write.final?.status ?? null,
    completed_at: write.final?.completedAt ?? null,
    next_attempt_at: write.final?.nextAttemptAt ?? null,
    reason: write.final?.reason ?? null,
  };
}

/** One statement per chunk of deliveries, in the dialect's form of "update from a list of values". */
function summaries(trx: Kysely<Database>, runId: unknown, rows: ReadonlyArray<Record<string, unknown>>): Statement {
  return dialectFor(trx).updateFromValues(trx, {
    table: 'webhook_deliveries',
    types: SUMMARY_TYPES,
    rows,
    // Each right-hand side reads only its own column or a row's values (MySQL's SET runs left to right).
    set: (value, stored) => {
      const ended = sql`${value('final')} is not null`;
      return {
        attempts: value('attempts'),
        last_status_code: value('status_code'),
        last_error: value('error'),
        status: sql`coalesce(${value('final')}, ${stored('status')})`,
        completed_at: sql`coalesce(${value('completed_at')}, ${stored('completed_at')})`,
        next_attempt_at: sql`case when ${ended} then ${value('next_attempt_at')} else ${stored('next_attempt_at')} end`,
        status_reason: sql`case when ${ended} then ${value('reason')} else ${stored('status_reason')} end`,
        lease_until: sql`case when ${ended} then null else ${stored('lease_until')} end`,
        claimed_by: sql`case when ${ended} then null else ${stored('claimed_by')} end`,
      };
    },
    where: (stored) => sql<SqlBool>`${stored('claimed_by')} = ${runId}`,
  });
}
