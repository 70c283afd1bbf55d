import type { Kysely } from 'kysely';
import type { Clock } from '../clock.js';
import { databaseTimeMs } from '../storage/database-time.js';

/** Beyond this, a run warns that this host's clock and the database server's disagree. */
const SKEW_WARNING_MS = 10_000;
// How often the offset to the database's clock is measured again (the host's clock may be stepped by NTP).
const RESYNC_MS = 10_000;
/**
 * A later measurement whose round trip took longer than this is not used: the offset's error is up to half the
 * round trip, and a run paused mid-measurement (SIGSTOP) would otherwise move its lease clock by half the pause.
 */
export const MAX_RESYNC_ROUND_TRIP_MS = 1000;

/** The database's clock minus this host's, from a reading of it between two of this host's. */
function offsetOf(beforeMs: number, databaseMs: number, afterMs: number): number {
  return databaseMs - (beforeMs + afterMs) / 2;
}

/** The offset from a later measurement, or undefined when its round trip was too long to trust. */
export function resyncedOffset(beforeMs: number, databaseMs: number, afterMs: number): number | undefined {
  return afterMs - beforeMs > MAX_RESYNC_ROUND_TRIP_MS ? undefined : offsetOf(beforeMs, databaseMs, afterMs);
}

/** The clock leases are written and compared in, and how far this host's clock is from it. */
export interface LeaseClock extends Clock {
  /** This host's clock minus the database's (positive: the host is ahead), measured at the start; 0 on SQLite. */
  skewMs: number;
  close(): void;
}

/**
 * On a server database, lease times come from the database server's clock: every worker, whatever its own
 * clock says, compares leases on one clock, so a worker whose clock is ahead never takes over claims that
 * are still running. The offset is measured (half the round trip either side) at the start and every
 * RESYNC_MS; reading the time stays local. On SQLite every run shares the host's clock already.
 */
export async function databaseLeaseClock(db: Kysely<any>, host: Clock, resyncMs = RESYNC_MS): Promise<LeaseClock> {
  const measure = async (): Promise<{ beforeMs: number; databaseMs: number; afterMs: number } | undefined> => {
    const beforeMs = host.now().getTime();
    const databaseMs = await databaseTimeMs(db);
    const afterMs = host.now().getTime();
    return databaseMs === undefined ? undefined : { beforeMs, databaseMs, afterMs };
  };
  const start = await measure();
  if (start === undefined) return { now: () => host.now(), skewMs: 0, close: () => undefined };
  // The first measurement is used however long it took: there is no other yet.
  const first = offsetOf(start.beforeMs, start.databaseMs, start.afterMs);
  let offset = first;
  const timer = setInterval(() => {
    // A database lost for a moment, or a measurement too slow to trust, keeps the last offset: the lease checks
    // fail on their own when the database is gone.
    measure().then(
      (measured) => void (offset = (measured && resyncedOffset(measured.beforeMs, measured.databaseMs, measured.afterMs)) ?? offset),
      () => undefined,
    );
  }, resyncMs);
  timer.unref();
  return { now: () => new Date(host.now().getTime() + offset), skewMs: -first, close: () => clearInterval(timer) };
}

/** A host clock used as it is (SQLite, or a test's own clock). */
export function hostLeaseClock(clock: Clock): LeaseClock {
  return { now: () => clock.now(), skewMs: 0, close: () => undefined };
}

/** The warning for a host clock SKEW_WARNING_MS or more away from the database's; undefined within that. */
export function skewWarning(skewMs: number): string | undefined {
  if (Math.abs(skewMs) < SKEW_WARNING_MS) return undefined;
  const seconds = (Math.abs(skewMs) / 1000).toFixed(1);
  return `this host's clock is ${seconds} s ${skewMs > 0 ? 'ahead of' : 'behind'} the database server's: delivery leases use the database's clock, so workers still share them safely, but attempt times in the log and the run's default --now come from this host's clock. Synchronise it (NTP).`;
}
