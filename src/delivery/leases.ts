import fs from 'node:fs';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Kysely } from 'kysely';
import type { Clock } from '../clock.js';
import type { Database } from '../storage/database.table.js';
import { activeClaimants, claimsByRun, confirmClaims, expireClaims, renewLeases } from '../storage/deliveries/claims.repository.js';

/** How long a claim holds without renewal; a run that may still be alive elsewhere is taken over after it. */
export const DEFAULT_LEASE_MS = 60_000;

/** Where a process runs, as far as "is that pid still alive?" can be answered: one kernel boot, one PID namespace. */
export interface ProcessPlace {
  host: string;
  /** /proc/sys/kernel/random/boot_id; '' when unknown (not Linux). */
  bootId: string;
  /** The inode of /proc/self/ns/pid; '' when unknown. */
  pidNamespace: string;
  pid: number;
}

function readOrEmpty(read: () => string): string {
  try {
    return read().trim();
  } catch {
    return '';
  }
}

/** This process's place; the boot id and PID namespace tell containers that share a hostname apart. */
function currentPlace(): ProcessPlace {
  return {
    host: hostname(),
    bootId: readOrEmpty(() => fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8')),
    pidNamespace: readOrEmpty(() => String(fs.statSync('/proc/self/ns/pid').ino)),
    pid: process.pid,
  };
}

/** Identifies one run in `claimed_by`: `host:pid:boot-id:pid-namespace:random`, so a later run can tell whether it died. */
export function newRunId(place: ProcessPlace = currentPlace()): string {
  return `${place.host}:${place.pid}:${place.bootId}:${place.pidNamespace}:${randomUUID().slice(0, 8)}`;
}

/** The place a run id names; undefined for ids without one (older versions, other tools). */
export function placeOfRun(runId: string): ProcessPlace | undefined {
  const parts = runId.split(':');
  if (parts.length < 5) return undefined;
  // From the right: the host name is the only part that could ever hold a colon.
  const [pidText, bootId, pidNamespace] = parts.slice(-4, -1) as [string, string, string];
  const pid = Number(pidText);
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  return { host: parts.slice(0, -4).join(':'), pid, bootId, pidNamespace };
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
 * Whether the run that holds a claim is provably dead: it ran on this very kernel boot and in this PID
 * namespace (so its pid means the same process here), and no process has that pid. Anything else — another
 * host, a container sharing our hostname, a reboot, an id without a place — is not proof: wait out the lease.
 */
export function runProvablyDead(runId: string, here: ProcessPlace, alive: (pid: number) => boolean = processAlive): boolean {
  const owner = placeOfRun(runId);
  if (!owner || here.bootId === '' || here.pidNamespace === '') return false;
  if (owner.host !== here.host || owner.bootId !== here.bootId || owner.pidNamespace !== here.pidNamespace) return false;
  return owner.pid !== here.pid && !alive(owner.pid);
}

/** Claims of runs that provably died (killed, OOM) are freed at once rather than after their lease. */
export async function freeClaimsOfDeadRuns(db: Kysely<Database>, nowMs: number, here: ProcessPlace = currentPlace()): Promise<number> {
  let freed = 0;
  for (const claimant of await activeClaimants(db, nowMs)) {
    if (runProvablyDead(claimant, here)) freed += await expireClaims(db, claimant);
  }
  return freed;
}

/**
 * Deliveries held by runs that are gone: claims whose lease lapsed, and every claim of a run that provably
 * died here. `status` shows them; the next run, or a worker still running, takes them over.
 */
export async function heldByGoneRuns(db: Kysely<Database>, nowMs: number, here: ProcessPlace = currentPlace()): Promise<number> {
  let held = 0;
  for (const run of await claimsByRun(db, nowMs)) held += runProvablyDead(run.runId, here) ? run.held : run.lapsed;
  return held;
}

// How often a run that has nothing left of its own looks again at the claims of other runs.
const TAKE_OVER_POLL_MS = 500;

/**
 * What a run does before it exits while other runs hold deliveries: one of them may be gone (killed, its
 * host lost) and its claims would otherwise wait for the next run, a day later. `next()` resolves true as
 * soon as claims of another run are there to take over (their lease lapsed, or their run provably died
 * here), false when no other run holds any. It waits at most the lease for runs that keep renewing their
 * leases (they are alive and finish their own work); after that only for a run that stopped renewing,
 * whose claims lapse within half a lease. So a run ends at most 1.5 leases after its own work.
 */
export class TakeOver {
  private startedMs: number | undefined;
  /** Said false once: nothing more to wait for in this run. */
  private over = false;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly options: {
      runId: string;
      leaseMs: number;
      clock: Clock;
      stop: AbortSignal;
      here?: ProcessPlace;
      /** The endpoints this run claims now (all when left out): another run's claims of others are not its to take over. */
      endpoints?: () => readonly string[] | undefined;
    },
  ) {}

  async next(): Promise<boolean> {
    if (this.over) return false;
    this.over = !(await this.look());
    return !this.over;
  }

  private async look(): Promise<boolean> {
    const { runId, leaseMs, clock, stop } = this.options;
    const poll = Math.min(TAKE_OVER_POLL_MS, Math.max(50, Math.floor(leaseMs / 20)));
    // The first look is at once; later ones (after a take-over, or while waiting) a poll apart.
    for (let first = this.startedMs === undefined; ; first = false) {
      if (!first && !(await sleep(poll, true, { signal: stop }).catch(() => false))) return false;
      if (stop.aborted) return false;
      const nowMs = clock.now().getTime();
      this.startedMs ??= nowMs;
      await freeClaimsOfDeadRuns(this.db, nowMs, this.options.here);
      const others = (await claimsByRun(this.db, nowMs, this.options.endpoints?.())).filter((run) => run.runId !== runId);
      if (others.length === 0) return false;
      if (others.some((run) => run.lapsed > 0)) return true;
      // A live run renews every third of the lease: one whose newest lease has under half left has stopped.
      const silent = others.some((run) => run.leaseUntil < nowMs + leaseMs / 2);
      if (nowMs - this.startedMs >= leaseMs && !silent) return false;
    }
  }
}

/**
 * Renews a run's leases every third of the lease until stopped; a failed renewal is reported, not swallowed. One
 * still on its way when the heartbeat stops is not: the run's deliveries have ended, and its database is closing.
 */
export function startHeartbeat(
  db: Kysely<Database>,
  options: { runId: string; leaseMs: number; clock: Clock; onError?: (error: unknown) => void },
): () => void {
  let stopped = false;
  const timer = setInterval(
    () => {
      const nowMs = options.clock.now().getTime();
      renewLeases(db, options.runId, nowMs, nowMs + options.leaseMs).catch((error: unknown) => {
        if (!stopped) options.onError?.(error);
      });
    },
    Math.max(100, Math.floor(options.leaseMs / 3)),
  );
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

/** How many times in all a claim is asked about while each answer comes back too late to trust (see ClaimKeeper). */
const MAX_ASKS = 3;

/**
 * Confirms, just before each attempt, that this run still holds the delivery with a running lease: a run
 * that was paused past its lease (SIGSTOP, a frozen VM) finds the deliveries another run took over and does
 * not send them again.
 *
 * The keeper remembers the lease it wrote itself, with the run's id checked, for each held delivery: at the
 * claim and at each confirmation in the database. While at least `minLeftMs` of that lease is left by this
 * run's clock, no run whose clock agrees with ours can have taken the delivery over, so the attempt goes
 * ahead without asking the database. Otherwise (the run was paused, or has held the delivery for a while)
 * the claim is checked and renewed in the database; the checks of one event-loop turn share one UPDATE.
 * Heartbeat renewals are not trusted here: they do not say which rows they renewed.
 *
 * The database's "still yours" is trusted only when the answer is read within half a lease of asking, on the
 * lease clock and on the monotonic clock both: a run paused after the database renewed the lease and before it
 * read the answer may wake up after that lease lapsed and another run took the delivery over. It then asks
 * again, MAX_ASKS times in all; a claim no answer confirmed in time is `unconfirmed`, and the run stops (a
 * database that cannot answer within half a lease cannot keep a claim safely).
 */
export class ClaimKeeper {
  private queue: Array<{ id: number; resolve: (held: boolean) => void; reject: (error: unknown) => void }> = [];
  /** Delivery id → the end of the lease this run last wrote for it, with its claim checked (epoch ms). */
  private readonly leases = new Map<number, number>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly options: { runId: string; leaseMs: number; clock: Clock; minLeftMs: number },
  ) {}

  /** A delivery this run just claimed, with the lease its claim wrote. */
  claimed(deliveryId: number, untilMs: number): void {
    this.leases.set(deliveryId, untilMs);
  }

  /** The delivery ended (or went back): nothing more to know about its lease. */
  forget(deliveryId: number): void {
    this.leases.delete(deliveryId);
  }

  /** Whether this run's own lease on the delivery has enough left that no database check is needed (see above). */
  heldLongEnough(deliveryId: number): boolean {
    return this.leftMs(deliveryId) >= this.options.minLeftMs;
  }

  /** How much of the lease this run last wrote and checked is left by its clock; -Infinity when it holds none. */
  private leftMs(deliveryId: number): number {
    const until = this.leases.get(deliveryId);
    return until === undefined ? -Infinity : until - this.options.clock.now().getTime();
  }

  /** true: still this run's; false: another run's now; `unconfirmed`: no answer came back in time (see above). */
  confirm(deliveryId: number): Promise<boolean | 'unconfirmed'> {
    if (this.heldLongEnough(deliveryId)) return Promise.resolve(true);
    return this.confirmFresh(deliveryId);
  }

  private async confirmFresh(deliveryId: number): Promise<boolean | 'unconfirmed'> {
    const halfLease = this.options.leaseMs / 2;
    for (let asked = 0; asked < MAX_ASKS; asked += 1) {
      const askedAt = performance.now();
      if (!(await this.ask(deliveryId))) return false;
      if (performance.now() - askedAt <= halfLease && this.leftMs(deliveryId) >= halfLease) return true;
    }
    return 'unconfirmed';
  }

  /** Checks and renews the claim in the database, in the UPDATE shared by this event-loop turn's checks. */
  private ask(deliveryId: number): Promise<boolean> {
    return new Promise((resolve, reject) => {
      if (this.queue.length === 0) setImmediate(() => void this.flush());
      this.queue.push({ id: deliveryId, resolve, reject });
    });
  }

  private async flush(): Promise<void> {
    const batch = this.queue.splice(0);
    const nowMs = this.options.clock.now().getTime();
    const untilMs = nowMs + this.options.leaseMs;
    try {
      const held = await confirmClaims(
        this.db,
        this.options.runId,
        batch.map((item) => item.id),
        nowMs,
        untilMs,
      );
      for (const item of batch) {
        if (held.has(item.id)) this.leases.set(item.id, untilMs);
        else this.leases.delete(item.id);
        item.resolve(held.has(item.id));
      }
    } catch (error) {
      for (const item of batch) item.reject(error);
    }
  }
}
