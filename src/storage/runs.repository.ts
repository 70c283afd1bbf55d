import { sql, type Kysely, type Selectable } from 'kysely';
import type { Database, RunsTable, RunStatus } from './database.table.js';

export type RunRow = Selectable<RunsTable>;

export async function startRun(db: Kysely<Database>, run: { id: string; command: string; startedAt: string }): Promise<void> {
  await db.insertInto('runs').values({ id: run.id, command: run.command, started_at: run.startedAt, status: 'running' }).execute();
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
      error: end.error,
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
