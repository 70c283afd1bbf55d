import type { Migration } from 'kysely';
import { initial } from './0001_initial.js';
import { runs } from './0003_runs.js';

/**
 * Every migration, by name in the order they apply. A static list: no stale file in dist/ is ever picked up.
 * 0002 is taken by the delivery-schedule migration on its way in; runs come after it so the names never collide.
 */
export const migrations: Record<string, Migration> = {
  '0001_initial': initial,
  '0003_runs': runs,
};
