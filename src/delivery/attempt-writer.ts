import type { Kysely } from 'kysely';
import type { Database } from '../storage/database.table.js';
import { recordAttempts, type AttemptWrite } from '../storage/deliveries/attempts.repository.js';

const MAX_BATCH = 500;
/**
 * How long the first attempt of a batch waits for others to join it. Larger batches cost less CPU per attempt
 * (SQLite, 10,000 attempts, statements compiled once per shape: 49 us per attempt in batches of 12, 27 in
 * batches of 50), but every answer not yet written is a request a crash (SIGKILL, power loss) sends again. 2 ms
 * keeps those about as few as the requests in flight (about 12 at 4,000 attempts/s). 20 ms was tried: a worker
 * SIGKILLed mid-run then left 10 repeats, more than the 2 ms delay's 5 to 10 in 17 runs (test/cli/take-over.test.ts).
 */
const FLUSH_DELAY_MS = 2;
/**
 * How old an answer may get while it waits for its write before new attempts wait for the writer: what a lost
 * database costs in re-sends is the answers not yet written, so their age is kept in bounds.
 */
const MAX_WRITE_LAG_MS = 100;

/**
 * Coalesces attempt writes into batches, one transaction each (see FLUSH_DELAY_MS). Each `write` resolves once
 * its batch is committed, so a delivery never moves on (to its retry wait, or to done) before its attempt is on
 * disk; a crash loses at most the attempts not yet written: a batch gathering, or what gathered behind a write
 * while a slow database took it (bounded by MAX_WRITE_LAG_MS).
 */
export class AttemptWriter {
  private queue: Array<{ write: AttemptWrite; resolve: () => void; reject: (error: unknown) => void }> = [];
  private scheduled = false;
  private chain: Promise<void> = Promise.resolve();
  /** When each write not yet committed was queued (performance.now()), oldest first: batches commit in order. */
  private readonly unwritten: number[] = [];
  private waiters: Array<() => void> = [];

  constructor(
    private readonly db: Kysely<Database>,
    private readonly runId: string,
  ) {}

  write(write: AttemptWrite): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ write, resolve, reject });
      this.unwritten.push(performance.now());
      if (this.queue.length >= MAX_BATCH) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setTimeout(() => this.flush(), FLUSH_DELAY_MS);
      }
    });
  }

  /** How long the oldest write not yet committed has waited (0 when none). */
  lagMs(): number {
    const oldest = this.unwritten[0];
    return oldest === undefined ? 0 : performance.now() - oldest;
  }

  /**
   * Resolves once no write has waited longer than `maxMs`, or fewer than `allowance` wait (at once when so): a
   * database slower than `maxMs` per write still has that many answers gathered while it writes the last ones.
   */
  caughtUp(allowance: number, maxMs = MAX_WRITE_LAG_MS): Promise<void> {
    const ready = () => this.isCaughtUp(allowance, maxMs);
    if (ready()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (ready()) resolve();
        else this.waiters.push(check);
      };
      this.waiters.push(check);
    });
  }

  /** What caughtUp waits for, asked without waiting. */
  isCaughtUp(allowance: number, maxMs = MAX_WRITE_LAG_MS): boolean {
    return this.unwritten.length < allowance || this.lagMs() <= maxMs;
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue.splice(0);
    if (batch.length === 0) return;
    // Batches commit one after another, in the order they were queued.
    this.chain = this.chain.then(async () => {
      try {
        await recordAttempts(
          this.db,
          this.runId,
          batch.map((item) => item.write),
        );
        for (const item of batch) item.resolve();
      } catch (error) {
        for (const item of batch) item.reject(error);
      }
      // Written or failed, these no longer wait (a failed write stops the run).
      this.unwritten.splice(0, batch.length);
      const waiters = this.waiters.splice(0);
      for (const waiter of waiters) waiter();
    });
  }
}
