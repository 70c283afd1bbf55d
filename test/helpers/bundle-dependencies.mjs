// Part of `npm test` (pretest): bundles kysely into one ES module, dist/test-dependencies/kysely.js, which jest maps
// `kysely` to (moduleNameMapper in package.json). Jest loads a test file's modules afresh for each test file, through
// its own resolver and module registry: kysely's 263 files cost 280 to 340 ms of every test file that opens a database
// (about eighty), and the one bundled file 60 to 90 ms. The code is kysely's own, as the CLI's bundle (scripts/bundle.ts)
// also carries it.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
await build({
  absWorkingDir: root,
  stdin: { contents: "export * from 'kysely';", resolveDir: root },
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  outfile: 'dist/test-dependencies/kysely.js',
  logLevel: 'warning',
});
