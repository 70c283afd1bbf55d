import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, test } from '@jest/globals';
import { BIN } from '../helpers/cli.js';
import { readmeBlocks, ROOT, runScript, scriptOf, type Skip } from '../helpers/readme.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { tempDir } from '../helpers/temp-dir.js';

// The README's commands, run as written. What is changed, and only this:
// - sudo is dropped (`sudo -u license-manager cmd` runs cmd as the test's user);
// - the production paths /opt/…, /etc/…, /var/… get a temporary root directory in front, with
//   <root>/opt/license-manager a link to this project (already installed and built);
// - `npx license-manager` runs this project's bin/ (what npx resolves to after `npm install`);
// - the example receiver URLs (https://licenses.example.com/webhook, http://127.0.0.1:8000/) point at a
//   receiver the test starts on a free port.
const SKIP: Skip[] = [
  { pattern: /\b(useradd|chown)\b/, why: 'creates a system user / changes owners: needs root' },
  { pattern: /\bgit clone\b/, why: 'fetches from the network' },
  { pattern: /\bnpm (ci|install|test)\b/, why: 'installing takes minutes and `npm test` is this suite' },
  { pattern: /^npm run/, why: 'rebuilds dist/ under the running suite, or benchmarks for minutes' },
  { pattern: /\b(systemctl|crontab|journalctl)\b/, why: 'needs systemd / a cron daemon' },
  { pattern: /^docker /, why: 'needs a container runtime' },
  { pattern: /^ngrok/, why: 'needs an ngrok account and the network' },
  { pattern: / listen( |$)/, why: 'a receiver that runs until Ctrl-C (the tests of listen cover it)' },
  { pattern: / verify .*5d41402a\.\.\./, why: 'a placeholder signature and body file' },
  { pattern: / deliveries retry 41 42/, why: 'placeholder delivery ids' },
];

