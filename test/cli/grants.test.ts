// The README's MySQL / MariaDB grants, taken literally (issue 16, item 9): users created with exactly its GRANT
// lines run migrate, licenses import, process-expirations and status; a missing privilege is named with the
// GRANT line to run, and a refused migrate changes nothing.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { runCli } from '../helpers/cli.js';
import { readmeBlocks } from '../helpers/readme.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { migrations } from '../../migrations/index.js';
import { adminQuery, createServerDatabase, testDialects, urlFor, type ServerDatabase } from '../helpers/servers.js';
import { tempDir } from '../helpers/temp-dir.js';

const PASSWORD = 'grants-test-pw';
const suffix = `${process.pid}`;

/** The MySQL / MariaDB lines of the README's privileges block, for one database and our own user names. */
function readmeGrants(database: string, users: { job: string; migrate: string }): string[] {
  const block = readmeBlocks().find((candidate) => candidate.language === 'sql' && candidate.lines.some((line) => line.includes('license_manager_migrate')));
  if (!block) throw new Error('README.md has no sql block with the MySQL / MariaDB grants');
  const start = block.lines.findIndex((line) => line.startsWith('-- MySQL / MariaDB'));
  return block.lines
    .slice(start)
    .filter((line) => /^(CREATE USER|GRANT) /.test(line))
    .map((line) =>
      line
        .replaceAll("'license_manager_migrate'", `'${users.migrate}'`)
        .replaceAll("'license_manager'", `'${users.job}'`)
        .replace(' ON licenses.* ', ` ON ${database}.* `)
        .replace("IDENTIFIED BY '…'", `IDENTIFIED BY '${PASSWORD}'`),
    );
}

const run = testDialects().includes('mysql') ? describe : describe.skip;

