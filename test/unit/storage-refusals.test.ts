import { expect, test } from '@jest/globals';
import { databaseError } from '../../src/commands/database-messages.js';
import { ExitError } from '../../src/errors.js';
import { parseDatabaseUrl, type DatabaseTarget } from '../../src/storage/database-target.js';
import { StorageRefusal } from '../../src/storage/storage-refusal.js';

// Storage names what it refuses; the command edge words it and picks the exit code. The refusals the CLI tests
// cannot bring about on this machine (a file root may always create, a row without its position) are checked here.
const SQLITE: DatabaseTarget = { dialect: 'sqlite', filename: '/srv/lm/lm.sqlite', tablePrefix: '', label: '/srv/lm/lm.sqlite' };

test('a SQLite file that cannot be created: exit 2 naming it and the reason, the cause kept', () => {
  const cause = Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
  const error = databaseError(SQLITE, new StorageRefusal({ kind: 'cannot-create', filename: '/srv/lm/lm.sqlite', detail: cause.message }, { cause }));
  expect(error).toBeInstanceOf(ExitError);
  expect(error.code).toBe(2);
  expect(error.message).toBe('Cannot create database file /srv/lm/lm.sqlite: EACCES: permission denied');
  expect(error.cause).toBe(cause);
});

test('an event too long to store: exit 1, naming the event when the row is known, and the prefixed column', () => {
  const target = parseDatabaseUrl('mysql://app@db.example/shop', 'lm_') as DatabaseTarget;
  const unknownRow = databaseError(
    target,
    new StorageRefusal({
      kind: 'event-too-long',
      event: undefined,
      field: 'body',
      bytes: undefined,
      table: 'lm_webhook_deliveries',
      detail: 'Got a packet bigger',
    }),
  );
  expect(unknownRow.code).toBe(1);
  expect(unknownRow.message).toBe(
    `An event cannot be stored: its body is longer than the column lm_webhook_deliveries.body (or the server's max_allowed_packet) holds. Nothing of this run was recorded or sent, and nothing was cut; run "license-manager migrate" (migration 0007 makes the column LONGTEXT) or raise max_allowed_packet (Got a packet bigger).`,
  );
  const noLicense = databaseError(
    target,
    new StorageRefusal({
      kind: 'event-too-long',
      event: { type: 'license.expiring', licenseId: null, licenseCode: 'LIC-1' },
      field: 'event_key',
      bytes: 70_000,
      table: 'lm_webhook_deliveries',
      detail: "Data too long for column 'event_key' at row 1",
    }),
  );
  expect(noLicense.message).toMatch(
    /^The license\.expiring event of an event without a license \(LIC-1\) cannot be stored: its event_key \(70,000 bytes\) is longer/,
  );
});

test('an error already in the operator words passes through unchanged', () => {
  const given = new ExitError(1, 'Cannot reach the database: timeout exceeded when trying to connect');
  expect(databaseError(SQLITE, given)).toBe(given);
});
