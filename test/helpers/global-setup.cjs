// Decides once per jest run which server suites run: those whose server answers. Plain CommonJS because
// jest loads global setup outside its ESM module mapping. test/helpers/servers.ts reads what this sets.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const pg = require('pg');
const mysql = require('mysql2/promise');

const SERVERS = [
  { dialect: 'postgres', name: 'PostgreSQL', variable: 'LICENSE_MANAGER_TEST_PG_URL', url: 'postgres://postgres@127.0.0.1:5432/test' },
  { dialect: 'mysql', name: 'MySQL/MariaDB', variable: 'LICENSE_MANAGER_TEST_MYSQL_URL', url: 'mysql://root@127.0.0.1:3306/test' },
];

async function probe(dialect, url) {
  if (dialect === 'postgres') {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
    try {
      await client.connect();
      await client.query('select 1');
    } finally {
      await client.end().catch(() => undefined);
    }
  } else {
    const connection = await mysql.createConnection({ uri: url, connectTimeout: 3000 });
    await connection.end();
  }
}

module.exports = async function globalSetup() {
  // A folder for this run that the workers share (test/helpers/servers.ts keeps the schema the tool's migrate made
  // there, once per server); global-teardown.cjs removes it.
  process.env.LICENSE_MANAGER_TEST_RUN_DIR = fs.mkdtempSync(path.join(os.tmpdir(), 'license-manager-test-run-'));
  const available = [];
  const missing = [];
  for (const server of SERVERS) {
    const url = process.env[server.variable] || server.url;
    process.env[server.variable] = url;
    try {
      await probe(server.dialect, url);
      available.push(server.dialect);
    } catch (error) {
      missing.push(`${server.name} at ${new URL(url).host} (${error.message || error.code})`);
    }
  }
  process.env.LICENSE_MANAGER_TEST_DIALECTS = available.join(',');
  if (missing.length === 0) return;
  if (process.env.LICENSE_MANAGER_TEST_SERVERS === 'required') {
    throw new Error(`LICENSE_MANAGER_TEST_SERVERS=required, but ${missing.join(' and ')} did not answer.`);
  }
  process.stderr.write(
    `\nServer suites skipped (${missing.join('; ')}): start the servers, or set LICENSE_MANAGER_TEST_PG_URL / LICENSE_MANAGER_TEST_MYSQL_URL to servers where the user may create databases.\n`,
  );
};
