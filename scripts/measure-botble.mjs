#!/usr/bin/env node
// Measures process-expirations against a Botble database on MariaDB: a generated lm_licenses of N rows
// (dates spread over 2020-2030, about 0.1 % due), first run, steady-state run, then the same with the
// indexes the README suggests. Wall time and peak RSS of the built CLI.
// Usage: npm run build && node scripts/measure-botble.mjs [rows=1000000] [mysql://root@127.0.0.1:3306]
// Needs the mariadb client and GNU time (/usr/bin/time). The database it creates is dropped afterwards.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../bin/license-manager.js');
const rows = Number(process.argv[2] ?? 1_000_000);
const server = new URL(process.argv[3] ?? 'mysql://root@127.0.0.1:3306');
const database = `lm_measure_botble_${process.pid}`;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'license-manager-measure-'));

function sql(statement) {
  const args = ['-h', server.hostname, '-P', server.port || '3306', '-u', decodeURIComponent(server.username || 'root')];
  if (server.password) args.push(`-p${decodeURIComponent(server.password)}`);
  const result = spawnSync('mariadb', [...args, '-e', statement], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(result.stderr);
  return result.stdout;
}

const receiver = http.createServer((request, response) => request.resume().on('end', () => response.end('ok')));
await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
const hooks = `http://127.0.0.1:${receiver.address().port}/`;

// Not spawnSync: the receiver answers from this process's event loop.
async function run(label, now) {
  const started = process.hrtime.bigint();
  const child = spawn('/usr/bin/time', ['-f', '%M', process.execPath, bin, 'process-expirations', '--now', now, '--json'], { cwd: dir });
  const result = { stdout: '', stderr: '', status: null };
  child.stdout.on('data', (chunk) => (result.stdout += chunk));
  child.stderr.on('data', (chunk) => (result.stderr += chunk));
  result.status = await new Promise((resolve) => child.on('close', resolve));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (result.status !== 0) throw new Error(`${label}: exit ${result.status}\n${result.stderr}`);
  const summary = JSON.parse(result.stdout);
  const rssMb = Number(result.stderr.trim().split('\n').at(-1)) / 1024;
  console.log(
    `${label.padEnd(44)} ${seconds.toFixed(2)} s  peak RSS ${rssMb.toFixed(0)} MB  recorded ${summary.recorded}  delivered ${summary.delivered}  marked expired ${summary.markedExpired}`,
  );
}

try {
  sql(`create database ${database}`);
  const db = `use ${database};`;
  sql(`${db}
    create table lm_products (id bigint unsigned auto_increment primary key, reference_id varchar(50) not null unique, name varchar(255) not null, is_active tinyint(1) not null default 1, created_at timestamp null, updated_at timestamp null) engine=InnoDB default charset=utf8mb4 collate=utf8mb4_unicode_ci;
    create table lm_licenses (id bigint unsigned auto_increment primary key, product_reference_id varchar(50) not null, license_code varchar(255) not null unique, type varchar(50) null, customer_id varchar(255) null, email varchar(255) null, expires_at date null, updates_until date null, support_until date null, is_valid tinyint(1) not null default 1, created_at timestamp null, updated_at timestamp null, index (product_reference_id)) engine=InnoDB default charset=utf8mb4 collate=utf8mb4_unicode_ci;
    create table settings (id bigint unsigned auto_increment primary key, \`key\` varchar(255) not null unique, value text null, created_at timestamp null, updated_at timestamp null);
    insert into lm_products (reference_id, name) select concat('PROD-', seq), concat('Product ', seq) from seq_1_to_50;
    insert into lm_licenses (product_reference_id, license_code, customer_id, email, expires_at, updates_until, is_valid)
      select concat('PROD-', 1 + seq % 50), concat('LIC-', lpad(seq, 8, '0')), concat('CUST-', seq), concat('c', seq, '@example.com'),
        if(seq % 10 = 0, null, date_add('2020-01-01', interval seq % 3653 day)), if(seq % 3 = 0, date_add('2020-01-01', interval (seq * 7) % 3653 day), null), if(seq % 97 = 0, 0, 1)
      from seq_1_to_${rows};
    insert into settings (\`key\`, value) values ('lm_enable_webhooks', '1'), ('lm_webhook_url', '${hooks}'), ('lm_expiration_warning_days', '7,1');`);
  const url = `${server.protocol}//${server.username ? `${server.username}${server.password ? `:${server.password}` : ''}@` : ''}${server.host}/${database}`;
  fs.writeFileSync(path.join(dir, 'license-manager.config.json'), JSON.stringify({ database: { url, tablePrefix: 'lmw_' }, licenses: { source: 'botble' } }));
  if (spawnSync(process.execPath, [bin, 'migrate'], { cwd: dir }).status !== 0) throw new Error('migrate failed');
  console.log(`${rows} Botble licenses on MariaDB`);
  await run('first run (records every old expiry)', '2025-01-23T10:00:00Z');
  await run('next day, no index on expires_at', '2025-01-24T10:00:00Z');
  sql(
    `${db} create index lm_licenses_expires_at_index on lm_licenses (expires_at); create index lm_licenses_updates_until_index on lm_licenses (updates_until);`,
  );
  await run('day after, with the two indexes', '2025-01-25T10:00:00Z');
} finally {
  sql(`drop database if exists ${database}`);
  receiver.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
