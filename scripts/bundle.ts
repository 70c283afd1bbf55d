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
import { build, type Plugin } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * ofetch's Node entry makes a default client at load time from Node's global fetch and Headers, and reading
 * globalThis.Headers loads Node's own copy of undici (about 30 ms). The CLI uses ofetch's createFetch only, with
 * a transport of its own (src/delivery/transport.ts), so in the bundle the entry is reduced to that export, taken
 * from the module the entry itself imports it from. An entry of another shape is bundled as it is.
 */
const ofetchCreateFetchOnly: Plugin = {
  name: 'ofetch-create-fetch-only',
  setup(context) {
    context.onLoad({ filter: /[\\/]node_modules[\\/]ofetch[\\/]dist[\\/]node\.mjs$/ }, (args) => {
      const source = fs.readFileSync(args.path, 'utf8');
      const shared = /^import \{ (\w+) as createFetch \} from '(\.\/shared\/[\w.-]+\.mjs)';$/m.exec(source);
      if (!shared) {
        console.warn(`scripts/bundle.ts: ${args.path} has changed shape; ofetch's default client is bundled as it is (Node's undici loads with it)`);
        return undefined;
      }
      return { contents: `export { ${shared[1]} as createFetch } from '${shared[2]}';\n`, loader: 'js', resolveDir: path.dirname(args.path) };
    });
  },
};

/**
 * zod's classic API exports every locale's error messages (`z.locales`, 64 of them, 340 KB that Node parses at
 * every start-up). The CLI uses none of them but English, which zod itself loads from its own module: in the
 * bundle, the locale index keeps only English.
 */
const zodEnglishOnly: Plugin = {
  name: 'zod-english-only',
  setup(context) {
    context.onLoad({ filter: /[\\/]node_modules[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, (args) => ({
      contents: "export { default as en } from './en.js';\n",
      loader: 'js',
      resolveDir: path.dirname(args.path),
    }));
  },
};

/**
 * commander requires node:child_process when it loads, for subcommands that are executables of their own (`git
 * foo` style), which the CLI does not have: loading it brings in net, streams and dgram, about 4 ms of every start-up,
 * `--help` and `--version` included. In the bundle, commander's `childProcess` loads the module the first time
 * `spawn` is called. A commander that uses any other member of it is bundled as it is.
 */
const commanderLazyChildProcess: Plugin = {
  name: 'commander-lazy-child-process',
  setup(context) {
    context.onLoad({ filter: /[\\/]node_modules[\\/]commander[\\/]lib[\\/]command\.js$/ }, (args) => {
      const source = fs.readFileSync(args.path, 'utf8');
      const line = "const childProcess = require('node:child_process');";
      const uses = source.match(/\bchildProcess\.\w+/g) ?? [];
      if (!source.includes(line) || uses.some((use) => use !== 'childProcess.spawn')) {
        console.warn(`scripts/bundle.ts: ${args.path} has changed shape; commander is bundled as it is (node:child_process loads at start-up)`);
        return undefined;
      }
      const lazy = "const childProcess = { spawn: (...spawnArgs) => require('node:child_process').spawn(...spawnArgs) };";
      return { contents: source.replace(line, lazy), loader: 'js', resolveDir: path.dirname(args.path) };
    });
  },
};

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
