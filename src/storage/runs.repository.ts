import { randomBytes } from 'node:crypto';
import { maskCredentials } from '../credentials.js';
import { sql, type Kysely, type Selectable } from 'kysely';
import { NOTHING_WRITTEN_EXIT_CODE } from '../run-outcome.js';
import type { Database, RunsTable, RunStatus } from './database.table.js';

export type RunRow = Selectable<RunsTable>;

let lastIdMs = 0;
let sequence = 0;

/**
 * A run id that sorts by when it was made (the layout of a UUID version 7: 48 bits of milliseconds, then a
 * counter and random bits): runs started within the same second, as tests and quick re-runs do, still
 * have an order, and ids made in this process never sort before an earlier one.
 */
export function newRunId(nowMs = Date.now()): string {
  if (nowMs > lastIdMs) {
    lastIdMs = nowMs;
    sequence = 0;
  } else sequence += 1;
  const time = lastIdMs.toString(16).padStart(12, '0');
  const counter = (0x7000 | (sequence & 0xfff)).toString(16);
  const random = randomBytes(8);
  random[0] = (random[0]! & 0x3f) | 0x80; // the RFC 9562 variant
  const tail = random.toString('hex');
  return `${time.slice(0, 8)}-${time.slice(8)}-${counter}-${tail.slice(0, 4)}-${tail.slice(4)}`;
}

/** `nowAt`: the instant the run applies the rules at (its --now), when that is not its start. */
export async function startRun(db: Kysely<Database>, run: { id: string; command: string; startedAt: string; nowAt?: string }): Promise<void> {
  await db
    .insertInto('runs')
    .values({ id: run.id, command: run.command, started_at: run.startedAt, now_at: run.nowAt ?? run.startedAt, status: 'running' })
    .execute();
}

/** A run that refused to start (its exit code from run-outcome.ts): started and finished at once, with the reason `status` shows. */
export async function recordRefusedRun(
  db: Kysely<Database>,
  run: { id: string; command: string; startedAt: string; nowAt: string; exitCode: number },
  reason: string,
): Promise<void> {
  await db
    .insertInto('runs')
    .values({
      id: run.id,
      command: run.command,
      started_at: run.startedAt,
      now_at: run.nowAt,
      finished_at: run.startedAt,
      status: 'refused',
      exit_code: run.exitCode,
      error: maskCredentials(reason),
    })
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
  /** Deliveries the run deferred to a later run, and parked (410 Gone). */
  deferred?: number;
  parked?: number;
  /** Deliveries that waited and were not sent, their license having changed since. */
  superseded?: number;
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
      deferred: end.deferred ?? 0,
      parked: end.parked ?? 0,
      superseded: end.superseded ?? 0,
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
  return db
    .selectFrom('runs')
    .selectAll()
    .where('finished_at', 'is not', null)
    .orderBy('finished_at', 'desc')
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
}

/**
 * The latest instant a real process-expirations run applied the rules at (its --now), if any: running ones
 * count (they may have recorded), refused ones (NOTHING_WRITTEN_EXIT_CODE, 2) do not.
 */
export async function latestRunNow(db: Kysely<Database>): Promise<string | undefined> {
  const row = await db
    .selectFrom('runs')
    .select((eb) => eb.fn.max('now_at').as('latest'))
    .where('command', '=', 'process-expirations')
    .where((eb) => eb.or([eb('exit_code', 'is', null), eb('exit_code', '<>', NOTHING_WRITTEN_EXIT_CODE)]))
    .executeTakeFirst();
  return row?.latest ?? undefined;
}

/**
 * Whether any process-expirations run started before this one (the first run of an installation has none):
 * started_at holds whole seconds, so runs of the same second are told apart by their time-ordered ids.
 */
export async function anyRunBefore(db: Kysely<Database>, run: Pick<RunRow, 'id' | 'started_at'>): Promise<boolean> {
  const earlier = await db
    .selectFrom('runs')
    .select('id')
    .where('command', '=', 'process-expirations')
    .where((eb) => eb.or([eb('started_at', '<', run.started_at), eb.and([eb('started_at', '=', run.started_at), eb('id', '<', run.id)])]))
    .limit(1)
    .executeTakeFirst();
  return earlier !== undefined;
}

/**
 * Whether another process-expirations run that applies the rules at `nowAt` started between `from` and `to` (real
 * time, `YYYY-MM-DDTHH:MM:SSZ`): a worker of the same run, when several are started together.
 */
export async function otherRunStartedTogether(db: Kysely<Database>, run: { id: string; nowAt: string; from: string; to: string }): Promise<boolean> {
  const other = await db
    .selectFrom('runs')
    .select('id')
    .where('command', '=', 'process-expirations')
    .where('now_at', '=', run.nowAt)
    .where('id', '<>', run.id)
    .where('started_at', '>=', run.from)
    .where('started_at', '<=', run.to)
    .limit(1)
    .executeTakeFirst();
  return other !== undefined;
}
