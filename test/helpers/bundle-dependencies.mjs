// Part of `npm test` (pretest, after the build): bundles kysely and zod into one ES module each in
// dist/test-dependencies/, which jest maps `kysely` and `zod` to (moduleNameMapper in package.json). Jest loads a test
// file's modules afresh for each test file, through its own resolver and module registry, so a package of many files
// is paid for in every file that uses it. Measured in a jest test file: kysely's 263 files cost 280 to 340 ms, bundled
// 60 to 90 ms (about eighty files open a database); zod's 95 files about 120 ms, bundled 35 to 55 ms (most files read a
// config). zod is bundled with the CLI bundle's own plugin (English messages only), so the sources under test load it
// as the CLI does. mysql2 was tried too and left out: bundled it loaded slower (its lazy parts became eager).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { zodEnglishOnly } from '../../dist/scripts/bundle-plugins.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
for (const name of ['kysely', 'zod']) {
  await build({
    absWorkingDir: root,
    stdin: { contents: `export * from '${name}';`, resolveDir: root },
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    plugins: [zodEnglishOnly],
    outfile: `dist/test-dependencies/${name}.js`,
    logLevel: 'warning',
  });
}
