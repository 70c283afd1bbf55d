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
