import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from '@jest/globals';
import { importLicenses, listLicenses } from '../../src/commands/licenses.js';
import { ExitError } from '../../src/errors.js';
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
    expect(rows.find((row) => row.license_code === 'LIC-0005')).toMatchObject({ product_name: 'Plugin, Lifetime', expires_at: null, updates_until: '2025-01-10T00:00:00Z' });
  });

  test('JSON array and NDJSON, offsets normalised to UTC seconds, a date alone kept as a date; upsert by license_code keeps columns the file leaves out', async () => {
    const ws = workspace();
    const json = write(ws.dir, 'a.json', JSON.stringify([{ id: 7, license_code: 'A', email: 'a@example.com', expires_at: '2025-01-20T10:00:00.123+02:00' }, { license_code: 'B' }]));
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

  test.each([
    ['bad-date.csv', 'license_code,expires_at\nOK-1,2025-01-01\nBAD-1,31/12/2025\n', /row 2 \(line 3\): field expires_at "31\/12\/2025" is not an ISO-8601 date/],
    ['no-code.json', '[{"license_code":"OK"},{"email":"x@example.com"}]', /row 2: field license_code is required/],
    ['status.ndjson', '{"license_code":"OK"}\n{"license_code":"S","status":"paused"}\n', /row 2 \(line 2\): field status must be one of active, suspended, revoked, expired/],
    ['unknown.csv', 'license_code,colour\nA,blue\n', /row 1 \(line 2\): unknown field "colour"/],
    ['dupe.csv', 'license_code\nA\nA\n', /row 2: field license_code "A" repeats row 1/],
    ['broken.json', '[{"license_code":', /is not valid JSON/],
    ['short.csv', 'license_code,email\nA\n', /row 1 \(line 2\) has 1 field, the header has 2\./],
    // An Excel export with ";": a quoted cell must not turn the clear message into a quote error.
    ['excel.csv', 'license_code;expires_at;product_name\nLIC-1;2025-01-30;"Big; Pro"\n', /excel\.csv: the header \(line 1\) "license_code;expires_at;product_name" is separated by ";"; CSV files must be comma-separated/],
    ['excel-quoted.csv', '\uFEFF"license_code";"email"\n"LIC-1";"a@example.com"\n', /excel-quoted\.csv: the header \(line 1\) ""license_code";"email"" is separated by ";"/],
  ])('%s: exit 2 naming the row and field, nothing imported', async (name, content, pattern) => {
    const ws = workspace();
    const file = write(ws.dir, name, content);
    const error = await ws.run((context) => importLicenses(context, file, now)).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ExitError);
    expect((error as ExitError).code).toBe(2);
    expect((error as ExitError).message).toMatch(pattern);
    const rows = await ws.run((context) => listLicenses(context, { now }));
    expect(rows).toEqual([]);
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
    await expect(ws.run((context) => importLicenses(context, bad, now))).rejects.toMatchObject({ code: 2, message: expect.stringMatching(/row 1.*field support_until "someday" is not an ISO-8601 date/) });
  });

  test('a file that moves expires_at into the future and names no status renews an expired license; a past date or a status does not', async () => {
    const ws = workspace();
    await ws.seed(['R', 'P', 'S'].map((license_code) => ({ license_code, status: 'expired' as const, expires_at: '2025-01-10' })));
    const file = write(ws.dir, 'renew.json', JSON.stringify([
      { license_code: 'R', expires_at: '2025-02-10' },
      { license_code: 'P', expires_at: '2025-01-12' },
      { license_code: 'S', expires_at: '2025-02-10', status: 'suspended' },
    ]));
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
    expect(error.message).toMatch(/Nothing was imported/);
    const codes = (await ws.run((context) => listLicenses(context, { now }))).map((row) => row.license_code);
    expect(codes).toEqual(['FIRST']);
  });

  test('list filters by status and by --expiring-within', async () => {
    const ws = workspace();
    await ws.run((context) => importLicenses(context, SAMPLE, now));
    const expiring = await ws.run((context) => listLicenses(context, { now, expiringWithinDays: 7 }));
    expect(expiring.map((row) => row.license_code)).toEqual(['LIC-0002', 'LIC-0006', 'LIC-0001']);
    const suspended = await ws.run((context) => listLicenses(context, { now, status: 'suspended' }));
    expect(suspended.map((row) => row.license_code)).toEqual(['LIC-0006']);
  });
});