const servers: Receiver[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

function dropSudo(line: string): string {
  return line.replace(/^sudo (-u \S+ )?/, '').replace(/ && sudo /g, ' && ');
}

describe('README.md', () => {
  const blocks = readmeBlocks();

  test('"Production set-up", followed literally under a temporary root, delivers a due license, and the crontab line runs as written', async () => {
    const production = blocks.filter((block) => block.section === 'Production set-up');
    expect(production.length).toBeGreaterThan(3);
    const root = tempDir();
    fs.mkdirSync(path.join(root, 'opt'));
    fs.symlinkSync(ROOT, path.join(root, 'opt', 'license-manager'));
    const receiver = await startReceiver();
    servers.push(receiver);
    const rewrite = (line: string) =>
      dropSudo(line)
        .replace(/(^|[\s"'=:])\/(opt|etc|var)\//g, `$1${root}/$2/`)
        .replaceAll('https://licenses.example.com/webhook', receiver.url);

    // Your export: one license that expires tomorrow, so the first run has something to send.
    const home = path.join(root, 'home');
    fs.mkdirSync(home);
    const expiresAt = new Date(Date.now() + 30 * 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z');
    fs.writeFileSync(path.join(home, 'licenses.csv'), `license_code,product_id,email,expires_at\nPROD-0001,P-1,buyer@example.com,${expiresAt}\n`);

    const sh = scriptOf(
      production.filter((block) => block.language === 'sh').flatMap((block) => block.lines),
      SKIP,
      rewrite,
    );
    expect(sh.skipped.some((line) => line.startsWith('sudo mkdir'))).toBe(false);
    const run = await runScript(sh.script, { cwd: home });
    expect({ code: run.code, stderr: run.stderr.split('\n').filter((line) => !line.startsWith('+ ')) }).toEqual({ code: 0, stderr: [''] });

    // Where the README says: the config in /etc, the database in /var/lib, nothing beside the config.
    expect(fs.readdirSync(path.join(root, 'etc', 'license-manager'))).toEqual(['config.json']);
    expect(fs.existsSync(path.join(root, 'var', 'lib', 'license-manager', 'db.sqlite'))).toBe(true);

    // The secret --reveal printed is the one the deliveries are signed with.
    const secret = /^[0-9a-f]{64}$/m.exec(run.stdout)?.[0];
    expect(secret).toBeDefined();
    const ofTheLicense = () => receiver.requests.filter((request) => JSON.parse(request.body.toString()).payload.license_code === 'PROD-0001');
    const delivered = ofTheLicense();
    expect(delivered).toHaveLength(1);
    expect(delivered[0]!.headers['x-webhook-signature']).toBe(createHmac('sha256', secret!).update(delivered[0]!.body).digest('hex'));
    expect(run.stdout).toMatch(/OK: the last run finished at .* and succeeded/);

    // The crontab lines as written (minus the schedule): silent, exit 0, nothing sent twice.
    const cron = production.filter((block) => block.language === 'cron').flatMap((block) => block.lines.filter((line) => line.trim() !== ''));
    expect(cron).toHaveLength(2);
    for (const line of cron) {
      const command = line.trim().split(/\s+/).slice(5).join(' ');
      expect(command).toContain('/opt/license-manager/bin/license-manager.js -c /etc/license-manager/config.json');
      const scheduled = await runScript(rewrite(command), { cwd: '/' });
      expect(scheduled).toEqual({ code: 0, stdout: '', stderr: '' });
    }
    expect(ofTheLicense()).toHaveLength(1);

    // The systemd unit runs the same command as the crontab's first line.
    const unit = production.find((block) => block.language === 'ini' && block.lines.some((line) => line.startsWith('ExecStart=')))!;
    expect(unit.lines.find((line) => line.startsWith('ExecStart='))!.slice('ExecStart='.length)).toBe(cron[0]!.trim().split(/\s+/).slice(5).join(' '));
  }, 90_000);

  test('every other sh block runs as written on one machine (receivers on a free port, skips listed in SKIP)', async () => {
    const receiver = await startReceiver();
    servers.push(receiver);
    // The project folder's own files, in a copy: the walkthrough's database lands beside the config.
    const dir = tempDir();
    fs.copyFileSync(path.join(ROOT, 'license-manager.config.json'), path.join(dir, 'license-manager.config.json'));
    fs.cpSync(path.join(ROOT, 'examples'), path.join(dir, 'examples'), { recursive: true });
    const rewrite = (line: string) =>
      line.replaceAll('npx license-manager', `node ${BIN}`).replaceAll('http://127.0.0.1:8000/webhook', receiver.url).replaceAll('http://127.0.0.1:8000/', receiver.url);
    const lines = blocks.filter((block) => block.language === 'sh' && block.section !== 'Production set-up').flatMap((block) => block.lines);
    const sh = scriptOf(lines, SKIP, rewrite);
    const ran = sh.script.split('\n').filter((line) => !line.startsWith('echo ')).length;
    expect(ran).toBeGreaterThan(15);
    const run = await runScript(sh.script, { cwd: dir, timeoutMs: 120_000 });
    const failed = run.stderr.split('\n').filter((line) => line.startsWith('+ ')).pop();
    expect({ code: run.code, lastCommand: failed, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, lastCommand: failed, stderr: '' });
    // The walkthrough's receiver got the test events and the due ones, at the path the examples serve.
    expect(receiver.requests.length).toBeGreaterThan(5);
    expect(new Set(receiver.requests.map((request) => request.url))).toEqual(new Set(['/webhook']));
  }, 150_000);

  test('what an operator must know before running things is said where they run them', () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    // A second `listen` on the same port fails with EADDRINUSE: the line that starts it says to stop the first.
    for (const section of new Set(blocks.map((block) => block.section))) {
      const listens = blocks
        .filter((block) => block.section === section && block.language === 'sh')
        .flatMap((block) => block.lines)
        .filter((line) => /license-manager listen( |$)/.test(line.replace(/(^|\s+)#.*$/, '')));
      const port = (line: string) => /--port (\d+)/.exec(line)?.[1] ?? '8000';
      listens.forEach((line, index) => {
        if (listens.slice(0, index).some((earlier) => port(earlier) === port(line))) expect(line).toMatch(/#.*stop the first/);
      });
    }
    // `npm test`: how long, what it creates on local servers, and how to point it elsewhere.
    const setUp = readme.slice(readme.indexOf('## Set-up'), readme.indexOf('## Five-minute walkthrough'));
    expect(setUp).toMatch(/npm test .*about \d+ minutes/);
    expect(setUp).toMatch(/creates\s+databases `lm_test_<random>` and a few users/);
    const variables = [...fs.readFileSync(path.join(ROOT, 'test/helpers/global-setup.cjs'), 'utf8').matchAll(/variable: '(\w+)'/g)].map((match) => match[1]!);
    expect(variables.length).toBeGreaterThan(1);
    for (const variable of variables) expect(setUp).toContain(variable);
    // `status` exits 0, 1, 2 and 3; the Monitoring table has a row for each.
    const monitoring = readme.slice(readme.indexOf('### Monitoring'), readme.indexOf('## Commands'));
    expect([...monitoring.matchAll(/^\| (\d) \|/gm)].map((match) => Number(match[1])).sort((a, b) => a - b)).toEqual([0, 1, 2, 3]);
    // Production step 1 ends without the development tools.
    const install = blocks.find((block) => block.section === 'Production set-up' && block.lines.some((line) => line.includes('npm ci')))!;
    expect(install.lines.find((line) => line.includes('npm ci'))).toMatch(/npm run build && sudo npm prune --omit=dev --omit=optional$/);
  });
});
