import SQLite from 'better-sqlite3';

/**
 * SQLite's plan of each statement on the database file, one line per step ("SEARCH licenses USING INTEGER PRIMARY
 * KEY (rowid=?)"). For a statement given as text alone, any value stands in for each `?`: a plan depends on the statement alone.
 */
export function sqlitePlans(
  file: string,
  statements: ReadonlyArray<string | { sql: string; parameters: readonly unknown[] }>,
): Array<{ sql: string; plan: string[] }> {
  const sqlite = new SQLite(file, { readonly: true });
  try {
    return statements.map((statement) => {
      const { sql, parameters } = typeof statement === 'string' ? { sql: statement, parameters: undefined } : statement;
      const values = parameters ?? Array.from({ length: (sql.match(/\?/g) ?? []).length }, () => 1);
      const rows = sqlite.prepare<unknown[]>(`explain query plan ${sql}`).all(...values);
      return { sql, plan: rows.map((row) => (row as { detail: string }).detail) };
    });
  } finally {
    sqlite.close();
  }
}
