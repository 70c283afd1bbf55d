/**
 * `npm run demo`: the whole job on the embedded SQLite default, with nothing to set up. Loads the sample
 * licenses into a fresh database in a temp dir, starts a receiver on 127.0.0.1 that checks signatures
 * (and fails the first try of one event, to show a retry), runs process-expirations twice, and shows
 * what arrived and what the delivery log holds.
 */
import { spawn } from 'node:child_process';
import { createHmac, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = path.join(root, 'bin', 'license-manager.js');
const sample = path.join(root, 'examples', 'licenses.csv');
const SECRET = 'demo-secret';
// The sample licenses are dated around this instant; --now makes the demo give the same result any day.
const NOW = '2025-01-15T08:00:00Z';

interface Arrival {
  event: string;
  id: string;
  license: string;
  signatureValid: boolean;
  answered: number;
}

async function main(): Promise<void> {
  // Each run used to leave its folder in the temp dir; it is removed unless asked to stay.
  const keep = process.argv.slice(2).includes('--keep');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'license-manager-demo-'));
  const env = { ...process.env, LICENSE_MANAGER_DB: path.join(dir, 'demo.sqlite'), NO_COLOR: '1' };
  const arrivals: Arrival[] = [];
  let failedOnce = false;

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const expected = createHmac('sha256', SECRET).update(body).digest('hex');
      const given = String(req.headers['x-webhook-signature'] ?? '');
      const signatureValid = given.length === expected.length && timingSafeEqual(Buffer.from(given), Buffer.from(expected));
      const event = String(req.headers['x-webhook-event']);
      const status = event === 'license.expired' && !failedOnce ? 503 : 200;
      if (status === 503) failedOnce = true;
      const license = (JSON.parse(body.toString('utf8')) as { payload: { license_code: string } }).payload.license_code;
      arrivals.push({ event, id: String(req.headers['x-webhook-id']), license, signatureValid, answered: status });
      res.writeHead(signatureValid ? status : 401).end(status === 200 ? 'OK' : 'try again');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhook`;

  const cli = (...args: string[]) =>
    new Promise<number>((resolve, reject) => {
      process.stdout.write(`\n$ license-manager ${args.join(' ')}\n`);
      const child = spawn(process.execPath, [bin, ...args], { cwd: dir, env, stdio: ['ignore', 'inherit', 'inherit'] });
      child.on('error', reject);
      child.on('close', (code) => resolve(code ?? 1));
    });

  try {
    console.log(`Demo database: ${env.LICENSE_MANAGER_DB}`);
    console.log(`Local receiver: ${url} (checks X-Webhook-Signature with the secret "${SECRET}")`);
    await cli('licenses', 'import', sample);
    await cli('settings', 'set', 'webhook-url', url);
    await cli('settings', 'set', 'webhook-secret', SECRET);
    await cli('settings', 'set', 'webhooks-enabled', 'true');
    await cli('process-expirations', '--now', NOW, '--dry-run');
    const code = await cli('process-expirations', '--now', NOW);

    console.log('\nWhat the receiver got:');
    for (const arrival of arrivals) {
      console.log(
        `  ${arrival.event.padEnd(31)} ${arrival.license}  id ${arrival.id}  signature ${arrival.signatureValid ? 'valid' : 'INVALID'}  answered ${arrival.answered}`,
      );
    }
    await cli('deliveries', 'list');
    console.log('\nA second run at the same instant finds nothing new:');
    await cli('process-expirations', '--now', NOW);

    const allValid = arrivals.length > 0 && arrivals.every((arrival) => arrival.signatureValid);
    console.log(
      `\nDemo ${code === 0 && allValid ? 'finished' : 'FAILED'}: ${arrivals.length} requests, all signatures ${allValid ? 'valid' : 'NOT valid'}, exit code ${code}.`,
    );
    if (keep)
      console.log(`The database stays at ${env.LICENSE_MANAGER_DB}; try: LICENSE_MANAGER_DB=${env.LICENSE_MANAGER_DB} npx license-manager deliveries show 1`);
    else console.log('The demo database was removed; "npm run demo -- --keep" keeps it to look around.');
    process.exitCode = code === 0 && allValid ? 0 : 1;
  } finally {
    server.close();
    if (!keep) fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
