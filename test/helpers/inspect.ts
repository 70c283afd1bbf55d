import SQLite from 'better-sqlite3';

/** Reads the tool's database directly, as an operator with sqlite3 would. */
export function query<T>(file: string, sql: string, ...params: unknown[]): T[] {
  const db = new SQLite(file, { readonly: true });
  try {
    return db.prepare(sql).all(...params) as T[];
  } finally {
    db.close();
  }
}
