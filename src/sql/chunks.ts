// Bound parameters: SQLite before 3.32 took 999; the build better-sqlite3 bundles takes 32,766, PostgreSQL and
// MySQL 65,535. Multi-row writes of many columns (deliveries, attempts) are sized to 999, which keeps each
// statement small; IN lists and the licenses upsert take 500 rows (at most about 5,000 parameters).
export const MAX_PARAMETERS = 999;

// Ids or keys in one `IN (…)` list, and rows of the licenses upsert.
export const IDS_PER_STATEMENT = 500;

/** `items` cut into consecutive slices of at most `size` (IDS_PER_STATEMENT unless told). */
export function* chunksOf<T>(items: readonly T[], size = IDS_PER_STATEMENT): Generator<T[]> {
  for (let start = 0; start < items.length; start += size) yield items.slice(start, start + size);
}

/**
 * `items` cut into slices whose sizes are powers of two of at most `max` (largest first): 100 items are 64, 32
 * and 4. For statements compiled once per size (see executeShaped): however a batch's size varies, a run uses
 * only a few sizes.
 */
export function* powerOfTwoChunksOf<T>(items: readonly T[], max: number): Generator<T[]> {
  let start = 0;
  while (start < items.length) {
    let size = 1;
    while (size * 2 <= Math.min(max, items.length - start)) size *= 2;
    yield items.slice(start, start + size);
    start += size;
  }
}
