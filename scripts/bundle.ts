/**
 * The second step of `npm run build`: bundles the compiled CLI (dist/src/cli/main.js) into a few ES modules in
 * dist/cli/, which is what bin/license-manager.js loads and `npm pack` ships.
 *
 * Why: Node resolves, reads and compiles every module file on its own. A nothing-due run loaded about 500 of
 * them (263 from kysely, 95 from zod, 123 of ours), and finding and compiling them cost more than the run's
 * work. Bundled, the same run loads about ten files. Code splitting keeps every `import()` of the sources lazy,
 * so `--help` still loads no database, schema or HTTP code.
 *
 * Left outside the bundle, loaded from node_modules as before: the native SQLite binding, the two server
 * drivers (loaded only for a server database), cosmiconfig (it loads JS config files through its own
 * `import()`), and OpenTelemetry (loaded only when tracing is on).
 *
 * Tests run the sources (in-process) and the bundle (every test that starts bin/license-manager.js).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { commanderLazyChildProcess, ofetchCreateFetchOnly, zodEnglishOnly } from './bundle-plugins.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

// Chunk names carry a content hash: the last build's files go first, or they would pile up (and ship).
fs.rmSync(path.join(root, 'dist/cli'), { recursive: true, force: true });
await build({
  absWorkingDir: root,
  entryPoints: { main: 'dist/src/cli/main.js' },
  outdir: 'dist/cli',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['better-sqlite3', 'pg', 'mysql2', 'cosmiconfig', '@opentelemetry/*'],
  // CommonJS packages in the bundle (commander, undici) call require() for Node's built-in modules: an ES
  // module has no require of its own, so each output file gets one.
  banner: { js: "import { createRequire as createRequireForBundle } from 'node:module'; const require = createRequireForBundle(import.meta.url);" },
  plugins: [ofetchCreateFetchOnly, zodEnglishOnly, commanderLazyChildProcess],
  // Less for Node to read and parse at every start-up (a nothing-due run parses about 1.5 MB). Identifiers are not
  // minified, so stack traces still name the functions (a few that collide across modules get a suffix, _Command,
  // updateFromValues2); they point into dist/cli's chunks, not the sources. CommonJS modules in the bundle run in
  // strict mode.
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'warning',
});
