/**
 * The esbuild plugins of the CLI's bundle (scripts/bundle.ts). The tests' bundle of their heaviest dependencies
 * (test/helpers/bundle-dependencies.mjs) uses zodEnglishOnly too, so the sources under test load zod as the CLI does.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Plugin } from 'esbuild';

/**
 * ofetch's Node entry makes a default client at load time from Node's global fetch and Headers, and reading
 * globalThis.Headers loads Node's own copy of undici (about 30 ms). The CLI uses ofetch's createFetch only, with
 * a transport of its own (src/delivery/transport.ts), so in the bundle the entry is reduced to that export, taken
 * from the module the entry itself imports it from. An entry of another shape is bundled as it is.
 */
export const ofetchCreateFetchOnly: Plugin = {
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
export const zodEnglishOnly: Plugin = {
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
export const commanderLazyChildProcess: Plugin = {
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
