import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Clock } from '../clock.js';
import type { Database } from '../storage/database.table.js';
import { activeClaimants, expireClaims, renewLeases } from '../storage/deliveries.repository.js';

/** How long a claim holds without renewal; a run that dies on another host is taken over after it. */
export const DEFAULT_LEASE_MS = 60_000;

/** Identifies one run in `claimed_by`: host and pid let a later run on the same host see that it died. */
export function newRunId(): string {
  return `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
}

/** Whether a process with this pid exists here (EPERM: it exists, but belongs to someone else). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Claims of runs on this host whose process is gone (killed, OOM, reboot) are freed at once rather than
 * after their lease. Runs on other hosts are left to their lease: we cannot see their processes.
 */
export async function freeClaimsOfDeadRuns(db: Kysely<Database>, nowMs: number): Promise<number> {
  let freed = 0;
  const host = hostname();
  for (const claimant of await activeClaimants(db, nowMs)) {
    const [claimHost, pidText] = claimant.split(':');
    const pid = Number(pidText);
    if (claimHost !== host || !Number.isInteger(pid) || pid === process.pid || processAlive(pid)) continue;
    freed += await expireClaims(db, claimant);
  }
  return freed;
}

/** Renews a run's leases every third of the lease until stopped; a failed renewal is reported, not swallowed. */
export function startHeartbeat(
  db: Kysely<Database>,
  options: { runId: string; leaseMs: number; clock: Clock; onError?: (error: unknown) => void },
): () => void {
  const timer = setInterval(
    () => {
      renewLeases(db, options.runId, options.clock.now().getTime() + options.leaseMs).catch((error: unknown) => options.onError?.(error));
    },
    Math.max(1000, Math.floor(options.leaseMs / 3)),
  );
  timer.unref();
  return () => clearInterval(timer);
}
