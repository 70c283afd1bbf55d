import { maskCredentials } from '../credentials.js';
import { sql, type Kysely, type Selectable } from 'kysely';
import type { Database, RunsTable, RunStatus } from './database.table.js';

export type RunRow = Selectable<RunsTable>;

/** `nowAt`: the instant the run applies the rules at (its --now), when that is not its start. */
export async function startRun(db: Kysely<Database>, run: { id: string; command: string; startedAt: string; nowAt?: string }): Promise<void> {
  await db.insertInto('runs').values({ id: run.id, command: run.command, started_at: run.startedAt, now_at: run.nowAt ?? run.startedAt, status: 'running' }).execute();
}

/** A run that refused to start (exit 2): started and finished at once, with the reason `status` shows. */
export async function recordRefusedRun(db: Kysely<Database>, run: { id: string; command: string; startedAt: string; nowAt: string }, reason: string): Promise<void> {
  await db
    .insertInto('runs')
    .values({ id: run.id, command: run.command, started_at: run.startedAt, now_at: run.nowAt, finished_at: run.startedAt, status: 'refused', exit_code: 2, error: maskCredentials(reason) })
    .execute();
}

/** Fails (a privilege error) unless the run may record its end: checked at its start, before anything is sent. */
export async function checkFinishRun(db: Kysely<Database>): Promise<void> {
  await sql`update ${sql.table('runs')} set status = status where 1 = 0`.execute(db);
}

export interface RunEnd {
  finishedAt: string;
  status: Exclude<RunStatus, 'running'>;
  exitCode: number;
  recorded: number;
  delivered: number;
  abandoned: number;
  /** Licenses marked `expired` with no event, and the --announce-since date that would announce them. */
  expiredWithoutEvent?: number;
  announceSince?: string | null;
  error: string | null;
}

export async function finishRun(db: Kysely<Database>, id: string, end: RunEnd): Promise<void> {
  await db
    .updateTable('runs')
    .set({
      finished_at: end.finishedAt,
      status: end.status,
      exit_code: end.exitCode,
      recorded: end.recorded,
      delivered: end.delivered,
      abandoned: end.abandoned,
      expired_without_event: end.expiredWithoutEvent ?? 0,
      announce_since: end.announceSince ?? null,
      // Read back by `status` and its --json: never a password.
      error: end.error === null ? null : maskCredentials(end.error),
    })
    .where('id', '=', id)
    .execute();
}

/** The newest runs first. */
export async function lastRuns(db: Kysely<Database>, limit: number): Promise<RunRow[]> {
  return db.selectFrom('runs').selectAll().orderBy('started_at', 'desc').orderBy('id', 'desc').limit(limit).execute();
}

/** The newest run that has finished (a run still going, or killed outright, has no finished_at). */
export async function lastFinishedRun(db: Kysely<Database>): Promise<RunRow | undefined> {
  return db.selectFrom('runs').selectAll().where('finished_at', 'is not', null).orderBy('finished_at', 'desc').limit(1).executeTakeFirst();
}

/**
 * The latest instant a real process-expirations run applied the rules at (its --now), if any: running ones
 * count (they may have recorded), refused ones (exit 2: nothing written) do not.
 */
export async function latestRunNow(db: Kysely<Database>): Promise<string | undefined> {
  const row = await db
    .selectFrom('runs')
    .select((eb) => eb.fn.max('now_at').as('latest'))
    .where('command', '=', 'process-expirations')
    .where((eb) => eb.or([eb('exit_code', 'is', null), eb('exit_code', '<>', 2)]))
    .executeTakeFirst();
  return row?.latest ?? undefined;
}

/** Whether any run started before this instant (the first run of an installation has none). */
export async function anyRunBefore(db: Kysely<Database>, startedAt: string): Promise<boolean> {
  return (await db.selectFrom('runs').select('id').where('command', '=', 'process-expirations').where('started_at', '<', startedAt).limit(1).executeTakeFirst()) !== undefined;
}
