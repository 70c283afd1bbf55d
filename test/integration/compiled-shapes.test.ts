import { expect, test } from '@jest/globals';
import { sql, type Kysely } from 'kysely';
import { shapedQuery } from '../../src/sql/compiled-shapes.js';
import { dialectFor } from '../../src/sql/dialect-for.js';
import type { Database } from '../../src/storage/database.table.js';
import { aLicense, forEachDialect } from '../helpers/workspace.js';

// shapedQuery compiles a statement once per shape and fills in the parameters after that: what it runs must
// be what Kysely would have compiled, value for value, on each dialect (the SQL differs, and so does the order
// of the parameters: MySQL's update lists them per column, and sorts the rows by id).
forEachDialect('statements compiled once per shape', ({ dialect, workspace }) => {
  const settingRows = (count: number, seed: string) =>
    Array.from({ length: count }, (_, index) => ({
      key: `${seed}-${index}`,
      value: `${seed} value ${index}`,
      updated_at: `2026-12-0${(index % 9) + 1}T00:00:00Z`,
    }));
  const updateRows = (count: number, seed: number) =>
    Array.from({ length: count }, (_, index) => ({ id: (index * 7919 + seed) % 1000, status: index % 2 === 0 ? 'expired' : null }));

  function updateOf(db: Kysely<Database>, rows: ReadonlyArray<Record<string, unknown>>, [run]: readonly unknown[]) {
    return dialectFor(db).updateFromValues(db, {
      table: 'licenses',
      types: { id: 'integer', status: 'text' },
      rows,
      set: (value, stored) => ({ status: sql`coalesce(${value('status')}, ${stored('status')})`, product_id: sql`${run}` }),
      where: (stored) => sql`${stored('customer_id')} <> ${run}`,
    });
  }

  test('every call compiles to what Kysely compiles: inserts, updates from a list of values, any row count, a new run id', async () => {
    const ws = workspace();
    await ws.run(async ({ db }) => {
      for (const count of [1, 2, 5, 5, 8, 5, 1]) {
        for (const seed of ['a', 'b']) {
          const rows = settingRows(count, `${seed}${count}`);
          const build = (shaped: typeof rows) => db.insertInto('settings').values(shaped);
          expect(shapedQuery(db, 'test settings', rows, [], build)).toMatchObject({
            sql: build(rows).compile().sql,
            parameters: build(rows).compile().parameters,
          });
        }
        for (const [seed, run] of [
          [3, 'run-1'],
          [11, 'run-2'],
        ] as const) {
          const rows = updateRows(count, seed);
          const compiled = updateOf(db, rows, [run]).compile();
          expect(shapedQuery(db, 'test update', rows, [run], (shaped, args) => updateOf(db, shaped, args))).toMatchObject({
            sql: compiled.sql,
            parameters: compiled.parameters,
          });
        }
      }
      // A shape seen before is not built again: its builder is not called (MySQL's update, which sorts its rows, is).
      let builds = 0;
      const counted = <T>(statement: T) => {
        builds += 1;
        return statement;
      };
      const rows = settingRows(6, 'counted');
      shapedQuery(db, 'test settings', rows, [], (shaped) => counted(db.insertInto('settings').values(shaped)));
      builds = 0;
      shapedQuery(db, 'test settings', settingRows(6, 'again'), [], (shaped) => counted(db.insertInto('settings').values(shaped)));
      expect(builds).toBe(0);
      shapedQuery(db, 'test update', updateRows(5, 17), ['run-3'], (shaped, args) => counted(updateOf(db, shaped, args)));
      expect(builds).toBe(dialect === 'mysql' ? 1 : 0);

      // The filled-in statements run, and write what they say.
      await ws.seed([]);
      const written = settingRows(4, 'run');
      await db.executeQuery(shapedQuery(db, 'test settings', written, [], (shaped) => db.insertInto('settings').values(shaped)));
      const stored = await db.selectFrom('settings').select(['key', 'value', 'updated_at']).where('key', 'like', 'run-%').orderBy('key').execute();
      expect(stored).toEqual(written);
    });
  });

  test('writes as one statement where the dialect has one (PostgreSQL): each written with its own parameters, and none when one fails', async () => {
    const ws = workspace();
    await ws.seed([aLicense({ license_code: 'TOGETHER' })]);
    await ws.run(async ({ db }) => {
      const [{ id }] = (await db.selectFrom('licenses').select('id').where('license_code', '=', 'TOGETHER').execute()) as [{ id: number }];
      const setStatus = (status: string) =>
        dialectFor(db)
          .updateFromValues(db, {
            table: 'licenses',
            types: { id: 'integer', status: 'text' },
            rows: [{ id, status }],
            set: (value) => ({ status: value('status') }),
            where: () => sql`1 = 1`,
          })
          .compile();
      const insert = db.insertInto('settings').values(settingRows(3, 'together')).compile();
      const together = dialectFor(db).oneStatement([insert, setStatus('expired')]);
      // SQLite (in this process) and MySQL have no such statement: recordAttempts runs the two in a transaction there.
      expect(together === undefined).toBe(dialect !== 'postgres');
      if (together === undefined) return;
      await db.executeQuery(together);
      const written = await db.selectFrom('settings').select(['key', 'value', 'updated_at']).where('key', 'like', 'together-%').orderBy('key').execute();
      expect(written).toEqual(settingRows(3, 'together'));
      expect(await db.selectFrom('licenses').select('status').where('id', '=', id).execute()).toEqual([{ status: 'expired' }]);
      // The same keys again break the unique key: the update in the same statement is not applied either.
      await expect(db.executeQuery(dialectFor(db).oneStatement([setStatus('revoked'), insert])!)).rejects.toThrow(/duplicate key/);
      expect(await db.selectFrom('licenses').select('status').where('id', '=', id).execute()).toEqual([{ status: 'expired' }]);
    });
  });

  test("a parameter computed from a value, a value left undefined, or rows with other keys are not given another shape's SQL", async () => {
    const ws = workspace();
    await ws.run(async ({ db }) => {
      for (const count of [3, 3]) {
        const rows = settingRows(count, `computed${count}`);
        // A value that does not reach the statement as it was given: no marker to find, so no shape is kept.
        const computed = (shaped: typeof rows) => db.insertInto('settings').values(shaped.map((row) => ({ ...row, key: `${row.key}!` })));
        expect(shapedQuery(db, 'test computed', rows, [], computed)).toMatchObject({
          sql: computed(rows).compile().sql,
          parameters: computed(rows).compile().parameters,
        });
        // Rows with other keys under a name and a count seen before are a shape of their own, never the old one's SQL.
        const narrower = rows.map(({ key, updated_at }) => ({ key, updated_at }));
        const insertNarrower = (shaped: typeof narrower) => db.insertInto('settings').values(shaped as typeof rows);
        expect(shapedQuery(db, 'test settings', rows, [], (shaped) => db.insertInto('settings').values(shaped))).toMatchObject({
          parameters: db.insertInto('settings').values(rows).compile().parameters,
        });
        expect(shapedQuery(db, 'test settings', narrower, [], insertNarrower)).toMatchObject({
          sql: insertNarrower(narrower).compile().sql,
          parameters: insertNarrower(narrower).compile().parameters,
        });
        // Kysely leaves an undefined value out of the statement (its column gets the default): another SQL.
        const partial = rows.map((row, index) => (index === 1 ? { key: row.key, value: undefined, updated_at: row.updated_at } : row));
        const insert = (shaped: typeof partial) => db.insertInto('settings').values(shaped as typeof rows);
        expect(shapedQuery(db, 'test settings', partial, [], insert)).toMatchObject({
          sql: insert(partial).compile().sql,
          parameters: insert(partial).compile().parameters,
        });
      }
    });
  });
});
