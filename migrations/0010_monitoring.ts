import type { Kysely, Migration } from 'kysely';
import { createIndex, dropIndex } from './column-types.js';

// `deliveries stats --since 24h` reads the attempts of a window, not the whole log: an index on when each attempt started.
// (0009 is left to the retries work, which lands beside this one.)
const INDEX = 'webhook_attempts_started_at';

export const monitoring: Migration = {
  async up(db: Kysely<any>) {
    // A database put back to an older migration by hand may still have it: created unless it exists.
    await createIndex(db, INDEX, 'webhook_attempts', ['started_at']);
  },
  async down(db: Kysely<any>) {
    await dropIndex(db, INDEX, 'webhook_attempts');
  },
};
