import { spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, test } from '@jest/globals';
import { BIN, runCli, runCommand } from '../helpers/cli.js';
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
  return line
    .replace(/^sudo (-u \S+ )?/, '')
    .replace(/ && sudo /g, ' && ')
    .replace(/ \| sudo (-u \S+ )?/g, ' | ');
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
      line
        .replaceAll('npx license-manager', `node ${BIN}`)
        .replaceAll('http://127.0.0.1:8000/webhook', receiver.url)
        .replaceAll('http://127.0.0.1:8000/', receiver.url);
    const lines = blocks.filter((block) => block.language === 'sh' && block.section !== 'Production set-up').flatMap((block) => block.lines);
    const sh = scriptOf(lines, SKIP, rewrite);
    const ran = sh.script.split('\n').filter((line) => !line.startsWith('echo ')).length;
    expect(ran).toBeGreaterThan(15);
    const run = await runScript(sh.script, { cwd: dir, timeoutMs: 120_000 });
    const failed = run.stderr
      .split('\n')
      .filter((line) => line.startsWith('+ '))
      .pop();
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
    // `status` exits 0, 1, 2, 3 and 4; the Monitoring table has a row for each.
    const monitoring = readme.slice(readme.indexOf('### Monitoring'), readme.indexOf('## Commands'));
    expect([...monitoring.matchAll(/^\| (\d) \|/gm)].map((match) => Number(match[1])).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4]);
    // Production step 1 ends without the development tools.
    const install = blocks.find((block) => block.section === 'Production set-up' && block.lines.some((line) => line.includes('npm ci')))!;
    expect(install.lines.find((line) => line.includes('npm ci'))).toMatch(/npm run build && sudo npm prune --omit=dev --omit=optional$/);
  });
});

/** The production section's systemd units, by the file name the README gives each. */
function systemdUnits(): Map<string, string[]> {
  const blocks = readmeBlocks().filter((block) => block.section === 'Production set-up' && block.language === 'ini');
  const service = blocks.find((block) => block.lines.includes('[Service]') && block.lines.some((line) => line.startsWith('OnFailure=')));
  const timer = blocks.find((block) => block.lines.includes('[Timer]'));
  const onFailure = service?.lines.find((line) => line.startsWith('OnFailure='))?.slice('OnFailure='.length);
  const failed = blocks.find((block) => block !== service && block.lines.includes('[Service]'));
  expect({ service: Boolean(service), timer: Boolean(timer), onFailure, failed: Boolean(failed) }).toEqual({
    service: true,
    timer: true,
    onFailure: expect.stringMatching(/\.service$/),
    failed: true,
  });
  const units = new Map([
    ['license-manager.service', service!.lines],
    ['license-manager.timer', timer!.lines],
    [onFailure!, failed!.lines],
  ]);
  // The README names where each goes.
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  for (const name of units.keys()) expect(readme).toContain(`/etc/systemd/system/${name}`);
  return units;
}

/** `Key=value` lines of a unit, the last one winning as in systemd (comments and sections left out). */
function directives(lines: string[]): Map<string, string> {
  return new Map(
    lines.filter((line) => /^[A-Za-z]+=/.test(line)).map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)] as [string, string]),
  );
}

/** The JSON of the config file that "Production set-up" writes with tee. */
function productionConfig(): { database: { filename: string } } {
  const lines = readmeBlocks().find(
    (block) => block.section === 'Production set-up' && block.lines.some((line) => line.includes('tee /etc/license-manager/config.json')),
  )!.lines;
  const start = lines.findIndex((line) => line.includes("<<'EOF'"));
  return JSON.parse(lines.slice(start + 1, lines.indexOf('EOF', start)).join('\n')) as { database: { filename: string } };
}

