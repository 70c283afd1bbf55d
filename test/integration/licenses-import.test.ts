import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from '@jest/globals';
import { importLicenses, listLicenses } from '../../src/commands/licenses.js';
import { ExitError } from '../../src/errors.js';
import { botbleInserts, createBotbleDatabase, type BotbleLicense } from '../helpers/botble.js';
import { forEachDialect } from '../helpers/workspace.js';

const SAMPLE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../examples/licenses.csv');
const now = new Date('2025-01-15T08:00:00Z');

function write(dir: string, name: string, content: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, content);
  return file;
}

forEachDialect('licenses import', ({ workspace, dialect }) => {
  test('the shipped sample CSV imports, quoted commas and empty cells included', async () => {
    const ws = workspace();
    const result = await ws.run((context) => importLicenses(context, SAMPLE, now));
    expect(result).toMatchObject({ format: 'csv', rows: 10, inserted: 10, updated: 0 });
    const rows = await ws.run((context) => listLicenses(context, { now }));
    expect(rows.find((row) => row.license_code === 'LIC-0005')).toMatchObject({
      product_name: 'Plugin, Lifetime',
      expires_at: null,
      updates_until: '2025-01-10T00:00:00Z',
    });
  });

  test('JSON array and NDJSON, offsets normalised to UTC seconds, a date alone kept as a date; upsert by license_code keeps columns the file leaves out', async () => {
    const ws = workspace();
    const json = write(
      ws.dir,
      'a.json',
      JSON.stringify([{ id: 7, license_code: 'A', email: 'a@example.com', expires_at: '2025-01-20T10:00:00.123+02:00' }, { license_code: 'B' }]),
    );
    expect(await ws.run((context) => importLicenses(context, json, now))).toMatchObject({ format: 'json', inserted: 2, updated: 0 });
    const ndjson = write(ws.dir, 'b.ndjson', '{"license_code":"A","expires_at":"2026-01-20"}\n\n{"license_code":"C","status":"suspended"}\n');
    expect(await ws.run((context) => importLicenses(context, ndjson, now))).toMatchObject({ format: 'ndjson', inserted: 1, updated: 1 });
    const rows = await ws.run((context) => listLicenses(context, { now }));
    expect(rows.map(({ license_code, email, status, expires_at }) => ({ license_code, email, status, expires_at }))).toEqual([
      { license_code: 'A', email: 'a@example.com', status: 'active', expires_at: '2026-01-20' },
      { license_code: 'B', email: null, status: 'active', expires_at: null },
      { license_code: 'C', email: null, status: 'suspended', expires_at: null },
    ]);
    // A given id is kept; generated ids come after it (SQLite: 8 and 9; a server may leave gaps, as an
    // upsert that updates still draws from its sequence).
    const [a, b, c] = rows.map((row) => row.id);
    expect(a).toBe(7);
    expect(b).toBeGreaterThan(7);
    expect(c).toBeGreaterThan(b!);
    if (dialect === 'sqlite') expect([b, c]).toEqual([8, 9]);
  });

  // Every refused file on one workspace: each is refused naming the row and field, and nothing of any is imported.
  test('a refused file is exit 2 naming the row and field, nothing imported', async () => {
    const cases: [string, string, RegExp][] = [
      [
        'bad-date.csv',
        'license_code,expires_at\nOK-1,2025-01-01\nBAD-1,31/12/2025\n',
        /row 2 \(line 3\): field expires_at "31\/12\/2025" is not an ISO-8601 date/,
      ],
      ['no-code.json', '[{"license_code":"OK"},{"email":"x@example.com"}]', /row 2: field license_code is required/],
      [
        'status.ndjson',
        '{"license_code":"OK"}\n{"license_code":"S","status":"paused"}\n',
        /row 2 \(line 2\): field status must be one of active, suspended, revoked, expired/,
      ],
      // A CSV file's field names are its header's: every unknown one named, at the header's line (blank lines before it skipped).
      ['unknown.csv', 'license_code,colour\nA,blue\n', /unknown\.csv: the header \(line 1\): unknown field "colour"\. Known fields: id, license_code,/],
      ['unknowns.csv', '\nlicense_code,colour,size\nA,blue,L\n', /unknowns\.csv: the header \(line 2\): unknown fields "colour", "size"\. Known/],
      ['unknown.ndjson', '{"license_code":"A"}\n{"license_code":"B","colour":"blue"}\n', /unknown\.ndjson: row 2 \(line 2\): unknown field "colour"\./],
      ['dupe.csv', 'license_code\nA\nA\n', /row 2: field license_code "A" repeats row 1/],
      [
        'abc-id.csv',
        'id,license_code\nabc,A\n',
        /abc-id\.csv: row 1 \(line 2\): field id must be a positive whole number, not "abc"\. Nothing was imported\.$/,
      ],
      ['true-id.json', '[{"id":true,"license_code":"A"}]', /row 1: field id must be a positive whole number, not true\./],
      ['half-id.json', '[{"id":1.5,"license_code":"A"}]', /row 1: field id must be a positive whole number up to \d+, not 1\.5\./],
      // The same id for two codes: named, not the database's raw primary-key error, in one batch or across batches.
      ['dupe-id.json', '[{"id":5,"license_code":"A"},{"id":5,"license_code":"B"}]', /dupe-id\.json: row 2: field id 5 repeats row 1\. Nothing was imported\.$/],
      [
        'late-dupe-id.ndjson',
        Array.from({ length: 501 }, (_, index) => JSON.stringify({ id: (index % 500) + 1, license_code: `L-${index}` })).join('\n'),
        /late-dupe-id\.ndjson: row 501: field id 1 repeats row 1\. Nothing was imported\.$/,
      ],
      ['broken.json', '[{"license_code":', /is not valid JSON/],
      ['short.csv', 'license_code,email\nA\n', /row 1 \(line 2\) has 1 field, the header has 2\./],
      // An Excel export with ";": a quoted cell must not turn the clear message into a quote error.
      [
        'excel.csv',
        'license_code;expires_at;product_name\nLIC-1;2025-01-30;"Big; Pro"\n',
        /excel\.csv: the header \(line 1\) "license_code;expires_at;product_name" is separated by ";"; CSV files must be comma-separated/,
      ],
      [
        'excel-quoted.csv',
        '\uFEFF"license_code";"email"\n"LIC-1";"a@example.com"\n',
        /excel-quoted\.csv: the header \(line 1\) ""license_code";"email"" is separated by ";"/,
      ],
    ];
    const ws = workspace();
    const outcomes = [];
    for (const [name, content, pattern] of cases) {
      const file = write(ws.dir, name, content);
      const error = await ws.run((context) => importLicenses(context, file, now)).catch((caught: unknown) => caught);
      outcomes.push({
        name,
        exit: error instanceof ExitError ? error.code : String(error),
        reason: pattern.test((error as Error | undefined)?.message ?? '') || (error as Error | undefined)?.message,
        imported: await ws.run((context) => listLicenses(context, { now })),
      });
    }
    expect(outcomes).toEqual(cases.map(([name]) => ({ name, exit: 2, reason: true, imported: [] })));
  });

  test("Botble's columns and the business zone: support_until checked and not stored, is_valid 0 suspends, a time without offset read in the zone", async () => {
    const ws = workspace({ expirations: { timeZone: 'America/Los_Angeles' } });
    const file = write(
      ws.dir,
      'botble.csv',
      'license_code,expires_at,support_until,is_valid\nV,2025-07-01T10:00:00,2026-01-01,1\nW,2025-07-01,,0\nX,2025-07-01T10:00:00+02:00,,true\n',
    );
    await ws.seed([{ license_code: 'X', status: 'revoked' }]);
    expect(await ws.run((context) => importLicenses(context, file, now))).toMatchObject({ inserted: 2, updated: 1 });
    const rows = await ws.run((context) => listLicenses(context, { now }));
    // is_valid true leaves the stored status alone (X stays revoked).
    expect(rows.map(({ license_code, status, expires_at }) => ({ license_code, status, expires_at }))).toEqual([
      { license_code: 'X', status: 'revoked', expires_at: '2025-07-01T08:00:00Z' },
      { license_code: 'V', status: 'active', expires_at: '2025-07-01T17:00:00Z' },
      { license_code: 'W', status: 'suspended', expires_at: '2025-07-01' },
    ]);
    const bad = write(ws.dir, 'bad.csv', 'license_code,support_until\nY,someday\n');
    await expect(ws.run((context) => importLicenses(context, bad, now))).rejects.toMatchObject({
      code: 2,
      message: expect.stringMatching(/row 1.*field support_until "someday" is not an ISO-8601 date/),
    });
  });

  test('a file that moves expires_at into the future and names no status renews an expired license; a past date or a status does not', async () => {
    const ws = workspace();
    await ws.seed(['R', 'P', 'S'].map((license_code) => ({ license_code, status: 'expired' as const, expires_at: '2025-01-10' })));
    const file = write(
      ws.dir,
      'renew.json',
      JSON.stringify([
        { license_code: 'R', expires_at: '2025-02-10' },
        { license_code: 'P', expires_at: '2025-01-12' },
        { license_code: 'S', expires_at: '2025-02-10', status: 'suspended' },
      ]),
    );
    await ws.run((context) => importLicenses(context, file, now));
    const rows = await ws.run((context) => listLicenses(context, { now }));
    expect(rows.map(({ license_code, status }) => `${license_code}:${status}`)).toEqual(['R:active', 'P:expired', 'S:suspended']);
  });

  test('an id that belongs to another license_code rolls the whole file back', async () => {
    const ws = workspace();
    await ws.run((context) => importLicenses(context, write(ws.dir, 'one.json', '[{"id":1,"license_code":"FIRST"}]'), now));
    const file = write(ws.dir, 'two.json', '[{"license_code":"NEW-1"},{"id":1,"license_code":"SECOND"}]');
    const error = (await ws.run((context) => importLicenses(context, file, now)).catch((caught: unknown) => caught)) as ExitError;
    expect(error.code).toBe(2);
    // Named with its row and both codes on every dialect, not as the database's primary-key error.
    expect(error.message).toBe(`${file}: row 2: field id 1 already belongs to license_code "FIRST", not "SECOND". Nothing was imported.`);
    const codes = (await ws.run((context) => listLicenses(context, { now }))).map((row) => row.license_code);
    expect(codes).toEqual(['FIRST']);
  });

  test("an id that is not the stored license's own is refused (exit 2, its row and line), not ignored as an update", async () => {
    const ws = workspace();
    await ws.ready();
    write(ws.dir, 'first.csv', 'license_code,id,email\nLIC-0001,1,a@example.com\nLIC-0002,2,b@example.com\n');
    expect((await ws.cli(['licenses', 'import', 'first.csv'])).code).toBe(0);
    write(ws.dir, 'moved.csv', 'license_code,id,email\nLIC-0003,3,c@example.com\nLIC-0001,99,new@example.com\n');
    const refused = await ws.cli(['licenses', 'import', 'moved.csv']);
    expect([refused.code, refused.stdout]).toEqual([2, '']);
    expect(refused.stderr).toContain(
      `moved.csv: row 2 (line 3): field id 99 does not match license_code "LIC-0001"'s id 1 (an import never changes a license's id: give 1 or leave id out). Nothing was imported.`,
    );
    const rows = await ws.run((context) => listLicenses(context, { now }));
    expect(rows.map(({ id, license_code, email }) => ({ id, license_code, email }))).toEqual([
      { id: 1, license_code: 'LIC-0001', email: 'a@example.com' },
      { id: 2, license_code: 'LIC-0002', email: 'b@example.com' },
    ]);
    // The row's own id is fine, as is leaving id out.
    write(ws.dir, 'own.csv', 'license_code,id,email\nLIC-0001,1,new@example.com\n');
    expect((await ws.cli(['licenses', 'import', 'own.csv'])).stdout).toContain('0 new, 1 updated, 0 unchanged');
  });

  test('importing the same file again: every row unchanged and not written; a changed row is updated', async () => {
    const ws = workspace();
    expect(await ws.run((context) => importLicenses(context, SAMPLE, now))).toMatchObject({ rows: 10, inserted: 10, updated: 0, unchanged: 0 });
    const stamps = async () => (await ws.run((context) => listLicenses(context, { now }))).map((row) => row.updated_at);
    const first = await stamps();
    const later = new Date('2025-01-16T08:00:00Z');
    expect(await ws.run((context) => importLicenses(context, SAMPLE, later))).toEqual({
      file: SAMPLE,
      format: 'csv',
      rows: 10,
      inserted: 0,
      updated: 0,
      unchanged: 10,
    });
    expect(await stamps()).toEqual(first);
    // One e-mail changed, one status left out (kept), one id given that is the row's own: one update.
    const file = write(
      ws.dir,
      'again.json',
      JSON.stringify([
        { license_code: 'LIC-0001', email: 'new@example.com' },
        { license_code: 'LIC-0002', expires_at: '2025-01-16T02:00:00Z' },
        { id: 3, license_code: 'LIC-0003' },
      ]),
    );
    expect(await ws.run((context) => importLicenses(context, file, later))).toMatchObject({ inserted: 0, updated: 1, unchanged: 2 });
  });

  test('--expiring-within counts calendar days in the business zone as the job does (0: later today), and Botble mode lists the same', async () => {
    const timeZone = 'Europe/Berlin';
    // 00:30 on 2025-03-30 in Berlin, the night the clocks go forward.
    const at = new Date('2025-03-29T23:30:00Z');
    const dates: BotbleLicense[] = [
      { id: 1, product: 'P', code: 'GONE-YESTERDAY', customer: null, email: null, expires: '2025-03-29', updates: null },
      { id: 2, product: 'P', code: 'GONE-TODAY', customer: null, email: null, expires: '2025-03-30', updates: null },
      { id: 3, product: 'P', code: 'IN-1', customer: null, email: null, expires: '2025-03-31', updates: null },
      { id: 4, product: 'P', code: 'BLOCKED-2', customer: null, email: null, expires: '2025-04-01', updates: null, valid: false },
      { id: 5, product: 'P', code: 'IN-7', customer: null, email: null, expires: '2025-04-06', updates: null },
      { id: 6, product: 'P', code: 'IN-8', customer: null, email: null, expires: '2025-04-07', updates: null },
      { id: 7, product: 'P', code: 'LIFETIME', customer: null, email: null, expires: null, updates: null },
    ];
    const ws = workspace({ expirations: { timeZone } });
    const own = [
      ...dates.map((license) => ({ id: license.id, license_code: license.code, expires_at: license.expires, is_valid: license.valid ?? true })),
      // Times only our own table can hold: later today (22:00 in Berlin), and 23:30 on the 7th day.
      { id: 8, license_code: 'LATER-TODAY', expires_at: '2025-03-30T20:00:00Z' },
      { id: 9, license_code: 'LATE-7', expires_at: '2025-04-06T21:30:00Z' },
      { id: 10, license_code: 'MARKED-EXPIRED', status: 'expired', expires_at: '2025-03-25' },
    ];
    await ws.run((context) => importLicenses(context, write(ws.dir, 'own.json', JSON.stringify(own)), at));
    const codes = (rows: Array<{ license_code: string }>) => rows.map((row) => row.license_code);
    const list = (days: number, extra: { status?: 'suspended'; limit?: number } = {}) =>
      ws.run(async (context) => codes(await listLicenses(context, { now: at, expiringWithinDays: days, ...extra })));
    expect(await list(0)).toEqual(['LATER-TODAY']);
    expect(await list(1)).toEqual(['LATER-TODAY', 'IN-1']);
    expect(await list(6)).toEqual(['LATER-TODAY', 'IN-1', 'BLOCKED-2']);
    expect(await list(7)).toEqual(['LATER-TODAY', 'IN-1', 'BLOCKED-2', 'IN-7', 'LATE-7']);
    expect(await list(7, { status: 'suspended' })).toEqual(['BLOCKED-2']);
    expect(await list(7, { limit: 2 })).toEqual(['LATER-TODAY', 'IN-1']);

    const botble = await createBotbleDatabase(dialect);
    try {
      await botble.exec(...botbleInserts(dialect, [{ reference: 'P', name: 'Product' }], dates));
      const inBotble = workspace({ database: { tablePrefix: 'lmw_', ...botble.database }, licenses: { source: 'botble' }, expirations: { timeZone } });
      const botbleList = (days: number) => inBotble.run(async (context) => codes(await listLicenses(context, { now: at, expiringWithinDays: days })));
      for (const days of [0, 1, 6, 7])
        expect(await botbleList(days)).toEqual((await list(days)).filter((code) => dates.some((license) => license.code === code)));
      expect(await botbleList(7)).toEqual(['IN-1', 'BLOCKED-2', 'IN-7']);
    } finally {
      await botble.drop();
    }
  }, 60_000);

  test('list filters by status and by --expiring-within', async () => {
    const ws = workspace();
    await ws.run((context) => importLicenses(context, SAMPLE, now));
    const expiring = await ws.run((context) => listLicenses(context, { now, expiringWithinDays: 7 }));
    expect(expiring.map((row) => row.license_code)).toEqual(['LIC-0002', 'LIC-0006', 'LIC-0001']);
    const suspended = await ws.run((context) => listLicenses(context, { now, status: 'suspended' }));
    expect(suspended.map((row) => row.license_code)).toEqual(['LIC-0006']);
  });
});
