import type { Kysely } from 'kysely';
import type { Database } from '../storage/database.table.js';
import { recordAttempts, type AttemptWrite } from '../storage/deliveries.repository.js';

const MAX_BATCH = 500;
// Long enough to gather the attempts of many deliveries into one commit, short next to any HTTP exchange.
const FLUSH_DELAY_MS = 2;

/**
 * Coalesces the attempt writes of one event-loop turn into one transaction. Each `write` resolves once its
 * batch is committed, so a delivery never moves on (to its retry wait, or to done) before its attempt is
 * on disk; a crash loses at most the attempts of the turn that was being written.
 */
export class AttemptWriter {
  private queue: Array<{ write: AttemptWrite; resolve: () => void; reject: (error: unknown) => void }> = [];
  private scheduled = false;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly runId: string,
  ) {}

  write(write: AttemptWrite): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ write, resolve, reject });
      if (this.queue.length >= MAX_BATCH) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setTimeout(() => this.flush(), FLUSH_DELAY_MS);
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue.splice(0);
    if (batch.length === 0) return;
    // Batches commit one after another, in the order they were queued.
    this.chain = this.chain.then(async () => {
      try {
        await recordAttempts(this.db, this.runId, batch.map((item) => item.write));
        for (const item of batch) item.resolve();
      } catch (error) {
        for (const item of batch) item.reject(error);
      }
    });
  }
}
