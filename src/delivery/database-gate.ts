import { setTimeout as sleep } from 'node:timers/promises';
import { sql, type Kysely } from 'kysely';
import type { Database } from '../storage/database.table.js';
import { connectionWatchOf } from '../storage/server-pool.js';

// Between two questions to a database that is coming back.
const RETRY_MS = 100;

/**
 * Holds a run's requests back while its database may be gone: the answer to a request that starts then could
 * not be recorded, and the next run would send the event again. From the moment a server connection is lost
 * (a restart, a reset, a failover) every attempt first waits for the database to answer a `select 1`; when it
 * does (the pool reconnects) the run goes on; when it has not after `reconnectMs`, the attempt fails and the
 * run stops. SQLite has no connection to lose: the gate is always open.
 */
export class DatabaseGate {
  private suspect = false;
  private asking: Promise<void> | undefined;
  private readonly unsubscribe: () => void;

  constructor(private readonly db: Kysely<Database>) {
    const watch = connectionWatchOf(db);
    this.unsubscribe = watch?.onLost(() => (this.suspect = true)) ?? (() => undefined);
  }

  /** Whether attempts may start now without asking (nothing was lost). */
  isOpen(): boolean {
    return !this.suspect;
  }

  /** Resolves at once while nothing was lost; otherwise when the database answers again (rejects past the bound). */
  open(): Promise<void> {
    if (!this.suspect) return Promise.resolve();
    this.asking ??= this.ask().finally(() => (this.asking = undefined));
    return this.asking;
  }

  close(): void {
    this.unsubscribe();
  }

  private async ask(): Promise<void> {
    const watch = connectionWatchOf(this.db)!;
    const deadline = Date.now() + watch.timeouts.reconnectMs;
    for (;;) {
      this.suspect = false;
      try {
        await sql`select 1`.execute(this.db);
        // A loss while the question was out: ask again.
        if (!this.suspect) return;
      } catch (error) {
        this.suspect = true;
        if (watch.stoppedAnswering !== undefined || Date.now() >= deadline) throw error;
      }
      await sleep(RETRY_MS);
    }
  }
}
