#!/usr/bin/env node
// Measures `licenses import` on large generated files: wall time and peak RSS of the built CLI.
// Usage: npm run build && node scripts/measure-import.mjs [rows=1000000] [csv,ndjson,json]
// Needs GNU time (/usr/bin/time) for the peak RSS. Files go to a temp folder that is removed afterwards.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../bin/license-manager.js');
const rows = Number(process.argv[2] ?? 1_000_000);
const formats = (process.argv[3] ?? 'csv,ndjson,json').split(',');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'license-manager-measure-'));

function row(index) {
  return {
    license_code: `LIC-${String(index).padStart(8, '0')}`,
    product_id: `PROD-${index % 50}`,
    product_name: 'Theme, Pro',
    customer_id: `CUST-${index}`,
    email: `customer${index}@example.com`,
    status: 'active',
    expires_at: `2026-${String((index % 12) + 1).padStart(2, '0')}-15T08:00:00Z`,
    updates_until: '2026-01-01',
  };
}

function write(format) {
  const file = path.join(dir, `licenses.${format}`);
  const out = fs.openSync(file, 'w');
  const columns = Object.keys(row(0));
  let buffer = format === 'csv' ? `${columns.join(',')}\n` : format === 'json' ? '[\n' : '';
  for (let index = 0; index < rows; index += 1) {
    const value = row(index);
    if (format === 'csv') buffer += `${columns.map((column) => (value[column].includes(',') ? `"${value[column]}"` : value[column])).join(',')}\n`;
    else buffer += `${JSON.stringify(value)}${format === 'json' && index < rows - 1 ? ',' : ''}\n`;
    if (buffer.length > 1 << 20) {
      fs.writeSync(out, buffer);
      buffer = '';
    }
  }
  fs.writeSync(out, buffer + (format === 'json' ? ']\n' : ''));
  fs.closeSync(out);
  return file;
}

try {
  for (const format of formats) {
    const file = write(format);
    const size = fs.statSync(file).size;
    const env = { ...process.env, LICENSE_MANAGER_DB: path.join(dir, `${format}.sqlite`) };
    for (const pass of ['new', 'again']) {
      const started = process.hrtime.bigint();
      const run = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, bin, 'licenses', 'import', file], { cwd: dir, env, encoding: 'utf8' });
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const peakKb = Number(run.stderr.trim().split('\n').at(-1));
      console.log(
        `${format.padEnd(6)} ${pass.padEnd(5)} ${rows} rows, ${(size / 1e6).toFixed(0)} MB: exit ${run.status}, ${seconds.toFixed(1)} s, peak RSS ${(peakKb / 1024).toFixed(0)} MB  ${run.stdout.trim()}`,
      );
      if (run.status !== 0) console.log(run.stderr);
    }
    fs.rmSync(file);
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
