// Bound parameters per statement stay under 999, SQLite's limit before 3.32 (the build in use allows 32,766) and far
// below PostgreSQL's and MySQL's 65,535: any list longer than that goes in chunks.
export const MAX_PARAMETERS = 999;

// Ids or keys in one `IN (…)` list, and rows of a few columns in one statement.
export const IDS_PER_STATEMENT = 500;

/** `items` cut into consecutive slices of at most `size` (IDS_PER_STATEMENT unless told). */
export function* chunksOf<T>(items: readonly T[], size = IDS_PER_STATEMENT): Generator<T[]> {
  for (let start = 0; start < items.length; start += size) yield items.slice(start, start + size);
}