run('the README grants on MariaDB', () => {
  let server: ServerDatabase;
  let receiver: Receiver;
  const job = `lm_job_${suffix}`;
  const migrator = `lm_mig_${suffix}`;
  const narrow = `lm_narrow_${suffix}`;
  beforeAll(async () => {
    server = await createServerDatabase('mysql');
    receiver = await startReceiver();
    for (const user of [job, migrator, narrow]) await adminQuery('mysql', `drop user if exists '${user}'@'%'`);
    for (const statement of readmeGrants(server.name, { job, migrate: migrator })) await adminQuery('mysql', statement);
  });
  afterAll(async () => {
    for (const user of [job, migrator, narrow]) await adminQuery('mysql', `drop user if exists '${user}'@'%'`).catch(() => undefined);
    await server?.drop();
    await receiver?.close();
  });

  const as = (user: string) => ({ LICENSE_MANAGER_DB: urlFor(server.url, server.name, { user, password: PASSWORD }) });
  const tables = async () =>
    ((await adminQuery('mysql', `select table_name from information_schema.tables where table_schema = '${server.name}'`)) as unknown[]).length;

  test('the grants parsed from README.md are the two users and their lines', () => {
    const lines = readmeGrants('licenses', { job: 'J', migrate: 'M' });
    expect(lines).toEqual([
      `CREATE USER 'J'@'%' IDENTIFIED BY '${PASSWORD}';`,
      "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE TEMPORARY TABLES ON licenses.* TO 'J'@'%';",
      `CREATE USER 'M'@'%' IDENTIFIED BY '${PASSWORD}';`,
      "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, REFERENCES ON licenses.* TO 'M'@'%';",
    ]);
  });

  test('migrate as the job user: refused before any change, naming the privileges and the GRANT line', async () => {
    const cwd = tempDir();
    const refused = await runCli(['migrate'], { cwd, env: as(job) });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`The database user '${job}'@'%' lacks CREATE, INDEX, REFERENCES, ALTER on database ${server.name}, which migrate needs`);
    expect(refused.stderr).toContain(`GRANT CREATE, INDEX, REFERENCES, ALTER ON \`${server.name}\`.* TO '${job}'@'%';`);
    expect(refused.stderr).not.toContain(PASSWORD);
    expect(await tables()).toBe(0);
  });

  test('a migrate user without ALTER (the grants the README used to give): refused before it creates anything', async () => {
    await adminQuery('mysql', `create user '${narrow}'@'%' identified by '${PASSWORD}'`);
    await adminQuery('mysql', `grant create, index, references, select, insert, update, delete on ${server.name}.* to '${narrow}'@'%'`);
    const refused = await runCli(['migrate'], { cwd: tempDir(), env: as(narrow) });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`lacks ALTER on database ${server.name}, which migrate needs: ALTER (migration 0002_delivery_schedule)`);
    expect(refused.stderr).toContain(`GRANT ALTER ON \`${server.name}\`.* TO '${narrow}'@'%';`);
    expect(await tables()).toBe(0);
  });

  test('the README users: migrate, then licenses import, process-expirations and status as the job user', async () => {
    const cwd = tempDir();
    const migrated = await runCli(['migrate', '--json'], { cwd, env: as(migrator) });
    expect(migrated.stderr).toBe('');
    expect(migrated.code).toBe(0);
    expect(JSON.parse(migrated.stdout)).toMatchObject({ upToDate: true, applied: expect.arrayContaining(['0001_initial', '0006_big_license_ids']) });
    const csv = path.join(cwd, 'licenses.csv');
    fs.writeFileSync(csv, `license_code,email,expires_at\nG-1,a@example.com,${new Date(Date.now() + 30 * 3_600_000).toISOString()}\n`);
    const env = { ...as(job), LICENSE_MANAGER_WEBHOOK_URL: receiver.url };
    const imported = await runCli(['licenses', 'import', csv], { cwd, env });
    expect(imported.stderr).toBe('');
    expect(imported.code).toBe(0);
    expect((await runCli(['settings', 'set', 'webhooks-enabled', 'true'], { cwd, env })).code).toBe(0);
    const sent = await runCli(['process-expirations', '--json'], { cwd, env });
    expect(sent.stderr).toBe('');
    expect(JSON.parse(sent.stdout)).toMatchObject({ recorded: 1, delivered: 1, abandoned: 0 });
    expect((await runCli(['status', '--quiet'], { cwd, env })).code).toBe(0);
    expect((await runCli(['settings', 'unset', 'webhooks-enabled'], { cwd, env })).code).toBe(0);
    expect(receiver.requests).toHaveLength(1);
  });

  test('licenses import without CREATE TEMPORARY TABLES: exit 2 naming it and the GRANT line; nothing imported', async () => {
    await adminQuery('mysql', `revoke create temporary tables on ${server.name}.* from '${job}'@'%'`);
    try {
      const cwd = tempDir();
      const csv = path.join(cwd, 'licenses.csv');
      fs.writeFileSync(csv, 'license_code\nG-2\n');
      const refused = await runCli(['licenses', 'import', csv], { cwd, env: as(job) });
      expect(refused.code).toBe(2);
      expect(refused.stderr).toBe(
        `error: The database user '${job}'@'%' lacks CREATE TEMPORARY TABLES on database ${server.name}, which licenses import needs (it checks repeated license codes in a temporary table); nothing was imported. As an administrator, run:\n  GRANT CREATE TEMPORARY TABLES ON \`${server.name}\`.* TO '${job}'@'%';\n`,
      );
      const codes = (await adminQuery('mysql', `select license_code from ${server.name}.licenses order by license_code`)) as Array<{ license_code: string }>;
      expect(codes.map((row) => row.license_code)).toEqual(['G-1']);
    } finally {
      await adminQuery('mysql', `grant create temporary tables on ${server.name}.* to '${job}'@'%'`);
    }
  });

  test('a job user without a privilege a command needs: exit 2 naming the privilege (ER_TABLEACCESS_DENIED_ERROR)', async () => {
    await adminQuery('mysql', `revoke delete on ${server.name}.* from '${job}'@'%'`);
    try {
      const cwd = tempDir();
      await runCli(['settings', 'set', 'webhook-url', 'https://example.com/hook'], { cwd, env: as(migrator) });
      const refused = await runCli(['settings', 'unset', 'webhook-url'], { cwd, env: as(job) });
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(
        new RegExp(
          `^error: The database user lacks a privilege on MySQL database "${server.name}" .*DELETE command denied to user '${job}'@'[^']+' for table .*settings`,
        ),
      );
      expect(refused.stderr).not.toContain(PASSWORD);
    } finally {
      await adminQuery('mysql', `grant delete on ${server.name}.* to '${job}'@'%'`);
    }
  });

  test('every migration is re-runnable: a migrate interrupted after its changes but before its record is run again', async () => {
    const cwd = tempDir();
    const env = as(migrator);
    expect((await runCli(['migrate'], { cwd, env })).code).toBe(0);
    // As a migrate stopped after the DDL (committed at once on MariaDB) and before Kysely recorded it.
    await adminQuery('mysql', `delete from ${server.name}.kysely_migration`);
    const again = await runCli(['migrate', '--json'], { cwd, env });
    expect(again.stderr).toBe('');
    expect(again.code).toBe(0);
    expect((JSON.parse(again.stdout) as { applied: string[] }).applied).toEqual(Object.keys(migrations));
    // The data is still there, and the job goes on.
    expect((await runCli(['licenses', 'list', '--json'], { cwd, env: as(job) })).stdout).toContain('G-1');
  });
});
