import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from '@jest/globals';
import { childEnv } from '../helpers/cli.js';
import { tempDir } from '../helpers/temp-dir.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function run(command: string, args: string[], cwd: string): string {
  return execFileSync(command, args, { cwd, env: childEnv(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
}

describe('the published package', () => {
  test('npm pack ships the CLI and nothing else; installed into an empty folder it runs', () => {
    // prepack builds dist/ (a release from a clean checkout has none): said here, and not run again under the suite,
    // which runs after `npm run build` (a second tsc took seconds of both cores and rewrote dist/ under the CLI tests
    // running beside this one).
    const scripts = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    expect(scripts.prepack).toBe('npm run build');
    const out = tempDir();
    const [packed] = JSON.parse(run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', out], ROOT)) as Array<{
      filename: string;
      files: Array<{ path: string }>;
    }>;
    const files = packed!.files.map((file) => file.path);
    expect(files).toEqual(expect.arrayContaining(['LICENSE', 'README.md', 'package.json', 'bin/license-manager.js', 'dist/cli/main.js']));
    // The bundle only (scripts/bundle.ts): no compiled module tree beside it, no bench or demo scripts, no
    // source maps, no TypeScript sources, no tests.
    expect(files.filter((file) => /^(scripts|src|test)\/|\.map$|^dist\/(scripts|src|migrations)\//.test(file))).toEqual([]);

    const app = tempDir();
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
    // Dependencies come from the registry (or npm's cache); the native SQLite binding is compiled once per
    // machine, so it is copied from this checkout instead of compiled again (about 2 minutes).
    run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', path.join(out, packed!.filename)], app);
    fs.cpSync(path.join(ROOT, 'node_modules/better-sqlite3/build'), path.join(app, 'node_modules/better-sqlite3/build'), { recursive: true });

    const bin = path.join(app, 'node_modules/.bin/license-manager');
    const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(run(bin, ['--version'], app).trim()).toBe(manifest.version);
    fs.writeFileSync(path.join(app, 'licenses.csv'), 'license_code,expires_at\nPKG-1,2025-01-20T00:00:00Z\n');
    run(bin, ['licenses', 'import', 'licenses.csv'], app);
    const dryRun = JSON.parse(run(bin, ['process-expirations', '--now', '2025-01-15T08:00:00Z', '--dry-run', '--json'], app)) as {
      dueCounts: Record<string, number>;
    };
    expect(dryRun.dueCounts['license.expiring']).toBe(1);
  }, 180_000);

  test('the production install of README step 1 (npm ci, build, then prune) keeps no development package and runs', () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const prune = /sudo npm run build && sudo (npm prune [^\n`]*)/.exec(readme)?.[1];
    expect(prune).toBeDefined();
    // The release folder after `npm ci && npm run build`: this checkout, its build, and its node_modules
    // (hard links: pruning the copy unlinks files there and leaves this checkout's alone).
    const release = tempDir();
    fs.cpSync(ROOT, release, { recursive: true, filter: (source) => !/\/(node_modules|\.git)$/.test(source) });
    // The folder itself, where node_modules is a link to it (a worktree sharing a checkout's packages): cp -a would copy
    // the link, and the prune below would then remove the development packages of the folder the link points at.
    run('cp', ['-al', fs.realpathSync(path.join(ROOT, 'node_modules')), path.join(release, 'node_modules')], ROOT);
    run('sh', ['-c', `${prune!} --no-audit --no-fund --offline`], release);

    const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string; devDependencies: Record<string, string> };
    // What a runtime dependency needs stays (mysql2 depends on @types/node); every tool of the build goes.
    const runtime = new Set(
      run('npm', ['ls', '--omit=dev', '--all', '--parseable'], ROOT)
        .split('\n')
        .map((line) => line.split('/node_modules/').pop()!),
    );
    const left = Object.keys(manifest.devDependencies).filter((name) => fs.existsSync(path.join(release, 'node_modules', name)) && !runtime.has(name));
    expect(left).toEqual([]);
    for (const tool of ['typescript', 'jest', 'oxlint', 'knip', '@swc/core'])
      expect([tool, fs.existsSync(path.join(release, 'node_modules', tool))]).toEqual([tool, false]);
    expect(fs.existsSync(path.join(ROOT, 'node_modules/typescript/package.json'))).toBe(true);

    const bin = path.join(release, 'bin/license-manager.js');
    expect(run(process.execPath, [bin, '--version'], release).trim()).toBe(manifest.version);
    const app = tempDir();
    fs.writeFileSync(path.join(app, 'licenses.csv'), 'license_code,expires_at\nPKG-1,2025-01-20T00:00:00Z\n');
    run(process.execPath, [bin, 'licenses', 'import', 'licenses.csv'], app);
    const dryRun = JSON.parse(run(process.execPath, [bin, 'process-expirations', '--now', '2025-01-15T08:00:00Z', '--dry-run', '--json'], app)) as {
      dueCounts: Record<string, number>;
    };
    expect(dryRun.dueCounts['license.expiring']).toBe(1);
  }, 180_000);
});
