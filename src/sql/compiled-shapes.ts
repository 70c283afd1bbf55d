import { CompiledQuery, type Compilable, type Kysely } from 'kysely';
import { tablePrefixOf } from './table-prefix.js';
import { dialectFor } from './dialect-for.js';

/** Where a parameter of a compiled statement comes from: a cell of the rows, an argument, or the statement itself. */
type Source = { row: number; key: string } | { arg: number } | { constant: unknown };

interface Shape {
  sql: string;
  sources: Source[];
}

// Shapes kept: a run uses a few dozen (two statements, each batch size it meets); tests use many table prefixes.
const MAX_SHAPES = 256;
const shapes = new Map<string, Shape | null>();

// Marker values, one per input, made anew per compilation: numbers no builder writes into a statement as a
// constant of its own (a constant equal to a marker would be taken for that input).
const FIRST_MARKERS = 1e15;
const SECOND_MARKERS = 3e15;

type Rows = ReadonlyArray<Record<string, unknown>>;
type Build<R extends Rows> = (rows: R, args: readonly unknown[]) => Compilable;

/**
 * A statement built from `rows` and `args`, to run: the same SQL and parameters as `build(rows, args).compile()`,
 * compiled only the first time its shape is seen (its name, the keys of its rows, their count, the database's
 * dialect and table prefix) and then given the new values as its parameters.
 *
 * Why: Kysely builds and compiles a statement from its builder on every call. For the attempt log's writes,
 * which a run repeats for every batch, that cost nearly as much CPU as SQLite's work (17 against 21 us per
 * attempt in batches of 100).
 *
 * Where each parameter comes from is learnt by compiling the statement twice, each time with other marker
 * values for every cell and argument (numbers, rising with the row in the first, falling in the second). A
 * parameter that carries the same input's marker in both comes from that input; one that is equal in both
 * and no marker is a constant of the statement. A statement whose SQL differs between the two, or with a
 * parameter computed from an input, or whose builder reorders the rows (MySQL's update sorts them by id) is
 * not cached: it is compiled on every call, as Kysely does. So is a call with an undefined value (Kysely leaves
 * its column out), or with rows whose keys differ.
 *
 * What the markers cannot see, and a builder must therefore not do:
 * - read a value that changes between calls from anywhere but `rows` and `args` (a run id from its closure
 *   would be learnt as a constant and sent with every later call);
 * - change its SQL or its values with what it is given (`value ?? default`, a branch on null or on a type):
 *   markers are never null and always numbers; only the count of rows may change the SQL.
 * `name` names one statement: two builders must not share it.
 */
export function shapedQuery<R extends Rows>(db: Kysely<any>, name: string, rows: R, args: readonly unknown[], build: Build<R>): CompiledQuery {
  const keys = rows.length > 0 ? Object.keys(rows[0]!) : [];
  const uniform = rows.every((row) => {
    const own = Object.keys(row);
    return own.length === keys.length && own.every((key, index) => key === keys[index] && row[key] !== undefined);
  });
  if (!uniform || args.includes(undefined)) return build(rows, args).compile();
  const key = `${dialectFor(db).name}\u0000${tablePrefixOf(db)}\u0000${name}\u0000${keys.join(',')}\u0000${rows.length}`;
  let shape = shapes.get(key);
  if (shape === undefined) {
    shape = learnShape(rows, keys, args, build);
    if (shapes.size >= MAX_SHAPES) shapes.clear();
    shapes.set(key, shape);
  }
  if (shape === null) return build(rows, args).compile();
  const parameters = shape.sources.map((source) =>
    'constant' in source ? source.constant : 'arg' in source ? args[source.arg] : rows[source.row]![source.key],
  );
  return CompiledQuery.raw(shape.sql, parameters);
}

/** `keys`: every row's, in order (shapedQuery checked). */
function learnShape<R extends Rows>(rows: R, keys: readonly string[], args: readonly unknown[], build: Build<R>): Shape | null {
  // A marker index per cell: row by row, one more than the keys so that no two rows' ranges touch.
  const width = keys.length + 1;
  const compileWith = (marker: (index: number) => number) => {
    const sources = new Map<unknown, Source>();
    const markedRows = rows.map((_, row) =>
      Object.fromEntries(
        keys.map((key, column) => {
          const value = marker(row * width + column);
          sources.set(value, { row, key });
          return [key, value];
        }),
      ),
    ) as unknown as R;
    const markedArgs = args.map((_, arg) => {
      const value = marker(rows.length * width + arg);
      sources.set(value, { arg });
      return value;
    });
    const compiled = build(markedRows, markedArgs).compile();
    return { sql: compiled.sql, parameters: compiled.parameters, sources };
  };
  const first = compileWith((index) => FIRST_MARKERS + index);
  const second = compileWith((index) => SECOND_MARKERS - index);
  if (first.sql !== second.sql || first.parameters.length !== second.parameters.length) return null;
  const sources: Source[] = [];
  for (let position = 0; position < first.parameters.length; position += 1) {
    const a = first.parameters[position];
    const b = second.parameters[position];
    const fromA = first.sources.get(a);
    const fromB = second.sources.get(b);
    if (fromA && fromB && sameSource(fromA, fromB)) sources.push(fromA);
    else if (!fromA && !fromB && Object.is(a, b)) sources.push({ constant: a });
    else return null;
  }
  return { sql: first.sql, sources };
}

function sameSource(a: Source, b: Source): boolean {
  if ('row' in a && 'row' in b) return a.row === b.row && a.key === b.key;
  if ('arg' in a && 'arg' in b) return a.arg === b.arg;
  return false;
}