describe('README.md "Production set-up": the systemd units and the container', () => {
  const analyze = spawnSync('systemd-analyze', ['--version']).status === 0;
  const verifyName = 'systemd-analyze verify accepts the three units with no warning (every directive exists, the calendar and zone parse)';
  (analyze ? test : test.skip)(analyze ? verifyName : `${verifyName}: skipped, systemd-analyze is not installed (apt-get install systemd)`, async () => {
    const dir = tempDir();
    const files = [...systemdUnits()].map(([name, lines]) => {
      const file = path.join(dir, name);
      // systemd checks that ExecStart's program exists: on a machine whose node is elsewhere, use that one.
      const text = lines.join('\n').replaceAll('/usr/bin/node ', fs.existsSync('/usr/bin/node') ? '/usr/bin/node ' : `${process.execPath} `);
      fs.writeFileSync(file, `${text}\n`);
      return file;
    });
    const verified = await runCommand('systemd-analyze', ['verify', '--man=no', ...files], { cwd: dir });
    expect({ code: verified.code, stderr: verified.stderr, stdout: verified.stdout }).toEqual({ code: 0, stderr: '', stdout: '' });
  });

  test('the unit is hardened, bounded in time, has OnFailure=, writes only the database folder; the timer names a zone, explained', () => {
    const units = systemdUnits();
    const service = directives(units.get('license-manager.service')!);
    expect(Object.fromEntries(['NoNewPrivileges', 'ProtectSystem', 'PrivateTmp', 'ProtectHome', 'Type'].map((key) => [key, service.get(key)]))).toEqual({
      NoNewPrivileges: 'yes',
      ProtectSystem: 'strict',
      PrivateTmp: 'yes',
      ProtectHome: 'yes',
      Type: 'oneshot',
    });
    expect(service.get('TimeoutStartSec')).toMatch(/^\d+(h|min)$/);
    expect(service.get('OnFailure')).toBeDefined();
    // What the job needs: its database folder writable, TCP to the receiver and a server, and a JIT.
    const databaseFolder = path.dirname(productionConfig().database.filename);
    expect(service.get('ReadWritePaths')?.split(/\s+/)).toContain(databaseFolder);
    expect(service.get('RestrictAddressFamilies')?.split(/\s+/)).toEqual(expect.arrayContaining(['AF_INET', 'AF_INET6', 'AF_UNIX']));
    expect(service.has('MemoryDenyWriteExecute')).toBe(false);
    const timer = directives(units.get('license-manager.timer')!);
    const calendar = /^\*-\*-\* (\d\d:\d\d:\d\d) (\S+)$/.exec(timer.get('OnCalendar') ?? '');
    expect(calendar?.[1]).toBe('08:00:00');
    expect(() => new Intl.DateTimeFormat('en', { timeZone: calendar![2]! })).not.toThrow();
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    expect(readme).toContain('The zone at the end of `OnCalendar=`');
    expect(readme).toContain('Leave out `MemoryDenyWriteExecute=`');
  });

  const unshare = process.platform === 'linux' && spawnSync('unshare', ['--mount', '--propagation', 'private', 'mount', '--bind', '/', '/']).status === 0;
  const confinedName = "the unit's job runs with only its ReadWritePaths writable (ProtectSystem=strict, emulated with a mount namespace)";
  (unshare ? test : test.skip)(
    unshare ? confinedName : `${confinedName}: skipped, making a mount namespace needs root here`,
    async () => {
      const receiver = await startReceiver();
      servers.push(receiver);
      const root = tempDir();
      fs.mkdirSync(path.join(root, 'opt'));
      fs.symlinkSync(ROOT, path.join(root, 'opt', 'license-manager'));
      const under = (text: string) => text.replace(/(^|[\s"'=:])\/(opt|etc|var)\//g, `$1${root}/$2/`);
      const service = directives(systemdUnits().get('license-manager.service')!);
      const writable = service.get('ReadWritePaths')!.split(/\s+/).map(under);
      for (const folder of [...writable, `${root}/etc/license-manager`, path.dirname(under(productionConfig().database.filename))])
        fs.mkdirSync(folder, { recursive: true });
      const config = `${root}/etc/license-manager/config.json`;
      fs.writeFileSync(config, under(JSON.stringify(productionConfig())));
      const expiresAt = new Date(Date.now() + 30 * 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z');
      fs.writeFileSync(path.join(root, 'licenses.csv'), `license_code,expires_at\nUNIT-0001,${expiresAt}\n`);
      for (const args of [
        ['licenses', 'import', 'licenses.csv'],
        ['settings', 'set', 'webhook-url', receiver.url],
        ['settings', 'set', 'webhooks-enabled', 'true'],
      ]) {
        expect((await runCli(['-c', config, ...args], { cwd: root })).code).toBe(0);
      }
      // Everything the job reads read-only (its release folder, its config), the ReadWritePaths writable; run from /, as systemd does.
      const confine = [
        'set -e',
        ...writable.map((folder) => `mount --bind '${folder}' '${folder}'`),
        `mount --rbind '${root}' '${root}' && mount -o remount,bind,ro '${root}'`,
        `mount --rbind '${ROOT}' '${ROOT}' && mount -o remount,bind,ro '${ROOT}'`,
        `touch '${root}/etc/license-manager/probe' 2>/dev/null && { echo 'the config folder is writable: the emulation failed' >&2; exit 99; }`,
        `exec ${under(service.get('ExecStart')!)}`,
      ].join('\n');
      const run = await runCommand('unshare', ['--mount', '--propagation', 'private', 'bash', '--norc', '-c', confine], { cwd: '/', timeoutMs: 60_000 });
      expect({ code: run.code, stdout: run.stdout, stderr: run.stderr }).toEqual({ code: 0, stdout: '', stderr: '' });
      expect(receiver.requests.map((request) => JSON.parse(request.body.toString()).payload.license_code)).toEqual(['UNIT-0001']);
    },
    90_000,
  );

  test('the container recipe builds its native module in the image, its COPY list builds the tool, and 127.0.0.1 is explained (docker itself cannot run here)', async () => {
    const dockerfile = fs.readFileSync(path.join(ROOT, 'examples', 'Dockerfile'), 'utf8').split('\n');
    const index = (pattern: RegExp) => dockerfile.findIndex((line) => pattern.test(line));
    // npm ci inside the image, after the lockfile and before the sources; the same Debian Node image in both stages.
    expect(index(/^COPY package\.json package-lock\.json \.\/$/)).toBeGreaterThan(-1);
    expect(index(/^RUN npm ci$/)).toBeGreaterThan(index(/^COPY package\.json package-lock\.json/));
    expect(index(/^RUN npm ci$/)).toBeLessThan(index(/^COPY src /));
    expect(new Set(dockerfile.filter((line) => line.startsWith('FROM ')).map((line) => line.split(/\s+/)[1]))).toEqual(new Set(['node:20-bookworm-slim']));
    // Nothing from the host's node_modules: no COPY of the whole folder.
    const copies = dockerfile.filter((line) => line.startsWith('COPY ') && !line.startsWith('COPY --from'));
    expect(copies.filter((line) => /^COPY \.\s/.test(line) || line.includes('node_modules'))).toEqual([]);

    // What the build stage copies is enough to build: the same files in a fresh folder, this project's node_modules linked in.
    const dir = tempDir();
    for (const line of copies) {
      const parts = line.split(/\s+/).slice(1);
      const target = path.join(dir, parts.pop()!);
      for (const source of parts) {
        fs.cpSync(path.join(ROOT, source), parts.length > 1 || target.endsWith('/') ? path.join(target, source) : target, { recursive: true });
      }
    }
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
    const build = await runCommand('npm', ['run', 'build'], { cwd: dir, timeoutMs: 120_000 });
    expect({ code: build.code, stderr: build.stderr }).toEqual({ code: 0, stderr: '' });
    // The final stage keeps package.json, node_modules, bin and dist: the tool runs from those.
    const kept = dockerfile.filter((line) => line.startsWith('COPY --from=build')).map((line) => line.split(/\s+/)[2]!.replace('/app/', ''));
    expect(new Set(kept)).toEqual(new Set(['package.json', 'node_modules', 'bin', 'dist']));
    for (const entry of fs.readdirSync(dir)) if (!kept.includes(entry)) fs.rmSync(path.join(dir, entry), { recursive: true, force: true });
    const version = await runCommand(process.execPath, [path.join(dir, 'bin', 'license-manager.js'), '--version'], { cwd: dir });
    expect(version.stdout.trim()).toBe(JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version);

    // The README's commands build that image and never mount the release folder into a container.
    const docker = readmeBlocks()
      .filter((block) => block.section === 'Production set-up')
      .flatMap((block) => block.lines.filter((line) => line.startsWith('docker ')));
    expect(docker[0]).toBe('docker build -f /opt/license-manager/examples/Dockerfile -t license-manager /opt/license-manager');
    expect(docker.filter((line) => line.includes('-v /opt/license-manager'))).toEqual([]);
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    expect(readme).toContain('Inside a container, `127.0.0.1` is the\ncontainer itself, not the host');
    expect(readme).toContain('--add-host=host.docker.internal:host-gateway');
  }, 150_000);

  test('the README calls listen a development tool and documents --secret-env, settings set <key> - and listen --json', () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    expect(readme).toContain('`listen` is a development tool, not a production receiver');
    expect(readme).toMatch(/`--secret-env NAME` takes the secret from the\s+environment variable NAME/);
    expect(readme).toContain(
      '| sudo -u license-manager /opt/license-manager/bin/license-manager.js -c /etc/license-manager/config.json settings set webhook-secret -',
    );
    expect(readme).toContain('{"listening":"http://127.0.0.1:8000/","signaturesChecked":true}');
  });
});
